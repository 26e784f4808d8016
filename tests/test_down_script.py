"""scripts/down tears a stack down but keeps /home, run against a fake `pulumi` on PATH.

The fake records every argv and answers like the CLI: `stack output --json` with the stack's
outputs, `config get aws:region` with the region, `destroy` with the exit code a test picks.
A plain `pulumi destroy` fails at preview while the stack holds a protected resource
(pulumi/pulumi pkg/resource/deploy/step.go DeleteStep.Apply -> deleteProtectedError, checked
before the DryRun branch); `--exclude-protected` excludes protected resources and what they
depend on (pkg/cmd/pulumi/operations/destroy.go getProtectedExcludes @1b5949891b3c).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "down"
FAKE_PULUMI = """#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$FAKE_PULUMI_LOG"
case "$1 $2" in
  "stack output") printf '%s\\n' "$FAKE_PULUMI_OUTPUTS" ;;
  "config get") echo eu-west-1 ;;
  "destroy --stack") exit "${FAKE_DESTROY_RC:-0}" ;;
  *) echo "fake pulumi: unexpected $*" >&2; exit 3 ;;
esac
"""
SINGLE = {"homeVolumeId": "vol-0123456789abcdef0", "instanceId": "i-0abc"}
FLEET = {
    "servers": {
        "bob": {"homeVolumeId": "vol-0bbbbbbbbbbbbbbbb"},
        "carol": {"homeVolumeId": "vol-0ccccccccccccccccc"},
    }
}


def _down(tmp_path: Path, *args: str, outputs: dict[str, Any], rc: int = 0) -> tuple[Any, list]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "pulumi"
    fake.write_text(FAKE_PULUMI, encoding="utf-8")
    fake.chmod(0o755)
    log = tmp_path / "argv.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_PULUMI_LOG": str(log),
        "FAKE_PULUMI_OUTPUTS": json.dumps(outputs),
        "FAKE_DESTROY_RC": str(rc),
        # A backend is named, so the script never touches this checkout's .pulumi-state.
        "PULUMI_BACKEND_URL": f"file://{tmp_path}/state",
    }
    done = subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return done, calls


def test_down_destroys_with_exclude_protected_and_passes_the_users_flags(tmp_path: Path) -> None:
    done, calls = _down(tmp_path, "dev", "--yes", outputs=SINGLE)
    assert done.returncode == 0, done.stderr
    destroys = [c for c in calls if c.startswith("destroy")]
    assert destroys == ["destroy --stack dev --exclude-protected --yes"]
    # The volume ids are read before anything is destroyed.
    assert calls.index("stack output --stack dev --json") < calls.index(destroys[0])


def test_down_prints_the_kept_volume_and_how_to_keep_or_delete_it(tmp_path: Path) -> None:
    done, _ = _down(tmp_path, "dev", outputs=SINGLE)
    out = done.stdout
    assert "devserver: vol-0123456789abcdef0 (eu-west-1)" in out
    assert "./scripts/up dev" in out, "how to keep it and use it again"
    assert "./scripts/pulumi state unprotect --all --yes --stack dev" in out
    assert "./scripts/pulumi destroy --stack dev --remove" in out
    assert "aws ec2 delete-volume --region eu-west-1 --volume-id vol-0123456789abcdef0" in out


def test_down_lists_every_home_volume_of_a_fleet(tmp_path: Path) -> None:
    done, _ = _down(tmp_path, "team", outputs=FLEET)
    assert done.returncode == 0, done.stderr
    for server, volume in (("bob", "vol-0bbbbbbbbbbbbbbbb"), ("carol", "vol-0ccccccccccccccccc")):
        assert f"{server}: {volume}" in done.stdout
        assert f"--volume-id {volume}" in done.stdout


def test_a_failed_destroy_fails_the_script_and_claims_nothing(tmp_path: Path) -> None:
    done, _ = _down(tmp_path, "dev", outputs=SINGLE, rc=255)
    assert done.returncode != 0
    assert "failed for stack dev" in done.stderr
    assert "torn down" not in done.stdout


def test_a_stack_that_never_deployed_is_torn_down_without_volume_advice(tmp_path: Path) -> None:
    done, _ = _down(tmp_path, "dev", outputs={})
    assert done.returncode == 0, done.stderr
    assert "recorded no home volume" in done.stdout
    assert "delete-volume" not in done.stdout


@pytest.mark.parametrize("args", [(), ("--yes",)])
def test_down_needs_the_stack_name_first_and_runs_nothing_without_it(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    done, calls = _down(tmp_path, *args, outputs=SINGLE)
    assert done.returncode == 2 and "usage: ./scripts/down <stack>" in done.stderr
    assert calls == [], "pulumi is never called"


@pytest.mark.parametrize("outputs", [SINGLE, {}], ids=["with a volume", "no volume"])
def test_down_says_the_snapshots_stay_and_are_billed_and_how_to_delete_them(
    tmp_path: Path, outputs: dict[str, Any]
) -> None:
    # AWS EBS User Guide, "View, modify, and delete lifecycle policies": deleting a policy does
    # not delete the snapshots it created; nothing expires them any more.
    done, _ = _down(tmp_path, "dev", outputs=outputs)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "until they expire" not in out, "nothing expires them once the policy is deleted"
    assert "stay, and are billed, until you delete them" in out
    assert "Name=tag:devserver:stack,Values=dev Name=tag:devserver:snapshot,Values=daily" in out
    assert "aws ec2 delete-snapshot --region eu-west-1 --snapshot-id" in out
