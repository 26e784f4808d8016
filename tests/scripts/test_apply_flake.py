"""nix/scripts/apply-flake.sh with fake nixos-rebuild, nix-env, nix, nix-build, nixos-version,
systemd-run, systemctl, findmnt, getent and sshd on PATH.

The fakes record their calls; the profile is a real symlink chain like /nix/var/nix/profiles. The
post-switch check is the real verify-login.sh: it runs the keys command sshd -T reports as a real
unprivileged user (setpriv), so these tests need root, like the machine."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.scripts.aws_support import (
    APPLY_SCRIPT,
    FAKE_TOKEN,
    FETCH_SCRIPT,
    REGION,
    MotoServer,
    clean_aws_env,
)

DEPLOY_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeDeployKeyForTestsOnly pulumi-deploy"
# nixos-rebuild fails while building: nothing was activated, the profile did not move.
BUILD_FAILS = {"FAKE_REBUILD_EXIT": "1", "FAKE_REBUILD_NEW_GENERATION": "0"}
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:devserver-github-token-AbCdEf"
VERIFY_SCRIPT = APPLY_SCRIPT.parent / "verify-login.sh"
USER = "alice"
USER_UID = 4242
# A root-owned command under root-owned 0755 directories (sshd's safe_path), printing a fake key.
USER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeUserKeyForTestsOnly"
GOOD_KEYS_COMMAND = f"/bin/echo {USER_KEY} %u"
LOCKED_NIXPKGS = "github:NixOS/nixpkgs/3333333333333333333333333333333333333333"
OLD_LOCK = '{"version": 7, "note": "lock before this apply"}\n'
UPDATED_LOCK = '{"version": 7, "note": "shared input updated"}\n'
# What /etc/nixos holds before the apply, and what Pulumi staged for it.
OLD_FLAKE = "{ outputs = _: { }; } # the flake the running system was built from\n"
NEW_FLAKE = "{ outputs = _: { }; } # the flake this apply stages\n"
OLD_MACHINE_JSON = '{"homeDevice": "/dev/old"}\n'
NEW_MACHINE_JSON = '{"homeDevice": "/dev/new"}\n'
NIXOS_REVISION = "4444444444444444444444444444444444444444"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="verify-login.sh runs the keys command as another user (needs root)"
)

# Each fake appends "name args" to $FAKE_CALLS; behaviour comes from FAKE_* variables.
FAKES = {
    "nixos-rebuild": r"""
echo "nixos-rebuild $*" >> "$FAKE_CALLS"
echo "building the system configuration... (fake nixos-rebuild)"
if [[ -n ${NIX_USER_CONF_FILES:-} ]]; then
  cp "$NIX_USER_CONF_FILES" "$FAKE_RECORD/deploy.conf"
  stat -c %a "$NIX_USER_CONF_FILES" > "$FAKE_RECORD/deploy.conf.mode"
  echo "$NIX_USER_CONF_FILES" > "$FAKE_RECORD/NIX_USER_CONF_FILES"
  if [[ -n ${FAKE_RUN_REAL_NIX:-} ]]; then nix show-config > "$FAKE_RECORD/nix-show-config"; fi
fi
printf '%s\n' "$@" > "$FAKE_RECORD/rebuild.argv"
env > "$FAKE_RECORD/rebuild.env"
sleep "${FAKE_BUILD_SECONDS:-0}"
if [[ ${FAKE_REBUILD_NEW_GENERATION:-1} == 1 ]]; then
  profile=$DEVSERVER_SYSTEM_PROFILE
  mkdir -p "$profile-gen2/bin"
  printf '#!/bin/bash\necho "gen2/switch-to-configuration $*" >> "$FAKE_CALLS"\n' \
    > "$profile-gen2/bin/switch-to-configuration"
  chmod +x "$profile-gen2/bin/switch-to-configuration"
  ln -sfn "$profile-gen2" "$profile-2-link"
  ln -sfn "$(basename "$profile")-2-link" "$profile"
fi
# nixos-rebuild sets the profile after the build, then runs switch-to-configuration.
sleep "${FAKE_ACTIVATION_SECONDS:-0}"
if [[ ${FAKE_REBUILD_EXIT:-0} != 0 ]]; then
  echo "error: fake activation failure from nixos-rebuild" >&2
fi
exit "${FAKE_REBUILD_EXIT:-0}"
""",
    "nix-env": r"""
echo "nix-env $*" >> "$FAKE_CALLS"
[[ $1 == --profile && $3 == --switch-generation ]] || exit 9
ln -sfn "$(basename "$2")-$4-link" "$2"
""",
    # ActiveState of nixos-upgrade.service comes from a file a test may change while it runs.
    "systemctl": r"""
echo "systemctl $*" >> "$FAKE_CALLS"
if [[ $* == "show --property=ActiveState --value nixos-upgrade.service" ]]; then
  cat "$FAKE_UPGRADE_STATE_FILE" 2>/dev/null || echo inactive
  exit 0
fi
if [[ $1 == list-units ]]; then
  [[ -z ${FAKE_FAILED_UNITS:-} ]] || echo "$FAKE_FAILED_UNITS loaded failed failed Home"
  exit 0
fi
[[ $1 == stop ]] && exit 0
[[ $* == "is-active --quiet sshd.service" && ${FAKE_SSHD:-active} == active ]]
""",
    # --mountpoint /home prints the mount's source; --target PATH the mount point holding PATH.
    "findmnt": r"""
echo "findmnt $*" >> "$FAKE_CALLS"
[[ -n ${FAKE_HOME_SOURCE:-} ]] || { [[ $* == *--target* ]] && echo /; exit 1; }
if [[ $* == *--target* ]]; then echo /home; else echo "$FAKE_HOME_SOURCE"; fi
""",
    "sshd": r"""
echo "sshd $*" >> "$FAKE_CALLS"
[[ $1 == -T ]] || exit 9
echo "permitrootlogin ${FAKE_PERMITROOTLOGIN:-prohibit-password}"
echo "pubkeyauthentication ${FAKE_PUBKEYAUTH:-yes}"
echo "authorizedkeysfile .ssh/authorized_keys $FAKE_ETC/ssh/authorized_keys.d/%u"
echo "authorizedkeyscommand $FAKE_KEYS_COMMAND"
echo "authorizedkeyscommanduser nobody"
""",
    # The developer's account; every other name is looked up for real (nobody).
    "getent": r"""
