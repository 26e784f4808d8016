"""The shipped IAM policies decide concrete requests as IAM would (tests/iam_eval.py): the
operator cannot make or change a role without the boundary, developer A cannot touch developer
B's machine, volume, secret or session, and the preview role allows every lookup the program
makes in each shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from components.settings import USER_RE
from components.settings.model import STACK_OWNER
from tests.iam_eval import Request, allowed, decide
from tests.program import FAKE_TOKEN, ROOT, ProgramRun
from tests.program_actions import ACTIONS, NOT_AWS, is_invoke, registered_types

IAM = ROOT / "docs" / "iam"
ACCOUNT = "123456789012"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/devserver-boundary"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/devserver/alice-role-0a1b2c3"
INSTANCE = "arn:aws:ec2:eu-west-1:{}:instance/i-0{}".format
VOLUME = "arn:aws:ec2:eu-west-1:{}:volume/vol-0{}".format
SECRET = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:devserver/dev/{{}}/github-token-Ab12"


def policy(name: str) -> dict[str, Any]:
    return dict(json.loads((IAM / name).read_text()))


def principal(owner: str | None) -> dict[str, Any]:
    """The request context every call of this principal carries."""
    context: dict[str, Any] = {"aws:PrincipalAccount": ACCOUNT}
    if owner:
        context["aws:PrincipalTag/devserver:owner"] = owner
    return context


def owned(owner: str) -> dict[str, str]:
    return {
        "aws:ResourceTag/devserver:purpose": "devserver",
        "aws:ResourceTag/devserver:owner": owner,
    }


# A stack-level role (CI writer, fleet snapshot role): the reserved owner STACK_OWNER.
STACK_ROLE = {
    "aws:PrincipalAccount": ACCOUNT,
    "aws:PrincipalTag/devserver:owner": STACK_OWNER,
    "aws:PrincipalTag/devserver:purpose": "devserver",
}
OPERATOR = [policy("operator-policy.json")]
DEVELOPER = [policy("developer-policy.json")]
PURPOSE = {"aws:RequestTag/devserver:purpose": "devserver"}


@pytest.mark.parametrize("identity", [OPERATOR, DEVELOPER], ids=["operator", "developer"])
@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        # A role that trusts its creator and holds "Action": "*" is admin: never without the boundary.
        ("iam:CreateRole", ROLE, {**PURPOSE}),
        ("iam:CreateRole", ROLE, {**PURPOSE, "iam:PermissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/Admin"}),
        ("iam:PutRolePolicy", ROLE, {**owned("alice")}),
        ("iam:AttachRolePolicy", ROLE, {**owned("alice"), "iam:PolicyARN": "arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"}),
        ("iam:PutRolePermissionsBoundary", ROLE, {**owned("alice"), "iam:PermissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/Admin"}),
        ("iam:DeleteRolePermissionsBoundary", ROLE, {**owned("alice"), "iam:PermissionsBoundary": BOUNDARY}),
        ("iam:CreatePolicyVersion", BOUNDARY, {}),
        # Outside the program's own path: not even with the boundary.
        ("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/admin", {**PURPOSE, "iam:PermissionsBoundary": BOUNDARY, "aws:RequestTag/devserver:owner": "alice"}),
        ("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/OrganizationAccountAccessRole", {**owned("alice"), "iam:PermissionsBoundary": BOUNDARY}),
    ],
)  # fmt: skip
def test_no_role_is_created_or_changed_without_the_boundary(
    identity: list[dict[str, Any]], action: str, resource: str, context: dict[str, Any]
) -> None:
    request = Request(action, resource, {**principal("alice"), **context})
    assert decide(request, identity) != "Allow", f"{action} on {resource} with {context}"


@pytest.mark.parametrize("identity", [OPERATOR, DEVELOPER], ids=["operator", "developer"])
def test_the_program_still_creates_and_changes_its_roles_with_the_boundary(
    identity: list[dict[str, Any]],
) -> None:
    me = principal("alice")
    create = {
        **PURPOSE,
        "iam:PermissionsBoundary": BOUNDARY,
        "aws:RequestTag/devserver:owner": "alice",
    }
    change = {**owned("alice"), "iam:PermissionsBoundary": BOUNDARY}
    dlm = "arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"
    for action, context in [
        ("iam:CreateRole", create),
        ("iam:TagRole", {**create, "aws:TagKeys": ["devserver:purpose", "devserver:owner"]}),
        ("iam:PutRolePolicy", change),
        ("iam:AttachRolePolicy", {**change, "iam:PolicyARN": dlm}),
        ("iam:PassRole", {**owned("alice"), "iam:PassedToService": "ec2.amazonaws.com"}),
        ("iam:DeleteRole", owned("alice")),
    ]:
        assert decide(Request(action, ROLE, {**me, **context}), identity) == "Allow", action


def test_the_boundary_caps_a_role_that_trusts_its_creator() -> None:
    """Even `"Action": "*"` on a role with the boundary gives only the boundary's few actions,
    and only on its owner's things."""
    everything = [
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
    ]
    boundary = policy("devserver-boundary.json")
    alice_role = principal("alice")
    assert (
        decide(
            Request("iam:CreateUser", "arn:aws:iam::123456789012:user/x", alice_role),
            everything,
            boundary,
        )
        != "Allow"
    )
    assert (
        decide(
            Request(
                "ec2:TerminateInstances", INSTANCE(ACCOUNT, "bob"), {**alice_role, **owned("bob")}
            ),
            everything,
            boundary,
        )
        != "Allow"
    )
    read = "secretsmanager:GetSecretValue"
    assert (
        decide(
            Request(read, SECRET.format("bob"), {**alice_role, **owned("bob")}),
            everything,
            boundary,
        )
        != "Allow"
    )
    assert (
        decide(
            Request(read, SECRET.format("alice"), {**alice_role, **owned("alice")}),
            everything,
            boundary,
        )
        == "Allow"
    )
    snapshot = "ec2:CreateSnapshot"
    assert (
        decide(
            Request(snapshot, VOLUME(ACCOUNT, "bob"), {**alice_role, **owned("bob")}),
            everything,
            boundary,
        )
        != "Allow"
    )
    assert (
        decide(
            Request(snapshot, VOLUME(ACCOUNT, "alice"), {**alice_role, **owned("alice")}),
            everything,
            boundary,
        )
        == "Allow"
    )
    # The machine's own role: Session Manager's agent actions only as an EC2 instance.
    agent = {**alice_role, "ec2:SourceInstanceARN": INSTANCE(ACCOUNT, "alice")}
    assert (
        decide(Request("ssm:UpdateInstanceInformation", "*", agent), everything, boundary)
        == "Allow"
    )
    assert (
        decide(Request("ssm:UpdateInstanceInformation", "*", alice_role), everything, boundary)
        != "Allow"
    )
    # A fleet's snapshot role is owned by the stack (=stack); a developer can never create one.
    fleet = {**STACK_ROLE}
    assert (
        decide(
            Request(snapshot, VOLUME(ACCOUNT, "bob"), {**fleet, **owned("bob")}),
            everything,
            boundary,
        )
        == "Allow"
    )
    no_owner = Request(
        "iam:CreateRole",
        ROLE,
        {**principal("alice"), **PURPOSE, "iam:PermissionsBoundary": BOUNDARY},
    )
    assert decide(no_owner, DEVELOPER) != "Allow", (
        "a developer's roles always carry their owner tag"
    )


