"""nix/scripts/locked-nixpkgs.nix: the nixpkgs a host flake.lock pins, for apply-flake.sh's awscli2."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "nix" / "scripts" / "locked-nixpkgs.nix"
REV = "3" * 40

pytestmark = pytest.mark.skipif(
    shutil.which("nix-instantiate") is None, reason="nix-instantiate not installed"
)


def host_lock(nixpkgs_locked: dict[str, Any]) -> dict[str, Any]:
    """A lock shaped like `nix flake lock` writes for the host template (nixpkgs follows devserver)."""
    return {
        "version": 7,
        "root": "root",
        "nodes": {
            "root": {"inputs": {"devserver": "devserver", "nixpkgs": ["devserver", "nixpkgs"]}},
            "devserver": {
                "inputs": {"nixpkgs": "nixpkgs", "home-manager": "home-manager"},
                "locked": {"type": "github", "owner": "acme", "repo": "infra", "rev": "1" * 40},
            },
            "home-manager": {
                "inputs": {"nixpkgs": ["devserver", "nixpkgs"]},
                "locked": {"type": "github", "owner": "nix-community", "repo": "home-manager"},
            },
            "nixpkgs": {"locked": nixpkgs_locked},
        },
    }


def locked_ref(lock: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    lock_file = tmp_path / "flake.lock"
    lock_file.write_text(json.dumps(lock))
    return subprocess.run(
        [
            *("nix-instantiate", "--option", "experimental-features", "", "--eval", "--strict"),
            *("--json", str(SCRIPT), "--argstr", "lockFile", str(lock_file)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_followed_nixpkgs_of_the_shared_flake_is_the_pinned_github_revision(
    tmp_path: Path,
) -> None:
    lock = host_lock(
        {"type": "github", "owner": "NixOS", "repo": "nixpkgs", "rev": REV, "narHash": "sha256-x"}
    )
    result = locked_ref(lock, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == f"github:NixOS/nixpkgs/{REV}"


def test_unsupported_lock_type_is_an_error_naming_it(tmp_path: Path) -> None:
    result = locked_ref(host_lock({"type": "path", "path": "/somewhere"}), tmp_path)
    assert result.returncode != 0
    assert "pins nixpkgs as a 'path' input" in result.stderr