if [[ $1 == passwd && ${2:-} == "$FAKE_USER" ]]; then
  echo "$FAKE_USER:x:$FAKE_USER_UID:100:Alice:$FAKE_USER_HOME:/bin/bash"
  exit 0
fi
if [[ $* == passwd ]]; then
  /usr/bin/getent passwd
  echo "$FAKE_USER:x:$FAKE_USER_UID:100:Alice:$FAKE_USER_HOME:/bin/bash"
  # What a fresh EC2 image does: amazon-ssm-agent's ssm-user took the uid first.
  if [[ -n ${FAKE_SSM_USER_UID:-} ]]; then
    echo "ssm-user:x:$FAKE_SSM_USER_UID:$FAKE_SSM_USER_UID::/home/ssm-user:/bin/sh"
  fi
  exit 0
fi
exec /usr/bin/getent "$@"
""",
    # Flake update writes a recognisable flake.lock; eval/build stand in for the awscli2 build.
    "nix": r"""
echo "nix $*" >> "$FAKE_CALLS"
case "$1 ${2:-}" in
"show-config "*) exec "$FAKE_REAL_NIX" "$@" ;;
"--version ") echo "nix (Nix) ${FAKE_NIX_VERSION:-2.28.3}" ;;
"flake update")
  [[ ${FAKE_NIX_UPDATE_EXIT:-0} == 0 ]] || { echo "error: fake update failure" >&2; exit 1; }
  # What a pushed shared flake looks like when Nix re-locks it (its lock is read then).
  if [[ -e $5/shared/flake.lock ]]; then cp "$5/shared/flake.lock" "$FAKE_RECORD/shared.lock"; fi
  if [[ -e $5/shared/flake.nix ]]; then cp "$5/shared/flake.nix" "$FAKE_RECORD/shared.flake.nix"; fi
  printf '%s\n' '{"version": 7, "note": "shared input updated"}' > "$5/flake.lock" ;;
"eval "*)
  # The real `nix eval` runs: it never calls a --file's top-level function with --arg/--argstr
  # (src/nix/eval.cc@88b09c64fb: toValue(AutoCall::No)), so --raw on one fails "cannot coerce
  # a function to a string", as on the machine.
  exec "$FAKE_REAL_NIX" --extra-experimental-features nix-command "$@" ;;
"build --no-link")
  [[ ${FAKE_NIX_BUILD_EXIT:-0} == 0 ]] || { echo "error: fake build failure" >&2; exit 1; }
  echo "$FAKE_AWSCLI_OUT" ;;
*) exit 9 ;;
esac
""",
    # nixos-version(8): --revision prints system.nixos.revision, or fails when it is unknown.
    "nixos-version": r"""
echo "nixos-version $*" >> "$FAKE_CALLS"
[[ $1 == --revision ]] || exit 9
if [[ -z ${FAKE_NIXOS_REVISION:-} ]]; then
  echo "$0: Nixpkgs commit hash is unknown" >&2
  exit 1
fi
echo "$FAKE_NIXOS_REVISION"
""",
    "nix-build": r"""
echo "nix-build $*" >> "$FAKE_CALLS"
[[ ${FAKE_CHANNEL_BUILD_EXIT:-0} == 0 ]] || { echo "error: file 'nixpkgs' was not found" >&2; exit 1; }
echo "$FAKE_AWSCLI_OUT"
""",
    # Records its options and the inherited NIXOS_INSTALL_BOOTLOADER, then runs the command.
    "systemd-run": r"""
echo "systemd-run $* (NIXOS_INSTALL_BOOTLOADER=${NIXOS_INSTALL_BOOTLOADER-unset})" >> "$FAKE_CALLS"
while (($# > 0)); do
  case $1 in
  -E) shift 2 ;;
  -*) shift ;;
  *) break ;;
  esac
done
exec "$@"
""",
    # The token script is a fake too; this only makes the machine look like it has an AWS CLI.
    "aws": 'echo "aws $*" >> "$FAKE_CALLS"\nexit 1\n',
}

FAKE_TOKEN_SCRIPT = r"""
echo "token-script $*" >> "$FAKE_CALLS"
echo "aws at $(command -v aws || echo none)" >> "$FAKE_CALLS"
[[ ${FAKE_TOKEN_EXIT:-0} == 0 ]] || exit "$FAKE_TOKEN_EXIT"
umask 077
printf 'access-tokens = github.com=%s\n' "__TOKEN__" > "$6"
chmod 0400 "$6"
"""


@dataclass
class Machine:
    """A fake dev server: fakes on PATH, a system profile, /etc/nixos, root's home, /run."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def calls_file(self) -> Path:
        return self.root / "calls.log"

    @property
    def record(self) -> Path:
        return self.root / "record"

    @property
    def profile(self) -> Path:
        return self.root / "profiles" / "system"

    @property
    def run_dir(self) -> Path:
        return self.root / "run" / "devserver"

    @property
    def home_device(self) -> Path:
        return self.root / "dev" / "disk" / "by-id" / "nvme-Amazon_Elastic_Block_Store_volfake"

    @property
    def token_script(self) -> Path:
        return self.root / "deploy" / "fetch-github-token.sh"

    @property
    def etc_nixos(self) -> Path:
        return self.root / "etc" / "nixos"

    @property
    def lock_file(self) -> Path:
        return self.etc_nixos / "flake.lock"

    @property
    def stage(self) -> Path:
        """Where Pulumi copies flake.nix and writes machine.json."""
        return self.root / "deploy" / "host"

    def etc_nixos_files(self) -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted(self.etc_nixos.iterdir())}

    def calls(self) -> list[str]:
        return self.calls_file.read_text().splitlines() if self.calls_file.exists() else []

    def apply(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(APPLY_SCRIPT), "--host", "devbox", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )


