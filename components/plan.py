# Each server's plan: everything that can still fail on input, resolved before any resource.
"""Placement, image, relaunch guards, spot interruptions and quotas are asked for every server, so
one run reports the problems of all of them together and creates nothing when any is wrong."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import pulumi

from components.binary_cache import BinaryCache
from components.cost import Prices, estimated_cost
from components.deploy_key import DeployKey
from components.elastic_ips import check_elastic_ips
from components.host_key_pin import HostKeyPin, pinned_host_key
from components.image import installed_release, launched_image, resolve_image
from components.lookups import (
    AwsLookupError,
    AwsLookups,
    AwsPermissionError,
    Image,
    lookup_failed,
)
from components.network import Placement, check_home_size, resolve_placement
from components.relaunch import check_relaunch, existing_machine
from components.settings import DevServerSettings, SettingsError, report
from components.shared_flake import PushedFlakeError, pushed_flake


@dataclass(frozen=True)
class DevServerArgs:
    """Validated settings plus what the plan resolved from AWS: placement and image."""

    settings: DevServerSettings
    placement: Placement
    image: Image
    estimated_cost: dict[str, object] | None = None
    security_group_id: pulumi.Input[str] | None = None
    """The SSH security group, shared by every server with the same VPC and CIDRs."""
    deploy_key: DeployKey | None = None
    """The stack's deploy key (None when deployment is off)."""
    spot_interrupted: bool = False
    """An interruption holds the server's spot machine stopped: only EC2 may start it now."""
    state_version: str = ""
    """The NixOS release the machine was first installed from (`system.stateVersion`)."""
    pinned_host_key: HostKeyPin | None = None
    """The SSH host key recorded on the existing machine; None for a new machine (trust on
    first use)."""
    new_machine: bool = True
    """No machine of this resource name exists yet: this update launches one."""
    binary_cache: BinaryCache | None = None
    """The stack's own binary cache (None when no server trusts it)."""


def plan(settings: DevServerSettings, lookups: AwsLookups) -> DevServerArgs:
    """Resolve everything that can still fail on input, before any resource is registered.
    Placement and image are both asked, so one server's problems are reported together.

    An existing machine never needs an image (it boots its own root disk): only a new one has
    its AMI looked up, so an expired NixOS release stops nothing but a new launch."""
    errors: list[str] = []
    found = _collect(errors, lambda: (existing_machine(settings, lookups),))
    machine = found[0] if found else None
    placement = _collect(errors, lambda: resolve_placement(settings, lookups, machine))
    if machine is not None and machine.ami:
        image: Image | None = launched_image(settings, machine)
    else:
        image = _collect(errors, lambda: resolve_image(settings, lookups))
    interrupted = _collect(errors, lambda: spot_interrupted(settings, lookups))
    _collect(errors, lambda: check_home_size(settings, lookups))
    if settings.deploy and not settings.flake:
        _collect(errors, lambda: _pushable(settings))
    if placement is not None and found is not None:
        # Only now is the launch spec known; an existing machine must be able to take it.
        _collect(
            errors,
            lambda: check_relaunch(
                settings, placement, functools.partial(_new_image, settings, lookups), machine,
                lookups,
            ),
        )  # fmt: skip
    if placement is None or image is None or interrupted is None or errors:
        raise SettingsError(report(errors), errors)
    return DevServerArgs(
        _with_adopted_size(settings, lookups),
        placement,
        image,
        spot_interrupted=interrupted,
        state_version=installed_release(settings, machine),
        pinned_host_key=pinned_host_key(machine, lookups),
        new_machine=machine is None,
    )


def _new_image(settings: DevServerSettings, lookups: AwsLookups) -> str:
    """Which AMI a new machine would boot, in words (for a refusal that asks for one)."""
    try:
        return f"the current AMI {resolve_image(settings, lookups).id}"
    except SettingsError as err:
        return f"an AMI that must be found first ({err})"


def _pushable(s: DevServerSettings) -> None:
    """Without a remote flake the deployment pushes nix/: it must be pushable before anything."""
    try:
        pushed_flake()
    except PushedFlakeError as err:
        raise SettingsError(
            f"{s.config_prefix}flake is not set, so the deployment pushes this checkout's nix/, "
            f"but {err}"
        ) from err


def plan_all(servers: tuple[DevServerSettings, ...], lookups: AwsLookups) -> list[DevServerArgs]:
    """Every server's plan, or one error listing the problems of all of them: lookups AWS refused
    (a permission problem, named as one) first, else the configuration problems."""
    errors: list[str] = []
    refused: list[str] = []
    plans = []
    for s in servers:
        try:
            plans.append(_collect(errors, functools.partial(plan, s, lookups)))
        except AwsPermissionError as err:
            refused.extend(err.problems)
    try:
        _collect(errors, lambda: check_elastic_ips(servers, lookups))
    except AwsPermissionError as err:
        refused.extend(err.problems)
    if refused:
        raise AwsPermissionError(refused)
    if errors:
        raise SettingsError(report(errors), errors)
    return [p for p in plans if p is not None]


T = TypeVar("T")


def _collect(errors: list[str], step: Callable[[], T]) -> T | None:
    try:
        return step()
    except SettingsError as err:
        errors.extend(err.problems)
        return None


def _with_adopted_size(settings: DevServerSettings, lookups: AwsLookups) -> DevServerSettings:
    """An adopted home volume has the size AWS reports (what it costs), not the preset's."""
    volume_id = settings.home.existing_volume_id
    if volume_id is None:
        return settings
    size = lookups.volume(volume_id).size_gib
    return replace(settings, machine=replace(settings.machine, home_volume_gib=size))


def spot_interrupted(s: DevServerSettings, lookups: AwsLookups) -> bool:
    """Whether an interruption stopped this server's spot machine; if so, say what happens."""
    if not s.machine.spot:
        return False
    try:
        # The same tags that find its machines and volumes: an owner rename must not hide it.
        stopped = lookups.interrupted_spot_instances(s.lookup_tags)
    except AwsLookupError as err:
        raise SettingsError(lookup_failed(s.name, err)) from err
    if stopped:
        pulumi.log.warn(
            f"server {s.name!r}: the spot machine {', '.join(stopped)} was stopped by a spot "
            "interruption, and only EC2 may start it (when capacity returns, in the same zone "
            "and type). This update leaves its running/stopped state alone and skips the flake "
            "deployment; run `./scripts/up <stack>` again once EC2 has restarted it. To move on "
            "now, "
            f"raise {s.config_prefix}rebuild (with devserver:spot false or another instance "
            "type if you like): a new machine from the current AMI takes over /home."
        )
    return bool(stopped)


def with_cost(args: DevServerArgs, prices: Prices) -> DevServerArgs:
    """The plan plus its cost estimate (asked after every plan passed: pricing may register a
    provider for the Price List API's region)."""
    spec, zone = args.settings.machine, args.placement.availability_zone
    cost = estimated_cost(spec, args.settings.region, zone, prices, args.settings.idle_stop_minutes)
    return replace(args, estimated_cost=cost)
