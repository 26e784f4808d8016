"""The home-snapshot policy under Pulumi's mocks: what it selects, how long it keeps, who runs it."""

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pulumi.runtime import mocks
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.snapshots import HomeSnapshots, HomeSnapshotsArgs, home_target_tag
from tests.program import ACCOUNT, FakeAws, Registered, reset_runtime

POLICY = "aws:dlm/lifecyclePolicy:LifecyclePolicy"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
TAGS = {"devserver:stack": "dev", "devserver:purpose": "devserver"}
DLM_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"


class Built:
    """What building one HomeSnapshots registered, and its resolved outputs."""

    def __init__(self, fake: FakeAws, component: HomeSnapshots) -> None:
        self.resources = fake.resources
        self.outputs = {
            name: _sync_await(getattr(component, name).future())
            for name in ("role_arn", "policy_id", "policy_arn")
        }

    def one(self, type_: str) -> Registered:
        found = [r for r in self.resources if r.type == type_]
        assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
        return found[0]


@pytest.fixture
def build() -> Iterator[Callable[..., Built]]:
    """Build the component alone under the mocks; the runtime is reset before and after."""
    reset_runtime()

    def run(retention_days: int = 7, target_tags: dict[str, str] | None = None) -> Built:
        fake = FakeAws()
        mocks.set_mocks(fake, project="devserver", stack="dev", preview=False)
        args = HomeSnapshotsArgs(retention_days, TAGS, target_tags or home_target_tag("dev"))
        made: list[HomeSnapshots] = []
        _sync_await(run_pulumi_func(lambda: made.append(HomeSnapshots("devserver", args))))
        return Built(fake, made[0])

    yield run
    reset_runtime()


def _schedule(policy: Registered) -> dict[str, Any]:
    schedules = policy.inputs["policyDetails"]["schedules"]
    assert len(schedules) == 1, f"{policy.name} has one daily schedule, got {schedules}"
    return dict(schedules[0])


def test_policy_snapshots_only_volumes_with_this_stacks_home_tag(
    build: Callable[..., Built],
) -> None:
    policy = build().one(POLICY)
    details = policy.inputs["policyDetails"]
    assert details["targetTags"] == {"devserver:home-snapshots": "dev"}, (
        f"{policy.name} selects exactly the home volumes of stack dev"
    )
    assert details["resourceTypes"] == ["VOLUME"], f"{policy.name} snapshots volumes, not instances"
    assert details["policyType"] == "EBS_SNAPSHOT_MANAGEMENT"
    assert policy.inputs["state"] == "ENABLED"


@pytest.mark.parametrize(
    "target_tags",
    [
        # DLM OR-s target tags: role=home reaches every stack's homes, stack=dev every root disk.
        {"devserver:role": "home", "devserver:stack": "dev"},
        {},
    ],
)
def test_more_or_fewer_than_one_target_tag_is_refused(target_tags: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one tag"):
        HomeSnapshotsArgs(7, TAGS, target_tags)


@pytest.mark.parametrize("days", [1, 7, 30])
def test_one_snapshot_a_day_kept_for_the_retention_days(
    build: Callable[..., Built], days: int
) -> None:
    schedule = _schedule(build(retention_days=days).one(POLICY))
    assert schedule["createRule"]["interval"] == 24
    assert schedule["createRule"]["intervalUnit"] == "HOURS"
    assert schedule["createRule"]["times"] == "03:00", "a fixed UTC time, once a day"
    assert schedule["retainRule"] == {"count": days}, f"keeps {days} daily snapshots"


@pytest.mark.parametrize("days", [0, 1001])
def test_retention_outside_what_dlm_keeps_is_refused(days: int) -> None:
    with pytest.raises(ValueError, match="retention_days"):
        HomeSnapshotsArgs(days, TAGS, home_target_tag("dev"))


def test_snapshots_carry_the_volume_tags_and_a_daily_marker(build: Callable[..., Built]) -> None:
    schedule = _schedule(build().one(POLICY))
    assert schedule["copyTags"] is True, "owner/server/stack tags follow the volume's snapshots"
    assert schedule["tagsToAdd"] == {"devserver:snapshot": "daily"}


def test_only_dlm_may_assume_the_role(build: Callable[..., Built]) -> None:
    role = build().one(ROLE)
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert [(s["Effect"], s["Principal"], s["Action"]) for s in trust["Statement"]] == [
        ("Allow", {"Service": "dlm.amazonaws.com"}, "sts:AssumeRole")
    ], f"{role.name} trusts Data Lifecycle Manager and nobody else"


def test_the_role_holds_only_the_dlm_managed_policy(build: Callable[..., Built]) -> None:
    built = build()
    role = built.one(ROLE)
    attachment = built.one(ATTACHMENT)
    assert attachment.inputs["policyArn"] == DLM_POLICY_ARN
    assert attachment.inputs["role"] == role.state["name"], f"attached to {role.name}"
    assert not [r.name for r in built.resources if r.type.startswith("aws:iam/rolePolicy:")], (
        "no inline policy widens the role"
    )
    assert "managedPolicyArns" not in role.inputs and "inlinePolicies" not in role.inputs


def test_the_policy_runs_as_the_role_and_exports_its_ids(build: Callable[..., Built]) -> None:
    built = build()
    policy, role = built.one(POLICY), built.one(ROLE)
    assert policy.inputs["executionRoleArn"] == role.state["arn"]
    assert built.outputs["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/{role.state['name']}"
    assert built.outputs["policy_id"] == f"{policy.name}-id"


def test_policy_description_uses_only_characters_dlm_accepts(build: Callable[..., Built]) -> None:
    # CreateLifecyclePolicy rejects anything else in a description or schedule name.
    policy = build(retention_days=14).one(POLICY)
    for text in (policy.inputs["description"], _schedule(policy)["name"]):
        assert re.fullmatch(r"[0-9A-Za-z _-]{1,120}", text), f"DLM would refuse {text!r}"
