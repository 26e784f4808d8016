"""The real __main__.py with the suite's stack (tests/stacks/), under mocks: what `pulumi up` would create."""

import json
from collections.abc import Callable

import pytest

from components.home_volume import nvme_device_path
from tests.program import FAKE_TOKEN, NIXOS_AMIS, ProgramRun, walk_strings

Run = Callable[..., ProgramRun]
INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"
ATTACHMENT = "aws:ec2/volumeAttachment:VolumeAttachment"
CANCELLER = "pulumi-python:dynamic:Resource"
TOKEN = {"devserver:githubToken": FAKE_TOKEN}
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"

# The StackReference contract (README.md, "Outputs"): renaming any of these breaks consumers.
DOCUMENTED_OUTPUTS = {
    "instanceId", "publicIp", "publicDns", "sshCommand", "user", "arch", "amiId",
    "availabilityZone", "homeVolumeId", "instanceRoleArn", "githubTokenSecretArn",
    "securityGroupId",
}  # fmt: skip
# Added beyond the contract (also stable once released).
EXTRA_OUTPUTS = {
    "sshHostKey", "estimatedCost", "binaryCacheUrl", "binaryCachePublicKey", "deployPhases",
}  # fmt: skip


@pytest.mark.parametrize(
    ("preset", "arch", "ec2_arch", "instance_type", "spot"),
    [
        ("x86", "x86_64", "x86_64", "m7i.xlarge", False),
        ("x86-spot", "x86_64", "x86_64", "m7i.xlarge", True),
        ("graviton", "aarch64", "arm64", "m7g.xlarge", False),
        ("graviton-spot", "aarch64", "arm64", "m7g.xlarge", True),
    ],
)
def test_each_preset_builds_a_machine_of_its_arch_and_pricing(
    program: Run, preset: str, arch: str, ec2_arch: str, instance_type: str, spot: bool
) -> None:
    run = program({"devserver:preset": preset})
    instance = run.one(INSTANCE)
    assert instance.name == f"devserver-{arch}", "the machine's name carries its arch"
    assert instance.inputs["instanceType"] == instance_type
    assert instance.inputs["ami"] == NIXOS_AMIS[ec2_arch], (
        f"{preset} boots the {ec2_arch} NixOS AMI"
    )
    ami_query = next(a for t, a in run.calls if t == "aws:ec2/getAmi:getAmi")
    assert ami_query["owners"] == ["427812963091"] and ami_query["mostRecent"] is True
    assert {"name": "architecture", "values": [ec2_arch]} in ami_query["filters"]
    assert {"name": "name", "values": ["nixos/26.05*"]} in ami_query["filters"]
    market = instance.inputs.get("instanceMarketOptions")
    if spot:
        assert market["marketType"] == "spot"
        assert market["spotOptions"]["spotInstanceType"] == "persistent"
        assert market["spotOptions"]["instanceInterruptionBehavior"] == "stop"
    else:
        assert market is None, f"{preset} is on-demand"
    assert run.outputs["arch"] == arch
    assert run.outputs["amiId"] == NIXOS_AMIS[ec2_arch]


def test_stack_keys_override_the_preset(program: Run) -> None:
    run = program(
        {
            "devserver:preset": "graviton",
            "devserver:instanceType": "c7g.2xlarge",
            "devserver:availabilityZone": "eu-west-1b",
            "devserver:spot": True,
            "devserver:spotMaxPrice": "0.12",
            "devserver:homeVolumeGiB": 250,
            "devserver:rootVolumeGiB": 80,
        }
    )
    instance = run.one(INSTANCE)
    assert instance.inputs["instanceType"] == "c7g.2xlarge"
    assert instance.inputs["rootBlockDevice"]["volumeSize"] == 80
    assert instance.inputs["instanceMarketOptions"]["spotOptions"]["maxPrice"] == "0.12"
    assert run.one(VOLUME).inputs["size"] == 250


def test_exports_exactly_the_documented_outputs(program: Run) -> None:
    run = program()
    assert set(run.outputs) == DOCUMENTED_OUTPUTS | EXTRA_OUTPUTS | {"servers"}
    assert set(run.outputs["servers"]["devserver"]) == DOCUMENTED_OUTPUTS | EXTRA_OUTPUTS
    assert run.outputs["sshCommand"] == f"ssh alice@{run.outputs['publicDns']}"
    assert run.outputs["user"] == "alice"
    assert run.outputs["availabilityZone"] == "eu-west-1a"
    assert run.outputs["homeVolumeId"].startswith("vol-")
    assert run.outputs["githubTokenSecretArn"] is None, "no token configured, no secret"


