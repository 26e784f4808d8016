"""One NixOS dev server on AWS: the component that composes all the others."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pulumi
import pulumi_aws as aws

from components.binary_cache import BinaryCache, trusted_cache
from components.deploy_key import DeployKey, DeployKeyArgs
from components.flake_deployment import FlakeDeployment, FlakeDeploymentArgs
from components.home_volume import HomeVolume, HomeVolumeArgs
from components.host_flake import PUSHED_SHARED_FLAKE, HostFlake
from components.host_key_pin import FIRST_USE, NOT_DEPLOYED, PINNED, HostKeyPin
from components.instance_role import InstanceRole, InstanceRoleArgs
from components.machine import HOST_KEY_TAG, Machine, MachineArgs
from components.network import Network, NetworkArgs
from components.plan import DevServerArgs
from components.settings import StackSettings
from components.shared_flake import pushed_flake
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
