"""One NixOS dev server on AWS: the component that composes all the others."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import pulumi
import pulumi_aws as aws

from components.binary_cache import BinaryCache, trusted_cache
from components.cost import Prices, estimated_cost
from components.deploy_key import DeployKey, DeployKeyArgs
from components.flake_deployment import FlakeDeployment, FlakeDeploymentArgs
from components.home_volume import HomeVolume, HomeVolumeArgs
from components.host_flake import PUSHED_SHARED_FLAKE, HostFlake
from components.image import installed_release, launched_image, resolve_image
from components.instance_role import InstanceRole, InstanceRoleArgs
from components.lookups import (
    AwsLookupError,
    AwsLookups,
    AwsPermissionError,
    ExistingInstance,
    Image,
    lookup_failed,
)
from components.machine import HOST_KEY_TAG, Machine, MachineArgs
from components.network import (
    Network,
    NetworkArgs,
    Placement,
    check_home_size,
    resolve_placement,
)
from components.relaunch import check_relaunch, existing_machine
from components.settings import DevServerSettings, SettingsError, StackSettings, report
from components.shared_flake import PushedFlakeError, pushed_flake
from components.snapshots import home_target_tag
from components.token_secret import GithubTokenSecret, GithubTokenSecretArgs, token_secret_name

# The stack outputs other projects read through StackReference. Renaming one breaks them.
CONTRACT_OUTPUTS = (
    "instanceId",
    "publicIp",
    "publicDns",
    "sshCommand",
    "user",
    "arch",
    "amiId",
    "availabilityZone",
    "homeVolumeId",
    "instanceRoleArn",
    "githubTokenSecretArn",
    "securityGroupId",
)
# Outputs beyond the contract, also stable: the pinned SSH host key (for known_hosts), an
# estimate of what the server costs, the binary cache it trusts (null: none) and the seconds of
# each phase of its last apply (docs/speed.md).
EXTRA_OUTPUTS = (
    "sshHostKey",
    "estimatedCost",
    "binaryCacheUrl",
    "binaryCachePublicKey",
    "deployPhases",
)


# How the deployment's first SSH contact went, recorded with the key (see machine.HOST_KEY_TAG).
FIRST_USE, PINNED, NOT_DEPLOYED = "first-use", "pinned", "not-deployed"


@dataclass(frozen=True)
class HostKeyPin:
    """The host key a machine showed, as its tag records it."""

    instance_id: str
    mode: str
    key: str

    @property
    def pins_first_contact(self) -> bool:
        """A deployment (re)made after a stop or an interruption, or made with the pin already,
        connects with it; one that trusted the key on first use is left as it is (unchanged
        inputs: no SSH at all)."""
        return self.mode in (PINNED, NOT_DEPLOYED)


@dataclass(frozen=True)
class DevServerArgs:
    """Validated settings plus what the plan resolved from AWS: placement and image."""

    settings: DevServerSettings
    placement: Placement
    image: Image
    estimated_cost: dict[str, object] | None = None
    security_group_id: pulumi.Input[str] | None = None
    """The SSH security group, shared by every server with the same VPC and CIDRs."""
    deploy_key: DeployKey | None = None
    """The stack's deploy key (None when deployment is off)."""
    spot_interrupted: bool = False
    """An interruption holds the server's spot machine stopped: only EC2 may start it now."""
    state_version: str = ""
    """The NixOS release the machine was first installed from (`system.stateVersion`)."""
    pinned_host_key: HostKeyPin | None = None
    """The SSH host key recorded on the existing machine; None for a new machine (trust on
    first use)."""
    new_machine: bool = True
    """No machine of this resource name exists yet: this update launches one."""
    binary_cache: BinaryCache | None = None
    """The stack's own binary cache (None when no server trusts it)."""


