"""docs/iam/operator-policy.json allows what the program does to AWS, and no more than it needs.

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
from tests.program_actions import ACTIONS, NOT_AWS, registered_types

POLICY_FILE = ROOT / "docs" / "iam" / "operator-policy.json"


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
    return registered_types()


def test_the_policy_is_a_valid_iam_policy_document() -> None:
    policy = load_policy()
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids)), f"duplicate Sid in {POLICY_FILE.name}"
    for s in policy["Statement"]:
        assert set(s) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, s["Sid"]
        assert s["Effect"] in ("Allow", "Deny") and s["Action"] and s["Resource"], s["Sid"]
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
        if s["Effect"] == "Allow"
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
        ("iam:CreateRole", "IamCreateRolesUnderDevserverPathWithTheBoundaryOnly"),
        ("ec2:TerminateInstances", "Ec2ChangeOnlyWhatThisProgramTagged"),
        ("ec2:DeleteVolume", "Ec2ChangeOnlyWhatThisProgramTagged"),
        ("secretsmanager:GetSecretValue", "SecretsManagerDevserverSecretsOnly"),
        ("kms:CreateGrant", "KmsCustomerKeysThroughEbsOnly"),
        ("s3:DeleteBucket", "S3BinaryCacheBucketsOnly"),
        ("s3:PutBucketPolicy", "S3BinaryCacheBucketsOnly"),
        ("s3:PutObject", "S3BinaryCacheBucketsOnly"),
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
    assert "docs/iam/operator-policy.json" in readme
    page = (ROOT / "docs" / "security.md").read_text()
    section = page.split("## What your AWS identity needs", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([a-z0-9-]+):[A-Z][A-Za-z0-9]*\*?`", section))
    in_policy = {a.split(":")[0] for s in statements() for a in _list(s["Action"])}
    assert listed == in_policy, (
        f"security.md lists {sorted(listed)}, the policy has {sorted(in_policy)}"
    )
    for s in statements():
        assert s["Sid"] in section, f"docs/security.md does not explain {s['Sid']}"
        for action in _list(s["Action"]):
            assert action in section, f"docs/security.md's permission list misses {action}"


def test_the_binary_cache_bucket_is_named_inside_the_policys_s3_scope(
    program: Callable[..., ProgramRun],
) -> None:
    run = program({"devserver:binaryCache": True})
    bucket = run.one("aws:s3/bucket:Bucket").state["bucket"]
    (s3,) = [s for s in statements() if s["Sid"] == "S3BinaryCacheBucketsOnly"]
    arns = (f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/nix-cache-info")
    for arn in arns:
        assert any(fnmatch.fnmatchcase(arn, r) for r in s3["Resource"]), f"{arn} is outside {s3}"
    secret = run.one("aws:secretsmanager/secret:Secret").inputs["name"]
    assert fnmatch.fnmatchcase(f"secret:{secret}", "secret:devserver/*"), secret
