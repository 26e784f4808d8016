# EBS volume lookups: an adopted home volume, or a server's home volumes by their tags.

from __future__ import annotations

import functools
from dataclasses import dataclass

import pulumi_aws as aws

from components.lookups.errors import AwsLookupError, needs, no_results


@dataclass(frozen=True)
class ExistingVolume:
    """An EBS volume the stack adopts as /home instead of creating one."""

    id: str
    availability_zone: str
    encrypted: bool
    size_gib: int
    tags: tuple[tuple[str, str], ...] = ()


class VolumeLookups:
    """The EBS volumes a server may take as /home."""

    @functools.cache  # noqa: B019
    @needs("ec2:DescribeVolumes", "a home volume")
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
    @needs("ec2:DescribeVolumes", "the server's home volumes by their tags")
    def tagged_volumes(self, tags: tuple[tuple[str, str], ...]) -> tuple[ExistingVolume, ...]:
        """Every EBS volume carrying all these tags (none is not an error)."""
        try:
            ids = aws.ebs.get_ebs_volumes(tags=dict(tags)).ids or []
        except Exception as err:
            if no_results(err):
                return ()
            raise AwsLookupError(
                f"the EBS volumes tagged {dict(tags)} cannot be listed ({err})"
            ) from err
        return tuple(self.volume(i) for i in sorted(ids))
