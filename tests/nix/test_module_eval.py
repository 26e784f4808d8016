"""The devserver NixOS modules evaluated with nixpkgs' lib alone (lib.evalModules, fake pkgs).

Needs `nix-instantiate` and a checkout of nixpkgs' lib (e.g. nix-community/nixpkgs.lib from before
its minimum Nix became 2.18, for Debian's Nix 2.8) named by NIXPKGS_LIB=/path/to/lib; skipped
otherwise. The GitHub nix workflow runs this file with the flake's own locked nixpkgs lib, next to
`nix flake check`. The harness's `users` stub carries nixpkgs users-groups.nix's rules (the lock-out
assertion, name length, passwd fields), so what NixOS refuses is refused here too.
"""

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests import pam_account
from tests.nix.test_sshd_login import module_in_homedir, nixos_authorized_keys_file
from tests.pam_account import NIXOS_SSHD_ACCOUNT

HARNESS = Path(__file__).resolve().parent / "eval-modules.nix"
LIB = os.environ.get("NIXPKGS_LIB", "")
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:devserver/alice/github-token-AbCdEf"
SECRET_NAME = "devserver/sample/devserver-sample/github-token"
KEYS_COMMAND = "/etc/ssh/devserver-github-authorized-keys"
LOCKOUT = "Neither the root account nor any wheel user has a password or SSH authorized key"

# One skip for the whole module, saying how to run it (not one line per test).
if shutil.which("nix-instantiate") is None:
    pytest.skip(
        "module evaluation needs nix-instantiate (Debian: apt-get install nix-bin)",
        allow_module_level=True,
    )
if not (LIB and (Path(LIB) / "default.nix").is_file()):
    pytest.skip(
        "NixOS module evaluation needs a nixpkgs lib/ that Nix 2.8 evaluates (from before nixpkgs "
        "required Nix 2.18): run NIXPKGS_LIB=/path/to/nixpkgs/lib ./scripts/test "
        "tests/nix/test_module_eval.py (the GitHub nix workflow runs them with the locked nixpkgs)",
        allow_module_level=True,
    )


def run_harness(
    overrides: str = "{ }", host: str = "{ }", attr: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "nix-instantiate",
            "--option",
            "experimental-features",
            "",
            "--eval",
            "--strict",
            "--json",
            str(HARNESS),
            "--arg",
            "libPath",
            LIB,
            "--arg",
            "overrides",
            overrides,
            "--arg",
            "host",
            host,
            *(["-A", attr] if attr else []),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NIX_PATH": ""},
    )


def evaluate(overrides: str = "{ }", host: str = "{ }") -> dict[str, Any]:
    result = run_harness(overrides, host)
    assert result.returncode == 0, result.stderr
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def failed_assertions(overrides: str = "{ }") -> list[str]:
    """Only the assertion messages: evaluating them forces no more than NixOS does to check them."""
    result = run_harness(overrides, attr="failedAssertions")
    assert result.returncode == 0, result.stderr
    messages: list[str] = json.loads(result.stdout)
    return messages


@pytest.fixture(scope="module")
def sample() -> dict[str, Any]:
    return evaluate()


def test_sample_host_passes_every_assertion(sample: dict[str, Any]) -> None:
    # Includes users-groups.nix's lock-out guard: the sample host is what `nix flake check` builds.
    assert sample["failedAssertions"] == []


def test_immutable_users_with_no_root_key_fail_nixos_lockout_assertion() -> None:
    # The stub carries the upstream rule, so dropping root's declared key must trip it.
    messages = failed_assertions("{ devserver.deploy.rootAuthorizedKeys = [ ]; }")
    assert any(LOCKOUT in m for m in messages), messages


def test_root_login_is_declared_from_the_deploy_keys(sample: dict[str, Any]) -> None:
    root = sample["users"]["root"]
    assert root["authorizedKeys"] == [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeDeployKeyForTheSampleHostOnly devserver-deploy"
    ], "root's deploy key must be declared (users.users.root.openssh.authorizedKeys.keys)"
    assert sample["mutableUsers"] is False


