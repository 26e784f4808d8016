"""A stack's life replayed under an engine model (tests/lifecycle.py): what each step touches.

Every step prints its table (`pytest -s`), and each assertion names the step. The facts behind
the rules are in docs/upstream-facts.md, "Deployment lifecycle (issue 10)".
"""

from collections.abc import Iterator

import pytest
from pulumi.runtime import MockResourceArgs

from tests.lifecycle import (
    COMMAND,
    Engine,
    StepResult,
    _note,
    machine_running_with_a_new_address,
    machine_stopped,
)
from tests.program import FAKE_TOKEN, NIXOS_AMIS, reset_runtime

HOME = "devserver-home"
VOLUME = "aws:ebs/volume:Volume"
DEPLOY_COMMANDS = {
    "devserver-host-key",
    "devserver-apply",
    "devserver-verify-login",
}
APPLY = {"devserver-apply", "devserver-verify-login"}
# Newer official images for arm64, published between two steps.
REPUBLISHED_AMI = "ami-0123412341234abcd"
REPUBLISHED_AGAIN = "ami-0567856785678abcd"


@pytest.fixture
def engine() -> Iterator[Engine]:
    reset_runtime()
    yield Engine()
    reset_runtime()


def _home_volume_kept(step: StepResult) -> None:
    """The user's /home in a step that ran: never replaced, and never deleted from AWS."""
    home = [c for c in step.changes if c.type == VOLUME]
    assert home, f"{step.name}: no home volume\n{step}"
    for change in home:
        assert change.op != "replace", f"{step.name}: {change.name} replaced\n{step}"
        if change.op == "delete":
            assert change.note.startswith("retained"), (
                f"{step.name}: {change.name} deleted from AWS\n{step}"
            )


def _new_machine(new: str, old: str, **more: str) -> dict[str, str]:
    """What moving to a new machine touches: it is created and the old one goes, /home and the
    Elastic IP move to it, and everything on the machine runs again."""
    return {
        new: "create",
        old: "delete",
        # The host key is recorded on the machine that showed it (trust on first use for a new one).
        f"{new}-host-key-tag": "create",
        f"{old}-host-key-tag": "delete",
        "devserver-home": "replace",  # the attachment (same name as the volume), not the volume
        "devserver-address": "update",  # the same Elastic IP, re-associated
        "devserver-state": "replace",
        **dict.fromkeys(DEPLOY_COMMANDS | {"devserver-host-flake", "devserver-scripts"}, "replace"),
        **more,
    }


def _expect(step: StepResult, touched: dict[str, str], reruns: set[str]) -> None:
    print(step)
    assert not step.refused, f"{step.name}: refused {step.refused}\n{step}"
    assert step.touched() == touched, f"{step.name}: unexpected changes\n{step}"
    assert step.reruns() == reruns, f"{step.name}: remote commands re-run\n{step}"
    _home_volume_kept(step)


