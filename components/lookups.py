"""Read-only AWS lookups (Pulumi invokes) that settings and placement need before any resource.

Everything here is plain data, resolved synchronously at plan time, so a bad input is reported
before the first resource is registered. Results are cached: a fleet asks once per instance type.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import pulumi
import pulumi_aws as aws

# Official NixOS images are published by this account (see nixos.org/download, "Amazon EC2").
NIXOS_AMI_OWNER = "427812963091"

# The state-reason code of a spot instance that an interruption stopped.
SPOT_INTERRUPTION_STOP = "Server.SpotInstanceShutdown"

# States of an instance that still exists (shutting-down and terminated ones are gone for good).
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")

# EC2 names arm64 what NixOS calls aarch64.
EC2_ARCHITECTURE = {"x86_64": "x86_64", "aarch64": "arm64"}

# Service Quotas code of "EC2-VPC Elastic IPs" (per region; 5 unless raised).
ELASTIC_IP_QUOTA_CODE = "L-0263D0A3"
DEFAULT_ELASTIC_IP_QUOTA = 5


class AwsLookupError(Exception):
    """An AWS lookup found nothing; the message says what was asked."""


def lookup_failed(server: str, err: AwsLookupError) -> str:
    """A failed lookup of what AWS holds, as a problem: AWS's, not a configuration value's."""
    return f"server {server!r}: an AWS lookup failed (no configuration key is at fault): {err}"


# The least-privilege policy for the identity running Pulumi (docs/security.md).
OPERATOR_POLICY = Path(__file__).resolve().parent.parent / "docs" / "iam" / "operator-policy.json"
# How AWS says "not allowed": EC2 UnauthorizedOperation, other services AccessDenied(Exception).
DENIED_RE = re.compile(r"UnauthorizedOperation|AccessDenied|not authorized to perform")
# IAM names the action it refused: "... is not authorized to perform: ec2:DescribeInstances ...".
DENIED_ACTION_RE = re.compile(r"not authorized to perform: ([A-Za-z0-9-]+:[A-Za-z0-9*]+)")


class AwsPermissionError(pulumi.RunError):
    """AWS refused lookups to the identity running Pulumi: a permission problem, not a bad value."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(permission_report(list(problems)))
        self.problems: tuple[str, ...] = tuple(problems)
        """Each refusal on its own, so those of several servers can be reported together."""


def permission_report(problems: list[str]) -> str:
    """The message for one or more refused lookups: nothing was created."""
    return (
        "a permission problem, not a configuration problem (nothing was created):\n  - "
        + "\n  - ".join(dict.fromkeys(problems))
    )


def policy_statement(action: str) -> str:
    """Which statement of the operator policy grants the action, as words for a message."""
    try:
        statements = json.loads(OPERATOR_POLICY.read_text(encoding="utf-8"))["Statement"]
    except (OSError, ValueError, KeyError):
        return "(its statements)"
    for statement in statements:
        actions = statement.get("Action")
        if action in (actions if isinstance(actions, list) else [actions]):
            return f"(statement {statement.get('Sid', '?')})"
    return "(no statement has it yet: add it there too)"


def denied(err: BaseException, action: str, asked: str) -> AwsPermissionError | None:
    """The permission problem an invoke's error reports, or None when it is something else."""
    text = str(err)
    found = DENIED_RE.search(text)
    if found is None:
        return None
    code = "AccessDenied" if found.group(0) == "not authorized to perform" else found.group(0)
    named = DENIED_ACTION_RE.search(text)
    action = named.group(1) if named else action
    policy = OPERATOR_POLICY.relative_to(OPERATOR_POLICY.parents[2]).as_posix()
    return AwsPermissionError(
        [
            f"AWS denied {action} ({code}) to the identity running Pulumi, reading {asked}. "
            f"Allow {action} for that identity: {policy} {policy_statement(action)} lists every "
            "action this program needs; attach it, or update your copy of it"
        ]
    )


P = ParamSpec("P")
R = TypeVar("R")