def test_login_name_of_32_characters_is_refused_31_accepted() -> None:
    assert not failed_assertions(f'{{ devserver.user.name = "{"a" * 31}"; }}')
    messages = failed_assertions(f'{{ devserver.user.name = "{"a" * 32}"; }}')
    assert any("devserver.user.name" in m and "1-31" in m for m in messages), messages


@pytest.mark.parametrize(
    "full_name",
    ["Alice: Admin", "Alice\\nExample", "Alice\\tExample"],
    ids=["colon", "newline", "tab"],
)
def test_full_name_that_would_break_etc_passwd_is_refused(full_name: str) -> None:
    messages = failed_assertions(f'{{ devserver.user.fullName = "{full_name}"; }}')
    assert any("devserver.user.fullName" in m and "/etc/passwd" in m for m in messages), messages


def test_github_is_the_only_source_of_the_developers_keys_and_root_has_only_its_declared_one(
    sample: dict[str, Any],
) -> None:
    # sshd.nix would add %h/.ssh/authorized_keys (the kept /home, and root's EC2-metadata file).
    assert sample["openssh"]["authorizedKeysInHomedir"] is False
    assert sample["openssh"]["authorizedKeysFiles"] == ["/etc/ssh/authorized_keys.d/%u"]
    assert sample["users"]["root"]["authorizedKeys"], "root keeps its declared deploy key"
    # The real-sshd test renders the same line from base.nix when it runs without Nix.
    assert sample["sshdAuthorizedKeysFile"] == nixos_authorized_keys_file(module_in_homedir())


def test_the_keys_command_checks_the_pinned_github_user_id_only_when_one_is_set(
    sample: dict[str, Any],
) -> None:
    # base.nix: "<wrapper> %u <user> <githubUser> <cache dir> <timeout> [<githubUserId>]".
    assert len(sample["openssh"]["authorizedKeysCommand"].split()) == 6
    pinned = evaluate("{ devserver.githubUserId = 583231; }")
    assert pinned["openssh"]["authorizedKeysCommand"].split()[6:] == ["583231"]


def test_keys_command_is_a_root_owned_0755_copy_under_etc_never_a_store_path(
    sample: dict[str, Any],
) -> None:
    command = sample["openssh"]["authorizedKeysCommand"].split()
    assert command[0] == KEYS_COMMAND, "sshd's safe_path refuses /nix/store (1775 root:nixbld)"
    assert not any(word.startswith("/nix/store") for word in command)
    wrapper = sample["etc"]["ssh/devserver-github-authorized-keys"]
    assert wrapper["mode"] == "0755", (
        "a mode makes environment.etc copy the file (no store symlink)"
    )
    lines = wrapper["text"].splitlines()
    assert lines[0] == "#!/bin/sh"
    assert lines[1].startswith("exec /nix/store/") and lines[1].endswith(
        '/bin/devserver-github-authorized-keys "$@"'
    ), wrapper["text"]


def test_host_values_win_over_every_opinion() -> None:
    # Plain (normal-priority) definitions, as a host flake writes them: no conflicting definitions.
    # PermitRootLogin needs mkForce: amazon-image.nix sets it at normal priority (the stub carries it).
    host = """{ lib, ... }: {
      users.mutableUsers = true;
      security.sudo.wheelNeedsPassword = true;
      security.sudo.execWheelOnly = false;
      services.openssh.settings.PasswordAuthentication = true;
      services.openssh.settings.PermitRootLogin = lib.mkForce "no";
      nix.gc.automatic = false;
      virtualisation.docker.autoPrune.dates = "weekly";
      users.users.alice.uid = 1500;
      programs.git.lfs.enable = false;
    }"""
    result = evaluate(host=host)
    assert result["mutableUsers"] is True
    assert result["sudo"]["wheelNeedsPassword"] is True
    assert result["sudo"]["execWheelOnly"] is False
    assert result["openssh"]["settings"]["PasswordAuthentication"] is True
    assert result["openssh"]["settings"]["PermitRootLogin"] == "no"
    assert result["nixGc"]["automatic"] is False
    assert result["docker"]["autoPrune"]["dates"] == "weekly"
    assert result["user"]["uid"] == 1500
    assert result["git"]["lfs"]["enable"] is False