def plan(settings: DevServerSettings, lookups: AwsLookups) -> DevServerArgs:
    """Resolve everything that can still fail on input, before any resource is registered.
    Placement and image are both asked, so one server's problems are reported together.

    An existing machine never needs an image (it boots its own root disk): only a new one has
    its AMI looked up, so an expired NixOS release stops nothing but a new launch."""
    errors: list[str] = []
    found = _collect(errors, lambda: (existing_machine(settings, lookups),))
    machine = found[0] if found else None
    placement = _collect(errors, lambda: resolve_placement(settings, lookups, machine))
    if machine is not None and machine.ami:
        image: Image | None = launched_image(settings, machine)
    else:
        image = _collect(errors, lambda: resolve_image(settings, lookups))
    interrupted = _collect(errors, lambda: spot_interrupted(settings, lookups))
    _collect(errors, lambda: check_home_size(settings, lookups))
    if settings.deploy and not settings.flake:
        _collect(errors, lambda: _pushable(settings))
    if placement is not None and found is not None:
        # Only now is the launch spec known; an existing machine must be able to take it.
        _collect(
            errors,
            lambda: check_relaunch(
                settings, placement, functools.partial(_new_image, settings, lookups), machine,
                lookups,
            ),
        )  # fmt: skip
    if placement is None or image is None or interrupted is None or errors:
        raise SettingsError(report(errors), errors)
    return DevServerArgs(
        _with_adopted_size(settings, lookups),
        placement,
        image,
        spot_interrupted=interrupted,
        state_version=installed_release(settings, machine),
        pinned_host_key=_pinned_host_key(machine, lookups),
        new_machine=machine is None,
    )


def _new_image(settings: DevServerSettings, lookups: AwsLookups) -> str:
    """Which AMI a new machine would boot, in words (for a refusal that asks for one)."""
    try:
        return f"the current AMI {resolve_image(settings, lookups).id}"
    except SettingsError as err:
        return f"an AMI that must be found first ({err})"


def _pinned_host_key(machine: ExistingInstance | None, lookups: AwsLookups) -> HostKeyPin | None:
    """The pin on the machine's primary network interface, else where stacks before it kept it
    (a tag on the instance itself)."""
    if machine is None:
        return None
    eni = machine.network_interface_id
    value = dict(lookups.network_interface_tags(eni)).get(HOST_KEY_TAG) if eni else None
    mode, _, key = (value or machine.tag(HOST_KEY_TAG) or "").partition(" ")
    if mode not in (FIRST_USE, PINNED, NOT_DEPLOYED) or not key:
        return None
    return HostKeyPin(machine.id, mode, key)


def _pushable(s: DevServerSettings) -> None:
    """Without a remote flake the deployment pushes nix/: it must be pushable before anything."""
    try:
        pushed_flake()
    except PushedFlakeError as err:
        raise SettingsError(
            f"{s.config_prefix}flake is not set, so the deployment pushes this checkout's nix/, "
            f"but {err}"
        ) from err


def plan_all(servers: tuple[DevServerSettings, ...], lookups: AwsLookups) -> list[DevServerArgs]:
    """Every server's plan, or one error listing the problems of all of them: lookups AWS refused
    (a permission problem, named as one) first, else the configuration problems."""
    errors: list[str] = []
    refused: list[str] = []
    plans = []
    for s in servers:
        try:
            plans.append(_collect(errors, functools.partial(plan, s, lookups)))
        except AwsPermissionError as err:
            refused.extend(err.problems)
    try:
        _collect(errors, lambda: check_elastic_ips(servers, lookups))
    except AwsPermissionError as err:
        refused.extend(err.problems)
    if refused:
        raise AwsPermissionError(refused)
    if errors:
        raise SettingsError(report(errors), errors)
    return [p for p in plans if p is not None]


def check_elastic_ips(servers: tuple[DevServerSettings, ...], lookups: AwsLookups) -> None:
    """Refuse, before anything is created, an update that needs more Elastic IPs than the region
    has left: each server holds one, and EC2 allows 5 per region unless the quota is raised
    (Service Quotas L-0263D0A3); past it, AllocateAddress fails half-way through the update.
    An update that allocates nothing is never refused, and a quota that could not be read is
    only a warning: a refusal must not rest on AWS's default when the quota may be raised."""
    if not servers:
        return
    try:
        quota = lookups.elastic_ip_quota()
        in_use = len(lookups.elastic_ips())
        ours = len(lookups.elastic_ips((("devserver:stack", servers[0].stack),)))
    except AwsLookupError as err:
        pulumi.log.warn(f"the Elastic IP quota was not checked: {err}")
        return
    needed = max(0, len(servers) - ours)
    if needed == 0 or in_use + needed <= quota.value:
        return
    region = servers[0].region
    # Only a fleet has a key that asks for more addresses; one server needs its one address.
    key = "devserver:servers: " if len(servers) > 1 else ""
    shortfall = (
        f"this update needs {needed} new Elastic IP(s) (one per server: {len(servers)} servers, "
        f"{ours} with an address already), but {region} has {in_use} of its {quota.value} in use"
    )
    ask = (
        f"aws service-quotas request-service-quota-increase --region {region} --service-code ec2 "
        f"--quota-code L-0263D0A3 --desired-value {in_use + needed}"
    )
    if quota.unread:
        pulumi.log.warn(
            f"{key}the Elastic IP quota (L-0263D0A3) could not be read ({quota.unread}; the "
            "operator policy needs servicequotas:GetAWSDefaultServiceQuota and "
            f"servicequotas:GetServiceQuota), so AWS's default is assumed: {shortfall}. Unless "
            f"the quota was raised, AllocateAddress will fail half-way; ask for more: {ask}"
        )
        return
    raise SettingsError(
        f'{key}{shortfall} (quota L-0263D0A3 "EC2-VPC Elastic IPs"). Ask for more first: '
        f"{ask}; or release addresses nobody uses, or add fewer servers to this stack."
    )


