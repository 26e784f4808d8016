"""Every bad input stops the program before anything is registered, naming key, value and what is allowed."""

from collections.abc import Callable
from typing import Any

import pytest

from components.settings import MACHINE_KEYS, SettingsError, available_presets, load_preset
from tests.program import INSTANCE_TYPES, ProgramRun

Run = Callable[..., ProgramRun]

BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    (
        "unknown preset",
        {"devserver:preset": "huge"},
        "devserver:preset must be one of graviton, graviton-spot, x86, x86-spot (the files in presets/), got 'huge'",
    ),
    ("arch", {"devserver:arch": "sparc"}, "devserver:arch must be x86_64 or aarch64, got 'sparc'"),
    (
        "arm type on x86",
        {"devserver:instanceType": "m7g.xlarge"},
        "devserver:instanceType 'm7g.xlarge' runs arm64, but arch of presets/x86.yaml is 'x86_64'",
    ),
    (
        "x86 type on graviton preset",
        {"devserver:preset": "graviton", "devserver:instanceType": "m7i.xlarge"},
        "devserver:instanceType 'm7i.xlarge' runs x86_64, but arch of presets/graviton.yaml is 'aarch64'",
    ),
    (
        "unknown type",
        {"devserver:instanceType": "m7x.huge"},
        "devserver:instanceType must be an instance type EC2 offers, got 'm7x.huge'",
    ),
    (
        "type syntax",
        {"devserver:instanceType": "m7i.xlarge; reboot"},
        "devserver:instanceType must be an EC2 instance type like m7i.xlarge, got 'm7i.xlarge; reboot'",
    ),
    (
        "xen type",
        {"devserver:instanceType": "t2.large"},
        "devserver:instanceType must be a Nitro instance type",
    ),
    (
        "spot-less type",
        {"devserver:preset": "x86-spot", "devserver:instanceType": "m7i-flex.xlarge"},
        "devserver:instanceType 'm7i-flex.xlarge' is not offered as spot",
    ),
    (
        "home not a number",
        {"devserver:homeVolumeGiB": "lots"},
        "devserver:homeVolumeGiB must be a whole number from 10 to 16384, got 'lots'",
    ),
    (
        "home fraction",
        {"devserver:homeVolumeGiB": "1.5"},
        "devserver:homeVolumeGiB must be a whole number",
    ),
    (
        "home negative",
        {"devserver:homeVolumeGiB": -5},
        "devserver:homeVolumeGiB must be a whole number from 10 to 16384, got '-5'",
    ),
    (
        "home too small",
        {"devserver:homeVolumeGiB": 5},
        "devserver:homeVolumeGiB must be a whole number from 10 to 16384, got '5'",
    ),
    (
        "root too small",
        {"devserver:rootVolumeGiB": 10},
        "devserver:rootVolumeGiB must be a whole number from 20 to 16384, got '10'",
    ),
    (
        "root bool",
        {"devserver:rootVolumeGiB": True},
        "devserver:rootVolumeGiB must be a whole number",
    ),
    (
        "user root",
        {"devserver:user": "root"},
        "devserver:user must be a login name that is not already a system account",
    ),
    (
        "user nixbld",
        {"devserver:user": "nixbld7"},
        "devserver:user must be a login name that is not already a system account",
    ),
    ("user capitals", {"devserver:user": "Alice"}, "devserver:user must be a Linux login name"),
    ("user space", {"devserver:user": "alice smith"}, "got 'alice smith'"),
    ("user too long", {"devserver:user": "a" * 33}, "devserver:user must be a Linux login name"),
    ("user shell", {"devserver:user": "alice$(id)"}, "devserver:user must be a Linux login name"),
    (
        "github leading hyphen",
        {"devserver:githubUser": "-alice"},
        "devserver:githubUser must be a GitHub user name",
    ),
    ("github double hyphen", {"devserver:githubUser": "al--ice"}, "got 'al--ice'"),
    (
        "github too long",
        {"devserver:githubUser": "a" * 40},
        "devserver:githubUser must be a GitHub user name",
    ),
    (
        "github path",
        {"devserver:githubUser": "alice/../bob"},
        "devserver:githubUser must be a GitHub user name",
    ),
    (
        "cidr world v4",
        {"devserver:sshAllowedCidrs": ["0.0.0.0/0"]},
        "devserver:sshAllowedCidrs[0] must be narrower than the whole internet: SSH is never open to the world, got '0.0.0.0/0'",
    ),
    (
        "cidr world v6",
        {"devserver:sshAllowedCidrs": ["203.0.113.7/32", "::/0"]},
        "devserver:sshAllowedCidrs[1] must be narrower",
    ),
    (
        "cidr host bits",
        {"devserver:sshAllowedCidrs": ["10.1.2.3/8"]},
        "devserver:sshAllowedCidrs[0] must be a CIDR",
    ),
    ("cidr garbage", {"devserver:sshAllowedCidrs": ["my-laptop"]}, "got 'my-laptop'"),
    (
        "cidr not a list",
        {"devserver:sshAllowedCidrs": "203.0.113.7/32"},
        "devserver:sshAllowedCidrs must be a list",
    ),
    (
        "cidr empty",
        {"devserver:sshAllowedCidrs": []},
        "devserver:sshAllowedCidrs is required",
    ),
    (
        "flake quote",
        {"devserver:flake": 'github:acme/infra"; rm -rf ~; "'},
        "devserver:flake must be a flake reference",
    ),
    (
        "flake interpolation",
        {"devserver:flake": "github:acme/${builtins.readFile /etc/shadow}"},
        "devserver:flake must be a flake reference",
    ),
    (
        "flake command",
        {"devserver:flake": "github:acme/infra$(id)"},
        "devserver:flake must be a flake reference",
    ),
    (
        "flake backtick",
        {"devserver:flake": "github:acme/infra`id`"},
        "devserver:flake must be a flake reference",
    ),
    (
        "flake newline",
        {"devserver:flake": "github:acme/infra\nfoo"},
        "devserver:flake must be a flake reference",
    ),
    (
        "flake no scheme",
        {"devserver:flake": "acme/infra"},
        "devserver:flake must be a flake reference with a remote scheme",
    ),
    (
        "spot price negative",
        {"devserver:preset": "x86-spot", "devserver:spotMaxPrice": "-0.1"},
        "devserver:spotMaxPrice must be a positive price in USD per hour, e.g. 0.08, got '-0.1'",
    ),
    (
        "spot price zero",
        {"devserver:preset": "x86-spot", "devserver:spotMaxPrice": "0"},
        "devserver:spotMaxPrice must be a positive price",
    ),
    (
        "spot price word",
        {"devserver:preset": "x86-spot", "devserver:spotMaxPrice": "cheap"},
        "got 'cheap'",
    ),
    (
        "spot price on-demand",
        {"devserver:spotMaxPrice": "0.1"},
        "devserver:spotMaxPrice is set to '0.1' but the machine is on-demand",
    ),
    (
        "spot not bool",
        {"devserver:spot": "maybe"},
        "devserver:spot must be true or false, got 'maybe'",
    ),
    (
        "ami of the other arch",
        {"devserver:amiId": "ami-0bbbbbbbbbbbbbbbb"},
        "devserver:amiId must be an x86_64 image for arch x86_64, got 'ami-0bbbbbbbbbbbbbbbb'",
    ),
    ("ami syntax", {"devserver:amiId": "nixos-latest"}, "devserver:amiId must be an AMI id"),
    (
        "release syntax",
        {"devserver:nixosRelease": "unstable"},
        "devserver:nixosRelease must be a NixOS release like 26.05",
    ),
    (
        "pushed nix/ on a release whose Nix is older than 2.26",
        {"devserver:nixosRelease": "24.11", "devserver:flake": ""},
        "devserver:nixosRelease must be 25.05 or newer while devserver:flake is unset: the pushed "
        "nix/ is a relative `path:./shared` input, which needs Nix 2.26 or newer on the image; "
        "set a newer release, or set devserver:flake to a remote flake, got '24.11'",
    ),
    (
        "release unknown",
        {"devserver:nixosRelease": "19.03", "devserver:flake": "github:acme/infra?dir=nix"},
        "devserver:nixosRelease '19.03' has no current official NixOS AMI for x86_64",
    ),
    (
        "zone of another region",
        {"devserver:availabilityZone": "us-east-1a"},
        "devserver:availabilityZone must be an availability zone of eu-west-1",
    ),
    (
        "zone without the type",
        {"devserver:preset": "graviton", "devserver:instanceType": "c7g.2xlarge"},
        "devserver:instanceType 'c7g.2xlarge' is not offered in eu-west-1a (zones that offer it: eu-west-1b)",
    ),
    (
        "subnet unknown",
        {"devserver:subnetId": "subnet-0f0f0f0f"},
        "devserver:subnetId: the subnet 'subnet-0f0f0f0f' cannot be found",
    ),
    (
        "subnet in another zone",
        {"devserver:subnetId": "subnet-0c0c0c0c"},
        "devserver:subnetId 'subnet-0c0c0c0c' is in eu-west-1c",
    ),
    ("host name", {"devserver:hostName": "Bad_Host"}, "devserver:hostName must be a host name"),
    (
        "home volume unencrypted",
        {"devserver:homeVolumeId": "vol-0deadbeefdeadbeef"},
        "devserver:homeVolumeId must be an encrypted volume, got 'vol-0deadbeefdeadbeef'",
    ),
    (
        "home volume elsewhere",
        {"devserver:homeVolumeId": "vol-0123456789abcdef0"},
        "devserver:availabilityZone must be eu-west-1b (the zone of devserver:homeVolumeId vol-0123456789abcdef0)",
    ),
    (
        "idle minutes",
        {"devserver:idleStopMinutes": -1},
        "devserver:idleStopMinutes must be a whole number from 0 to 1440, got '-1'",
    ),
    (
        "state",
        {"devserver:state": "paused"},
        "devserver:state must be running or stopped, got 'paused'",
    ),
    ("email", {"devserver:email": "alice at example"}, "devserver:email must be an email address"),
    (
        "full name quote",
        {"devserver:fullName": 'Alice "Bobby" Tables'},
        "devserver:fullName must be",
    ),
    (
        "kms key",
        {"devserver:githubTokenKmsKeyArn": "alias/mine"},
        "devserver:githubTokenKmsKeyArn must be a KMS key ARN",
    ),
    (
        "typo key",
        {"devserver:instancetype": "m7i.xlarge"},
        "devserver:instancetype is not a configuration key of this program: did you mean devserver:instanceType?",
    ),
    (
        "region",
        {"aws:region": "mars-1"},
        "aws:region must be an AWS region such as eu-west-1, got 'mars-1'",
    ),
]


