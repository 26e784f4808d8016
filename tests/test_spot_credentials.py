"""The spot-request canceller authenticates as the stack's AWS provider does, against moto.

`pulumi destroy` runs the canceller in the dynamic provider host, which sees the environment but
not the `aws:` stack config; the canceller therefore gets the provider's settings as inputs.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from components.spot_request import SpotRequestCancellerProvider
from tests.test_spot_request import persistent_request

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/devserver-deployer"
CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_DEFAULT_REGION",
)


@pytest.fixture
def no_env_credentials(tmp_path: Path) -> Iterator[Path]:
    """An environment that names no credentials at all (and no instance metadata to ask)."""
    saved = {k: os.environ.pop(k, None) for k in CREDENTIAL_VARS}
    # Point the default files at empty ones, so a developer's ~/.aws cannot leak in.
    os.environ["AWS_CONFIG_FILE"] = str(tmp_path / "none-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "none-credentials")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    yield tmp_path
    for key in (*CREDENTIAL_VARS, "AWS_EC2_METADATA_DISABLED"):
        os.environ.pop(key, None)
    os.environ.update({k: v for k, v in saved.items() if v is not None})


@pytest.fixture
def moto_without_env_credentials(no_env_credentials: Path) -> Iterator[Path]:
    """moto's EC2 and STS in-process (it answers any signed request) and no env credentials."""
    with mock_aws():
        # mock_aws puts fake keys in the environment; the canceller must not rely on those.
        fake_keys = {k: os.environ.pop(k) for k in CREDENTIAL_VARS[:3] if k in os.environ}
        yield no_env_credentials
        os.environ.update(fake_keys)


def _request(session: Any) -> str:
    return persistent_request(session.client("ec2", region_name=REGION))


def _open(session: Any, request_id: str) -> bool:
    described = session.client("ec2", region_name=REGION).describe_spot_instance_requests()
    return any(r["SpotInstanceRequestId"] == request_id for r in described["SpotInstanceRequests"])


def _profile_file(directory: Path) -> Path:
    path = directory / "credentials"
    path.write_text(
        "[devserver-team]\n"
        "aws_access_key_id = fake-akid-profile-01\n"
        "aws_secret_access_key = fake-secret-from-the-profile\n",
        encoding="utf-8",
    )
    return path


def test_the_canceller_uses_the_stacks_aws_profile_and_credentials_file(
    moto_without_env_credentials: Path,
) -> None:
    props = {
        "region": REGION,
        "profile": "devserver-team",
        "sharedCredentialsFile": str(_profile_file(moto_without_env_credentials)),
    }
    session = SpotRequestCancellerProvider.session(props)
    assert session.get_credentials().access_key == "fake-akid-profile-01"
    assert session.region_name == REGION
    request_id = _request(session)
    SpotRequestCancellerProvider().delete(
        request_id, {**props, "spotInstanceRequestId": request_id}
    )
    assert not _open(session, request_id), "the request is cancelled"


def test_the_canceller_assumes_the_stacks_roles_in_order(
    moto_without_env_credentials: Path,
) -> None:
    props = {
        "region": REGION,
        "accessKey": "fake-akid-static-01",
        "secretKey": "fake-static-secret",
        "assumeRoles": [{"roleArn": ROLE, "sessionName": "ci", "externalId": "e-1"}],
    }
    session = SpotRequestCancellerProvider.session(props)
    identity = session.client("sts", region_name=REGION).get_caller_identity()
    assert "assumed-role/devserver-deployer/ci" in identity["Arn"], identity["Arn"]
    assert session.get_credentials().access_key != "fake-akid-static-01"
    request_id = _request(session)
    SpotRequestCancellerProvider().delete(
        request_id, {**props, "spotInstanceRequestId": request_id}
    )
    assert not _open(session, request_id)


def test_without_any_credentials_the_error_says_what_to_set_and_how_to_cancel_by_hand(
    no_env_credentials: Path,
) -> None:
    props = {"region": REGION, "spotInstanceRequestId": "sir-0000fake"}
    with pytest.raises(RuntimeError) as failure:
        SpotRequestCancellerProvider().delete("sir-0000fake", props)
    message = str(failure.value)
    assert "Unable to locate credentials" in message
    for hint in ("aws:profile", "aws:assumeRoles", "AWS_PROFILE"):
        assert hint in message, hint
    assert "aws ec2 cancel-spot-instance-requests --region eu-west-1" in message


def test_an_unknown_profile_is_named_in_the_error(no_env_credentials: Path) -> None:
    props = {"region": REGION, "profile": "nobody", "spotInstanceRequestId": "sir-0000fake"}
    with pytest.raises(RuntimeError, match="nobody"):
        SpotRequestCancellerProvider().delete("sir-0000fake", props)


def test_changing_credentials_settings_updates_and_never_cancels_the_live_request() -> None:
    provider = SpotRequestCancellerProvider()
    olds = {"spotInstanceRequestId": "sir-aaaa", "region": REGION, "profile": "old"}
    diff = provider.diff("sir-aaaa", olds, {**olds, "profile": "new"})
    # A replace would delete the old canceller, cancelling the request the machine runs on.
    assert diff.changes and not diff.replaces
    assert provider.update("sir-aaaa", olds, {**olds, "profile": "new"}).outs == {
        **olds,
        "profile": "new",
    }


def test_boto3_session_is_not_built_from_the_process_default_when_a_profile_is_given(
    moto_without_env_credentials: Path,
) -> None:
    os.environ["AWS_ACCESS_KEY_ID"] = "fake-akid-environment-1"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "fake-env-secret"
    props = {
        "region": REGION,
        "profile": "devserver-team",
        "sharedCredentialsFile": str(_profile_file(moto_without_env_credentials)),
    }
    # boto3's default chain would take the environment keys; the stack's profile wins, as it
    # does for the AWS provider.
    assert boto3.Session().get_credentials().access_key == "fake-akid-environment-1"
    session = SpotRequestCancellerProvider.session(props)
    assert session.get_credentials().access_key == "fake-akid-profile-01"
