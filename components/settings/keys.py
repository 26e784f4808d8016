# Every configuration key, declared once; Pulumi.yaml and docs/configuration.md come from here.
"""`Pulumi.yaml`'s `config:` block and the table in `docs/configuration.md` are generated from
`KEYS` (`.venv/bin/python -m components.settings.generate`); `load` runs each key's rule: the
per-server keys in this order for every server, the stack-wide keys once.
"""

from __future__ import annotations

from components.settings import (
    aws_access,
    cache,
    fleet,
    identity,
    lifecycle,
    machine,
    network,
    nix,
    secrets,
    storage,
)
from components.settings.declaration import ENTRY, SERVER, STACK, Key

# `load` runs the rules in this order: the stack-wide keys' once, the per-server keys' per server.
KEYS: tuple[Key, ...] = (
    *identity.KEYS,
    *nix.KEYS,
    *storage.KEYS,
    *lifecycle.KEYS,
    *network.KEYS,
    *machine.KEYS,
    *secrets.KEYS,
    *aws_access.KEYS,
    *cache.KEYS,
    *fleet.KEYS,
)

# Keys a `devserver:servers` entry may set; top-level values of the same keys are the defaults.
SERVER_KEYS = tuple(k.name for k in KEYS if k.scope in (ENTRY, SERVER))
# Keys that only make sense once per stack.
STACK_KEYS = tuple(k.name for k in KEYS if k.scope == STACK)
# Every top-level `devserver:` key; anything else in the namespace is refused as a typo.
KNOWN_KEYS = frozenset(k.name for k in KEYS if k.scope in (SERVER, STACK))
# Read as secrets; not declared in Pulumi.yaml (the CLI cannot take an optional secret: see there).
SECRET_KEYS = tuple(k.name for k in KEYS if k.secret)
MACHINE_KEYS = machine.MACHINE_KEYS
# Declared in Pulumi.yaml with default 0, meaning "the preset's size".
PRESET_SIZE_KEYS = tuple(k.name for k in KEYS if k.preset and k.type == "integer")
# What two servers of a fleet may never share; a shared homeVolumeId would mount one person's
# /home on another's machine.
UNIQUE_PER_SERVER = tuple(k.name for k in KEYS if k.unique)
