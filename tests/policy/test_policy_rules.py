"""Each policy of the pack, with a resource that passes and one that fails.

Every case runs twice: through the pure rule and through the real `validate` callable of the
registered policy, with `ResourceValidationArgs` built the way the analyzer builds them (props
wrapped in the SDK's read-only proxy). The two must report the same violations.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
)
from pulumi_policy.proxy import unknown_checking_proxy

from policy.devserver_policy import rules
from policy.devserver_policy.policies import POLICIES

SECRET_ARN = (
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:devserver/alice/github-token-AbCdEf"
)

# Token-shaped strings are assembled at runtime so none is ever committed to the repository.
CLASSIC_TOKEN = "gh" + "p_" + "A1b2" * 9
FINE_GRAINED_TOKEN = "github" + "_pat_" + "11AAAA" + "x" * 16 + "_" + "Y" * 59


def run_policy(policy_name: str, resource: rules.Resource) -> list[str]:
    """Call the registered policy's own `validate` and collect what it reports."""
    policy = next(p for p in POLICIES if p.name == policy_name)
    opts = PolicyResourceOptions(
        protect=resource.protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )
    args = ResourceValidationArgs(
        resource_type=resource.type,
        props=unknown_checking_proxy(dict(resource.props)),
        urn=f"urn:pulumi:dev::devserver::{resource.type}::under-test",
        name="under-test",
        opts=opts,
        provider=None,
    )
    reported: list[str] = []
    policy.validate(args, lambda message, urn=None: reported.append(message))
    return reported


def check(
    policy_name: str, rule: Any, resource_type: str, props: dict[str, Any], *, protect: bool = False
) -> list[str]:
    resource = rules.Resource(resource_type, props, protect)
    violations = rule(resource)
    assert run_policy(policy_name, resource) == violations, (
        f"policy {policy_name} must report exactly what its rule finds for {resource_type}"
    )
    return violations


def test_every_policy_blocks_the_deployment() -> None:
    assert {p.name: p.enforcement_level for p in POLICIES} == {
        "ec2-imdsv2-required": EnforcementLevel.MANDATORY,
        "ebs-volumes-encrypted": EnforcementLevel.MANDATORY,
        "no-ssh-from-anywhere": EnforcementLevel.MANDATORY,
        "iam-least-privilege": EnforcementLevel.MANDATORY,
        "home-volume-protected": EnforcementLevel.MANDATORY,
        "no-token-in-user-data": EnforcementLevel.MANDATORY,
    }


# --- IMDSv2 -----------------------------------------------------------------------------------

GOOD_METADATA = {"httpTokens": "required", "httpPutResponseHopLimit": 1.0}


def imds(resource_type: str, metadata: dict[str, Any] | None) -> list[str]:
    props = {} if metadata is None else {"metadataOptions": metadata}
    return check("ec2-imdsv2-required", rules.imdsv2_required, resource_type, props)


@pytest.mark.parametrize("resource_type", rules.MACHINE_TYPES)
def test_instance_with_imdsv2_and_hop_limit_one_passes(resource_type: str) -> None:
    assert imds(resource_type, GOOD_METADATA) == []


@pytest.mark.parametrize("resource_type", rules.MACHINE_TYPES)
def test_instance_that_allows_imdsv1_is_refused(resource_type: str) -> None:
    violations = imds(resource_type, {**GOOD_METADATA, "httpTokens": "optional"})
    assert violations == ["metadataOptions.httpTokens must be 'required' (IMDSv2), got 'optional'"]


def test_instance_without_metadata_options_is_refused() -> None:
    assert len(imds(rules.INSTANCE, None)) == 2, "both tokens and hop limit are left to the AMI"


def test_hop_limit_that_lets_containers_reach_the_role_is_refused() -> None:
    violations = imds(rules.INSTANCE, {**GOOD_METADATA, "httpPutResponseHopLimit": 2.0})
    assert violations == [
        "metadataOptions.httpPutResponseHopLimit must be 1 so containers cannot reach "
        "the instance role, got 2"
    ]


def test_instance_with_metadata_endpoint_disabled_passes() -> None:
    assert imds(rules.INSTANCE, {"httpEndpoint": "disabled"}) == []


# --- EBS encryption ---------------------------------------------------------------------------


def ebs(resource_type: str, props: dict[str, Any]) -> list[str]:
    return check("ebs-volumes-encrypted", rules.ebs_encrypted, resource_type, props)


def test_instance_with_encrypted_root_and_data_volumes_passes() -> None:
    props = {
        "rootBlockDevice": {"encrypted": True, "volumeSize": 30.0},
        "ebsBlockDevices": [{"deviceName": "/dev/sdf", "encrypted": True}],
    }
    assert ebs(rules.INSTANCE, props) == []


