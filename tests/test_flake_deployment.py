"""The flake deployment under mocks: what runs over SSH, in which order, and when it re-runs."""

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from components.flake_deployment import apply_command
from components.host_flake import HostFlake, machine_json, nix_string
from tests.program import (
    FAKE_TOKEN,
    CheckFailure,
    ProgramRun,
    Registered,
    comparable,
    fake_openssh_private_key,
    is_unknown,
    reveal,
    walk_strings,
)

Run = Callable[..., ProgramRun]
COMMAND = "command:remote:Command"
COPY = "command:remote:CopyToRemote"
TOKEN = {"devserver:githubToken": FAKE_TOKEN}
NIX = shutil.which("nix-instantiate")


SECRET_NAME = "devserver/dev/devserver/github-token"
DEPLOY_STEPS = (
    "devserver-host-key",
    "devserver-host-flake",
    "devserver-scripts",
    "devserver-apply",
    "devserver-verify-login",
)


def _flake_text(run: ProgramRun) -> str:
    source = run.named("devserver-host-flake").inputs["source"]
    assert hasattr(source, "text"), f"devserver-host-flake source is not a StringAsset: {source!r}"
    return str(source.text)


def _machine_json(run: ProgramRun) -> dict[str, Any]:
    return dict(json.loads(run.named("devserver-apply").inputs["stdin"]))


def _dependencies(resource: Registered) -> set[str]:
    assert resource.opts is not None
    return {getattr(d, "_name", "") for d in resource.opts.depends_on or []}


def test_apply_waits_for_the_running_machine_its_home_volume_and_its_address(program: Run) -> None:
    run = program()
    machine = {"devserver-x86_64", "devserver-home", "devserver-address", "devserver-state"}
    depends = _dependencies(run.named("devserver-apply"))
    assert machine <= depends, depends
    assert {"devserver-host-flake", "devserver-scripts"} <= depends
    assert machine <= _dependencies(run.named("devserver-host-key")), "first contact waits too"
    assert _dependencies(run.named("devserver-verify-login")) == {"devserver-apply"}
    state = run.named("devserver-state")
    assert state.type == "aws:ec2transitgateway/instanceState:InstanceState"
    assert state.inputs["state"] == "running", "devserver-state must start the machine"


def test_connection_host_and_outputs_are_the_elastic_ip(program: Run) -> None:
    run = program()
    eip = run.one("aws:ec2/eip:Eip")
    assert eip.inputs["domain"] == "vpc"
    # `instance` on the Eip is an update (re-associate), so a new machine keeps the address.
    assert eip.inputs["instance"] == run.outputs["instanceId"]
    assert run.outputs["publicIp"] == eip.state["publicIp"]
    assert run.outputs["publicDns"] == eip.state["publicDns"]
    assert run.outputs["sshCommand"] == f"ssh alice@{eip.state['publicDns']}"
    for name in DEPLOY_STEPS:
        host = reveal(run.named(name).inputs["connection"])["host"]
        assert host == eip.state["publicIp"], f"{name} connects to {host}, not the Elastic IP"


def test_every_remote_command_has_a_harmless_update_and_no_address_in_its_triggers(
    program: Run,
) -> None:
    # pulumi-command: a non-trigger change (the connection included) runs `update`, or `create`.
    run = program(secrets=TOKEN)
    address = run.one("aws:ec2/eip:Eip").state["publicIp"]
    for command in run.of_type(COMMAND):
        update = command.inputs.get("update")
        assert update, f"{command.name} has no update: an address change would re-run create"
        assert "apply-flake" not in update and "nixos-rebuild" not in update, command.name
        assert address not in comparable(command.inputs["triggers"]), command.name
    apply = run.named("devserver-apply")
    line = apply.inputs["create"].split(" && ")[-1]
    assert line.startswith("bash /var/lib/devserver/deploy/apply-flake.sh"), line
    assert line in apply.inputs["triggers"], "the command line is a trigger"


