"""A machine's life after the first `pulumi up`: rebuild, spot interruption, zone, arch, keys.

Each test drives the real program under the mocks, with what AWS would already hold (a home
volume from an earlier run, an interrupted spot instance) put into the fake AWS's tables.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from components.settings import openssh_public_blob
from tests import program as fake
from tests.program import SECRET_SIG, ProgramRun, walk_strings

Run = Callable[..., ProgramRun]
INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"
ATTACHMENT = "aws:ec2/volumeAttachment:VolumeAttachment"
STATE = "aws:ec2transitgateway/instanceState:InstanceState"
CANCELLER = "pulumi-python:dynamic:Resource"
COMMAND = "command:remote:Command"
GET_INSTANCES = "aws:ec2/getInstances:getInstances"
HOME_TAGS = {
    "devserver:stack": "dev",
    "devserver:server": "devserver",
    "devserver:role": "home",
}
SERVER_TAGS = {
    "devserver:stack": "dev",
    "devserver:server": "devserver",
    "devserver:owner": "alice",
    "devserver:purpose": "devserver",
}
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
MRK = "arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"


@pytest.fixture(autouse=True)
def aws_tables() -> Iterator[None]:
    """What AWS holds before the run; emptied after each test."""
    yield
    fake.VOLUME_TAGS.clear()
    fake.INSTANCES.clear()
    fake.KEY_PAIRS.clear()


def _ignored(run: ProgramRun, type_: str) -> list[str]:
    opts = run.one(type_).opts
    assert opts is not None, f"{type_} options were captured"
    return list(opts.ignore_changes or [])


# --- 5. rebuild ---------------------------------------------------------------------------------


def test_rebuild_generation_zero_keeps_the_existing_machine_name(program: Run) -> None:
    # Stacks created before the key existed must not see their machine replaced.
    assert program().one(INSTANCE).name == "devserver-x86_64"


@pytest.mark.parametrize("preset", ["x86", "graviton-spot"])
def test_raising_rebuild_makes_a_new_machine_from_the_current_ami_and_keeps_home(
    program: Run, preset: str
) -> None:
    before = program({"devserver:preset": preset})
    after = program({"devserver:preset": preset, "devserver:rebuild": 1})
    old, new = before.one(INSTANCE), after.one(INSTANCE)
    # A new name has no old state, so ignore_changes cannot carry the launch AMI over.
    assert new.name != old.name and new.name.endswith("-r1"), new.name
    arch = "arm64" if preset.startswith("graviton") else "x86_64"
    assert new.inputs["ami"] == fake.NIXOS_AMIS[arch], "the newest official AMI"
    assert before.one(VOLUME).name == after.one(VOLUME).name, "/home is the same volume"
    attachment = after.one(ATTACHMENT)
    assert attachment.opts is not None and attachment.opts.delete_before_replace
    assert attachment.inputs["instanceId"].startswith("i-0"), "attached to the new machine"
    if preset.endswith("spot"):
        assert after.one(CANCELLER).name == f"{new.name}-spot-request", "one canceller per machine"


@pytest.mark.parametrize("value", [-1, "soon", 10**7])
def test_rebuild_must_be_a_small_whole_number(program: Run, value: Any) -> None:
    run = program({"devserver:rebuild": value}, raise_errors=False)
    assert "devserver:rebuild must be a whole number from 0 to 999999" in str(run.error)


# --- 5b. a change the running machine cannot take in place --------------------------------------


def _machine(
    *,
    spot: bool = False,
    instance_type: str = "m7i.xlarge",
    subnet: str = "subnet-0a0a0a0a",
    rebuild: str | None = "0",
    max_price: str | None = None,
    state: str = "running",
    instance_id: str = "i-0running000000001",
) -> None:
    """The server's machine as an earlier `pulumi up` launched it (dev stack: eu-west-1a)."""
    tags = dict(SERVER_TAGS, Name="dev")
    if rebuild is not None:
        tags["devserver:rebuild"] = rebuild
    if spot and rebuild is not None:
        tags["devserver:spotMaxPrice"] = max_price or "none"
    fake.INSTANCES[instance_id] = {
        "tags": tags,
        "state": state,
        "lifecycle": "spot" if spot else None,
        "instanceType": instance_type,
        "subnetId": subnet,
        "keyName": "devserver-deploy-2468",
    }