@pytest.mark.parametrize("root", [{"encrypted": False}, {"volumeSize": 30.0}, None])
def test_instance_with_unencrypted_root_volume_is_refused(root: dict[str, Any] | None) -> None:
    props = {} if root is None else {"rootBlockDevice": root}
    violations = ebs(rules.INSTANCE, props)
    assert len(violations) == 1 and violations[0].startswith(
        "rootBlockDevice.encrypted must be true"
    )


def test_instance_with_unencrypted_attached_volume_is_refused() -> None:
    props = {
        "rootBlockDevice": {"encrypted": True},
        "ebsBlockDevices": [{"deviceName": "/dev/sdf", "encrypted": False}],
    }
    assert ebs(rules.SPOT_INSTANCE_REQUEST, props) == [
        "ebsBlockDevices['/dev/sdf'].encrypted must be true, got False"
    ]


def test_encrypted_data_volume_passes() -> None:
    assert ebs(rules.VOLUME, {"encrypted": True, "size": 50.0}) == []


@pytest.mark.parametrize("encrypted", [False, None])
def test_unencrypted_data_volume_is_refused(encrypted: bool | None) -> None:
    props = {"size": 50.0} if encrypted is None else {"encrypted": encrypted}
    assert ebs(rules.VOLUME, props) == [f"EBS volume must set encrypted=true, got {encrypted!r}"]


# --- SSH from the whole internet --------------------------------------------------------------

