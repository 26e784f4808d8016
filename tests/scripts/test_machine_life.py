"""A machine's life replayed, day after day: the real machine scripts (apply-flake, verify-login,
upgrade-flake-lock, idle-stop, fetch-github-token, home-backup, vscode-server-refresh) driven
against fakes that carry the upstream rules they stand in for. Each step says what the developer
can do afterwards; the steps run in order on one machine (a failed step fails the ones after it).

The fakes and their sources:
- systemd oneshot unit (`run_unit`): ExecStartPre in order, then ExecStart; ExecStartPost only after
  ExecStart succeeded; ExecStopPost always, with $SERVICE_RESULT `success` or `exit-code`
  (systemd `man/systemd.service.xml` ExecStartPost=/ExecStopPost=, `man/systemd.exec.xml`
  $SERVICE_RESULT).
- nixos-rebuild / switch-to-configuration (test_apply_flake's FAKES): the profile moves to the new
  generation before activation; activation exits 4 when a unit failed ("warning: the following
  units failed", nixpkgs nixos/tests/switch-test.nix), the generation stays the boot default.
- home-manager's activation (`activate_home`): check-link-targets.sh then the link step of
  nix-community/home-manager release-26.05 @ dd71501f (modules/files/check-link-targets.sh,
  modules/files.nix linkGeneration): a real file in a link's place is backed up by
  $HOME_MANAGER_BACKUP_COMMAND, else to TARGET.$HOME_MANAGER_BACKUP_EXT unless that exists
  ("would be clobbered") and $HOME_MANAGER_BACKUP_OVERWRITE is unset; any collision fails the unit.
  The link step then runs `ln -Tsf` over every target whose contents differ, whether the backup
  command succeeded or not (`run $HOME_MANAGER_BACKUP_COMMAND "$targetPath" || errorEcho …`).
- nixos-vscode-server's auto-fix (`vscode_connects`): nix-community/nixos-vscode-server 92ce71c3
  pkgs/auto-fix-vscode-server.nix: a server directory with `.nixos-patched` is skipped; otherwise
  `node` becomes a wrapper script naming the machine's store paths. VS Code Remote-SSH reuses
  `~/.vscode-server/cli/servers/Stable-<commit>/server` whatever the architecture.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import pam_account
from tests.nix.test_sshd_login import SSHD, GitHubStandIn, StartSshd, layout, machine, start_sshd
from tests.nix.test_sshd_login import Machine as SshdMachine
from tests.scripts.aws_support import FETCH_SCRIPT, REGION
from tests.scripts.test_apply_flake import (
    USER,
    USER_UID,
    VERIFY_SCRIPT,
    Machine,
    full_args,
    make_machine,
)
from tests.sshkeys import ed25519_keypair

SCRIPTS = VERIFY_SCRIPT.parent
UPGRADE = SCRIPTS / "upgrade-flake-lock.sh"
IDLE_STOP = SCRIPTS / "idle-stop.sh"
HOME_BACKUP = SCRIPTS / "home-backup.sh"
VSCODE_REFRESH = SCRIPTS / "vscode-server-refresh.sh"
# What nix/modules/developer.nix gives home-manager-<user>.service (asserted by
# tests/nix/test_module_eval.py::test_an_edited_dotfile_is_moved_by_the_backup_command_never_by_an_extension).
HM_ENV = {"HOME_MANAGER_BACKUP_COMMAND": f"bash {HOME_BACKUP}"}
MANAGED = {".zshrc": "# managed by home-manager\n", ".gitconfig": "[user]\n\tname = Alice\n"}
ELF = {"x86_64": 62, "aarch64": 183}
# VS Code Remote-SSH's default remote.SSH.connectTimeout (seconds): the whole login must fit.
VSCODE_CONNECT_TIMEOUT = 15
# The real-sshd fixtures (a root-owned tree, a throwaway account, a fake GitHub) for day 7.
__all__ = ["layout", "machine", "start_sshd"]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="verify-login.sh runs the keys command as another user (needs root)"
)


@dataclass
class Life:
    """One machine across days: the apply-flake fake machine plus its home and store."""

    m: Machine
    arch: str = "x86_64"

    @property
    def home(self) -> Path:
        return self.m.root / "home" / USER

    @property
    def store(self) -> Path:
        return self.m.root / "nix" / "store"

    def env(self, **extra: str) -> dict[str, str]:
        return {**self.m.env, **extra}

    def can_log_in(self, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "bash",
                str(VERIFY_SCRIPT),
                *full_args(self.m)[:2],
                "--home-device",
                str(self.m.home_device),
            ],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=60,
        )


def activate_home(life: Life, hm_env: dict[str, str]) -> tuple[bool, str]:
    """home-manager-<user>.service: check-link-targets, then link (release-26.05 rules)."""
    generation = life.m.root / "hm-generation" / "home-files"
    generation.mkdir(parents=True, exist_ok=True)
    errors, log = [], []
    for name, text in MANAGED.items():
        (generation / name).write_text(text)
    # checkLinkTargets: a target that exists and is not our link is a collision candidate.
    for name in MANAGED:
        source, target = generation / name, life.home / name
        if not (target.exists() or target.is_symlink()):
            continue
        if target.is_symlink() and str(target.readlink()).startswith(str(generation)):
            continue
        if target.read_bytes() == source.read_bytes():
            continue
        if not target.is_symlink() and hm_env.get("HOME_MANAGER_BACKUP_COMMAND"):
            continue
        ext = hm_env.get("HOME_MANAGER_BACKUP_EXT")
        if not target.is_symlink() and ext:
            backup = Path(f"{target}.{ext}")
            if backup.exists() and not hm_env.get("HOME_MANAGER_BACKUP_OVERWRITE"):
                errors.append(
                    f"Existing file '{backup}' would be clobbered by backing up '{target}'"
                )
            continue
        errors.append(f"Existing file '{target}' would be clobbered")
    if errors:
        return False, "\n".join(errors)
    # linkGeneration: back up a real file, then `ln -Tsf`.
    for name in MANAGED:
        source, target = generation / name, life.home / name
        if target.exists() and not target.is_symlink():
            if command := hm_env.get("HOME_MANAGER_BACKUP_COMMAND"):
                done = subprocess.run(
                    [*command.split(), str(target)],
                    env={"PATH": "/usr/bin:/bin", "HOME": str(life.home)},
                    capture_output=True,
                    text=True,
                )
                log.append(done.stdout + done.stderr)
            elif ext := hm_env.get("HOME_MANAGER_BACKUP_EXT"):
                target.rename(f"{target}.{ext}")
        # Whatever the backup command did: `ln -Tsf` unless the contents are identical.
        if target.is_symlink() or not target.exists() or target.read_bytes() != source.read_bytes():
            subprocess.run(["ln", "-Tsf", str(source), str(target)], check=True)
    return True, "".join(log)


def test_a_dotfile_whose_backup_name_is_taken_meanwhile_is_still_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".zshrc").write_text("# alice's own edit\n")
    # Another writer takes the chosen name between the script's check and its move.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "mv").write_text(
        "#!/bin/bash\nfor a; do last=$a; done\n"
        'if [[ ! -e $RACE_DONE ]]; then : > "$RACE_DONE"; echo "# someone else" > "$last"; fi\n'
        'exec /bin/mv "$@"\n'
    )
    (fake_bin / "mv").chmod(0o755)
    done = subprocess.run(
        ["bash", str(HOME_BACKUP), str(home / ".zshrc")],
        env={
            "PATH": f"{fake_bin}:/usr/bin:/bin",
            "HOME": str(home),
            "DEVSERVER_BACKUP_TIME": "T",
            "RACE_DONE": str(tmp_path / "raced"),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    # home-manager links over the target afterwards, whatever the command's exit status.
    subprocess.run(["ln", "-Tsf", "/nix/store/managed-zshrc", str(home / ".zshrc")], check=True)
    kept = [p.read_text() for p in home.glob(".zshrc.hm-backup-*")]
    assert "# alice's own edit\n" in kept, f"the edit was lost: {kept} {done.stderr}"
    assert "# someone else\n" in kept, "the other writer's file is untouched"
    assert done.returncode == 0, done.stderr


def run_unit(
    pre: list[list[str]],
    start: list[str],
    post: list[list[str]],
    stop_post: list[str],
    env: dict[str, str],
    stop_timeout: float = 90,
) -> tuple[str, str]:
    """A Type=oneshot unit's start, as systemd.service(5) runs it; returns (result, output).

    ExecStopPost runs under TimeoutStopSec (systemd src/core/service.c service_enter_stop_post
    spawns it with timeout_stop_usec; DefaultTimeoutStopSec=90s), then is killed."""
    output, result = "", "success"
    for command in [*pre, start]:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        output += done.stdout + done.stderr
        if done.returncode != 0:
            result = "exit-code"
            break
    if result == "success":
        for command in post:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
            output += done.stdout + done.stderr
            if done.returncode != 0:
                result = "exit-code"
                break
    try:
        done = subprocess.run(
            stop_post,
            env={**env, "SERVICE_RESULT": result},
            capture_output=True,
            text=True,
            timeout=stop_timeout,
        )
    except subprocess.TimeoutExpired:
        return "timeout", output + "ExecStopPost killed after TimeoutStopSec\n"
    return result, output + done.stdout + done.stderr


def nightly_upgrade(life: Life, *, switch_exit: int) -> tuple[str, str]:
    """nixos-upgrade.service as nix/modules/base.nix declares it, with a fake nixos-rebuild."""
    flake_dir = str(life.m.etc_nixos)
    verify = ["bash", str(VERIFY_SCRIPT), "--user", USER, "--home-device", str(life.m.home_device)]
    bump = life.m.root / "bin" / "fake-flake-update"
    bump.write_text(
        f'#!/bin/bash\necho \'{{"note": "upgrade {switch_exit}"}}\' > {flake_dir}/flake.lock\n'
    )
    bump.chmod(0o755)
    return run_unit(
        pre=[
            ["bash", str(UPGRADE), "guard", flake_dir],
            ["bash", str(UPGRADE), "save", flake_dir],
            [str(bump)],
        ],
        start=["nixos-rebuild", "switch", "--refresh", "--flake", f"{flake_dir}#devbox"],
        post=[["bash", str(UPGRADE), "verify", flake_dir, *verify]],
        stop_post=["bash", str(UPGRADE), "restore", flake_dir],
        env=life.env(FAKE_REBUILD_EXIT=str(switch_exit)),
        # base.nix TimeoutStopSec (test_the_nightly_upgrades_rollback_is_not_killed_after_the_...).
        stop_timeout=30 * 60,
    )


def fake_elf(path: Path, arch: str) -> None:
    header = bytearray(b"\x7fELF" + bytes(60))
    header[18:20] = ELF[arch].to_bytes(2, "little")
    path.write_bytes(bytes(header))
    path.chmod(0o755)


def vscode_connects(life: Life) -> tuple[bool, str]:
    """Remote-SSH's first connection: install if missing, auto-fix (skip if patched), run node."""
    server = life.home / ".vscode-server" / "cli" / "servers" / "Stable-0123abcd" / "server"
    if not server.exists():
        server.mkdir(parents=True)
        fake_elf(server / "node", life.arch)  # VS Code downloads the server for `uname -m`
    if not (server / ".nixos-patched").exists():
        nodejs = life.store / f"{'a' * 32}-nodejs-{life.arch}" / "bin" / "node"
        nodejs.parent.mkdir(parents=True, exist_ok=True)
        fake_elf(nodejs, life.arch)
        (server / "node").rename(server / "node.patched")
        (server / "node").write_text(f'#!/bin/sh\nexec "{nodejs}" "$@"\n')
        (server / ".nixos-patched").write_text("0\n")
    wrapper = (server / "node").read_text()
    target = Path(wrapper.split('"')[1])
    if not target.exists():
        return False, f"node wrapper names {target}, missing on this machine"
    machine = int.from_bytes(target.read_bytes()[18:20], "little")
    return machine == ELF[life.arch], f"node is ELF machine {machine} on {life.arch}"


