"""`./scripts/check <stack>`: the real program, offline, on a stack file: every problem, or a plan."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What README.md's first commands write for a newcomer: no flake, no repository of their own.
FRESH_STACK = """\
config:
  aws:region: eu-west-1
  devserver:user: alice
  devserver:githubUser: alice-gh
  devserver:sshAllowedCidrs:
    - 198.51.100.23/32
  devserver:permissionsBoundary: arn:aws:iam::123456789012:policy/devserver-boundary
"""
THREE_MISTAKES = """\
config:
  aws:region: eu-west-1
  devserver:user: root
  devserver:githubUsr: alice-gh
  devserver:githubUser: alice-gh
  devserver:preset: graviton-large
  devserver:sshAllowedCidrs:
    - 198.51.100.23/32
"""


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_script", ROOT / "scripts" / "check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def check_script() -> ModuleType:
    return _script()


def test_a_fresh_stack_without_a_flake_plans_a_server_that_pushes_this_checkouts_nix(
    check_script: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / "Pulumi.newcomer.yaml").write_text(FRESH_STACK)

    code, text = check_script.check("newcomer", root=tmp_path)

    assert code == 0, text
    assert "no problems" in text
    assert "machine        m7i.xlarge, x86_64, on-demand" in text, text
    assert "home 100 GiB gp3" in text, text
    assert "shared flake   this checkout's nix/, pushed by the deployment" in text, text
    assert "personal flake none" in text, text
    assert "$3.65/month for the Elastic IP" in text, text


def test_a_fresh_stack_is_warned_that_the_shipped_policies_need_the_permissions_boundary(
    check_script: ModuleType, tmp_path: Path
) -> None:
    # docs/iam/operator-policy.json allows iam:CreateRole only with the devserver-boundary.
    unbounded = FRESH_STACK.replace("  devserver:permissionsBoundary:", "  # was:")
    (tmp_path / "Pulumi.admin.yaml").write_text(unbounded)
    (tmp_path / "Pulumi.bounded.yaml").write_text(FRESH_STACK)

    code, text = check_script.check("admin", root=tmp_path)
    bounded_code, bounded = check_script.check("bounded", root=tmp_path)

    assert code == 0, "an admin may leave it unset"
    assert "WARNING: devserver:permissionsBoundary is unset" in text, text
    assert "iam:CreateRole" in text and "docs/security.md" in text, text
    assert bounded_code == 0 and "WARNING" not in bounded, bounded


def test_a_stack_with_three_mistakes_fails_naming_all_three(
    check_script: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / "Pulumi.typos.yaml").write_text(THREE_MISTAKES)

    code, text = check_script.check("typos", root=tmp_path)

    assert code == 1, text
    assert "3 problem(s), nothing created" in text, text
    assert "devserver:githubUsr is not a configuration key" in text, text
    assert "devserver:user must be a login name that is not already a system account" in text
    assert "devserver:preset must be one of" in text and "'graviton-large'" in text, text


def test_secrets_stay_encrypted_and_only_their_presence_is_checked(
    check_script: ModuleType, tmp_path: Path
) -> None:
    stack = FRESH_STACK + "  devserver:githubToken:\n    secure: v1:ZmFrZS1jaXBoZXJ0ZXh0\n"
    (tmp_path / "Pulumi.secret.yaml").write_text(stack)

    code, text = check_script.check("secret", root=tmp_path)

    assert code == 0, text


def test_the_script_needs_a_stack_name() -> None:
    done = subprocess.run([str(ROOT / "scripts" / "check")], capture_output=True, text=True)
    assert done.returncode == 2 and "usage: ./scripts/check <stack>" in done.stderr
