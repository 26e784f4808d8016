"""Where the machine lives (VPC, subnet, availability zone) and who may reach its SSH port."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pulumi
import pulumi_aws as aws

from components.home_volume import HOME_ROLE_TAG
from components.lookups import (
    AwsLookupError,
    AwsLookups,
    ExistingInstance,
    ExistingVolume,
    Subnet,
    lookup_failed,
)
from components.settings import DevServerSettings, SettingsError

T = TypeVar("T")


@dataclass(frozen=True)
class Placement:
    """The subnet the machine launches in; the home volume must share its availability zone."""

    vpc_id: str
    subnet_id: str
    availability_zone: str


def resolve_placement(
    server: DevServerSettings, lookups: AwsLookups, machine: ExistingInstance | None = None
) -> Placement:
    """Pick a subnet whose zone offers the instance type, or check the one the stack names.

    The choice is deterministic (first zone in name order), and once the server has a home volume
    (found by its tags) that volume's zone wins, so a type or arch change never moves the machine
    away from its /home; pin `availabilityZone` in the stack config to make it explicit. An
    existing machine keeps the subnet it runs in while that subnet still fits: a subnet added to
    the zone later never moves it (a new subnet is a new machine).
    """
    net, where = server.network, server.config_prefix
    instance_type = server.machine.instance_type

    def ask(key: str, lookup: Callable[[str], T], arg: str) -> T:
        try:
            return lookup(arg)
        except AwsLookupError as err:
            raise SettingsError(f"{where}{key}: {err}") from err

    zone = net.availability_zone
    offered = ask("instanceType", lookups.zones_offering, instance_type)
    if server.home.existing_volume_id:
        volume = ask("homeVolumeId", lookups.volume, server.home.existing_volume_id)
        if zone and zone != volume.availability_zone:
            raise SettingsError(
                f"{where}availabilityZone must be {volume.availability_zone} (the zone of "
                f"{where}homeVolumeId {volume.id}), got {zone!r}"
            )
        if not volume.encrypted:
            raise SettingsError(
                f"{where}homeVolumeId must be an encrypted volume, got {volume.id!r} "
                "(unencrypted): snapshot it and restore the snapshot with encryption"
            )
        _check_adopted_size(server, volume)
        zone = volume.availability_zone
    else:
        zone = _kept_home_zone(server, lookups, zone)
    candidates: tuple[Subnet, ...]
    if net.subnet_id:
        subnet = ask("subnetId", lookups.subnet, net.subnet_id)
        _check_subnet_in_vpc(server, subnet)
        if zone and zone != subnet.availability_zone:
            raise SettingsError(
                f"{where}subnetId {net.subnet_id!r} is in {subnet.availability_zone}, "
                f"but the machine must be in {zone}: pick a subnet there"
            )
        candidates = (subnet,)
    else:
        vpc_id = net.vpc_id or ask("vpcId", lambda _: lookups.default_vpc_id(), "")
        candidates = tuple(
            s
            for s in ask("vpcId", lookups.subnets, vpc_id)
            if zone is None or s.availability_zone == zone
        )
        if not candidates:
            raise SettingsError(
                f"{where}availabilityZone {zone!r} has no subnet in VPC {vpc_id}: "
                f"set {where}subnetId or another zone"
            )
    if machine is not None:
        # Sticky: the machine's own subnet first, when the config still allows it.
        candidates = tuple(sorted(candidates, key=lambda s: s.id != machine.subnet_id))
    for s in candidates:
        if s.availability_zone in offered:
            return Placement(s.vpc_id, s.id, s.availability_zone)
    zones = ", ".join(sorted(offered)) or "none"
    raise SettingsError(
        f"{where}instanceType {instance_type!r} is not offered in "
        f"{', '.join(sorted({s.availability_zone for s in candidates}))}"
        f" (zones that offer it: {zones}): set {where}availabilityZone or pick another type"
    )


def _check_adopted_size(server: DevServerSettings, volume: ExistingVolume) -> None:
    """An adopted volume keeps its own size; a different size asked for in config is a mistake
    (the program never resizes a volume it does not own). A preset's size is simply not used."""
    key, asked = server.home.size_key, server.machine.home_volume_gib
    if key is not None and asked != volume.size_gib:
        where = server.config_prefix
        raise SettingsError(
            f"{key} is {asked} but {where}homeVolumeId {volume.id} is {volume.size_gib} GiB: "
            f"an adopted volume keeps its size; remove {key} or set it to {volume.size_gib}"
        )


def _check_subnet_in_vpc(server: DevServerSettings, subnet: Subnet) -> None:
    """A subnet decides the VPC; a `vpcId` naming another one would be silently ignored."""
    vpc_id, where = server.network.vpc_id, server.config_prefix
    if vpc_id and subnet.vpc_id != vpc_id:
        raise SettingsError(
            f"{where}subnetId {subnet.id!r} is in {subnet.vpc_id}, but {where}vpcId is "
            f"{vpc_id!r}: pick a subnet of {vpc_id} or remove {where}vpcId"
        )