def test_lingering_is_left_to_nixos_unless_the_vscode_server_needs_it(
    sample: dict[str, Any],
) -> None:
    assert sample["user"]["linger"] is True
    result = evaluate("{ devserver.image.vscodeServer.enable = false; }")
    assert result["user"]["linger"] is None, "linger = false would disable lingering set by hand"


def test_first_login_shell_has_a_managed_zshrc(sample: dict[str, Any]) -> None:
    assert sample["homeManagerUser"]["programs"]["zsh"]["enable"] is True


def test_developer_uid_is_pinned_clear_of_the_uids_stock_accounts_take(
    sample: dict[str, Any],
) -> None:
    # Pinned, so a new instance owns the old /home; not 1000, which the image's ssm-user (a normal
    # user created before this flake is applied) takes, and not a static id from ids.nix (< 400).
    uid = sample["user"]["uid"]
    assert uid == 2000, f"the developer's uid is {uid}"
    assert sample["ssmAgent"] is True, "ssm-user exists, so 1000 is taken on a fresh image"


def test_the_ssm_agent_runs_for_break_glass_unless_the_host_turns_it_off(
    sample: dict[str, Any],
) -> None:
    assert sample["ssmAgent"] is True, "Session Manager is the way in when SSH is broken"
    assert evaluate(host="{ devserver.ssmAgent.enable = false; }")["ssmAgent"] is False


def test_a_plain_ssm_agent_false_conflicts_with_amazon_image_so_the_docs_name_the_option() -> None:
    # amazon-image.nix sets `services.amazon-ssm-agent.enable = true` at normal priority.
    result = run_harness(host="{ services.amazon-ssm-agent.enable = false; }")
    assert result.returncode != 0
    assert "services.amazon-ssm-agent.enable' has conflicting definition values" in result.stderr


def test_a_session_manager_shell_finds_the_sudo_wrapper_on_its_path(sample: dict[str, Any]) -> None:
    # The session shell inherits the agent's environment; sudo is only in /run/wrappers/bin.
    assert sample["ssmAgentPath"][0] == "/run/wrappers", sample["ssmAgentPath"]
    assert "/run/current-system/sw" in sample["ssmAgentPath"]
    assert evaluate(host="{ devserver.ssmAgent.enable = false; }")["ssmAgentPath"] is None
    # The other off switch (mkForce false, as the docs allow) leaves no unit with only a `path`.
    forced_off = evaluate("{ services.amazon-ssm-agent.enable = false; }")
    assert forced_off["ssmAgent"] is False
    assert forced_off["ssmAgentPath"] is None, "a unit without ExecStart is a bad-setting unit"


def test_ssm_user_keeps_sudo_under_exec_wheel_only() -> None:
    result = evaluate(host="{ services.amazon-ssm-agent.enable = true; }")
    assert "wheel" in result["users"]["ssm-user"]["extraGroups"]
    assert result["sudo"]["execWheelOnly"] is True


def test_home_directories_are_made_on_the_mounted_volume_before_home_manager_and_logins(
    sample: dict[str, Any],
) -> None:
    unit = sample["homeDirsService"]
    assert unit is not None, "activation makes /home/alice before the volume is mounted over it"
    assert "home.mount" in unit["after"] and "home.mount" in unit["wants"]
    # A late or missing volume: no user session starts until the unit has seen /home mounted.
    assert unit["requiredBy"] == ["systemd-user-sessions.service"]
    assert "RequiresMountsFor" not in unit.get("unitConfig", {}), "it must run to explain itself"
    assert {"systemd-user-sessions.service", "home-manager-alice.service"} <= set(unit["before"])
    assert "home-manager-alice.service" in unit["wantedBy"]
    assert "multi-user.target" in unit["wantedBy"]
    assert unit["serviceConfig"]["Type"] == "oneshot"
    # Every normal user's home, the break-glass ssm-user's too, is made on the volume.
    assert "/home/alice" in unit["script"] and "/home/ssm-user" in unit["script"]


def test_home_manager_unit_name_escapes_the_login_like_systemd() -> None:
    result = evaluate('{ devserver.user.name = "dev-one"; }')
    assert "home-manager-dev\\x2done.service" in result["homeDirsService"]["before"]


