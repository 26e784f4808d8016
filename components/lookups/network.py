# VPC, subnet, zone and network-interface lookups: where a machine is placed.

from __future__ import annotations

import functools
from dataclasses import dataclass

import pulumi_aws as aws

from components.lookups.errors import DENIED_RE, AwsLookupError, needs


@dataclass(frozen=True)
class Subnet:
    """A subnet and where it is."""

    id: str
    vpc_id: str
    availability_zone: str


class NetworkLookups:
    """Where a machine can be placed, and what its network interface carries."""

    @functools.cache  # noqa: B019
    @needs("ec2:DescribeVpcs", "the default VPC")
    def default_vpc_id(self) -> str:
        try:
            return aws.ec2.get_vpc(default=True).id
        except Exception as err:
            raise AwsLookupError(f"this region has no default VPC ({err})") from err

    @functools.cache  # noqa: B019
    @needs("ec2:DescribeSubnets", "the subnets of the VPC")
    def subnets(self, vpc_id: str) -> tuple[Subnet, ...]:
        ids = aws.ec2.get_subnets(
            filters=[aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc_id])]
        ).ids
        return tuple(
            sorted((self.subnet(i) for i in ids), key=lambda s: (s.availability_zone, s.id))
        )

    @functools.cache  # noqa: B019
    @needs("ec2:DescribeSubnets", "a subnet")
    def subnet(self, subnet_id: str) -> Subnet:
        try:
            s = aws.ec2.get_subnet(id=subnet_id)
        except Exception as err:
            raise AwsLookupError(f"the subnet {subnet_id!r} cannot be found ({err})") from err
        return Subnet(id=s.id, vpc_id=s.vpc_id, availability_zone=s.availability_zone)

    @functools.cache  # noqa: B019
    @needs("ec2:DescribeInstanceTypeOfferings", "the zones offering the instance type")
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
    @needs("ec2:DescribeNetworkInterfaces", "the host key pinned on the machine")
    def network_interface_tags(self, eni_id: str) -> tuple[tuple[str, str], ...]:
        """The tags of a network interface (none when it is gone)."""
        try:
            found = aws.ec2.get_network_interface(id=eni_id)
        except Exception as err:
            if DENIED_RE.search(str(err)):
                raise
            return ()
        return tuple(sorted((found.tags or {}).items()))
