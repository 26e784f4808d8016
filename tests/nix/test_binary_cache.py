"""A real signed binary cache, with Debian's Nix (nix-bin 2.8): what the stack's cache relies on.

A two-path closure (top refers to dep) is built in a store of its own, signed with a real key
generated here, copied to a `file://` binary cache and substituted into a fresh store whose
nix.conf trusts only that key (`require-sigs`, `trusted-public-keys`), the way a machine fills
its store from the stack's S3 cache. A closure signed by another key, or by none, is refused.
The signing key the program makes (pulumi-tls's Ed25519 key in OpenSSH format, converted by
components/binary_cache.py) is checked the same way, with a key ssh-keygen writes in that format.

Input-addressed paths are built (not `nix store add-file`d): Nix accepts a content-addressed path
without any signature (ValidPathInfo::checkSignatures counts it as self-certifying), and a
system closure is input-addressed. The builds run in Nix's sandbox, which needs user namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.nix_signing_key import nix_public_key, nix_secret_key

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "time_to_usable.py"
pytestmark = pytest.mark.skipif(
    shutil.which("nix") is None or shutil.which("nix-store") is None,
    reason="Debian's nix-bin (nix, nix-store) is not installed",
)

# Two input-addressed derivations; /bin/sh comes from the host through sandbox-paths.
CLOSURE = """
let dep = derivation { name = "dep"; system = builtins.currentSystem; builder = "/bin/sh";
                       args = [ "-c" "echo dependency > $out" ]; };
in derivation { name = "top"; system = builtins.currentSystem; builder = "/bin/sh";
                args = [ "-c" "echo ${dep} > $out" ]; }
"""


@dataclass(frozen=True)
class Nix:
    """Nix commands with their own nix.conf directory, HOME and cache (nothing from the host)."""

    root: Path

    def env(self, conf: Path) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "HOME": str(self.root / "home"),
            "XDG_CACHE_HOME": str(self.root / "xdg-cache"),
            "NIX_CONF_DIR": str(conf),
            "NIX_USER_CONF_FILES": "",
            "NIX_PATH": "",
        }

    def conf(self, name: str, **settings: str) -> Path:
        """A nix.conf directory holding exactly these settings (plus nix-command)."""
        directory = self.root / "conf" / name
        directory.mkdir(parents=True, exist_ok=True)
        lines = [
            "experimental-features = nix-command",
            *(f"{k} = {v}" for k, v in settings.items()),
        ]
        (directory / "nix.conf").write_text("\n".join(lines) + "\n")
        return directory

    def run(
        self, conf: Path, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(args),
            env=self.env(conf),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result


def _sandbox_paths() -> str:
    return " ".join(p for p in ("/bin", "/usr", "/lib", "/lib64") if Path(p).exists())


@pytest.fixture
def nix(tmp_path: Path) -> Nix:
    return Nix(tmp_path)


@pytest.fixture
def built(nix: Nix, tmp_path: Path) -> tuple[Path, str, str]:
    """The source store and its closure (top, dep), built there for real."""
    if subprocess.run(["unshare", "-Ur", "true"], capture_output=True, check=False).returncode:
        pytest.skip("Nix's build sandbox needs user namespaces, which this machine does not allow")
    store = tmp_path / "source-store"
    expr = tmp_path / "closure.nix"
    expr.write_text(CLOSURE)
    conf = nix.conf("build", **{"sandbox-paths": _sandbox_paths(), "substituters": ""})
    top = nix.run(
        conf, "nix-build", "--store", str(store), str(expr), "--no-out-link"
    ).stdout.strip()
    closure = nix.run(conf, "nix-store", "--store", str(store), "-qR", top).stdout.split()
    (dep,) = [p for p in closure if p != top]
    return store, top, dep


def generate_key(nix: Nix, name: str) -> tuple[Path, str]:
    """A real key pair from `nix-store --generate-binary-cache-key`: (secret key file, public)."""
    secret, public = nix.root / f"{name}.secret", nix.root / f"{name}.public"
    nix.run(
        nix.conf("keys"), "nix-store", "--generate-binary-cache-key", name, str(secret), str(public)
    )
    return secret, public.read_text().strip()


def signed_cache(
    nix: Nix, store: Path, top: str, key_file: Path | None, name: str, on_upload: bool = False
) -> Path:
    """The closure of `top` copied to a file:// cache, signed with `key_file` (or not at all):
    by `nix store sign` first, or (`on_upload`) by the cache's `secret-key` setting, as CI does."""
    conf = nix.conf("sign")
    cache = nix.root / f"cache-{name}"
    url = f"file://{cache}"
    if key_file is not None and on_upload:
        url += f"?secret-key={key_file}"
    elif key_file is not None:
        nix.run(
            conf,
            "nix",
            "--store",
            str(store),
            "store",
            "sign",
            "-r",
            "--key-file",
            str(key_file),
            top,
        )
    nix.run(conf, "nix", "--store", str(store), "copy", "--to", url, top)
    return cache