@pytest.mark.parametrize(
    ("machine", "overrides", "named"),
    [
        ({}, {"devserver:spot": True}, "devserver:spot false -> true"),
        ({"spot": True}, {"devserver:spot": False}, "devserver:spot true -> false"),
        (
            {"spot": True, "max_price": "0.05"},
            {"devserver:spot": True, "devserver:spotMaxPrice": "0.08"},
            "devserver:spotMaxPrice '0.05' -> '0.08'",
        ),
        (
            {"spot": True},
            {"devserver:spot": True, "devserver:spotMaxPrice": "0.08"},
            "devserver:spotMaxPrice unset -> '0.08'",
        ),
        (
            {"subnet": "subnet-0b0b0b0b"},
            {},
            "devserver:availabilityZone subnet-0b0b0b0b (eu-west-1b) -> "
            "subnet-0a0a0a0a (eu-west-1a)",
        ),
    ],
)
def test_a_launch_setting_change_without_a_rebuild_is_refused_before_any_resource(
    program: Run, machine: dict[str, Any], overrides: dict[str, Any], named: str
) -> None:
    # A same-name replace would launch from the AMI ignore_changes keeps (deregistered ~90 days on).
    _machine(**machine)
    run = program(overrides, raise_errors=False)
    message = str(run.error)
    assert named in message, message
    assert "i-0running000000001 cannot take this change in place" in message
    assert "launched with" in message, "says why: the replacement would reuse the launch AMI"
    assert "Raise devserver:rebuild to 1 in the same update" in message
    assert f"current AMI {fake.NIXOS_AMIS['x86_64']}" in message
    assert "/home and the Elastic IP move to it" in message
    # Found by tags: a same-named stack of someone else in the account would match them too.
    assert "devserver:stack=dev, devserver:server=devserver" in message
    assert "another stack of the same name" in message
    assert run.resources == [], "refused before any resource is registered"


def test_a_spot_machines_type_change_is_refused_with_the_rebuild_hint(program: Run) -> None:
    # The provider would stop the machine and EC2 refuses a stopped spot instance's new type.
    _machine(spot=True, rebuild="2")
    run = program(
        {"devserver:spot": True, "devserver:rebuild": 2, "devserver:instanceType": "m7i.2xlarge"},
        raise_errors=False,
    )
    message = str(run.error)
    assert "devserver:instanceType m7i.xlarge -> m7i.2xlarge" in message, message
    assert "a stopped spot instance's type cannot be modified" in message
    assert "Raise devserver:rebuild to 3 in the same update" in message
    assert run.resources == []


def test_an_on_demand_type_change_is_still_an_in_place_update(program: Run) -> None:
    _machine()
    run = program({"devserver:instanceType": "m7i.2xlarge"})
    instance = run.one(INSTANCE)
    assert instance.name == "devserver-x86_64", "the same machine, resized in place"
    assert instance.inputs["instanceType"] == "m7i.2xlarge"


@pytest.mark.parametrize(
    ("machine", "overrides"),
    [
        ({"spot": True}, {"devserver:spot": True, "devserver:instanceType": "m7i.2xlarge"}),
        ({}, {"devserver:spot": True}),
        ({"subnet": "subnet-0b0b0b0b"}, {}),
    ],
)
def test_the_same_change_with_a_raised_rebuild_boots_a_new_machine_from_the_current_ami(
    program: Run, machine: dict[str, Any], overrides: dict[str, Any]
) -> None:
    _machine(**machine)
    run = program({**overrides, "devserver:rebuild": 1})
    assert run.error is None
    instance = run.one(INSTANCE)
    assert instance.name == "devserver-x86_64-r1", "a new name: no ignored AMI is carried over"
    assert instance.inputs["ami"] == fake.NIXOS_AMIS["x86_64"], "the current official AMI"
    assert instance.inputs["tags"]["devserver:rebuild"] == "1", "the next plan compares with it"


