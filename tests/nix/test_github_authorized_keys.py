"""nix/scripts/github-authorized-keys.sh (sshd AuthorizedKeysCommand) against a fake GitHub.

The fake serves https://github.com/<login>.keys (one key per line) and the REST API's
`GET /users/{username}` (a user object whose top-level `id` is the account's numeric id; docs.github.com
"REST API endpoints for users", "Get a user"), on loopback.
"""

import json
import os
import ssl
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
GITHUB_ID = 583231


@dataclass
class FakeGitHub:
    """Answers GET /<user>.keys with a configurable status, body and delay; records requests."""

    status: int = 200
    body: str = KEYS
    delay: float = 0.0
    # GET /users/octocat: the account's numeric id, or the status when not 200.
    user_id: int = GITHUB_ID
    api_status: int = 200
    requests: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.requests.append(self.path)
            time.sleep(fake.delay)
            status, payload = fake.status, fake.body.encode()
            if self.path.startswith("/users/"):
                login = self.path.removeprefix("/users/")
                status = fake.api_status
                payload = json.dumps({"login": login, "id": fake.user_id, "type": "User"}).encode()
            self.send_response(status)
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
    requested: str,
    github: FakeGitHub,
    cache: Path,
    timeout: str = "2",
    *pinned_id: str,
    fresh: str = "0",
    **env: str,
) -> subprocess.CompletedProcess[str]:
    # fresh=0: every call asks GitHub (the freshness rule has its own tests below).
    result = subprocess.run(
        ["bash", str(SCRIPT), requested, "alice", "octocat", str(cache), timeout, *pinned_id],
        env={
            "PATH": os.environ["PATH"],
            "DEVSERVER_GITHUB_URL": github.url,
            "DEVSERVER_GITHUB_API_URL": github.url,
            "DEVSERVER_KEYS_FRESH_SECONDS": fresh,
            **env,
        },
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


# VS Code Remote-SSH's default remote.SSH.connectTimeout: the whole login must fit in it.
VSCODE_CONNECT_TIMEOUT = 15


def test_a_fresh_cache_answers_at_once_without_asking_github(
    github: FakeGitHub, tmp_path: Path
) -> None:
    keys_for("alice", github, tmp_path, fresh="60")
    github.delay = 30  # a hanging GitHub must not even be asked
    for _ in range(3):  # sshd asks once per offered key, twice for the one that signs
        assert keys_for("alice", github, tmp_path, "20", fresh="60").stdout == KEYS
    assert github.requests == ["/octocat.keys"], "a fresh cache needs no request"


def test_a_stale_cache_is_refreshed_with_a_short_timeout_once_per_login(
    github: FakeGitHub, tmp_path: Path
) -> None:
    keys_for("alice", github, tmp_path)
    stale = time.time() - 3600
    os.utime(tmp_path / "octocat.keys", (stale, stale))
    github.delay = 30
    asked_before = len(github.requests)
    started = time.monotonic()
    # One login offering two keys: the query for each, then the signed attempt (20 s timeout each).
    for _ in range(3):
        result = keys_for("alice", github, tmp_path, "20", fresh="60")
        assert result.stdout == KEYS, "a slow GitHub must not lock the user out"
    # A figure, not a pass/fail: what bounds the login is how often it waits on GitHub.
    print(f"three keys-command runs against a hanging GitHub: {time.monotonic() - started:.1f} s")
    waits = len(github.requests) - asked_before
    assert waits == 1, (
        f"the login waited on a hanging GitHub {waits} times (up to 20 s each); VS Code's "
        f"{VSCODE_CONNECT_TIMEOUT} s connect timeout allows one short refresh, then the cache"
    )


def test_temporary_files_live_in_the_cache_directory_not_in_tmp(
    github: FakeGitHub, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    # A $TMPDIR the script cannot use: nothing may be written outside the cache directory.
    result = keys_for("alice", github, cache, TMPDIR=str(tmp_path / "no-such-tmp"))
    assert result.stdout == KEYS
    assert sorted(p.name for p in cache.iterdir()) == ["octocat.keys"], "no temporary file left"


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (made here, never committed)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ),
            *("-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_an_https_github_never_follows_a_redirect_to_plain_http(
    github: FakeGitHub, tls: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = tls
    # The plain-HTTP fake serves someone else's key: what a downgrade on the path would hand out.
    github.body = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyOfAnAttackerOnly00000000000000000\n"

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"{github.url}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = subprocess.run(
            ["bash", str(SCRIPT), "alice", "alice", "octocat", str(tmp_path), "2"],
            env={
                "PATH": os.environ["PATH"],
                "DEVSERVER_GITHUB_URL": f"https://127.0.0.1:{server.server_address[1]}",
                "CURL_CA_BUNDLE": str(cert),
            },
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert "Attacker" not in result.stdout, "keys fetched over plain HTTP were offered"
    assert github.requests == [], "the redirect to http:// must not be followed"


def test_a_login_that_now_belongs_to_another_github_id_gets_no_keys(
    github: FakeGitHub, tmp_path: Path
) -> None:
    assert keys_for("alice", github, tmp_path, "2", str(GITHUB_ID)).stdout == KEYS
    # octocat renamed their account; someone else registered the freed login.
    github.user_id = 99999999
    github.body = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyOfTheNewOwnerOnly000000000000000\n"
    result = keys_for("alice", github, tmp_path, "2", str(GITHUB_ID))
    assert result.stdout == ""
    assert f"now belongs to user id 99999999, not the pinned {GITHUB_ID}" in result.stderr
    assert not (tmp_path / "octocat.keys").exists(), "the old owner's cached keys are forgotten"
    github.api_status = 503
    assert keys_for("alice", github, tmp_path, "2", str(GITHUB_ID)).stdout == "", (
        "an outage must not bring the keys back"
    )


def test_a_pinned_id_keeps_the_verified_cache_through_an_api_outage(
    github: FakeGitHub, tmp_path: Path
) -> None:
    assert keys_for("alice", github, tmp_path, "2", str(GITHUB_ID)).stdout == KEYS
    assert github.requests == ["/users/octocat", "/octocat.keys"]
    github.api_status = 403  # the unauthenticated API's rate limit
    result = keys_for("alice", github, tmp_path, "2", str(GITHUB_ID))
    assert result.stdout == KEYS
    assert "checking user id" in result.stderr and "using cached keys" in result.stderr


def test_keys_cached_before_the_id_was_pinned_are_not_trusted_until_github_confirms_it(
    github: FakeGitHub, tmp_path: Path
) -> None:
    keys_for("alice", github, tmp_path)  # cached while the login was not pinned
    github.api_status = 503
    result = keys_for("alice", github, tmp_path, "2", str(GITHUB_ID))
    assert result.stdout == ""
    assert f"not verified as GitHub user id {GITHUB_ID}" in result.stderr


@pytest.mark.parametrize("pinned", [(), (str(GITHUB_ID),)], ids=["keys", "pinned-id"])
def test_a_full_disk_still_lets_the_developer_in(
    github: FakeGitHub, tmp_path: Path, pinned: tuple[str, ...]
) -> None:
    """`ulimit -f 0` makes every write to a regular file fail (SIGXFSZ, bash(1) `ulimit -f`), as a
    full root volume would: the keys are still printed and no temporary file is left behind."""
    result = subprocess.run(
        ["bash", "-c", 'ulimit -f 0; exec bash "$@"', "keys", str(SCRIPT), "alice", "alice",
         "octocat", str(tmp_path), "2", *pinned],
        env={"PATH": os.environ["PATH"], "DEVSERVER_GITHUB_URL": github.url,
             "DEVSERVER_GITHUB_API_URL": github.url, "DEVSERVER_KEYS_FRESH_SECONDS": "0"},
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, KEYS), result.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "temp files left"