def test_a_stack_lives_through_every_step_touching_only_what_changed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1. The first preview of a new stack: provider checks pass, everything is a create.
    preview = engine.up("preview of a new stack", preview=True)
    print(preview)
    assert not preview.refused and preview.run is not None
    assert {c.op for c in preview.changes} == {"create"}, preview
    copy = preview.run.named("devserver-host-flake").inputs["source"]
    assert "devserver.url" in copy.text, "the preview shows the exact host flake"

    created = engine.up("create")
    print(created)
    assert {c.op for c in created.changes} == {"create"}
    assert created.reruns() == DEPLOY_COMMANDS
    outputs = dict(created.run.outputs) if created.run else {}
    address = outputs["publicIp"]

    # 2. Nothing changed: nothing happens, not even an update.
    _expect(engine.up("no-op up"), {}, set())

    # 3. A new shared flake: the host flake is copied again and the apply re-runs; AWS untouched.
    engine.set({"devserver:flake": "github:acme/infra/v2?dir=nix"})
    _expect(
        engine.up("flake change"),
        {"devserver-host-flake": "update", **dict.fromkeys(APPLY, "replace")},
        APPLY,
    )

    # 4. A token added to an existing stack: its preview passes the CopyToRemote check, the
    # secret (with its program-chosen name) and the role's read policy appear, and the flake that
    # now names the secret is applied.
    engine.set(secrets={"devserver:githubToken": FAKE_TOKEN})
    token_touched = {
        "devserver-github-token": "create",
        "devserver-read-github-token": "create",
        "devserver-host-flake": "update",
        **dict.fromkeys(APPLY, "replace"),
    }
    _expect(engine.up("token added (preview)", preview=True), token_touched, APPLY)
    _expect(engine.up("token added"), token_touched, APPLY)

    # 5. A bigger instance type: an in-place stop/modify/start. EC2 gives the instance a new
    # public IPv4, but the deployment talks to the Elastic IP: no remote command runs.
    engine.set({"devserver:instanceType": "m7i.2xlarge"})
    _expect(engine.up("instance type change"), {"devserver-x86_64": "update"}, set())

    # 6. Idle auto-stop, then `pulumi up --refresh`: the machine reads back stopped with no IP;
    # InstanceState starts it, the deployment waits for that and has nothing to re-run.
    engine.refresh(machine_stopped)
    _expect(engine.up("up --refresh after a stop"), {"devserver-state": "update"}, set())
    engine.refresh(machine_running_with_a_new_address)
    resumed = engine.up("up --refresh after the start (new auto IP)")
    _expect(resumed, {}, set())
    assert resumed.run is not None and resumed.run.outputs["publicIp"] == address, (
        "publicIp must stay the Elastic IP across stop/start"
    )
    assert resumed.run.outputs["sshCommand"] == outputs["sshCommand"]

    # 7. Arch switch: a new machine from the other arch's image, the same /home and address;
    # everything on the machine runs again because the machine is new.
    engine.set({"devserver:preset": "graviton"})
    engine.config.pop("devserver:instanceType")
    switched = engine.up("arch switch")
    _expect(switched, _new_machine("devserver-aarch64", "devserver-x86_64"), DEPLOY_COMMANDS)
    replaced = {(c.type, c.name): c for c in switched.changes if c.op == "replace"}
    attachment = replaced[("aws:ec2/volumeAttachment:VolumeAttachment", HOME)]
    assert "delete first" in attachment.note, "a volume attaches to one instance at a time"
    assert switched.run is not None and switched.run.outputs["publicIp"] == address

    # 8. NixOS republishes its AMI (and deregisters the old one ~90 days on): a running machine
    # is not replaced for it. `devserver:rebuild` then builds a new machine from the current
    # AMI, since a new name carries no ignored `ami` over; /home and the address move to it.
    monkeypatch.setitem(NIXOS_AMIS, "arm64", REPUBLISHED_AMI)
    _expect(engine.up("AMI republished"), {}, set())
    engine.set({"devserver:rebuild": 1})
    rebuilt = engine.up("rebuild")
    _expect(rebuilt, _new_machine("devserver-aarch64-r1", "devserver-aarch64"), DEPLOY_COMMANDS)
    assert rebuilt.run is not None
    assert rebuilt.run.named("devserver-aarch64-r1").inputs["ami"] == REPUBLISHED_AMI, (
        "a rebuild boots the current AMI, not the one the old machine was launched from"
    )
    assert rebuilt.run.outputs["publicIp"] == address

    # 9. Another republish, then a switch to spot. Market options are a launch setting: a
    # same-name replace would boot the AMI the machine was launched with (ignore_changes keeps
    # it; NixOS deregisters it). Refused before any resource, naming the rebuild to raise.
    monkeypatch.setitem(NIXOS_AMIS, "arm64", REPUBLISHED_AGAIN)
    engine.set({"devserver:spot": True})
    refused = engine.up("spot switch without a rebuild")
    print(refused)
    assert refused.changes == [] and len(refused.refused) == 1, refused
    assert "devserver:spot false -> true" in refused.refused[0]
    assert "Raise devserver:rebuild to 2 in the same update" in refused.refused[0]
    assert f"current AMI {REPUBLISHED_AGAIN}" in refused.refused[0]
    engine.set({"devserver:rebuild": 2})
    spot = engine.up("spot switch with a rebuild")
    _expect(
        spot,
        _new_machine(
            "devserver-aarch64-r2",
            "devserver-aarch64-r1",
            **{
                "devserver-aarch64-r2-spot-request-tag": "create",
                "devserver-aarch64-r2-spot-request": "create",
            },
        ),
        DEPLOY_COMMANDS,
    )
    assert spot.run is not None
    machine = spot.run.named("devserver-aarch64-r2").inputs
    assert machine["ami"] == REPUBLISHED_AGAIN, "the new spot machine boots the current AMI"
    assert machine["instanceMarketOptions"]["marketType"] == "spot"
    assert spot.run.outputs["publicIp"] == address

    # 10. A plain `pulumi destroy`: the engine refuses the whole run at preview (the home volume
    # is protected), and nothing is deleted.
    before = dict(engine.state)
    destroy = engine.destroy("destroy (preview)")
    print(destroy)
    protected = {f"{e.type} {e.name} (protected; delete)" for e in before.values() if e.protect}
    assert protected == {f"{VOLUME} {HOME} (protected; delete)"}, destroy
    assert set(destroy.refused) == protected, destroy
    assert engine.state == before, "a refused destroy changes nothing"

    # 11. `./scripts/down`: `pulumi destroy --exclude-protected` keeps the home volume (and what
    # it depends on: nothing else) and deletes everything else.
    down = engine.destroy("down (destroy --exclude-protected)", exclude_protected=True)
    print(down)
    assert not down.refused, down
    assert down.touched() == {
        c.name: "delete" for c in down.changes if (c.type, c.name) != (VOLUME, HOME)
    }, down
    kept = [c for c in down.changes if c.type == VOLUME]
    assert [(c.name, c.op) for c in kept] == [(HOME, "same")], down
    assert list(engine.state) == [(VOLUME, HOME)], "only the home volume is left in the stack"
    volume_id = engine.entry(VOLUME).id

    # 12. The next `pulumi up` builds a new machine and attaches the same volume.
    again = engine.up("up after down")
    print(again)
    assert not again.refused, again
    kept = [c for c in again.changes if c.type == VOLUME]
    assert [(c.name, c.op) for c in kept] == [(HOME, "same")], again
    assert {c.op for c in again.changes if c.type != VOLUME} == {"create"}, again
    assert again.run is not None
    attached = again.run.of_type("aws:ec2/volumeAttachment:VolumeAttachment")[0]
    assert attached.inputs["volumeId"] == volume_id, "the same /home"