def test_a_first_create_finds_no_machine_and_launches_as_before(program: Run) -> None:
    run = program({"devserver:spot": True, "devserver:spotMaxPrice": "0.08"})
    instance = run.one(INSTANCE)
    assert instance.name == "devserver-x86_64"
    assert instance.inputs["tags"]["devserver:rebuild"] == "0"
    assert instance.inputs["tags"]["devserver:spotMaxPrice"] == "0.08"
    asks = [a for t, a in run.calls if t == GET_INSTANCES and "state-reason" not in str(a)]
    assert asks and all(
        a["instanceTags"] == {k: v for k, v in SERVER_TAGS.items() if k != "devserver:owner"}
        for a in asks
    ), "the server's machines are found by stack, server and purpose (a new owner keeps them)"
    assert set(asks[0]["instanceStateNames"]) == {"pending", "running", "stopping", "stopped"}


@pytest.mark.parametrize(
    ("machine", "overrides"),
    [
        ({}, {}),
        ({"spot": True, "max_price": "0.08"}, {"devserver:spot": True}),  # max price removed
        (
            {"spot": True, "max_price": "0.080"},
            {"devserver:spot": True, "devserver:spotMaxPrice": "0.08"},
        ),
        ({"state": "stopped"}, {"devserver:state": "stopped"}),
        ({"spot": True, "state": "terminated"}, {}),  # gone for good: a new machine anyway
        ({"spot": True, "instance_type": "m7g.xlarge"}, {}),  # another arch: another name
        ({"spot": True, "rebuild": "1"}, {"devserver:rebuild": 2}),  # an older generation
    ],
)
def test_what_the_machine_can_take_passes_and_keeps_its_name(
    program: Run, machine: dict[str, Any], overrides: dict[str, Any]
) -> None:
    # The provider suppresses a removed max price and trailing zeros (ec2_instance.go).
    _machine(**machine)
    run = program(overrides)
    assert run.error is None
    assert run.one(INSTANCE).name.startswith("devserver-x86_64")


def test_an_untagged_machine_is_compared_and_the_message_says_why(program: Run) -> None:
    # Launched before the tag: its generation is unknown, so the safe answer is to refuse.
    _machine(rebuild=None)
    run = program({"devserver:spot": True, "devserver:rebuild": 1}, raise_errors=False)
    assert "i-0running000000001 has no devserver:rebuild tag yet" in str(run.error)
    assert program({}, raise_errors=False).error is None, "an unchanged launch just adds the tag"


def test_a_new_deploy_key_from_config_is_refused_without_a_rebuild(program: Run) -> None:
    # key_name is ForceNew: a rotated key replaces the key pair, so the machine, from its old AMI.
    _machine()
    old, new = fake.fake_openssh_private_key(), _other_fake_key()
    fake.KEY_PAIRS["devserver-deploy-2468"] = f"ssh-ed25519 {openssh_public_blob(old)} x\n"
    same = program(secrets={"devserver:deployPrivateKey": old}, raise_errors=False)
    assert same.error is None, "the key the machine was launched with is no change"
    rotated = program(secrets={"devserver:deployPrivateKey": new}, raise_errors=False)
    message = str(rotated.error)
    assert "devserver:deployPrivateKey key pair devserver-deploy-2468 (SHA256:" in message, message
    assert "Raise devserver:rebuild to 1" in message
    assert "FAKE-PRIVATE" not in message and new not in message, "only public fingerprints shown"
    with_rebuild = program(
        {"devserver:rebuild": 1}, secrets={"devserver:deployPrivateKey": new}, raise_errors=False
    )
    assert with_rebuild.error is None


def test_turning_deployment_on_for_a_machine_launched_without_a_key_is_refused(
    program: Run,
) -> None:
    _machine()
    fake.INSTANCES["i-0running000000001"]["keyName"] = ""
    run = program(raise_errors=False)
    assert "devserver:deploy false (no key pair) -> true" in str(run.error)
    assert program({"devserver:deploy": False}).error is None, "no key pair wanted: no change"