def test_ssh_is_not_open_to_the_world(program: Run) -> None:
    run = program()
    group = run.one("aws:ec2/securityGroup:SecurityGroup")
    assert not group.inputs.get("ingress"), "no inline rules that could bypass the list"
    rules = run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    allowed = {(r.inputs.get("cidrIpv4"), r.inputs.get("cidrIpv6")) for r in rules}
    assert allowed == {("203.0.113.7/32", None), (None, "2001:db8:1234::/48")}
    for rule in rules:
        assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (22, 22), rule.name
        assert rule.inputs["ipProtocol"] == "tcp", rule.name
        assert rule.inputs.get("cidrIpv4") != "0.0.0.0/0", rule.name
        assert rule.inputs.get("cidrIpv6") != "::/0", rule.name


def test_instance_requires_imdsv2_with_hop_limit_one(program: Run) -> None:
    for preset in ("x86", "graviton-spot"):
        options = program({"devserver:preset": preset}).one(INSTANCE).inputs["metadataOptions"]
        assert options["httpTokens"] == "required", preset
        assert options["httpPutResponseHopLimit"] == 1, f"{preset}: containers must not reach IMDS"


def test_root_and_home_volumes_are_encrypted_gp3(program: Run) -> None:
    run = program()
    root = run.one(INSTANCE).inputs["rootBlockDevice"]
    assert root["encrypted"] is True and root["volumeType"] == "gp3"
    home = run.one(VOLUME)
    assert home.inputs["encrypted"] is True and home.inputs["type"] == "gp3", home.name


def test_home_volume_is_protected_and_retained_on_delete(program: Run) -> None:
    home = program().one(VOLUME)
    assert home.opts is not None
    assert home.opts.protect is True, f"{home.name} must be protected from pulumi destroy"
    assert home.opts.retain_on_delete is True, f"{home.name} must be kept in AWS when deleted"
    assert home.inputs["tags"]["devserver:role"] == "home"


def test_unprotecting_the_home_volume_still_retains_it_in_aws(program: Run) -> None:
    home = program({"devserver:homeVolumeProtect": False}).one(VOLUME)
    assert home.opts is not None
    assert home.opts.protect is False
    assert home.opts.retain_on_delete is True


def test_home_volume_sits_in_the_machines_zone_and_is_attached_to_it(program: Run) -> None:
    run = program({"devserver:availabilityZone": "eu-west-1b"})
    volume, instance, attachment = run.one(VOLUME), run.one(INSTANCE), run.one(ATTACHMENT)
    assert volume.inputs["availabilityZone"] == "eu-west-1b"
    assert instance.inputs["subnetId"] == "subnet-0b0b0b0b", "the machine is in the volume's zone"
    assert attachment.inputs["instanceId"].startswith("i-")
    assert attachment.inputs["volumeId"] == run.outputs["homeVolumeId"]
    assert attachment.inputs["stopInstanceBeforeDetaching"] is True
    assert attachment.opts is not None and attachment.opts.delete_before_replace is True


def test_unpinned_zone_is_the_first_that_offers_the_instance_type(program: Run) -> None:
    run = program({"devserver:instanceType": "c7g.2xlarge", "devserver:arch": "aarch64"},
                  unset=("devserver:availabilityZone",))  # fmt: skip
    assert run.outputs["availabilityZone"] == "eu-west-1b", "c7g is only offered in 1b here"


def test_home_device_path_is_the_stable_nvme_name_never_xvdb() -> None:
    path = nvme_device_path("vol-0123456789abcdef0")
    assert path == "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"
    assert "xvd" not in path


def test_newer_ami_does_not_replace_the_machine(program: Run) -> None:
    instance = program().one(INSTANCE)
    assert instance.opts is not None and "ami" in (instance.opts.ignore_changes or [])


