# Flake and image rules: the shared flake, the NixOS release and AMI a new machine boots from.

from __future__ import annotations

import re

from components.settings.declaration import SERVER, Key
from components.settings.reader import Context, Reader

# The NixOS release whose official AMI boots a new machine; the flake in nix/ pins the same one.
DEFAULT_NIXOS_RELEASE = "26.05"
RELEASE_RE = re.compile(r"\d{2}\.\d{2}")
AMI_RE = re.compile(r"ami-[0-9a-f]{8}(?:[0-9a-f]{9})?")
# A flake reference is pasted into a Nix string and a shell command: allow URL characters only,
# and a remote scheme Nix knows, so no quote, `$`, backtick, backslash, space or `;` can break out.
FLAKE_RE = re.compile(
    r"(?:github|gitlab|sourcehut|git\+https|git\+ssh|https|tarball\+https|file\+https|hg\+https):"
    r"[A-Za-z0-9._~/:?=&+%@,-]+"
)
# Local flake references (nix3-flake "Types"): Nix copies the tree into the world-readable store.
LOCAL_FLAKE_RE = re.compile(
    r"(?:path|git\+file|file|file\+file|tarball\+file|hg\+file):|git:(?!//)|[/.~]"
)
# `flake:<id>` and bare ids are looked up in the machine's registry, which may map them to a path.
INDIRECT_FLAKE_RE = re.compile(r"flake:.*|[A-Za-z][A-Za-z0-9_-]*(?:/[^:]*)?")


def flake(r: Reader, ctx: Context) -> str:
    allowed = (
        "a flake reference with a remote scheme (github:, gitlab:, sourcehut:, git+https:, "
        "git+ssh:, https:, tarball+https:) and only URL characters"
    )
    found = r.source.get("flake")
    value = found[0] if found else None
    if isinstance(value, str) and LOCAL_FLAKE_RE.match(value):
        r.fail(
            r.label("flake"),
            value,
            f"{allowed}, not a local path: Nix would copy that directory into the "
            "world-readable /nix/store as root; push the flake to a repository instead",
        )
        return ""
    if isinstance(value, str) and INDIRECT_FLAKE_RE.fullmatch(value):
        r.fail(
            r.label("flake"),
            value,
            f"{allowed}, not a registry id: the machine's flake registry decides what it "
            "means and may point it at a local path",
        )
        return ""
    return r.required(
        "flake", FLAKE_RE, allowed, "the shared flake, e.g. github:acme/infra?dir=nix"
    )


def nixos_release(r: Reader, ctx: Context) -> str | None:
    allowed = "a NixOS release like 26.05 (year.month, both two digits)"
    found = r.source.get("nixosRelease")
    # The CLI hands a YAML number over as its shortest text: `26.10` arrives as "26.1".
    if found is not None and isinstance(found[0], str) and re.fullmatch(r"\d{2}\.\d", found[0]):
        r.errors.append(
            f"{found[1]} must be {allowed}, got {found[0]!r}: a bare 26.10 in YAML is the number "
            f'26.1, so write the release in quotes ("26.10")'
        )
        return None
    return r.text(
        "nixosRelease", RELEASE_RE, allowed, default=DEFAULT_NIXOS_RELEASE, number_ok=True
    )


def ami_id(r: Reader, ctx: Context) -> str | None:
    return r.text("amiId", AMI_RE, "an AMI id like ami-0123456789abcdef0")


# The keys this module's rules check, declared once (keys.py collects them; order = check order).
KEYS = (
    Key(
        "flake",
        "string",
        SERVER,
        flake,
        "The shared flake the machine is built from, e.g. github:acme/infra?dir=nix (required). "
        "Remote references only; path:, git+file:, file:, plain paths and registry ids are "
        "refused.",
        details="URL characters only; the remote schemes are `github:`, `gitlab:`, `sourcehut:`, "
        "`git+https:`, `git+ssh:`, `https:`, `tarball+https:`. A local reference would have Nix "
        "copy that directory into the world-readable store as root, and a registry id "
        "(`flake:x`, `nixpkgs`) may resolve to one.",
    ),
    Key(
        "nixosRelease",
        "string",
        SERVER,
        nixos_release,
        'NixOS release of the official AMI a new machine boots from, e.g. "26.05" (the release '
        "nix/flake.nix pins). Quote it - YAML reads 26.10 as 26.1.",
        default=DEFAULT_NIXOS_RELEASE,
    ),
    Key(
        "amiId",
        "string",
        SERVER,
        ami_id,
        "Boot new machines from this AMI instead of the newest official NixOS one (must match the "
        "arch).",
        default="",
    ),
)