OPEN_SSH = [
    pytest.param(
        rules.SECURITY_GROUP,
        {
            "ingress": [
                {"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]}
            ]
        },
        id="inline-ingress-ipv4",
    ),
    pytest.param(
        rules.SECURITY_GROUP,
        {
            "ingress": [
                {"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "ipv6CidrBlocks": ["::/0"]}
            ]
        },
        id="inline-ingress-all-protocols-ipv6",
    ),
    pytest.param(
        rules.SECURITY_GROUP_RULE,
        {
            "type": "ingress",
            "protocol": "tcp",
            "fromPort": 0.0,
            "toPort": 65535.0,
            "cidrBlocks": ["10.0.0.0/8", "0.0.0.0/0"],
        },
        id="security-group-rule-port-range",
    ),
    pytest.param(
        rules.SECURITY_GROUP_INGRESS_RULE,
        {"ipProtocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrIpv6": "::/0"},
        id="vpc-ingress-rule-ipv6",
    ),
    pytest.param(
        rules.SECURITY_GROUP_INGRESS_RULE,
        {"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0"},
        id="vpc-ingress-rule-all-traffic",
    ),
]

CLOSED_SSH = [
    pytest.param(
        rules.SECURITY_GROUP_INGRESS_RULE,
        {"ipProtocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrIpv4": "203.0.113.7/32"},
        id="ssh-from-one-address",
    ),
    pytest.param(
        rules.SECURITY_GROUP_INGRESS_RULE,
        {"ipProtocol": "tcp", "fromPort": 443.0, "toPort": 443.0, "cidrIpv4": "0.0.0.0/0"},
        id="https-from-anywhere",
    ),
    pytest.param(
        rules.SECURITY_GROUP_RULE,
        {
            "type": "egress",
            "protocol": "-1",
            "fromPort": 0.0,
            "toPort": 0.0,
            "cidrBlocks": ["0.0.0.0/0"],
        },
        id="egress-to-anywhere",
    ),
    pytest.param(
        rules.SECURITY_GROUP,
        {
            "ingress": [
                {"protocol": "udp", "fromPort": 22.0, "toPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]}
            ]
        },
        id="udp-22-is-not-ssh",
    ),
    pytest.param(
        rules.SECURITY_GROUP,
        {"description": "rules live in separate resources"},
        id="no-inline-rules",
    ),
]


@pytest.mark.parametrize(("resource_type", "props"), OPEN_SSH)
def test_ssh_open_to_the_world_is_refused(resource_type: str, props: dict[str, Any]) -> None:
    violations = check("no-ssh-from-anywhere", rules.no_ssh_from_anywhere, resource_type, props)
    assert len(violations) == 1 and "opens SSH (port 22)" in violations[0], violations


@pytest.mark.parametrize(("resource_type", "props"), CLOSED_SSH)
def test_ssh_limited_to_known_addresses_passes(resource_type: str, props: dict[str, Any]) -> None:
    assert check("no-ssh-from-anywhere", rules.no_ssh_from_anywhere, resource_type, props) == []


# --- IAM --------------------------------------------------------------------------------------


def iam(statements: Any, resource_type: str = "aws:iam/rolePolicy:RolePolicy") -> list[str]:
    document = json.dumps({"Version": "2012-10-17", "Statement": statements})
    return check(
        "iam-least-privilege", rules.iam_least_privilege, resource_type, {"policy": document}
    )


def test_reading_exactly_one_secret_passes() -> None:
    statement = {
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": SECRET_ARN,
    }
    assert iam(statement) == []


def test_a_deny_on_everything_passes() -> None:
    assert iam([{"Effect": "Deny", "Action": "*", "Resource": "*"}]) == []


@pytest.mark.parametrize("resource_type", rules.IAM_POLICY_DOCUMENT_TYPES)
def test_allowing_every_action_is_refused(resource_type: str) -> None:
    violations = iam(
        [{"Sid": "Admin", "Effect": "Allow", "Action": ["*"], "Resource": SECRET_ARN}],
        resource_type,
    )
    assert violations == ["Statement[Admin] allows every action ('*')"]


def test_allowing_every_secrets_manager_action_is_refused() -> None:
    violations = iam([{"Effect": "Allow", "Action": "SecretsManager:*", "Resource": SECRET_ARN}])
    assert violations == ["Statement[0] allows every Secrets Manager action ('secretsmanager:*')"]


@pytest.mark.parametrize("action", ["secretsmanager:GetSecretValue", "secretsmanager:Get*"])
@pytest.mark.parametrize(
    "resource", ["*", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:*"]
)
def test_reading_every_secret_is_refused(action: str, resource: str) -> None:
    violations = iam([{"Effect": "Allow", "Action": [action], "Resource": [resource]}])
    assert violations == [
        f"Statement[0] allows secretsmanager:GetSecretValue on {resource}; "
        "scope it to the one secret ARN"
    ]


def test_allow_with_not_action_is_refused() -> None:
    violations = iam([{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}])
    assert violations == [
        "Statement[0] allows NotAction, which grants every action it does not list"
    ]


def test_get_secret_value_with_not_resource_is_refused() -> None:
    violations = iam(
        [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "NotResource": SECRET_ARN}]
    )
    assert len(violations) == 1 and "NotResource" in violations[0]


def test_role_inline_policy_is_held_to_the_same_rule() -> None:
    wide = {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
    narrow = {**wide, "Resource": SECRET_ARN}
    props = {
        "assumeRolePolicy": json.dumps({"Statement": [{"Effect": "Allow", "Action": "*"}]}),
        "inlinePolicies": [
            {"name": "narrow", "policy": json.dumps({"Statement": [narrow]})},
            {"name": "wide", "policy": json.dumps({"Statement": [wide]})},
        ],
    }
    violations = check("iam-least-privilege", rules.iam_least_privilege, rules.IAM_ROLE, props)
    assert violations == [
        "inlinePolicies['wide']: Statement[0] allows secretsmanager:GetSecretValue on *; "
        "scope it to the one secret ARN"
    ], "only the inline policies count; the trust policy grants nothing to the role"


def test_unparseable_policy_is_refused() -> None:
    violations = check(
        "iam-least-privilege",
        rules.iam_least_privilege,
        "aws:iam/policy:Policy",
        {"policy": "{not json"},
    )
    assert len(violations) == 1 and violations[0].startswith("policy is not valid JSON")


# --- The home volume --------------------------------------------------------------------------

HOME = {"encrypted": True, "size": 50.0, "tags": {"devserver:role": "home", "Name": "alice-home"}}


def test_protected_home_volume_passes() -> None:
    assert (
        check(
            "home-volume-protected", rules.home_volume_protected, rules.VOLUME, HOME, protect=True
        )
        == []
    )


def test_unprotected_home_volume_is_refused() -> None:
    violations = check("home-volume-protected", rules.home_volume_protected, rules.VOLUME, HOME)
    assert len(violations) == 1 and "protect=True" in violations[0]


def test_unprotected_volume_that_is_not_a_home_passes() -> None:
    scratch = {**HOME, "tags": {"devserver:role": "scratch"}}
    assert check("home-volume-protected", rules.home_volume_protected, rules.VOLUME, scratch) == []


# --- No token in user data --------------------------------------------------------------------


def user_data(props: dict[str, Any]) -> list[str]:
    return check("no-token-in-user-data", rules.no_token_in_user_data, rules.INSTANCE, props)


def test_user_data_without_tokens_passes() -> None:
    script = f"#!/bin/sh\n# token comes from {SECRET_ARN}\necho ghp_ is only a prefix\n"
    assert user_data({"userData": script}) == []


@pytest.mark.parametrize(
    "token", [CLASSIC_TOKEN, FINE_GRAINED_TOKEN], ids=["classic", "fine-grained"]
)
def test_user_data_carrying_a_github_token_is_refused(token: str) -> None:
    violations = user_data({"userData": f"#!/bin/sh\nexport GITHUB_TOKEN={token}\n"})
    assert len(violations) == 1 and "GitHub" in violations[0], violations
    assert token not in violations[0], "the violation message must not repeat the token"


def test_base64_user_data_carrying_a_token_is_refused() -> None:
    encoded = base64.b64encode(f"TOKEN={CLASSIC_TOKEN}".encode()).decode()
    violations = user_data({"userDataBase64": encoded})
    assert violations == [
        "userDataBase64 (decoded) contains a GitHub classic token (gh?_) at offset 6; "
        "keep tokens in Secrets Manager"
    ]
