# Network rules: who may reach SSH (sshAllowedCidrs) and where the machine runs (VPC, subnet, zone).

from __future__ import annotations

import ipaddress
import re
from typing import Any

from components.settings.declaration import SERVER, Key
from components.settings.reader import Context, Reader

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Minimum prefix lengths of an SSH CIDR: a /8 is 16.7M IPv4 addresses, a /32 a whole ISP's IPv6.
MIN_PREFIX = {4: 8, 6: 32}


def vpc_id(r: Reader, ctx: Context) -> str | None:
    return r.text("vpcId", re.compile(r"vpc-[0-9a-f]+"), "a VPC id like vpc-0123abcd")


def subnet_id(r: Reader, ctx: Context) -> str | None:
    return r.text("subnetId", re.compile(r"subnet-[0-9a-f]+"), "a subnet id like subnet-0123abcd")


def availability_zone(r: Reader, ctx: Context) -> str | None:
    zone = r.text(
        "availabilityZone",
        re.compile(r"[a-z]{2}(-[a-z]+)+-\d[a-z]"),
        "an availability zone of the region, e.g. eu-west-1a",
    )
    if zone and not zone.startswith(ctx.region):
        r.fail(r.label("availabilityZone"), zone, f"an availability zone of {ctx.region}")
    return zone


def ssh_allowed_cidrs(r: Reader, ctx: Context) -> tuple[str, ...]:
    """The SSH CIDRs, normalised: one entry per network, none inside another, sorted."""
    label = r.label("sshAllowedCidrs")
    items = r.string_list("sshAllowedCidrs", '["203.0.113.7/32"]')
    if items is None:
        if r.source.get("sshAllowedCidrs") is None:
            r.errors.append(
                f"{label} is required: the CIDRs that may reach SSH (port 22), "
                'e.g. ["203.0.113.7/32"] for your own address'
            )
        return ()
    if not items:
        r.fail(label, items, "a non-empty list of CIDRs")
    networks: list[IPNetwork] = []
    for i, item in enumerate(items):
        network = _cidr(r, f"{label}[{i}]", item)
        if network is not None:
            networks.append(network)
    _refuse_the_whole_internet(r, label, networks)
    return _normalised(networks)


def _cidr(r: Reader, where: str, item: Any) -> IPNetwork | None:
    """One CIDR: valid, no host bits, and no wider than the family's minimum prefix."""
    try:
        network = ipaddress.ip_network(item, strict=True) if isinstance(item, str) else None
    except ValueError:
        network = None
    if network is None:
        r.fail(where, item, "a CIDR such as 203.0.113.7/32 or 2001:db8::/64 with no host bits set")
        return None
    if network.prefixlen == 0:
        r.fail(where, item, "narrower than the whole internet: SSH is never open to the world")
    elif network.prefixlen < MIN_PREFIX[network.version]:
        r.fail(
            where,
            item,
            f"an IPv{network.version} network of /{MIN_PREFIX[network.version]} or narrower "
            "(a wider range is most of the internet)",
        )
    return network


def _refuse_the_whole_internet(r: Reader, label: str, networks: list[IPNetwork]) -> None:
    """Two /1 halves (or any split) open SSH to the world as surely as one /0 does."""
    for whole in (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")):
        family = [n for n in networks if n.version == whole.version]
        if whole in family:
            continue  # already refused by name
        if whole in ipaddress.collapse_addresses(family):  # type: ignore[type-var]
            r.errors.append(
                f"{label} must not cover the whole internet, got {', '.join(map(str, family))}: "
                f"together they span all of IPv{whole.version} ({whole}); "
                "list only the networks you connect from"
            )


def _normalised(networks: list[IPNetwork]) -> tuple[str, ...]:
    """Each network once, dropping any inside another listed one: one ingress rule per name."""
    unique = sorted(set(networks), key=lambda n: (n.version, int(n.network_address), n.prefixlen))
    kept = [
        n
        for n in unique
        if not any(o != n and o.version == n.version and n.subnet_of(o) for o in unique)  # type: ignore[arg-type]
    ]
    return tuple(str(n) for n in kept)


# The keys this module's rules check, declared once (keys.py collects them; order = check order).
KEYS = (
    Key(
        "vpcId",
        "string",
        SERVER,
        vpc_id,
        "VPC to run in. Defaults to the region's default VPC.",
        default="",
        shown_default="the region's default VPC",
    ),
    Key(
        "subnetId",
        "string",
        SERVER,
        subnet_id,
        "Subnet to run in (it must give instances a public IP). Defaults to a subnet of the VPC "
        "in the first zone that offers the instance type.",
        default="",
        details="With `vpcId`, it must be in that VPC.",
    ),
    Key(
        "availabilityZone",
        "string",
        SERVER,
        availability_zone,
        "Zone for the machine and its home volume. Defaults to the zone of the server's existing "
        "home volume, else the first zone offering the type; a zone other than the volume's is "
        "refused.",
        default="",
        shown_default="the home volume's zone, else the first zone offering the type",
    ),
    Key(
        "sshAllowedCidrs",
        "array",
        SERVER,
        ssh_allowed_cidrs,
        "CIDRs allowed to reach SSH on port 22 (required). Each at least /8 (IPv4) or /32 "
        "(IPv6); together never all of IPv4 or IPv6. Duplicates are merged.",
        items="string",
        details="Two `/1` halves are refused like `0.0.0.0/0`. Networks inside another listed "
        "one are dropped, so each network is one rule.",
    ),
)