def test_home_is_mounted_by_stable_name_formatted_only_when_blank_and_never_blocks_boot(
    sample: dict[str, Any],
) -> None:
    home = sample["home"]
    assert home["device"].startswith("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol")
    assert home["fsType"] == "ext4"
    assert home["autoFormat"] is True, "systemd-makefs formats only a device without a filesystem"
    assert "nofail" in home["options"], "a missing /home volume must not block boot"
    # filesystems.nix: autoResize adds x-systemd.growfs, and systemd-fstab-generator then orders
    # local-fs.target after systemd-growfs@home.service (generator.c generator_hook_up_growfs),
    # which waits for the nofail mount: sshd and SSM would wait out the device timeout.
    assert not home.get("autoResize", False), "a late volume must not hold local-fs.target"
    assert not any("growfs" in option for option in home["options"]), home["options"]
    grow = sample["homeGrowService"]
    assert grow is not None, "a grown EBS volume still reaches ext4"
    assert grow["wantedBy"] == ["home.mount"] and grow["bindsTo"] == ["home.mount"], grow
    assert grow["after"] == ["home.mount"], grow
    assert grow["serviceConfig"]["ExecStart"].endswith("/lib/systemd/systemd-growfs /home")


def test_kernel_device_name_for_home_is_rejected_with_the_fix() -> None:
    result = evaluate('{ devserver.homeVolume.device = "/dev/nvme1n1"; }')
    messages = " ".join(result["failedAssertions"])
    assert "devserver.homeVolume.device" in messages
    assert "/dev/disk/by-id/" in messages, "the message must say what to use instead"


def test_bad_login_name_is_rejected_naming_the_option() -> None:
    result = evaluate('{ devserver.user.name = "Alice Smith"; }')
    assert any("devserver.user.name" in m for m in result["failedAssertions"])


def test_root_cannot_be_the_developer_account() -> None:
    result = evaluate('{ devserver.user.name = "root"; }')
    assert any("devserver.user.name" in m for m in result["failedAssertions"])


def test_bad_github_login_is_rejected() -> None:
    result = evaluate('{ devserver.githubUser = "https://github.com/octocat"; }')
    assert any("devserver.githubUser" in m for m in result["failedAssertions"])


def test_sshd_takes_keys_only_from_the_users_github_account(sample: dict[str, Any]) -> None:
    ssh = sample["openssh"]
    assert ssh["settings"]["PasswordAuthentication"] is False
    assert ssh["settings"]["KbdInteractiveAuthentication"] is False
    assert ssh["settings"]["PermitRootLogin"] == "prohibit-password"
    # %u first, then the only login it answers for and the GitHub account it reads.
    assert " %u alice octocat " in ssh["authorizedKeysCommand"]
    assert ssh["authorizedKeysCommandUser"] != "root"


def test_user_is_wheel_and_docker_with_passwordless_sudo_for_wheel_only(
    sample: dict[str, Any],
) -> None:
    assert sample["user"]["isNormalUser"] is True
    assert set(sample["user"]["extraGroups"]) == {"wheel", "docker"}
    assert sample["mutableUsers"] is False
    assert sample["sudo"]["wheelNeedsPassword"] is False
    assert sample["sudo"]["execWheelOnly"] is True


def test_token_unit_gets_the_secret_name_and_never_a_token(sample: dict[str, Any]) -> None:
    unit = sample["tokenService"]
    exec_start = unit["serviceConfig"]["ExecStart"]
    assert f"--secret-id {SECRET_NAME} --region eu-west-1" in exec_start
    assert "--output /run/devserver/nix-access-tokens.conf" in exec_start
    assert "access-tokens" not in sample["allText"].replace("nix-access-tokens.conf", "")


def test_token_unit_can_never_fail_the_boot(sample: dict[str, Any]) -> None:
    unit = sample["tokenService"]
    # systemd.target(5): a target is ordered After= every unit it Wants, so a wanted token unit
    # with an unreachable endpoint would hold multi-user.target through all its retries.
    assert "multi-user.target" not in unit.get("wantedBy", []), unit.get("wantedBy")
    assert sample["tokenTimer"]["timerConfig"]["OnBootSec"] == "0", "fetched at boot by its timer"
    assert unit["startAt"] == "hourly"
    assert "requiredBy" not in unit, "nothing may require the token unit"
    assert "network-online.target" in unit["after"]
    assert unit["serviceConfig"]["Restart"] == "on-failure"
    # "-": systemd skips a missing path instead of failing the unit's namespace setup.
    assert unit["serviceConfig"]["ReadWritePaths"] == ["-/run/devserver"]