def _executable(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/bash\nset -euo pipefail\n" + body)
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return make_machine(tmp_path)


def make_machine(tmp_path: Path) -> Machine:
    """A fake dev server running generation 1, with a staged host flake (also used by the replay)."""
    m = Machine(tmp_path)
    for name, body in FAKES.items():
        _executable(tmp_path / "bin" / name, body)
    # The token is baked into the fake so no test variable carries it into the environment.
    _executable(m.token_script, FAKE_TOKEN_SCRIPT.replace("__TOKEN__", FAKE_TOKEN))
    m.record.mkdir()
    # Generation 1 is what the machine runs before the deploy.
    gen1 = m.profile.parent / "system-gen1"
    _executable(
        gen1 / "bin" / "switch-to-configuration",
        'echo "gen1/switch-to-configuration $*" >> "$FAKE_CALLS"\n',
    )
    (m.profile.parent / "system-1-link").symlink_to(gen1)
    m.profile.symlink_to("system-1-link")
    m.etc_nixos.mkdir(parents=True)
    (m.etc_nixos / "flake.nix").write_text(OLD_FLAKE)
    (m.etc_nixos / "machine.json").write_text(OLD_MACHINE_JSON)
    m.stage.mkdir(parents=True)
    (m.stage / "flake.nix").write_text(NEW_FLAKE)
    (m.stage / "machine.json").write_text(NEW_MACHINE_JSON)
    (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    m.home_device.parent.mkdir(parents=True)
    m.home_device.touch()
    user_home = tmp_path / "home" / USER
    user_home.mkdir(parents=True)
    os.chown(user_home, USER_UID, 100)
    root_home = tmp_path / "root"
    (root_home / ".ssh").mkdir(parents=True)
    (root_home / ".ssh" / "authorized_keys").write_text(DEPLOY_KEY + "\n")
    m.env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        "HOME": str(root_home),
        "LANG": "C.UTF-8",
        "FAKE_CALLS": str(m.calls_file),
        "FAKE_RECORD": str(m.record),
        "FAKE_ETC": str(tmp_path / "etc"),
        "FAKE_HOME_SOURCE": str(m.home_device),
        "DEVSERVER_FLAKE_DIR": str(tmp_path / "etc" / "nixos"),
        "DEVSERVER_STAGE_DIR": str(m.stage),
        "DEVSERVER_SYSTEMD_DIR": str(tmp_path / "run" / "systemd" / "system"),
        "DEVSERVER_SYSTEM_PROFILE": str(m.profile),
        "DEVSERVER_RUN_DIR": str(m.run_dir),
        "DEVSERVER_ROOT_HOME": str(root_home),
        "DEVSERVER_HOME_DEVICE_TIMEOUT": "5",
        "DEVSERVER_HOME_DEVICE_POLL": "0.1",
        "DEVSERVER_LOCK_POLL": "0.1",
        "DEVSERVER_PHASES_FILE": str(tmp_path / "deploy" / "last-phases"),
        "DEVSERVER_UPTIME_FILE": str(tmp_path / "uptime"),
        "FAKE_UPGRADE_STATE_FILE": str(tmp_path / "upgrade-state"),
        "FAKE_USER": USER,
        "FAKE_USER_UID": str(USER_UID),
        "FAKE_USER_HOME": str(user_home),
        "FAKE_KEYS_COMMAND": GOOD_KEYS_COMMAND,
        "FAKE_REAL_NIX": shutil.which("nix") or "/nonexistent/nix",
    }
    m.lock_file.write_text(OLD_LOCK)
    # /proc/uptime: seconds since boot, then idle seconds (proc(5)).
    (tmp_path / "uptime").write_text("41.73 150.20\n")
    return m


def full_args(m: Machine) -> list[str]:
    return ["--user", USER, "--home-device", str(m.home_device), "--deploy-public-key", DEPLOY_KEY]


def assert_rolled_back(m: Machine, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 5, result.stderr
    assert str(m.profile.readlink()) == "system-1-link", "profile must be the recorded generation"
    calls = m.calls()
    assert f"nix-env --profile {m.profile} --switch-generation 1" in calls, calls
    assert "gen1/switch-to-configuration switch" in calls, calls
    assert "previous generation system-1-link is active again" in result.stderr
    assert m.etc_nixos_files() == {
        "flake.lock": OLD_LOCK,
        "flake.nix": OLD_FLAKE,
        "machine.json": OLD_MACHINE_JSON,
    }, "a rejected flake must not reach /etc/nixos, where the nightly upgrade would build it"


def test_success_switches_to_the_host_flake_verifies_and_keeps_the_new_generation(
    machine: Machine,
) -> None:
    result = machine.apply(*full_args(machine))

    assert result.returncode == 0, result.stderr
    calls = machine.calls()
    assert f"nixos-rebuild switch --flake {machine.stage}#devbox" in calls, calls
    assert not [c for c in calls if c.startswith("nix-env")], "no rollback on success"
    assert str(machine.profile.readlink()) == "system-2-link"
    assert "building the system configuration" in result.stdout, "rebuild output is streamed"
    assert "[apply-flake] ==> verifying" in result.stderr


def test_only_a_verified_switch_installs_the_staged_flake_into_etc_nixos(machine: Machine) -> None:
    result = machine.apply(*full_args(machine))

    assert result.returncode == 0, result.stderr
    assert machine.etc_nixos_files() == {
        "flake.lock": UPDATED_LOCK,
        "flake.nix": NEW_FLAKE,
        "machine.json": NEW_MACHINE_JSON,
    }, "/etc/nixos must hold exactly what was switched to and verified"
    for name in ("flake.lock", "flake.nix", "machine.json"):
        mode = stat.S_IMODE((machine.etc_nixos / name).stat().st_mode)
        assert mode == 0o644, f"/etc/nixos/{name} has mode {mode:o}"
    verified = result.stderr.index("ok: alice and root can log in")
    assert verified < result.stderr.index("installing the verified host flake"), result.stderr


def test_a_leftover_from_an_interrupted_install_is_not_installed(machine: Machine) -> None:
    # No flake.lock anywhere before the run, but a stale .flake.lock.new from a crashed install.
    machine.lock_file.unlink()
    (machine.etc_nixos / ".flake.lock.new").write_text("stale\n")

    result = machine.apply(*full_args(machine))

    assert result.returncode == 0, result.stderr
    assert machine.lock_file.read_text() == UPDATED_LOCK
    assert not list(machine.etc_nixos.glob(".*.new")), "no temporary file is left in /etc/nixos"


def test_failed_build_that_left_the_profile_alone_exits_with_its_error_and_no_rollback(
    machine: Machine,
) -> None:
    result = machine.apply(*full_args(machine), **BUILD_FAILS)

    assert result.returncode == 4
    assert "error: fake activation failure from nixos-rebuild" in result.stderr
    assert "system-1-link is still active" in result.stderr
    assert not [c for c in machine.calls() if "nix-env" in c or "switch-to-configuration" in c]


def test_failed_activation_that_moved_the_profile_rolls_back_to_the_recorded_generation(
    machine: Machine,
) -> None:
    result = machine.apply(*full_args(machine), FAKE_REBUILD_EXIT="4")

    assert_rolled_back(machine, result)
    assert "nixos-rebuild switch failed (exit 4)" in result.stderr


def test_rollback_activates_in_its_own_unit_so_a_dropped_ssh_session_cannot_cut_it(
    machine: Machine,
) -> None:
    result = machine.apply(*full_args(machine), FAKE_REBUILD_EXIT="4")

    assert_rolled_back(machine, result)
    calls = machine.calls()
    # nixos-rebuild-ng's SWITCH_TO_CONFIGURATION_CMD_PREFIX, with --wait spelled out.
    unit = (
        "systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER --collect --no-ask-password"
        " --pipe --quiet --wait --service-type=exec --unit=nixos-rebuild-switch-to-configuration"
        f" {machine.profile}/bin/switch-to-configuration switch (NIXOS_INSTALL_BOOTLOADER=0)"
    )
    assert unit in calls, calls
    assert calls.index(unit) < calls.index("gen1/switch-to-configuration switch")


def test_rollback_without_systemd_runs_the_activation_directly(machine: Machine) -> None:
    result = machine.apply(
        *full_args(machine), FAKE_REBUILD_EXIT="4", DEVSERVER_SYSTEMD_DIR="/nonexistent"
    )

    assert_rolled_back(machine, result)
    assert not [c for c in machine.calls() if c.startswith("systemd-run")]


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"FAKE_SSHD": "inactive"}, "sshd is not active"),
        ({"FAKE_HOME_SOURCE": ""}, "/home is not a mount point"),
        ({"FAKE_HOME_SOURCE": "/dev/nvme0n1p1"}, "not from the home volume"),
        ({"FAKE_PERMITROOTLOGIN": "no"}, "refuse root logins"),
        ({"FAKE_PUBKEYAUTH": "no"}, "public key authentication is off"),
        ({"DEVSERVER_ROOT_HOME": "/nonexistent-root-home"}, "deploy public key is in none"),
    ],
    ids=["sshd-down", "no-home", "home-elsewhere", "no-root-login", "no-pubkey", "key-gone"],
)
def test_new_system_that_breaks_the_deploy_path_is_rolled_back(
    machine: Machine, fault: dict[str, str], message: str
) -> None:
    result = machine.apply(*full_args(machine), **fault)

    assert_rolled_back(machine, result)
    assert message in result.stderr
    assert "failed verification" in result.stderr.strip().splitlines()[-1]