@pytest.mark.parametrize(
    ("action", "resources", "extra"),
    [
        ("ec2:DeleteVolume", [VOLUME(ACCOUNT, "{}")], {}),
        ("ec2:TerminateInstances", [INSTANCE(ACCOUNT, "{}")], {}),
        ("ec2:StopInstances", [INSTANCE(ACCOUNT, "{}")], {}),
        ("ec2:DetachVolume", [INSTANCE(ACCOUNT, "{}"), VOLUME(ACCOUNT, "{}")], {}),
        ("secretsmanager:GetSecretValue", [SECRET], {}),
        ("secretsmanager:PutSecretValue", [SECRET], {}),
        ("ssm:StartSession", [INSTANCE(ACCOUNT, "{}")], {}),
    ],
)
def test_a_developer_touches_their_own_machine_volume_secret_and_session_only(
    action: str, resources: list[str], extra: dict[str, Any]
) -> None:
    def request(owner: str) -> list[Request]:
        tags = {
            **owned(owner),
            "ssm:resourceTag/devserver:owner": owner,
            "ssm:resourceTag/devserver:purpose": "devserver",
        }
        return [
            Request(action, r.format(owner), {**principal("alice"), **tags, **extra})
            for r in resources
        ]

    assert allowed(request("alice"), DEVELOPER), f"alice may {action} her own"
    assert not allowed(request("bob"), DEVELOPER), f"alice must not {action} bob's"
    assert allowed(request("bob"), OPERATOR), (
        f"the operator (an admin) may {action} any of the fleet"
    )


