"""Daily snapshots of the stack's home volumes: one Data Lifecycle Manager policy and its role."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.instance_role import ROLE_PATH, assume_role_policy

# The AWS managed policy DLM's own default role uses for EBS snapshot policies (the ARN's partition
# follows the account's: aws, aws-cn, aws-us-gov).
DLM_MANAGED_POLICY = "iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"
# A fixed UTC time, so every home volume is snapshotted at the same hour each day.
SNAPSHOT_TIME_UTC = "03:00"
MAX_RETENTION_COUNT = 1000
# Home volumes carry this tag with their stack's name as the value; the policy selects on it.
HOME_TARGET_KEY = "devserver:home-snapshots"
# DLM manages only the snapshots made under a schedule's current name ("If you modify a schedule
# name, the snapshots created under the old schedule name are no longer managed by the policy"),
# so the name never carries a setting. A stack created when the name was `daily-<n>d` keeps that
# name (ignore_changes), and with it the snapshots already taken.
SCHEDULE_NAME = "daily"
SCHEDULE_NAME_PATH = "policyDetails.schedules[0].name"


def home_target_tag(stack: str) -> dict[str, str]:
    """The one tag that marks a volume as a home volume of this stack, for the policy to select."""
    return {HOME_TARGET_KEY: stack}


def _managed_policy_arn(role_arn: str) -> str:
    """The DLM managed policy in the same partition as the role."""
    return f"arn:{role_arn.split(':')[1]}:{DLM_MANAGED_POLICY}"


@dataclass(frozen=True)
class HomeSnapshotsArgs:
    """How long to keep snapshots, tags for the policy itself, and the tag that selects volumes.

    DLM targets a volume that carries ANY of the target tags (they are OR-ed, not AND-ed), so the
    selector must be a single tag that only this stack's home volumes carry.
    """

    retention_days: int
    tags: dict[str, str]
    target_tags: dict[str, str]
    snapshot_tags: dict[str, str] = field(default_factory=lambda: {"devserver:snapshot": "daily"})
    permissions_boundary: str | None = None
    """The managed policy set as the role's permissions boundary (None: none)."""

    def __post_init__(self) -> None:
        if not 1 <= self.retention_days <= MAX_RETENTION_COUNT:
            raise ValueError(
                f"retention_days must be from 1 to {MAX_RETENTION_COUNT}, got {self.retention_days}"
            )
        if len(self.target_tags) != 1:
            raise ValueError(
                "target_tags must be exactly one tag: DLM snapshots volumes carrying any one of "
                f"them, so {sorted(self.target_tags)} would reach beyond this stack's home volumes"
            )


class HomeSnapshots(pulumi.ComponentResource):
    """A daily snapshot of every volume with the target tag, kept for `retention_days` days."""

    role_arn: pulumi.Output[str]
    """The role DLM assumes to create and delete the snapshots."""
    policy_id: pulumi.Output[str]
    """The lifecycle policy's id (policy-…)."""
    policy_arn: pulumi.Output[str]
    """The lifecycle policy's ARN."""

    def __init__(
        self, name: str, args: HomeSnapshotsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("devserver:aws:HomeSnapshots", name, None, opts)
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=assume_role_policy("dlm.amazonaws.com"),
            description="Data Lifecycle Manager: snapshots this stack's home volumes",
            path=ROLE_PATH,
            permissions_boundary=args.permissions_boundary,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-dlm-policy",
            role=role.name,
            policy_arn=role.arn.apply(_managed_policy_arn),
            opts=pulumi.ResourceOptions(parent=role),
        )
        policy = aws.dlm.LifecyclePolicy(
            f"{name}-policy",
            # DLM accepts only letters, digits, spaces, _ and - in a description.
            description=f"Daily snapshots of {name} home volumes kept {args.retention_days} days",
            execution_role_arn=role.arn,
            state="ENABLED",
            policy_details=aws.dlm.LifecyclePolicyPolicyDetailsArgs(
                policy_type="EBS_SNAPSHOT_MANAGEMENT",
                resource_types=["VOLUME"],
                target_tags=args.target_tags,
                schedules=[
                    aws.dlm.LifecyclePolicyPolicyDetailsScheduleArgs(
                        name=SCHEDULE_NAME,
                        create_rule=aws.dlm.LifecyclePolicyPolicyDetailsScheduleCreateRuleArgs(
                            interval=24, interval_unit="HOURS", times=SNAPSHOT_TIME_UTC
                        ),
                        # One snapshot a day, so keeping N snapshots keeps N days.
                        retain_rule=aws.dlm.LifecyclePolicyPolicyDetailsScheduleRetainRuleArgs(
                            count=args.retention_days
                        ),
                        # The volume's owner/server/stack tags follow it onto each snapshot.
                        copy_tags=True,
                        tags_to_add=args.snapshot_tags,
                    )
                ],
            ),
            tags=args.tags,
            # The policy is useless until the role holds its permissions.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[attachment], ignore_changes=[SCHEDULE_NAME_PATH]
            ),
        )
        self.role_arn = role.arn
        self.policy_id = policy.id
        self.policy_arn = policy.arn
        self.register_outputs(
            {"role_arn": self.role_arn, "policy_id": self.policy_id, "policy_arn": self.policy_arn}
        )
