"""Which NixOS image boots a new machine: the newest official AMI of the release, or a pinned id."""

from __future__ import annotations

from components.lookups import AwsLookupError, AwsLookups, Image
from components.settings import DevServerSettings, SettingsError


def resolve_image(server: DevServerSettings, lookups: AwsLookups) -> Image:
    """The AMI for the server's architecture; a pinned `amiId` must be of that architecture."""
    spec, where = server.machine, server.config_prefix
    try:
        if server.image.ami_id is None:
            return lookups.nixos_image(spec.arch, server.image.nixos_release)
        image = lookups.image(server.image.ami_id)
    except AwsLookupError as err:
        key = "amiId" if server.image.ami_id else "nixosRelease"
        raise SettingsError(f"{where}{key}: {err}") from err
    if image.architecture != spec.ec2_architecture:
        raise SettingsError(
            f"{where}amiId must be an {spec.ec2_architecture} image for arch {spec.arch}, "
            f"got {image.id!r} ({image.architecture}, {image.name})"
        )
    return image
