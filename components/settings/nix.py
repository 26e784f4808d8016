# Flake and image rules: the shared flake, the NixOS release and AMI a new machine boots from.

from __future__ import annotations

import re

from components.settings.declaration import SERVER, Key
from components.settings.reader import Context, Reader

# The NixOS release whose official AMI boots a new machine; the flake in nix/ pins the same one.
DEFAULT_NIXOS_RELEASE = "26.05"
RELEASE_RE = re.compile(r"\d{2}\.\d{2}")
# A pushed nix/ is the host flake's `path:./shared` input: relative path inputs need Nix 2.26
# (rl-2.26.md), and the image's Nix runs the first switch; 25.05 ships 2.28.
PUSHED_MIN_RELEASE = "25.05"
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


REMOTE_FLAKE = (
    "a flake reference with a remote scheme (github:, gitlab:, sourcehut:, git+https:, "
    "git+ssh:, https:, tarball+https:) and only URL characters"
)


def remote_flake(r: Reader, key: str) -> str | None:
    """A remote flake reference (None: unset); a local path or a registry id is refused."""
    found = r.source.get(key)
    value = found[0] if found else None
    if isinstance(value, str) and LOCAL_FLAKE_RE.match(value):
        r.fail(
            r.label(key),
            value,
            f"{REMOTE_FLAKE}, not a local path: Nix would copy that directory into the "
            "world-readable /nix/store as root; push the flake to a repository instead",
        )
        return None
    if isinstance(value, str) and INDIRECT_FLAKE_RE.fullmatch(value):
        r.fail(
            r.label(key),
            value,
            f"{REMOTE_FLAKE}, not a registry id: the machine's flake registry decides what it "
            "means and may point it at a local path",
        )
        return None
    return r.text(key, FLAKE_RE, REMOTE_FLAKE)


def flake(r: Reader, ctx: Context) -> str | None:
    """The team's remote shared flake; unset, the deployment pushes this checkout's nix/."""
    return remote_flake(r, "flake")


def personal_flake(r: Reader, ctx: Context) -> str | None:
    """A person's own flake, layered over the shared modules on this server only."""
    return remote_flake(r, "personalFlake")


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
    release = r.text(
        "nixosRelease", RELEASE_RE, allowed, default=DEFAULT_NIXOS_RELEASE, number_ok=True
    )
    shared = r.source.get("flake")
    if release is not None and not (shared and shared[0]) and release < PUSHED_MIN_RELEASE:
        r.fail(
            r.label("nixosRelease"),
            release,
            f"{PUSHED_MIN_RELEASE} or newer while {r.label('flake')} is unset: the pushed nix/ "
            "is a relative `path:./shared` input, which needs Nix 2.26 or newer on the image; "
            "set a newer release, or set devserver:flake to a remote flake",
        )
        return None
    return release


def ami_id(r: Reader, ctx: Context) -> str | None:
    return r.text("amiId", AMI_RE, "an AMI id like ami-0123456789abcdef0")


# The keys this module's rules check, declared once (keys.py collects them; order = check order).
KEYS = (
    Key(
        "flake",
        "string",
        SERVER,
        flake,
        "A team's shared remote flake the machine is built from, e.g. github:acme/infra?dir=nix. "
        "Unset: the deployment pushes this checkout's nix/ (the files git tracks) to the machine.",
        default="",
        shown_default="unset: this checkout's `nix/` is pushed",
        details="URL characters only; the remote schemes are `github:`, `gitlab:`, `sourcehut:`, "
        "`git+https:`, `git+ssh:`, `https:`, `tarball+https:`. A local reference would have Nix "
        "copy that directory into the world-readable store as root, and a registry id "
        "(`flake:x`, `nixpkgs`) may resolve to one. A private `github:` one is read with "
        "`devserver:githubToken` (Nix uses access-tokens in its github: fetcher only; a private "
        "`git+https:` or `git+ssh:` one fails to fetch). docs/team-use.md compares the two "
        "modes (locking, what "
        "`pulumi preview` shows, what the nightly upgrade follows).",
    ),
    Key(
        "personalFlake",
        "string",
        SERVER,
        personal_flake,
        "Your own flake layered over the shared modules on this server only: its "
        "nixosModules.default and homeManagerModules.default (whichever exist) are imported "
        "after the shared ones. Remote references only, like flake.",
        default="",
        details="The same rules as `devserver:flake` (remote, URL characters only; a private "
        "`github:` one is read with `devserver:githubToken`, other schemes get no token). "
        "Its `nixpkgs` input follows the machine's. A "
        "deployment and the nightly upgrade refresh it with the shared flake. "
        "examples/personal-flake is a start; docs/customising.md shows what goes in it.",
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
