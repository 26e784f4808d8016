"""The flake deployment under mocks: what runs over SSH, in which order, and when it re-runs."""

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from components.flake_deployment import apply_command
from components.host_flake import HostFlake, nix_string
from tests.program import (
    FAKE_TOKEN,
    ProgramRun,
    Registered,
    comparable,
    fake_openssh_private_key,
    reveal,
    walk_strings,
)

Run = Callable[..., ProgramRun]
COMMAND = "command:remote:Command"
COPY = "command:remote:CopyToRemote"
TOKEN = {"devserver:githubToken": FAKE_TOKEN}
NIX = shutil.which("nix-instantiate")


def _flake_text(run: ProgramRun) -> str:
    copy = run.named("devserver-host-flake")
    source = copy.inputs["source"]
    return str(source.text if hasattr(source, "text") else source)


def _dependencies(resource: Registered) -> set[str]:
    assert resource.opts is not None
    return {getattr(d, "_name", "") for d in resource.opts.depends_on or []}


def test_apply_waits_for_the_instance_and_the_home_volume_attachment(program: Run) -> None:
    run = program()
    apply = run.named("devserver-apply")
    depends = _dependencies(apply)
    assert {"devserver-x86_64", "devserver-home"} <= depends, depends
    assert {"devserver-host-flake", "devserver-scripts"} <= depends
    assert {"devserver-x86_64", "devserver-home"} <= _dependencies(run.named("devserver-host-key"))
    assert _dependencies(run.named("devserver-verify-login")) == {"devserver-apply"}


def test_every_step_after_first_contact_pins_the_host_key(program: Run) -> None:
    run = program()
    first = run.named("devserver-host-key")
    assert "hostKey" not in reveal(first.inputs["connection"]), (
        "nothing can know it before first boot"
    )
    for name in (
        "devserver-host-flake",
        "devserver-scripts",
        "devserver-apply",
        "devserver-verify-login",
    ):
        connection = reveal(run.named(name).inputs["connection"])
        assert connection["hostKey"].startswith("ssh-ed25519 AAAAFAKEHOSTKEY"), name
        assert connection["user"] == "root", name
    assert (
        run.outputs["sshHostKey"]
        == reveal(run.named("devserver-apply").inputs["connection"])["hostKey"]
    )


def test_deploy_key_is_generated_and_travels_only_as_a_secret(program: Run) -> None:
    run = program()
    run.one("tls:index/privateKey:PrivateKey")
    for resource in run.of_type(COMMAND) + run.of_type(COPY):
        for text, secret in walk_strings(resource.inputs["connection"]):
            if "fake-openssh-private-key-for-tests" in text:
                assert secret, f"{resource.name} carries the deploy key in plaintext"
    key_pair = run.one("aws:ec2/keyPair:KeyPair")
    assert run.one("aws:ec2/instance:Instance").inputs["keyName"] == key_pair.state["keyName"]


def test_given_deploy_key_is_used_instead_of_a_generated_one(program: Run) -> None:
    run = program(secrets={"devserver:deployPrivateKey": fake_openssh_private_key()})
    assert run.of_type("tls:index/privateKey:PrivateKey") == []
    assert (
        run.one("aws:ec2/keyPair:KeyPair")
        .inputs["publicKey"]
        .startswith("ssh-ed25519 AAAAFAKEPUBLICKEYFROMCONFIG")
    )


@pytest.mark.parametrize(
    ("preset", "system"), [("x86", "x86_64-linux"), ("graviton-spot", "aarch64-linux")]
)
def test_rendered_host_flake_has_the_system_of_the_arch_and_the_volume_device(
    program: Run, preset: str, system: str
) -> None:
    run = program({"devserver:preset": preset}, secrets=TOKEN)
    text = _flake_text(run)
    volume_id = run.outputs["homeVolumeId"]
    assert f'nixpkgs.hostPlatform = "{system}";' in text
    assert (
        f'homeVolume.device = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume_id.replace("-", "")}";'
        in text
    )
    assert f'secretArn = "{run.outputs["githubTokenSecretArn"]}";' in text
    assert 'devserver.url = "github:acme/infra?dir=nix";' in text
    assert not re.search(r'"@[A-Za-z]+@"', text), "a placeholder is left"
    assert FAKE_TOKEN not in text


