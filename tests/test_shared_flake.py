"""The push of this checkout's nix/ (no devserver:flake): what goes, how it travels, how it lands.

components/shared_flake.py makes the bundle; nix/scripts/unpack-flake-bundle.sh unpacks it on the
machine; nix/scripts/pushed-flake-lock.nix gives a pushed flake without a lock the machine's pins.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from components.shared_flake import PushedFlakeError, load_pushed_flake, pushed_flake

ROOT = Path(__file__).resolve().parent.parent
UNPACK = ROOT / "nix" / "scripts" / "unpack-flake-bundle.sh"
PINS = ROOT / "nix" / "scripts" / "pushed-flake-lock.nix"
GIT = shutil.which("git")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout whose nix/ holds tracked files, an untracked one and an ignored one."""
    if GIT is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "nix" / "modules").mkdir(parents=True)
    (repo / "nix" / "flake.nix").write_text("{ outputs = _: { }; }\n")
    (repo / "nix" / "modules" / "tools.nix").write_text("{ pkgs, ... }: { }")  # no newline
    (repo / "nix" / "empty.nix").write_text("")
    (repo / "nix" / "run.sh").write_text("#!/bin/sh\n")
    (repo / "nix" / "run.sh").chmod(0o755)
    (repo / ".gitignore").write_text("nix/local-secrets.nix\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    (repo / "nix" / "local-secrets.nix").write_text('{ token = "fake-not-a-token"; }\n')
    (repo / "nix" / "scratch.nix").write_text("# not added to git yet\n")
    return repo


def test_only_the_files_git_tracks_under_nix_are_pushed(checkout: Path) -> None:
    flake = load_pushed_flake(checkout)
    assert [f.path for f in flake.files] == [
        "empty.nix",
        "flake.nix",
        "modules/tools.nix",
        "run.sh",
    ]
    assert "fake-not-a-token" not in flake.bundle, "an ignored file must never be pushed"
    assert "not added to git yet" not in flake.bundle, "an untracked file is not pushed"
    assert flake.source == "the files git tracks"


def test_the_bundle_unpacks_to_exactly_the_pushed_files(checkout: Path, tmp_path: Path) -> None:
    flake = load_pushed_flake(checkout)
    bundle = tmp_path / "bundle"
    bundle.write_text(flake.bundle)
    dest = tmp_path / "shared"
    (tmp_path / "shared").mkdir()
    (dest / "stale.nix").write_text("# from an earlier push\n")

    subprocess.run(["bash", str(UNPACK), str(bundle), str(dest)], check=True, capture_output=True)

    got = {p.relative_to(dest).as_posix(): p.read_text() for p in dest.rglob("*") if p.is_file()}
    assert got == {f.path: f.text for f in flake.files}
    assert (dest / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (dest / "flake.nix").stat().st_mode & 0o777 == 0o644


def test_this_repositorys_nix_travels_whole_and_the_preview_shows_each_line() -> None:
    flake = pushed_flake()
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "nix"], capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        pytest.skip("this copy of the repository is not a git checkout")
    tracked = listed.stdout.split()
    assert {f"nix/{f.path}" for f in flake.files} == {t for t in tracked if (ROOT / t).is_file()}
    assert "\n=== flake.nix 0644\n|{\n" in flake.bundle, "each line of nix/ is readable in a diff"
    assert flake.bundle.startswith(f"# devserver flake bundle v1 sha256={flake.digest} ")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b.replace("|{ outputs", "|{ evil = 1; outputs"), "is damaged"),
        (lambda b: b.split("\n", 1)[0] + "\n", "is damaged"),
        (lambda b: b.replace("v1", "v9"), "v1 bundle header"),
    ],
    ids=["edited", "truncated", "unknown format"],
)
def test_a_damaged_bundle_is_refused_and_leaves_the_destination_alone(
    checkout: Path, tmp_path: Path, damage: object, message: str
) -> None:
    bundle = tmp_path / "bundle"
    bundle.write_text(damage(load_pushed_flake(checkout).bundle))  # type: ignore[operator]
    dest = tmp_path / "shared"
    dest.mkdir()
    (dest / "flake.nix").write_text("# the running push\n")

    result = subprocess.run(["bash", str(UNPACK), str(bundle), str(dest)], capture_output=True)

    assert result.returncode == 2 and message in result.stderr.decode(), result.stderr
    assert (dest / "flake.nix").read_text() == "# the running push\n"