def test_deploy_key_is_also_found_in_the_nixos_authorized_keys_dir(machine: Machine) -> None:
    # NixOS puts users.users.root.openssh.authorizedKeys into /etc/ssh/authorized_keys.d/%u.
    keys_dir = Path(machine.env["FAKE_ETC"]) / "ssh" / "authorized_keys.d"
    keys_dir.mkdir(parents=True)
    (keys_dir / "root").write_text(DEPLOY_KEY + "\n")

    result = machine.apply(*full_args(machine), DEVSERVER_ROOT_HOME="/nonexistent-root-home")

    assert result.returncode == 0, result.stderr
    assert f"deploy key found in {keys_dir / 'root'}" in result.stderr


def test_home_device_that_never_appears_stops_before_any_rebuild(machine: Machine) -> None:
    machine.home_device.unlink()
    started = time.monotonic()

    result = machine.apply(*full_args(machine), DEVSERVER_HOME_DEVICE_TIMEOUT="2")

    assert result.returncode == 2
    elapsed = time.monotonic() - started
    # bash's SECONDS ticks in whole seconds: a 2 s timeout waits between 1 and 2 s.
    assert 1 <= elapsed < 3.5, f"waited {elapsed:.1f}s for a 2s timeout"
    assert f"home volume device {machine.home_device} did not appear within 2s" in result.stderr
    assert not [c for c in machine.calls() if c.startswith("nixos-rebuild")]


def test_home_device_that_appears_late_is_waited_for(machine: Machine) -> None:
    machine.home_device.unlink()
    timer = threading.Timer(1.0, machine.home_device.touch)
    timer.start()
    try:
        result = machine.apply(*full_args(machine))
    finally:
        timer.cancel()

    assert result.returncode == 0, result.stderr


def test_a_running_nightly_upgrade_is_waited_for_before_anything_changes(
    machine: Machine,
) -> None:
    state = Path(machine.env["FAKE_UPGRADE_STATE_FILE"])
    state.write_text("active\n")
    timer = threading.Timer(1.0, state.write_text, args=("inactive\n",))
    timer.start()
    started = time.monotonic()
    try:
        result = machine.apply(*full_args(machine))
    finally:
        timer.cancel()

    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 0.9, "the apply did not wait for nixos-upgrade"
    calls = machine.calls()
    first_change = next(i for i, c in enumerate(calls) if c.startswith("nix "))
    polls = [i for i, c in enumerate(calls) if "ActiveState" in c]
    assert len(polls) >= 2 and max(polls) < first_change, calls


def test_a_nightly_upgrade_that_never_ends_stops_the_apply_with_nothing_changed(
    machine: Machine,
) -> None:
    Path(machine.env["FAKE_UPGRADE_STATE_FILE"]).write_text("activating\n")

    result = machine.apply(*full_args(machine), DEVSERVER_LOCK_TIMEOUT="1")

    assert result.returncode == 10, result.stderr
    assert "nixos-upgrade.service is still activating after 1s" in result.stderr
    assert not [c for c in machine.calls() if c.startswith(("nix ", "nixos-rebuild"))]


