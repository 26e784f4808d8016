"""nix/scripts/upgrade-flake-lock.sh: the nightly upgrade's flake.lock is put back when it fails,
it is skipped while a deployment holds the deploy lock, and a new system that fails the login
check is rolled back (fake nix-env and systemd-run on PATH, a real profile symlink chain)."""

from __future__ import annotations

import fcntl
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "nix" / "scripts" / "upgrade-flake-lock.sh"
OLD = '{"note": "lock of the running system"}\n'
NEW = '{"note": "after nix flake update devserver"}\n'


def _env(flake_dir: Path) -> dict[str, str]:
    # Beside the flake dir, so the flake dir's listing stays what the tests assert.
    root = flake_dir.with_name(flake_dir.name + "-machine")
    return {
        "PATH": f"{root / 'bin'}:/usr/bin:/bin",
        "DEVSERVER_RUN_DIR": str(root / "run"),
        "DEVSERVER_SYSTEM_PROFILE": str(root / "profiles" / "system"),
        "DEVSERVER_SYSTEMD_DIR": str(root / "run" / "systemd" / "system"),
        "FAKE_CALLS": str(root / "calls.log"),
        "DEVSERVER_DEPLOY_LOCK_WAIT": "2",
    }


def invoke(
    action: str, flake_dir: Path, *args: str, result: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = _env(flake_dir) | ({"SERVICE_RESULT": result} if result else {})
    return subprocess.run(
        ["bash", str(SCRIPT), action, str(flake_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def run(action: str, flake_dir: Path, result: str | None = None) -> str:
    done = invoke(action, flake_dir, result=result)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("result", ["exit-code", "timeout", "signal"])
def test_failed_upgrade_puts_the_previous_lock_back(machine: Path, result: str) -> None:
    tmp_path = machine
    lock = tmp_path / "flake.lock"
    lock.write_text(OLD)
    run("guard", tmp_path)
    run("save", tmp_path)
    lock.write_text(NEW)  # what `nix flake update` did before the switch failed

    out = run("restore", tmp_path, result)

    assert lock.read_text() == OLD, "flake.lock must match the system that is running"
    assert f"nixos-upgrade failed ({result})" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flake.lock"]


def test_successful_upgrade_keeps_the_updated_lock(machine: Path) -> None:
    tmp_path = machine
    lock = tmp_path / "flake.lock"
    lock.write_text(OLD)
    run("guard", tmp_path)
    run("save", tmp_path)
    lock.write_text(NEW)

    run("restore", tmp_path, "success")

    assert lock.read_text() == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flake.lock"]


def test_failed_upgrade_removes_a_lock_it_created(machine: Path) -> None:
    tmp_path = machine
    run("guard", tmp_path)
    run("save", tmp_path)
    (tmp_path / "flake.lock").write_text(NEW)

    run("restore", tmp_path, "exit-code")

    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    """A flake dir beside a fake machine: generation 1 is running, the upgrade made generation 2."""
    flake_dir = tmp_path / "etc-nixos"
    flake_dir.mkdir()
    env = _env(flake_dir)
    calls = env["FAKE_CALLS"]
    bin_dir = Path(env["PATH"].split(":")[0])
    bin_dir.mkdir(parents=True)
    fakes = {
        "nix-env": 'echo "nix-env $*" >> "$FAKE_CALLS"\nln -sfn "$(basename "$2")-$4-link" "$2"\n',
        "systemd-run": (
            'echo "systemd-run $*" >> "$FAKE_CALLS"\n'
            "while [[ $1 == -* ]]; do if [[ $1 == -E ]]; then shift; fi; shift; done\n"
            'exec "$@"\n'
        ),
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text("#!/bin/bash\nset -eu\n" + body)
        (bin_dir / name).chmod(0o755)
    profile = Path(env["DEVSERVER_SYSTEM_PROFILE"])
    for n in (1, 2):
        stc = profile.parent / f"system-gen{n}" / "bin" / "switch-to-configuration"
        stc.parent.mkdir(parents=True)
        stc.write_text(f'#!/bin/bash\necho "gen{n}/switch-to-configuration $*" >> {calls}\n')
        stc.chmod(0o755)
        (profile.parent / f"system-{n}-link").symlink_to(profile.parent / f"system-gen{n}")
    profile.symlink_to("system-1-link")
    Path(env["DEVSERVER_SYSTEMD_DIR"]).mkdir(parents=True)
    return flake_dir


def _calls(flake_dir: Path) -> list[str]:
    log = Path(_env(flake_dir)["FAKE_CALLS"])
    return log.read_text().splitlines() if log.exists() else []


def _upgrade_switches(flake_dir: Path) -> None:
    Path(_env(flake_dir)["DEVSERVER_SYSTEM_PROFILE"]).unlink()
    Path(_env(flake_dir)["DEVSERVER_SYSTEM_PROFILE"]).symlink_to("system-2-link")


def test_upgrade_is_skipped_while_a_deployment_holds_the_deploy_lock(machine: Path) -> None:
    run_dir = Path(_env(machine)["DEVSERVER_RUN_DIR"])
    with (run_dir / "deploy.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = invoke("guard", machine)

    assert done.returncode == 1, "nixos-upgrade must fail its preStart, before touching anything"
    assert "holds" in done.stderr and "skipping this upgrade" in done.stderr, done.stderr


def test_a_momentary_probe_of_the_deploy_lock_does_not_skip_the_night(machine: Path) -> None:
    # idle-stop probes the lock every minute; its timer and the upgrade's can fire together.
    run_dir = Path(_env(machine)["DEVSERVER_RUN_DIR"])
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / "deploy.lock"
    lock.touch()
    with subprocess.Popen(["flock", "--shared", str(lock), "sleep", "0.5"]) as probe:
        # Until the probe holds it.
        while (
            probe.poll() is None
            and subprocess.run(["flock", "-n", str(lock), "true"]).returncode == 0
        ):
            pass
        assert probe.poll() is None, "the probe must still hold the lock when guard runs"
        done = invoke("guard", machine)
        probe.wait()
    assert done.returncode == 0, done.stderr


def test_guard_records_the_running_generation_when_no_deployment_runs(machine: Path) -> None:
    done = invoke("guard", machine)

    assert done.returncode == 0, done.stderr
    recorded = Path(_env(machine)["DEVSERVER_RUN_DIR"]) / "upgrade-previous-generation"
    assert recorded.read_text().strip() == "system-1-link"


def test_new_system_that_passes_the_login_check_is_kept(machine: Path) -> None:
    invoke("guard", machine)
    _upgrade_switches(machine)

    done = invoke("verify", machine, "true")

    assert done.returncode == 0, done.stderr
    assert _calls(machine) == [], "no rollback after a passing check"


def test_new_system_that_fails_the_login_check_is_rolled_back_in_its_own_unit(
    machine: Path,
) -> None:
    invoke("guard", machine)
    _upgrade_switches(machine)

    done = invoke("verify", machine, "false")

    assert done.returncode == 1, "the unit must fail, so ExecStopPost puts the lock back"
    profile = Path(_env(machine)["DEVSERVER_SYSTEM_PROFILE"])
    assert str(profile.readlink()) == "system-1-link"
    calls = _calls(machine)
    assert calls[0] == f"nix-env --profile {profile} --switch-generation 1", calls
    assert calls[1].startswith("systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER"), calls
    assert "--unit=nixos-rebuild-switch-to-configuration" in calls[1], calls
    assert calls[2] == "gen1/switch-to-configuration switch", calls
    assert "rolled back to system-1-link" in done.stderr


def test_failed_login_check_without_a_new_generation_fails_without_a_rollback(
    machine: Path,
) -> None:
    invoke("guard", machine)

    done = invoke("verify", machine, "false")

    assert done.returncode == 1
    assert _calls(machine) == []
    assert "no other generation to go back to" in done.stderr


def test_a_switch_that_failed_after_activating_is_rolled_back_by_exec_stop_post(
    machine: Path,
) -> None:
    # ExecStartPost (verify) never runs after a failed ExecStart; ExecStopPost does, with
    # SERVICE_RESULT=exit-code (systemd.service(5)). The profile moved to generation 2.
    lock = machine / "flake.lock"
    lock.write_text(OLD)
    run("guard", machine)
    run("save", machine)
    lock.write_text(NEW)
    _upgrade_switches(machine)

    done = invoke("restore", machine, result="exit-code")

    assert done.returncode == 0, done.stderr
    profile = Path(_env(machine)["DEVSERVER_SYSTEM_PROFILE"])
    assert str(profile.readlink()) == "system-1-link", "the unverified generation is not kept"
    assert "gen1/switch-to-configuration switch" in _calls(machine)
    assert lock.read_text() == OLD, "the lock describes the generation that runs again"
    assert "activating system-1-link again" in done.stderr


def test_a_failed_rollback_keeps_the_lock_the_running_system_was_built_from(
    machine: Path,
) -> None:
    lock = machine / "flake.lock"
    lock.write_text(OLD)
    run("guard", machine)
    run("save", machine)
    lock.write_text(NEW)
    _upgrade_switches(machine)
    (Path(_env(machine)["PATH"].split(":")[0]) / "nix-env").write_text("#!/bin/bash\nexit 1\n")

    done = invoke("restore", machine, result="exit-code")

    assert done.returncode == 1
    assert lock.read_text() == NEW, "lock and system must agree: the new system still runs"
    assert "rolling back to system-1-link FAILED" in done.stderr
    assert not (machine / "flake.lock.pre-upgrade").exists()


def test_a_rollback_whose_activation_reports_failed_units_still_restores_the_lock(
    machine: Path,
) -> None:
    # switch-to-configuration exits 4 when a unit failed, but the generation is active and the
    # boot default (nixpkgs switch-to-configuration-ng; nixos/tests/switch-test.nix "failing units").
    lock = machine / "flake.lock"
    lock.write_text(OLD)
    run("guard", machine)
    run("save", machine)
    lock.write_text(NEW)
    _upgrade_switches(machine)
    stc = Path(_env(machine)["DEVSERVER_SYSTEM_PROFILE"]).parent / "system-gen1" / "bin"
    (stc / "switch-to-configuration").write_text("#!/bin/bash\nexit 4\n")

    done = invoke("restore", machine, result="exit-code")

    profile = Path(_env(machine)["DEVSERVER_SYSTEM_PROFILE"])
    assert str(profile.readlink()) == "system-1-link"
    assert lock.read_text() == OLD, "lock and system agree: system-1 was built from the old lock"
    assert not (machine / "flake.lock.pre-upgrade").exists()
    assert done.returncode == 1
    assert "activation exited 4" in done.stderr, done.stderr
    assert "FAILED" not in done.stderr


def test_a_refused_upgrade_never_touches_a_lock_a_deployment_is_installing(machine: Path) -> None:
    # A stale copy from an interrupted earlier upgrade lies beside the lock.
    lock = machine / "flake.lock"
    (machine / "flake.lock.pre-upgrade").write_text('{"note": "stale, weeks old"}\n')
    run_dir = Path(_env(machine)["DEVSERVER_RUN_DIR"])
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "deploy.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert invoke("guard", machine).returncode == 1
        lock.write_text(NEW)  # apply-flake.sh installs the verified lock meanwhile
        done = invoke("restore", machine, result="exit-code")

    assert done.returncode == 0, done.stderr
    assert lock.read_text() == NEW, "the deployment's lock must survive the refused upgrade"
    assert "did not get past its guard" in done.stdout
