"""The shared flake pushed from this checkout when `devserver:flake` is not set.

Like deploy-rs and colmena push the operator's flake, the deployment carries this repository's
`nix/` to the machine: the files git tracks there (what Nix itself would take from a git flake,
so nothing untracked, ignored or machine-local goes), as they are in the working tree. They travel
as one text bundle (pulumi-command 1.2.1's CopyToRemote takes a text asset or a local path, not
an archive of chosen files), so `pulumi preview --diff` shows every changed line, and the bundle's
digest is a trigger of the apply step: an edit under nix/ re-runs the deployment and nothing else.
nix/scripts/unpack-flake-bundle.sh unpacks it on the machine; the format is written there too.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PUSHED_DIR = "nix"
# One bundle per server lives in the state; a flake this big belongs in a repository.
MAX_BUNDLE_BYTES = 1024 * 1024
BUNDLE_MAGIC = "# devserver flake bundle v1"
# Paths the unpacker accepts: relative, no `..`, no leading dot or dash in a component.
SAFE_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+/")


class PushedFlakeError(Exception):
    """nix/ cannot be pushed as it is; the message says which file and what to do."""


@dataclass(frozen=True)
class PushedFile:
    """One file of the pushed flake: its path under nix/, its text and whether it is executable."""

    path: str
    text: str
    executable: bool


@dataclass(frozen=True)
class PushedFlake:
    """The files of nix/ the deployment pushes, and the bundle they travel in."""

    files: tuple[PushedFile, ...]
    source: str
    """How the files were chosen, for `scripts/check` and error messages."""

    @functools.cached_property
    def body(self) -> str:
        """The bundle after its header line: each file's header, then its lines prefixed by `|`."""
        parts = []
        for f in self.files:
            lines = f.text.split("\n")
            eol = lines[-1] == ""
            if eol:
                lines.pop()
            parts.append(f"=== {f.path} {'0755' if f.executable else '0644'}\n")
            parts.extend(f"|{line}\n" for line in lines)
            if not eol and f.text:
                parts.append("\\ no newline at end of file\n")
        return "".join(parts)

    @functools.cached_property
    def digest(self) -> str:
        """sha256 of the body: the unpacker checks it, and it is the apply step's trigger."""
        return hashlib.sha256(self.body.encode()).hexdigest()

    @property
    def bundle(self) -> str:
        """The text copied to the machine."""
        return (
            f"{BUNDLE_MAGIC} sha256={self.digest} files={len(self.files)}"
            f" (this checkout's {PUSHED_DIR}/, {self.source})\n{self.body}"
        )


def _git_files(repo: Path) -> list[str] | None:
    """The files git tracks under nix/ (None when this is not a git checkout or git is absent)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z", "--", PUSHED_DIR],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [p.decode() for p in out.split(b"\0") if p]


def _walked_files(repo: Path) -> list[str]:
    """Without git (a downloaded tarball): every regular file under nix/ but hidden ones and
    build results, which are what a checkout keeps out of git."""
    found = []
    for path in sorted((repo / PUSHED_DIR).rglob("*")):
        rel = path.relative_to(repo)
        if any(
            part.startswith(".") or part == "result" or part.startswith("result-")
            for part in rel.parts
        ):
            continue
        if path.is_file() and not path.is_symlink():
            found.append(rel.as_posix())
    return found


def load_pushed_flake(repo: Path = REPO) -> PushedFlake:
    """Read the files to push; raise PushedFlakeError naming the first file that cannot go."""
    tracked = _git_files(repo)
    source = "the files git tracks" if tracked is not None else "every file (not a git checkout)"
    names = tracked if tracked is not None else _walked_files(repo)
    files = []
    for name in sorted(names):
        path = repo / name
        # A tracked file deleted in the working tree is not pushed: the tree is what you edit.
        if path.is_symlink() or not path.is_file():
            continue
        rel = name.removeprefix(f"{PUSHED_DIR}/")
        if not set(rel) <= SAFE_PATH_CHARS or any(
            part in ("", ".", "..") or part[0] in ".-" for part in rel.split("/")
        ):
            raise PushedFlakeError(
                f"{name}: a pushed file name may hold only letters, digits and ._-+ (no leading "
                "dot or dash); rename it, or push nix/ to a repository and set devserver:flake"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise PushedFlakeError(
                f"{name} is not UTF-8 text: the push carries text files only; keep binaries out "
                "of nix/, or push nix/ to a repository and set devserver:flake"
            ) from None
        files.append(PushedFile(rel, text, bool(path.stat().st_mode & 0o100)))
    if not any(f.path == "flake.nix" for f in files):
        raise PushedFlakeError(
            f"{PUSHED_DIR}/flake.nix is missing from {source}: there is no flake to push "
            "(restore it with git, or set devserver:flake to a remote flake)"
        )
    flake = PushedFlake(tuple(files), source)
    if len(flake.bundle.encode()) > MAX_BUNDLE_BYTES:
        raise PushedFlakeError(
            f"{PUSHED_DIR}/ holds {len(flake.bundle.encode()) // 1024} KiB of text, more than the "
            f"{MAX_BUNDLE_BYTES // 1024} KiB a push carries (each server keeps a copy in the "
            "state): push nix/ to a repository and set devserver:flake"
        )
    return flake


@functools.cache
def pushed_flake() -> PushedFlake:
    """This checkout's nix/, read once per program run (a fleet shares it)."""
    return load_pushed_flake()