@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        # Rewriting the owner tag would turn bob's things into alice's.
        ("ec2:CreateTags", VOLUME(ACCOUNT, "bob"), {**owned("bob"), "aws:RequestTag/devserver:owner": "alice", "aws:TagKeys": ["devserver:owner"]}),
        ("ec2:CreateTags", VOLUME(ACCOUNT, "alice"), {**owned("alice"), "aws:RequestTag/devserver:owner": "bob", "aws:TagKeys": ["devserver:owner"]}),
        ("ec2:DeleteTags", VOLUME(ACCOUNT, "alice"), {**owned("alice"), "aws:TagKeys": ["devserver:owner"]}),
        ("secretsmanager:TagResource", SECRET.format("bob"), {**owned("bob"), "aws:RequestTag/devserver:owner": "alice", "aws:TagKeys": ["devserver:owner"]}),
        ("iam:TagRole", ROLE.replace("alice", "bob"), {**owned("bob"), **PURPOSE, "aws:RequestTag/devserver:owner": "alice", "aws:TagKeys": ["devserver:owner"]}),
        # Created as someone else.
        ("ec2:RunInstances", INSTANCE(ACCOUNT, "new"), {"aws:RequestTag/devserver:owner": "bob"}),
        ("ec2:CreateVolume", VOLUME(ACCOUNT, "new"), {"aws:RequestTag/devserver:owner": "bob"}),
        ("secretsmanager:CreateSecret", SECRET.format("bob"), {"aws:RequestTag/devserver:owner": "bob"}),
        # Bob's role on alice's machine would read bob's token.
        ("iam:PassRole", ROLE.replace("alice", "bob"), {**owned("bob"), "iam:PassedToService": "ec2.amazonaws.com"}),
    ],
)  # fmt: skip
def test_a_developer_cannot_take_over_another_developers_things(
    action: str, resource: str, context: dict[str, Any]
) -> None:
    assert (
        decide(Request(action, resource, {**principal("alice"), **context}), DEVELOPER) != "Allow"
    )


def test_a_principal_without_an_owner_tag_gets_nothing_from_the_developer_policy() -> None:
    untagged = {**principal(None), **owned("bob")}
    assert (
        decide(Request("ec2:TerminateInstances", INSTANCE(ACCOUNT, "bob"), untagged), DEVELOPER)
        == "ExplicitDeny"
    )


@pytest.fixture(scope="module")
def invokes() -> set[str]:
    return {t for t in registered_types() if is_invoke(t) and not NOT_AWS.match(t)}


def test_the_preview_role_allows_every_lookup_the_program_makes(invokes: set[str]) -> None:
    preview = [policy("preview-policy.json")]
    missing = sorted(
        f"{action} (for {token})"
        for token in invokes
        for action in ACTIONS[token]
        if decide(Request(action, "*", principal(None)), preview) != "Allow"
    )
    assert "aws:ec2/getInstance:getInstance" in invokes, "the shapes read an existing machine"
    assert missing == [], f"preview-policy.json does not allow: {missing}"