def _needs(action: str, asked: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Reports a refusal of this lookup as a permission problem naming `action` (the IAM action
    the invoke calls), instead of as "not found" or a bad configuration value."""

    def wrap(lookup: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(lookup)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return lookup(*args, **kwargs)
            except AwsPermissionError:
                raise
            except Exception as err:
                problem = denied(err, action, asked)
                if problem is not None:
                    raise problem from err
                raise

        return checked

    return wrap


@dataclass(frozen=True)
class InstanceTypeInfo:
    """What EC2 says about an instance type."""

    name: str
    architectures: tuple[str, ...]
    hypervisor: str
    spot_supported: bool
    vcpus: int
    memory_mib: int


@dataclass(frozen=True)
class Image:
    """An AMI: its id, name and EC2 architecture."""

    id: str
    name: str
    architecture: str


@dataclass(frozen=True)
class Subnet:
    """A subnet and where it is."""

    id: str
    vpc_id: str
    availability_zone: str


@dataclass(frozen=True)
class ExistingVolume:
    """An EBS volume the stack adopts as /home instead of creating one."""

    id: str
    availability_zone: str
    encrypted: bool
    size_gib: int
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ExistingInstance:
    """A server's machine as EC2 holds it now: what it was launched with, and its tags."""

    id: str
    state: str
    spot: bool
    instance_type: str
    subnet_id: str
    availability_zone: str
    key_name: str
    tags: tuple[tuple[str, str], ...] = ()
    ami: str = ""
    """The AMI it was launched from (it may since have been deregistered)."""
    network_interface_id: str = ""
    """Its primary network interface (EC2 made it with the machine and deletes it with it)."""

    def tag(self, key: str) -> str | None:
        """The value of one tag, or None when the instance does not carry it."""
        return dict(self.tags).get(key)


@dataclass(frozen=True)
class ElasticIpQuota:
    """The region's "EC2-VPC Elastic IPs" quota."""

    value: int
    unread: str = ""
    """Why Service Quotas could not be read (then `value` is AWS's default); empty when read."""


def _no_results(err: Exception) -> bool:
    # Older AWS providers answer an empty match with this error instead of no ids.
    return "no results" in str(err).lower() or "no matching" in str(err).lower()


class AwsLookups:
    """The invokes the program makes, behind one small typed surface (and one cache)."""

    @functools.cache  # noqa: B019 - one lookup object per program run; the cache dies with it
    @_needs("ec2:DescribeInstanceTypes", "what an instance type runs")
    def instance_type(self, name: str) -> InstanceTypeInfo:
        try:
            info = aws.ec2.get_instance_type(instance_type=name)
        except Exception as err:
            raise AwsLookupError(f"EC2 does not know the instance type {name!r} ({err})") from err
        return InstanceTypeInfo(
            name=name,
            architectures=tuple(info.supported_architectures),
            hypervisor=info.hypervisor or "",
            spot_supported="spot" in (info.supported_usages_classes or []),
            vcpus=int(info.default_vcpus),
            memory_mib=int(info.memory_size),
        )

    @functools.cache  # noqa: B019
    @_needs("ec2:DescribeImages", "the official NixOS AMI")
    def nixos_image(self, arch: str, release: str) -> Image:
        try:
            ami = aws.ec2.get_ami(
                owners=[NIXOS_AMI_OWNER],
                most_recent=True,
                filters=[
                    aws.ec2.GetAmiFilterArgs(name="name", values=[f"nixos/{release}*"]),
                    aws.ec2.GetAmiFilterArgs(name="architecture", values=[EC2_ARCHITECTURE[arch]]),
                ],
            )
        except Exception as err:
            raise AwsLookupError(
                f"no official NixOS {release} AMI for {arch} in this region ({err})"
            ) from err
        return Image(id=ami.id, name=ami.name, architecture=ami.architecture)

    @functools.cache  # noqa: B019
    @_needs("ec2:DescribeImages", "the AMI devserver:amiId names")
    def image(self, ami_id: str) -> Image:
        try:
            ami = aws.ec2.get_ami(
                owners=["self", "amazon", "aws-marketplace", NIXOS_AMI_OWNER],
                most_recent=True,
                # A named image may be deprecated and still launches until it is deregistered.
                include_deprecated=True,
                filters=[aws.ec2.GetAmiFilterArgs(name="image-id", values=[ami_id])],
            )
        except Exception as err:
            raise AwsLookupError(f"the AMI {ami_id!r} cannot be found ({err})") from err
        return Image(id=ami.id, name=ami.name, architecture=ami.architecture)

    @functools.cache  # noqa: B019
    @_needs("ec2:DescribeVpcs", "the default VPC")
    def default_vpc_id(self) -> str:
        try:
            return aws.ec2.get_vpc(default=True).id
        except Exception as err:
            raise AwsLookupError(f"this region has no default VPC ({err})") from err

    @functools.cache  # noqa: B019
    @_needs("ec2:DescribeSubnets", "the subnets of the VPC")
    def subnets(self, vpc_id: str) -> tuple[Subnet, ...]:
        ids = aws.ec2.get_subnets(
            filters=[aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc_id])]
        ).ids
        return tuple(
            sorted((self.subnet(i) for i in ids), key=lambda s: (s.availability_zone, s.id))
        )

    @functools.cache  # noqa: B019
    @_needs("ec2:DescribeSubnets", "a subnet")
    def subnet(self, subnet_id: str) -> Subnet:
        try:
            s = aws.ec2.get_subnet(id=subnet_id)
        except Exception as err:
            raise AwsLookupError(f"the subnet {subnet_id!r} cannot be found ({err})") from err
        return Subnet(id=s.id, vpc_id=s.vpc_id, availability_zone=s.availability_zone)

    @functools.cache  # noqa: B019
    @_needs("ec2:DescribeInstanceTypeOfferings", "the zones offering the instance type")
    def zones_offering(self, instance_type: str) -> frozenset[str]:
        offerings = aws.ec2.get_instance_type_offerings(
            location_type="availability-zone",
            filters=[
                aws.ec2.GetInstanceTypeOfferingsFilterArgs(
                    name="instance-type", values=[instance_type]
                )
            ],
        )
        return frozenset(offerings.locations)

    @functools.cache  # noqa: B019
    @_needs("ec2:DescribeVolumes", "a home volume")
    def volume(self, volume_id: str) -> ExistingVolume:
        try:
            v = aws.ebs.get_volume(
                filters=[aws.ebs.GetVolumeFilterArgs(name="volume-id", values=[volume_id])]
            )
        except Exception as err:
            raise AwsLookupError(f"the EBS volume {volume_id!r} cannot be found ({err})") from err
        return ExistingVolume(
            id=v.volume_id,
            availability_zone=v.availability_zone,
            encrypted=bool(v.encrypted),
            size_gib=int(v.size),
            tags=tuple(sorted((v.tags or {}).items())),
        )

    @functools.cache  # noqa: B019
    @_needs("ec2:DescribeVolumes", "the server's home volumes by their tags")
    def tagged_volumes(self, tags: tuple[tuple[str, str], ...]) -> tuple[ExistingVolume, ...]:
        """Every EBS volume carrying all these tags (none is not an error)."""
        try:
            ids = aws.ebs.get_ebs_volumes(tags=dict(tags)).ids or []
        except Exception as err:
            if _no_results(err):
                return ()
            raise AwsLookupError(
                f"the EBS volumes tagged {dict(tags)} cannot be listed ({err})"
            ) from err
        return tuple(self.volume(i) for i in sorted(ids))

    @functools.cache  # noqa: B019
    @_needs("ec2:DescribeKeyPairs", "the deploy key pair the machine was launched with")
    def key_pair_public_key(self, key_name: str) -> str | None:
        """The OpenSSH public key of an EC2 key pair, or None when it is gone or unreadable."""
        try:
            found = aws.ec2.get_key_pair(key_name=key_name, include_public_key=True)
        except Exception as err:
            if DENIED_RE.search(str(err)):
                raise
            # A deleted key pair does not stop the plan: the check it feeds is skipped.
            return None
        return found.public_key or None

    @functools.cache  # noqa: B019
    def interrupted_spot_instances(self, tags: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
        """Spot instances with these tags that an interruption stopped (only EC2 may start them).

        EC2 marks them with the state-reason code Server.SpotInstanceShutdown (see the EC2 user
        guide, "Find interrupted Spot Instances"); a stop by the user or the machine differs.
        """
        return self._instance_ids(
            tags,
            ("stopping", "stopped"),
            (("instance-lifecycle", "spot"), ("state-reason-code", SPOT_INTERRUPTION_STOP)),
        )

    @functools.cache  # noqa: B019
    def live_instances(self, tags: tuple[tuple[str, str], ...]) -> tuple[ExistingInstance, ...]:
        """Every instance with these tags that still exists (running or stopped), as launched."""
        ids = self._instance_ids(tags, LIVE_INSTANCE_STATES, ())
        if not ids:
            return ()
        spot = set(
            self._instance_ids(tags, LIVE_INSTANCE_STATES, (("instance-lifecycle", "spot"),))
        )
        return tuple(self._instance(i, i in spot) for i in ids)

    @functools.cache  # noqa: B019
    @_needs("ec2:DescribeNetworkInterfaces", "the host key pinned on the machine")
    def network_interface_tags(self, eni_id: str) -> tuple[tuple[str, str], ...]:
        """The tags of a network interface (none when it is gone)."""
        try:
            found = aws.ec2.get_network_interface(id=eni_id)
        except Exception as err:
            if DENIED_RE.search(str(err)):
                raise
            return ()
        return tuple(sorted((found.tags or {}).items()))

    @functools.cache  # noqa: B019
    def elastic_ip_quota(self) -> ElasticIpQuota:
        """The region's Elastic IP quota, or AWS's default of 5 and why it was not read. The data
        source calls GetAWSDefaultServiceQuota, then GetServiceQuota, and fails if either is
        refused (terraform-provider-aws service_quota_data_source.go dataSourceServiceQuotaRead)."""
        try:
            found = aws.servicequotas.get_service_quota(
                service_code="ec2", quota_code=ELASTIC_IP_QUOTA_CODE
            )
        except Exception as err:
            named = DENIED_ACTION_RE.search(str(err))
            why = f"AWS denied {named.group(1)}" if named else str(err)
            return ElasticIpQuota(DEFAULT_ELASTIC_IP_QUOTA, unread=why)
        return ElasticIpQuota(int(found.value))

    @functools.cache  # noqa: B019
    @_needs("ec2:DescribeAddresses", "the region's Elastic IPs")
    def elastic_ips(self, tags: tuple[tuple[str, str], ...] = ()) -> tuple[str, ...]:
        """The allocation ids of the region's VPC Elastic IPs (with these tags, if any)."""
        try:
            found = aws.ec2.get_eips(tags=dict(tags) or None)
        except Exception as err:
            if _no_results(err):
                return ()
            raise AwsLookupError(f"the Elastic IPs cannot be listed ({err})") from err
        return tuple(sorted(found.allocation_ids or []))

    @_needs("ec2:DescribeInstances", "what the server's machine was launched with")
    def _instance(self, instance_id: str, spot: bool) -> ExistingInstance:
        try:
            i = aws.ec2.get_instance(instance_id=instance_id)
        except Exception as err:
            raise AwsLookupError(f"the instance {instance_id!r} cannot be read ({err})") from err
        return ExistingInstance(
            id=instance_id,
            state=i.instance_state or "",
            spot=spot,
            instance_type=i.instance_type or "",
            subnet_id=i.subnet_id or "",
            availability_zone=i.availability_zone or "",
            key_name=i.key_name or "",
            tags=tuple(sorted((i.tags or {}).items())),
            ami=i.ami or "",
            network_interface_id=i.network_interface_id or "",
        )

    @_needs("ec2:DescribeInstances", "the server's machines by their tags")
    def _instance_ids(
        self,
        tags: tuple[tuple[str, str], ...],
        states: tuple[str, ...],
        filters: tuple[tuple[str, str], ...],
    ) -> tuple[str, ...]:
        try:
            found = aws.ec2.get_instances(
                instance_tags=dict(tags),
                instance_state_names=list(states),
                filters=[aws.ec2.GetInstancesFilterArgs(name=n, values=[v]) for n, v in filters]
                or None,
            )
        except Exception as err:
            if _no_results(err):
                return ()
            raise AwsLookupError(
                f"the instances tagged {dict(tags)} cannot be listed ({err})"
            ) from err
        return tuple(sorted(found.ids or []))