@pytest.fixture(scope="module")
def life(tmp_path_factory: pytest.TempPathFactory) -> Life:
    m = make_machine(tmp_path_factory.mktemp("machine-life"))
    # The developer's account as NixOS declares it (uid 2000 in production; the fakes' uid here).
    # nixos-rebuild switch: build generation N+1, move the profile to it, then activate
    # (switch-to-configuration), whose exit code is FAKE_REBUILD_EXIT.
    rebuild = m.root / "bin" / "nixos-rebuild"
    rebuild.write_text(
        "#!/bin/bash\nset -eu\n"
        'echo "nixos-rebuild $*" >> "$FAKE_CALLS"\n'
        "profile=$DEVSERVER_SYSTEM_PROFILE; n=1\n"
        "while [[ -e $profile-$n-link ]]; do n=$((n + 1)); done\n"
        'mkdir -p "$profile-gen$n/bin"\n'
        'printf \'#!/bin/bash\\necho "gen%s/switch-to-configuration $*" >> "$FAKE_CALLS"\\n\' "$n" '
        '> "$profile-gen$n/bin/switch-to-configuration"\n'
        'chmod +x "$profile-gen$n/bin/switch-to-configuration"\n'
        'ln -sfn "$profile-gen$n" "$profile-$n-link"\n'
        'ln -sfn "$(basename "$profile")-$n-link" "$profile"\n'
        'exit "${FAKE_REBUILD_EXIT:-0}"\n'
    )
    life = Life(m)
    life.store.mkdir(parents=True)
    return life


