"""A lookup AWS refuses is reported as a permission problem naming the action and the policy file,
never as a bad configuration value."""

from collections.abc import Callable, Iterator

import pytest

from tests import program as fake
from tests.program import ProgramRun

Run = Callable[..., ProgramRun]


@pytest.fixture(autouse=True)
def _allow_everything_again() -> Iterator[None]:
    fake.DENIED.clear()
    fake.FAILING.clear()
    yield
    fake.DENIED.clear()
    fake.FAILING.clear()


@pytest.mark.parametrize(
    ("token", "action"),
    [
        ("aws:ec2/getInstances:getInstances", "ec2:DescribeInstances"),
        ("aws:ec2/getInstanceType:getInstanceType", "ec2:DescribeInstanceTypes"),
        ("aws:ec2/getAmi:getAmi", "ec2:DescribeImages"),
        ("aws:ebs/getEbsVolumes:getEbsVolumes", "ec2:DescribeVolumes"),
    ],
)
def test_a_refused_lookup_is_a_permission_problem_naming_the_action_and_the_policy(
    program: Run, token: str, action: str
) -> None:
    fake.DENIED[token] = action
    run = program(raise_errors=False)
    message = str(run.error)
    assert run.error is not None and not run.resources, f"{token}: something was registered"
    assert "permission problem" in message, message
    assert "invalid stack configuration" not in message, message
    assert f"AWS denied {action}" in message, message
    assert "docs/iam/operator-policy.json (statement Ec2ReadAndLookups)" in message, message


def test_refusals_of_every_server_of_a_fleet_are_reported_together(program: Run) -> None:
    fake.DENIED["aws:ec2/getInstances:getInstances"] = "ec2:DescribeInstances"
    servers = [
        {"name": "alice", "user": "alice", "githubUser": "alice-gh"},
        {"name": "bob", "user": "bob", "githubUser": "bob-gh"},
    ]
    run = program({"devserver:servers": servers}, raise_errors=False)
    message = str(run.error)
    assert message.count("AWS denied ec2:DescribeInstances") == 1, "the same refusal once"
    assert not run.resources


@pytest.mark.parametrize(
    "token", ["aws:ec2/getInstances:getInstances", "aws:ebs/getEbsVolumes:getEbsVolumes"]
)
def test_a_failed_lookup_blames_no_configuration_key(program: Run, token: str) -> None:
    fake.FAILING[token] = "RequestLimitExceeded: Request limit exceeded."
    run = program(raise_errors=False)
    message = str(run.error)
    assert run.error is not None and not run.resources, f"{token}: something was registered"
    assert "RequestLimitExceeded" in message and "an AWS lookup failed" in message, message
    for key in ("devserver:rebuild", "devserver:homeVolumeGiB", "devserver:availabilityZone"):
        assert key not in message, message
