# One server's settings, assembled from the checked values of its keys.

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components.settings.declaration import SERVER, run_rules
from components.settings.keys import KEYS
from components.settings.model import (
    AwsAccess,
    DevServerSettings,
    HomeSettings,
    ImageSettings,
    NetworkSettings,
)
from components.settings.nix import DEFAULT_NIXOS_RELEASE
from components.settings.reader import Context, Reader


@dataclass(frozen=True)
class Shared:
    """What the stack-wide keys give every server."""

    github_token: pulumi.Output[str] | None
    token_kms_key_arn: str | None
    ebs_kms_key_arn: str | None = None
    aws_access: AwsAccess = field(default_factory=lambda: AwsAccess())
    deploy_public_key: str | None = None
    permissions_boundary: str | None = None


def build(r: Reader, ctx: Context, name: str, shared: Shared) -> DevServerSettings | None:
    """Check every per-server key; the settings, or None when any problem was found."""
    v = run_rules(KEYS, SERVER, r, ctx)
    machine = v["preset"]  # the machine keys' one rule returns the whole MachineSpec
    user, github_user, flake = v["user"], v["githubUser"], v["flake"]
    size_key = r.label("homeVolumeGiB") if r.source.get("homeVolumeGiB") is not None else None
    if machine is None or not (user and github_user) or r.errors:
        return None
    return DevServerSettings(
        name=name,
        host_name=v["hostName"] or ctx.default_host,
        user=user,
        full_name=v["fullName"] or user,
        email=v["email"] or f"{github_user}@users.noreply.github.com",
        github_user=github_user,
        flake=flake or None,
        region=ctx.region,
        stack=ctx.stack,
        machine=machine,
        network=NetworkSettings(
            v["sshAllowedCidrs"], v["vpcId"], v["subnetId"], v["availabilityZone"]
        ),
        image=ImageSettings(v["nixosRelease"] or DEFAULT_NIXOS_RELEASE, v["amiId"]),
        home=HomeSettings(v["homeVolumeProtect"] is not False, v["homeVolumeId"], size_key),
        deploy=v["deploy"] is not False,
        personal_flake=v["personalFlake"],
        github_token=shared.github_token,
        token_kms_key_arn=shared.token_kms_key_arn,
        idle_stop_minutes=v["idleStopMinutes"] or 0,
        running=v["state"] != "stopped",
        rebuild=v["rebuild"] or 0,
        ssm_session_manager=v["ssmSessionManager"] is not False,
        ebs_kms_key_arn=shared.ebs_kms_key_arn,
        aws_access=shared.aws_access,
        deploy_public_key=shared.deploy_public_key,
        permissions_boundary=shared.permissions_boundary,
        config_prefix=ctx.prefix,
        github_user_id=v["githubUserId"],
        binary_cache=v["binaryCache"],
    )
