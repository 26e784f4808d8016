"""What the GitHub workflows promise, checked offline (the schema check only covers their shape)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit(path: Path) -> None:
    uses = re.findall(r"uses:\s*(\S+)(.*)", path.read_text())
    assert uses, f"{path.name} uses no actions"
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"{path.name}: {action}"
        assert re.search(r"# v\d", comment), f"{path.name}: {action} needs a '# vX.Y.Z' comment"


def test_preview_uses_oidc_and_no_long_lived_aws_keys() -> None:
    preview = load("preview.yml")
    job = preview["jobs"]["preview"]
    assert job["permissions"] == {
        "id-token": "write",
        "contents": "read",
        "pull-requests": "write",
    }
    creds = next(s for s in steps(preview) if "configure-aws-credentials" in s.get("uses", ""))
    assert set(creds["with"]) >= {"role-to-assume"}
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(creds["with"])
    pulumi = next(s for s in steps(preview) if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["diff"] is True and pulumi["with"]["comment-on-pr"] is True
    assert pulumi["with"]["policyPacks"] == "policy"


def test_flake_lock_update_is_checked_on_both_systems_before_the_pr() -> None:
    workflow = load("flake-lock.yml")
    assert "schedule" in workflow[True] and "workflow_dispatch" in workflow[True]  # YAML 1.1: on
    runners = {i["runner"] for i in workflow["jobs"]["check"]["strategy"]["matrix"]["include"]}
    assert runners == {"ubuntu-latest", "ubuntu-24.04-arm"}
    pr = workflow["jobs"]["pull-request"]
    assert "check" in pr["needs"]
    create = next(s for s in pr["steps"] if "create-pull-request" in s.get("uses", ""))
    assert "update flake.lock" in create["with"]["commit-message"]