def test_arch_switch_replaces_the_machine_and_keeps_the_same_home_volume(program: Run) -> None:
    x86 = program({"devserver:preset": "x86"})
    arm = program({"devserver:preset": "graviton"})
    # A new logical name means a new instance, created from the new arch's AMI (ignore_changes
    # would otherwise carry the old AMI over to a replacement).
    assert x86.one(INSTANCE).name != arm.one(INSTANCE).name
    assert arm.one(INSTANCE).inputs["ami"] == NIXOS_AMIS["arm64"]
    # Same logical name and inputs: Pulumi sees the very same volume, untouched.
    assert x86.one(VOLUME).name == arm.one(VOLUME).name
    assert x86.one(VOLUME).inputs == arm.one(VOLUME).inputs


@pytest.mark.parametrize("preset", ["x86-spot", "graviton-spot"])
def test_destroying_a_spot_machine_cancels_its_persistent_request(
    program: Run, preset: str
) -> None:
    run = program({"devserver:preset": preset})
    instance = run.one(INSTANCE)
    canceller = run.one(CANCELLER)
    assert canceller.inputs["spotInstanceRequestId"].startswith("sir-")
    assert canceller.inputs["region"] == "eu-west-1"
    assert canceller.opts is not None
    # Depending on the instance makes Pulumi delete (cancel) it before terminating the instance.
    depends_on = canceller.opts.depends_on or []
    assert any(getattr(d, "_name", None) == instance.name for d in depends_on)
    # The operator policy cancels only tagged requests, and RunInstances does not tag them.
    (tag,) = [t for t in run.of_type("aws:ec2/tag:Tag") if t.inputs["key"] == "devserver:purpose"]
    assert (tag.inputs["key"], tag.inputs["value"]) == ("devserver:purpose", "devserver")
    assert tag.inputs["resourceId"] == canceller.inputs["spotInstanceRequestId"]
    assert any(getattr(d, "_name", None) == tag.name for d in depends_on), (
        "the request is cancelled while it still carries the tag the policy asks for"
    )


def test_on_demand_machines_have_no_spot_request_to_cancel(program: Run) -> None:
    assert program({"devserver:preset": "graviton"}).of_type(CANCELLER) == []


def test_machine_powered_off_from_inside_stops_rather_than_terminates(program: Run) -> None:
    for preset in ("x86", "x86-spot"):
        instance = program({"devserver:preset": preset}).one(INSTANCE)
        assert instance.inputs["instanceInitiatedShutdownBehavior"] == "stop", preset


def test_token_never_appears_in_plaintext_anywhere(program: Run) -> None:
    run = program(secrets=TOKEN)
    holders = []
    for resource in run.resources:
        for text, secret in walk_strings(resource.inputs):
            if FAKE_TOKEN in text:
                assert secret, f"{resource.type} {resource.name} has the token in plaintext"
                holders.append(resource.type)
    assert holders == ["aws:secretsmanager/secretVersion:SecretVersion"]
    for token, args in run.calls:
        assert FAKE_TOKEN not in json.dumps(args), f"the token went to the invoke {token}"
    assert FAKE_TOKEN not in json.dumps(run.outputs), "the token is in a stack output"


def test_instance_role_may_read_only_the_token_secret(program: Run) -> None:
    run = program(secrets=TOKEN)
    secret_arn = run.outputs["githubTokenSecretArn"]
    assert secret_arn.endswith("-Ab12Cd"), "the real ARN, with its random suffix"
    policy = run.named("devserver-read-github-token")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    assert statements == [
        {
            "Sid": "ReadGithubToken",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secret_arn,
        }
    ], f"{policy.name} must allow GetSecretValue on that one ARN and nothing else"
    assume = json.loads(run.named("devserver-role").inputs["assumeRolePolicy"])
    assert assume["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert not [a for a in attached if a.inputs["role"].startswith("devserver-role")], (
        "no managed policy"
    )


def test_customer_kms_key_adds_decrypt_on_that_key_through_secrets_manager_only(
    program: Run,
) -> None:
    run = program({"devserver:githubTokenKmsKeyArn": KMS_KEY}, secrets=TOKEN)
    assert run.one("aws:secretsmanager/secret:Secret").inputs["kmsKeyId"] == KMS_KEY
    policy = run.named("devserver-read-github-token").inputs["policy"]
    decrypt = json.loads(policy)["Statement"][1]
    assert (decrypt["Action"], decrypt["Resource"]) == ("kms:Decrypt", KMS_KEY)
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}
    }


def test_without_a_token_there_is_no_secret_and_no_policy(program: Run) -> None:
    run = program()
    assert run.of_type("aws:secretsmanager/secret:Secret") == []
    policies = [p.name for p in run.of_type("aws:iam/rolePolicy:RolePolicy")]
    assert policies == ["devserver-session-manager"], "no token policy without a token"


