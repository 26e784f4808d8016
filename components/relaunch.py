"""Refuse, before any resource is registered, a change the running machine cannot take in place.

aws_instance replaces itself when a launch setting changes (market options, spot max price,
subnet, key pair: ForceNew in terraform-provider-aws). The replacement keeps the resource name,
so `ignore_changes=["ami"]` carries the launch AMI into RunInstances, and NixOS deregisters that
AMI about 90 days after release (InvalidAMIID.NotFound). A spot machine cannot change its type
in place either: the provider stops it first, and EC2 does not modify a stopped spot instance's
type. Both need a new machine under a new name, i.e. a raised `devserver:rebuild`.

The program cannot read its own state, so it compares the plan with the machine EC2 holds, found
by the server's tags; the instance carries its rebuild generation and spot max price as tags.
A key pair is compared by its public key, known up front only for `devserver:deployPrivateKey`:
a switch back to a generated key cannot be seen (the README says to rebuild with it).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from components.image import STATE_VERSION_TAG
from components.lookups import AwsLookupError, AwsLookups, ExistingInstance, lookup_failed
from components.network import Placement
from components.settings import DevServerSettings, MachineSpec, SettingsError, report

REBUILD_TAG = "devserver:rebuild"
SPOT_MAX_PRICE_TAG = "devserver:spotMaxPrice"
# The max-price tag of a spot machine launched without one (it pays at most the on-demand price).
NO_MAX_PRICE = "none"


def launch_tags(spec: MachineSpec, rebuild: int, state_version: str) -> dict[str, str]:
    """What the instance records about its launch, for the next plan to compare with."""
    tags = {REBUILD_TAG: str(rebuild), STATE_VERSION_TAG: state_version}
    if spec.spot:
        tags[SPOT_MAX_PRICE_TAG] = spec.spot_max_price or NO_MAX_PRICE
    return tags


@dataclass(frozen=True)
class Difference:
    """One launch setting the plan changes on an existing machine."""

    key: str
    old: str
    new: str
    why: str

    def __str__(self) -> str:
        return f"{self.key} {self.old} -> {self.new} ({self.why})"


REPLACES = (
    "a launch setting: the machine would be replaced from the AMI it was launched with, which "
    "ignore_changes keeps and NixOS deregisters about 90 days after release"
)
SPOT_TYPE = (
    "EC2 does not change the type of a spot instance: it must be stopped for that, and a "
    "stopped spot instance's type cannot be modified"
)


def existing_machine(s: DevServerSettings, lookups: AwsLookups) -> ExistingInstance | None:
    """The machine EC2 holds under this server's resource name (arch and rebuild generation),
    found by its tags; None when this update launches a new one."""
    try:
        live = lookups.live_instances(s.lookup_tags)
    except AwsLookupError as err:
        raise SettingsError(lookup_failed(s.name, err)) from err
    return next((m for m in live if _same_resource(m, s, lookups)), None)


def check_relaunch(
    s: DevServerSettings,
    placement: Placement,
    new_image: Callable[[], str],
    machine: ExistingInstance | None,
    lookups: AwsLookups,
) -> None:
    """Raise a SettingsError naming every change the existing machine of this server cannot
    take without a raised `devserver:rebuild`; a first create, or an unchanged launch, passes.
    `new_image` says which AMI a new machine would boot (asked only for a refusal)."""
    if machine is None:
        return
    differences = launch_differences(machine, s, placement)
    differences += _key_differences(machine, s, lookups)
    problems = [_refusal(s, machine, differences, new_image())] if differences else []
    problems += _started_by_a_type_change(machine, s)
    if problems:
        raise SettingsError(report(problems), problems)


def _started_by_a_type_change(machine: ExistingInstance, s: DevServerSettings) -> list[str]:
    """terraform-provider-aws changes an instance's type by stopping it, modifying it and
    starting it again (ec2_instance.go `modifyInstanceAttributeWithStopStart`), whatever
    InstanceState records: with `state: stopped` the machine would run, and bill, undeployed."""
    spec, p = s.machine, s.config_prefix
    if s.running or spec.spot or machine.instance_type == spec.instance_type:
        return []  # a spot type change is refused above; running: the start is wanted
    return [
        f"server {s.name!r}: {p}instanceType {machine.instance_type} -> {spec.instance_type} "
        f"while {p}state is stopped: the AWS provider changes the type by stopping, modifying "
        f"and starting the machine, so {machine.id} would run (and bill) with no deployment. "
        f"Change the type in the update that sets {p}state back to running, or keep "
        f"{p}instanceType {machine.instance_type} while it is stopped."
    ]


def _same_resource(machine: ExistingInstance, s: DevServerSettings, lookups: AwsLookups) -> bool:
    """Whether the plan keeps this machine's resource name (arch and rebuild generation); a new
    name is a new machine from the current AMI, so any launch setting may change with it."""
    try:
        arm = "arm64" in lookups.instance_type(machine.instance_type).architectures
    except AwsLookupError:
        arm = s.machine.arch == "aarch64"  # a retired type: assume the arch is unchanged
    if ("aarch64" if arm else "x86_64") != s.machine.arch:
        return False
    generation = machine.tag(REBUILD_TAG)
    # Untagged (launched before the tag existed): the generation is unknown, so compare anyway.
    return generation is None or not generation.isdigit() or int(generation) == s.rebuild


def launch_differences(
    machine: ExistingInstance, s: DevServerSettings, placement: Placement
) -> list[Difference]:
    """The launch settings the plan would change on this machine."""
    spec, p = s.machine, s.config_prefix
    found = []
    if machine.spot != spec.spot:
        found.append(
            Difference(f"{p}spot", str(machine.spot).lower(), str(spec.spot).lower(), REPLACES)
        )
    elif spec.spot:
        old = machine.tag(SPOT_MAX_PRICE_TAG)
        new = spec.spot_max_price
        # The provider suppresses a removed max price and trailing zeros (ec2_instance.go).
        if old is not None and new is not None and old.rstrip("0") != new.rstrip("0"):
            shown = "unset" if old == NO_MAX_PRICE else repr(old)
            found.append(Difference(f"{p}spotMaxPrice", shown, repr(new), REPLACES))
        if machine.instance_type != spec.instance_type:
            found.append(
                Difference(f"{p}instanceType", machine.instance_type, spec.instance_type, SPOT_TYPE)
            )
    if machine.subnet_id != placement.subnet_id:
        found.append(
            Difference(
                _placement_key(s),
                f"{machine.subnet_id} ({machine.availability_zone})",
                f"{placement.subnet_id} ({placement.availability_zone})",
                REPLACES,
            )
        )
    return found


def _key_differences(
    machine: ExistingInstance, s: DevServerSettings, lookups: AwsLookups
) -> list[Difference]:
    """A new key pair replaces the machine (key_name is ForceNew). Knowable only for a key from
    config (its public half is in the clear) and for a machine launched without a key pair; a
    generated key's new key pair name is unknown until the update runs."""
    if not s.deploy:
        return []  # key_name is Optional+Computed: dropping it leaves the machine as it is
    if not machine.key_name:
        return [Difference(f"{s.config_prefix}deploy", "false (no key pair)", "true", REPLACES)]
    if s.deploy_public_key is None:
        return []
    current = lookups.key_pair_public_key(machine.key_name)
    fields = (current or "").split()
    if len(fields) < 2 or fields[1] == s.deploy_public_key:
        return []
    return [
        Difference(
            "devserver:deployPrivateKey",
            f"key pair {machine.key_name} ({_fingerprint(fields[1])})",
            f"another key ({_fingerprint(s.deploy_public_key)})",
            REPLACES,
        )
    ]


