# AMI lookups: the official NixOS image of a release, or the AMI a stack names.

from __future__ import annotations

import functools
from dataclasses import dataclass

import pulumi_aws as aws

from components.lookups.errors import AwsLookupError, needs

# Official NixOS images are published by this account (see nixos.org/download, "Amazon EC2").
NIXOS_AMI_OWNER = "427812963091"

# EC2 names arm64 what NixOS calls aarch64.
EC2_ARCHITECTURE = {"x86_64": "x86_64", "aarch64": "arm64"}


@dataclass(frozen=True)
class Image:
    """An AMI: its id, name and EC2 architecture."""

    id: str
    name: str
    architecture: str


class ImageLookups:
    """The AMIs a machine may boot."""

    @functools.cache  # noqa: B019
    @needs("ec2:DescribeImages", "the official NixOS AMI")
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
    @needs("ec2:DescribeImages", "the AMI devserver:amiId names")
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
