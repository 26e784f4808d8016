"""Which NixOS image boots a new machine: the newest official AMI of the release, or a pinned id.

Only a new machine needs one. NixOS/amis deprecates each official image 90 days after its upload
and then deregisters it, and `get_ami` leaves deprecated images out; a release NixOS no longer
uploads for has none after that. A machine that exists keeps the AMI it was launched from
(`launched_image`), so an expired release never stops preview, up, stop or start of it.
"""

from __future__ import annotations

from components.lookups import AwsLookupError, AwsLookups, ExistingInstance, Image
from components.settings import DevServerSettings, SettingsError


def resolve_image(server: DevServerSettings, lookups: AwsLookups) -> Image:
    """The AMI for the server's architecture; a pinned `amiId` must be of that architecture."""
    spec, where = server.machine, server.config_prefix
    try:
        if server.image.ami_id is None:
            return lookups.nixos_image(spec.arch, server.image.nixos_release)
        image = lookups.image(server.image.ami_id)
    except AwsLookupError as err:
        if server.image.ami_id:
            raise SettingsError(f"{where}amiId: {err}") from err
        raise SettingsError(no_release_image(server, str(err))) from err
    if image.architecture != spec.ec2_architecture:
        raise SettingsError(
            f"{where}amiId must be an {spec.ec2_architecture} image for arch {spec.arch}, "
            f"got {image.id!r} ({image.architecture}, {image.name})"
        )
    return image


def no_release_image(server: DevServerSettings, why: str) -> str:
    """What to do when the release has no current official AMI for a new machine."""
    where, release = server.config_prefix, server.image.nixos_release
    return (
        f"{where}nixosRelease {release!r} has no current official NixOS AMI for "
        f"{server.machine.arch} in {server.region}, and a new machine needs one ({why}). NixOS "
        "deprecates each official image 90 days after its upload and then deletes it, so a "
        "release it no longer publishes has none: set "
        f"{where}nixosRelease to a release NixOS publishes (see nixos.org/download, Amazon EC2), "
        f"or {where}amiId to an image you own. A machine that exists keeps its own disk and "
        "never needs an AMI; only a first up, a raised rebuild or an arch switch does."
    )


def launched_image(server: DevServerSettings, machine: ExistingInstance) -> Image:
    """The image an existing machine was launched from: never looked up (it may be gone)."""
    return Image(id=machine.ami, name="", architecture=server.machine.ec2_architecture)


def installed_release(server: DevServerSettings, machine: ExistingInstance | None) -> str:
    """The NixOS release a machine was first installed from (its `system.stateVersion`).

    A new machine takes the configured release; an existing one keeps the release it carries in
    its tag, so raising `nixosRelease` never rewrites stateVersion under a running machine.
    A machine launched before the tag existed falls back to the configured release (what it was
    deployed with until now); the first update tags it.
    """
    if machine is None:
        return server.image.nixos_release
    return machine.tag(STATE_VERSION_TAG) or server.image.nixos_release


STATE_VERSION_TAG = "devserver:stateVersion"
