"""Applies the NixOS flake to the machine over SSH with pulumi-command, only when it changed.

First contact pins the machine's SSH host key (trust on first use: the official AMI makes a
fresh key at first boot and nothing outside the machine knows it); every later step connects
with that key pinned. The host flake is rendered from program-chosen values only, so it is known
at preview and copied with `CopyToRemote`; what AWS returns goes to machine.json, which the apply
step (a `remote.Command`, which unlike `CopyToRemote` accepts inputs unknown at preview) writes
from its stdin just before it applies. Both land in a staging directory, never in /etc/nixos:
the apply script (nix/scripts/apply-flake.sh) fetches the GitHub token with the instance role
itself, switches from the staging directory, verifies, rolls back, and installs the flake into
/etc/nixos (where the nightly upgrade reads it) only after a verified switch. No secret passes
through a command line.

Re-runs are decided by `triggers` alone. In pulumi-command, a trigger change replaces the
resource (running `create`); any other input change - the connection included - is an update,
which runs `update`, or `create` again when no `update` is set. So every command has an explicit,
harmless `update`, and everything that must re-run the apply is in its triggers.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import pulumi
from pulumi_command import remote

from components.binary_cache import TrustedCache
from components.host_flake import HostFlake, machine_json
from components.shared_flake import PushedFlake

REPO = Path(__file__).resolve().parent.parent
# Relative to the project directory (Pulumi's working directory), so state does not hold a
# machine-specific absolute path.
# The machine-side scripts; apply-flake.sh runs fetch-github-token.sh from beside it.
SCRIPTS_DIR = "nix/scripts"
REMOTE_DIR = "/var/lib/devserver/deploy"
# The staged host flake (flake.nix, machine.json); /etc/nixos gets it after a verified switch.
STAGE_DIR = f"{REMOTE_DIR}/host"
HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"
MACHINE_JSON = f"{STAGE_DIR}/machine.json"
# This checkout's nix/ as one text bundle, when no remote devserver:flake is set (apply unpacks it).
SHARED_BUNDLE = f"{REMOTE_DIR}/shared-flake.bundle"
# Updates (an input change that is not a trigger, e.g. a new deploy key) only read the machine.
READ_HOST_KEY = f"cat {HOST_KEY_FILE}"
# CopyToRemote creates no parent directory; an update also makes it, for machines deployed
# before the staging directory existed.
MAKE_DIRS = f"install -d -m 0700 {REMOTE_DIR} {STAGE_DIR}"
READ_CURRENT_SYSTEM = "readlink -f /run/current-system"
# apply-flake.sh keeps its last run's phase timings here; the apply's update prints them again, so
# `deployPhases` stays the last run's after an update (a new address or key) that runs nothing.
PHASES_FILE = f"{REMOTE_DIR}/last-phases"
PHASES_MARK = "DEVSERVER_PHASES "
READ_SYSTEM_AND_PHASES = f"{READ_CURRENT_SYSTEM} && {{ cat {PHASES_FILE} 2>/dev/null || true; }}"
# From stdin, written beside and renamed over, so a dropped connection never leaves half a file
# (the host-key step, which every copy and the apply come after, made the directory).
WRITE_MACHINE_JSON = (
    f"umask 077 && cat > {MACHINE_JSON}.new && mv {MACHINE_JSON}.new {MACHINE_JSON}"
)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def script_digest() -> str:
    """One digest of the machine-side scripts: changing them re-runs the apply."""
    scripts = sorted((REPO / SCRIPTS_DIR).glob("*.sh"))
    return _sha256("".join(f"{p.name}\0{p.read_text(encoding='utf-8')}" for p in scripts))


def deploy_phases(stdout: str | None) -> dict[str, object] | None:
    """The phase timings apply-flake.sh printed last (`DEVSERVER_PHASES {json}`), or None."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(PHASES_MARK):
            try:
                phases = json.loads(line.removeprefix(PHASES_MARK))
            except ValueError:
                return None
            return phases if isinstance(phases, dict) else None
    return None