def _other_fake_key() -> str:
    """A second obviously fake key, with another public half."""
    text = fake.fake_openssh_private_key()
    body = base64.b64decode("".join(text.strip().splitlines()[1:-1]))
    body = body.replace(b"FAKE-PUBLIC-KEY-FOR-TESTS", b"FAKE-PUBLIC-KEY-FOR-TESTZ")
    encoded = base64.b64encode(body).decode()
    lines = [encoded[i : i + 70] for i in range(0, len(encoded), 70)]
    return "\n".join([text.splitlines()[0], *lines, text.strip().splitlines()[-1]]) + "\n"


def test_every_server_of_a_fleet_is_checked_with_its_own_key(program: Run) -> None:
    _machine()  # server "devserver" is not in the fleet; bob's machine is
    fake.INSTANCES["i-0bob0000000000001"] = {
        **fake.INSTANCES.pop("i-0running000000001"),
        "tags": {**SERVER_TAGS, "devserver:server": "bob", "devserver:rebuild": "0"},
    }
    servers = [
        {"name": "alice", "user": "alice", "githubUser": "alice-example"},
        {"name": "bob", "user": "bob", "githubUser": "bob-example", "spot": True},
    ]
    run = program({"devserver:servers": servers}, raise_errors=False)
    assert "devserver:servers[1].spot false -> true" in str(run.error), run.error
    assert "Raise devserver:servers[1].rebuild to 1" in str(run.error)


# --- 6. spot interruption -----------------------------------------------------------------------


def _interrupted(code: str = "Server.SpotInstanceShutdown", lifecycle: str | None = "spot") -> None:
    fake.INSTANCES["i-0interrupted00001"] = {
        "tags": SERVER_TAGS,
        "state": "stopped",
        "stateReasonCode": code,
        "lifecycle": lifecycle,
    }