def test_a_command_update_runs_create_again_unless_update_is_set() -> None:
    # The model's pulumi-command rule (commandController.go Update): `update`, else `create`.
    def note(inputs: dict[str, str]) -> str:
        return _note(MockResourceArgs(COMMAND, "c", inputs, custom=True), "update", None)

    assert note({"create": "switch"}) == "runs create"
    assert note({"create": "switch", "update": "true"}) == "runs update"


def test_ignore_changes_carries_the_old_value_into_a_replacement(engine: Engine) -> None:
    engine.up("create")
    instance = engine.entry("aws:ec2/instance:Instance")
    launched_with = instance.inputs["ami"]
    instance.inputs["ami"] = "ami-0launchedlongago00"
    # A replace for another reason (a new key pair is force-new; the program cannot see this one
    # coming, see components/relaunch.py) keeps the ignored AMI.
    instance.inputs["keyName"] = "devserver-deploy-rotated"
    step = engine.up("replace with an ignored ami")
    assert step.change("devserver-x86_64").op == "replace", step
    assert engine.entry("aws:ec2/instance:Instance").inputs["ami"] == "ami-0launchedlongago00"
    assert launched_with != "ami-0launchedlongago00"


def test_a_protected_resource_refuses_the_whole_destroy(engine: Engine) -> None:
    engine.up("create")
    for entry in engine.state.values():
        entry.protect = entry.type == "aws:ec2/keyPair:KeyPair"
    destroy = engine.destroy("destroy (preview)")
    assert destroy.refused == ["aws:ec2/keyPair:KeyPair devserver-deploy (protected; delete)"]


def test_exclude_protected_keeps_what_a_protected_resource_depends_on(engine: Engine) -> None:
    # pulumi/pulumi separateProtected: a protected resource and its transitive dependencies stay.
    engine.up("create")
    attachment = ("aws:ec2/volumeAttachment:VolumeAttachment", HOME)
    for key, entry in engine.state.items():
        entry.protect = key == attachment
    down = engine.destroy("down", exclude_protected=True)
    print(down)
    kept = {(c.type, c.name) for c in down.changes if c.op == "same"}
    assert {
        attachment,
        (VOLUME, HOME),  # its volumeId
        ("aws:ec2/instance:Instance", "devserver-x86_64"),  # its instanceId
        ("aws:ec2/securityGroup:SecurityGroup", "devserver-ssh"),  # the instance's group
    } <= kept, down
    assert ("aws:dlm/lifecyclePolicy:LifecyclePolicy", "home-snapshots-policy") not in kept
    assert ("command:remote:Command", "devserver-apply") not in kept, "a dependent is deleted"
    assert set(engine.state) == kept