def test_token_region_comes_from_an_arn_and_is_required_with_a_name() -> None:
    from_arn = evaluate(f'{{ devserver.token.secretId = "{ARN}"; }}')
    assert from_arn["tokenRegionDefault"] == "eu-west-1"
    assert evaluate()["tokenRegionDefault"] is None, "a secret name implies no region"
    messages = failed_assertions("{ devserver.token.region = null; }")
    assert any("devserver.token.region" in m for m in messages), messages


def test_nix_conf_includes_the_token_file_whose_directory_stays_traversable(
    sample: dict[str, Any],
) -> None:
    assert "!include /run/devserver/nix-access-tokens.conf" in sample["nixExtraOptions"]
    # A 0700 directory makes non-root Nix clients silently drop all of nix.conf.
    assert "d /run/devserver 0755 root root -" in sample["tmpfiles"]


def test_no_token_secret_means_no_token_unit_and_no_include() -> None:
    result = evaluate("{ devserver.token.secretId = null; }")
    assert result["tokenService"] is None
    assert "nix-access-tokens" not in result["nixExtraOptions"]


@pytest.mark.parametrize(
    "secret_id",
    ["arn:aws:secretsmanager:eu-west-1:secret:x", "devserver alice token", ""],
    ids=["short-arn", "space", "empty"],
)
def test_malformed_token_secret_id_is_rejected(secret_id: str) -> None:
    messages = failed_assertions(f'{{ devserver.token.secretId = "{secret_id}"; }}')
    assert any("devserver.token.secretId" in m for m in messages), messages


def test_idle_stop_runs_every_minute_only_when_minutes_is_positive(sample: dict[str, Any]) -> None:
    unit = sample["idleStopService"]
    assert unit["startAt"] == "minutely"
    assert unit["environment"]["IDLE_STOP_MINUTES"] == "60"
    assert unit["environment"]["IDLE_STOP_STATE_FILE"].startswith("/run/")
    assert evaluate("{ devserver.idleStop.minutes = 0; }")["idleStopService"] is None


def test_developer_tooling_and_git_identity(sample: dict[str, Any]) -> None:
    assert sample["nixSettings"]["keep-outputs"] is True
    assert sample["nixSettings"]["keep-derivations"] is True
    assert sample["direnv"]["nix-direnv"]["enable"] is True
    git = sample["homeManagerUser"]["programs"]["git"]["settings"]["user"]
    assert git == {"name": "Alice Example", "email": "alice@example.com"}
    assert sample["homeManagerUser"]["services"]["vscode-server"]["enable"] is True


def test_nightly_upgrade_refreshes_only_the_shared_input(sample: dict[str, Any]) -> None:
    assert sample["autoUpgrade"]["flake"] == "/etc/nixos#devserver-sample"
    assert sample["upgradePreStart"].strip().endswith("flake update devserver --flake /etc/nixos")


def test_nightly_upgrade_refreshes_the_personal_flake_with_the_shared_one() -> None:
    # What the host template sets with devserver:personalFlake.
    result = evaluate(host='{ devserver.autoUpgrade.extraInputs = [ "personal" ]; }')
    pre_start = result["upgradePreStart"].strip()
    assert pre_start.endswith("flake update devserver personal --flake /etc/nixos"), pre_start


def test_nightly_upgrade_saves_the_lock_and_restores_it_when_it_fails(
    sample: dict[str, Any],
) -> None:
    unit = sample["upgradeService"]
    pre_start = unit["preStart"]
    tool = "/bin/devserver-upgrade-flake-lock"
    assert pre_start.index(f"{tool} save /etc/nixos") < pre_start.index("flake update devserver"), (
        "the lock must be saved before it is updated"
    )
    # ExecStopPost also runs after a failed start; the script reads $SERVICE_RESULT.
    assert unit["serviceConfig"]["ExecStopPost"].endswith(f"{tool} restore /etc/nixos")


