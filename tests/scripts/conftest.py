"""Fixtures for the scripts that run on the dev server: a real moto AWS server on loopback, and
one that enforces IAM behind an instance-metadata stub handing out a role without secret access."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.scripts.aws_support import (
    FAKE_TOKEN,
    DenyingAws,
    ImdsHandler,
    MotoServer,
    clean_aws_env,
    loopback_request,
    start_moto,
    stop,
)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto on a free loopback port; it also serves IMDSv2 and instance-role credentials."""
    proc, url = start_moto()
    try:
        yield MotoServer(url)
    finally:
        stop(proc)


@pytest.fixture
def aws_env(tmp_path: Path, moto_server: MotoServer) -> dict[str, str]:
    return clean_aws_env(tmp_path / "home", moto_server.url, moto_server.url)


@pytest.fixture(scope="module")
def denying_aws() -> Iterator[DenyingAws]:
    # moto's own IMDS hands out fixed keys that IAM enforcement cannot resolve to a role, so this
    # stub serves real STS credentials of a role whose policy does not allow GetSecretValue.
    proc, url = start_moto()
    server = None
    try:
        moto = MotoServer(url)
        iam = moto.client("iam")
        role = iam.create_role(
            RoleName="devserver-instance-role",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ec2.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]
        iam.put_role_policy(
            RoleName="devserver-instance-role",
            PolicyName="not-secrets",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}],
                }
            ),
        )
        secret_arn = moto.create_secret(FAKE_TOKEN)
        creds = moto.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="i-devserver")[
            "Credentials"
        ]
        ImdsHandler.credentials = json.dumps(
            {
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": creds["AccessKeyId"],
                "SecretAccessKey": creds["SecretAccessKey"],
                "Token": creds["SessionToken"],
                "Expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        # From now on every request is authenticated and checked against IAM policies.
        assert loopback_request("POST", f"{url}/moto-api/reset-auth", b"0") == 200
        server = ThreadingHTTPServer(("127.0.0.1", 0), ImdsHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield DenyingAws(moto, f"http://127.0.0.1:{server.server_address[1]}", secret_arn)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        stop(proc)
