"""A real Linux-PAM account check (what sshd's `do_pam_account` asks after a key was accepted).

The machine's libpam and modules do the work: `pam_start_confdir` (Linux-PAM >= 1.4) reads the
service file from a test directory, so nothing under /etc/pam.d is touched. sshd with `UsePAM yes`
runs the PAM account stack after public-key authentication and refuses the login when it fails
(openssh-portable auth2.c `userauth_finish`: `do_pam_account()`, its messages sent as the banner); NixOS runs sshd with `UsePAM yes`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from pathlib import Path

PAM_SUCCESS = 0
PAM_AUTH_ERR = 7
# The Debian/Ubuntu location of libpam-modules (the NixOS rule names ${pkgs.pam}/lib/security/).
LOCAL_MODULES = Path("/lib/x86_64-linux-gnu/security")
# /etc/pam.d/sshd's account stack as nix/modules/ec2.nix makes NixOS render it, `{pam}` standing for
# pkgs.pam's store path (tests/nix/test_module_eval.py checks the real rendering against this).
NIXOS_SSHD_ACCOUNT = (
    "account required {pam}/lib/security/pam_nologin.so",
    "account required pam_unix.so",
)


def local_stack(lines: tuple[str, ...] | list[str], pam: str, nologin_file: Path) -> str:
    """The rendered stack with this machine's modules; `file=` stands in for /run/nologin."""
    out = []
    for line in lines:
        line = line.replace(f"{pam}/lib/security/", f"{LOCAL_MODULES}/")
        if line.endswith("/pam_nologin.so"):
            line += f" file={nologin_file}"
        out.append(line)
    return "\n".join(out) + "\n"


class _Message(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class _Response(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_char_p), ("resp_retcode", ctypes.c_int)]


_CONV_FUNC = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_int,
    ctypes.POINTER(ctypes.POINTER(_Message)),
    ctypes.POINTER(ctypes.POINTER(_Response)),
    ctypes.c_void_p,
)


class _Conv(ctypes.Structure):
    _fields_ = [("conv", _CONV_FUNC), ("appdata_ptr", ctypes.c_void_p)]


@dataclass(frozen=True)
class AccountResult:
    """pam_acct_mgmt's return code and every message the modules sent to the user."""

    code: int
    messages: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return self.code == PAM_SUCCESS


def available() -> str:
    """Why a real PAM check cannot run here, or '' when it can."""
    name = ctypes.util.find_library("pam")
    if not name:
        return "libpam is not installed"
    if not hasattr(ctypes.CDLL(name), "pam_start_confdir"):
        return "libpam has no pam_start_confdir (Linux-PAM < 1.4)"
    if not (LOCAL_MODULES / "pam_nologin.so").is_file():
        return f"pam_nologin.so is not in {LOCAL_MODULES} (Debian: libpam-modules)"
    return ""


def check_account(stack: str, user: str, confdir: Path, service: str = "sshd") -> AccountResult:
    """Write `stack` as the PAM service file and run its account phase for `user`."""
    confdir.mkdir(parents=True, exist_ok=True)
    (confdir / service).write_text(stack)
    libpam = ctypes.CDLL(ctypes.util.find_library("pam"))
    messages: list[str] = []
    calloc = ctypes.CDLL(None).calloc
    calloc.restype = ctypes.c_void_p
    calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]

    def converse(n: int, msgs, resp, _data) -> int:  # type: ignore[no-untyped-def]
        for i in range(n):
            messages.append((msgs[i].contents.msg or b"").decode())
        # Linux-PAM frees the responses: they must come from the C heap.
        resp[0] = ctypes.cast(calloc(n, ctypes.sizeof(_Response)), ctypes.POINTER(_Response))
        return PAM_SUCCESS

    conv = _Conv(_CONV_FUNC(converse), None)
    handle = ctypes.c_void_p()
    start = libpam.pam_start_confdir
    start.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.POINTER(_Conv),
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_void_p),
    ]
    code = start(service.encode(), user.encode(), ctypes.byref(conv), str(confdir).encode(), handle)
    if code != PAM_SUCCESS:
        raise RuntimeError(f"pam_start_confdir failed with {code}")
    libpam.pam_acct_mgmt.argtypes = [ctypes.c_void_p, ctypes.c_int]
    code = libpam.pam_acct_mgmt(handle, 0)
    libpam.pam_end.argtypes = [ctypes.c_void_p, ctypes.c_int]
    libpam.pam_end(handle, code)
    return AccountResult(code, tuple(messages))