def test_apply_waits_for_the_deploy_lock_another_writer_holds(machine: Machine) -> None:
    machine.run_dir.mkdir(parents=True)
    with (machine.run_dir / "deploy.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = machine.apply(*full_args(machine), DEVSERVER_LOCK_TIMEOUT="1")

    assert result.returncode == 10, result.stderr
    assert "another deployment still holds" in result.stderr
    assert not [c for c in machine.calls() if c.startswith(("nix ", "nixos-rebuild"))]
    assert machine.etc_nixos_files()["flake.nix"] == OLD_FLAKE


def test_secret_is_fetched_and_reaches_nix_only_through_a_root_only_conf_file(
    machine: Machine,
) -> None:
    result = machine.apply(
        *full_args(machine),
        "--secret-id",
        SECRET_ARN,
        "--region",
        REGION,
        "--token-script",
        str(machine.token_script),
    )

    assert result.returncode == 0, result.stderr
    token_file = machine.run_dir / "nix-access-tokens.conf"
    deploy_conf = machine.run_dir / "nix-deploy.conf"
    assert (
        f"token-script --secret-id {SECRET_ARN} --region {REGION} --output {token_file}"
        in machine.calls()
    )
    assert (machine.record / "NIX_USER_CONF_FILES").read_text().strip() == str(deploy_conf)
    assert (machine.record / "deploy.conf").read_text() == (
        f"experimental-features = nix-command flakes\n!include {token_file}\n"
    )
    assert (machine.record / "deploy.conf.mode").read_text().strip() == "400"
    assert FAKE_TOKEN not in (machine.record / "rebuild.argv").read_text()
    assert FAKE_TOKEN not in (machine.record / "rebuild.env").read_text()
    assert FAKE_TOKEN not in result.stdout + result.stderr
    assert not deploy_conf.exists(), "the deploy conf is removed on exit"
    assert token_file.read_text() == f"access-tokens = github.com={FAKE_TOKEN}\n"


def test_failed_token_fetch_stops_before_any_rebuild(machine: Machine) -> None:
    result = machine.apply(
        *full_args(machine),
        *("--secret-id", SECRET_ARN, "--region", REGION),
        *("--token-script", str(machine.token_script)),
        FAKE_TOKEN_EXIT="1",
    )

    assert result.returncode == 3
    assert f"could not fetch the GitHub token from {SECRET_ARN}" in result.stderr
    assert not [c for c in machine.calls() if c.startswith("nixos-rebuild")]


def test_deploy_conf_is_removed_even_when_the_rebuild_fails(machine: Machine) -> None:
    result = machine.apply(*full_args(machine), **BUILD_FAILS)

    assert result.returncode == 4
    assert (machine.record / "deploy.conf").exists(), "the rebuild saw the conf"
    # The lock file stays: removing a flock(2) file lets two writers lock two different files.
    assert [p.name for p in machine.run_dir.iterdir()] == ["deploy.lock"]


def _without_aws_cli(machine: Machine) -> Path:
    if shutil.which("aws", path="/usr/bin:/bin"):
        pytest.skip("an aws CLI in /usr/bin or /bin would be found before the nixpkgs one")
    (machine.root / "bin" / "aws").unlink()
    awscli = machine.root / "nix" / "store" / "fake-awscli2"
    _executable(awscli / "bin" / "aws", "exit 0\n")
    return awscli


def test_missing_aws_cli_is_built_from_the_host_flakes_locked_nixpkgs(machine: Machine) -> None:
    awscli = _without_aws_cli(machine)
    machine.lock_file.write_text(json.dumps(PINNED_HOST_LOCK))

    result = machine.apply(
        *full_args(machine),
        *("--secret-id", SECRET_ARN, "--region", REGION),
        *("--token-script", str(machine.token_script)),
        FAKE_AWSCLI_OUT=str(awscli),
    )

    assert result.returncode == 0, result.stderr
    calls = machine.calls()
    locked = APPLY_SCRIPT.parent / "locked-nixpkgs.nix"
    assert [c for c in calls if c.startswith(f"nix eval --impure --raw --file {locked} ")], calls
    assert f"nix build --no-link --print-out-paths {LOCKED_NIXPKGS}#awscli2" in calls
    assert not [c for c in calls if "nixpkgs#awscli2" in c], "never the global registry's nixpkgs"
    assert f"aws at {awscli / 'bin' / 'aws'}" in calls


def _first_apply_without_aws_cli(machine: Machine, **env: str) -> subprocess.CompletedProcess[str]:
    """A first apply of a private shared flake: no flake.lock yet, no AWS CLI on the image."""
    awscli = _without_aws_cli(machine)
    machine.lock_file.unlink()
    return machine.apply(
        *full_args(machine),
        *("--secret-id", SECRET_ARN, "--region", REGION),
        *("--token-script", str(machine.token_script)),
        FAKE_AWSCLI_OUT=str(awscli),
        **env,
    )


def test_first_apply_builds_the_aws_cli_from_the_running_systems_nixpkgs_without_locking(
    machine: Machine,
) -> None:
    # Locking would fetch the private shared input, which needs the token this CLI is for.
    result = _first_apply_without_aws_cli(machine, FAKE_NIXOS_REVISION=NIXOS_REVISION)

    assert result.returncode == 0, result.stderr
    calls = machine.calls()
    assert not [c for c in calls if c.startswith("nix flake lock")], calls
    assert "nixos-version --revision" in calls
    build = f"nix build --no-link --print-out-paths github:NixOS/nixpkgs/{NIXOS_REVISION}#awscli2"
    assert build in calls, calls
    assert calls.index(build) < calls.index(f"nix flake update devserver --flake {machine.stage}")
    assert not [c for c in calls if c.startswith("nix-build")], "the pinned revision comes first"


def test_first_apply_falls_back_to_roots_channel_when_the_revision_is_unknown(
    machine: Machine,
) -> None:
    result = _first_apply_without_aws_cli(machine)

    assert result.returncode == 0, result.stderr
    calls = machine.calls()
    assert "nix-build <nixpkgs> -A awscli2 --no-out-link" in calls, calls
    assert not [c for c in calls if "github:NixOS/nixpkgs/" in c], calls


def test_first_apply_without_any_way_to_the_aws_cli_stops_with_a_clear_error(
    machine: Machine,
) -> None:
    result = _first_apply_without_aws_cli(machine, FAKE_CHANNEL_BUILD_EXIT="1")

    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "no aws CLI to read the token" in last and "put awscli2 on the image" in last, last
    assert not [c for c in machine.calls() if c.startswith("nixos-rebuild")]
    assert not machine.lock_file.exists(), "/etc/nixos is untouched"


def test_first_apply_whose_pinned_aws_cli_build_fails_stops_before_any_rebuild(
    machine: Machine,
) -> None:
    result = _first_apply_without_aws_cli(
        machine, FAKE_NIXOS_REVISION=NIXOS_REVISION, FAKE_NIX_BUILD_EXIT="1"
    )

    assert result.returncode == 3, result.stderr
    assert f"github:NixOS/nixpkgs/{NIXOS_REVISION}#awscli2" in result.stderr
    assert not [c for c in machine.calls() if c.startswith("nixos-rebuild")]


def test_shared_input_is_updated_before_the_switch_and_kept_after_success(
    machine: Machine,
) -> None:
    result = machine.apply(*full_args(machine))

    assert result.returncode == 0, result.stderr
    calls = machine.calls()
    update = f"nix flake update devserver --flake {machine.stage}"
    assert update in calls, calls
    assert calls.index(update) < calls.index(f"nixos-rebuild switch --flake {machine.stage}#devbox")
    assert machine.lock_file.read_text() == UPDATED_LOCK


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (BUILD_FAILS, 4),
        ({"FAKE_REBUILD_EXIT": "4"}, 5),
        ({"FAKE_KEYS_COMMAND": "/bin/true %u"}, 5),
    ],
    ids=["build-fails", "activation-fails", "verification-fails"],
)
def test_failed_switch_leaves_etc_nixos_as_the_running_system_was_built(
    machine: Machine, fault: dict[str, str], code: int
) -> None:
    result = machine.apply(*full_args(machine), **fault)

    assert result.returncode == code, result.stderr
    assert machine.etc_nixos_files() == {
        "flake.lock": OLD_LOCK,
        "flake.nix": OLD_FLAKE,
        "machine.json": OLD_MACHINE_JSON,
    }, "the nightly upgrade must not find the rejected flake in /etc/nixos"