@pytest.mark.parametrize(
    ("case", "overrides", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_stops_before_anything_is_registered(
    program: Run, case: str, overrides: dict[str, Any], message: str
) -> None:
    run = program(overrides, raise_errors=False)
    assert isinstance(run.error, SettingsError), (
        f"{case}: expected a settings error, got {run.error!r}"
    )
    assert message in str(run.error), f"{case}: {run.error}"
    assert run.resources == [], f"{case}: registered {[r.name for r in run.resources]}"


@pytest.mark.parametrize("key", ["user", "githubUser", "sshAllowedCidrs"])
def test_missing_required_key_is_named(program: Run, key: str) -> None:
    run = program(unset=(f"devserver:{key}",), raise_errors=False)
    assert isinstance(run.error, SettingsError)
    assert f"devserver:{key} is required" in str(run.error)
    assert run.resources == []


def test_missing_region_is_named(program: Run) -> None:
    run = program(unset=("aws:region",), raise_errors=False)
    assert "aws:region must be an AWS region such as eu-west-1, got None" in str(run.error)


def test_every_problem_is_reported_at_once(program: Run) -> None:
    run = program(
        {"devserver:user": "root", "devserver:arch": "sparc", "devserver:homeVolumeGiB": 1},
        raise_errors=False,
    )
    text = str(run.error)
    assert (
        "devserver:user" in text and "devserver:arch" in text and "devserver:homeVolumeGiB" in text
    )


def test_token_in_plaintext_config_is_refused_without_echoing_it(program: Run) -> None:
    token = "fake-github-token-in-plaintext"
    run = program({"devserver:githubToken": token}, raise_errors=False)
    assert "devserver:githubToken must be stored as a secret" in str(run.error)
    assert token not in str(run.error)
    assert run.resources == []


@pytest.mark.parametrize("preset", available_presets())
def test_presets_set_every_machine_key_with_a_type_of_their_arch(preset: str) -> None:
    values = load_preset(preset)
    assert set(values) == set(MACHINE_KEYS)
    archs, hypervisor, _, vcpus, mib = INSTANCE_TYPES[values["instanceType"]]
    assert {"x86_64": "x86_64", "aarch64": "arm64"}[values["arch"]] in archs, preset
    assert (vcpus, mib) == (4, 16384), f"{preset}: a 4 vCPU / 16 GiB developer default"
    assert hypervisor == "nitro"
    assert values["spot"] == preset.endswith("-spot")


def test_presets_are_exactly_the_four_variants() -> None:
    assert available_presets() == ["graviton", "graviton-spot", "x86", "x86-spot"]
