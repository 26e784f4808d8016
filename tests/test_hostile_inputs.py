"""Hostile and careless inputs, one table row per class of input, several values per row.

A refused value stops the program before anything is registered, with a message that names the
exact key and never repeats a secret. An accepted value runs the whole program.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from components.settings import OPENSSH_KEY_BEGIN, OPENSSH_KEY_END, SettingsError
from tests.program import FAKE_TOKEN, ProgramRun, fake_openssh_private_key

Run = Callable[..., ProgramRun]
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ALICE = {"name": "alice", "user": "alice", "githubUser": "alice-example"}
BOB = {"name": "bob", "user": "bob", "githubUser": "bob-example"}
ADOPTED = "vol-0123456789abcdef0"  # 200 GiB, encrypted, in eu-west-1b (tests/program.py)
KMS_HERE = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
MRK_HERE = "arn:aws:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef"
TOKEN = {"devserver:githubToken": FAKE_TOKEN}
EIGHTS = [f"{i}.0.0.0/8" for i in range(256)]
CACHE_URL = "s3://team-nix-cache?region=eu-west-1"
CACHE_KEY = "team-cache-1:" + "A" * 43 + "="
TEAM_CACHE = {"devserver:binaryCacheUrl": CACHE_URL, "devserver:binaryCachePublicKey": CACHE_KEY}
BOUNDARY = "arn:aws:iam::123456789012:policy/devserver-boundary"


@dataclass(frozen=True)
class Value:
    """One input: config overrides (and secrets), the keys the message must name, and text it
    must contain (or, for accepted values, nothing)."""

    overrides: dict[str, Any]
    keys: tuple[str, ...] = ()
    says: tuple[str, ...] = ()
    secrets: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    never_says: tuple[str, ...] = ()


def fleet(*servers: Any, **overrides: Any) -> dict[str, Any]:
    return {"devserver:servers": list(servers), **overrides}


def cidrs(*values: str) -> dict[str, Any]:
    return {"devserver:sshAllowedCidrs": list(values)}


def pem(kind: str) -> str:
    return f"-----BEGIN {kind}-----\nRkFLRS1LRVktRk9SLVRFU1RT\n-----END {kind}-----\n"


# Each class of input the program must refuse: (class, values).
REFUSED: list[tuple[str, list[Value]]] = [
    (
        "ssh open to the world in pieces or too wide",
        [
            Value(cidrs("0.0.0.0/1", "128.0.0.0/1"), ("devserver:sshAllowedCidrs",), ("IPv4",)),
            Value(
                cidrs("0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"),
                ("devserver:sshAllowedCidrs",),
                ("all of IPv4",),
            ),
            Value(cidrs("::/1", "8000::/1"), ("devserver:sshAllowedCidrs",), ("all of IPv6",)),
            Value(cidrs(*EIGHTS), ("devserver:sshAllowedCidrs",), ("all of IPv4 (0.0.0.0/0)",)),
            Value(cidrs("64.0.0.0/4"), ("devserver:sshAllowedCidrs[0]",), ("/8 or narrower",)),
            Value(cidrs("2000::/3"), ("devserver:sshAllowedCidrs[0]",), ("/32 or narrower",)),
        ],
    ),
    (
        "two servers sharing one home volume",
        [
            Value(
                fleet({**ALICE, "homeVolumeId": ADOPTED}, {**BOB, "homeVolumeId": ADOPTED}),
                ("devserver:servers[1].homeVolumeId", "devserver:servers[0]"),
                unset=("devserver:availabilityZone",),
            ),
            Value(
                fleet(ALICE, BOB, **{"devserver:homeVolumeId": ADOPTED}),
                ("devserver:homeVolumeId", "devserver:servers[1].homeVolumeId"),
                ("every server would mount the same /home",),
                unset=("devserver:availabilityZone",),
            ),
            Value(
                fleet(
                    ALICE,
                    {**BOB, "homeVolumeId": ADOPTED},
                    {**ALICE, "name": "carol", "user": "carol", "homeVolumeId": ADOPTED},
                ),
                ("devserver:servers[2].homeVolumeId", "devserver:servers[1]"),
                unset=("devserver:availabilityZone",),
            ),
        ],
    ),
    (
        "a local flake reference",
        [
            Value({"devserver:flake": ref}, ("devserver:flake",), (why,))
            for ref, why in [
                ("path:/run/devserver", "world-readable /nix/store"),
                ("git+file:///home/alice/infra", "world-readable /nix/store"),
                ("file:///tmp/infra.tar.gz", "world-readable /nix/store"),
                ("tarball+file:///tmp/infra.tgz", "world-readable /nix/store"),
                ("/home/alice/infra", "world-readable /nix/store"),
                ("./infra", "world-readable /nix/store"),
                ("git:/home/alice/infra", "world-readable /nix/store"),
                ("flake:devserver", "registry"),
                ("nixpkgs/nixos-unstable", "registry"),
            ]
        ],
    ),
    (
        "a local or malformed personal flake",
        [
            *(
                Value({"devserver:personalFlake": ref}, ("devserver:personalFlake",), (why,))
                for ref, why in [
                    ("path:/home/alice/dotfiles", "world-readable /nix/store"),
                    ("~/dotfiles", "world-readable /nix/store"),
                    ("git+file:///home/alice/dotfiles", "world-readable /nix/store"),
                    ("flake:dotfiles", "registry"),
                    ('github:alice/dotfiles"; evil = "', "only URL characters"),
                    ("github:alice/dot files", "only URL characters"),
                    ("ssh://github.com/alice/dotfiles", "remote scheme"),
                ]
            ),
            Value(
                fleet(ALICE, {**BOB, "personalFlake": "path:/home/bob/dotfiles"}),
                ("devserver:servers[1].personalFlake",),
                ("world-readable /nix/store",),
            ),
        ],
    ),
    (
        "a login name NixOS refuses or the machine already has",
        [
            Value({"devserver:user": "a" * 32}, ("devserver:user",), ("at most 31",)),
            *(
                Value({"devserver:user": name}, ("devserver:user",), ("system account",))
                for name in ("devserver-keys", "ssm-user", "nixbld12", "systemd-journal-upload")
            ),
            Value(
                fleet({**ALICE, "user": "b" * 40}),
                ("devserver:servers[0].user",),
                ("at most 31",),
            ),
        ],
    ),
    (
        "a full name NixOS or a terminal would choke on",
        [
            Value({"devserver:fullName": name}, ("devserver:fullName",))
            for name in (
                "Alice: Admin",
                "Alice\x00Example",
                "Alice\x1b[31mExample",
                "Alice\x7f",
                "Alice\x85Example",
                "Alice\x9b",
                "Alice\nExample",
            )
        ],
    ),
    (
        "an email with control characters or too long",
        [
            Value({"devserver:email": email}, ("devserver:email",))
            for email in (
                "alice\x00@example.com",
                "alice@exa\x1bmple.com",
                "alice@example.com\x7f",
                "al\x9fice@example.com",
                "a" * 243 + "@example.com",
            )
        ],
    ),
    (
        "a deploy key that is not an unencrypted OpenSSH private key",
        [
            Value(
                {},
                ("devserver:deployPrivateKey",),
                (problem,),
                secrets={"devserver:deployPrivateKey": key},
            )
            for key, problem in [
                ("fake-not-a-key-at-all", "does not start with"),
                ("ssh-ed25519 AAAAFAKEPUBLICKEY alice@laptop", "does not start with"),
                (pem("RSA PRIVATE KEY"), "does not start with"),
                (pem("OPENSSH PRIVATE KEY"), "not an openssh-key-v1 key"),
                (fake_openssh_private_key().rsplit("-----END", 1)[0], "does not end with"),
                (fake_openssh_private_key("aes256-ctr"), "passphrase"),
                (
                    f"{OPENSSH_KEY_BEGIN}\nnot base64!\n{OPENSSH_KEY_END}",
                    "not base64",
                ),
            ]
        ],
    ),
    (
        "a KMS key the token secret cannot use",
        [
            Value(
                {"devserver:githubTokenKmsKeyArn": KMS_HERE.replace("eu-west-1", "us-east-1")},
                ("devserver:githubTokenKmsKeyArn",),
                ("region eu-west-1",),
                secrets=TOKEN,
            ),
            Value(
                {"devserver:githubTokenKmsKeyArn": MRK_HERE.replace("eu-west-1", "us-west-2")},
                ("devserver:githubTokenKmsKeyArn",),
                ("replica",),
                secrets=TOKEN,
            ),
            Value(
                {"devserver:githubTokenKmsKeyArn": KMS_HERE.replace("arn:aws:", "arn:aws-cn:")},
                ("devserver:githubTokenKmsKeyArn",),
                ("partition aws",),
                secrets=TOKEN,
            ),
            Value(
                {"devserver:githubTokenKmsKeyArn": KMS_HERE},
                ("devserver:githubTokenKmsKeyArn",),
                ("unused",),
            ),
            Value(
                {"devserver:githubTokenKmsKeyArn": MRK_HERE},
                ("devserver:githubTokenKmsKeyArn",),
                ("unused",),
            ),
        ],
    ),
    (
        "a permissions boundary that is not a policy of the stack's partition",
        [
            Value(
                {"devserver:permissionsBoundary": "devserver-boundary"},
                ("devserver:permissionsBoundary",),
                ("customer managed policy ARN",),
            ),
            Value(
                {"devserver:permissionsBoundary": "arn:aws:iam::123456789012:role/devserver"},
                ("devserver:permissionsBoundary",),
                ("customer managed policy ARN",),
            ),
            Value(
                {"devserver:permissionsBoundary": "arn:aws-cn:iam::123456789012:policy/b"},
                ("devserver:permissionsBoundary",),
                ("partition aws",),
            ),
        ],
    ),
    (
        "vpcId ignored because subnetId is in another VPC",
        [
            Value(
                {"devserver:vpcId": "vpc-0e1e2e3e", "devserver:subnetId": "subnet-0a0a0a0a"},
                ("devserver:subnetId", "devserver:vpcId"),
                ("vpc-0d3fa017",),
            ),
            Value(
                {"devserver:vpcId": "vpc-0d3fa017", "devserver:subnetId": "subnet-0e0e0e0e"},
                ("devserver:subnetId", "devserver:vpcId"),
                unset=("devserver:availabilityZone",),
            ),
            Value(
                fleet({**ALICE, "vpcId": "vpc-0e1e2e3e", "subnetId": "subnet-0b0b0b0b"}),
                ("devserver:servers[0].subnetId", "devserver:servers[0].vpcId"),
                unset=("devserver:availabilityZone",),
            ),
        ],
    ),
    (
        "a token with whitespace or a newline",
        [
            Value(
                {},
                ("devserver:githubToken",),
                ("value not shown",),
                secrets={"devserver:githubToken": token},
            )
            for token in (
                FAKE_TOKEN + "\n",
                FAKE_TOKEN + "\r\n",
                " " + FAKE_TOKEN,
                FAKE_TOKEN + "\t",
                "fake token with spaces",
            )
        ],
    ),
    (
        "a YAML number where the value's text matters",
        [
            Value(
                fleet({**ALICE, "nixosRelease": 26.1}),
                ("devserver:servers[0].nixosRelease",),
                ("in quotes",),
                never_says=("got 26.1,", "got '26.1'"),
            ),
            Value(
                {"devserver:nixosRelease": "26.1"},
                ("devserver:nixosRelease",),
                ('"26.10"',),
            ),
            Value(
                fleet({**ALICE, "githubUser": 1234}),
                ("devserver:servers[0].githubUser",),
                ("in quotes",),
            ),
            Value(
                fleet({**ALICE, "githubUserId": "octocat"}),
                ("devserver:servers[0].githubUserId", "'octocat'", "a whole number from 0"),
            ),
            Value(
                {"devserver:githubUserId": -583231},
                ("devserver:githubUserId", "-583231", "a whole number from 0"),
            ),
            Value(
                fleet({**ALICE, "preset": "x86-spot", "spotMaxPrice": 1e-05}),
                ("devserver:servers[0].spotMaxPrice",),
                ("in quotes",),
            ),
        ],
    ),
    (
        "an error message that points at the wrong thing",
        [
            Value(
                {"devserver:servers": "alice"},
                ("devserver:servers",),
                ('"githubUser"',),
                never_says=("203.0.113.7",),
            ),
            Value(
                {"devserver:spotMaxPrice": "0.1"},
                ("devserver:spotMaxPrice", "set devserver:spot to true"),
                never_says=("set spot of presets",),
            ),
            Value(
                fleet({**ALICE, "spotMaxPrice": "0.1"}),
                ("devserver:servers[0].spotMaxPrice", "set devserver:servers[0].spot to true"),
                never_says=("set spot of presets",),
            ),
        ],
    ),
    (
        "problems in several entries or servers, reported together",
        [
            Value(
                fleet({**ALICE, "colour": "blue", "arch": "sparc"}, {**BOB, "user": "root"}),
                (
                    "devserver:servers[0] has unknown keys colour",
                    "devserver:servers[0].arch",
                    "devserver:servers[1].user",
                ),
            ),
            Value(
                fleet({**ALICE, "name": "Alice!"}, {**BOB, "user": "alice"}),
                ("devserver:servers[0].name", "devserver:servers[1].user 'alice' is already used"),
            ),
            Value(
                fleet("alice", {**BOB, "email": "bob at example"}),
                ("devserver:servers[0] must be an object", "devserver:servers[1].email"),
            ),
            Value(
                fleet(
                    {**ALICE, "subnetId": "subnet-0f0f0f0f"},
                    {**BOB, "amiId": "ami-0ffffffffffffffff"},
                    {
                        **ALICE,
                        "name": "carol",
                        "user": "carol",
                        "nixosRelease": "19.03",
                        "flake": "github:acme/infra?dir=nix",
                    },
                ),
                (
                    "devserver:servers[0].subnetId",
                    "devserver:servers[1].amiId",
                    "devserver:servers[2].nixosRelease",
                ),
            ),
            Value(
                {"devserver:githubTokenKmsKeyArn": "alias/mine", "devserver:user": "root"},
                ("devserver:githubTokenKmsKeyArn", "devserver:user"),
            ),
            Value(
                {
                    "devserver:subnetId": "subnet-0f0f0f0f",
                    "devserver:amiId": "ami-0ffffffffffffffff",
                },
                ("devserver:subnetId", "devserver:amiId"),
            ),
        ],
    ),
    (
        "homeVolumeGiB that differs from the adopted volume's size",
        [
            Value(
                {"devserver:homeVolumeId": ADOPTED, "devserver:homeVolumeGiB": size},
                ("devserver:homeVolumeGiB", "devserver:homeVolumeId"),
                ("200 GiB",),
                unset=("devserver:availabilityZone",),
            )
            for size in (100, 300, 16384)
        ],
    ),
    (
        "a binary cache that would not be trusted safely, or a half-set one",
        [
            Value(
                {"devserver:binaryCacheUrl": url, "devserver:binaryCachePublicKey": CACHE_KEY},
                ("devserver:binaryCacheUrl",),
                ("s3://<bucket>?region=<region>",),
            )
            for url in (
                "http://cache.example.com",
                "file:///var/cache/nix",
                "/var/cache/nix",
                "s3://team-nix-cache",
                "s3://Team_Cache?region=eu-west-1",
                "https://user:password@cache.example.com",
                'https://cache.example.com/"; rm -rf /',
            )
        ]
        + [
            Value(
                {"devserver:binaryCacheUrl": CACHE_URL, "devserver:binaryCachePublicKey": key},
                ("devserver:binaryCachePublicKey",),
                ("base64 of 32 bytes",),
            )
            for key in ("team-cache-1", "team-cache-1:c2hvcnQ=", ":" + "A" * 43 + "=", "a b:x")
        ]
        + [
            Value({"devserver:binaryCacheUrl": CACHE_URL}, ("devserver:binaryCachePublicKey",)),
            Value({"devserver:binaryCachePublicKey": CACHE_KEY}, ("devserver:binaryCacheUrl",)),
            Value(
                {"devserver:binaryCache": True, "devserver:binaryCacheUrl": CACHE_URL},
                ("devserver:binaryCache and devserver:binaryCacheUrl exclude each other",),
            ),
            Value({"devserver:binaryCache": "yes"}, ("devserver:binaryCache",), ("true or false",)),
            Value(
                fleet({**ALICE, "binaryCacheUrl": CACHE_URL}, BOB),
                (
                    "devserver:servers[0].binaryCacheUrl needs devserver:servers[0].binaryCachePublicKey",
                ),
            ),
            Value(
                {"devserver:binaryCacheWriterRepository": "acme/infra"},
                ("devserver:binaryCacheWriterRepository", "devserver:binaryCache true"),
            ),
        ]
        + [
            Value(
                {"devserver:binaryCache": True, "devserver:binaryCacheWriterRepository": repo},
                ("devserver:binaryCacheWriterRepository",),
                ("owner/name",),
            )
            for repo in ("acme", "acme/infra/nix", "-acme/infra", "acme/in fra")
        ]
        + [
            # The shipped boundary lets roles read devserver-cache-* buckets only.
            Value(
                {**TEAM_CACHE, "devserver:permissionsBoundary": BOUNDARY},
                ("devserver:binaryCacheUrl", "devserver:permissionsBoundary"),
                ("'team-nix-cache'", "devserver-cache-*"),
            )
        ],
    ),
]

# Each class of input the program must accept (it was refused, or misbehaved, before).
ACCEPTED: list[tuple[str, list[Value]]] = [
    (
        "a permissions boundary by its ARN, with a path too",
        [
            Value({"devserver:permissionsBoundary": arn})
            for arn in (
                "arn:aws:iam::123456789012:policy/devserver-boundary",
                "arn:aws:iam::123456789012:policy/boundaries/devserver-boundary",
            )
        ],
    ),
    (
        "a full name with an apostrophe",
        [
            Value({"devserver:fullName": name})
            for name in ("Alice O'Brien", "D'Angelo Example", "Zoë O'Neil-Ng", "'Quoted'")
        ],
    ),
    (
        "a YAML number that means what it says",
        [
            Value(fleet({**ALICE, "preset": "x86-spot", "spotMaxPrice": 0.08})),
            Value(fleet({**ALICE, "preset": "x86-spot", "spotMaxPrice": 1})),
            Value(fleet({**ALICE, "nixosRelease": 26.05})),
            Value(fleet({**ALICE, "nixosRelease": 25.11})),
            Value({"devserver:preset": "x86-spot", "devserver:spotMaxPrice": "0.08"}),
        ],
    ),
    (
        "a multi-region KMS key in the stack's region",
        [
            Value({"devserver:githubTokenKmsKeyArn": MRK_HERE}, secrets=TOKEN),
            Value({"devserver:githubTokenKmsKeyArn": KMS_HERE}, secrets=TOKEN),
        ],
    ),
    (
        "a well-formed deploy key",
        [Value({}, secrets={"devserver:deployPrivateKey": fake_openssh_private_key()})],
    ),
    (
        "an adopted volume with no size or its own size",
        [
            Value({"devserver:homeVolumeId": ADOPTED}, unset=("devserver:availabilityZone",)),
            Value(
                {"devserver:homeVolumeId": ADOPTED, "devserver:homeVolumeGiB": 200},
                unset=("devserver:availabilityZone",),
            ),
        ],
    ),
    (
        "the stack's own binary cache, or a team's S3 or HTTPS cache",
        [
            Value({"devserver:binaryCache": True}),
            Value(
                {
                    "devserver:binaryCache": "true",
                    "devserver:binaryCacheWriterRepository": "acme/infra",
                }
            ),
            Value(
                fleet(
                    {**ALICE, "binaryCache": True},
                    BOB,
                    **{"devserver:binaryCacheWriterRepository": "acme/infra.nix"},
                )
            ),
            Value(
                {"devserver:binaryCacheUrl": CACHE_URL, "devserver:binaryCachePublicKey": CACHE_KEY}
            ),
            Value(
                {
                    "devserver:binaryCacheUrl": "s3://devserver-cache-team?region=eu-west-1",
                    "devserver:binaryCachePublicKey": CACHE_KEY,
                    "devserver:permissionsBoundary": BOUNDARY,
                }
            ),
            Value(
                {
                    "devserver:binaryCacheUrl": "https://cache.example.com/team/nix",
                    "devserver:binaryCachePublicKey": CACHE_KEY,
                }
            ),
        ],
    ),
]


def _flat(table: list[tuple[str, list[Value]]]) -> list[Any]:
    return [
        pytest.param(cls, value, id=f"{cls}-{i}")
        for cls, values in table
        for i, value in enumerate(values)
    ]


@pytest.mark.parametrize(("cls", "value"), _flat(REFUSED))
def test_hostile_input_is_refused_by_key_before_anything_is_registered(
    program: Run, cls: str, value: Value
) -> None:
    run = program(value.overrides, secrets=value.secrets, unset=value.unset, raise_errors=False)
    assert isinstance(run.error, SettingsError), f"{cls}: expected a settings error: {run.error!r}"
    text = str(run.error)
    for expected in value.keys + value.says:
        assert expected in text, f"{cls}: the message must say {expected!r}:\n{text}"
    for wrong in value.never_says:
        assert wrong not in text, f"{cls}: the message must not say {wrong!r}:\n{text}"
    for key, secret in value.secrets.items():
        assert secret.strip() not in text, f"{cls}: the message echoes {key}"
    assert run.resources == [], f"{cls}: registered {[r.name for r in run.resources]}"


@pytest.mark.parametrize(("cls", "value"), _flat(ACCEPTED))
def test_legitimate_input_is_accepted(program: Run, cls: str, value: Value) -> None:
    run = program(value.overrides, secrets=value.secrets, unset=value.unset, raise_errors=False)
    assert run.error is None, f"{cls}: refused: {run.error}"
    assert run.of_type("aws:ec2/instance:Instance"), f"{cls}: no machine was registered"


@pytest.mark.parametrize(
    ("given", "rules"),
    [
        (["203.0.113.7/32", "203.0.113.7/32"], ["203.0.113.7-32"]),
        (
            ["2001:db8:1234::/48", "2001:0db8:1234:0000::/48", "2001:DB8:1234::/48"],
            ["2001.0db8.1234.0000.0000.0000.0000.0000-48"],
        ),
        (["10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32"], ["10.0.0.0-8"]),
        (
            ["198.51.100.0/24", "203.0.113.7/32", "198.51.100.128/25"],
            ["198.51.100.0-24", "203.0.113.7-32"],
        ),
    ],
    ids=["same twice", "three spellings", "contained", "mixed"],
)
def test_the_same_network_twice_is_one_ingress_rule(
    program: Run, given: list[str], rules: list[str]
) -> None:
    run = program(cidrs(*given), raise_errors=False)
    assert run.error is None, run.error
    names = [r.name for r in run.of_type(INGRESS)]
    assert len(names) == len(set(names)), f"two ingress rules share a name: {names}"
    assert sorted(names) == sorted(f"devserver-ssh-from-{r}" for r in rules), names


def test_an_adopted_volume_is_priced_at_its_real_size(program: Run) -> None:
    run = program({"devserver:homeVolumeId": ADOPTED}, unset=("devserver:availabilityZone",))
    basis = run.outputs["estimatedCost"]["basis"]
    assert "50 + 200 GiB" in basis, f"the estimate prices the preset's 100 GiB: {basis}"


def test_an_apostrophe_in_the_full_name_reaches_the_host_flake_as_text(program: Run) -> None:
    run = program({"devserver:fullName": "Alice O'Brien"})
    (flake,) = [
        r for r in run.of_type("command:remote:CopyToRemote") if r.name.endswith("-host-flake")
    ]
    assert '"Alice O\'Brien"' in flake.inputs["source"].text, "the name is one Nix string"