def test_failed_first_switch_leaves_etc_nixos_without_a_flake_lock(machine: Machine) -> None:
    machine.lock_file.unlink()

    result = machine.apply(*full_args(machine), **BUILD_FAILS)

    assert result.returncode == 4
    assert not machine.lock_file.exists()
    assert (machine.stage / "flake.lock").read_text() == UPDATED_LOCK, "the staged run locked"


def test_each_run_starts_from_the_installed_lock_not_a_failed_runs_lock(machine: Machine) -> None:
    (machine.stage / "flake.lock").write_text('{"note": "left by a failed run"}\n')
    (machine.root / "bin" / "nix").write_text(
        (machine.root / "bin" / "nix")
        .read_text()
        .replace(
            '"flake update")', '"flake update")\n  cp "$5/flake.lock" "$FAKE_RECORD/lock-seen"'
        )
    )

    result = machine.apply(*full_args(machine))

    assert result.returncode == 0, result.stderr
    assert (machine.record / "lock-seen").read_text() == OLD_LOCK


def test_failed_shared_input_update_stops_before_any_rebuild(machine: Machine) -> None:
    result = machine.apply(*full_args(machine), FAKE_NIX_UPDATE_EXIT="1")

    assert result.returncode == 8, result.stderr
    assert "could not update the 'devserver' input" in result.stderr
    assert not [c for c in machine.calls() if c.startswith("nixos-rebuild")]
    assert machine.lock_file.read_text() == OLD_LOCK


def test_developer_user_is_required(machine: Machine) -> None:
    result = machine.apply("--home-device", str(machine.home_device))

    assert result.returncode == 1
    assert "--user must be the developer's login name" in result.stderr
    assert machine.calls() == []


def test_keys_command_under_a_group_writable_directory_is_rolled_back(
    machine: Machine, tmp_path: Path
) -> None:
    # /nix/store is 1775 root:nixbld: sshd refuses a keys command there and offers no keys.
    store = tmp_path / "store"
    _executable(store / "bin" / "keys", f'echo "{USER_KEY}"\n')
    store.chmod(0o1775)

    result = machine.apply(*full_args(machine), FAKE_KEYS_COMMAND=f"{store}/bin/keys %u")

    assert_rolled_back(machine, result)
    assert f'Unsafe AuthorizedKeysCommand "{store}/bin/keys"' in result.stderr
    assert f"bad ownership or modes for directory {store}" in result.stderr


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"FAKE_KEYS_COMMAND": "/bin/true %u"}, "printed no public key"),
        ({"FAKE_KEYS_COMMAND": "none"}, "no AuthorizedKeysCommand for alice"),
        ({"FAKE_KEYS_COMMAND": "/bin/false %u"}, "exited with status 1"),
        ({"FAKE_USER": "someone-else"}, "user alice does not exist"),
        ({"FAKE_USER_UID": "4343"}, "is owned by uid 4242, not by alice (uid 4343)"),
        (
            {"FAKE_SSM_USER_UID": str(USER_UID)},
            f"uid {USER_UID} must belong to alice alone, but getent passwd lists it for: alice,ssm-user",
        ),
    ],
    ids=["no-keys", "no-command", "command-fails", "no-account", "home-not-owned", "shared-uid"],
)
def test_new_system_that_breaks_the_developer_login_is_rolled_back(
    machine: Machine, fault: dict[str, str], message: str
) -> None:
    result = machine.apply(*full_args(machine), **fault)

    assert_rolled_back(machine, result)
    assert message in result.stderr


@pytest.mark.skipif(shutil.which("nix") is None, reason="needs a real `nix` (Debian nix-bin)")
def test_real_nix_sees_flakes_and_the_token_fetched_from_secrets_manager(
    machine: Machine, moto_server: MotoServer, tmp_path: Path
) -> None:
    # End to end: the real fetch script reads moto through IMDS; real Nix reads the deploy conf.
    (machine.root / "bin" / "aws").unlink()
    arn = moto_server.create_secret(FAKE_TOKEN)
    aws = clean_aws_env(tmp_path / "aws-home", moto_server.url, moto_server.url)
    nix_dir = Path(shutil.which("nix") or "").parent
    env = {
        **aws,
        "PATH": f"{tmp_path / 'bin'}:{aws['PATH']}:{nix_dir}",
        "HOME": machine.env["HOME"],
        "DEVSERVER_TOKEN_ATTEMPTS": "2",
        "DEVSERVER_TOKEN_BACKOFF_SECONDS": "0",
        "FAKE_RUN_REAL_NIX": "1",
        "FAKE_REAL_NIX": str(nix_dir / "nix"),
    }

    result = machine.apply(
        *full_args(machine),
        *("--secret-id", arn, "--region", REGION, "--token-script", str(FETCH_SCRIPT)),
        **env,
    )

    assert result.returncode == 0, result.stderr
    settings = dict(
        line.split(" = ", 1)
        for line in (machine.record / "nix-show-config").read_text().splitlines()
        if " = " in line
    )
    assert settings["access-tokens"] == f"github.com={FAKE_TOKEN}"
    assert {"flakes", "nix-command"} <= set(settings["experimental-features"].split())
    assert FAKE_TOKEN not in result.stdout + result.stderr
    token_file = machine.run_dir / "nix-access-tokens.conf"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o400