def _fingerprint(blob: str) -> str:
    """The SHA256 fingerprint ssh-keygen -l prints for a public key blob."""
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _placement_key(s: DevServerSettings) -> str:
    """The key that moved the machine: the one that names its subnet, zone or VPC."""
    net, p = s.network, s.config_prefix
    if net.subnet_id:
        return f"{p}subnetId"
    if net.availability_zone:
        return f"{p}availabilityZone"
    if net.vpc_id:
        return f"{p}vpcId"
    return f"{p}subnetId (chosen by placement)"


def _refusal(
    s: DevServerSettings, machine: ExistingInstance, differences: list[Difference], image: str
) -> str:
    nxt = s.rebuild + 1
    untagged = ""
    if machine.tag(REBUILD_TAG) is None:
        untagged = (
            f" ({machine.id} has no {REBUILD_TAG} tag yet: it was launched before this check. If"
            " you did raise the generation, first run `./scripts/up <stack>` once without this"
            " change, which tags the machine in place.)"
        )
    return (
        f"server {s.name!r}: its machine {machine.id} cannot take this change in place: "
        + "; ".join(str(d) for d in differences)
        + f". Raise {s.config_prefix}rebuild to {nxt} in the same update: a new machine boots "
        f"{image}, /home and the Elastic IP move to it (the root disk and "
        "the SSH host key are new), and the old machine goes. (It was found by its tags "
        f"devserver:stack={s.stack}, devserver:server={s.name}: if {machine.id} is not yours, "
        "another stack of the same name runs in this account and region; give yours another "
        "stack name.)" + untagged
    )
