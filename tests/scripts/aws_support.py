"""Helpers for testing the on-machine scripts against moto: server start/stop, a clean AWS CLI
environment that can only use instance metadata, and an IMDSv2 stub."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
FETCH_SCRIPT = REPO / "nix" / "scripts" / "fetch-github-token.sh"
APPLY_SCRIPT = REPO / "nix" / "scripts" / "apply-flake.sh"
REGION = "eu-west-1"
# Obviously fake; never shaped like a real GitHub token.
FAKE_TOKEN = "fake-github-token-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def aws_cli_dir() -> Path | None:
    """The directory holding the `aws` CLI: next to this Python (the venv) or on PATH."""
    beside_python = Path(sys.executable).parent / "aws"
    if beside_python.exists():
        return beside_python.parent
    found = shutil.which("aws")
    return Path(found).parent if found else None


@dataclass(frozen=True)
class MotoServer:
    url: str

    def client(self, service: str):  # type: ignore[no-untyped-def]
        # The operator's side (secrets, roles) uses explicit dummy keys; the scripts never do.
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="operator-test-key",
            aws_secret_access_key="operator-test-secret",
        )

    def create_secret(self, value: str) -> str:
        """Stores a secret under a fresh name and returns its ARN."""
        name = f"devserver-github-token-{uuid.uuid4().hex[:8]}"
        arn: str = self.client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
        return arn


def loopback_request(method: str, url: str, body: bytes = b"") -> int:
    """One plain HTTP request to a loopback server; returns the status."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        conn.request(method, parts.path, body=body, headers={"Content-Type": "text/plain"})
        return conn.getresponse().status
    finally:
        conn.close()


def start_moto(env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            # The IMDSv2 token endpoint proves both the server and its metadata routes are up.
            if loopback_request("PUT", f"{url}/latest/api/token") == 200:
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto server on {url} did not start (exit {proc.poll()})")
            time.sleep(0.1)
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def clean_aws_env(home: Path, metadata_url: str, secrets_url: str) -> dict[str, str]:
    """An environment where the AWS CLI can only get credentials from instance metadata."""
    cli_dir = aws_cli_dir()
    if cli_dir is None:
        pytest.skip("the AWS CLI (`aws`) is not installed")
    home.mkdir(parents=True, exist_ok=True)
    empty = home / "empty-aws-config"
    empty.touch()
    return {
        "PATH": f"{cli_dir}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        # Empty files so no profile or key on this machine leaks in; no AWS_ACCESS_KEY_ID at all.
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": metadata_url.rstrip("/") + "/",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": secrets_url,
    }


class ImdsHandler(BaseHTTPRequestHandler):
    """IMDSv2 as the CLI uses it: PUT a session token, list the role, read its credentials."""

    role = "devserver-instance-role"
    credentials = "{}"

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token":
            self._send(404, "")
            return
        self._send(200, "imds-session-token-for-tests")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "imds-session-token-for-tests":
            self._send(401, "")  # IMDSv2 only, like our instances (http_tokens = required)
            return
        prefix = "/latest/meta-data/iam/security-credentials/"
        routes = {prefix: self.role, prefix + self.role: self.credentials}
        body = routes.get(self.path)
        self._send(200 if body is not None else 404, body or "")

    def _send(self, status: int, body: str) -> None:
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass(frozen=True)
class DenyingAws:
    """A moto server enforcing IAM, and an IMDS serving a role that may not read secrets."""

    moto: MotoServer
    metadata_url: str
    secret_arn: str