T = TypeVar("T")


def _collect(errors: list[str], step: Callable[[], T]) -> T | None:
    try:
        return step()
    except SettingsError as err:
        errors.extend(err.problems)
        return None


def _with_adopted_size(settings: DevServerSettings, lookups: AwsLookups) -> DevServerSettings:
    """An adopted home volume has the size AWS reports (what it costs), not the preset's."""
    volume_id = settings.home.existing_volume_id
    if volume_id is None:
        return settings
    size = lookups.volume(volume_id).size_gib
    return replace(settings, machine=replace(settings.machine, home_volume_gib=size))


def spot_interrupted(s: DevServerSettings, lookups: AwsLookups) -> bool:
    """Whether an interruption stopped this server's spot machine; if so, say what happens."""
    if not s.machine.spot:
        return False
    try:
        # The same tags that find its machines and volumes: an owner rename must not hide it.
        stopped = lookups.interrupted_spot_instances(s.lookup_tags)
    except AwsLookupError as err:
        raise SettingsError(lookup_failed(s.name, err)) from err
    if stopped:
        pulumi.log.warn(
            f"server {s.name!r}: the spot machine {', '.join(stopped)} was stopped by a spot "
            "interruption, and only EC2 may start it (when capacity returns, in the same zone "
            "and type). This update leaves its running/stopped state alone and skips the flake "
            "deployment; run `./scripts/up <stack>` again once EC2 has restarted it. To move on "
            "now, "
            f"raise {s.config_prefix}rebuild (with devserver:spot false or another instance "
            "type if you like): a new machine from the current AMI takes over /home."
        )
    return bool(stopped)


def with_cost(args: DevServerArgs, prices: Prices) -> DevServerArgs:
    """The plan plus its cost estimate (asked after every plan passed: pricing may register a
    provider for the Price List API's region)."""
    spec, zone = args.settings.machine, args.placement.availability_zone
    cost = estimated_cost(spec, args.settings.region, zone, prices, args.settings.idle_stop_minutes)
    return replace(args, estimated_cost=cost)


