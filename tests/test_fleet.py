"""A team fleet in one stack: `devserver:servers`, each entry its own server; top-level keys are defaults."""

from collections.abc import Callable
from typing import Any

import pytest

from components.settings import SettingsError
from tests.program import ProgramRun

Run = Callable[..., ProgramRun]
ALICE = {"name": "alice", "user": "alice", "githubUser": "alice-example"}
BOB = {
    "name": "bob",
    "user": "bob",
    "githubUser": "bob-example",
    "preset": "graviton-spot",
    "homeVolumeGiB": 300,
}


def fleet(*servers: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"devserver:servers": list(servers), **overrides}


def test_each_server_gets_its_own_machine_home_volume_and_role(program: Run) -> None:
    run = program(fleet(ALICE, BOB))
    instances = {r.name: r for r in run.of_type("aws:ec2/instance:Instance")}
    assert set(instances) == {"alice-x86_64", "bob-aarch64"}
    volumes = {r.name: r.inputs["size"] for r in run.of_type("aws:ebs/volume:Volume")}
    assert volumes == {"alice-home": 100, "bob-home": 300}
    roles = {r.name for r in run.of_type("aws:iam/role:Role")}
    assert roles == {"alice-role", "bob-role", "home-snapshots-role"}, "one role each, one for DLM"
    assert (
        instances["bob-aarch64"].inputs["instanceMarketOptions"]["spotOptions"]["spotInstanceType"]
        == "persistent"
    )
    owners = {r.name: r.inputs["tags"]["devserver:owner"] for r in instances.values()}
    assert owners == {"alice-x86_64": "alice", "bob-aarch64": "bob"}


def test_top_level_keys_are_the_defaults_for_every_entry(program: Run) -> None:
    run = program(fleet(ALICE, BOB, **{"devserver:rootVolumeGiB": 64}))
    for instance in run.of_type("aws:ec2/instance:Instance"):
        assert instance.inputs["rootBlockDevice"]["volumeSize"] == 64, instance.name
    ssh = {
        r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6")
        for r in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    }
    assert ssh == {"203.0.113.7/32", "2001:db8:1234::/48"}, "both servers take the stack's CIDRs"


def test_servers_share_a_security_group_per_cidr_list_and_one_deploy_key(program: Run) -> None:
    carol = {
        "name": "carol",
        "user": "carol",
        "githubUser": "carol-gh",
        "sshAllowedCidrs": ["198.51.100.0/24"],
    }
    run = program(fleet(ALICE, BOB, carol))
    groups = run.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert len(groups) == 2, [g.name for g in groups]
    by_server = run.outputs["servers"]
    assert by_server["alice"]["securityGroupId"] == by_server["bob"]["securityGroupId"]
    assert by_server["carol"]["securityGroupId"] != by_server["alice"]["securityGroupId"]
    carol_rules = [
        r
        for r in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs.get("cidrIpv4") == "198.51.100.0/24"
    ]
    assert len(carol_rules) == 1
    assert len(run.of_type("aws:ec2/keyPair:KeyPair")) == 1, "one deploy key for the stack"
    assert len({i.inputs["keyName"] for i in run.of_type("aws:ec2/instance:Instance")}) == 1


def test_outputs_map_each_server_to_the_per_server_contract(program: Run) -> None:
    run = program(fleet(ALICE, BOB))
    assert set(run.outputs) == {"servers", "estimatedCost"}, "a fleet: servers and its total cost"
    assert set(run.outputs["servers"]) == {"alice", "bob"}
    bob = run.outputs["servers"]["bob"]
    assert bob["user"] == "bob" and bob["arch"] == "aarch64"
    assert bob["sshCommand"].startswith("ssh bob@")
    assert set(bob) == set(run.outputs["servers"]["alice"])


def test_each_server_renders_its_own_host_flake(program: Run) -> None:
    run = program(fleet(ALICE, BOB))
    flakes = {
        r.name: r.inputs["source"].text
        for r in run.of_type("command:remote:CopyToRemote")
        if r.name.endswith("-host-flake")
    }
    assert 'hostName = "bob";' in flakes["bob-host-flake"]
    assert 'nixpkgs.hostPlatform = "aarch64-linux";' in flakes["bob-host-flake"]
    assert 'user = "alice";' in flakes["alice-host-flake"]


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        (
            [ALICE, {**BOB, "name": "alice"}],
            "devserver:servers[1].name 'alice' is already used by devserver:servers[0]",
        ),
        (
            [ALICE, {**BOB, "user": "alice"}],
            "devserver:servers[1].user 'alice' is already used by devserver:servers[0]",
        ),
        (
            [ALICE, {**BOB, "hostName": "alice"}],
            "devserver:servers[1].hostName 'alice' is already used",
        ),
        (
            [ALICE, {**BOB, "arch": "sparc"}],
            "devserver:servers[1].arch must be x86_64 or aarch64, got 'sparc'",
        ),
        (
            [ALICE, {**BOB, "instanceType": "m7i.xlarge"}],
            "devserver:servers[1].instanceType 'm7i.xlarge' runs x86_64",
        ),
        ([ALICE, {**BOB, "colour": "blue"}], "devserver:servers[1] has unknown keys colour"),
        ([ALICE, "bob"], "devserver:servers[1] must be an object"),
        ([{**ALICE, "name": "Alice!"}], "devserver:servers[0].name must be a server name"),
        (
            [{k: v for k, v in BOB.items() if k != "name"}],
            "devserver:servers[0].name must be a server name",
        ),
    ],
    ids=[
        "duplicate name",
        "duplicate user",
        "duplicate host",
        "bad arch",
        "wrong arch type",
        "unknown key",
        "not an object",
        "bad name",
        "no name",
    ],
)
def test_bad_entries_are_named_and_nothing_is_registered(
    program: Run, servers: list[Any], message: str
) -> None:
    run = program(fleet(*servers), raise_errors=False)
    assert isinstance(run.error, SettingsError), run.error
    assert message in str(run.error), str(run.error)
    assert run.resources == []


def test_an_entry_without_a_user_inherits_the_top_level_one(program: Run) -> None:
    run = program(fleet({"name": "solo", "githubUser": "solo-gh"}))
    assert run.outputs["servers"]["solo"]["user"] == "alice"