def test_a_path_outside_the_flake_is_refused_even_with_a_matching_digest(tmp_path: Path) -> None:
    import hashlib

    body = "=== ../../etc/evil 0644\n|x\n"
    digest = hashlib.sha256(body.encode()).hexdigest()
    bundle = tmp_path / "bundle"
    bundle.write_text(f"# devserver flake bundle v1 sha256={digest} files=1\n{body}")
    result = subprocess.run(
        ["bash", str(UNPACK), str(bundle), str(tmp_path / "shared")], capture_output=True
    )
    assert result.returncode == 2 and b"unsafe path" in result.stderr, result.stderr
    assert not (tmp_path / "etc").exists()


def test_a_binary_file_or_a_missing_flake_nix_stops_the_plan_naming_it(checkout: Path) -> None:
    (checkout / "nix" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    _git(checkout, "add", "nix/logo.png")
    with pytest.raises(PushedFlakeError, match=r"nix/logo.png is not UTF-8 text"):
        load_pushed_flake(checkout)
    _git(checkout, "rm", "-q", "--cached", "nix/logo.png")
    (checkout / "nix" / "flake.nix").unlink()
    with pytest.raises(PushedFlakeError, match=r"nix/flake.nix is missing"):
        load_pushed_flake(checkout)


# A host lock as `nix flake lock` writes it over the shared flake: format 7, follows paths start at
# the root node (NixOS/nix src/libflake/lockfile.cc), the shared input's subtree under "devserver".
HOST_LOCK = {
    "version": 7,
    "root": "root",
    "nodes": {
        "root": {
            "inputs": {"devserver": "devserver", "nixpkgs": ["devserver", "nixpkgs"],
                       "personal": "personal"},
        },
        "devserver": {
            "inputs": {"home-manager": "home-manager", "nixpkgs": "nixpkgs",
                       "extra": ["personal"]},
            "locked": {"path": "./shared", "type": "path"},
            "original": {"path": "./shared", "type": "path"},
            "parent": [],
        },
        "home-manager": {
            "inputs": {"nixpkgs": ["devserver", "nixpkgs"]},
            "locked": {"type": "github", "owner": "nix-community", "repo": "home-manager",
                       "rev": "5" * 40},
            "original": {"type": "github", "owner": "nix-community", "repo": "home-manager",
                         "ref": "release-26.05"},
        },
        "nixpkgs": {
            "locked": {"type": "github", "owner": "NixOS", "repo": "nixpkgs", "rev": "3" * 40},
            "original": {"type": "github", "owner": "NixOS", "repo": "nixpkgs",
                         "ref": "nixos-26.05"},
        },
        "personal": {
            "locked": {"type": "github", "owner": "alice-gh", "repo": "dotfiles", "rev": "6" * 40},
            "original": {"type": "github", "owner": "alice-gh", "repo": "dotfiles"},
        },
    },
}  # fmt: skip


def _pins(lock: dict[str, object], tmp_path: Path) -> str:
    if shutil.which("nix-instantiate") is None:
        pytest.skip("nix-instantiate (Debian nix-bin) is not installed")
    path = tmp_path / "flake.lock"
    path.write_text(json.dumps(lock))
    out = subprocess.run(
        [
            *("nix-instantiate", "--option", "experimental-features", "", "--eval", "--strict"),
            *("--json", str(PINS), "--argstr", "lockFile", str(path), "--argstr", "input"),
            "devserver",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return str(json.loads(out))


def test_a_pushed_flake_without_a_lock_starts_from_the_pins_the_machine_has(
    tmp_path: Path,
) -> None:
    pins = json.loads(_pins(HOST_LOCK, tmp_path))
    assert pins["root"] == "root" and pins["version"] == 7
    # The shared flake's own inputs, as a lock of its own: its follows start at its root now.
    assert pins["nodes"]["root"] == {
        "inputs": {"home-manager": "home-manager", "nixpkgs": "nixpkgs"}
    }
    assert pins["nodes"]["home-manager"]["inputs"] == {"nixpkgs": ["nixpkgs"]}
    assert pins["nodes"]["nixpkgs"]["locked"]["rev"] == "3" * 40
    # What the host alone has (the personal flake) is not part of it; Nix locks such an input again.
    assert set(pins["nodes"]) == {"root", "home-manager", "nixpkgs"}


def test_a_first_apply_has_no_pins_to_keep(tmp_path: Path) -> None:
    lock = {"version": 7, "root": "root", "nodes": {"root": {"inputs": {}}}}
    assert _pins(lock, tmp_path) == ""


def test_a_checkout_without_git_skips_build_results_but_not_files_named_like_them(
    tmp_path: Path,
) -> None:
    from components.shared_flake import _walked_files

    for rel in ("nix/flake.nix", "nix/modules/results.nix", "nix/result/x", "nix/result-man/y"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{ }\n")

    assert _walked_files(tmp_path) == ["nix/flake.nix", "nix/modules/results.nix"]