@pytest.mark.skipif(NIX is None, reason="nix-instantiate (Debian nix-bin) is not installed")
@pytest.mark.parametrize("secrets", [{}, TOKEN], ids=["no-token", "token"])
def test_rendered_host_flake_parses_and_evaluates_to_the_settings(
    program: Run, secrets: dict[str, str], tmp_path: Any
) -> None:
    flake = tmp_path / "flake.nix"
    flake.write_text(_flake_text(program(secrets=secrets)))
    subprocess.run([NIX, "--parse", str(flake)], check=True, capture_output=True)
    # Evaluate the flake's own values with stand-ins for nixpkgs and the shared flake.
    probe = tmp_path / "probe.nix"
    probe.write_text(
        """
        let
          flake = import ./flake.nix;
          fake = { lib.nixosSystem = args: args; };
          shared = { nixosModules.devserver = "shared-module"; };
          out = flake.outputs { nixpkgs = fake; devserver = shared; self = {}; };
          host = builtins.head (builtins.attrNames out.nixosConfigurations);
          settings = builtins.elemAt (out.nixosConfigurations.${host}.modules) 1;
        in { inherit host; inherit (settings) devserver; system = settings.nixpkgs.hostPlatform; }
        """
    )
    result = subprocess.run(
        [NIX, "--eval", "--strict", "--json", str(probe)],
        check=True,
        capture_output=True,
        text=True,
    )
    value = json.loads(result.stdout)
    assert value["host"] == "devserver-dev"
    assert value["system"] == "x86_64-linux"
    assert value["devserver"]["user"] == {
        "name": "alice",
        "fullName": "Alice Example",
        "email": "alice@example.com",
    }
    assert value["devserver"]["githubUser"] == "alice-example"
    assert (value["devserver"]["token"]["secretArn"] is None) == (not secrets)


def test_nix_strings_cannot_interpolate_or_break_out() -> None:
    assert nix_string('a"b') == '"a\\"b"'
    assert nix_string("${builtins.readFile /etc/shadow}") == '"\\${builtins.readFile /etc/shadow}"'
    assert nix_string("back\\slash\n") == '"back\\\\slash\\n"'


@pytest.mark.skipif(NIX is None, reason="nix-instantiate (Debian nix-bin) is not installed")
def test_hostile_values_stay_inert_strings_in_nix(tmp_path: Any) -> None:
    hostile = 'x" + builtins.readFile /etc/passwd + "${toString 1}\\'
    flake = HostFlake("github:a/b", "h", "x86_64-linux", "alice", hostile, "a@b.c", "alice",
                      "/dev/disk/by-id/x", "eu-west-1", None, 0, "26.05")  # fmt: skip
    (tmp_path / "flake.nix").write_text(flake.render())
    probe = tmp_path / "probe.nix"
    probe.write_text(
        "let o = (import ./flake.nix).outputs { nixpkgs.lib.nixosSystem = a: a; devserver = {}; };"
        " in (builtins.elemAt o.nixosConfigurations.h.modules 1).devserver.user.fullName"
    )
    out = subprocess.run(
        [NIX, "--eval", "--json", str(probe)], check=True, capture_output=True, text=True
    )
    assert json.loads(out.stdout) == hostile


def test_apply_command_carries_no_secret_and_quotes_every_value() -> None:
    command = apply_command(
        "h", "/dev/disk/by-id/x", "ssh-ed25519 AAAA key", "arn:aws:sm:x", "eu-west-1"
    )
    assert command == (
        "bash /var/lib/devserver/deploy/apply-flake.sh --host h --home-device /dev/disk/by-id/x "
        "--secret-id arn:aws:sm:x --region eu-west-1 --deploy-public-key 'ssh-ed25519 AAAA key'"
    )
    assert "--secret-id" not in apply_command("h", "/d", "k", None, "eu-west-1")


def test_apply_streams_its_output_to_the_console(program: Run) -> None:
    assert program().named("devserver-apply").inputs["logging"] == "stdoutAndStderr"


def _inputs_by_name(run: ProgramRun) -> dict[str, Any]:
    return {f"{r.type} {r.name}": comparable(r.inputs) for r in run.resources}


def changed_resources(before: ProgramRun, after: ProgramRun) -> list[str]:
    """The resources whose inputs differ between two runs: what `pulumi up` would touch."""
    a, b = _inputs_by_name(before), _inputs_by_name(after)
    assert a.keys() == b.keys()
    return sorted(k for k in a if a[k] != b[k])


def test_same_config_gives_identical_inputs_so_a_no_op_up_runs_nothing(program: Run) -> None:
    assert changed_resources(program(secrets=TOKEN), program(secrets=TOKEN)) == []


def test_flake_change_touches_only_the_deployment(program: Run) -> None:
    before = program(secrets=TOKEN)
    after = program({"devserver:flake": "github:acme/infra/v2?dir=nix"}, secrets=TOKEN)
    assert changed_resources(before, after) == [
        "command:remote:Command devserver-apply",
        "command:remote:Command devserver-verify-login",
        "command:remote:CopyToRemote devserver-host-flake",
    ]


def test_git_identity_change_re_applies_without_touching_the_machine(program: Run) -> None:
    before = program()
    after = program({"devserver:email": "alice@work.example"})
    changed = changed_resources(before, after)
    assert "command:remote:Command devserver-apply" in changed
    assert not [c for c in changed if c.startswith(("aws:", "tls:"))], changed


def test_no_deployment_when_turned_off_or_when_the_machine_is_stopped(program: Run) -> None:
    for overrides in ({"devserver:deploy": False}, {"devserver:state": "stopped"}):
        run = program(overrides)
        assert run.of_type(COMMAND) == [] and run.of_type(COPY) == [], overrides
    assert (
        program({"devserver:deploy": False}).one("aws:ec2/instance:Instance").inputs.get("keyName")
        is None
    )
