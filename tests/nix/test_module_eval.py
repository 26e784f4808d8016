"""The devserver NixOS modules evaluated with nixpkgs' lib alone (lib.evalModules, fake pkgs).

Needs `nix-instantiate` and a checkout of nixpkgs' lib (e.g. nix-community/nixpkgs.lib, 25.05 era
for Nix 2.8) named by NIXPKGS_LIB=/path/to/lib; skipped otherwise. The full NixOS evaluation is
`nix flake check` in the GitHub workflow.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

HARNESS = Path(__file__).resolve().parent / "eval-modules.nix"
LIB = os.environ.get("NIXPKGS_LIB", "")
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:devserver/alice/github-token-AbCdEf"

pytestmark = [
    pytest.mark.skipif(
        shutil.which("nix-instantiate") is None, reason="nix-instantiate not installed"
    ),
    pytest.mark.skipif(
        not (LIB and (Path(LIB) / "default.nix").is_file()),
        reason="NIXPKGS_LIB does not point at a nixpkgs lib/ directory",
    ),
]


def evaluate(overrides: str = "{ }") -> dict[str, Any]:
    result = subprocess.run(
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
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NIX_PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def sample() -> dict[str, Any]:
    return evaluate()


def test_sample_host_passes_every_assertion(sample: dict[str, Any]) -> None:
    assert sample["failedAssertions"] == []


def test_home_is_mounted_by_stable_name_formatted_only_when_blank_and_never_blocks_boot(
    sample: dict[str, Any],
) -> None:
    home = sample["home"]
    assert home["device"].startswith("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol")
    assert home["fsType"] == "ext4"
    assert home["autoFormat"] is True, "systemd-makefs formats only a device without a filesystem"
    assert "nofail" in home["options"], "a missing /home volume must not block boot"


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


def test_token_unit_gets_the_arn_and_never_a_token(sample: dict[str, Any]) -> None:
    unit = sample["tokenService"]
    exec_start = unit["serviceConfig"]["ExecStart"]
    assert f"--secret-id {ARN}" in exec_start
    assert "--output /run/devserver/nix-access-tokens.conf" in exec_start
    assert "access-tokens" not in sample["allText"].replace("nix-access-tokens.conf", "")


def test_token_unit_can_never_fail_the_boot(sample: dict[str, Any]) -> None:
    unit = sample["tokenService"]
    assert unit["wantedBy"] == ["multi-user.target"]
    assert "requiredBy" not in unit, "nothing may require the token unit"
    assert "network-online.target" in unit["after"]
    assert unit["serviceConfig"]["Restart"] == "on-failure"


def test_nix_conf_includes_the_token_file_whose_directory_stays_traversable(
    sample: dict[str, Any],
) -> None:
    assert "!include /run/devserver/nix-access-tokens.conf" in sample["nixExtraOptions"]
    # A 0700 directory makes non-root Nix clients silently drop all of nix.conf.
    assert "d /run/devserver 0755 root root -" in sample["tmpfiles"]


def test_no_token_arn_means_no_token_unit_and_no_include() -> None:
    result = evaluate("{ devserver.token.secretArn = null; }")
    assert result["tokenService"] is None
    assert "nix-access-tokens" not in result["nixExtraOptions"]


def test_malformed_token_arn_is_rejected() -> None:
    result = evaluate('{ devserver.token.secretArn = "devserver/alice/github-token"; }')
    assert any("devserver.token.secretArn" in m for m in result["failedAssertions"])


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
    assert set(outputs["formatter"].values()) == {"nixfmt"}
    # The flake, not the module file, wires nixos-vscode-server's home-manager module in.
    assert sample["homeManagerSharedModules"] == [{"vscodeServerHomeModuleStandIn": True}]
