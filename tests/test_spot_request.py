"""The spot-request canceller against moto's EC2: cancels for real, survives its trip through state."""

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws
from pulumi.dynamic.dynamic import serialize_provider

import components.spot_request
from components.spot_request import SpotRequestCancellerProvider

REGION = "eu-west-1"


@pytest.fixture
def ec2() -> Iterator[Any]:
    """A moto EC2 in-process, with fake credentials that cannot reach a real account."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def persistent_request(ec2: Any) -> str:
    """A persistent spot request that stops on interruption, as the machine asks for."""
    response = ec2.request_spot_instances(
        InstanceCount=1,
        Type="persistent",
        InstanceInterruptionBehavior="stop",
        LaunchSpecification={"ImageId": "ami-0123456789abcdef0", "InstanceType": "m7i.xlarge"},
    )
    return str(response["SpotInstanceRequests"][0]["SpotInstanceRequestId"])


def _state(ec2: Any, request_id: str) -> str:
    """The request's state; moto forgets cancelled requests, AWS shows them as cancelled."""
    described = ec2.describe_spot_instance_requests()["SpotInstanceRequests"]
    return next(
        (str(r["State"]) for r in described if r["SpotInstanceRequestId"] == request_id),
        "cancelled",
    )


def test_deleting_the_canceller_cancels_the_persistent_request(ec2: Any) -> None:
    request_id = persistent_request(ec2)
    assert _state(ec2, request_id) in ("open", "active")
    SpotRequestCancellerProvider().delete(
        request_id, {"spotInstanceRequestId": request_id, "region": REGION}
    )
    assert _state(ec2, request_id) == "cancelled"


def test_cancelling_a_request_that_is_already_gone_is_not_an_error() -> None:
    # moto raises an internal error here; EC2 answers with this code, so stub exactly that.
    client = boto3.client(
        "ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_client_error(
            "cancel_spot_instance_requests", "InvalidSpotInstanceRequestID.NotFound"
        )
        assert SpotRequestCancellerProvider.cancel("sir-00000000", REGION, client) == "gone"
        stub.add_client_error("cancel_spot_instance_requests", "UnauthorizedOperation")
        with pytest.raises(ClientError, match="UnauthorizedOperation"):
            SpotRequestCancellerProvider.cancel("sir-00000000", REGION, client)


def test_a_new_spot_request_replaces_the_canceller_so_the_old_one_is_cancelled() -> None:
    provider = SpotRequestCancellerProvider()
    olds = {"spotInstanceRequestId": "sir-aaaa", "region": REGION}
    same = provider.diff("sir-aaaa", olds, dict(olds))
    assert not same.changes and not same.replaces
    moved = provider.diff("sir-aaaa", olds, {**olds, "spotInstanceRequestId": "sir-bbbb"})
    assert moved.changes and moved.replaces == ["spotInstanceRequestId"]


def _serialized_as_the_resource_does() -> str:
    """Capture what SpotRequestCanceller hands to Pulumi for the state."""
    captured: list[str] = []

    def fake_init(self: Any, provider: Any, name: str, props: Any, opts: Any = None) -> None:
        captured.append(serialize_provider(provider))

    original = components.spot_request.pulumi.dynamic.Resource.__init__
    components.spot_request.pulumi.dynamic.Resource.__init__ = fake_init  # type: ignore[method-assign]
    try:
        components.spot_request.SpotRequestCanceller("test", "sir-aaaa", REGION)
    finally:
        components.spot_request.pulumi.dynamic.Resource.__init__ = original  # type: ignore[method-assign]
    assert SpotRequestCancellerProvider.__module__ == "components.spot_request", "restored"
    return captured[0]


def test_provider_survives_serialization_into_state_without_this_repo_on_the_path(
    tmp_path: Any,
) -> None:
    # `pulumi destroy` runs the provider from state in a separate host process: it must not
    # need `components` to be importable there.
    blob = _serialized_as_the_resource_does()
    code = (
        "import base64, sys, dill;"
        f"p = dill.loads(base64.b64decode({blob!r}));"
        "r = p.diff('x', {'spotInstanceRequestId': 'a', 'region': 'r'}, {'spotInstanceRequestId': 'b', 'region': 'r'});"
        "print(type(p).__name__, r.replaces)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["SpotRequestCancellerProvider", "['spotInstanceRequestId']"]
    assert base64.b64decode(blob)