def test_break_glass_grants_session_manager_channels_and_nothing_that_reads(program: Run) -> None:
    run = program(secrets=TOKEN)
    policy = json.loads(run.named("devserver-session-manager").inputs["policy"])
    (statement,) = policy["Statement"]
    assert sorted(statement["Action"]) == [
        "ssm:UpdateInstanceInformation",
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    ], "the AWSCloud9SSMInstanceProfile set: no ssm:GetParameter, no secrets, no S3"
    assert statement["Resource"] == "*" and statement["Effect"] == "Allow"
    attached = run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert not [a for a in attached if "SSM" in json.dumps(a.inputs)], "no managed SSM policy"


def test_break_glass_can_be_turned_off(program: Run) -> None:
    run = program({"devserver:ssmSessionManager": False}, secrets=TOKEN)
    policies = [p.name for p in run.of_type("aws:iam/rolePolicy:RolePolicy")]
    assert policies == ["devserver-read-github-token"]


def test_every_aws_resource_is_parented_under_a_component(program: Run) -> None:
    run = program({"devserver:preset": "x86-spot"}, secrets=TOKEN)
    # Providers are configuration (the Price List API's region), not AWS resources.
    managed = [
        r for r in run.resources if not r.type.startswith(("devserver:", "pulumi:providers:"))
    ]
    assert len(managed) > 10
    for resource in managed:
        assert resource.parent_types, f"{resource.type} {resource.name} has no parent"
        assert any(t.startswith("devserver:") for t in resource.parent_types), (
            f"{resource.type} {resource.name} is not under a devserver component"
        )


def test_machine_and_disks_carry_owner_and_purpose_tags(program: Run) -> None:
    run = program()
    for resource in (run.one(INSTANCE), run.one(VOLUME), run.named("devserver-role")):
        tags = resource.inputs["tags"]
        assert tags["devserver:owner"] == "alice", resource.name
        assert tags["devserver:purpose"] == "devserver", resource.name
    assert run.one(INSTANCE).inputs["rootBlockDevice"]["tags"]["devserver:owner"] == "alice"


def test_adopted_home_volume_is_read_not_managed_and_sets_the_zone(program: Run) -> None:
    run = program({"devserver:homeVolumeId": "vol-0123456789abcdef0"},
                  unset=("devserver:availabilityZone",))  # fmt: skip
    # A read registers no new volume: the mock sees a lookup by id instead of a create.
    (volume,) = run.of_type(VOLUME)
    assert run.outputs["homeVolumeId"] == "vol-0123456789abcdef0"
    assert volume.inputs == {} or "size" not in volume.inputs
    assert run.outputs["availabilityZone"] == "eu-west-1b", "the machine follows the volume"


def test_stopped_state_stops_the_machine(program: Run) -> None:
    state = program({"devserver:state": "stopped"}).one(
        "aws:ec2transitgateway/instanceState:InstanceState"
    )
    assert state.inputs["state"] == "stopped"


def test_home_volumes_carry_the_one_tag_the_snapshot_policy_selects(program: Run) -> None:
    run = program()
    policy = run.one("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    target = policy.inputs["policyDetails"]["targetTags"]
    assert target == {"devserver:home-snapshots": "dev"}
    assert target.items() <= run.one(VOLUME).inputs["tags"].items()
    root_tags = run.one(INSTANCE).inputs["rootBlockDevice"]["tags"]
    assert not target.items() <= root_tags.items(), "root disks are not snapshotted"


def test_snapshots_can_be_turned_off(program: Run) -> None:
    assert (
        program({"devserver:snapshots": False}).of_type("aws:dlm/lifecyclePolicy:LifecyclePolicy")
        == []
    )


@pytest.mark.parametrize("preset", ["x86", "graviton-spot"])
def test_each_server_exports_a_cost_labelled_as_an_estimate(program: Run, preset: str) -> None:
    cost = program({"devserver:preset": preset}).outputs["estimatedCost"]
    assert cost["estimate"] is True and cost["currency"] == "USD"
    assert 0 < cost["hourly"] < 1 and cost["monthly"] > cost["hourly"] * 700
    assert ("what a spot machine pays at worst" in cost["basis"]) == preset.endswith("spot")