def test_the_preview_role_changes_nothing_in_aws() -> None:
    preview = policy("preview-policy.json")
    writes = [
        a
        for s in preview["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        if not a.split(":")[1].startswith(("Describe", "Get", "List")) and not a.startswith("s3:")
    ]
    assert writes == [], f"a preview only reads: {writes}"


def test_every_role_the_program_creates_carries_the_boundary_under_its_own_path(
    program: Callable[..., ProgramRun],
) -> None:
    run = program(
        {"devserver:permissionsBoundary": BOUNDARY}, secrets={"devserver:githubToken": FAKE_TOKEN}
    )
    roles = run.of_type("aws:iam/role:Role")
    assert len(roles) == 2, "the instance role and the snapshot role"
    for role in roles:
        assert role.inputs.get("permissionsBoundary") == BOUNDARY, role.name
        assert role.inputs.get("path") == "/devserver/", role.name
    for profile in run.of_type("aws:iam/instanceProfile:InstanceProfile"):
        assert profile.inputs.get("path") == "/devserver/", profile.name
    snapshot_role = run.named("home-snapshots-role")
    assert snapshot_role.inputs["tags"]["devserver:owner"] == "alice", (
        "a one-server stack's snapshot role is its developer's (the boundary scopes it by owner)"
    )


def test_the_agents_actions_are_scoped_by_the_condition_key_aws_offers(
    program: Callable[..., ProgramRun],
) -> None:
    """No resource type exists for them (Service Authorization Reference), so `*` stays, and
    ec2:SourceInstanceARN limits them to EC2 instances of the role's account."""
    run = program(secrets={"devserver:githubToken": FAKE_TOKEN})
    (statement,) = json.loads(run.named("devserver-session-manager").inputs["policy"])["Statement"]
    assert statement["Resource"] == "*"
    arn = statement["Condition"]["ArnLike"]["ec2:SourceInstanceARN"]
    assert arn.startswith("arn:aws:ec2:*:") and arn.endswith(":instance/*"), arn
    mine = Request(
        "ssm:UpdateInstanceInformation", "*", {"ec2:SourceInstanceARN": arn.replace("*", "x")}
    )
    assert decide(mine, [{"Statement": [statement]}]) == "Allow"
    assert (
        decide(Request("ssm:UpdateInstanceInformation", "*", {}), [{"Statement": [statement]}])
        != "Allow"
    )


CACHE_OBJECT = "arn:aws:s3:::devserver-cache-20261203abc/nar/0abc.nar.zst"
SIGNING_KEY = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:devserver/team/binary-cache-signing-key-Ab12Cd"
# The CI writer role: owned by the stack, an owner no login can have (components/binary_cache.py).
WRITER = {**STACK_ROLE}
EVERYTHING = [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]


def test_the_boundary_lets_machines_read_caches_and_only_the_stack_owned_writer_push() -> None:
    boundary = policy("devserver-boundary.json")
    alice = principal("alice")

    def under_boundary(action: str, resource: str, context: dict[str, Any]) -> str:
        return decide(Request(action, resource, context), EVERYTHING, boundary)

    assert under_boundary("s3:GetObject", CACHE_OBJECT, alice) == "Allow", "machines read caches"
    assert under_boundary("s3:GetObject", "arn:aws:s3:::payroll/x", alice) != "Allow"
    assert under_boundary("s3:PutObject", CACHE_OBJECT, WRITER) == "Allow"
    assert under_boundary("secretsmanager:GetSecretValue", SIGNING_KEY, WRITER) == "Allow"
    # A developer's role (owner-tagged) can neither push nor read the signing key, whatever
    # identity policy its developer writes; the writer reads no other secret.
    assert under_boundary("s3:PutObject", CACHE_OBJECT, alice) != "Allow"
    assert under_boundary("s3:DeleteObject", CACHE_OBJECT, WRITER) != "Allow"
    assert under_boundary("secretsmanager:GetSecretValue", SIGNING_KEY, alice) != "Allow"
    assert (
        under_boundary("secretsmanager:GetSecretValue", SECRET.format("alice"), WRITER) != "Allow"
    )


def test_only_the_operator_creates_the_stack_owned_writer_role() -> None:
    writer_role = f"arn:aws:iam::{ACCOUNT}:role/devserver/binary-cache-writer-0a1b2c3"
    create = {
        **principal("alice"),
        **PURPOSE,
        "iam:PermissionsBoundary": BOUNDARY,
        "aws:RequestTag/devserver:owner": STACK_OWNER,
    }
    assert decide(Request("iam:CreateRole", writer_role, create), OPERATOR) == "Allow"
    assert decide(Request("iam:CreateRole", writer_role, create), DEVELOPER) != "Allow"


def test_the_cache_writer_role_carries_the_boundary_under_its_own_path(
    program: Callable[..., ProgramRun],
) -> None:
    run = program(
        {
            "devserver:permissionsBoundary": BOUNDARY,
            "devserver:binaryCache": True,
            "devserver:binaryCacheWriterRepository": "acme/infra",
        }
    )
    roles = run.of_type("aws:iam/role:Role")
    assert {r.name for r in roles} >= {"binary-cache-writer"}
    for role in roles:
        assert role.inputs.get("permissionsBoundary") == BOUNDARY, role.name
        assert role.inputs.get("path") == "/devserver/", role.name
    (writer,) = [r for r in roles if r.name == "binary-cache-writer"]
    assert writer.inputs["tags"]["devserver:owner"] == STACK_OWNER, "only stack-owned roles push"
    (key,) = run.of_type("aws:secretsmanager/secret:Secret")
    assert key.inputs["tags"]["devserver:owner"] == STACK_OWNER, "a developer cannot claim it"


# --- Chained requests: a developer changes tags, then acts on what the change would give. ---

WRITER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/devserver/binary-cache-writer-0a1b2c3"
DLM_POLICY = f"arn:aws:dlm:eu-west-1:{ACCOUNT}:policy/policy-0a1b2c3"
SG = f"arn:aws:ec2:eu-west-1:{ACCOUNT}:security-group/sg-0a1b2c3"


def tag_context(tags: dict[str, str]) -> dict[str, str]:
    return {f"aws:ResourceTag/{k}": v for k, v in tags.items()}


def chain(steps: list[tuple[str, str, dict[str, str] | list[str] | None]]) -> list[str]:
    """Run tag changes then an act as alice under the developer policy, each on the tags the
    resource has after the steps before; returns the actions that were allowed, in order, up to
    the first refusal (a refused step leaves the tags as they were)."""
    tags: dict[str, str] = {}
    done: list[str] = []
    for action, resource, change in steps:
        if action == "start":
            assert isinstance(change, dict)
            tags = dict(change)
            continue
        context: dict[str, Any] = {**principal("alice"), **tag_context(tags)}
        if isinstance(change, dict):  # tag: keys and values
            context |= {f"aws:RequestTag/{k}": v for k, v in change.items()}
            context["aws:TagKeys"] = list(change)
        elif isinstance(change, list):  # untag: keys only
            context["aws:TagKeys"] = change
        if decide(Request(action, resource, context), DEVELOPER) != "Allow":
            return done
        done.append(action)
        if isinstance(change, dict):
            tags |= change
        elif isinstance(change, list):
            tags = {k: v for k, v in tags.items() if k not in change}
    return done


STACK_OWNED = {"devserver:purpose": "devserver", "devserver:owner": STACK_OWNER}


@pytest.mark.parametrize(
    ("steps", "what"),
    [
        # Untag then act: her own role made ownerless would pass the old boundary as the writer.
        ([("start", ROLE, owned_tags := {"devserver:purpose": "devserver", "devserver:owner": "alice"}),
          ("iam:UntagRole", ROLE, ["devserver:owner"]),
          ("iam:UpdateAssumeRolePolicy", ROLE, None)], "make her role ownerless"),
        ([("start", ROLE.replace("role/", "instance-profile/"), owned_tags),
          ("iam:UntagInstanceProfile", ROLE.replace("role/", "instance-profile/"), ["devserver:owner"])],
         "make her instance profile ownerless"),
        ([("start", SECRET.format("alice"), owned_tags),
          ("secretsmanager:UntagResource", SECRET.format("alice"), ["devserver:owner"])], "make her secret ownerless"),
        ([("start", DLM_POLICY, owned_tags),
          ("dlm:UntagResource", DLM_POLICY, ["devserver:owner"])], "make her DLM policy ownerless"),
        ([("start", VOLUME(ACCOUNT, "alice"), owned_tags),
          ("ec2:DeleteTags", VOLUME(ACCOUNT, "alice"), None)], "delete every tag of her volume"),
        # Tag then act: claim a stack-owned writer role, signing key or DLM policy.
        ([("start", WRITER_ROLE, STACK_OWNED),
          ("iam:TagRole", WRITER_ROLE, {"devserver:owner": "alice", "devserver:purpose": "devserver"}),
          ("iam:UpdateAssumeRolePolicy", WRITER_ROLE, None)], "claim the CI writer role"),
        ([("start", SIGNING_KEY, STACK_OWNED),
          ("secretsmanager:TagResource", SIGNING_KEY, {"devserver:owner": "alice"}),
          ("secretsmanager:GetSecretValue", SIGNING_KEY, None)], "claim the signing key"),
        ([("start", DLM_POLICY, STACK_OWNED),
          ("dlm:TagResource", DLM_POLICY, {"devserver:owner": "alice"}),
          ("dlm:DeleteLifecyclePolicy", DLM_POLICY, None)], "claim the fleet's DLM policy"),
        # An ownerless signing key (a stack made before the reserved owner): not a token secret.
        ([("start", SIGNING_KEY, {"devserver:purpose": "devserver"}),
          ("secretsmanager:TagResource", SIGNING_KEY, {"devserver:owner": "alice"}),
          ("secretsmanager:GetSecretValue", SIGNING_KEY, None)], "claim an ownerless signing key"),
        ([("start", SIGNING_KEY, {}),
          ("secretsmanager:CreateSecret", SIGNING_KEY, {"devserver:owner": "alice"})],
         "squat the signing key's name"),
        # Ownerless pieces a stack made before the reserved owner: created, so never claimable.
        ([("start", WRITER_ROLE, {"devserver:purpose": "devserver"}),
          ("iam:TagRole", WRITER_ROLE, {"devserver:owner": "alice", "devserver:purpose": "devserver"}),
          ("iam:UpdateAssumeRolePolicy", WRITER_ROLE, None)], "claim an ownerless writer role"),
        ([("start", DLM_POLICY, {"devserver:purpose": "devserver"}),
          ("dlm:TagResource", DLM_POLICY, {"devserver:owner": "alice"}),
          ("dlm:DeleteLifecyclePolicy", DLM_POLICY, None)], "claim an ownerless DLM policy"),
        # And the stack-owned things directly, without any tag change.
        ([("start", SIGNING_KEY, STACK_OWNED),
          ("secretsmanager:GetSecretValue", SIGNING_KEY, None)], "read the signing key"),
        ([("start", WRITER_ROLE, STACK_OWNED),
          ("iam:UpdateAssumeRolePolicy", WRITER_ROLE, None)], "trust herself in the writer role"),
        # Give bob's volume her owner tag (after creation), then attach it.
        ([("start", VOLUME(ACCOUNT, "bob"), {"devserver:purpose": "devserver", "devserver:owner": "bob"}),
          ("ec2:CreateTags", VOLUME(ACCOUNT, "bob"), {"devserver:owner": "alice"}),
          ("ec2:AttachVolume", VOLUME(ACCOUNT, "bob"), None)], "take bob's volume"),
    ],
)  # fmt: skip
def test_no_chain_of_tag_changes_gives_a_developer_what_is_not_theirs(
    steps: list[tuple[str, str, Any]], what: str
) -> None:
    acts = [action for action, _, _ in steps if action != "start"]
    assert chain(steps) != acts, f"alice could {what}: {acts}"
    assert chain(steps)[:1] == [], f"alice's first step to {what} must already be refused"


def test_the_reserved_stack_owner_is_no_login_name() -> None:
    assert not USER_RE.fullmatch(STACK_OWNER)
    assert USER_RE.fullmatch("stack"), "the value differs from a login by its `=` alone"


def test_session_tags_cannot_stand_in_for_the_owner_tag() -> None:
    """AssumeRole's session tags override the role's tags (STS API reference, AssumeRole)."""
    tag = {
        **principal("alice"),
        "aws:RequestTag/devserver:owner": "bob",
        "aws:TagKeys": ["devserver:owner"],
    }
    assert decide(Request("sts:TagSession", ROLE, tag), DEVELOPER) == "ExplicitDeny"


def test_an_ownerless_role_gets_nothing_stack_level_from_the_boundary() -> None:
    """Ownerless is not trusted: only the reserved stack owner pushes, reads the key, or snapshots
    volumes it does not own."""
    boundary = policy("devserver-boundary.json")
    ownerless = {"aws:PrincipalAccount": ACCOUNT, "aws:PrincipalTag/devserver:purpose": "devserver"}
    snapshot = "arn:aws:ec2:eu-west-1::snapshot/snap-0a1b2c3"
    bob = {
        **owned("bob"),
        "aws:RequestTag/devserver:owner": "alice",
        "aws:TagKeys": ["devserver:owner"],
    }
    for role in (ownerless, principal("alice")):
        for action, resource, context in [
            ("s3:PutObject", CACHE_OBJECT, {}),
            ("secretsmanager:GetSecretValue", SIGNING_KEY, tag_context(STACK_OWNED)),
            ("ec2:CreateTags", INSTANCE(ACCOUNT, "bob"), bob),
            ("ec2:CreateTags", VOLUME(ACCOUNT, "bob"), bob),
            ("ec2:DeleteSnapshot", snapshot, owned("bob")),
        ]:
            request = Request(action, resource, {**role, **context})
            assert decide(request, EVERYTHING, boundary) != "Allow", (action, role)
    # The stack's own snapshot role tags and deletes snapshots, never instances or volumes.
    assert (
        decide(
            Request("ec2:CreateTags", VOLUME(ACCOUNT, "bob"), {**STACK_ROLE, **bob}),
            EVERYTHING,
            boundary,
        )
        != "Allow"
    )
    assert (
        decide(
            Request("ec2:DeleteSnapshot", snapshot, {**STACK_ROLE, **owned("bob")}),
            EVERYTHING,
            boundary,
        )
        == "Allow"
    )


def test_a_fleets_snapshot_role_and_policy_are_owned_by_the_stack(
    program: Callable[..., ProgramRun],
) -> None:
    alice = {"name": "alice", "user": "alice", "githubUser": "alice-example"}
    bob = {"name": "bob", "user": "bob", "githubUser": "bob-example"}
    run = program({"devserver:servers": [alice, bob]})
    for name in ("home-snapshots-role", "home-snapshots-policy"):
        assert run.named(name).inputs["tags"]["devserver:owner"] == STACK_OWNER, name


def test_tagging_a_foreign_resource_after_creation_makes_it_nobodys_to_take() -> None:
    """A purpose tag added later would put a prod instance or key pair under the program's scope."""
    prod = INSTANCE(ACCOUNT, "prod")
    purpose = {
        **principal("alice"),
        "aws:RequestTag/devserver:purpose": "devserver",
        "aws:TagKeys": ["devserver:purpose"],
    }
    assert decide(Request("ec2:CreateTags", prod, purpose), OPERATOR) != "Allow"
    assert decide(Request("ec2:CreateTags", SG, purpose), DEVELOPER) != "Allow"
    created = {**purpose, "ec2:CreateAction": "RunInstances"}
    assert decide(Request("ec2:CreateTags", prod, created), OPERATOR) == "Allow", "tag on create"


@pytest.mark.parametrize(
    "action",
    [
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:ModifySecurityGroupRules",
    ],
)
def test_a_developer_changes_rules_of_their_own_security_group_only(action: str) -> None:
    me = principal("alice")
    assert decide(Request(action, SG, {**me, **owned("alice")}), DEVELOPER) == "Allow"
    assert decide(Request(action, SG, {**me, **owned("bob")}), DEVELOPER) != "Allow"
    assert decide(Request(action, SG, me), DEVELOPER) != "Allow", "another workload's group"


@pytest.mark.parametrize(
    "action", ["ec2:ReleaseAddress", "ec2:DisassociateAddress", "ec2:AssociateAddress"]
)
def test_a_developer_moves_or_releases_their_own_elastic_ip_only(action: str) -> None:
    eip = f"arn:aws:ec2:eu-west-1:{ACCOUNT}:elastic-ip/eipalloc-0a1b2c3"
    me = principal("alice")
    assert decide(Request(action, eip, {**me, **owned("alice")}), DEVELOPER) == "Allow"
    assert decide(Request(action, eip, {**me, **owned("bob")}), DEVELOPER) != "Allow"
    assert decide(Request(action, eip, me), DEVELOPER) != "Allow"