def test_day_1_first_boot_on_a_blank_volume_the_developer_logs_in(life: Life) -> None:
    result = life.m.apply(*full_args(life.m))
    assert result.returncode == 0, result.stderr
    ok, out = activate_home(life, HM_ENV)
    assert ok, out
    assert life.can_log_in().returncode == 0, "the developer logs in"
    assert (life.home / ".zshrc").is_symlink(), "home-manager manages ~/.zshrc"


def test_day_2_the_developer_edits_zshrc_and_gitconfig_then_reboots_twice(life: Life) -> None:
    for day in (1, 2):
        for name in MANAGED:
            (life.home / name).unlink()
            (life.home / name).write_text(f"# alice's own edit, day {day}\n")
        ok, out = activate_home(life, HM_ENV)
        # The second edit of the same file is what failed every switch with backupFileExtension.
        assert ok, f"reboot {day}: home-manager-{USER}.service failed: {out}"
        assert "your version was moved to ~/.zshrc.hm-backup-" in out, out
    for name in MANAGED:
        copies = sorted(life.home.glob(f"{name}.hm-backup-*"))
        kept = {p.read_text() for p in copies}
        assert kept == {"# alice's own edit, day 1\n", "# alice's own edit, day 2\n"}, copies
    moved = (life.home / ".local" / "state" / "devserver" / "moved-dotfiles.log").read_text()
    assert moved.count("manages ~/.gitconfig:") == 2, (
        "every move is logged where the login notice finds it"
    )
    assert life.can_log_in().returncode == 0