def test_nightly_upgrade_is_skipped_during_a_deployment_and_login_checked_after_its_switch(
    sample: dict[str, Any],
) -> None:
    unit = sample["upgradeService"]
    tool = "/bin/devserver-upgrade-flake-lock"
    lines = [line.strip() for line in unit["preStart"].strip().splitlines()]
    assert lines[0].endswith(f"{tool} guard /etc/nixos"), (
        f"nixos-upgrade preStart must start with the deploy-lock guard: {lines}"
    )
    post = unit["postStart"]
    key = sample["users"]["root"]["authorizedKeys"][0]
    assert f"{tool} verify /etc/nixos " in post, post
    device = sample["home"]["device"]
    assert post.endswith(
        f"/bin/devserver-verify-login --user alice --deploy-public-key '{key}' --home-device {device}"
    ), post


def test_the_nightly_upgrades_rollback_is_not_killed_after_the_default_stop_timeout(
    sample: dict[str, Any],
) -> None:
    # ExecStopPost runs under TimeoutStopSec (systemd service.c service_enter_stop_post), 90 s by
    # default; restore may run a whole switch-to-configuration of the previous generation.
    config = sample["upgradeService"]["serviceConfig"]
    assert config["ExecStopPost"].endswith("restore /etc/nixos"), config
    assert config.get("TimeoutStopSec") == "30min", config


def test_nightly_upgrade_waits_for_the_token_unit_at_boot(sample: dict[str, Any]) -> None:
    unit = sample["upgradeService"]
    assert "devserver-github-token.service" in unit["after"]
    assert "devserver-github-token.service" in unit["wants"]
    assert "devserver-github-token.service" not in unit.get("requires", [])


def test_editor_is_code_wait_only_inside_vscode_terminals(sample: dict[str, Any]) -> None:
    assert 'TERM_PROGRAM:-}" == vscode' in sample["zshInit"]
    assert 'EDITOR="code --wait"' in sample["zshInit"]
    assert "gh" in sample["systemPackages"]


def test_flake_exposes_every_part_templates_checks_per_arch_and_a_formatter(
    sample: dict[str, Any],
) -> None:
    outputs = sample["flakeOutputs"]
    assert set(outputs["nixosModules"]) >= {"default", "devserver", "base", "developer", "image"}
    assert {"ec2", "token", "idleStop"} <= set(outputs["nixosModules"])
    assert set(outputs["templates"]) == {"host", "default"}
    assert outputs["templatePath"].endswith("/nix/templates/host")
    assert outputs["checkPlatforms"] == {
        "x86_64-linux": "x86_64-linux",
        "aarch64-linux": "aarch64-linux",
    }
    # nixfmt on a directory is deprecated; nixfmt-tree is what `nix fmt` should run.
    assert set(outputs["formatter"].values()) == {"nixfmt-tree"}
    # The flake, not the module file, wires nixos-vscode-server's home-manager module in.
    assert sample["homeManagerSharedModules"] == [{"vscodeServerHomeModuleStandIn": True}]


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare to mount a blank /home in a private mount namespace",
)
@pytest.mark.parametrize("volume", ["blank", "existing-home", "not-mounted"])
def test_home_dirs_script_makes_only_missing_homes_and_only_on_the_volume(volume: str) -> None:
    # The unit's real script, run by sh under `set -e` as systemd does, against a tmpfs /home.
    user = "dvh" + secrets.token_hex(4)
    # Only the test user (no ssm-user, which this machine does not have).
    only_user = f'{{ devserver.user.name = "{user}"; services.amazon-ssm-agent.enable = false; }}'
    script = evaluate(only_user)["homeDirsService"]["script"]
    subprocess.run(["useradd", "-M", "-U", user], check=True)
    try:
        prepare = {
            "blank": "mount -t tmpfs devserver-test-home /home",
            "existing-home": (
                "mount -t tmpfs devserver-test-home /home && mkdir -m 0750 /home/"
                + user
                + " && echo kept > /home/"
                + user
                + "/notes && chown nobody /home/"
                + user
            ),
            # Private namespace: drops a real /home mount for this test only, so nothing can land there.
            "not-mounted": "{ umount -l /home 2>/dev/null || true; } && ! mountpoint -q /home",
        }[volume]
        report = f'stat -c "%U %a" /home/{user} 2>/dev/null || echo absent; cat /home/{user}/notes 2>/dev/null || true'
        nologin = Path(tempfile.mkdtemp()) / "nologin"
        result = subprocess.run(
            [
                *("unshare", "--mount", "--propagation", "private", "sh", "-c"),
                f'{prepare} && {{ sh -e -c "$1"; echo exit=$?; }}; {report}',
                "sh",
                script,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "DEVSERVER_NOLOGIN_FILE": str(nologin)},
        )
    finally:
        subprocess.run(["userdel", user], check=False, capture_output=True)
        subprocess.run(["groupdel", user], check=False, capture_output=True)
    out = result.stdout.split()
    if volume == "blank":
        assert out[:3] == ["created", f"/home/{user}", "on"], result.stdout + result.stderr
        assert out[-3:] == ["exit=0", user, "700"], result.stdout
    elif volume == "existing-home":
        assert "left as it is" in result.stdout, result.stdout
        assert out[-4:] == ["exit=0", "nobody", "750", "kept"], "an existing home is never touched"
    else:
        assert "/home is not a mount point; creating nothing" in result.stderr
        assert out[-2:] == ["exit=1", "absent"], "nothing may be created on the root disk"
        # pam_nologin shows this to everyone but root until systemd-user-sessions starts.
        assert "is not mounted, so logins are refused" in nologin.read_text()
        assert "systemctl start home.mount" in nologin.read_text()


