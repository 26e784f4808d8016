"""Stack configuration, read once and validated, as typed settings for the components.

Every problem is collected and reported together, each line naming the key, the bad value and
what is allowed, before a single resource is registered. Nothing else in the program reads
`pulumi.Config`.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import pulumi
import yaml

from components.lookups import EC2_ARCHITECTURE, AwsLookupError, InstanceTypeInfo

NAMESPACE = "devserver"
PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"

Arch = Literal["x86_64", "aarch64"]
ARCHES: tuple[Arch, ...] = ("x86_64", "aarch64")

# The NixOS release whose official AMI boots a new machine; the flake in nix/ pins the same one.
DEFAULT_NIXOS_RELEASE = "26.05"
DEFAULT_PRESET = "x86"
DEFAULT_SNAPSHOT_RETENTION_DAYS = 7
MIN_HOME_VOLUME_GIB = 10
MIN_ROOT_VOLUME_GIB = 20
# EBS gp3 volumes go up to 16 TiB.
MAX_VOLUME_GIB = 16384

# Accounts that exist on the machine: NixOS's own (users-groups.nix, ids.nix), the services this
# image runs (sshd, docker, nscd, dhcpcd, the SSM agent's ssm-user), and every account nix/ creates.
RESERVED_USERS = frozenset(
    (
        "root bin daemon adm lp sync shutdown halt mail news uucp operator games ftp nobody"
        " nogroup sshd messagebus polkituser systemd-journal systemd-network systemd-resolve"
        " systemd-timesync systemd-coredump systemd-oom nscd docker wheel users admin ec2-user"
        " nixbld dhcpcd avahi rtkit geoclue ssm-user keys kvm render input audio video tty utmp"
        " uuidd tss disk dialout cdrom floppy tape kmem systemd-journal-gateway"
        " devserver-keys"
    ).split()
)
# Prefixes of whole families of system accounts: nixbld1..N, systemd-*, and nix/'s own devserver-*.
RESERVED_USER_PREFIXES = ("nixbld", "systemd-", "devserver-")
# NixOS aborts evaluation on a user name of 32 characters or more (users-groups.nix).
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,30}")
GITHUB_USER_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
HOST_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
INSTANCE_TYPE_RE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
AMI_RE = re.compile(r"ami-[0-9a-f]{8}(?:[0-9a-f]{9})?")
VOLUME_RE = re.compile(r"vol-[0-9a-f]{8}(?:[0-9a-f]{9})?")
RELEASE_RE = re.compile(r"\d{2}\.\d{2}")
PRICE_RE = re.compile(r"\d+(?:\.\d+)?")
# A flake reference is pasted into a Nix string and a shell command: allow URL characters only,
# and a remote scheme Nix knows, so no quote, `$`, backtick, backslash, space or `;` can break out.
FLAKE_RE = re.compile(
    r"(?:github|gitlab|sourcehut|git\+https|git\+ssh|https|tarball\+https|file\+https|hg\+https):"
    r"[A-Za-z0-9._~/:?=&+%@,-]+"
)
# Local flake references (nix3-flake "Types"): Nix copies the tree into the world-readable store.
LOCAL_FLAKE_RE = re.compile(
    r"(?:path|git\+file|file|file\+file|tarball\+file|hg\+file):|git:(?!//)|[/.~]"
)
# `flake:<id>` and bare ids are looked up in the machine's registry, which may map them to a path.
INDIRECT_FLAKE_RE = re.compile(r"flake:.*|[A-Za-z][A-Za-z0-9_-]*(?:/[^:]*)?")
KMS_KEY_ARN_RE = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z0-9-]+):\d{12}:"
    r"key/(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
)
# C0 controls, DEL and C1 controls: invisible in logs and refused by git config and /etc/passwd.
CONTROL_CHARS = r"\x00-\x1f\x7f-\x9f"
EMAIL_RE = re.compile(
    rf"[^@\s\"'`$\\{CONTROL_CHARS}]+@[^@\s\"'`$\\{CONTROL_CHARS}]+\.[^@\s\"'`$\\{CONTROL_CHARS}]+"
)
# RFC 5321's 256-octet path limit minus the angle brackets.
MAX_EMAIL_LENGTH = 254
# The full name is the account's GECOS field (NixOS passwdEntry: no ':' or newline) and a Nix
# string (nix_string escapes it; an apostrophe is plain text there).
FULL_NAME_RE = re.compile(rf"[^\"`$\\:{CONTROL_CHARS}]{{1,100}}")
# Minimum prefix lengths of an SSH CIDR: a /8 is 16.7M IPv4 addresses, a /32 a whole ISP's IPv6.
MIN_PREFIX = {4: 8, 6: 32}
# A GitHub token is printable ASCII without spaces (ghp_…, github_pat_…).
TOKEN_RE = re.compile(r"[\x21-\x7e]+")
# The armour around an OpenSSH private key (written in two parts so secret scanners that grep
# for it do not flag this constant).
OPENSSH_KEY_BEGIN = "-----BEGIN OPENSSH " + "PRIVATE KEY-----"
OPENSSH_KEY_END = "-----END OPENSSH " + "PRIVATE KEY-----"
# openssh-portable PROTOCOL.key: the decoded body starts with this magic, then the cipher name.
OPENSSH_KEY_MAGIC = b"openssh-key-v1\x00"
# AWS partitions by region prefix; every other region is in `aws`.
PARTITIONS = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-iso-", "aws-iso"),
)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Highest `devserver:rebuild` generation; any whole number works, this only keeps names short.
MAX_REBUILD = 999999


class SettingsError(pulumi.RunError):
    """Invalid stack configuration; raised before any resource is registered."""

    def __init__(self, message: str, problems: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems) if problems is not None else (message,)
        """Each problem on its own, so problems of several servers can be reported together."""


class InstanceTypes(Protocol):
    """What settings need to know about instance types (AWS in production, a table in tests)."""

    def instance_type(self, name: str) -> InstanceTypeInfo: ...


@dataclass(frozen=True)
class MachineSpec:
    """The EC2 machine: architecture, pricing model, size and disks."""

    arch: Arch
    spot: bool
    instance_type: str
    root_volume_gib: int
    home_volume_gib: int
    spot_max_price: str | None = None

    @property
    def ec2_architecture(self) -> str:
        """`x86_64` or `arm64`, as EC2 names it."""
        return EC2_ARCHITECTURE[self.arch]

    @property
    def nix_system(self) -> str:
        """`x86_64-linux` or `aarch64-linux`, as Nix names it."""
        return f"{self.arch}-linux"


@dataclass(frozen=True)
class NetworkSettings:
    """Where the machine lives and who may reach its SSH port."""

    ssh_allowed_cidrs: tuple[str, ...]
    vpc_id: str | None = None
    subnet_id: str | None = None
    availability_zone: str | None = None


@dataclass(frozen=True)
class ImageSettings:
    """Which NixOS image boots a new machine."""

    nixos_release: str
    ami_id: str | None = None


@dataclass(frozen=True)
class HomeSettings:
    """The persistent /home volume."""

    protect: bool = True
    existing_volume_id: str | None = None
    size_key: str | None = None
    """The key that set the size in the stack config (None: the preset's size)."""


@dataclass(frozen=True)
class AssumeRole:
    """One `aws:assumeRoles` entry, as the AWS provider reads it."""

    role_arn: str
    session_name: str | None = None
    external_id: str | None = None
    duration_seconds: int | None = None
    policy: str | None = None
    policy_arns: tuple[str, ...] = ()
    source_identity: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    transitive_tag_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class AwsAccess:
    """The `aws:` credential settings the stack's AWS provider uses, for code that calls AWS itself.

    Environment variables (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...) reach every process Pulumi starts;
    these stack config keys reach only the AWS provider unless they are passed on.
    """

    profile: str | None = None
    assume_roles: tuple[AssumeRole, ...] = ()
    shared_config_file: str | None = None
    shared_credentials_file: str | None = None
    ec2_endpoint: str | None = None
    sts_endpoint: str | None = None
    access_key: pulumi.Output[str] | None = None
    secret_key: pulumi.Output[str] | None = None
    token: pulumi.Output[str] | None = None


# Every resource of this program carries it; the operator IAM policy scopes changes to it.
PURPOSE_TAG = ("devserver:purpose", "devserver")


def stack_tags(stack: str) -> dict[str, str]:
    """The tags every resource of the stack carries."""
    return {"devserver:stack": stack, PURPOSE_TAG[0]: PURPOSE_TAG[1]}


@dataclass(frozen=True)
class DevServerSettings:
    """Everything one dev server needs, already validated."""

    name: str
    host_name: str
    user: str
    full_name: str
    email: str
    github_user: str
    flake: str
    region: str
    stack: str
    machine: MachineSpec
    network: NetworkSettings
    image: ImageSettings
    home: HomeSettings = field(default_factory=HomeSettings)
    deploy: bool = True
    """Apply the NixOS flake over SSH on `pulumi up`."""
    github_token: pulumi.Output[str] | None = None
    token_kms_key_arn: str | None = None
    idle_stop_minutes: int = 0
    running: bool = True
    rebuild: int = 0
    """Rebuild generation: raising it replaces the machine from the current AMI, keeping /home."""
    ssm_session_manager: bool = True
    """Let the role register with SSM Session Manager: the break-glass shell when SSH fails."""
    ebs_kms_key_arn: str | None = None
    """Customer KMS key for new root and home volumes (None = the account's EBS default key)."""
    aws_access: AwsAccess = field(default_factory=lambda: AwsAccess())
    """How the stack's AWS provider authenticates (the spot-request canceller does the same)."""
    deploy_public_key: str | None = None
    """The base64 public key blob of `devserver:deployPrivateKey` (None: a generated key)."""
    config_prefix: str = f"{NAMESPACE}:"
    """How error messages name this server's keys: `devserver:` or `devserver:servers[2].`."""

    @property
    def tags(self) -> dict[str, str]:
        """Tags every AWS resource of this server carries (cost reports, DLM, policy)."""
        return {
            "devserver:owner": self.user,
            "devserver:server": self.name,
            **stack_tags(self.stack),
        }

    @property
    def lookup_tags(self) -> tuple[tuple[str, str], ...]:
        """The tags that find this server's own machines and volumes in AWS, whatever state says
        (all of `tags` but the owner: a renamed user keeps them)."""
        return tuple(sorted((k, v) for k, v in self.tags.items() if k != "devserver:owner"))


@dataclass(frozen=True)
class StackSettings:
    """The whole stack: one server, or a fleet when `devserver:servers` is set."""

    servers: tuple[DevServerSettings, ...]
    fleet: bool
    region: str
    stack: str
    deploy_private_key: pulumi.Output[str] | None = None
    """The OpenSSH key every server of the stack is deployed with; None = generate one."""
    snapshot_retention_days: int = DEFAULT_SNAPSHOT_RETENTION_DAYS
    snapshots: bool = True

    @property
    def tags(self) -> dict[str, str]:
        """Tags of what the whole stack shares (deploy key, fleet security groups, snapshots)."""
        return stack_tags(self.stack)


# ---------------------------------------------------------------------------------------------
# Reading values: a source gives raw values (strings from `pulumi config`, native values from a
# structured `servers` entry) and a label for error messages.


class _Source(Protocol):
    def get(self, key: str) -> tuple[Any, str] | None: ...


class _ConfigSource:
    """Top-level stack config (`devserver:<key>`).

    The CLI requires every key Pulumi.yaml declares without a default, so optional keys are
    declared with an "unset" default: "" (or [] for lists, 0 for preset sizes) reads as unset.
    """

    def __init__(self, config: pulumi.Config) -> None:
        self._config = config

    def get(self, key: str) -> tuple[Any, str] | None:
        value = self._config.get(key)
        if value is None or value in ("", "[]") or (key in PRESET_SIZE_KEYS and value == "0"):
            return None
        return value, f"{NAMESPACE}:{key}"


class _DictSource:
    """A mapping of keys to native values: a `devserver:servers` entry or a preset file."""

    def __init__(self, values: Mapping[str, Any], label: str) -> None:
        self._values, self._label = values, label

    def get(self, key: str) -> tuple[Any, str] | None:
        value = self._values.get(key)
        return None if value is None else (value, self._label.format(key=key))


class _Chain:
    """The first source that sets a key wins: entry, then stack defaults, then the preset."""

    def __init__(self, *sources: _Source) -> None:
        self._sources = sources

    def get(self, key: str) -> tuple[Any, str] | None:
        for source in self._sources:
            found = source.get(key)
            if found is not None:
                return found
        return None


T = TypeVar("T")


class _Reader:
    """Typed reads that record a problem instead of raising, so all problems show at once."""

    def __init__(self, source: _Source, errors: list[str]) -> None:
        self.source, self.errors = source, errors

    def label(self, key: str) -> str:
        found = self.source.get(key)
        return found[1] if found else f"{NAMESPACE}:{key}"

    def fail(self, label: str, value: Any, allowed: str) -> None:
        self.errors.append(f"{label} must be {allowed}, got {value!r}")

    def _read(
        self, key: str, parse: Callable[[Any], T], allowed: str, default: T | None
    ) -> T | None:
        found = self.source.get(key)
        if found is None:
            return default
        value, label = found
        try:
            return parse(value)
        except (ValueError, TypeError):
            self.fail(label, value, allowed)
            return default

    def text(
        self,
        key: str,
        pattern: re.Pattern[str] | None = None,
        allowed: str = "text",
        default: str | None = None,
    ) -> str | None:
        found = self.source.get(key)
        if found is not None and _is_number(found[0]):
            return self._number_as_text(key, found, pattern, allowed, default)

        def parse(value: Any) -> str:
            if not isinstance(value, str) or (pattern and not pattern.fullmatch(value)):
                raise ValueError
            return value

        return self._read(key, parse, allowed, default)

    def _number_as_text(
        self,
        key: str,
        found: tuple[Any, str],
        pattern: re.Pattern[str] | None,
        allowed: str,
        default: str | None,
    ) -> str | None:
        """A YAML number where text is expected (a `servers` entry keeps YAML's types): accepted
        for the keys whose text is a number, when its digits fit; otherwise the user quotes it."""
        value, label = found
        text = _number_text(value)
        if key in NUMERIC_TEXT_KEYS and (pattern is None or pattern.fullmatch(text)):
            return text
        self.errors.append(
            f"{label} must be {allowed}, got the YAML number {text}: "
            "write the value in quotes, exactly as you mean it (YAML reads 26.10 as 26.1)"
        )
        return default

    def required(self, key: str, pattern: re.Pattern[str], allowed: str, hint: str) -> str:
        value = self.text(key, pattern, allowed)
        if value is None and self.source.get(key) is None:
            self.errors.append(f"{self.label(key)} is required: {hint}")
        return value or ""

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        def parse(value: Any) -> bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ValueError

        return self._read(key, parse, "true or false", default)

    def integer(self, key: str, low: int, high: int, default: int | None = None) -> int | None:
        def parse(value: Any) -> int:
            if isinstance(value, bool):
                raise ValueError
            number = value if isinstance(value, int) else int(str(value).strip(), 10)
            if not low <= number <= high:
                raise ValueError
            return number

        return self._read(key, parse, f"a whole number from {low} to {high}", default)

    def string_list(self, key: str, example: str) -> list[Any] | None:
        def parse(value: Any) -> list[Any]:
            items = json.loads(value) if isinstance(value, str) else value
            if not isinstance(items, list):
                raise ValueError
            return items

        return self._read(key, parse, f"a list, e.g. {example}", None)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_text(value: int | float) -> str:
    """A number as YAML/JSON would print it (26.05, 0.08, 100), never Python's exponent form."""
    return str(value) if isinstance(value, int) else json.dumps(value)


# ---------------------------------------------------------------------------------------------
# Keys. Each is declared, with its type, description and default, in Pulumi.yaml's config block.

# Keys a `devserver:servers` entry may set; top-level values of the same keys are the defaults.
SERVER_KEYS = (
    "name",
    "user",
    "githubUser",
    "fullName",
    "email",
    "hostName",
    "flake",
    "preset",
    "arch",
    "spot",
    "instanceType",
    "homeVolumeGiB",
    "rootVolumeGiB",
    "spotMaxPrice",
    "nixosRelease",
    "amiId",
    "sshAllowedCidrs",
    "vpcId",
    "subnetId",
    "availabilityZone",
    "homeVolumeProtect",
    "homeVolumeId",
    "idleStopMinutes",
    "state",
    "deploy",
    "rebuild",
    "ssmSessionManager",
)
# Keys that only make sense once per stack.
STACK_KEYS = (
    "servers",
    "githubToken",
    "githubTokenKmsKeyArn",
    "deployPrivateKey",
    "snapshots",
    "snapshotRetentionDays",
    "ebsKmsKeyArn",
)
# Secret keys are not declared in Pulumi.yaml: the CLI makes a declared key without a default
# required, and merges a declared default in plaintext before checking `secret: true` keys are
# encrypted (pulumi/pulumi pkg/workspace/config.go mergeConfig), so neither can be optional there.
SECRET_KEYS = ("githubToken", "deployPrivateKey")
KNOWN_KEYS = frozenset(SERVER_KEYS) - {"name"} | frozenset(STACK_KEYS)
MACHINE_KEYS = ("arch", "spot", "instanceType", "rootVolumeGiB", "homeVolumeGiB")
# Declared in Pulumi.yaml with default 0, meaning "the preset's size".
PRESET_SIZE_KEYS = ("rootVolumeGiB", "homeVolumeGiB")
# Text keys whose value is a number: a YAML number (spotMaxPrice: 0.08) means the same thing.
NUMERIC_TEXT_KEYS = ("spotMaxPrice", "nixosRelease")


def available_presets() -> list[str]:
    """The preset names: one YAML file each in presets/."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """A preset's values, keyed like the stack config keys they stand in for."""
    values = yaml.safe_load((PRESETS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    if not isinstance(values, dict) or set(values) != set(MACHINE_KEYS):
        raise SettingsError(f"presets/{name}.yaml must set exactly {', '.join(MACHINE_KEYS)}")
    return values


def _machine(r: _Reader, types: InstanceTypes, prefix: str = f"{NAMESPACE}:") -> MachineSpec | None:
    presets = available_presets()
    preset = r.text("preset", default=DEFAULT_PRESET)
    sources: list[_Source] = [r.source]
    if preset in presets:
        sources.append(_DictSource(load_preset(preset), f"{{key}} of presets/{preset}.yaml"))
    else:
        r.fail(r.label("preset"), preset, f"one of {', '.join(presets)} (the files in presets/)")
    m = _Reader(_Chain(*sources), r.errors)
    arch = m.text("arch", allowed="x86_64 or aarch64")
    if arch is not None and arch not in ARCHES:
        m.fail(m.label("arch"), arch, "x86_64 or aarch64")
    spot = m.boolean("spot")
    arch_default = _arch_default_type(r.source, sources[1:], arch, spot)
    if arch_default is not None:
        m = _Reader(_Chain(r.source, arch_default, *sources[1:]), r.errors)
    instance_type = m.text("instanceType", INSTANCE_TYPE_RE, "an EC2 instance type like m7i.xlarge")
    root = m.integer("rootVolumeGiB", MIN_ROOT_VOLUME_GIB, MAX_VOLUME_GIB)
    home = m.integer("homeVolumeGiB", MIN_HOME_VOLUME_GIB, MAX_VOLUME_GIB)
    max_price = _spot_max_price(m, spot, prefix)
    if arch not in ARCHES or None in (spot, instance_type, root, home):
        return None
    spec = MachineSpec(
        arch, bool(spot), str(instance_type), int(root or 0), int(home or 0), max_price
    )
    _check_instance_type(m, spec, types)
    return spec


def _spot_max_price(m: _Reader, spot: bool | None, prefix: str) -> str | None:
    """The spot price cap; on an on-demand machine it is a mistake, fixed in the stack config."""
    allowed = "a positive price in USD per hour, e.g. 0.08"
    max_price = m.text("spotMaxPrice", PRICE_RE, allowed)
    if max_price is not None and float(max_price) <= 0:
        m.fail(m.label("spotMaxPrice"), max_price, allowed)
    if max_price is not None and spot is False:
        # The fix is in the stack config (never in a preset file), whichever source set spot.
        m.errors.append(
            f"{m.label('spotMaxPrice')} is set to {max_price!r} but the machine is on-demand "
            f"({m.label('spot')} is false): remove {m.label('spotMaxPrice')}, or set "
            f"{prefix}spot to true (or {prefix}preset to a -spot preset)"
        )
    return max_price


def _arch_default_type(
    own: _Source, preset: list[_Source], arch: str | None, spot: bool | None
) -> _Source | None:
    """An arch set without an instance type gets that arch's default type: the instance type of
    the preset with the same arch and pricing (so `arch: aarch64` alone means m7g, not m7i)."""
    if own.get("arch") is None or own.get("instanceType") is not None or not preset:
        return None
    found = preset[0].get("arch")
    if arch not in ARCHES or (found is not None and found[0] == arch):
        return None
    matching = [
        (name, values)
        for name in available_presets()
        if (values := load_preset(name))["arch"] == arch
    ]
    matching.sort(key=lambda item: item[1]["spot"] != spot)
    if not matching:
        return None
    name, values = matching[0]
    return _DictSource(
        {"instanceType": values["instanceType"]},
        f"{{key}} of presets/{name}.yaml (the {arch} default)",
    )


def _check_instance_type(r: _Reader, spec: MachineSpec, types: InstanceTypes) -> None:
    """Ask EC2, not a hand-written family list, whether the type fits the machine."""
    label = r.label("instanceType")
    try:
        info = types.instance_type(spec.instance_type)
    except AwsLookupError as err:
        r.errors.append(
            f"{label} must be an instance type EC2 offers, got {spec.instance_type!r}: {err}"
        )
        return
    if spec.ec2_architecture not in info.architectures:
        r.errors.append(
            f"{label} {spec.instance_type!r} runs {'/'.join(info.architectures)}, but "
            f"{r.label('arch')} is {spec.arch!r}: choose a {spec.arch} instance type "
            f"(e.g. {'m7g.xlarge' if spec.arch == 'aarch64' else 'm7i.xlarge'}) or change the arch"
        )
    if info.hypervisor != "nitro":
        r.errors.append(
            f"{label} must be a Nitro instance type (EBS appears as NVMe and /home is mounted by "
            f"its NVMe id), got {spec.instance_type!r} ({info.hypervisor or 'unknown'} hypervisor)"
        )
    if spec.spot and not info.spot_supported:
        r.errors.append(
            f"{label} {spec.instance_type!r} is not offered as spot; "
            f"set {r.label('spot')} to false or pick another type"
        )


def _cidrs(r: _Reader) -> tuple[str, ...]:
    """The SSH CIDRs, normalised: one entry per network, none inside another, sorted."""
    label = r.label("sshAllowedCidrs")
    items = r.string_list("sshAllowedCidrs", '["203.0.113.7/32"]')
    if items is None:
        if r.source.get("sshAllowedCidrs") is None:
            r.errors.append(
                f"{label} is required: the CIDRs that may reach SSH (port 22), "
                'e.g. ["203.0.113.7/32"] for your own address'
            )
        return ()
    if not items:
        r.fail(label, items, "a non-empty list of CIDRs")
    networks: list[IPNetwork] = []
    for i, item in enumerate(items):
        network = _cidr(r, f"{label}[{i}]", item)
        if network is not None:
            networks.append(network)
    _refuse_the_whole_internet(r, label, networks)
    return _normalised(networks)


def _cidr(r: _Reader, where: str, item: Any) -> IPNetwork | None:
    """One CIDR: valid, no host bits, and no wider than the family's minimum prefix."""
    try:
        network = ipaddress.ip_network(item, strict=True) if isinstance(item, str) else None
    except ValueError:
        network = None
    if network is None:
        r.fail(where, item, "a CIDR such as 203.0.113.7/32 or 2001:db8::/64 with no host bits set")
        return None
    if network.prefixlen == 0:
        r.fail(where, item, "narrower than the whole internet: SSH is never open to the world")
    elif network.prefixlen < MIN_PREFIX[network.version]:
        r.fail(
            where,
            item,
            f"an IPv{network.version} network of /{MIN_PREFIX[network.version]} or narrower "
            "(a wider range is most of the internet)",
        )
    return network


def _refuse_the_whole_internet(r: _Reader, label: str, networks: list[IPNetwork]) -> None:
    """Two /1 halves (or any split) open SSH to the world as surely as one /0 does."""
    for whole in (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")):
        family = [n for n in networks if n.version == whole.version]
        if whole in family:
            continue  # already refused by name
        if whole in ipaddress.collapse_addresses(family):  # type: ignore[type-var]
            r.errors.append(
                f"{label} must not cover the whole internet, got {', '.join(map(str, family))}: "
                f"together they span all of IPv{whole.version} ({whole}); "
                "list only the networks you connect from"
            )


def _normalised(networks: list[IPNetwork]) -> tuple[str, ...]:
    """Each network once, dropping any inside another listed one: one ingress rule per name."""
    unique = sorted(set(networks), key=lambda n: (n.version, int(n.network_address), n.prefixlen))
    kept = [
        n
        for n in unique
        if not any(o != n and o.version == n.version and n.subnet_of(o) for o in unique)  # type: ignore[arg-type]
    ]
    return tuple(str(n) for n in kept)


def _server(
    r: _Reader,
    *,
    name: str,
    default_host: str,
    region: str,
    stack: str,
    types: InstanceTypes,
    shared: _Shared,
    prefix: str = f"{NAMESPACE}:",
) -> DevServerSettings | None:
    user = _user(r)
    github_user = r.required(
        "githubUser",
        GITHUB_USER_RE,
        "a GitHub user name (letters, digits, single hyphens, at most 39)",
        "the GitHub account whose public keys may log in",
    )
    flake = _flake(r)
    full_name = r.text(
        "fullName",
        FULL_NAME_RE,
        "1-100 printable characters without \", `, $, \\ or : (':' separates /etc/passwd fields)",
    )
    email = _email(r)
    host_name = r.text(
        "hostName",
        HOST_RE,
        "a host name: lower case letters, digits and -, at most 63",
        default=default_host,
    )
    release = _release(r)
    ami_id = r.text("amiId", AMI_RE, "an AMI id like ami-0123456789abcdef0")
    home_volume_id = r.text(
        "homeVolumeId", VOLUME_RE, "an EBS volume id like vol-0123456789abcdef0"
    )
    protect = r.boolean("homeVolumeProtect", default=True)
    idle = r.integer("idleStopMinutes", 0, 1440, default=0)
    state = r.text("state", re.compile("running|stopped"), "running or stopped", default="running")
    deploy = r.boolean("deploy", default=True)
    rebuild = r.integer("rebuild", 0, MAX_REBUILD, default=0)
    ssm = r.boolean("ssmSessionManager", default=True)
    vpc_id = r.text("vpcId", re.compile(r"vpc-[0-9a-f]+"), "a VPC id like vpc-0123abcd")
    subnet_id = r.text(
        "subnetId", re.compile(r"subnet-[0-9a-f]+"), "a subnet id like subnet-0123abcd"
    )
    zone = r.text(
        "availabilityZone",
        re.compile(r"[a-z]{2}(-[a-z]+)+-\d[a-z]"),
        "an availability zone of the region, e.g. eu-west-1a",
    )
    if zone and not zone.startswith(region):
        r.fail(r.label("availabilityZone"), zone, f"an availability zone of {region}")
    cidrs = _cidrs(r)
    machine = _machine(r, types, prefix)
    size_key = r.label("homeVolumeGiB") if r.source.get("homeVolumeGiB") is not None else None
    if machine is None or not (user and github_user and flake) or r.errors:
        return None
    return DevServerSettings(
        name=name,
        host_name=host_name or default_host,
        user=user,
        full_name=full_name or user,
        email=email or f"{github_user}@users.noreply.github.com",
        github_user=github_user,
        flake=flake,
        region=region,
        stack=stack,
        machine=machine,
        network=NetworkSettings(cidrs, vpc_id, subnet_id, zone),
        image=ImageSettings(release or DEFAULT_NIXOS_RELEASE, ami_id),
        home=HomeSettings(protect is not False, home_volume_id, size_key),
        deploy=deploy is not False,
        github_token=shared.github_token,
        token_kms_key_arn=shared.token_kms_key_arn,
        idle_stop_minutes=idle or 0,
        running=state != "stopped",
        rebuild=rebuild or 0,
        ssm_session_manager=ssm is not False,
        ebs_kms_key_arn=shared.ebs_kms_key_arn,
        aws_access=shared.aws_access,
        deploy_public_key=shared.deploy_public_key,
        config_prefix=prefix,
    )


def _user(r: _Reader) -> str:
    user = r.required(
        "user",
        USER_RE,
        "a Linux login name: lower case, digits, _ or -, at most 31 (NixOS's limit)",
        "the Linux login name on the machine, e.g. alice",
    )
    if user and (user in RESERVED_USERS or user.startswith(RESERVED_USER_PREFIXES)):
        r.fail(
            r.label("user"),
            user,
            "a login name that is not already a system account on the machine "
            "(root, sshd, docker, ssm-user, devserver-keys, nixbld*, systemd-*, …)",
        )
    return user


def _flake(r: _Reader) -> str:
    allowed = (
        "a flake reference with a remote scheme (github:, gitlab:, sourcehut:, git+https:, "
        "git+ssh:, https:, tarball+https:) and only URL characters"
    )
    found = r.source.get("flake")
    value = found[0] if found else None
    if isinstance(value, str) and LOCAL_FLAKE_RE.match(value):
        r.fail(
            r.label("flake"),
            value,
            f"{allowed}, not a local path: Nix would copy that directory into the "
            "world-readable /nix/store as root; push the flake to a repository instead",
        )
        return ""
    if isinstance(value, str) and INDIRECT_FLAKE_RE.fullmatch(value):
        r.fail(
            r.label("flake"),
            value,
            f"{allowed}, not a registry id: the machine's flake registry decides what it "
            "means and may point it at a local path",
        )
        return ""
    return r.required(
        "flake", FLAKE_RE, allowed, "the shared flake, e.g. github:acme/infra?dir=nix"
    )


def _email(r: _Reader) -> str | None:
    email = r.text(
        "email", EMAIL_RE, "an email address without spaces, quotes or control characters"
    )
    if email is not None and len(email) > MAX_EMAIL_LENGTH:
        r.fail(
            r.label("email"), email, f"an email address of at most {MAX_EMAIL_LENGTH} characters"
        )
        return None
    return email


def _release(r: _Reader) -> str | None:
    allowed = "a NixOS release like 26.05 (year.month, both two digits)"
    found = r.source.get("nixosRelease")
    # The CLI hands a YAML number over as its shortest text: `26.10` arrives as "26.1".
    if found is not None and isinstance(found[0], str) and re.fullmatch(r"\d{2}\.\d", found[0]):
        r.errors.append(
            f"{found[1]} must be {allowed}, got {found[0]!r}: a bare 26.10 in YAML is the number "
            f'26.1, so write the release in quotes ("26.10")'
        )
        return None
    return r.text("nixosRelease", RELEASE_RE, allowed, default=DEFAULT_NIXOS_RELEASE)


@dataclass(frozen=True)
class _Shared:
    github_token: pulumi.Output[str] | None
    token_kms_key_arn: str | None
    ebs_kms_key_arn: str | None = None
    aws_access: AwsAccess = field(default_factory=lambda: AwsAccess())
    deploy_public_key: str | None = None


def _ebs_kms_key(r: _Reader, region: str) -> str | None:
    """`devserver:ebsKmsKeyArn`: EBS encrypts a volume only with a key in the volume's region."""
    return _regional_kms_key(r, "ebsKmsKeyArn", region, "EBS only uses keys of the volume's region")


_ASSUME_ROLE_KEYS = {
    "roleArn",
    "sessionName",
    "externalId",
    "duration",
    "policy",
    "policyArns",
    "sourceIdentity",
    "tags",
    "transitiveTagKeys",
}


def _go_duration_seconds(text: str) -> int:
    """`aws:assumeRoles[].duration` is a Go duration such as 1h or 45m30s; STS wants seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or parts is None:
        raise ValueError(text)
    hours, minutes, seconds = (int(p or 0) for p in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def _assume_role(entry: Any, label: str, errors: list[str]) -> AssumeRole | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("roleArn"), str):
        errors.append(f"{label} must be an object with a roleArn, got {entry!r}")
        return None
    unknown = sorted(set(entry) - _ASSUME_ROLE_KEYS)
    if unknown:
        errors.append(f"{label} has keys the AWS provider does not know: {', '.join(unknown)}")
        return None
    duration = None
    if entry.get("duration"):
        try:
            duration = _go_duration_seconds(str(entry["duration"]))
        except ValueError:
            errors.append(
                f"{label}.duration must be a duration like 1h or 45m, got {entry['duration']!r}"
            )
    return AssumeRole(
        role_arn=entry["roleArn"],
        session_name=entry.get("sessionName"),
        external_id=entry.get("externalId"),
        duration_seconds=duration,
        policy=entry.get("policy"),
        policy_arns=tuple(entry.get("policyArns") or ()),
        source_identity=entry.get("sourceIdentity"),
        tags=tuple(sorted((entry.get("tags") or {}).items())),
        transitive_tag_keys=tuple(entry.get("transitiveTagKeys") or ()),
    )


def _aws_access(errors: list[str]) -> tuple[AwsAccess, list[str]]:
    """The AWS provider's credential config, and what code outside the provider cannot honour.

    The second list holds problems that matter only when something besides the provider calls
    AWS (the spot-request canceller); the caller reports them only then.
    """
    aws = pulumi.Config("aws")
    unsupported: list[str] = []
    roles: list[AssumeRole] = []
    raw_roles = aws.get_object("assumeRoles") or []
    if not isinstance(raw_roles, list):
        errors.append(f"aws:assumeRoles must be a list of role objects, got {raw_roles!r}")
        raw_roles = []
    for i, entry in enumerate(raw_roles):
        role = _assume_role(entry, f"aws:assumeRoles[{i}]", errors)
        if role is not None:
            roles.append(role)
    files: dict[str, str | None] = {}
    for key in ("sharedConfigFiles", "sharedCredentialsFiles"):
        paths = aws.get_object(key) or []
        if not isinstance(paths, list) or len(paths) > 1:
            unsupported.append(
                f"aws:{key} must name at most one file for the spot-request canceller "
                f"(boto3 reads one), got {paths!r}: merge them into one file"
            )
        files[key] = str(paths[0]) if isinstance(paths, list) and paths else None
    if aws.get("assumeRoleWithWebIdentity"):
        unsupported.append(
            "aws:assumeRoleWithWebIdentity is not supported by the spot-request canceller: "
            "set AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE in the environment instead"
        )
    endpoints: dict[str, str] = {}
    raw_endpoints = aws.get_object("endpoints") or []
    for entry in raw_endpoints if isinstance(raw_endpoints, list) else [raw_endpoints]:
        if isinstance(entry, dict):
            endpoints.update({k: str(v) for k, v in entry.items() if k in ("ec2", "sts")})
    access = AwsAccess(
        profile=aws.get("profile") or None,
        assume_roles=tuple(roles),
        shared_config_file=files["sharedConfigFiles"],
        shared_credentials_file=files["sharedCredentialsFiles"],
        ec2_endpoint=endpoints.get("ec2"),
        sts_endpoint=endpoints.get("sts"),
        access_key=aws.get_secret("accessKey"),
        secret_key=aws.get_secret("secretKey"),
        token=aws.get_secret("token"),
    )
    return access, unsupported


def _secret(config: pulumi.Config, key: str, errors: list[str]) -> pulumi.Output[str] | None:
    """A secret key; set in plaintext it is refused, so the user's token never sits in a file."""
    full = f"{NAMESPACE}:{key}"
    if not pulumi.runtime.get_config(full):
        return None
    if not pulumi.runtime.is_config_secret(full):
        errors.append(
            f"{full} must be stored as a secret (pulumi config set --secret {full} …); "
            "it is in plaintext now, so rotate it and set it again"
        )
        return None
    return config.require_secret(key)


def _check_token_shape(errors: list[str]) -> None:
    """A pasted token often carries a newline; refused (never trimmed or echoed): what is stored
    is exactly what reaches the machine."""
    full = f"{NAMESPACE}:githubToken"
    raw = pulumi.runtime.get_config(full)
    if isinstance(raw, str) and not TOKEN_RE.fullmatch(raw):
        errors.append(
            f"{full} must be the token alone, without spaces, newlines or control characters "
            "(value not shown): set it again with "
            f'`printf %s "$TOKEN" | pulumi config set --secret {full}`'
        )


def _check_deploy_key_shape(errors: list[str]) -> None:
    """The deploy key is used deep inside provider calls; its shape is checked here, from the raw
    config value, so a wrong paste fails before anything is registered. Never echoed."""
    full = f"{NAMESPACE}:deployPrivateKey"
    raw = pulumi.runtime.get_config(full)
    problem = _openssh_key_problem(raw if isinstance(raw, str) else "")
    if problem:
        errors.append(
            f"{full} must be an unencrypted OpenSSH private key ({OPENSSH_KEY_BEGIN} … "
            f"{OPENSSH_KEY_END}, as ssh-keygen -t ed25519 -N '' writes it), but {problem} "
            "(value not shown)"
        )


def _openssh_key_problem(text: str) -> str | None:
    """What is wrong with an OpenSSH private key's armour and header, or None."""
    lines = text.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != OPENSSH_KEY_BEGIN:
        return f"it does not start with {OPENSSH_KEY_BEGIN}"
    if lines[-1].strip() != OPENSSH_KEY_END:
        return f"it does not end with {OPENSSH_KEY_END}"
    try:
        body = base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        return "its body is not base64"
    if not body.startswith(OPENSSH_KEY_MAGIC):
        return "its body is not an openssh-key-v1 key"
    rest = body[len(OPENSSH_KEY_MAGIC) :]
    length = int.from_bytes(rest[:4], "big")
    if rest[4 : 4 + length] != b"none":
        return "it is protected by a passphrase, which the deployment cannot enter"
    return None


def openssh_public_blob(text: str) -> str | None:
    """The public key (base64 wire blob, as in `ssh-ed25519 <blob>`) an unencrypted OpenSSH
    private key carries in the clear (PROTOCOL.key: magic, cipher, kdf, kdf options, count,
    public key), or None when it is not such a key. Nothing secret is read."""
    if _openssh_key_problem(text) is not None:
        return None
    lines = text.strip().splitlines()
    body = base64.b64decode("".join(line.strip() for line in lines[1:-1]))
    at = len(OPENSSH_KEY_MAGIC)
    for _ in range(3):  # cipher name, kdf name, kdf options
        at += 4 + int.from_bytes(body[at : at + 4], "big")
    at += 4  # the number of keys
    length = int.from_bytes(body[at : at + 4], "big")
    blob = body[at + 4 : at + 4 + length]
    return base64.b64encode(blob).decode() if len(blob) == length and blob else None


def _kms_key(top: _Reader, region: str, has_token: bool) -> str | None:
    """The token secret's KMS key: in the stack's region, and only with a token to encrypt."""
    arn = _regional_kms_key(
        top, "githubTokenKmsKeyArn", region, "Secrets Manager only uses keys of its own region"
    )
    if arn is not None and not has_token:
        top.errors.append(
            f"{top.label('githubTokenKmsKeyArn')} is set but unused: there is no "
            f"{NAMESPACE}:githubToken to encrypt; remove it or set the token"
        )
        return None
    return arn


def _regional_kms_key(r: _Reader, key: str, region: str, why: str) -> str | None:
    """A KMS key ARN (single- or multi-region, never an alias) in the stack's partition and
    region; a multi-region key is given by the ARN of its replica there."""
    arn = r.text(
        key,
        KMS_KEY_ARN_RE,
        "a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id or mrk-… multi-region id>)",
    )
    if arn is None:
        return None
    match = KMS_KEY_ARN_RE.fullmatch(arn)
    assert match is not None, "text() checked the pattern"
    partition = _partition(region)
    if match["partition"] != partition or match["region"] != region:
        r.fail(
            r.label(key),
            arn,
            f"a key in the stack's region {region} (partition {partition}): {why}; "
            "for a multi-region key give its replica's ARN there",
        )
        return None
    return arn


def _partition(region: str) -> str:
    return next((p for prefix, p in PARTITIONS if region.startswith(prefix)), "aws")


def _unknown_keys(errors: list[str]) -> None:
    keys = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    for full in sorted(k for k in keys if k.startswith(f"{NAMESPACE}:")):
        key = full.split(":", 1)[1]
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1)
            hint = (
                f"did you mean {NAMESPACE}:{close[0]}?" if close else "see Pulumi.yaml for the keys"
            )
            errors.append(f"{full} is not a configuration key of this program: {hint}")


def load(types: InstanceTypes, config: pulumi.Config | None = None) -> StackSettings:
    """Read and validate the stack's configuration; raise SettingsError listing every problem."""
    config = config or pulumi.Config(NAMESPACE)
    errors: list[str] = []
    _unknown_keys(errors)
    region = pulumi.Config("aws").get("region") or ""
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        errors.append(f"aws:region must be an AWS region such as eu-west-1, got {region or None!r}")
    stack = pulumi.get_stack()
    top = _Reader(_ConfigSource(config), errors)
    token = _secret(config, "githubToken", errors)
    if token is not None:
        _check_token_shape(errors)
    has_token = bool(pulumi.runtime.get_config(f"{NAMESPACE}:githubToken"))
    aws_access, aws_unsupported = _aws_access(errors)
    deploy_private_key = _secret(config, "deployPrivateKey", errors)
    deploy_public_key = None
    if deploy_private_key is not None:
        _check_deploy_key_shape(errors)
        deploy_public_key = openssh_public_blob(
            str(pulumi.runtime.get_config(f"{NAMESPACE}:deployPrivateKey") or "")
        )
    shared = _Shared(
        token,
        _kms_key(top, region, has_token),
        _ebs_kms_key(top, region),
        aws_access,
        deploy_public_key,
    )
    retention = top.integer("snapshotRetentionDays", 1, 365, DEFAULT_SNAPSHOT_RETENTION_DAYS)
    snapshots = top.boolean("snapshots", default=True)

    # Problems above do not stop the servers from being checked: every problem shows at once.
    raw_servers = top.string_list(
        "servers", '[{"name": "alice", "user": "alice", "githubUser": "alice"}]'
    )
    servers: list[DevServerSettings | None] = []
    if raw_servers is None:
        servers.append(
            _server(
                top,
                name="devserver",
                default_host=_host_name(f"devserver-{stack}"),
                region=region,
                stack=stack,
                types=types,
                shared=shared,
            )
        )
    else:
        servers.extend(_fleet(raw_servers, top, region, stack, types, shared))
    if any(s is not None and s.machine.spot for s in servers):
        errors.extend(aws_unsupported)
    if errors or None in servers:
        problems = errors or ["the stack configuration is incomplete"]
        raise SettingsError(report(problems), problems)
    return StackSettings(
        servers=tuple(s for s in servers if s is not None),
        fleet=raw_servers is not None,
        region=region,
        stack=stack,
        deploy_private_key=deploy_private_key,
        snapshot_retention_days=retention or DEFAULT_SNAPSHOT_RETENTION_DAYS,
        snapshots=snapshots is not False,
    )


def _fleet(
    raw: list[Any],
    top: _Reader,
    region: str,
    stack: str,
    types: InstanceTypes,
    shared: _Shared,
) -> Iterator[DevServerSettings | None]:
    """Each entry is checked in full even when another (or itself) has a problem already."""
    label = f"{NAMESPACE}:servers"
    if not raw:
        top.fail(label, raw, "a non-empty list of servers, each with at least a name")
    _no_fleet_wide_home_volume(top)
    seen: dict[str, dict[str, str]] = {key: {} for key in UNIQUE_PER_SERVER}
    for i, entry in enumerate(raw):
        where = f"{label}[{i}]"
        if not isinstance(entry, dict):
            top.fail(
                where,
                entry,
                'an object such as {"name": "alice", "user": "alice", "githubUser": "alice"}',
            )
            yield None
            continue
        unknown = sorted(set(entry) - set(SERVER_KEYS))
        if unknown:
            top.errors.append(
                f"{where} has unknown keys {', '.join(unknown)}: "
                f"allowed are {', '.join(SERVER_KEYS)}"
            )
        name = entry.get("name")
        if not isinstance(name, str) or not HOST_RE.fullmatch(name) or name == "devserver":
            top.fail(
                f"{where}.name",
                name,
                "a server name: lower case letters, digits and -, at most 63, not 'devserver'",
            )
            name = None
        known = {k: v for k, v in entry.items() if k in SERVER_KEYS}
        reader = _Reader(_Chain(_DictSource(known, f"{where}.{{key}}"), top.source), top.errors)
        server = _server(
            reader,
            name=name or f"server-{i}",
            default_host=name or f"server-{i}",
            region=region,
            stack=stack,
            types=types,
            shared=shared,
            prefix=f"{where}.",
        )
        _check_unique(reader, where, name, seen)
        yield server if name is not None else None


# What two servers of a fleet may never share; a shared homeVolumeId would mount one person's
# /home on another's machine.
UNIQUE_PER_SERVER = ("name", "user", "hostName", "homeVolumeId")


def _check_unique(
    reader: _Reader, where: str, name: str | None, seen: dict[str, dict[str, str]]
) -> None:
    """Refuse a value another entry already uses, naming both entries (read quietly: the entry's
    own problems are reported by `_server`)."""
    quiet = _Reader(reader.source, [])
    values = {
        "name": name,
        "user": quiet.text("user"),
        "hostName": quiet.text("hostName") or name,
        "homeVolumeId": quiet.text("homeVolumeId"),
    }
    for key, value in values.items():
        if value is None:
            continue
        if value in seen[key]:
            reader.errors.append(
                f"{where}.{key} {value!r} is already used by {seen[key][value]}: "
                f"each server needs its own {key}"
            )
        else:
            seen[key][value] = where


def _no_fleet_wide_home_volume(top: _Reader) -> None:
    if top.source.get("homeVolumeId") is not None:
        top.errors.append(
            f"{NAMESPACE}:homeVolumeId cannot be set for a whole fleet: every server would "
            f"mount the same /home; set homeVolumeId in the one {NAMESPACE}:servers[i] entry "
            "it belongs to"
        )


def _host_name(text: str) -> str:
    """A valid host name made from a stack name (which may hold capitals, dots or underscores)."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].rstrip("-") or "devserver"


def report(errors: list[str]) -> str:
    """The message of a SettingsError: every problem once, one per line."""
    return "invalid stack configuration:\n  - " + "\n  - ".join(dict.fromkeys(errors))