def apply_command(
    host_name: str,
    user: str,
    home_device: str,
    deploy_public_key: str,
    secret_id: str | None,
    region: str,
    shared_bundle: str | None = None,
    also_update: tuple[str, ...] = (),
    binary_cache: tuple[str, str] | None = None,
) -> str:
    """The remote command line; every value is shell-quoted, and none is a secret."""
    args = [
        "bash",
        f"{REMOTE_DIR}/apply-flake.sh",
        "--host",
        host_name,
        "--user",
        user,
        "--home-device",
        home_device,
    ]
    if secret_id:
        args += ["--secret-id", secret_id, "--region", region]
    args += ["--deploy-public-key", deploy_public_key]
    if shared_bundle:
        args += ["--shared-bundle", shared_bundle]
    for name in also_update:
        args += ["--also-update", name]
    if binary_cache is not None:
        # The first switch already substitutes from it (the image's nix.conf does not name it).
        args += ["--substituter", binary_cache[0], "--trusted-public-key", binary_cache[1]]
    return shlex.join(args)


def verify_login_command(user: str) -> str:
    """Checks on the machine, as sshd would, that the developer can still log in."""
    return shlex.join(["bash", f"{REMOTE_DIR}/verify-login.sh", "--user", user])


@dataclass(frozen=True)
class FlakeDeploymentArgs:
    """Where to connect, what to render, and what must exist before the first SSH attempt."""

    host: pulumi.Input[str]
    """A stable address (the Elastic IP): it does not change when the machine stops and starts."""
    instance_id: pulumi.Input[str]
    private_key: pulumi.Output[str]
    deploy_public_key: pulumi.Output[str]
    host_flake: HostFlake
    """Known at preview: only program-chosen values."""
    home_device: pulumi.Output[str]
    depends_on: list[pulumi.Resource]
    """The machine running with its home volume and address attached."""
    pinned_host_key: pulumi.Input[str | None] = None
    """The host key this machine showed before (None: a new machine, trust on first use)."""
    pushed_flake: PushedFlake | None = None
    """This checkout's nix/, pushed when no devserver:flake is set (host flake: path:./shared)."""
    binary_cache: TrustedCache | None = None
    """The binary cache the machine substitutes from (machine.json and the first switch)."""