def test_a_late_volume_refuses_every_ssh_login_but_roots_through_sshds_pam_account_stack(
    sample: dict[str, Any], tmp_path: Path
) -> None:
    # NixOS's own sshd stack has no pam_nologin (pam.nix rules.account): the module adds it.
    fake_pam = "/nix/store/00000000000000000000000000000000-pam"
    rendered = sample["sshdPamAccount"]
    assert rendered == [line.format(pam=fake_pam) for line in NIXOS_SSHD_ACCOUNT], rendered
    if why := pam_account.available():
        pytest.skip(f"the rendered stack is checked; a real PAM account check needs: {why}")
    # The real Linux-PAM modules run the rendered stack (what sshd asks after a key was accepted).
    nologin = tmp_path / "nologin"
    nologin.write_text(
        "The /home volume (/dev/disk/by-id/x) is not mounted, so logins are refused\n"
    )
    stack = pam_account.local_stack(rendered, fake_pam, nologin)
    developer = pam_account.check_account(stack, "nobody", tmp_path / "pam.d")
    assert developer.code == pam_account.PAM_AUTH_ERR, developer
    assert developer.messages == (nologin.read_text(),), "the developer is told why"
    assert pam_account.check_account(stack, "root", tmp_path / "pam.d").allowed, "deploys go on"
    nologin.unlink()
    assert pam_account.check_account(stack, "nobody", tmp_path / "pam.d").allowed


def test_old_secret_arn_option_still_sets_the_secret_id() -> None:
    # Hand-made hosts written for `devserver.token.secretArn` keep working (with a rename warning).
    result = evaluate(host='{ lib, ... }: { devserver.token.secretArn = lib.mkForce "old/name"; }')
    assert "--secret-id old/name " in result["tokenService"]["serviceConfig"]["ExecStart"]


def test_an_edited_dotfile_is_moved_by_the_backup_command_never_by_an_extension(
    sample: dict[str, Any],
) -> None:
    # home-manager (check-link-targets.sh) refuses a second backup to the same TARGET.<ext> unless
    # overwriteBackup, which would drop the first: a command that picks a fresh name does neither.
    env = sample["homeManagerEnvironment"]
    assert "HOME_MANAGER_BACKUP_EXT" not in env, env
    assert env["HOME_MANAGER_BACKUP_COMMAND"].endswith("/bin/devserver-home-backup"), env
    # The unit runs `$HOME_MANAGER_BACKUP_COMMAND "$targetPath"` word-split: no spaces allowed.
    assert " " not in env["HOME_MANAGER_BACKUP_COMMAND"]
    assert "moved-dotfiles.log" in sample["zshInit"], "the next login says what was moved"


