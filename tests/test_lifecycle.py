"""A stack's life replayed under an engine model (tests/lifecycle.py): what each step touches.

Every step prints its table (`pytest -s`), and each assertion names the step. The facts behind
the rules are in docs/upstream-facts.md, "Deployment lifecycle (issue 10)".
"""

from collections.abc import Iterator

import pytest
from pulumi.runtime import MockResourceArgs

from tests import program as fake
from tests.lifecycle import (
    COMMAND,
    Engine,
    StepResult,
    _note,
    _schedule_names,
    machine_running_with_a_new_address,
    machine_stopped,
)
from tests.program import FAKE_TOKEN, NIXOS_AMIS, reset_runtime, reveal

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
    # pulumi/pulumi getProtectedExcludes: a protected resource and its transitive dependencies stay.
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


# --- Months later: time and the outside world (issue 16) ---------------------------------------
# Each test is a step (or a few) of a stack's life after its first `up`; each prints its table.

TAG = "aws:ec2/tag:Tag"
X86_AMI = NIXOS_AMIS["x86_64"]
ON_MACHINE = DEPLOY_COMMANDS | {"devserver-host-flake", "devserver-scripts"}


def _deployment(op: str, machine: str = "devserver-x86_64") -> dict[str, str]:
    """The deployment going (stop, interruption) or coming back (start, EC2 restart); the host
    key tag records which, so the next first contact is pinned."""
    return {**dict.fromkeys(ON_MACHINE, op), f"{machine}-host-key-tag": "update"}


def test_ami_deprecated_then_deregistered_an_existing_machine_never_needs_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NixOS/amis upload_ami.py deprecates each image 90 days after upload; get_ami leaves
    # deprecated images out; delete_deprecated_images.py then deregisters them.
    engine.set({"devserver:nixosRelease": "25.11"})
    engine.up("create on 25.11")
    flake = engine.entry_named("devserver-host-flake").inputs["source"].text
    assert 'stateVersion = "25.11"' in flake
    monkeypatch.setattr(fake, "RETIRED_RELEASES", {"25.11"})
    monkeypatch.setattr(fake, "DEPRECATED_AMIS", {X86_AMI})
    _expect(engine.up("AMI deprecated (day 90)"), {}, set())
    monkeypatch.setattr(fake, "DEREGISTERED_AMIS", {X86_AMI})
    _expect(engine.up("AMI deregistered"), {}, set())
    engine.set({"devserver:state": "stopped"})
    stopped = engine.up("stop, AMI gone")
    print(stopped)
    assert not stopped.refused and stopped.change("devserver-state").op == "update", stopped
    engine.set({"devserver:state": "running"})
    started = engine.up("start, AMI gone")
    print(started)
    assert not started.refused and started.change("devserver-state").op == "update", started
    # Raising the release on the running machine changes nothing on it: stateVersion stays.
    engine.set({"devserver:nixosRelease": "26.05"})
    _expect(engine.up("nixosRelease raised on the running machine"), {}, set())
    # Only a new machine needs an AMI: on the retired release, one clear refusal.
    engine.set({"devserver:nixosRelease": "25.11", "devserver:rebuild": 1})
    refused = engine.up("rebuild on the retired release")
    print(refused)
    assert refused.changes == [] and len(refused.refused) == 1, refused
    assert "devserver:nixosRelease '25.11' has no current official NixOS AMI" in refused.refused[0]
    assert "set devserver:nixosRelease to a release NixOS publishes" in refused.refused[0]
    engine.set({"devserver:nixosRelease": "26.05"})
    monkeypatch.setitem(NIXOS_AMIS, "x86_64", "ami-0260500000000abcd")  # 26.05's current image
    rebuilt = engine.up("rebuild on 26.05")
    _expect(rebuilt, _new_machine("devserver-x86_64-r1", "devserver-x86_64"), DEPLOY_COMMANDS)
    flake = engine.entry_named("devserver-host-flake").inputs["source"].text
    assert 'stateVersion = "26.05"' in flake, "a new machine is installed from the new release"