def test_day_3_the_nightly_upgrade_succeeds_and_the_lock_follows_the_system(life: Life) -> None:
    before = str(life.m.profile.readlink())
    result, out = nightly_upgrade(life, switch_exit=0)
    assert result == "success", out
    assert str(life.m.profile.readlink()) != before
    assert '"upgrade 0"' in life.m.lock_file.read_text()
    assert life.can_log_in().returncode == 0


def test_day_4_an_upgrade_that_fails_after_activating_is_rolled_back_with_its_lock(
    life: Life,
) -> None:
    running, lock = str(life.m.profile.readlink()), life.m.lock_file.read_text()
    # The switch moved the profile, then a unit failed: switch-to-configuration exit 4.
    result, out = nightly_upgrade(life, switch_exit=4)
    assert result == "exit-code"
    assert str(life.m.profile.readlink()) == running, f"the unverified generation stays: {out}"
    assert life.m.lock_file.read_text() == lock, "flake.lock describes the running system"
    assert life.can_log_in().returncode == 0


def test_day_5_the_volume_is_late_at_boot_and_no_check_passes_on_the_root_disk(
    life: Life,
) -> None:
    # nofail: boot goes on without /home; devserver-home-dirs then writes /run/nologin.
    late = life.can_log_in(FAKE_HOME_SOURCE="")
    assert late.returncode == 2
    assert "/home is not a mount point: the home volume" in late.stderr
    # The developer's SSH login: sshd's account stack as ec2.nix renders it, run by the real
    # Linux-PAM modules ("nobody" stands in for alice, whom the fake passwd alone knows).
    if why := pam_account.available():
        pytest.skip(f"a real PAM account check needs: {why}")
    nologin = life.m.root / "run" / "nologin"
    nologin.parent.mkdir(exist_ok=True)
    nologin.write_text("The /home volume is not mounted, so logins are refused\n")
    stack = pam_account.local_stack(pam_account.NIXOS_SSHD_ACCOUNT, "{pam}", nologin)
    login = pam_account.check_account(stack, "nobody", life.m.root / "pam.d")
    assert not login.allowed, "no login lands in a home on the root disk"
    assert login.messages == (nologin.read_text(),), "the developer is told why"
    root = pam_account.check_account(stack, "root", life.m.root / "pam.d")
    assert root.allowed, "root (deployments) still gets in; SSM's shell uses no PAM"
    # The volume mounts: systemd-user-sessions removes /run/nologin.
    nologin.unlink()
    assert pam_account.check_account(stack, "nobody", life.m.root / "pam.d").allowed
    assert life.can_log_in().returncode == 0, "once the volume is there, logins work again"