def test_host_flake_and_machine_json_are_staged_never_written_to_etc_nixos(program: Run) -> None:
    # /etc/nixos is what the nightly nixos-upgrade builds: only a verified switch may change it.
    run = program(secrets=TOKEN)
    stage = "/var/lib/devserver/deploy/host"
    copy = run.named("devserver-host-flake")
    assert copy.inputs["remotePath"] == f"{stage}/flake.nix", (
        f"devserver-host-flake copies to {copy.inputs['remotePath']}"
    )
    apply = run.named("devserver-apply")
    write, *_ = apply.inputs["create"].split(" && bash ")
    assert f"cat > {stage}/machine.json.new" in write, f"devserver-apply writes: {write}"
    assert f"mv {stage}/machine.json.new {stage}/machine.json" in write, write
    for resource in run.of_type(COMMAND) + run.of_type(COPY):
        text = " ".join(s for s, _ in walk_strings(resource.inputs))
        assert "/etc/nixos" not in text, f"{resource.name} touches /etc/nixos directly"
    # CopyToRemote makes no parent directory: first contact makes it, on create and on update.
    host_key = run.named("devserver-host-key")
    for action in ("create", "update"):
        assert f"install -d -m 0700 /var/lib/devserver/deploy {stage}" in host_key.inputs[action], (
            f"devserver-host-key {action} does not make {stage}"
        )
        assert host_key.inputs[action].endswith("cat /etc/ssh/ssh_host_ed25519_key.pub"), action


def test_every_step_after_first_contact_pins_the_host_key(program: Run) -> None:
    run = program()
    first = run.named("devserver-host-key")
    assert "hostKey" not in reveal(first.inputs["connection"]), (
        "nothing can know it before first boot"
    )
    for name in DEPLOY_STEPS[1:]:
        connection = reveal(run.named(name).inputs["connection"])
        assert connection["hostKey"].startswith("ssh-ed25519 AAAAFAKEHOSTKEY"), name
        assert connection["user"] == "root", name
    assert (
        run.outputs["sshHostKey"]
        == reveal(run.named("devserver-apply").inputs["connection"])["hostKey"]
    )
    # The command's stdout is secret (its connection is); the host key itself is public.
    assert "sshHostKey" not in run.secret_outputs, "known_hosts readers need the key in plain"


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
def test_host_flake_holds_program_choices_and_machine_json_what_aws_returned(
    program: Run, preset: str, system: str
) -> None:
    run = program({"devserver:preset": preset}, secrets=TOKEN)
    text = _flake_text(run)
    volume_id = run.outputs["homeVolumeId"]
    assert f'nixpkgs.hostPlatform = "{system}";' in text
    assert f'secretId = "{SECRET_NAME}";' in text
    assert 'devserver.url = "github:acme/infra?dir=nix";' in text
    assert "builtins.readFile ./machine.json" in text
    assert volume_id not in text and "arn:aws" not in text, "an AWS-returned value is in the flake"
    assert not re.search(r'"@[A-Za-z]+@"', text), "a placeholder is left"
    assert FAKE_TOKEN not in text
    deploy_key = run.one("tls:index/privateKey:PrivateKey").state["publicKeyOpenssh"].strip()
    assert _machine_json(run) == {
        "homeDevice": f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}",
        "rootAuthorizedKeys": [deploy_key],
    }
    assert run.one("aws:secretsmanager/secret:Secret").inputs["name"] == SECRET_NAME


def test_token_secret_name_is_chosen_and_a_recreated_stack_does_not_collide(program: Run) -> None:
    secret = program(secrets=TOKEN).one("aws:secretsmanager/secret:Secret")
    assert secret.inputs["name"] == SECRET_NAME
    # A fixed name pending deletion would block the next create: delete without recovery.
    assert secret.inputs["recoveryWindowInDays"] == 0
    assert secret.opts is not None and secret.opts.delete_before_replace


@pytest.mark.parametrize("secrets", [{}, TOKEN], ids=["no-token", "token"])
def test_first_preview_of_a_new_stack_passes_checks_and_shows_the_exact_flake(
    program: Run, secrets: dict[str, str]
) -> None:
    preview = program(secrets=secrets, preview=True)
    assert is_unknown(preview.outputs["instanceId"]), "preview must not invent AWS values"
    assert is_unknown(preview.outputs["publicIp"])
    assert is_unknown(preview.named("devserver-apply").inputs["stdin"])
    # What `pulumi preview --diff` (and the PR comment) shows is what `pulumi up` copies.
    assert _flake_text(preview) == _flake_text(program(secrets=secrets))


