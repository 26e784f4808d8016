"""nix/scripts/idle-stop.sh run for real with a fake loadavg, session counters and poweroff."""

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "nix" / "scripts" / "idle-stop.sh"
MINUTES = 30
T0 = 1_800_000_000


@dataclass
class Machine:
    """A fake machine: what the script reads and the file its poweroff command writes."""

    tmp: Path

    @property
    def loadavg(self) -> Path:
        return self.tmp / "loadavg"

    @property
    def sessions(self) -> Path:
        return self.tmp / "sessions"

    @property
    def ssm_sessions(self) -> Path:
        return self.tmp / "ssm-sessions"

    @property
    def state(self) -> Path:
        return self.tmp / "run" / "idle-since"

    @property
    def powered_off(self) -> Path:
        return self.tmp / "powered-off"

    def set(self, *, load: str, ssh_sessions: int, ssm_sessions: int = 0) -> None:
        self.loadavg.write_text(f"{load} 0.10 0.05 1/123 4567\n")
        lines = "".join(
            f"ESTAB 0 0 10.0.0.5:22 198.51.100.{i}:5{i}000\n" for i in range(ssh_sessions)
        )
        self.sessions.write_text(lines)
        # pgrep -f prints one pid per matching ssm-session-worker process.
        self.ssm_sessions.write_text("".join(f"{4000 + i}\n" for i in range(ssm_sessions)))

    def tick(self, now: int, **env: str) -> subprocess.CompletedProcess[str]:
        full_env = {
            "PATH": os.environ["PATH"],
            "IDLE_STOP_MINUTES": str(MINUTES),
            "IDLE_STOP_LOADAVG_FILE": str(self.loadavg),
            "IDLE_STOP_SESSIONS_CMD": f"cat {self.sessions}",
            "IDLE_STOP_SSM_SESSIONS_CMD": f"cat {self.ssm_sessions}",
            "IDLE_STOP_POWEROFF_CMD": f"touch {self.powered_off}",
            "IDLE_STOP_STATE_FILE": str(self.state),
            "IDLE_STOP_NOW": str(now),
            **env,
        }
        result = subprocess.run(
            ["bash", str(SCRIPT)], env=full_env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        return result


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def test_busy_cpu_keeps_the_machine_up_however_long(machine: Machine) -> None:
    machine.set(load="3.50", ssh_sessions=0)
    for minute in range(0, 3 * MINUTES, 5):
        machine.tick(T0 + minute * 60)
    assert not machine.powered_off.exists(), "a busy CPU must never trigger poweroff"
    assert not machine.state.exists(), "activity must clear the idle-since timestamp"


def test_open_ssh_session_keeps_the_machine_up(machine: Machine) -> None:
    machine.set(load="0.00", ssh_sessions=1)
    for minute in range(0, 3 * MINUTES, 5):
        machine.tick(T0 + minute * 60)
    assert not machine.powered_off.exists(), (
        "an open SSH (or VS Code) session must keep the machine up"
    )


def test_open_session_manager_session_keeps_the_machine_up(machine: Machine) -> None:
    # Break-glass through SSM Session Manager has no TCP connection on port 22.
    machine.set(load="0.00", ssh_sessions=0, ssm_sessions=1)
    for minute in range(0, 3 * MINUTES, 5):
        machine.tick(T0 + minute * 60)
    assert not machine.powered_off.exists(), "a Session Manager shell must keep the machine up"
    assert not machine.state.exists(), "a Session Manager session must clear idle-since"


def test_a_real_ssm_session_worker_process_is_counted_by_the_default_command(
    machine: Machine, tmp_path: Path
) -> None:
    # The agent starts `<store path>/bin/ssm-session-worker <session id> <instance id>`.
    if shutil.which("pgrep") is None:
        pytest.skip("pgrep (procps) is not installed")
    worker = tmp_path / "bin" / "ssm-session-worker"
    worker.parent.mkdir()
    shutil.copy("/bin/sleep", worker)
    machine.set(load="0.00", ssh_sessions=0)
    # An empty IDLE_STOP_SSM_SESSIONS_CMD selects the script's default (pgrep) command.
    no_worker = machine.tick(T0, IDLE_STOP_SSM_SESSIONS_CMD="")
    assert machine.state.exists(), f"no worker, no session: {no_worker.stdout}"
    process = subprocess.Popen([str(worker), "300"])
    try:
        time.sleep(0.2)
        machine.tick(T0 + MINUTES * 60, IDLE_STOP_SSM_SESSIONS_CMD="")
    finally:
        process.kill()
        process.wait()
    assert not machine.powered_off.exists(), "a running ssm-session-worker must keep the machine up"
    assert not machine.state.exists(), "a running ssm-session-worker must clear idle-since"


def test_unknown_session_manager_count_counts_as_busy(machine: Machine) -> None:
    machine.set(load="0.00", ssh_sessions=0)
    result = machine.tick(T0 + MINUTES * 60, IDLE_STOP_SSM_SESSIONS_CMD="exit 3")
    assert "cannot count Session Manager sessions" in result.stdout
    assert not machine.powered_off.exists()
    assert not machine.state.exists()


def test_idle_for_less_than_the_limit_stays_up(machine: Machine) -> None:
    machine.set(load="0.05", ssh_sessions=0)
    machine.tick(T0)
    assert machine.state.read_text().strip() == str(T0), "first idle tick records idle-since"
    machine.tick(T0 + (MINUTES - 1) * 60)
    assert not machine.powered_off.exists(), "idle for N-1 minutes must not power off"


def test_idle_for_the_limit_powers_off(machine: Machine) -> None:
    machine.set(load="0.05", ssh_sessions=0)
    machine.tick(T0)
    result = machine.tick(T0 + MINUTES * 60)
    assert machine.powered_off.exists(), "idle for N minutes must call the poweroff command"
    assert "powering off" in result.stdout


def test_returning_session_resets_the_idle_clock(machine: Machine) -> None:
    machine.set(load="0.05", ssh_sessions=0)
    machine.tick(T0)
    machine.set(load="0.05", ssh_sessions=2)
    machine.tick(T0 + 20 * 60)
    assert not machine.state.exists(), "a session must reset the idle clock"
    machine.set(load="0.05", ssh_sessions=0)
    machine.tick(T0 + 25 * 60)
    machine.tick(T0 + (25 + MINUTES - 1) * 60)
    assert not machine.powered_off.exists(), "the clock restarts when the session ends"
    machine.tick(T0 + (25 + MINUTES) * 60)
    assert machine.powered_off.exists(), "N idle minutes after the session ended, the machine stops"


def test_unknown_session_count_counts_as_busy(machine: Machine) -> None:
    machine.set(load="0.00", ssh_sessions=0)
    machine.tick(T0)
    machine.tick(T0 + 2 * MINUTES * 60, IDLE_STOP_SESSIONS_CMD="exit 1")
    assert not machine.powered_off.exists(), "when sessions cannot be counted, never power off"


def test_load_threshold_is_configurable(machine: Machine) -> None:
    machine.set(load="0.80", ssh_sessions=0)
    machine.tick(T0, IDLE_STOP_LOAD_THRESHOLD="1.0")
    machine.tick(T0 + MINUTES * 60, IDLE_STOP_LOAD_THRESHOLD="1.0")
    assert machine.powered_off.exists(), "load 0.80 is idle under a 1.0 threshold"


def test_zero_or_missing_minutes_is_refused(machine: Machine) -> None:
    machine.set(load="0.00", ssh_sessions=0)
    for minutes in ("0", "", "ten"):
        result = subprocess.run(
            ["bash", str(SCRIPT)],
            env={
                "PATH": os.environ["PATH"],
                "IDLE_STOP_MINUTES": minutes,
                "IDLE_STOP_POWEROFF_CMD": f"touch {machine.powered_off}",
            },
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2, f"IDLE_STOP_MINUTES={minutes!r} must be refused"
        assert "IDLE_STOP_MINUTES" in result.stderr
    assert not machine.powered_off.exists()


@pytest.mark.parametrize("state", ["activating", "deactivating"])
def test_a_running_nightly_upgrade_counts_as_activity(machine: Machine, state: str) -> None:
    machine.set(load="0.01", ssh_sessions=0)
    upgrade = {"IDLE_STOP_UPGRADE_STATE_CMD": f"echo {state}"}
    for minute in range(0, 3 * MINUTES, 5):
        machine.tick(T0 + minute * 60, **upgrade)
    assert not machine.powered_off.exists(), "a poweroff mid-switch leaves a half-switched system"


def test_a_deployment_holding_the_deploy_lock_counts_as_activity(machine: Machine) -> None:
    import fcntl

    machine.set(load="0.01", ssh_sessions=0)
    lock = machine.tmp / "deploy.lock"
    env = {"IDLE_STOP_DEPLOY_LOCK": str(lock), "IDLE_STOP_UPGRADE_STATE_CMD": "echo inactive"}
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        for minute in range(0, 3 * MINUTES, 5):
            out = machine.tick(T0 + minute * 60, **env)
    assert "a deployment holds" in out.stdout
    assert not machine.powered_off.exists()
    # Released: the idle clock starts again from zero and runs out.
    machine.tick(T0 + 3 * MINUTES * 60, **env)
    machine.tick(T0 + 4 * MINUTES * 60 + 60, **env)
    assert machine.powered_off.exists()
