"""The EC2 machine: NixOS AMI, on-demand or persistent spot, IMDSv2 only, home volume attached."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.relaunch import launch_tags
from components.settings import PURPOSE_TAG, AwsAccess, MachineSpec
from components.spot_request import SpotRequestCanceller

# Any free slot works: on Nitro the volume shows up as NVMe whatever name is asked for here.
HOME_DEVICE_NAME = "/dev/sdf"
# The machine's SSH host key as first read (an aws.ec2.Tag): the next plan pins it from there,
# so a stop, a start or an interruption never falls back to trust on first use. Its value is
# "<how the deployment last connected> <key>": first-use, pinned, or not-deployed (stopped or
# interrupted, so the deployment's next first contact uses the pin).
HOST_KEY_TAG = "devserver:sshHostKey"
# A persistent spot request's end, set explicitly at launch. RunInstances documents no end
# without ValidUntil, while older EC2 references (and kops#4424) give 7 days: a request that
# ends leaves a stopped or interrupted machine with nothing to restart it. Fixed, never derived
# from the clock, and ignored after launch, so it never makes a diff (valid_until is ForceNew).
SPOT_REQUEST_VALID_UNTIL = "2099-12-31T23:59:59Z"


def metadata_options() -> aws.ec2.InstanceMetadataOptionsArgs:
    """IMDSv2 only, hop limit 1: containers on the machine cannot reach the instance role."""
    return aws.ec2.InstanceMetadataOptionsArgs(
        http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1
    )


def instance_name(name: str, spec: MachineSpec, rebuild: int) -> str:
    """The instance's resource name: a new arch or rebuild generation is a new name, so a new
    machine from the current AMI (`ignore_changes` would carry the old AMI into a plain replace)."""
    return f"{name}-{spec.arch}" + (f"-r{rebuild}" if rebuild else "")


def market_options(spec: MachineSpec) -> aws.ec2.InstanceInstanceMarketOptionsArgs | None:
    """Spot that keeps its disks: a persistent request that stops, never terminates, the machine."""
    if not spec.spot:
        return None
    return aws.ec2.InstanceInstanceMarketOptionsArgs(
        market_type="spot",
        spot_options=aws.ec2.InstanceInstanceMarketOptionsSpotOptionsArgs(
            spot_instance_type="persistent",
            instance_interruption_behavior="stop",
            max_price=spec.spot_max_price,
            valid_until=SPOT_REQUEST_VALID_UNTIL,
        ),
    )


@dataclass(frozen=True)
class MachineArgs:
    """What the machine is made of; every id is already resolved or an Output of a sibling."""

    spec: MachineSpec
    ami_id: str
    subnet_id: str
    security_group_id: pulumi.Input[str]
    instance_profile: pulumi.Input[str]
    home_volume_id: pulumi.Input[str]
    host_name: str
    region: str
    tags: dict[str, str]
    key_name: pulumi.Input[str] | None = None
    running: bool = True
    rebuild: int = 0
    """Rebuild generation (see `instance_name`)."""
    ebs_kms_key_arn: str | None = None
    """Customer KMS key for the root volume (None = the account's EBS default key)."""
    manage_state: bool = True
    """False while an interruption keeps a spot machine stopped: only EC2 may start it then."""
    aws_access: AwsAccess = field(default_factory=AwsAccess)
    """The stack's AWS credentials settings, for the spot-request canceller."""
    state_version: str = ""
    """The NixOS release it was first installed from, recorded as a launch tag."""


class Machine(pulumi.ComponentResource):
    """An EC2 instance running the NixOS image, with the home volume attached."""

    instance: aws.ec2.Instance
    """The instance (for dependencies of later steps)."""
    resource_name: str
    """The instance's resource name (its arch and rebuild generation are part of it)."""
    home_attachment: aws.ec2.VolumeAttachment
    """The home volume's attachment (the flake deployment waits for it)."""
    address: aws.ec2.Eip
    """The Elastic IP, associated with the instance (the flake deployment waits for it)."""
    state: aws.ec2transitgateway.InstanceState
    """Keeps the machine running (or stopped); the flake deployment runs after it."""
    instance_id: pulumi.Output[str]
    """The instance id."""
    public_ip: pulumi.Output[str]
    """Its Elastic IP: the same address across stop/start (see the README for its cost)."""
    public_dns: pulumi.Output[str]
    """The Elastic IP's public DNS name."""

    def __init__(
        self, name: str, args: MachineArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("devserver:aws:Machine", name, None, opts)
        spec = args.spec
        # The arch and rebuild generation are part of the name: either change is a new machine
        # from the current image, while `ignore_changes` keeps a newer AMI from replacing this one.
        machine = instance_name(name, spec, args.rebuild)
        self.resource_name = machine
        self.instance = aws.ec2.Instance(
            machine,
            ami=args.ami_id,
            instance_type=spec.instance_type,
            subnet_id=args.subnet_id,
            vpc_security_group_ids=[args.security_group_id],
            associate_public_ip_address=True,
            iam_instance_profile=args.instance_profile,
            key_name=args.key_name,
            metadata_options=metadata_options(),
            instance_market_options=market_options(spec),
            # Powering off from inside (idle auto-stop) stops the machine, never terminates it.
            instance_initiated_shutdown_behavior="stop",
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                volume_type="gp3",
                volume_size=spec.root_volume_gib,
                encrypted=True,
                kms_key_id=args.ebs_kms_key_arn,
                delete_on_termination=True,
                tags={**args.tags, "Name": f"{args.host_name}-root"},
            ),
            # The generation and max price it launched with: the next plan compares with them.
            tags={
                **args.tags,
                "Name": args.host_name,
                **launch_tags(spec, args.rebuild, args.state_version),
            },
            # A new KMS key applies from the next rebuild, like a new AMI: never a surprise replace.
            # The spot request's end is a launch-time value (ForceNew): a machine launched before
            # it was set keeps what it has. The host-key tag belongs to its own Tag resource.
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=[
                    "ami",
                    "rootBlockDevice.kmsKeyId",
                    "instanceMarketOptions.spotOptions.validUntil",
                    f'tags["{HOST_KEY_TAG}"]',
                ],
            ),
        )
        self.home_attachment = aws.ec2.VolumeAttachment(
            f"{name}-home",
            device_name=HOME_DEVICE_NAME,
            volume_id=args.home_volume_id,
            instance_id=self.instance.id,
            # Stop the machine before detaching so the filesystem is unmounted cleanly.
            stop_instance_before_detaching=True,
            # A volume attaches to one instance at a time: detach from the old one first.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        if spec.spot:
            # RunInstances tags the instance but not the spot request it creates; the operator
            # policy lets CancelSpotInstanceRequests touch only requests with the stack's tag.
            request_tag = aws.ec2.Tag(
                f"{machine}-spot-request-tag",
                resource_id=self.instance.spot_instance_request_id,
                key=PURPOSE_TAG[0],
                value=PURPOSE_TAG[1],
                opts=pulumi.ResourceOptions(parent=self),
            )
            SpotRequestCanceller(
                f"{machine}-spot-request",
                spot_instance_request_id=self.instance.spot_instance_request_id,
                region=args.region,
                access=args.aws_access,
                # Deleted (cancelling the request) before the instance and before the tag goes.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.instance, request_tag]),
            )
        # A stable address: EC2's own public IPv4 changes on every stop/start, an Elastic IP does
        # not, so SSH, the outputs and pulumi-command's connection stay valid. `instance` is an
        # update, not a replacement: a new machine takes the same address over.
        self.address = aws.ec2.Eip(
            f"{name}-address",
            domain="vpc",
            instance=self.instance.id,
            tags={**args.tags, "Name": args.host_name},
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Always managed, so `devserver:state` can stop the machine and `pulumi up --refresh`
        # starts one that idle auto-stop powered off. While an interruption holds a spot machine
        # stopped, StartInstances fails, so the state is left as it is until EC2 restarts it.
        self.state = aws.ec2transitgateway.InstanceState(
            f"{name}-state",
            instance_id=self.instance.id,
            state="running" if args.running else "stopped",
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.home_attachment],
                ignore_changes=[] if args.manage_state else ["state"],
            ),
        )
        self.instance_id = self.instance.id
        self.public_ip = self.address.public_ip
        self.public_dns = self.address.public_dns
        self.register_outputs(
            {
                "instance_id": self.instance_id,
                "public_ip": self.public_ip,
                "public_dns": self.public_dns,
            }
        )