def test_day_8_of_a_persistent_spot_request_an_interruption_still_keeps_the_machine(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.set({"devserver:preset": "x86-spot"})
    engine.up("create a spot machine (day 0)")
    engine.advance(8)
    engine.interrupt()
    interrupted = engine.up("day 8: interrupted, up while EC2 holds it stopped")
    print(interrupted)
    assert (engine.spot_request() or "").startswith("open"), (
        f"day 8: the persistent request must still be open, else EC2 never restarts the machine\n"
        f"{interrupted}"
    )
    _expect(interrupted, _deployment("delete"), set())
    assert engine.capacity_returns(), "EC2 restarts the machine (same zone and type)"
    _expect(engine.up("day 8: EC2 restarted it"), _deployment("create"), DEPLOY_COMMANDS)
    # A machine launched before the explicit end (no ValidUntil in its state) is not replaced
    # for it: valid_until is ForceNew, and the program ignores it after launch.
    machine = engine.entry_named("devserver-x86_64")
    machine.inputs["instanceMarketOptions"]["spotOptions"].pop("validUntil")
    _expect(engine.up("a machine launched without ValidUntil"), {}, set())
    # The spot price moves every hour; the outputs do not.
    before = engine.history[-1].run.outputs if engine.history[-1].run else {}
    monkeypatch.setitem(fake.SPOT_PRICES, "m7i.xlarge", "0.0999")
    moved = engine.up("the spot price moved")
    _expect(moved, {}, set())
    assert moved.run is not None and moved.run.outputs == before, "outputs change only for real"


def test_retention_changed_keeps_every_snapshot_managed(engine: Engine) -> None:
    engine.up("create")
    policy = engine.entry_named("home-snapshots-policy")
    first = _schedule_names(policy.inputs)
    engine.set({"devserver:snapshotRetentionDays": 14})
    step = engine.up("retention changed (7 -> 14 days)")
    print(step)
    change = step.change("home-snapshots-policy")
    assert change.op == "update" and "ORPHANS" not in change.note, step
    assert _schedule_names(engine.entry_named("home-snapshots-policy").inputs) == first
    # A stack whose schedule was named after its retention keeps that name, and its snapshots.
    engine.entry_named("home-snapshots-policy").inputs["policyDetails"]["schedules"][0]["name"] = (
        "daily-14d"
    )
    engine.set({"devserver:snapshotRetentionDays": 30})
    old = engine.up("retention changed on a stack with the old schedule name")
    print(old)
    assert "ORPHANS" not in old.change("home-snapshots-policy").note, old
    assert _schedule_names(engine.entry_named("home-snapshots-policy").inputs) == ["daily-14d"]


def test_type_change_while_stopped_is_refused_naming_both_keys(engine: Engine) -> None:
    engine.up("create")
    engine.set({"devserver:state": "stopped"})
    engine.up("stop")
    engine.set({"devserver:instanceType": "m7i.2xlarge"})
    refused = engine.up("type change while stopped")
    print(refused)
    assert refused.changes == [] and len(refused.refused) == 1, refused
    message = refused.refused[0]
    assert "devserver:instanceType m7i.xlarge -> m7i.2xlarge" in message
    assert "devserver:state is stopped" in message
    engine.set({"devserver:state": "running"})
    both = engine.up("type change with state running")
    print(both)
    assert both.change("devserver-x86_64").op == "update" and not both.refused, both


def test_subnet_added_in_the_zone_does_not_move_the_machine(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.up("create")
    # A lower id than the machine's subnet-0a0a0a0a, in the same zone and VPC.
    monkeypatch.setitem(fake.SUBNETS, "subnet-00000001", ("vpc-0d3fa017", "eu-west-1a"))
    _expect(engine.up("subnet added in the zone"), {}, set())


def test_user_renamed_during_an_interruption_is_left_for_ec2(engine: Engine) -> None:
    engine.set({"devserver:preset": "x86-spot"})
    created = engine.up("create a spot machine")
    pin = created.run.outputs["sshHostKey"] if created.run else None
    engine.interrupt()
    engine.set({"devserver:user": "bob"})
    step = engine.up("user renamed during an interruption")
    print(step)
    assert not step.refused, step
    assert step.change("devserver-state").op == "same", "only EC2 may start it (no StartInstances)"
    assert not step.reruns(), "nothing connects to a stopped machine"
    assert step.run is not None and step.run.outputs["sshHostKey"] == pin


def test_the_host_key_stays_pinned_across_stop_and_start(engine: Engine) -> None:
    created = engine.up("create")
    key = created.run.outputs["sshHostKey"] if created.run else None
    assert key, created
    _expect(engine.up("no-op up"), {}, set())
    engine.set({"devserver:state": "stopped"})
    stopped = engine.up("stop")
    print(stopped)
    assert stopped.run is not None and stopped.run.outputs["sshHostKey"] == key, (
        "the pin survives while the machine is stopped (examples/ssh-config keeps checking it)"
    )
    engine.set({"devserver:state": "running"})
    started = engine.up("start")
    print(started)
    first_contact = engine.entry_named("devserver-host-key").inputs["connection"]
    assert reveal(first_contact).get("hostKey") == key, "no trust on first use after a start"
    assert started.run is not None and started.run.outputs["sshHostKey"] == key
    _expect(engine.up("no-op up after the start"), {}, set())


def test_the_host_key_pin_survives_a_refresh(engine: Engine) -> None:
    created = engine.up("create")
    key = created.run.outputs["sshHostKey"] if created.run else None
    assert key, created
    # `pulumi up --refresh`: the refresh reads every tag EC2 holds into the instance's tagsAll.
    engine.refresh(lambda state: None)
    _expect(engine.up("up --refresh"), {}, set())
    _expect(engine.up("no-op up after the refresh"), {}, set())
    engine.set({"devserver:state": "stopped"})
    stopped = engine.up("stop")
    print(stopped)
    assert stopped.run is not None and stopped.run.outputs["sshHostKey"] == key, stopped
    engine.set({"devserver:state": "running"})
    engine.up("start")
    first_contact = engine.entry_named("devserver-host-key").inputs["connection"]
    assert reveal(first_contact).get("hostKey") == key, "no trust on first use after a refresh"


def test_home_volume_shrink_is_refused_and_growth_is_in_place(engine: Engine) -> None:
    engine.up("create")
    engine.set({"devserver:homeVolumeGiB": 50})
    refused = engine.up("home volume shrunk (100 -> 50 GiB)")
    print(refused)
    assert refused.changes == [] and len(refused.refused) == 1, refused
    assert "devserver:homeVolumeGiB is 50" in refused.refused[0]
    assert "already 100 GiB" in refused.refused[0]
    engine.set({"devserver:homeVolumeGiB": 200})
    _expect(engine.up("home volume grown (100 -> 200 GiB)"), {HOME: "update"}, set())


def test_credentials_only_in_stack_config_reach_the_price_list_provider(engine: Engine) -> None:
    engine.config.pop("aws:profile", None)
    engine.set(
        secrets={
            "aws:accessKey": "FAKEACCESSKEYFORTESTS",
            "aws:secretKey": "fake-secret-key-for-tests",
        }
    )
    engine.set({"aws:assumeRoles": [{"roleArn": "arn:aws:iam::123456789012:role/devserver-ops"}]})
    step = engine.up("credentials only in stack config")
    print(step)
    assert step.run is not None and not step.refused, step
    provider = step.run.named("price-list-us-east-1").inputs
    assert reveal(provider.get("accessKey")) == "FAKEACCESSKEYFORTESTS", provider
    assert reveal(provider.get("secretKey")) == "fake-secret-key-for-tests"
    assert "devserver-ops" in str(provider.get("assumeRoles")), provider
    assert provider["region"] == "us-east-1"


def test_secret_aws_settings_stay_secret_in_the_price_list_provider(engine: Engine) -> None:
    engine.set(
        secrets={
            "aws:assumeRoleWithWebIdentity": '{"roleArn": "arn:aws:iam::123456789012:role/ci", '
            '"webIdentityToken": "FAKE-WEB-IDENTITY-TOKEN"}',
            "aws:httpsProxy": "http://user:fake-proxy-password@proxy.example:3128",
        }
    )
    engine.set({"aws:noProxy": "169.254.169.254"})
    step = engine.up("secret aws: settings")
    assert step.run is not None, step
    provider = step.run.named("price-list-us-east-1").inputs
    for key in ("assumeRoleWithWebIdentity", "httpsProxy"):
        value = provider.get(key)
        assert isinstance(value, dict) and fake.SECRET_SIG in value, f"{key} in plain: {value}"
    assert "FAKE-WEB-IDENTITY-TOKEN" in str(reveal(provider["assumeRoleWithWebIdentity"]))
    assert provider.get("noProxy") == "169.254.169.254", "a plain setting stays plain"


def test_every_aws_provider_argument_reaches_the_price_list_provider() -> None:
    import inspect

    import pulumi_aws as aws

    from components.settings import aws_access

    # The region is the Price List API's own; the rest is every argument pulumi_aws takes.
    wanted = set(inspect.signature(aws.Provider._internal_init).parameters) - {
        "__self__", "resource_name", "opts", "__props__", "region",
    }  # fmt: skip
    passed = {aws_access._snake(k) for k in aws_access.PROVIDER_KEYS}
    assert wanted == passed, f"missing {sorted(wanted - passed)}, unknown {sorted(passed - wanted)}"


def test_a_fleet_of_6_in_a_region_with_5_elastic_ips_is_refused_before_anything(
    engine: Engine,
) -> None:
    people = ["ana", "ben", "cat", "dan", "eve", "fay"]
    engine.set(
        {"devserver:servers": [{"name": p, "user": p, "githubUser": f"{p}-gh"} for p in people]}
    )
    step = engine.up("a fleet of 6 in a region with 5 Elastic IPs")
    print(step)
    assert step.changes == [] and len(step.refused) == 1, step
    message = step.refused[0]
    assert "needs 6 new Elastic IP(s)" in message and "0 of its 5 in use" in message, message
    assert "L-0263D0A3" in message and "request-service-quota-increase" in message
    engine.set({"devserver:servers": [{"name": p, "user": p, "githubUser": p} for p in people[:5]]})
    five = engine.up("a fleet of 5")
    print(five)
    assert not five.refused, five


def test_a_raised_elastic_ip_quota_is_read_with_the_operator_policy(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The data source needs servicequotas:GetAWSDefaultServiceQuota too (tests/program.py).
    monkeypatch.setattr(fake, "ELASTIC_IP_QUOTA", [10.0])
    monkeypatch.setattr(fake, "ELASTIC_IPS", {f"eipalloc-0other{i}": {} for i in range(6)})
    people = ["ana", "ben", "cat"]
    engine.set(
        {"devserver:servers": [{"name": p, "user": p, "githubUser": f"{p}-gh"} for p in people]}
    )
    step = engine.up("a fleet of 3 beside 6 other addresses, quota raised to 10")
    print(step)
    assert not step.refused, step


def test_an_update_that_needs_no_new_elastic_ip_is_never_refused(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.up("create")
    # Later the region fills up past its quota with other people's addresses.
    monkeypatch.setattr(fake, "ELASTIC_IPS", {f"eipalloc-0other{i}": {} for i in range(6)})
    step = engine.up("no-op up in a full region")
    print(step)
    assert not step.refused, step


def test_an_unread_elastic_ip_quota_warns_instead_of_refusing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []
    monkeypatch.setattr("components.elastic_ips.pulumi.log.warn", warnings.append)
    monkeypatch.setattr(fake, "QUOTA_DENIED", {"servicequotas:GetAWSDefaultServiceQuota"})
    monkeypatch.setattr(fake, "ELASTIC_IPS", {f"eipalloc-0other{i}": {} for i in range(5)})
    step = engine.up("a first up beside 5 other addresses, quota unreadable")
    print(step, warnings)
    assert not step.refused, step
    warned = [w for w in warnings if "L-0263D0A3" in w]
    assert warned and "servicequotas:GetAWSDefaultServiceQuota" in warned[0], warnings
    assert "devserver:user" not in warned[0], warned


def test_the_elastic_ip_refusal_of_one_server_names_no_unrelated_key(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake, "ELASTIC_IPS", {f"eipalloc-0other{i}": {} for i in range(5)})
    step = engine.up("a first up beside 5 other addresses, quota 5")
    print(step)
    assert len(step.refused) == 1 and "needs 1 new Elastic IP(s)" in step.refused[0], step
    assert "devserver:user" not in step.refused[0], step.refused[0]


def test_an_edit_under_nix_re_runs_only_the_deployment(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from components import devserver
    from components.shared_flake import PushedFile, pushed_flake

    # No devserver:flake: the deployment pushes this checkout's nix/.
    engine.config.pop("devserver:flake")
    created = engine.up("create, pushing nix/")
    assert {c.op for c in created.changes} == {"create"}, created
    assert "devserver-shared-flake" in created.ops("create")
    _expect(engine.up("no-op up"), {}, set())

    # A package added to a module under nix/ (the working tree, as git tracks it).
    flake = pushed_flake()
    edited = tuple(
        PushedFile(f.path, f.text + "# a package added here\n", f.executable)
        if f.path == "modules/developer.nix"
        else f
        for f in flake.files
    )
    monkeypatch.setattr(devserver, "pushed_flake", lambda: dataclasses.replace(flake, files=edited))
    _expect(
        engine.up("edit under nix/"),
        {"devserver-shared-flake": "update", **dict.fromkeys(APPLY, "replace")},
        APPLY,
    )
    assert engine.history[-1].change("devserver-shared-flake").note == "copies"


CACHE_RESOURCES = {
    "binary-cache-bucket": "create",
    "binary-cache-ownership": "create",
    "binary-cache-public-access": "create",
    "binary-cache-encryption": "create",
    "binary-cache-lifecycle": "create",
    "binary-cache-policy": "create",
    "binary-cache-cache-info": "create",
    "binary-cache-signing-key": "create",  # the key pair and its secret share the name
    "binary-cache-writer": "create",  # the CI role and its policy share the name
}


def test_turning_the_cache_on_for_an_existing_stack_reruns_only_the_deployment(
    engine: Engine,
) -> None:
    """The machine, /home and the address stay; the cache is created, the role may read it, and
    the apply runs again with the cache in machine.json and on its command line."""
    engine.up("create")
    engine.set(
        {"devserver:binaryCache": True, "devserver:binaryCacheWriterRepository": "acme/infra"}
    )
    touched = {
        **CACHE_RESOURCES,
        "devserver-read-binary-cache": "create",
        **dict.fromkeys(APPLY, "replace"),
    }
    # The preview of that change passes the provider checks (the host flake is known).
    _expect(engine.up("cache turned on (preview)", preview=True), touched, APPLY)
    step = engine.up("cache turned on")
    _expect(step, touched, APPLY)
    assert step.run is not None
    url = step.run.outputs["binaryCache"]["url"]
    assert step.run.outputs["binaryCacheUrl"] == url
    stdin = reveal(step.run.named("devserver-apply").inputs["stdin"])
    assert f'"url": "{url}"' in stdin, "machine.json carries the cache for the host flake"
    # Nothing changed afterwards: nothing runs again.
    _expect(engine.up("no-op up with the cache"), {}, set())
