"""The machine's IAM role: it may read its GitHub token secret and a binary cache, nothing else."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.binary_cache_policies import reader_policy


def assume_role_policy(service: str) -> str:
    """A trust policy that lets only this AWS service (e.g. ec2.amazonaws.com) assume the role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


def _read_secret_policy(secret_arn: str, kms_key_arn: str | None = None) -> str:
    """GetSecretValue on exactly this ARN (and Decrypt with exactly this key, if one is used)."""
    statements: list[dict[str, object]] = [
        {
            "Sid": "ReadGithubToken",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secret_arn,
        }
    ]
    if kms_key_arn:
        statements.append(
            {
                "Sid": "DecryptGithubToken",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": kms_key_arn,
                # The key may be used only on behalf of Secrets Manager, not for anything else.
                "Condition": {
                    "StringEquals": {
                        "kms:ViaService": f"secretsmanager.{secret_arn.split(':')[3]}.amazonaws.com"
                    }
                },
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


# Every role the program creates lives under this path, so the shipped IAM policies can allow
# creating and changing roles there only (docs/iam/operator-policy.json, docs/security.md).
ROLE_PATH = "/devserver/"

# What the SSM agent needs for Session Manager and nothing more: the set of AWS's managed policy
# AWSCloud9SSMInstanceProfile, not AmazonSSMManagedInstanceCore (whose ssm:GetParameter on every
# parameter would let the machine read more than its one secret).
SESSION_MANAGER_ACTIONS = (
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)


def _session_manager_policy(role_arn: str) -> str:
    """Session Manager's agent actions, for EC2 instances of this role's account only.

    The Service Authorization Reference lists no resource type for ssm:UpdateInstanceInformation
    (list_awssystemsmanager.html) nor for ssmmessages:CreateControlChannel, CreateDataChannel,
    OpenControlChannel and OpenDataChannel (list_amazonmessagegatewayservice.html), so IAM takes
    only "*" for them; both list the condition key ec2:SourceInstanceARN, which scopes them here.
    """
    partition, account = role_arn.split(":")[1], role_arn.split(":")[4]
    statement = {
        "Sid": "SessionManagerBreakGlass",
        "Effect": "Allow",
        "Action": list(SESSION_MANAGER_ACTIONS),
        "Resource": "*",
        "Condition": {
            "ArnLike": {"ec2:SourceInstanceARN": f"arn:{partition}:ec2:*:{account}:instance/*"}
        },
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@dataclass(frozen=True)
class InstanceRoleArgs:
    """The secret the machine may read (if any) and the tags to put on the role."""

    tags: dict[str, str]
    secret_arn: pulumi.Output[str] | None = None
    kms_key_arn: str | None = None
    session_manager: bool = True
    permissions_boundary: str | None = None
    """The managed policy set as the role's permissions boundary (None: none)."""
    binary_cache_bucket: pulumi.Input[str] | None = None
    """An S3 binary cache bucket the machine may read (never write), or None."""


class InstanceRole(pulumi.ComponentResource):
    """An EC2 instance role and profile, scoped to one secret."""

    role_arn: pulumi.Output[str]
    """The role's ARN."""
    profile_name: pulumi.Output[str]
    """The instance profile to launch the machine with."""

    def __init__(
        self, name: str, args: InstanceRoleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("devserver:aws:InstanceRole", name, None, opts)
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            description="Dev server instance role: its GitHub token secret, SSM Session Manager",
            path=ROLE_PATH,
            permissions_boundary=args.permissions_boundary,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.secret_arn is not None:
            kms_key_arn = args.kms_key_arn
            aws.iam.RolePolicy(
                f"{name}-read-github-token",
                role=role.id,
                policy=args.secret_arn.apply(lambda arn: _read_secret_policy(arn, kms_key_arn)),
                opts=pulumi.ResourceOptions(parent=role),
            )
        if args.binary_cache_bucket is not None:
            aws.iam.RolePolicy(
                f"{name}-read-binary-cache",
                role=role.id,
                # The partition is the role's own (aws, aws-cn, aws-us-gov).
                policy=pulumi.Output.all(args.binary_cache_bucket, role.arn).apply(
                    lambda v: reader_policy(v[0], v[1].split(":")[1])
                ),
                opts=pulumi.ResourceOptions(parent=role),
            )
        if args.session_manager:
            aws.iam.RolePolicy(
                f"{name}-session-manager",
                role=role.id,
                policy=role.arn.apply(_session_manager_policy),
                opts=pulumi.ResourceOptions(parent=role),
            )
        profile = aws.iam.InstanceProfile(
            f"{name}-profile",
            role=role.name,
            path=ROLE_PATH,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.role_arn = role.arn
        self.profile_name = profile.name
        self.register_outputs({"role_arn": self.role_arn, "profile_name": self.profile_name})