def test_preview_enforces_the_copy_to_remote_check_on_an_unknown_source(
    program: Run, tmp_path: Any
) -> None:
    # The rule itself: a source computed from an unknown value is refused at preview (at `up` the
    # same value is known and passes, which is why the suite never saw it before).
    script = tmp_path / "copy.py"
    script.write_text(
        "import pulumi, pulumi_aws as aws\n"
        "from pulumi_command import remote\n"
        "vol = aws.ebs.Volume('v', availability_zone='eu-west-1a', size=1)\n"
        "remote.CopyToRemote('c', connection=remote.ConnectionArgs(host='h'),\n"
        "    source=vol.id.apply(pulumi.StringAsset), remote_path='/x')\n"
    )
    run = program(program=script, preview=True, raise_errors=False)
    assert isinstance(run.error, CheckFailure), run.error
    assert "either asset or archive must be set" in str(run.error)


@pytest.mark.skipif(NIX is None, reason="nix-instantiate (Debian nix-bin) is not installed")
@pytest.mark.parametrize("secrets", [{}, TOKEN], ids=["no-token", "token"])
def test_rendered_host_flake_parses_and_evaluates_to_the_settings(
    program: Run, secrets: dict[str, str], tmp_path: Any
) -> None:
    run = program(secrets=secrets)
    flake = tmp_path / "flake.nix"
    flake.write_text(_flake_text(run))
    (tmp_path / "machine.json").write_text(run.named("devserver-apply").inputs["stdin"])
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
    assert value["devserver"]["githubUserId"] is None, "unset: the login is not pinned"
    assert value["devserver"]["token"]["secretId"] == (SECRET_NAME if secrets else None)
    assert value["devserver"]["token"]["region"] == "eu-west-1"
    machine = _machine_json(run)
    assert value["devserver"]["homeVolume"]["device"] == machine["homeDevice"]
    assert value["devserver"]["deploy"]["rootAuthorizedKeys"] == machine["rootAuthorizedKeys"]


def test_nix_strings_cannot_interpolate_or_break_out() -> None:
    assert nix_string('a"b') == '"a\\"b"'
    assert nix_string("${builtins.readFile /etc/shadow}") == '"\\${builtins.readFile /etc/shadow}"'
    assert nix_string("back\\slash\n") == '"back\\\\slash\\n"'


@pytest.mark.skipif(NIX is None, reason="nix-instantiate (Debian nix-bin) is not installed")
def test_hostile_values_stay_inert_strings_in_nix(tmp_path: Any) -> None:
    hostile = 'x" + builtins.readFile /etc/passwd + "${toString 1}\\'
    flake = HostFlake("github:a/b", "h", "x86_64-linux", "alice", hostile, "a@b.c", "alice",
                      "eu-west-1", None, 0, "26.05")  # fmt: skip
    (tmp_path / "flake.nix").write_text(flake.render())
    (tmp_path / "machine.json").write_text(machine_json(hostile, [hostile]))
    probe = tmp_path / "probe.nix"
    probe.write_text(
        "let o = (import ./flake.nix).outputs { nixpkgs.lib.nixosSystem = a: a; devserver = {}; };"
        " in with (builtins.elemAt o.nixosConfigurations.h.modules 1).devserver;"
        " [ user.fullName homeVolume.device ]"
    )
    out = subprocess.run(
        [NIX, "--eval", "--strict", "--json", str(probe)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(out.stdout) == [hostile, hostile]


def test_apply_command_carries_no_secret_and_quotes_every_value() -> None:
    command = apply_command(
        "h", "alice", "/dev/disk/by-id/x", "ssh-ed25519 AAAA key", SECRET_NAME, "eu-west-1"
    )
    assert command == (
        "bash /var/lib/devserver/deploy/apply-flake.sh --host h --user alice "
        f"--home-device /dev/disk/by-id/x --secret-id {SECRET_NAME} --region eu-west-1 "
        "--deploy-public-key 'ssh-ed25519 AAAA key'"
    )
    assert "--secret-id" not in apply_command("h", "alice", "/d", "k", None, "eu-west-1")


def test_verify_login_runs_the_machine_script_for_the_developer(program: Run) -> None:
    verify = program().named("devserver-verify-login")
    assert verify.inputs["create"] == (
        "bash /var/lib/devserver/deploy/verify-login.sh --user alice"
    )


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


def test_the_pinned_github_user_id_reaches_the_host_flake_as_a_nix_integer(program: Run) -> None:
    text = _flake_text(program({"devserver:githubUserId": 583231}))
    assert "githubUserId = 583231;" in text, text
