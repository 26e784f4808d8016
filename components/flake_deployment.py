"""Applies the NixOS flake to the machine over SSH with pulumi-command, only when it changed.

First contact pins the machine's SSH host key (trust on first use: the official AMI makes a
fresh key at first boot and nothing outside the machine knows it); every later step connects
with that key pinned. The host flake is rendered here and copied to /etc/nixos; the apply
script (nix/scripts/apply-flake.sh) fetches the GitHub token with the instance role itself,
switches, verifies and rolls back. No secret passes through a command line: the token never
leaves AWS and the machine, and the deploy key only travels inside the (secret) connection.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path

import pulumi
from pulumi_command import remote

from components.host_flake import HostFlake

REPO = Path(__file__).resolve().parent.parent
# Relative to the project directory (Pulumi's working directory), so state does not hold a
# machine-specific absolute path.
# The machine-side scripts; apply-flake.sh runs fetch-github-token.sh from beside it.
SCRIPTS_DIR = "nix/scripts"
REMOTE_DIR = "/var/lib/devserver/deploy"
HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def script_digest() -> str:
    """One digest of the machine-side scripts: changing them re-runs the apply."""
    scripts = sorted((REPO / SCRIPTS_DIR).glob("*.sh"))
    return _sha256("".join(f"{p.name}\0{p.read_text(encoding='utf-8')}" for p in scripts))


def apply_command(
    host_name: str,
    home_device: str,
    deploy_public_key: str,
    secret_arn: str | None,
    region: str,
) -> str:
    """The remote command line; every value is shell-quoted, and none is a secret."""
    args = [
        "bash",
        f"{REMOTE_DIR}/apply-flake.sh",
        "--host",
        host_name,
        "--home-device",
        home_device,
    ]
    if secret_arn:
        args += ["--secret-id", secret_arn, "--region", region]
    args += ["--deploy-public-key", deploy_public_key]
    return shlex.join(args)


@dataclass(frozen=True)
class FlakeDeploymentArgs:
    """Where to connect, what to render, and what must exist before the first SSH attempt."""

    host: pulumi.Input[str]
    instance_id: pulumi.Input[str]
    private_key: pulumi.Output[str]
    deploy_public_key: pulumi.Output[str]
    host_flake: pulumi.Output[HostFlake]
    depends_on: list[pulumi.Resource]


class FlakeDeployment(pulumi.ComponentResource):
    """Pins the host key, copies the host flake and scripts, and applies the flake."""

    host_key: pulumi.Output[str]
    """The machine's SSH host key (ed25519), as first seen; pinned for every later step."""
    rendered_flake: pulumi.Output[str]
    """The /etc/nixos/flake.nix this deployment put on the machine."""
    apply: remote.Command
    """The apply step (what later steps would depend on)."""

    def __init__(
        self, name: str, args: FlakeDeploymentArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("devserver:deploy:FlakeDeployment", name, None, opts)
        # A fresh machine takes a minute or two to boot NixOS and start sshd: keep dialling.
        first_contact = remote.ConnectionArgs(
            host=args.host,
            user="root",
            private_key=args.private_key,
            dial_error_limit=60,
            per_dial_timeout=10,
        )
        prepare = remote.Command(
            f"{name}-host-key",
            connection=first_contact,
            create=f"install -d -m 0700 {REMOTE_DIR} && cat {HOST_KEY_FILE}",
            # A new machine is a new host key; nothing else re-runs this.
            triggers=[args.instance_id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.host_key = prepare.stdout.apply(lambda out: (out or "").strip())
        # One connection for everything after first contact: the host key is pinned.
        pinned = remote.ConnectionArgs(
            host=args.host,
            user="root",
            private_key=args.private_key,
            host_key=self.host_key,
            dial_error_limit=10,
            per_dial_timeout=10,
        )
        after_prepare = pulumi.ResourceOptions(parent=self, depends_on=[prepare])
        self.rendered_flake = args.host_flake.apply(lambda flake: flake.render())
        # What goes where: the host flake, and the scripts side by side (apply runs fetch). The
        # trailing slash copies the directory's contents, on the first copy and on every later one.
        files: dict[str, tuple[pulumi.Input[pulumi.Asset | pulumi.Archive], str]] = {
            "host-flake": (self.rendered_flake.apply(pulumi.StringAsset), "/etc/nixos/flake.nix"),
            "scripts": (pulumi.FileArchive(f"{SCRIPTS_DIR}/"), REMOTE_DIR),
        }
        copies = [
            remote.CopyToRemote(
                f"{name}-{role}",
                connection=pinned,
                source=source,
                remote_path=remote_path,
                triggers=[args.instance_id],
                opts=after_prepare,
            )
            for role, (source, remote_path) in files.items()
        ]
        command = pulumi.Output.all(args.host_flake, args.deploy_public_key).apply(
            lambda values: apply_command(
                values[0].hostName,
                values[0].homeDevice,
                values[1],
                values[0].tokenSecretArn,
                values[0].region,
            )
        )
        # Re-apply exactly when what the machine is built from changes: the rendered host flake
        # (which holds the shared flake reference), the scripts, or the machine itself.
        triggers: list[pulumi.Input[str]] = [
            self.rendered_flake.apply(_sha256),
            args.host_flake.apply(lambda flake: flake.sharedFlake),
            script_digest(),
            args.instance_id,
        ]
        self.apply = remote.Command(
            f"{name}-apply",
            connection=pinned,
            create=command,
            triggers=triggers,
            logging=remote.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*copies, *args.depends_on]),
        )
        # A fresh SSH connection after the switch proves the deploy path still gets in.
        remote.Command(
            f"{name}-verify-login",
            connection=pinned,
            create="nixos-version && systemctl is-active sshd.service sshd.socket | grep -qx active",  # noqa: E501
            triggers=triggers,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.apply]),
        )
        self.register_outputs({"host_key": self.host_key, "rendered_flake": self.rendered_flake})
