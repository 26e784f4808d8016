"""The persistent /home: an encrypted gp3 EBS volume that outlives every machine attached to it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

# Tag that marks home volumes: the snapshot policy and the policy pack select on it.
HOME_ROLE_TAG = ("devserver:role", "home")


def nvme_device_path(volume_id: str) -> str:
    """The stable name udev gives an EBS volume on Nitro instances (it is not /dev/xvdb there)."""
    return f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}"


@dataclass(frozen=True)
class HomeVolumeArgs:
    """Size, placement and ownership of the volume, or an existing volume to adopt."""

    availability_zone: str
    size_gib: int
    tags: dict[str, str]
    protect: bool = True
    existing_volume_id: str | None = None
    kms_key_id: str | None = None
    """Customer KMS key for a new volume (None = the account's EBS default key)."""


class HomeVolume(pulumi.ComponentResource):
    """The home volume. `pulumi destroy` leaves it in place: it is protected and retained."""

    volume_id: pulumi.Output[str]
    """The EBS volume id."""
    device_path: pulumi.Output[str]
    """Where the volume appears on the machine, by a name that survives reboots and type changes."""

    def __init__(
        self, name: str, args: HomeVolumeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("devserver:aws:HomeVolume", name, None, opts)
        volume: aws.ebs.Volume
        if args.existing_volume_id:
            # Adopted, not managed: the program reads it and never changes or deletes it.
            volume = aws.ebs.Volume.get(
                f"{name}-home", args.existing_volume_id, opts=pulumi.ResourceOptions(parent=self)
            )
        else:
            volume = aws.ebs.Volume(
                f"{name}-home",
                availability_zone=args.availability_zone,
                size=args.size_gib,
                type="gp3",
                encrypted=True,
                kms_key_id=args.kms_key_id,
                final_snapshot=True,
                tags={**args.tags, HOME_ROLE_TAG[0]: HOME_ROLE_TAG[1], "Name": f"{name}-home"},
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # protect: `pulumi destroy` stops here, so the next `pulumi up` re-attaches it.
                    protect=args.protect,
                    # retain: even an unprotected delete only forgets it; AWS keeps the data.
                    retain_on_delete=True,
                    # A volume's key cannot change (it would be a new, empty volume): a key set
                    # later applies to volumes created after it; this one keeps its key.
                    ignore_changes=["kmsKeyId"],
                ),
            )
        self.volume_id = volume.id
        self.device_path = volume.id.apply(nvme_device_path)
        self.register_outputs({"volume_id": self.volume_id, "device_path": self.device_path})