def test_day_6_a_deployment_during_an_idle_window_keeps_the_machine_up(life: Life) -> None:
    off = life.m.root / "powered-off"
    (life.m.root / "loadavg").write_text("0.01 0.01 0.01 1/100 1\n")
    tick_env = {
        "PATH": "/usr/bin:/bin",
        "IDLE_STOP_MINUTES": "30",
        "IDLE_STOP_LOADAVG_FILE": str(life.m.root / "loadavg"),
        "IDLE_STOP_SESSIONS_CMD": "true",
        "IDLE_STOP_SSM_SESSIONS_CMD": "exit 1",
        "IDLE_STOP_POWEROFF_CMD": f"touch {off}",
        "IDLE_STOP_STATE_FILE": str(life.m.root / "idle-since"),
        "IDLE_STOP_DEPLOY_LOCK": str(life.m.run_dir / "deploy.lock"),
        "IDLE_STOP_UPGRADE_STATE_CMD": "echo inactive",
    }
    # apply-flake.sh holds the deploy lock for the whole deployment (its step 0).
    with (life.m.run_dir / "deploy.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        for minute in range(0, 120, 10):
            env = {**tick_env, "IDLE_STOP_NOW": str(1_800_000_000 + minute * 60)}
            subprocess.run(["bash", str(IDLE_STOP)], env=env, check=True, capture_output=True)
    assert not off.exists(), "a poweroff half-way through a switch leaves a half-switched system"
    upgrading = {**tick_env, "IDLE_STOP_UPGRADE_STATE_CMD": "echo activating"}
    for minute in range(120, 240, 10):
        env = {**upgrading, "IDLE_STOP_NOW": str(1_800_000_000 + minute * 60)}
        subprocess.run(["bash", str(IDLE_STOP)], env=env, check=True, capture_output=True)
    assert not off.exists(), "nor during the nightly upgrade"


@pytest.mark.skipif(
    not (Path(SSHD).exists() and shutil.which("ssh") and shutil.which("ssh-keygen")),
    reason="needs Debian's openssh-server and openssh-client (scripts/test installs them)",
)
def test_day_7_github_is_slow_then_down_and_the_developer_still_logs_in_within_vscodes_timeout(
    machine: SshdMachine, start_sshd: StartSshd, tmp_path: Path
) -> None:
    """The real keys script behind the real sshd (tests/nix/test_sshd_login.py's layout)."""
    machine.keys_timeout = 5  # ssh.keysTimeoutSeconds' default in nix/modules/base.nix
    sshd = start_sshd(machine.wrapper)
    # The developer's agent offers two other keys first: sshd runs the command once per key.
    others = []
    for n in (1, 2):
        ed25519_keypair(tmp_path / f"other-{n}", f"fake-other-key-{n}")
        others.append(tmp_path / f"other-{n}")

    def vscode_login() -> tuple[subprocess.CompletedProcess[str], float]:
        started = time.monotonic()
        done = subprocess.run(
            [
                *("ssh", "-F", "/dev/null", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"),
                *[arg for key in [*others, machine.client_key] for arg in ("-i", str(key))],
                *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
                *("-p", str(sshd.port), f"{machine.user}@127.0.0.1", "echo in"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done, time.monotonic() - started

    yesterday, _ = vscode_login()
    assert yesterday.returncode == 0, sshd.text()

    machine.age_cache()  # a day later
    machine.github.delay = 30  # GitHub hangs
    asked_before = len(machine.github.requests)
    slow, seconds = vscode_login()
    # Figures, not pass/fail: the login is bounded by how often it waits on GitHub (below).
    print(f"login with GitHub hanging: {seconds:.1f} s")
    assert slow.returncode == 0, f"ssh: {slow.stderr}\nsshd:\n{sshd.text()}"
    waits = len(machine.github.requests) - asked_before
    assert waits == 1, (
        f"sshd ran the keys command for each offered key and it waited on a hanging GitHub "
        f"{waits} times ({machine.keys_timeout} s each): VS Code gives up after "
        f"{VSCODE_CONNECT_TIMEOUT} s"
    )

    machine.github.stop()  # then down: connection refused
    machine.age_cache()
    down, seconds = vscode_login()
    print(f"login with GitHub down: {seconds:.1f} s")
    assert down.returncode == 0, sshd.text()

    # GitHub answers again, and the developer has revoked the key there.
    back = GitHubStandIn(body="")
    back.start()
    machine.use_github(back)
    machine.age_cache()
    revoked, _ = vscode_login()
    assert revoked.returncode == 255, f"a revoked key still logs in:\n{sshd.text()}"


def test_day_8_secrets_manager_unreachable_at_boot_leaves_login_and_the_old_token(
    life: Life, tmp_path: Path
) -> None:
    token = life.m.run_dir / "nix-access-tokens.conf"
    token.write_text("access-tokens = github.com=kept-from-yesterday\n")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "fake",
        "AWS_SECRET_ACCESS_KEY": "fake",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "DEVSERVER_TOKEN_ATTEMPTS": "2",
        "DEVSERVER_TOKEN_BACKOFF_SECONDS": "0",
    }
    if shutil.which("aws") is None:
        pytest.skip("no aws CLI on this machine")
    done = subprocess.run(
        [
            "bash",
            str(FETCH_SCRIPT),
            "--secret-id",
            "devserver/alice/token",
            "--region",
            REGION,
            "--output",
            str(token),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "attempt 2/2" in done.stderr, done.stderr
    assert "kept-from-yesterday" in token.read_text(), "the last good token stays"
    # The unit is started by its timer, never waited for by multi-user.target
    # (tests/nix/test_module_eval.py::test_token_unit_can_never_fail_the_boot): logins go on.
    assert life.can_log_in().returncode == 0


def test_day_9_an_arch_switch_onto_the_same_volume_and_the_first_vscode_login(life: Life) -> None:
    ok, why = vscode_connects(life)
    assert ok, f"VS Code works on the x86 machine: {why}"
    # A new machine of the other architecture: a new root disk (an empty store), the same /home.
    shutil.rmtree(life.store)
    life.store.mkdir()
    life.arch = "aarch64"
    # Boot: devserver-vscode-server-refresh.service runs before sessions and the user's manager.
    done = subprocess.run(
        ["bash", str(VSCODE_REFRESH), str(life.home / ".vscode-server")],
        env={"PATH": "/usr/bin:/bin", "DEVSERVER_MACHINE": life.arch},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "removed the VS Code server" in done.stdout, done.stdout
    ok, why = vscode_connects(life)
    assert ok, f"the first VS Code login after the switch: {why}"
    assert list(life.home.glob(".zshrc.hm-backup-*")), "the developer's files are still there"
    assert life.can_log_in().returncode == 0
    assert life.home.stat().st_uid == USER_UID, "the kept /home still belongs to the developer"