def substitute(
    nix: Nix, cache: Path, trusted: str, top: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Realise `top` in a fresh store that may substitute only from `cache` and trusts `trusted`."""
    conf = nix.conf(
        f"machine-{cache.name}",
        substituters=f"file://{cache}",
        **{"trusted-public-keys": trusted, "require-sigs": "true"},
    )
    fresh = nix.root / f"fresh-store-{cache.name}-{len(list(nix.root.glob('fresh-store-*')))}"
    return fresh, nix.run(conf, "nix-store", "--store", str(fresh), "--realise", top, check=False)


def is_valid(nix: Nix, store: Path, path: str) -> bool:
    result = nix.run(
        nix.conf("query"), "nix", "--store", str(store), "path-info", path, check=False
    )
    return result.returncode == 0


def test_a_closure_signed_by_the_trusted_key_is_substituted_into_a_fresh_store(
    nix: Nix, built: tuple[Path, str, str]
) -> None:
    store, top, dep = built
    secret, public = generate_key(nix, "devserver-test-1")
    cache = signed_cache(nix, store, top, secret, "trusted")
    narinfo = (cache / f"{Path(top).name.split('-')[0]}.narinfo").read_text()
    assert "Sig: devserver-test-1:" in narinfo, (
        f"the cache's narinfo for {top} carries no signature"
    )

    fresh, result = substitute(nix, cache, public, top)
    assert result.returncode == 0, f"substitution from the signed cache failed:\n{result.stderr}"
    assert is_valid(nix, fresh, top) and is_valid(nix, fresh, dep), (
        "the closure is not in the store"
    )
    # Downloaded, not built: the fresh store has no derivations, only the two outputs.
    assert (fresh / top.lstrip("/")).read_text().strip() == dep


def test_a_closure_signed_by_another_key_is_refused(nix: Nix, built: tuple[Path, str, str]) -> None:
    store, top, dep = built
    _, trusted = generate_key(nix, "devserver-test-1")
    other_secret, _ = generate_key(nix, "someone-else-1")
    cache = signed_cache(nix, store, top, other_secret, "other")

    fresh, result = substitute(nix, cache, trusted, top)
    assert result.returncode != 0, "a path signed by an untrusted key was substituted"
    assert "is not signed by any of the keys in 'trusted-public-keys'" in result.stderr
    assert not is_valid(nix, fresh, top) and not is_valid(nix, fresh, dep)

    # An explicit copy from that cache is refused too (nothing falls back to trusting it).
    conf = nix.conf("copy-other", **{"trusted-public-keys": trusted, "require-sigs": "true"})
    copy = nix.run(
        conf, "nix", "--store", str(fresh), "copy", "--from", f"file://{cache}", top, check=False
    )
    assert copy.returncode != 0 and "lacks a valid signature" in copy.stderr, copy.stderr


def test_an_unsigned_closure_is_refused(nix: Nix, built: tuple[Path, str, str]) -> None:
    store, top, _ = built
    _, trusted = generate_key(nix, "devserver-test-1")
    cache = signed_cache(nix, store, top, None, "unsigned")
    fresh, result = substitute(nix, cache, trusted, top)
    assert result.returncode != 0, "an unsigned path was substituted"
    assert not is_valid(nix, fresh, top)


def test_the_programs_key_conversion_gives_a_key_pair_nix_signs_and_verifies_with(
    nix: Nix, built: tuple[Path, str, str]
) -> None:
    store, top, dep = built
    # The format pulumi-tls writes an Ed25519 key in (privateKeyOpenssh / publicKeyOpenssh).
    ssh_key = nix.root / "signing"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(ssh_key)], check=True
    )
    secret = nix_secret_key("devserver-alice-1", ssh_key.read_text())
    public = nix_public_key("devserver-alice-1", (ssh_key.parent / "signing.pub").read_text())

    key_file = nix.root / "converted.secret"
    key_file.touch(mode=0o600)
    key_file.write_text(secret)
    # Nix derives the public key from the secret one (crypto_sign_ed25519_sk_to_pk): the same.
    derived = nix.run(nix.conf("keys"), "nix", "key", "convert-secret-to-public", stdin=secret)
    assert derived.stdout.strip() == public, "the converted secret and public keys do not match"

    # Signed on upload, the way the binary-cache workflow pushes (`secret-key` store setting).
    cache = signed_cache(nix, store, top, key_file, "converted", on_upload=True)
    fresh, result = substitute(nix, cache, public, top)
    assert result.returncode == 0, (
        f"Nix refused paths signed with the converted key:\n{result.stderr}"
    )
    assert is_valid(nix, fresh, top) and is_valid(nix, fresh, dep)


def test_the_time_to_usable_model_reads_what_nix_path_info_prints_for_the_cache(
    nix: Nix, built: tuple[Path, str, str]
) -> None:
    """benchmarks/time_to_usable.py on `nix path-info -rS --json` of a real cache: the paths and
    the compressed bytes (downloadSize from the narinfo) are what the model reports."""
    store, top, _ = built
    secret, _ = generate_key(nix, "devserver-test-1")
    cache = signed_cache(nix, store, top, secret, "model")
    info = nix.run(
        nix.conf("query"), "nix", "--store", f"file://{cache}", "path-info", "-rS", "--json", top
    ).stdout
    closure = nix.root / "closure.json"
    closure.write_text(info)
    out = subprocess.run(
        [sys.executable, str(BENCHMARK), "--closure-json", str(closure)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wire = sum(e["downloadSize"] for e in json.loads(info))
    assert f"2 paths          source: {closure}" in out
    assert f"{round(wire / 1024 / 1024, 1):g} MiB" in next(
        line for line in out.splitlines() if "on the wire" in line
    )
