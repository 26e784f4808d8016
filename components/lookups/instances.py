# EC2 instance lookups: instance types, a server's existing machines, its launch key pair.

from __future__ import annotations

import functools
from dataclasses import dataclass

import pulumi_aws as aws

from components.lookups.errors import DENIED_RE, AwsLookupError, needs, no_results

# The state-reason code of a spot instance that an interruption stopped.
SPOT_INTERRUPTION_STOP = "Server.SpotInstanceShutdown"

# States of an instance that still exists (shutting-down and terminated ones are gone for good).
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")


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


class InstanceLookups:
    """What EC2 says about instance types and the machines a server already has."""

    @functools.cache  # noqa: B019 - one lookup object per program run; the cache dies with it
    @needs("ec2:DescribeInstanceTypes", "what an instance type runs")
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
    @needs("ec2:DescribeKeyPairs", "the deploy key pair the machine was launched with")
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

    @needs("ec2:DescribeInstances", "what the server's machine was launched with")
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

    @needs("ec2:DescribeInstances", "the server's machines by their tags")
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
            if no_results(err):
                return ()
            raise AwsLookupError(
                f"the instances tagged {dict(tags)} cannot be listed ({err})"
            ) from err
        return tuple(sorted(found.ids or []))
