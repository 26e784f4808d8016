"""nix/scripts/github-authorized-keys.sh (sshd AuthorizedKeysCommand) against a fake GitHub."""

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "nix" / "scripts" / "github-authorized-keys.sh"
KEYS = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000000000000\n"
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIFakeKeyForTestsOnly\n"
)


@dataclass
class FakeGitHub:
    """Answers GET /<user>.keys with a configurable status, body and delay; records requests."""

    status: int = 200
    body: str = KEYS
    delay: float = 0.0
    requests: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.requests.append(self.path)
            time.sleep(fake.delay)
            payload = fake.body.encode()
            self.send_response(fake.status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def keys_for(
    requested: str, github: FakeGitHub, cache: Path, timeout: str = "2"
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", str(SCRIPT), requested, "alice", "octocat", str(cache), timeout],
        env={"PATH": os.environ["PATH"], "DEVSERVER_GITHUB_URL": github.url},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_keys_are_served_for_the_developer_and_cached(github: FakeGitHub, tmp_path: Path) -> None:
    result = keys_for("alice", github, tmp_path)
    assert result.stdout == KEYS
    assert github.requests == ["/octocat.keys"]
    assert (tmp_path / "octocat.keys").read_text() == KEYS


def test_other_logins_get_no_keys_and_cause_no_request(github: FakeGitHub, tmp_path: Path) -> None:
    for login in ("root", "bob", "alice2"):
        assert keys_for(login, github, tmp_path).stdout == ""
    assert github.requests == [], "only the developer's login may trigger a fetch"


def test_github_outage_falls_back_to_the_cached_keys(github: FakeGitHub, tmp_path: Path) -> None:
    keys_for("alice", github, tmp_path)
    github.status, github.body = 503, "unicorn"
    result = keys_for("alice", github, tmp_path)
    assert result.stdout == KEYS, "a GitHub error must not lock the user out"
    assert "cached" in result.stderr


def test_slow_github_falls_back_to_the_cache_within_the_timeout(
    github: FakeGitHub, tmp_path: Path
) -> None:
    keys_for("alice", github, tmp_path)
    github.delay = 5
    started = time.monotonic()
    result = keys_for("alice", github, tmp_path, timeout="1")
    assert result.stdout == KEYS
    assert time.monotonic() - started < 4, "sshd must not wait for a hanging GitHub"


def test_keys_removed_on_github_are_revoked_here(github: FakeGitHub, tmp_path: Path) -> None:
    keys_for("alice", github, tmp_path)
    github.body = ""
    assert keys_for("alice", github, tmp_path).stdout == ""
    github.status = 503
    assert keys_for("alice", github, tmp_path).stdout == "", (
        "an outage must not bring back revoked keys"
    )


def test_deleted_github_account_loses_access(github: FakeGitHub, tmp_path: Path) -> None:
    keys_for("alice", github, tmp_path)
    github.status, github.body = 404, "Not Found"
    assert keys_for("alice", github, tmp_path).stdout == ""
    assert not (tmp_path / "octocat.keys").exists()


def test_non_key_lines_in_the_answer_are_dropped(github: FakeGitHub, tmp_path: Path) -> None:
    github.body = "<html>captive portal</html>\n" + KEYS + 'command="evil" ssh-rsa AAAA\n'
    assert keys_for("alice", github, tmp_path).stdout == KEYS