class FlakeDeployment(pulumi.ComponentResource):
    """Pins the host key, copies the host flake and scripts, writes machine.json and applies."""

    host_key: pulumi.Output[str]
    """The machine's SSH host key (ed25519), as first seen; pinned for every later step."""
    rendered_flake: pulumi.Output[str]
    """The host flake.nix this deployment staged on the machine (known at preview)."""
    machine_json: pulumi.Output[str]
    """The machine.json the apply step writes beside the staged flake."""
    apply: remote.Command
    """The apply step (what later steps would depend on)."""
    phases: pulumi.Output[dict[str, object] | None]
    """The last apply's seconds per phase (apply-flake.sh), or None before one ran."""

    def __init__(
        self, name: str, args: FlakeDeploymentArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("devserver:deploy:FlakeDeployment", name, None, opts)
        flake = args.host_flake
        # A fresh machine takes a minute or two to boot NixOS and start sshd: keep dialling. A
        # machine seen before (back from a stop or an interruption) is contacted with its pin.
        first_contact = remote.ConnectionArgs(
            host=args.host,
            user="root",
            private_key=args.private_key,
            host_key=args.pinned_host_key,  # type: ignore[arg-type]  # None: no pin
            dial_error_limit=60,
            per_dial_timeout=10,
        )
        prepare = remote.Command(
            f"{name}-host-key",
            connection=first_contact,
            create=f"{MAKE_DIRS} && {READ_HOST_KEY}",
            # An update keeps stdout (the pinned key) right by reading the same file again.
            update=f"{MAKE_DIRS} && {READ_HOST_KEY}",
            # A new machine is a new host key; nothing else re-runs this.
            triggers=[args.instance_id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        # pulumi-command marks every output secret because the connection (with the private key)
        # is; a host key is public, and known_hosts files and StackReference readers need it plain.
        self.host_key = pulumi.Output.unsecret(
            prepare.stdout.apply(lambda out: (out or "").strip())
        )
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
        rendered = flake.render()
        self.rendered_flake = pulumi.Output.from_input(rendered)
        cache = args.binary_cache
        cache_values: pulumi.Output[tuple[str, str] | None] = (
            pulumi.Output.all(cache.url, cache.public_key).apply(lambda v: (v[0], v[1]))
            if cache is not None
            else pulumi.Output.from_input(None)
        )
        self.machine_json = pulumi.Output.all(
            args.home_device, args.deploy_public_key, cache_values
        ).apply(lambda values: machine_json(values[0], [values[1]], values[2]))
        # What goes where: the host flake (a StringAsset known at preview: CopyToRemote's Check
        # rejects an unknown source, pulumi/pulumi-command#754), and the scripts side by side
        # (apply runs fetch). The trailing slash copies the directory's contents every time.
        files: dict[str, tuple[pulumi.Asset | pulumi.Archive, str]] = {
            "host-flake": (pulumi.StringAsset(rendered), f"{STAGE_DIR}/flake.nix"),
            "scripts": (pulumi.FileArchive(f"{SCRIPTS_DIR}/"), REMOTE_DIR),
        }
        pushed = args.pushed_flake
        if pushed is not None:
            # Text, so `pulumi preview --diff` shows each changed line of nix/.
            files["shared-flake"] = (pulumi.StringAsset(pushed.bundle), SHARED_BUNDLE)
        copies: list[pulumi.Resource] = [
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
        command = pulumi.Output.all(args.home_device, args.deploy_public_key, cache_values).apply(
            lambda values: apply_command(
                flake.hostName,
                flake.user,
                values[0],
                values[1],
                flake.tokenSecretId,
                flake.region,
                SHARED_BUNDLE if pushed is not None else None,
                # A re-apply takes the personal flake's current commit, like the shared one's.
                ("personal",) if flake.personalFlake else (),
                values[2],
            )
        )
        # machine.json first (from stdin: no quoting), then the switch that reads it.
        create = command.apply(lambda line: f"{WRITE_MACHINE_JSON} && {line}")
        # Re-apply exactly when what the machine is built from changes: the rendered host flake
        # (which holds the shared flake reference), machine.json, the scripts, the command line,
        # the pushed nix/ (its digest), or the machine itself. Never on an address or connection
        # change (that is an update).
        triggers: list[pulumi.Input[str]] = [
            _sha256(rendered),
            self.machine_json.apply(_sha256),
            script_digest(),
            args.instance_id,
            command,
        ]
        if pushed is not None:
            triggers.append(f"nix/ sha256={pushed.digest}")
        self.apply = remote.Command(
            f"{name}-apply",
            connection=pinned,
            create=create,
            stdin=self.machine_json,
            update=READ_SYSTEM_AND_PHASES,
            triggers=triggers,
            logging=remote.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*copies, *args.depends_on]),
        )
        # A fresh SSH connection after the switch proves the deploy path still gets in, and the
        # script checks the developer's login as sshd would.
        remote.Command(
            f"{name}-verify-login",
            connection=pinned,
            create=verify_login_command(flake.user),
            update=READ_CURRENT_SYSTEM,
            triggers=triggers,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.apply]),
        )
        # Plain: timings are no secret, though pulumi-command marks every output secret.
        self.phases = pulumi.Output.unsecret(self.apply.stdout.apply(deploy_phases))
        self.register_outputs(
            {
                "host_key": self.host_key,
                "rendered_flake": self.rendered_flake,
                "machine_json": self.machine_json,
            }
        )