def test_nightly_upgrade_never_updates_roots_channels_and_keeps_upstreams_script(
    sample: dict[str, Any],
) -> None:
    # auto-upgrade.nix adds --upgrade (nix-channel --update) when channel is null and `upgrade`.
    assert sample["autoUpgrade"]["upgrade"] is False
    script = sample["upgradeService"]["script"]
    assert "--upgrade" not in script, script
    assert "/bin/nixos-rebuild switch --refresh --flake /etc/nixos#devserver-sample" in script
    assert sample["upgradeFlags"] == ["--refresh", "--flake /etc/nixos#devserver-sample"]
    # Upstream's script is not replaced, so its options still work (e.g. `operation = "boot"`).
    boot = evaluate(host='{ system.autoUpgrade.operation = "boot"; }')["upgradeService"]["script"]
    assert "/bin/nixos-rebuild boot --refresh --flake /etc/nixos#devserver-sample" in boot, boot
    assert "--upgrade" not in boot


def test_stale_vscode_servers_are_removed_before_any_session_or_the_users_manager(
    sample: dict[str, Any],
) -> None:
    unit = sample["vscodeRefreshService"]
    assert unit is not None, "auto-fix skips an already patched server after an arch switch"
    assert {"systemd-user-sessions.service", "user@2000.service"} <= set(unit["before"])
    assert unit["serviceConfig"]["User"] == "alice", "runs as the developer, never root in ~"
    # Never %h: in a system unit it is /root whatever User= says (systemd.unit(5), specifiers).
    assert unit["serviceConfig"]["ExecStart"].endswith(
        "/bin/devserver-vscode-server-refresh "
        "/home/alice/.vscode-server /home/alice/.vscode-server-insiders"
    ), unit["serviceConfig"]["ExecStart"]
    assert "%h" not in unit["serviceConfig"]["ExecStart"]
    assert unit["unitConfig"]["RequiresMountsFor"] == "/home/alice"
    # restartIfChanged defaults to true (nixos/lib/systemd-unit-options.nix): a deploy would rerun
    # it under a live VS Code session.
    assert unit["restartIfChanged"] is False, "runs at boot, never during a switch"
    assert (
        evaluate("{ devserver.image.vscodeServer.enable = false; }")["vscodeRefreshService"] is None
    )


CACHE_URL = "s3://devserver-cache-20261203abcdef?region=eu-west-1"
CACHE_KEY = "devserver-dev-1:" + "A" * 43 + "="


def test_a_binary_cache_is_trusted_next_to_cache_nixos_org() -> None:
    """nix.settings lists merge with NixOS's own (nix.nix: cache.nixos.org via mkAfter, its key)."""
    trusted = evaluate(
        host=f'{{ devserver.binaryCache = {{ url = "{CACHE_URL}"; publicKey = "{CACHE_KEY}"; }}; }}'
    )
    assert trusted["nixSettings"]["substituters"] == [CACHE_URL]
    assert trusted["nixSettings"]["trusted-public-keys"] == [CACHE_KEY]
    assert "require-sigs" not in trusted["nixSettings"], "signatures stay required (NixOS default)"
    plain = evaluate()
    assert (
        "substituters" not in plain["nixSettings"]
        and "trusted-public-keys" not in plain["nixSettings"]
    )


@pytest.mark.parametrize(
    ("cache", "problem"),
    [
        (f'{{ url = "{CACHE_URL}"; }}', "go together"),
        (f'{{ publicKey = "{CACHE_KEY}"; }}', "go together"),
        (
            f'{{ url = "http://cache.example.com"; publicKey = "{CACHE_KEY}"; }}',
            "is not a binary cache URL",
        ),
        (
            f'{{ url = "file:///tmp/cache"; publicKey = "{CACHE_KEY}"; }}',
            "is not a binary cache URL",
        ),
        (
            f'{{ url = "{CACHE_URL}"; publicKey = "devserver-dev-1:c2hvcnQ="; }}',
            "is not a Nix public key",
        ),
    ],
    ids=["url-without-key", "key-without-url", "plain-http", "local-path", "short-key"],
)
def test_a_binary_cache_that_would_not_be_trusted_safely_is_refused(
    cache: str, problem: str
) -> None:
    failed = failed_assertions(f"{{ devserver.binaryCache = {cache}; }}")
    assert any(problem in m for m in failed), failed
