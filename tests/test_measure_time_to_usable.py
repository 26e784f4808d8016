"""scripts/measure_time_to_usable.py: what can be checked without AWS (the real run is the user's)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.measure_time_to_usable import port_open, summary

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "measure_time_to_usable.py"


def test_it_refuses_to_run_without_agreeing_to_a_rebuild() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "alice"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "pass --rebuild: the measurement launches a new machine" in result.stderr


def test_marks_are_seconds_after_ec2s_launch_time_and_unseen_ones_stay_unknown() -> None:
    phases = {"waitForSsh": 30.0, "realise": 12.5}
    result = summary(1000.0, {"sshdAnswers": 1031.24, "loginWorks": None}, phases)
    assert result == {"afterLaunch": {"sshdAnswers": 31.2, "loginWorks": None}, "phases": phases}


@pytest.fixture
def sshd_banner() -> Iterator[int]:
    """A loopback listener that greets like sshd (RFC 4253 section 4.2: `SSH-2.0-...`)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield port
    server.close()


def test_port_22_counts_as_open_only_when_sshd_greets(sshd_banner: int) -> None:
    assert port_open("127.0.0.1", sshd_banner)
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert not port_open("127.0.0.1", port)
