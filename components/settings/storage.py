# Storage rules: the /home volume (adopted or protected) and the daily home snapshots.

from __future__ import annotations

import re

from components.settings.declaration import SERVER, STACK, Key
from components.settings.model import DEFAULT_SNAPSHOT_RETENTION_DAYS
from components.settings.reader import Context, Reader

VOLUME_RE = re.compile(r"vol-[0-9a-f]{8}(?:[0-9a-f]{9})?")


def home_volume_id(r: Reader, ctx: Context) -> str | None:
    return r.text("homeVolumeId", VOLUME_RE, "an EBS volume id like vol-0123456789abcdef0")


def home_volume_protect(r: Reader, ctx: Context) -> bool | None:
    return r.boolean("homeVolumeProtect", default=True)


def snapshots(r: Reader, ctx: Context) -> bool | None:
    return r.boolean("snapshots", default=True)


def snapshot_retention_days(r: Reader, ctx: Context) -> int | None:
    return r.integer("snapshotRetentionDays", 1, 365, DEFAULT_SNAPSHOT_RETENTION_DAYS)


# The keys this module's rules check, declared once (keys.py collects them; order = check order).
KEYS = (
    Key(
        "homeVolumeId",
        "string",
        SERVER,
        home_volume_id,
        "Adopt this existing encrypted EBS volume as /home (read, never modified or deleted by "
        "this stack). One server's only - never stack-wide for a fleet.",
        default="",
        details="Priced at its real size; with it, `homeVolumeGiB` must be unset or the volume's "
        "size. Refused when two fleet entries share it, or set stack-wide for a fleet.",
        unique=True,
    ),
    Key(
        "homeVolumeProtect",
        "boolean",
        SERVER,
        home_volume_protect,
        "Protect the home volume in Pulumi state, so `pulumi destroy` cannot delete it. It is "
        "retained in AWS either way.",
        default=True,
    ),
    Key(
        "snapshotRetentionDays",
        "integer",
        STACK,
        snapshot_retention_days,
        "How many daily home snapshots to keep.",
        default=DEFAULT_SNAPSHOT_RETENTION_DAYS,
        details="1 to 365.",
    ),
    Key(
        "snapshots",
        "boolean",
        STACK,
        snapshots,
        "Daily snapshots of every home volume with Data Lifecycle Manager.",
        default=True,
    ),
)