def check_home_size(server: DevServerSettings, lookups: AwsLookups) -> None:
    """Refuse a home size below what the volume already has: EBS ModifyVolume only grows a
    volume, and the provider would fail half-way through the update. (Growing is an in-place
    ModifyVolume; the machine grows the filesystem at boot, see docs/lifecycle.md.)"""
    if server.home.existing_volume_id:
        return  # an adopted volume is checked against its own size in resolve_placement
    where, asked = server.config_prefix, server.machine.home_volume_gib
    try:
        volumes = _home_volumes(server, lookups)
    except AwsLookupError as err:
        raise SettingsError(lookup_failed(server.name, err)) from err
    bigger = [v for v in volumes if v.size_gib > asked]
    if not bigger:
        return
    key = server.home.size_key or f"{where}homeVolumeGiB (the preset's size)"
    v = bigger[0]
    raise SettingsError(
        f"{key} is {asked}, but the home volume {v.id} is already {v.size_gib} GiB: an EBS "
        f"volume only grows (ModifyVolume refuses a smaller size), so set {where}homeVolumeGiB "
        f"to {v.size_gib} or more. To shrink /home, copy it to a new, smaller volume and adopt "
        f"that with {where}homeVolumeId."
    )


def _home_volumes(server: DevServerSettings, lookups: AwsLookups) -> tuple[ExistingVolume, ...]:
    # One listing per stack (a fleet asks once), then this server's by their tags.
    stack_homes = lookups.tagged_volumes((("devserver:stack", server.stack), HOME_ROLE_TAG))
    return tuple(v for v in stack_homes if set(server.lookup_tags) <= set(v.tags))


def _kept_home_zone(server: DevServerSettings, lookups: AwsLookups, zone: str | None) -> str | None:
    """Once the server has a home volume, its zone wins: another zone would need a new volume."""
    where = server.config_prefix
    try:
        volumes = _home_volumes(server, lookups)
    except AwsLookupError as err:
        raise SettingsError(lookup_failed(server.name, err)) from err
    zones = sorted({v.availability_zone for v in volumes})
    if not zones:
        return zone
    ids = ", ".join(v.id for v in volumes)
    if len(zones) > 1:
        raise SettingsError(
            f"server {server.name!r} has home volumes in several zones ({ids} in "
            f"{', '.join(zones)}): delete or untag the ones it no longer uses, or set "
            f"{where}homeVolumeId to the one to keep"
        )
    if zone and zone != zones[0]:
        raise SettingsError(
            f"{where}availabilityZone is {zone!r}, but this server's home volume {ids} is in "
            f"{zones[0]} and a volume cannot change zones: set {where}availabilityZone to "
            f"{zones[0]} or remove it (to move, restore a snapshot in {zone} and adopt it with "
            f"{where}homeVolumeId)"
        )
    return zones[0]


def _rule_name(name: str, cidr: str) -> str:
    """A readable, stable resource name per CIDR, so reordering the list replaces nothing."""
    network = ipaddress.ip_network(cidr)
    return (
        f"{name}-ssh-from-{network.network_address.exploded.replace(':', '.')}-{network.prefixlen}"
    )


@dataclass(frozen=True)
class NetworkArgs:
    """The VPC and the CIDRs allowed to reach SSH."""

    vpc_id: str
    ssh_allowed_cidrs: tuple[str, ...]
    tags: dict[str, str]


class Network(pulumi.ComponentResource):
    """A security group: SSH in from the allowed CIDRs only, anything out."""

    security_group_id: pulumi.Output[str]
    """The security group the machine runs in."""

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("devserver:aws:Network", name, None, opts)
        group = aws.ec2.SecurityGroup(
            f"{name}-ssh",
            vpc_id=args.vpc_id,
            description="Dev server: SSH from the allowed CIDRs only",
            tags={**args.tags, "Name": f"{name}-ssh"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        for cidr in args.ssh_allowed_cidrs:
            v6 = ipaddress.ip_network(cidr).version == 6
            aws.vpc.SecurityGroupIngressRule(
                _rule_name(name, cidr),
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=22,
                to_port=22,
                cidr_ipv4=None if v6 else cidr,
                cidr_ipv6=cidr if v6 else None,
                description="SSH (and VS Code Remote-SSH)",
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=group),
            )
        # Outbound is open: nix caches, GitHub and Secrets Manager are all on the internet.
        for family, cidr in (("ipv4", "0.0.0.0/0"), ("ipv6", "::/0")):
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-egress-{family}",
                security_group_id=group.id,
                ip_protocol="-1",
                cidr_ipv4=cidr if family == "ipv4" else None,
                cidr_ipv6=cidr if family == "ipv6" else None,
                description="All outbound traffic",
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=group),
            )
        self.security_group_id = group.id
        self.register_outputs({"security_group_id": self.security_group_id})
