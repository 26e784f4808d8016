"""fetch-github-token.sh against a real AWS API (moto), with credentials from instance metadata."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.scripts.aws_support import (
    FAKE_TOKEN,
    FETCH_SCRIPT,
    REGION,
    DenyingAws,
    MotoServer,
    clean_aws_env,
    free_port,
)

EXPECTED_LINE = f"access-tokens = github.com={FAKE_TOKEN}\n"


def fetch(
    env: dict[str, str], secret_id: str, output: Path, attempts: int = 2
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *("bash", str(FETCH_SCRIPT), "--secret-id", secret_id),
            *("--region", REGION, "--output", str(output)),
        ],
        env={
            **env,
            "DEVSERVER_TOKEN_ATTEMPTS": str(attempts),
            "DEVSERVER_TOKEN_BACKOFF_SECONDS": "0",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_token_file_is_one_nix_line_readable_only_by_root(
    moto_server: MotoServer, aws_env: dict[str, str], tmp_path: Path
) -> None:
    arn = moto_server.create_secret(FAKE_TOKEN)
    output = tmp_path / "run" / "devserver" / "nix-access-tokens.conf"

    result = fetch(aws_env, arn, output)

    assert result.returncode == 0, result.stderr
    assert output.read_text() == EXPECTED_LINE
    assert stat.S_IMODE(output.stat().st_mode) == 0o400, oct(output.stat().st_mode)
    # The script runs as root on the machine; here it must at least belong to whoever ran it.
    assert output.stat().st_uid == os.geteuid()
    assert stat.S_IMODE(output.parent.stat().st_mode) == 0o755, "non-root nix must stat the include"
    assert sorted(p.name for p in output.parent.iterdir()) == [output.name], "temp file left"
    assert FAKE_TOKEN not in result.stdout + result.stderr


def test_token_never_reaches_a_child_process_argv_or_env(
    moto_server: MotoServer, aws_env: dict[str, str], tmp_path: Path
) -> None:
    # Shims for every command the script may run after reading the token record argv and env.
    shims = tmp_path / "shims"
    shims.mkdir()
    record = tmp_path / "children.log"
    for name in ["aws", "chmod", "mv", "mktemp", "rm", "mkdir", "dirname", "sleep"]:
        real = subprocess.run(
            ["bash", "-c", f"command -v {name}"],
            env=aws_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        shim = shims / name
        shim.write_text(
            f'#!/bin/bash\n{{ printf "%s\\n" "{name} $*"; env; }} >> "{record}"\n'
            f'exec "{real}" "$@"\n'
        )
        shim.chmod(0o755)
    env = {**aws_env, "PATH": f"{shims}:{aws_env['PATH']}"}
    output = tmp_path / "out" / "tokens.conf"

    result = fetch(env, moto_server.create_secret(FAKE_TOKEN), output)

    assert result.returncode == 0, result.stderr
    assert output.read_text() == EXPECTED_LINE
    children = record.read_text()
    assert "mv " in children and "aws secretsmanager" in children, children
    assert FAKE_TOKEN not in children


def test_missing_secret_fails_naming_the_secret_and_error_class(
    moto_server: MotoServer, aws_env: dict[str, str], tmp_path: Path
) -> None:
    missing = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:devserver-absent-AbCdEf"
    output = tmp_path / "run" / "tokens.conf"

    result = fetch(aws_env, missing, output)

    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert missing in last and "ResourceNotFoundException" in last, result.stderr
    assert list(output.parent.iterdir()) == [], "no token file and no temp file on failure"


def test_role_without_permission_is_denied_with_the_aws_error_class(
    denying_aws: DenyingAws, tmp_path: Path
) -> None:
    env = clean_aws_env(tmp_path / "home", denying_aws.metadata_url, denying_aws.moto.url)
    output = tmp_path / "run" / "tokens.conf"

    result = fetch(env, denying_aws.secret_arn, output)

    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert denying_aws.secret_arn in last and "AccessDenied" in last, result.stderr
    assert list(output.parent.iterdir()) == []


def test_unreachable_metadata_fails_after_the_bounded_attempts_leaving_no_file(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = clean_aws_env(tmp_path / "home", closed, moto_server.url)
    arn = moto_server.create_secret(FAKE_TOKEN)
    output = tmp_path / "run" / "tokens.conf"

    result = fetch(env, arn, output, attempts=3)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    attempts = [line for line in lines if "attempt " in line and "/3 " in line]
    assert len(attempts) == 3 and len(lines) == 4, f"3 attempts + 1 error:\n{result.stderr}"
    assert arn in lines[-1] and "NoCredentialsError" in lines[-1]
    assert list(output.parent.iterdir()) == []


def test_failure_keeps_the_token_file_of_an_earlier_run(
    moto_server: MotoServer, aws_env: dict[str, str], tmp_path: Path
) -> None:
    output = tmp_path / "run" / "tokens.conf"
    assert fetch(aws_env, moto_server.create_secret(FAKE_TOKEN), output).returncode == 0
    before = output.stat()

    result = fetch(aws_env, "devserver-deleted-secret", output)

    assert result.returncode != 0
    assert output.read_text() == EXPECTED_LINE
    assert output.stat().st_ino == before.st_ino, "the earlier file must not be replaced"
    assert sorted(p.name for p in output.parent.iterdir()) == [output.name]


@pytest.mark.parametrize(
    "secret",
    [
        f"{FAKE_TOKEN} extra",
        f"{FAKE_TOKEN}\n",
        f"{FAKE_TOKEN}\nsecond-line",
        f"\t{FAKE_TOKEN}",
        f"{FAKE_TOKEN}#comment",
        "   ",
    ],
    ids=["space", "trailing-newline", "two-lines", "tab", "hash", "blank"],
)
def test_malformed_secret_is_rejected_without_printing_it(
    moto_server: MotoServer, aws_env: dict[str, str], tmp_path: Path, secret: str
) -> None:
    arn = moto_server.create_secret(secret)
    output = tmp_path / "run" / "tokens.conf"

    result = fetch(aws_env, arn, output)

    assert result.returncode != 0
    assert arn in result.stderr and "value not shown" in result.stderr, result.stderr
    assert FAKE_TOKEN not in result.stdout + result.stderr
    assert list(output.parent.iterdir()) == []