def test_scripts_pass_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(
        ["shellcheck", "--shell=bash", str(APPLY_SCRIPT), str(FETCH_SCRIPT), str(VERIFY_SCRIPT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def test_a_rollback_that_cannot_unmount_home_leaves_a_usable_machine_and_says_what_is_left(
    machine: Machine,
) -> None:
    # First switch onto the volume fails; generation 1 (the stock image) has no /home in its fstab.
    gen1 = machine.profile.parent / "system-gen1"
    (gen1 / "etc").mkdir()
    (gen1 / "etc" / "fstab").write_text("/dev/disk/by-label/nixos / ext4 defaults 0 1\n")
    # switch-to-configuration-ng exits 4 when a unit failed to stop or start ("warning: the
    # following units failed", nixpkgs nixos/tests/switch-test.nix): here home.mount, kept busy.
    _executable(
        gen1 / "bin" / "switch-to-configuration",
        'echo "gen1/switch-to-configuration $*" >> "$FAKE_CALLS"\n'
        'echo "warning: the following units failed: home.mount" >&2\nexit 4\n',
    )

    result = machine.apply(
        *full_args(machine), FAKE_REBUILD_EXIT="4", FAKE_FAILED_UNITS="home.mount"
    )

    assert result.returncode == 5, result.stderr
    assert str(machine.profile.readlink()) == "system-1-link"
    assert "systemctl stop user@*.service" in machine.calls(), "the lingering manager holds /home"
    assert "ALSO failed" not in result.stderr
    assert "active again and sshd runs" in result.stderr
    assert "switch-to-configuration exit 4" in result.stderr
    assert "failed units: home.mount" in result.stderr
    assert f"/home is still mounted from {machine.home_device}" in result.stderr


# A host lock as `nix flake lock` writes it for a host flake over the shared flake (nix/lockfile
# format 7: follows paths start at the root node, src/libflake/lockfile.cc).
PINNED_HOST_LOCK = {
    "version": 7,
    "root": "root",
    "nodes": {
        "root": {"inputs": {"devserver": "devserver", "nixpkgs": ["devserver", "nixpkgs"]}},
        "devserver": {
            "inputs": {"home-manager": "home-manager", "nixpkgs": "nixpkgs"},
            "locked": {"path": "./shared", "type": "path"},
            "original": {"path": "./shared", "type": "path"},
            "parent": [],
        },
        "home-manager": {
            "inputs": {"nixpkgs": ["devserver", "nixpkgs"]},
            "locked": {"owner": "nix-community", "repo": "home-manager", "rev": "5" * 40,
                       "type": "github", "narHash": "sha256-fake"},
            "original": {"owner": "nix-community", "ref": "release-26.05", "repo": "home-manager",
                         "type": "github"},
        },
        "nixpkgs": {
            "locked": {"owner": "NixOS", "repo": "nixpkgs", "rev": "3" * 40, "type": "github",
                       "narHash": "sha256-fake"},
            "original": {"owner": "NixOS", "ref": "nixos-26.05", "repo": "nixpkgs",
                         "type": "github"},
        },
    },
}  # fmt: skip


def _bundle(m: Machine, files: dict[str, str]) -> Path:
    """A bundle of these files as components/shared_flake.py makes it."""
    from components.shared_flake import PushedFile, PushedFlake

    flake = PushedFlake(tuple(PushedFile(k, v, False) for k, v in sorted(files.items())), "test")
    path = m.root / "deploy" / "shared-flake.bundle"
    path.write_text(flake.bundle)
    return path


def test_a_pushed_flake_is_unpacked_locked_on_the_machines_pins_and_installed_when_verified(
    machine: Machine,
) -> None:
    machine.lock_file.write_text(json.dumps(PINNED_HOST_LOCK))
    bundle = _bundle(machine, {"flake.nix": "{ outputs = _: { }; } # pushed\n", "m/a.nix": "{ }"})

    result = machine.apply(*full_args(machine), "--shared-bundle", str(bundle))

    assert result.returncode == 0, result.stderr
    assert (machine.record / "shared.flake.nix").read_text() == "{ outputs = _: { }; } # pushed\n"
    # Re-locked from the pins the machine had: nixpkgs and home-manager stay where they were.
    pins = json.loads((machine.record / "shared.lock").read_text())
    assert pins["nodes"]["root"]["inputs"] == {"home-manager": "home-manager", "nixpkgs": "nixpkgs"}
    assert pins["nodes"]["nixpkgs"]["locked"]["rev"] == "3" * 40
    assert pins["nodes"]["home-manager"]["inputs"] == {"nixpkgs": ["nixpkgs"]}
    installed = machine.etc_nixos / "shared"
    assert (installed / "m" / "a.nix").read_text() == "{ }"
    assert not (installed / "flake.lock").exists(), "the derived lock is not installed"
    assert not (machine.stage / "shared" / "flake.lock").exists()
    assert not list(machine.etc_nixos.glob(".shared*")), "no temporary directory is left"


def test_a_pushed_flake_on_a_nix_older_than_2_26_stops_before_anything_changes(
    machine: Machine,
) -> None:
    # Relative `path:` inputs arrived in Nix 2.26 (rl-2.26.md); 2.24 cannot lock path:./shared.
    bundle = _bundle(machine, {"flake.nix": "{ }\n"})

    result = machine.apply(
        *full_args(machine), "--shared-bundle", str(bundle), FAKE_NIX_VERSION="2.24.14"
    )

    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "needs Nix 2.26 or newer" in last and "2.24.14" in last, last
    assert "devserver:nixosRelease" in last and "devserver:flake" in last, last
    assert not [c for c in machine.calls() if c.startswith(("nix flake", "nixos-rebuild"))]


def test_a_pushed_flake_with_its_own_lock_is_locked_on_that_lock(machine: Machine) -> None:
    machine.lock_file.write_text(json.dumps(PINNED_HOST_LOCK))
    own = '{"version": 7, "note": "the operator\'s nix/flake.lock"}\n'
    bundle = _bundle(machine, {"flake.nix": "{ }\n", "flake.lock": own})

    result = machine.apply(*full_args(machine), "--shared-bundle", str(bundle))

    assert result.returncode == 0, result.stderr
    assert (machine.record / "shared.lock").read_text() == own
    assert (machine.etc_nixos / "shared" / "flake.lock").read_text() == own


def test_a_rejected_push_leaves_the_installed_shared_flake_alone(machine: Machine) -> None:
    (machine.etc_nixos / "shared").mkdir()
    (machine.etc_nixos / "shared" / "flake.nix").write_text("# the running push\n")
    bundle = _bundle(machine, {"flake.nix": "# a push that fails\n"})

    result = machine.apply(
        *full_args(machine), "--shared-bundle", str(bundle), FAKE_REBUILD_EXIT="4"
    )

    assert result.returncode == 5, result.stderr
    assert (machine.etc_nixos / "shared" / "flake.nix").read_text() == "# the running push\n"


def test_a_damaged_bundle_changes_nothing(machine: Machine) -> None:
    bundle = _bundle(machine, {"flake.nix": "{ }\n"})
    bundle.write_text(bundle.read_text().replace("|{ }", "|{ evil = true; }"))

    result = machine.apply(*full_args(machine), "--shared-bundle", str(bundle))

    assert result.returncode == 11, result.stderr
    assert "is damaged" in result.stderr
    assert not [c for c in machine.calls() if c.startswith(("nix flake", "nixos-rebuild"))]


def test_going_back_to_a_remote_flake_removes_the_pushed_one(machine: Machine) -> None:
    (machine.etc_nixos / "shared").mkdir()
    (machine.etc_nixos / "shared" / "flake.nix").write_text("# an earlier push\n")

    result = machine.apply(*full_args(machine))

    assert result.returncode == 0, result.stderr
    assert not (machine.etc_nixos / "shared").exists()


def test_the_personal_flake_is_refreshed_with_the_shared_one(machine: Machine) -> None:
    result = machine.apply(*full_args(machine), "--also-update", "personal")

    assert result.returncode == 0, result.stderr
    assert f"nix flake update devserver --flake {machine.stage} personal" in machine.calls()


CACHE_URL = "s3://devserver-cache-20261203abcdef?region=eu-west-1"
CACHE_KEY = "devserver-dev-1:" + "A" * 43 + "="


def test_the_first_switch_already_substitutes_from_the_binary_cache(machine: Machine) -> None:
    """The stock AMI's nix.conf names no cache of ours: this run's conf does, for the daemon."""
    result = machine.apply(
        *full_args(machine),
        "--substituter",
        CACHE_URL,
        "--trusted-public-key",
        CACHE_KEY,
        FAKE_RUN_REAL_NIX="1",
    )
    assert result.returncode == 0, result.stderr
    conf = (machine.record / "deploy.conf").read_text().splitlines()
    assert f"extra-substituters = {CACHE_URL}" in conf
    assert f"extra-trusted-public-keys = {CACHE_KEY}" in conf
    assert (machine.record / "deploy.conf.mode").read_text().strip() == "400"
    # Real Nix reads that file: the cache is appended to the substituters, its key trusted.
    shown = dict(
        line.split(" = ", 1)
        for line in (machine.record / "nix-show-config").read_text().splitlines()
        if " = " in line
    )
    assert CACHE_URL in shown["substituters"].split()
    assert CACHE_KEY in shown["trusted-public-keys"].split()
    assert shown["require-sigs"] == "true"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--substituter", "http://cache.example.com", "--trusted-public-key", CACHE_KEY],
            "--substituter must be an s3:// or https:// binary cache URL",
        ),
        (["--substituter", CACHE_URL], "--trusted-public-key must be a Nix public key"),
        (
            ["--trusted-public-key", CACHE_KEY],
            "--substituter must be an s3:// or https:// binary cache URL",
        ),
        (
            ["--substituter", CACHE_URL, "--trusted-public-key", "k:x\nrequire-sigs = false"],
            "--trusted-public-key must be a Nix public key",
        ),
        (
            [
                "--substituter",
                CACHE_URL + "\nrequire-sigs = false",
                "--trusted-public-key",
                CACHE_KEY,
            ],
            "--substituter must be an s3:// or https:// binary cache URL",
        ),
    ],
    ids=["plain-http", "no-key", "no-cache", "key-injects-a-setting", "url-injects-a-setting"],
)
def test_a_cache_that_cannot_be_trusted_is_refused_before_anything_runs(
    machine: Machine, args: list[str], says: str
) -> None:
    result = machine.apply(*full_args(machine), *args)
    assert result.returncode == 1, result.stderr
    assert says in result.stderr
    assert not [c for c in machine.calls() if c.startswith("nixos-rebuild")]