def test_an_interrupted_spot_machine_is_left_for_ec2_to_restart(
    program: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []
    monkeypatch.setattr("components.plan.pulumi.log.warn", warnings.append)
    _interrupted()
    run = program({"devserver:preset": "x86-spot"})
    # StartInstances fails while interrupted: keep whatever state the instance has.
    assert _ignored(run, STATE) == ["state"], "InstanceState must not start the machine"
    assert run.of_type(COMMAND) == [], "no SSH deployment to a machine that is stopped"
    assert any("i-0interrupted00001" in w and "only EC2 may start it" in w for w in warnings)


@pytest.mark.parametrize(
    ("code", "preset"),
    [("Client.UserInitiatedShutdown", "x86-spot"), ("Server.SpotInstanceShutdown", "x86")],
)
def test_a_machine_stopped_otherwise_is_managed_as_usual(
    program: Run, code: str, preset: str
) -> None:
    # The machine is what the stack launched (spot or not), so the plan changes no launch setting.
    _interrupted(code, "spot" if preset.endswith("spot") else None)
    run = program({"devserver:preset": preset})
    assert _ignored(run, STATE) == [], "idle stop or `state: stopped` may be undone by Pulumi"
    assert run.of_type(COMMAND), "the flake deployment runs"


def test_the_interruption_lookup_asks_ec2_for_the_interruption_stop_code(program: Run) -> None:
    run = program({"devserver:preset": "graviton-spot"})
    asks = [a for t, a in run.calls if t == GET_INSTANCES and "state-reason-code" in str(a)]
    assert len(asks) == 1, "one interruption lookup per spot server"
    filters = {f["name"]: f["values"] for f in asks[0]["filters"]}
    assert filters == {
        "instance-lifecycle": ["spot"],
        "state-reason-code": ["Server.SpotInstanceShutdown"],
    }
    # The lookup tags, without the owner: a user renamed during an interruption still finds it.
    assert asks[0]["instanceTags"] == {
        k: v for k, v in SERVER_TAGS.items() if k != "devserver:owner"
    }
    on_demand = program({"devserver:preset": "x86"})
    assert not [a for t, a in on_demand.calls if t == GET_INSTANCES and "state-reason" in str(a)]


# --- 7. zone ------------------------------------------------------------------------------------


def _existing_home(volume_id: str = "vol-0123456789abcdef0") -> None:
    fake.VOLUME_TAGS[volume_id] = {**SERVER_TAGS, **HOME_TAGS}


# The existing home volume's size (vol-0123456789abcdef0 is 200 GiB): a smaller one is refused.
HOME_SIZE = {"devserver:homeVolumeGiB": 200}


def test_without_a_zone_the_machine_goes_where_its_home_volume_is(program: Run) -> None:
    _existing_home()  # in eu-west-1b; the first zone offering m7i would be eu-west-1a
    run = program(HOME_SIZE, unset=("devserver:availabilityZone",))
    assert run.outputs["availabilityZone"] == "eu-west-1b"
    assert run.one(INSTANCE).inputs["subnetId"] == "subnet-0b0b0b0b"
    assert run.one(VOLUME).inputs["availabilityZone"] == "eu-west-1b"


def test_an_explicit_zone_other_than_the_home_volumes_is_refused_naming_both(
    program: Run,
) -> None:
    _existing_home()
    run = program({"devserver:availabilityZone": "eu-west-1a"}, raise_errors=False)
    message = str(run.error)
    assert "devserver:availabilityZone is 'eu-west-1a'" in message
    assert "vol-0123456789abcdef0 is in eu-west-1b" in message
    assert run.resources == [], "refused before any resource is registered"


def test_home_volumes_of_other_servers_or_stacks_do_not_move_the_machine(program: Run) -> None:
    fake.VOLUME_TAGS["vol-0123456789abcdef0"] = {**HOME_TAGS, "devserver:stack": "prod"}
    run = program(unset=("devserver:availabilityZone",))
    assert run.outputs["availabilityZone"] == "eu-west-1a"


def test_home_volumes_in_two_zones_are_an_error_that_names_them(program: Run) -> None:
    _existing_home()
    _existing_home("vol-0deadbeefdeadbeef")  # eu-west-1a
    run = program(unset=("devserver:availabilityZone",), raise_errors=False)
    assert "vol-0123456789abcdef0, vol-0deadbeefdeadbeef" in str(run.error)
    assert "devserver:homeVolumeId" in str(run.error)


# --- 8. arch default type -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "spot"), [("x86", False), ("x86-spot", True), ("graviton", False)]
)
def test_setting_only_the_arch_picks_that_archs_default_instance_type(
    program: Run, preset: str, spot: bool
) -> None:
    run = program({"devserver:preset": preset, "devserver:arch": "aarch64"})
    instance = run.one(INSTANCE)
    assert instance.inputs["instanceType"] == "m7g.xlarge", "the graviton presets' type"
    assert bool(instance.inputs.get("instanceMarketOptions")) == spot, "pricing is kept"
    assert run.outputs["arch"] == "aarch64"


def test_setting_x86_on_a_graviton_preset_picks_the_x86_type(program: Run) -> None:
    run = program({"devserver:preset": "graviton-spot", "devserver:arch": "x86_64"})
    assert run.one(INSTANCE).inputs["instanceType"] == "m7i.xlarge", "the x86-spot preset's type"


def test_an_explicit_type_of_the_other_arch_is_still_refused(program: Run) -> None:
    run = program(
        {"devserver:arch": "aarch64", "devserver:instanceType": "m7i.xlarge"}, raise_errors=False
    )
    assert "devserver:instanceType 'm7i.xlarge' runs x86_64" in str(run.error)


def test_a_fleet_entry_setting_only_the_arch_gets_that_archs_type(program: Run) -> None:
    servers = [
        {"name": "bob", "user": "bob", "githubUser": "bob-example", "arch": "aarch64"},
        {"name": "carol", "user": "carol", "githubUser": "carol-example"},
    ]
    run = program({"devserver:servers": servers})
    types = {r.name: r.inputs["instanceType"] for r in run.of_type(INSTANCE)}
    assert types == {"bob-aarch64": "m7g.xlarge", "carol-x86_64": "m7i.xlarge"}


# --- 9. the canceller uses the stack's AWS identity ---------------------------------------------


