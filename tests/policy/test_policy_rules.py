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
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
    StackValidationPolicy,
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


def policy_opts(protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def run_policy(policy_name: str, resource: rules.Resource) -> list[str]:
    """Call the registered policy's own `validate` and collect what it reports."""
    policy = next(p for p in POLICIES if p.name == policy_name)
    assert not isinstance(policy, StackValidationPolicy)
    opts = policy_opts(resource.protect)
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
        "no-ssh-from-anywhere-in-pieces": EnforcementLevel.MANDATORY,
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


def ssh_inline(*cidrs: str) -> dict[str, Any]:
    """A security group with one inline TCP/22 rule per CIDR."""
    rules_ = []
    for cidr in cidrs:
        key = "ipv6CidrBlocks" if ":" in cidr else "cidrBlocks"
        rules_.append({"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, key: [cidr]})
    return {"ingress": rules_}


EIGHTS = [f"{i}.0.0.0/8" for i in range(256)]

SPLIT_SSH = [
    pytest.param(
        rules.SECURITY_GROUP, ssh_inline("0.0.0.0/1", "128.0.0.0/1"), "0.0.0.0/0", id="v4-halves"
    ),
    pytest.param(
        rules.SECURITY_GROUP,
        ssh_inline("0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"),
        "0.0.0.0/0",
        id="v4-quarters",
    ),
    pytest.param(rules.SECURITY_GROUP, ssh_inline("::/1", "8000::/1"), "::/0", id="v6-halves"),
    pytest.param(rules.SECURITY_GROUP, ssh_inline(*EIGHTS), "0.0.0.0/0", id="256-slash-8s"),
    pytest.param(
        rules.SECURITY_GROUP_RULE,
        {
            "type": "ingress",
            "protocol": "tcp",
            "fromPort": 22.0,
            "toPort": 22.0,
            "cidrBlocks": EIGHTS,
        },
        "0.0.0.0/0",
        id="one-rule-many-blocks",
    ),
]


@pytest.mark.parametrize(("resource_type", "props", "whole"), SPLIT_SSH)
def test_ssh_open_to_the_world_in_pieces_is_refused(
    resource_type: str, props: dict[str, Any], whole: str
) -> None:
    violations = check("no-ssh-from-anywhere", rules.no_ssh_from_anywhere, resource_type, props)
    assert any(
        f"together open SSH (port 22) to the whole internet ({whole})" in v for v in violations
    ), violations


@pytest.mark.parametrize(
    "cidr", ["0.0.0.0/1", "10.0.0.0/7", "64.0.0.0/4", "2000::/3", "2001:db8::/31"]
)
def test_one_rule_wider_than_the_minimum_prefix_is_refused(cidr: str) -> None:
    props = ssh_inline(cidr)
    violations = check(
        "no-ssh-from-anywhere", rules.no_ssh_from_anywhere, rules.SECURITY_GROUP, props
    )
    assert violations and f"opens SSH (port 22) to {cidr}, wider than /8" in violations[0]


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "203.0.113.0/24", "2001:db8::/32"])
def test_one_rule_at_the_minimum_prefix_passes(cidr: str) -> None:
    props = ssh_inline(cidr)
    assert (
        check("no-ssh-from-anywhere", rules.no_ssh_from_anywhere, rules.SECURITY_GROUP, props) == []
    )


def policy_resource(
    type_: str, props: dict[str, Any], name: str, parent: PolicyResource | None = None
) -> PolicyResource:
    return PolicyResource(
        resource_type=type_,
        props=unknown_checking_proxy(props),
        urn=f"urn:pulumi:dev::devserver::{type_}::{name}",
        name=name,
        opts=policy_opts(),
        provider=None,
        parent=parent,
        dependencies=[],
        property_dependencies={},
    )


def ingress_rules(
    group: PolicyResource | None, cidrs: list[str], **props: Any
) -> list[PolicyResource]:
    found = []
    for i, cidr in enumerate(cidrs):
        key = "cidrIpv6" if ":" in cidr else "cidrIpv4"
        found.append(
            policy_resource(
                rules.SECURITY_GROUP_INGRESS_RULE,
                {"ipProtocol": "tcp", "fromPort": 22.0, "toPort": 22.0, key: cidr, **props},
                f"rule-{i}",
                group,
            )
        )
    return found


def run_stack_policy(resources: list[PolicyResource]) -> list[tuple[str, str | None]]:
    """Call the registered stack policy's own `validate` and collect what it reports."""
    policy = next(p for p in POLICIES if p.name == "no-ssh-from-anywhere-in-pieces")
    assert isinstance(policy, StackValidationPolicy)
    reported: list[tuple[str, str | None]] = []
    policy.validate(
        StackValidationArgs(resources), lambda message, urn=None: reported.append((message, urn))
    )
    return reported


def group(name: str) -> PolicyResource:
    return policy_resource(rules.SECURITY_GROUP, {}, name)


@pytest.mark.parametrize(
    "cidrs",
    [
        ["0.0.0.0/1", "128.0.0.0/1"],
        ["128.0.0.0/1", "0.0.0.0/2", "64.0.0.0/2"],
        ["::/1", "8000::/1"],
        EIGHTS,
    ],
    ids=["v4-halves", "v4-mixed", "v6-halves", "256-slash-8s"],
)
def test_separate_rules_of_one_group_covering_the_internet_are_refused(cidrs: list[str]) -> None:
    sg = group("devserver-ssh")
    reported = run_stack_policy([sg, *ingress_rules(sg, cidrs)])
    assert len(reported) == 1, reported
    message, urn = reported[0]
    assert "together open SSH (port 22) to the whole internet" in message
    assert sg.urn in message, "the message names the security group"
    assert urn is not None and urn.endswith("::rule-0")


def test_separate_rules_grouped_by_security_group_id_without_a_parent() -> None:
    loose = ingress_rules(None, ["0.0.0.0/1", "128.0.0.0/1"], securityGroupId="sg-0123")
    assert len(run_stack_policy(loose)) == 1


def test_halves_in_two_different_groups_are_not_one_opening() -> None:
    a, b = group("a"), group("b")
    resources = [a, b, *ingress_rules(a, ["10.0.0.0/8"]), *ingress_rules(b, ["11.0.0.0/8"])]
    assert run_stack_policy(resources) == []


def test_the_programs_own_rules_pass_the_stack_policy() -> None:
    sg = group("devserver-ssh")
    assert (
        run_stack_policy([sg, *ingress_rules(sg, ["203.0.113.7/32", "2001:db8:1234::/48"])]) == []
    )


def test_non_ssh_rules_do_not_count_towards_the_internet() -> None:
    sg = group("web")
    https = ingress_rules(sg, ["0.0.0.0/1", "128.0.0.0/1"], fromPort=443.0, toPort=443.0)
    assert run_stack_policy([sg, *https]) == []


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
