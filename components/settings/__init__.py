# Stack configuration, read once and validated, as typed settings: the package's public names.
"""Every problem is collected and reported together, each line naming the key, the bad value and
what is allowed, before a single resource is registered. Nothing else in the program reads
`pulumi.Config`: `load` (load.py) does, and hands raw values to the rules.

Layout: keys.py declares every key once (type, default, description, scope, rule); the rules live
by concern in identity.py, nix.py, machine.py, network.py, storage.py, lifecycle.py, secrets.py
and aws_access.py; reader.py reads raw values, fleet.py merges `devserver:servers` entries,
server.py assembles one server, model.py holds the typed settings, and generate.py writes
Pulumi.yaml's `config:` block and docs/configuration.md from the declarations.
"""

from components.settings.aws_access import KMS_KEY_ARN_RE, PARTITIONS
from components.settings.declaration import Key
from components.settings.identity import (
    CONTROL_CHARS,
    EMAIL_RE,
    FULL_NAME_RE,
    GITHUB_USER_RE,
    HOST_RE,
    MAX_EMAIL_LENGTH,
    RESERVED_USER_PREFIXES,
    RESERVED_USERS,
    USER_RE,
)
from components.settings.keys import (
    KEYS,
    KNOWN_KEYS,
    MACHINE_KEYS,
    PRESET_SIZE_KEYS,
    SECRET_KEYS,
    SERVER_KEYS,
    STACK_KEYS,
    UNIQUE_PER_SERVER,
)
from components.settings.lifecycle import MAX_REBUILD
from components.settings.load import load
from components.settings.machine import (
    DEFAULT_PRESET,
    INSTANCE_TYPE_RE,
    MAX_VOLUME_GIB,
    MIN_HOME_VOLUME_GIB,
    MIN_ROOT_VOLUME_GIB,
    PRESETS_DIR,
    PRICE_RE,
    available_presets,
    load_preset,
)
from components.settings.model import (
    ARCHES,
    DEFAULT_SNAPSHOT_RETENTION_DAYS,
    NAMESPACE,
    PURPOSE_TAG,
    Arch,
    AssumeRole,
    AwsAccess,
    BinaryCacheSettings,
    DevServerSettings,
    HomeSettings,
    ImageSettings,
    InstanceTypes,
    MachineSpec,
    NetworkSettings,
    SettingsError,
    StackSettings,
    stack_tags,
)
from components.settings.network import MIN_PREFIX, IPNetwork
from components.settings.nix import (
    AMI_RE,
    DEFAULT_NIXOS_RELEASE,
    FLAKE_RE,
    INDIRECT_FLAKE_RE,
    LOCAL_FLAKE_RE,
    RELEASE_RE,
)
from components.settings.reader import report
from components.settings.secrets import (
    OPENSSH_KEY_BEGIN,
    OPENSSH_KEY_END,
    OPENSSH_KEY_MAGIC,
    TOKEN_RE,
    openssh_public_blob,
)
from components.settings.storage import VOLUME_RE

__all__ = [
    "AMI_RE",
    "ARCHES",
    "CONTROL_CHARS",
    "DEFAULT_NIXOS_RELEASE",
    "DEFAULT_PRESET",
    "DEFAULT_SNAPSHOT_RETENTION_DAYS",
    "EMAIL_RE",
    "FLAKE_RE",
    "FULL_NAME_RE",
    "GITHUB_USER_RE",
    "HOST_RE",
    "INDIRECT_FLAKE_RE",
    "INSTANCE_TYPE_RE",
    "KEYS",
    "KMS_KEY_ARN_RE",
    "KNOWN_KEYS",
    "LOCAL_FLAKE_RE",
    "MACHINE_KEYS",
    "MAX_EMAIL_LENGTH",
    "MAX_REBUILD",
    "MAX_VOLUME_GIB",
    "MIN_HOME_VOLUME_GIB",
    "MIN_PREFIX",
    "MIN_ROOT_VOLUME_GIB",
    "NAMESPACE",
    "OPENSSH_KEY_BEGIN",
    "OPENSSH_KEY_END",
    "OPENSSH_KEY_MAGIC",
    "PARTITIONS",
    "PRESETS_DIR",
    "PRESET_SIZE_KEYS",
    "PRICE_RE",
    "PURPOSE_TAG",
    "RELEASE_RE",
    "RESERVED_USERS",
    "RESERVED_USER_PREFIXES",
    "SECRET_KEYS",
    "SERVER_KEYS",
    "STACK_KEYS",
    "TOKEN_RE",
    "UNIQUE_PER_SERVER",
    "USER_RE",
    "VOLUME_RE",
    "Arch",
    "AssumeRole",
    "AwsAccess",
    "BinaryCacheSettings",
    "DevServerSettings",
    "HomeSettings",
    "IPNetwork",
    "ImageSettings",
    "InstanceTypes",
    "Key",
    "MachineSpec",
    "NetworkSettings",
    "SettingsError",
    "StackSettings",
    "available_presets",
    "load",
    "load_preset",
    "openssh_public_blob",
    "report",
    "stack_tags",
]
