# The validated settings the components consume: typed, frozen, and free of config reading.
"""Typed settings: what `load` returns and every component takes, already validated."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import pulumi

from components.lookups import EC2_ARCHITECTURE, InstanceTypeInfo

NAMESPACE = "devserver"

Arch = Literal["x86_64", "aarch64"]
ARCHES: tuple[Arch, ...] = ("x86_64", "aarch64")
DEFAULT_SNAPSHOT_RETENTION_DAYS = 7


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
class BinaryCacheSettings:
    """The binary cache a server trusts: the stack's own (`own`), or a team's by URL and key."""

    own: bool = False
    url: str | None = None
    public_key: str | None = None
    bucket: str | None = None
    """The bucket of a team's s3:// cache: the instance role may read it."""


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
    provider_args: Mapping[str, Any] = field(default_factory=dict)
    """Every `aws:` setting but the region, as aws.Provider arguments (for explicit providers)."""


# Every resource of this program carries it; the operator IAM policy scopes changes to it.
PURPOSE_TAG = ("devserver:purpose", "devserver")
# The owner of what the stack itself holds (cache writer, signing key, fleet snapshots): `=` is
# outside USER_RE, so no developer's owner tag can equal it (docs/security.md).
STACK_OWNER = "=stack"


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
    flake: str | None
    """The team's remote shared flake; None: the deployment pushes this checkout's nix/."""
    region: str
    stack: str
    machine: MachineSpec
    network: NetworkSettings
    image: ImageSettings
    home: HomeSettings = field(default_factory=HomeSettings)
    deploy: bool = True
    """Apply the NixOS flake over SSH on `pulumi up`."""
    personal_flake: str | None = None
    """A person's own flake, imported over the shared modules on this server only."""
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
    permissions_boundary: str | None = None
    """The managed policy ARN set as permissions boundary on the server's role (None: none)."""
    config_prefix: str = f"{NAMESPACE}:"
    """How error messages name this server's keys: `devserver:` or `devserver:servers[2].`."""
    github_user_id: int | None = None
    """The numeric GitHub id the login must still belong to (devserver:githubUserId), or None."""
    binary_cache: BinaryCacheSettings | None = None
    """The binary cache the machine substitutes from (None: cache.nixos.org only)."""

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
    aws_access: AwsAccess = field(default_factory=AwsAccess)
    """The stack's `aws:` settings, for the providers and calls the program makes itself."""
    permissions_boundary: str | None = None
    """The managed policy ARN set as permissions boundary on the snapshot role (None: none)."""
    binary_cache_writer_repository: str | None = None
    """GitHub owner/name whose main branch may fill the stack's own cache (None: no writer)."""

    @property
    def tags(self) -> dict[str, str]:
        """Tags of what the whole stack shares (deploy key, fleet security groups, snapshots)."""
        return stack_tags(self.stack)

    @property
    def stack_owned_tags(self) -> dict[str, str]:
        """Tags of what only the operator creates (cache, writer role, fleet snapshots): owned by
        the stack, never ownerless, so the boundary and developer policy can tell them apart."""
        return {**self.tags, "devserver:owner": STACK_OWNER}

    @property
    def snapshot_tags(self) -> dict[str, str]:
        """Tags of the snapshot role and policy: a one-server stack's are its developer's (the
        boundary lets an owner-tagged role snapshot only that owner's volumes; docs/security.md),
        a fleet's are the stack's."""
        if self.fleet:
            return self.stack_owned_tags
        return {**self.tags, "devserver:owner": self.servers[0].user}

    @property
    def owns_binary_cache(self) -> bool:
        """Whether a server trusts the stack's own cache (devserver:binaryCache): one per stack."""
        return any(s.binary_cache is not None and s.binary_cache.own for s in self.servers)