def test_the_canceller_gets_the_providers_profile_roles_and_keys(program: Run) -> None:
    roles = [
        {"roleArn": "arn:aws:iam::123456789012:role/deployer", "externalId": "e-1"},
        {"roleArn": "arn:aws:iam::210987654321:role/devserver", "duration": "1h"},
    ]
    run = program(
        {"devserver:preset": "x86-spot", "aws:profile": "team", "aws:assumeRoles": roles},
        secrets={"aws:accessKey": "fake-access-key-id-0000", "aws:secretKey": "fake-secret-key"},
    )
    inputs = run.one(CANCELLER).inputs
    assert inputs["profile"] == "team"
    assert [r["roleArn"] for r in inputs["assumeRoles"]] == [r["roleArn"] for r in roles]
    assert inputs["assumeRoles"][0]["externalId"] == "e-1"
    assert inputs["assumeRoles"][1]["durationSeconds"] == 3600
    for key in ("accessKey", "secretKey"):
        assert SECRET_SIG in inputs[key], f"aws:{key} reaches the canceller as a secret"
    plain = [s for s, secret in walk_strings(inputs) if not secret]
    assert "fake-secret-key" not in plain


def test_a_credentials_setting_the_canceller_cannot_follow_is_an_error_for_spot_only(
    program: Run,
) -> None:
    web = {"aws:assumeRoleWithWebIdentity": '{"roleArn": "arn:aws:iam::1:role/x"}'}
    run = program({"devserver:preset": "x86-spot", **web}, raise_errors=False)
    assert "aws:assumeRoleWithWebIdentity is not supported by the spot-request canceller" in str(
        run.error
    )
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" in str(run.error)
    assert program({"devserver:preset": "x86", **web}).error is None, "on-demand needs no canceller"


# --- 10. customer-managed KMS key for EBS -------------------------------------------------------


@pytest.mark.parametrize("key", [KEY, MRK])
def test_a_customer_kms_key_encrypts_the_root_and_home_volumes(program: Run, key: str) -> None:
    run = program({"devserver:ebsKmsKeyArn": key})
    volume, instance = run.one(VOLUME), run.one(INSTANCE)
    assert volume.inputs["encrypted"] and volume.inputs["kmsKeyId"] == key
    root = instance.inputs["rootBlockDevice"]
    assert root["encrypted"] and root["kmsKeyId"] == key
    # A later key change never replaces a volume (data) or, by surprise, the machine.
    assert volume.opts is not None and "kmsKeyId" in (volume.opts.ignore_changes or [])
    assert "rootBlockDevice.kmsKeyId" in _ignored(run, INSTANCE)


def test_the_ebs_key_adds_nothing_to_the_instance_role(program: Run) -> None:
    # EBS encryption is done by EC2 with the operator's grants; the machine never calls KMS.
    without, with_key = program(), program({"devserver:ebsKmsKeyArn": KEY})

    def iam(run: ProgramRun) -> list[tuple[str, str, str]]:
        return [
            (r.type, r.name, text)
            for r in run.resources
            if r.type.startswith("aws:iam/")
            for text, _ in walk_strings(r.inputs)
        ]

    assert sorted(iam(with_key)) == sorted(iam(without)), "the key changes no IAM role or policy"
    assert not [t for t in iam(with_key) if '"kms:' in t[2]], "no KMS action is granted"


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws-cn:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:123456789012:alias/devserver",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
    ],
)
def test_an_ebs_key_outside_the_stacks_region_or_not_a_key_arn_is_refused(
    program: Run, value: str
) -> None:
    run = program({"devserver:ebsKmsKeyArn": value}, raise_errors=False)
    assert "devserver:ebsKmsKeyArn must be a " in str(run.error)
    assert "stack's region eu-west-1" in str(run.error) or "a KMS key ARN (" in str(run.error)
    assert repr(value) in str(run.error)


def test_an_adopted_home_volume_is_not_changed_by_the_ebs_key(program: Run) -> None:
    run = program(
        {"devserver:ebsKmsKeyArn": KEY, "devserver:homeVolumeId": "vol-0123456789abcdef0"},
        unset=("devserver:availabilityZone",),
    )
    # Volume.get reads the volume: a read has no inputs, so nothing of it can change.
    assert [r.inputs for r in run.of_type(VOLUME)] == [{}], "adopted, never managed"
    assert KEY not in str(run.one(VOLUME).inputs)