class DevServer(pulumi.ComponentResource):
    """A NixOS dev server: machine, kept home volume, scoped role, token secret and SSH rules."""

    instance_id: pulumi.Output[str]
    """The EC2 instance id."""
    public_ip: pulumi.Output[str]
    """The machine's Elastic IP (stable across stop/start)."""
    public_dns: pulumi.Output[str]
    """The Elastic IP's public DNS name."""
    home_volume_id: pulumi.Output[str]
    """The persistent home volume's id."""
    home_device_path: pulumi.Output[str]
    """The home volume's stable device path on the machine (for the NixOS side)."""
    instance_role_arn: pulumi.Output[str]
    """The instance role's ARN."""
    github_token_secret_arn: pulumi.Output[str | None]
    """The GitHub token secret's ARN, or None when the stack has no token."""
    security_group_id: pulumi.Output[str]
    """The security group's id."""
    machine: Machine
    """The machine (its instance and home attachment are what later steps depend on)."""
    deploy_key: DeployKey | None
    """The key the flake deployment connects with (None when deployment is off)."""
    deployment: FlakeDeployment | None
    """The flake deployment (None when it is off or the machine is meant to be stopped)."""

    def __init__(
        self, name: str, args: DevServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("devserver:aws:DevServer", name, None, opts)
        s, here = args.settings, pulumi.ResourceOptions(parent=self)
        self.settings, self.image, self.placement = s, args.image, args.placement
        self.estimated_cost = args.estimated_cost

        secret = (
            GithubTokenSecret(
                name,
                GithubTokenSecretArgs(
                    s.github_token,
                    s.user,
                    s.tags,
                    s.token_kms_key_arn,
                    name=token_secret_name(s.stack, s.name),
                ),
                here,
            )
            if s.github_token is not None
            else None
        )
        # The binary cache this machine substitutes from; its role may read that bucket, no more.
        self.binary_cache = trusted_cache(s.binary_cache, args.binary_cache)
        role = InstanceRole(
            name,
            InstanceRoleArgs(
                s.tags,
                secret.arn if secret else None,
                s.token_kms_key_arn,
                s.ssm_session_manager,
                s.permissions_boundary,
                binary_cache_bucket=self.binary_cache.bucket if self.binary_cache else None,
            ),
            here,
        )
        home = HomeVolume(
            name,
            HomeVolumeArgs(
                availability_zone=args.placement.availability_zone,
                size_gib=s.machine.home_volume_gib,
                # The snapshot policy selects this stack's home volumes by this one tag.
                tags={**s.tags, **home_target_tag(s.stack)},
                protect=s.home.protect,
                existing_volume_id=s.home.existing_volume_id,
                kms_key_id=s.ebs_kms_key_arn,
            ),
            here,
        )
        self.deploy_key = args.deploy_key if s.deploy else None
        assert args.security_group_id is not None, "build_servers() provides the security group"
        self.machine = Machine(
            name,
            MachineArgs(
                spec=s.machine,
                ami_id=args.image.id,
                subnet_id=args.placement.subnet_id,
                security_group_id=args.security_group_id,
                instance_profile=role.profile_name,
                home_volume_id=home.volume_id,
                host_name=s.host_name,
                region=s.region,
                tags=s.tags,
                key_name=self.deploy_key.key_name if self.deploy_key else None,
                running=s.running,
                rebuild=s.rebuild,
                ebs_kms_key_arn=s.ebs_kms_key_arn,
                manage_state=not args.spot_interrupted,
                aws_access=s.aws_access,
                state_version=args.state_version or s.image.nixos_release,
            ),
            here,
        )

        self.deployment = None
        pin = args.pinned_host_key
        if self.deploy_key is not None and s.running and not args.spot_interrupted:
            # Only program-chosen values: the flake is known at preview, even for a new stack.
            # No remote shared flake: the deployment pushes this checkout's nix/.
            pushed = pushed_flake() if not s.flake else None
            host_flake = HostFlake(
                sharedFlake=s.flake or PUSHED_SHARED_FLAKE,
                hostName=s.host_name,
                system=s.machine.nix_system,
                user=s.user,
                fullName=s.full_name,
                email=s.email,
                githubUser=s.github_user,
                region=s.region,
                tokenSecretId=secret.secret_name if secret else None,
                idleStopMinutes=s.idle_stop_minutes,
                # The release the machine was first installed from (its launch tag), so raising
                # devserver:nixosRelease never rewrites it on a running machine.
                stateVersion=args.state_version or s.image.nixos_release,
                personalFlake=s.personal_flake,
                githubUserId=s.github_user_id,
            )
            m = self.machine
            self.deployment = FlakeDeployment(
                name,
                FlakeDeploymentArgs(
                    host=m.public_ip,
                    instance_id=m.instance_id,
                    private_key=self.deploy_key.private_key,
                    deploy_public_key=self.deploy_key.public_key,
                    host_flake=host_flake,
                    home_device=home.device_path,
                    pinned_host_key=self._pinned(pin if pin and pin.pins_first_contact else None),
                    binary_cache=self.binary_cache,
                    # Only once the machine runs, with its home volume and its address attached.
                    depends_on=[m.instance, m.home_attachment, m.address, m.state],
                    pushed_flake=pushed,
                ),
                here,
            )

        # The host key as first read, kept on the machine's primary network interface (a tag), so
        # the next plan pins it while the deployment is absent (stopped, interrupted) and when it
        # comes back. Not on the instance: its own tagsAll would delete the tag after a refresh
        # (aws_ec2_tag docs: never combined with the parent's resource). Nothing else manages the
        # ENI, and it lives exactly as long as the machine, so the tag is retained, never deleted
        # (a replaced machine's ENI goes with it; no DeleteTags on an untagged ENI is needed).
        self.ssh_host_key: pulumi.Output[str | None] = (
            self.deployment.host_key if self.deployment is not None else self._pinned(pin)
        )
        if self.deployment is not None:
            mode = PINNED if pin and pin.pins_first_contact else FIRST_USE
        else:
            mode = NOT_DEPLOYED
        if self.deployment is not None or pin is not None:
            aws.ec2.Tag(
                f"{self.machine.resource_name}-host-key-tag",
                resource_id=self.machine.instance.primary_network_interface_id,
                key=HOST_KEY_TAG,
                value=self.ssh_host_key.apply(lambda key: f"{mode} {key}" if key else ""),
                opts=pulumi.ResourceOptions(parent=self.machine, retain_on_delete=True),
            )
        self.instance_id = self.machine.instance_id
        self.public_ip = self.machine.public_ip
        self.public_dns = self.machine.public_dns
        self.home_volume_id = home.volume_id
        self.home_device_path = home.device_path
        self.instance_role_arn = role.role_arn
        self.github_token_secret_arn = secret.arn if secret else pulumi.Output.from_input(None)
        self.security_group_id = pulumi.Output.from_input(args.security_group_id)
        self.register_outputs(self.outputs())

    def _pinned(self, pin: HostKeyPin | None) -> pulumi.Output[str | None]:
        """The recorded host key, for the machine that recorded it only (a replacement that the
        plan could not foresee is a new machine with a new key: trust on first use)."""
        if pin is None:
            return pulumi.Output.from_input(None)
        return self.machine.instance_id.apply(lambda i: pin.key if i == pin.instance_id else None)

    def outputs(self) -> dict[str, pulumi.Output[object]]:
        """The stack output contract for this server (see CONTRACT_OUTPUTS)."""
        s = self.settings
        values: dict[str, pulumi.Output[object]] = {
            "instanceId": self.instance_id,
            "publicIp": self.public_ip,
            "publicDns": self.public_dns,
            "sshCommand": pulumi.Output.concat("ssh ", s.user, "@", self.public_dns),
            "user": pulumi.Output.from_input(s.user),
            "arch": pulumi.Output.from_input(s.machine.arch),
            "amiId": pulumi.Output.from_input(self.image.id),
            "availabilityZone": pulumi.Output.from_input(self.placement.availability_zone),
            "homeVolumeId": self.home_volume_id,
            "instanceRoleArn": self.instance_role_arn,
            "githubTokenSecretArn": self.github_token_secret_arn,
            "securityGroupId": self.security_group_id,
        }
        values["sshHostKey"] = self.ssh_host_key
        values["estimatedCost"] = pulumi.Output.from_input(self.estimated_cost)
        cache, none = self.binary_cache, pulumi.Output.from_input(None)
        values["binaryCacheUrl"] = cache.url if cache else none
        values["binaryCachePublicKey"] = cache.public_key if cache else none
        values["deployPhases"] = self.deployment.phases if self.deployment else none
        return values


def build_servers(
    plans: list[DevServerArgs], stack: StackSettings, binary_cache: BinaryCache | None = None
) -> dict[str, DevServer]:
    """One DevServer per plan, sharing what a team shares: one deploy key for the stack, and one
    SSH security group per distinct (VPC, CIDR list). Fewer resources per server keeps a fleet
    fast to evaluate; each server still has its own machine, home volume, role and secret."""
    deploy_key = None
    if any(p.settings.deploy for p in plans):
        deploy_key = DeployKey("devserver", DeployKeyArgs(stack.tags, stack.deploy_private_key))
    groups: dict[tuple[str, tuple[str, ...]], pulumi.Output[str]] = {}
    servers = {}
    for p in plans:
        s = p.settings
        key = (p.placement.vpc_id, tuple(sorted(s.network.ssh_allowed_cidrs)))
        if key not in groups:
            # A single server keeps its own name and tags; a fleet names a group by what defines it.
            digest = hashlib.sha256(repr(key).encode()).hexdigest()[:8]
            name, tags = (f"ssh-{digest}", stack.tags) if stack.fleet else (s.name, s.tags)
            groups[key] = Network(name, NetworkArgs(*key, tags)).security_group_id
        servers[s.name] = DevServer(
            s.name,
            replace(
                p,
                security_group_id=groups[key],
                deploy_key=deploy_key,
                binary_cache=binary_cache,
            ),
        )
    return servers
