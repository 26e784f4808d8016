"""docs/operator-iam-policy.json allows what the program does to AWS, and no more than it needs.

The resource types and invokes come from running the real program under the mocks in every shape
that adds AWS work (token with a customer key, spot, an adopted volume, a stopped machine, a
fleet); each is mapped to the IAM actions the AWS provider calls to create, read, update and
delete it. A type the program registers that is missing from the map fails the test, so a new
resource cannot ship without its permissions.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.program import FAKE_TOKEN, ROOT, ProgramRun

POLICY_FILE = ROOT / "docs" / "operator-iam-policy.json"
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
SHAPES: list[dict[str, Any]] = [
    {"devserver:githubTokenKmsKeyArn": KMS_KEY},
    {"devserver:preset": "x86-spot", "devserver:idleStopMinutes": 30},
    {"devserver:homeVolumeId": "vol-0123456789abcdef0", "devserver:availabilityZone": "eu-west-1b"},
    {"devserver:state": "stopped", "devserver:amiId": "ami-0aaaaaaaaaaaaaaaa"},
    {
        "devserver:servers": [
            {"name": "alice", "user": "alice", "githubUser": "alice-example"},
            {"name": "bob", "user": "bob", "githubUser": "bob-example", "preset": "graviton-spot"},
        ]
    },
]
EC2_TAGGING = ["ec2:CreateTags", "ec2:DeleteTags", "ec2:DescribeTags"]
# What the AWS provider calls for each resource type and invoke (create, read, update, delete).
ACTIONS: dict[str, list[str]] = {
    "aws:ec2/instance:Instance": [
        "ec2:RunInstances", "ec2:TerminateInstances", "ec2:DescribeInstances",
        "ec2:DescribeInstanceAttribute", "ec2:ModifyInstanceAttribute",
        "ec2:ModifyInstanceMetadataOptions", "ec2:DescribeInstanceCreditSpecifications",
        "ec2:DescribeVolumes", "ec2:DescribeNetworkInterfaces", "ec2:StopInstances",
        "ec2:StartInstances", "ec2:DescribeSpotInstanceRequests",
        "ec2:AssociateIamInstanceProfile", "ec2:DisassociateIamInstanceProfile",
        "ec2:ReplaceIamInstanceProfileAssociation", "ec2:DescribeIamInstanceProfileAssociations",
        "iam:PassRole", "iam:CreateServiceLinkedRole", *EC2_TAGGING,
    ],
    "aws:ebs/volume:Volume": [
        "ec2:CreateVolume", "ec2:DeleteVolume", "ec2:DescribeVolumes", "ec2:ModifyVolume",
        "ec2:DescribeVolumesModifications", *EC2_TAGGING,
        # A customer-managed key for the volume (EBS asks KMS on the caller's behalf).
        "kms:CreateGrant", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext",
        "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:Decrypt",
    ],
    "aws:ec2/volumeAttachment:VolumeAttachment": [
        "ec2:AttachVolume", "ec2:DetachVolume", "ec2:DescribeVolumes", "ec2:DescribeInstances",
        "ec2:StopInstances",
    ],
    "aws:ec2/keyPair:KeyPair": [
        "ec2:ImportKeyPair", "ec2:DeleteKeyPair", "ec2:DescribeKeyPairs", *EC2_TAGGING,
    ],
    "aws:ec2/securityGroup:SecurityGroup": [
        "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:DescribeSecurityGroups",
        "ec2:RevokeSecurityGroupEgress", *EC2_TAGGING,
    ],
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": [
        "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
        "ec2:DescribeSecurityGroupRules", "ec2:ModifySecurityGroupRules",
        "ec2:UpdateSecurityGroupRuleDescriptionsIngress", *EC2_TAGGING,
    ],
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": [
        "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress",
        "ec2:DescribeSecurityGroupRules", "ec2:ModifySecurityGroupRules",
        "ec2:UpdateSecurityGroupRuleDescriptionsEgress", *EC2_TAGGING,
    ],
    "aws:ec2transitgateway/instanceState:InstanceState": [
        "ec2:StartInstances", "ec2:StopInstances", "ec2:DescribeInstances",
        "ec2:DescribeInstanceStatus",
    ],
    "aws:ec2/tag:Tag": EC2_TAGGING,
    "aws:ec2/eip:Eip": [
        "ec2:AllocateAddress", "ec2:ReleaseAddress", "ec2:DescribeAddresses",
        "ec2:DescribeAddressesAttribute", "ec2:DisassociateAddress", *EC2_TAGGING,
    ],
    "aws:ec2/eipAssociation:EipAssociation": [
        "ec2:AssociateAddress", "ec2:DisassociateAddress", "ec2:DescribeAddresses",
    ],
    "aws:iam/role:Role": [
        "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateAssumeRolePolicy",
        "iam:TagRole", "iam:UntagRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
        "iam:ListInstanceProfilesForRole",
    ],
    "aws:iam/rolePolicy:RolePolicy": ["iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy"],
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": [
        "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:ListAttachedRolePolicies",
    ],
    "aws:iam/instanceProfile:InstanceProfile": [
        "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
        "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
        "iam:TagInstanceProfile", "iam:UntagInstanceProfile",
    ],
    "aws:secretsmanager/secret:Secret": [
        "secretsmanager:CreateSecret", "secretsmanager:DeleteSecret",
        "secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy",
        "secretsmanager:UpdateSecret", "secretsmanager:TagResource",
        "secretsmanager:UntagResource",
        # A customer-managed key for the secret (Secrets Manager asks KMS on the caller's behalf).
        "kms:GenerateDataKey", "kms:Decrypt",
    ],
    "aws:secretsmanager/secretVersion:SecretVersion": [
        "secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue",
        "secretsmanager:ListSecretVersionIds", "secretsmanager:UpdateSecretVersionStage",
        "secretsmanager:DescribeSecret",
    ],
    "aws:dlm/lifecyclePolicy:LifecyclePolicy": [
        "dlm:CreateLifecyclePolicy", "dlm:GetLifecyclePolicy", "dlm:UpdateLifecyclePolicy",
        "dlm:DeleteLifecyclePolicy", "dlm:TagResource", "dlm:UntagResource", "iam:PassRole",
    ],
    # The spot request canceller (components/spot_request.py) calls EC2 with boto3.
    "pulumi-python:dynamic:Resource": ["ec2:CancelSpotInstanceRequests"],
    # Invokes.
    "aws:ec2/getAmi:getAmi": ["ec2:DescribeImages"],
    "aws:ec2/getInstanceType:getInstanceType": ["ec2:DescribeInstanceTypes"],
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": ["ec2:DescribeInstanceTypeOfferings"],
    "aws:ec2/getVpc:getVpc": ["ec2:DescribeVpcs"],
    "aws:ec2/getSubnets:getSubnets": ["ec2:DescribeSubnets"],
    "aws:ec2/getSubnet:getSubnet": ["ec2:DescribeSubnets"],
    "aws:ec2/getSpotPrice:getSpotPrice": ["ec2:DescribeSpotPriceHistory"],
    "aws:ebs/getVolume:getVolume": ["ec2:DescribeVolumes"],
    "aws:ebs/getEbsVolumes:getEbsVolumes": ["ec2:DescribeVolumes"],
    "aws:ec2/getInstances:getInstances": ["ec2:DescribeInstances"],
    "aws:ec2/getKeyPair:getKeyPair": ["ec2:DescribeKeyPairs"],
    # ec2_instance_data_source.go instanceDescriptionAttributes: type info, 3 attributes, volumes.
    "aws:ec2/getInstance:getInstance": [
        "ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ec2:DescribeInstanceAttribute",
        "ec2:DescribeVolumes", "ec2:DescribeInstanceCreditSpecifications",
    ],
    "aws:pricing/getProduct:getProduct": ["pricing:GetProducts"],
    "aws:ec2/getEips:getEips": ["ec2:DescribeAddresses"],
    "aws:ec2/getNetworkInterface:getNetworkInterface": ["ec2:DescribeNetworkInterfaces"],
    # service_quota_data_source.go@01f43111: GetAWSDefaultServiceQuota first, then GetServiceQuota.
    "aws:servicequotas/getServiceQuota:getServiceQuota": [
        "servicequotas:GetAWSDefaultServiceQuota", "servicequotas:GetServiceQuota",
    ],
}  # fmt: skip
# Types that are not AWS API calls: components, providers, TLS keys, SSH commands.
NOT_AWS = re.compile(r"^(devserver:|pulumi:providers:|tls:|command:)")


def load_policy() -> dict[str, Any]:
    return dict(json.loads(POLICY_FILE.read_text()))


def statements() -> list[dict[str, Any]]:
    return list(load_policy()["Statement"])


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allowed(action: str) -> list[str]:
    """The Sids of the statements that allow an action (IAM matches actions case-insensitively)."""
    return [
        s["Sid"]
        for s in statements()
        if s["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in _list(s["Action"]))
    ]


@pytest.fixture(scope="module")
def registered() -> set[str]:
    """Every resource type and invoke token the program uses across its shapes."""
    from components.settings import openssh_public_blob
    from tests.program import (
        INSTANCES,
        KEY_PAIRS,
        fake_openssh_private_key,
        reset_runtime,
        run_program,
    )

    # A machine of every server from another rebuild generation: it is read, and never blocks.
    for name in ("devserver", "alice", "bob"):
        INSTANCES[f"i-0{name}"] = {
            "tags": {"devserver:stack": "dev", "devserver:server": name,
                     "devserver:purpose": "devserver", "devserver:rebuild": "999"},
            "state": "running",
        }  # fmt: skip
    found: set[str] = set()
    try:
        for shape in SHAPES:
            reset_runtime()
            run: ProgramRun = run_program(shape, secrets={"devserver:githubToken": FAKE_TOKEN})
            found |= {r.type for r in run.resources} | {token for token, _ in run.calls}
        # A machine of the default server launched with the configured deploy key: its key
        # pair is read too.
        key = fake_openssh_private_key()
        INSTANCES["i-0devserver"]["tags"]["devserver:rebuild"] = "0"
        KEY_PAIRS["devserver-deploy-2468"] = f"ssh-ed25519 {openssh_public_blob(key)}"
        reset_runtime()
        run = run_program({}, secrets={"devserver:deployPrivateKey": key})
        found |= {r.type for r in run.resources} | {token for token, _ in run.calls}
    finally:
        INSTANCES.clear()
        KEY_PAIRS.clear()
    reset_runtime()
    assert {"aws:ec2/getInstance:getInstance", "aws:ec2/getKeyPair:getKeyPair"} <= found, (
        "the existing machine and its key pair were read"
    )
    return found


def test_the_policy_is_a_valid_iam_policy_document() -> None:
    policy = load_policy()
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids)), f"duplicate Sid in {POLICY_FILE.name}"
    for s in policy["Statement"]:
        assert set(s) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, s["Sid"]
        assert s["Effect"] == "Allow" and s["Action"] and s["Resource"], s["Sid"]
        for action in _list(s["Action"]):
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+\*?", action), f"{s['Sid']}: {action}"


def test_every_aws_resource_and_invoke_the_program_uses_is_mapped(registered: set[str]) -> None:
    unmapped = sorted(t for t in registered if t not in ACTIONS and not NOT_AWS.match(t))
    assert unmapped == [], f"map these types to IAM actions here and in {POLICY_FILE.name}"


def test_the_policy_allows_every_action_the_program_needs(registered: set[str]) -> None:
    needed = {(t, a) for t in registered if t in ACTIONS for a in ACTIONS[t]}
    missing = sorted(f"{a} (for {t})" for t, a in needed if not allowed(a))
    assert missing == [], f"{POLICY_FILE.name} does not allow: {missing}"


def test_the_policy_grants_nothing_the_program_does_not_use() -> None:
    mapped = {a.lower() for actions in ACTIONS.values() for a in actions}
    unused = [
        f"{s['Sid']}: {p}"
        for s in statements()
        for p in _list(s["Action"])
        if not any(fnmatch.fnmatchcase(a, p.lower()) for a in mapped)
    ]
    assert unused == [], f"{POLICY_FILE.name} allows actions no resource needs: {unused}"
    wildcards = [
        p for s in statements() for p in _list(s["Action"]) if p.endswith(":*") or p == "*"
    ]
    assert wildcards == [], "no whole-service wildcards"


@pytest.mark.parametrize(
    ("action", "sid"),
    [
        ("iam:PassRole", "IamPassTheseRolesToEc2AndDlmOnly"),
        ("iam:CreateRole", "IamCreateTaggedRolesAndProfiles"),
        ("ec2:TerminateInstances", "Ec2ChangeOnlyWhatThisProgramTagged"),
        ("ec2:DeleteVolume", "Ec2ChangeOnlyWhatThisProgramTagged"),
        ("secretsmanager:GetSecretValue", "SecretsManagerDevserverSecretsOnly"),
        ("kms:CreateGrant", "KmsCustomerKeysThroughEbsOnly"),
    ],
)
def test_dangerous_actions_are_scoped_to_what_this_program_owns(action: str, sid: str) -> None:
    assert allowed(action) == [sid], f"{action} must be allowed only by {sid}"
    statement = next(s for s in statements() if s["Sid"] == sid)
    assert statement.get("Condition") or statement["Resource"] != "*", (
        f"{sid}: {action} needs a resource scope or a condition"
    )


def test_roles_profiles_and_ec2_resources_carry_the_tag_the_policy_scopes_by(
    program: Callable[..., ProgramRun],
) -> None:
    run = program(
        secrets={"devserver:githubToken": FAKE_TOKEN}, overrides={"devserver:preset": "x86-spot"}
    )
    tagged_types = {
        "aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile",
        "aws:ec2/instance:Instance", "aws:ebs/volume:Volume", "aws:ec2/keyPair:KeyPair",
        "aws:ec2/securityGroup:SecurityGroup",
    }  # fmt: skip
    for r in run.resources:
        if r.type in tagged_types:
            tags = r.inputs.get("tags") or {}
            assert tags.get("devserver:purpose") == "devserver", (
                f"{r.type} {r.name} lacks the devserver:purpose tag the operator policy relies on"
            )


def test_the_token_secret_name_is_under_the_policys_devserver_prefix(
    program: Callable[..., ProgramRun],
) -> None:
    run = program(secrets={"devserver:githubToken": FAKE_TOKEN})
    secret = run.one("aws:secretsmanager/secret:Secret")
    name = secret.inputs.get("name")
    if name is None:
        pytest.skip("the secret is auto-named until issue 10's devserver/<stack>/<server>/ name")
    assert fnmatch.fnmatchcase(f"secret:{name}", "secret:devserver/*"), (
        f"secret {secret.name}: name {name!r} is outside the policy's devserver/* scope"
    )


def test_readme_links_the_policy_and_the_security_page_lists_the_same_services() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/operator-iam-policy.json" in readme
    page = (ROOT / "docs" / "security.md").read_text()
    section = page.split("## What your AWS identity needs", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([a-z0-9-]+):[A-Z][A-Za-z0-9]*\*?`", section))
    in_policy = {a.split(":")[0] for s in statements() for a in _list(s["Action"])}
    assert listed == in_policy, (
        f"security.md lists {sorted(listed)}, the policy has {sorted(in_policy)}"
    )
    for s in statements():
        for action in _list(s["Action"]):
            assert action in section, f"docs/security.md's permission list misses {action}"
