"""nix/scripts/upgrade-flake-lock.sh: the nightly upgrade's flake.lock is put back when it fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "nix" / "scripts" / "upgrade-flake-lock.sh"
OLD = '{"note": "lock of the running system"}\n'
NEW = '{"note": "after nix flake update devserver"}\n'


def run(action: str, flake_dir: Path, result: str | None = None) -> str:
    env = {"PATH": "/usr/bin:/bin"} | ({"SERVICE_RESULT": result} if result else {})
    done = subprocess.run(
        ["bash", str(SCRIPT), action, str(flake_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("result", ["exit-code", "timeout", "signal"])
def test_failed_upgrade_puts_the_previous_lock_back(tmp_path: Path, result: str) -> None:
    lock = tmp_path / "flake.lock"
    lock.write_text(OLD)
    run("save", tmp_path)
    lock.write_text(NEW)  # what `nix flake update` did before the switch failed

    out = run("restore", tmp_path, result)

    assert lock.read_text() == OLD, "flake.lock must match the system that is running"
    assert f"nixos-upgrade failed ({result})" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flake.lock"]


def test_successful_upgrade_keeps_the_updated_lock(tmp_path: Path) -> None:
    lock = tmp_path / "flake.lock"
    lock.write_text(OLD)
    run("save", tmp_path)
    lock.write_text(NEW)

    run("restore", tmp_path, "success")

    assert lock.read_text() == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flake.lock"]


def test_failed_upgrade_removes_a_lock_it_created(tmp_path: Path) -> None:
    run("save", tmp_path)
    (tmp_path / "flake.lock").write_text(NEW)

    run("restore", tmp_path, "exit-code")

    assert list(tmp_path.iterdir()) == []