def test_each_phase_is_timed_logged_kept_and_printed_last(machine: Machine) -> None:
    result = machine.apply(
        *full_args(machine), FAKE_BUILD_SECONDS="0.5", FAKE_ACTIVATION_SECONDS="1"
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    assert last.startswith("DEVSERVER_PHASES "), result.stdout
    phases = json.loads(last.removeprefix("DEVSERVER_PHASES "))
    assert list(phases) == [
        "waitForSsh",
        "lock",
        "homeVolume",
        "token",
        "flakeInputs",
        "realise",
        "activation",
        "loginCheck",
        "install",
        "binaryCache",
    ]
    assert phases["waitForSsh"] == 41.7, "the machine's uptime when the deployment reached it"
    assert phases["binaryCache"] is False
    # realise ends when nixos-rebuild moves the profile; what follows is activation. Lower
    # bounds only (a slow machine only adds): the fake sleeps 0.5 s and 1 s, the watcher notices
    # the move within its 0.2 s poll, and figures are cut to tenths.
    assert phases["realise"] >= 0.5 and phases["activation"] >= 0.7, phases
    for name in ("realise", "activation", "loginCheck"):
        assert f"[apply-flake] phase {name}: " in result.stderr
    kept = Path(machine.env["DEVSERVER_PHASES_FILE"]).read_text()
    assert kept == last + "\n", "the last run's phases are kept for the deployment's next read"


def test_an_unchanged_system_has_no_activation_figure(machine: Machine) -> None:
    result = machine.apply(
        *full_args(machine),
        "--substituter",
        CACHE_URL,
        "--trusted-public-key",
        CACHE_KEY,
        FAKE_REBUILD_NEW_GENERATION="0",
    )
    phases = json.loads(result.stdout.splitlines()[-1].removeprefix("DEVSERVER_PHASES "))
    assert phases["activation"] is None and phases["realise"] >= 0
    assert phases["binaryCache"] is True
