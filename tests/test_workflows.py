"""What the GitHub workflows promise, checked offline (the schema check only covers their shape)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
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


# Triggers that run code a maintainer has not reviewed (a PR's branch) or give it the base
# repository's secrets (pull_request_target, workflow_run after one): GitHub "Security hardening
# for GitHub Actions", "Understanding the risks of untrusted code checkout".
UNREVIEWED_CODE = {"pull_request", "pull_request_target", "workflow_run"}
PRIVILEGED_FOR_FORKS = {"pull_request_target", "workflow_run"}
FORK_CHECK = "github.event.pull_request.head.repo.full_name == github.repository"


def triggers(workflow: dict[str, Any]) -> set[str]:
    on = workflow[True]  # YAML 1.1 reads the key `on` as True
    return {on} if isinstance(on, str) else set(on)


def holds_secrets(job: dict[str, Any]) -> bool:
    """A job that can read a stack's secrets or act as the AWS role: a `secrets.` reference
    (other than the run's own GITHUB_TOKEN) or an OIDC token."""
    text = yaml.safe_dump(job)
    named = set(re.findall(r"secrets\.(\w+)", text)) - {"GITHUB_TOKEN"}
    return bool(named) or job.get("permissions", {}).get("id-token") == "write"


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_no_job_with_stack_secrets_runs_on_unreviewed_code(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    on = triggers(workflow)
    for name, job in workflow["jobs"].items():
        if not holds_secrets(job):
            continue
        assert not on & PRIVILEGED_FOR_FORKS, (
            f"{path.name}: job {name} holds secrets on {sorted(on & PRIVILEGED_FOR_FORKS)}, "
            "which hands them to fork code"
        )
        if on & UNREVIEWED_CODE:
            environment = job.get("environment")
            env_name = environment.get("name") if isinstance(environment, dict) else environment
            assert env_name, (
                f"{path.name}: job {name} holds secrets on a pull request without a protected "
                "environment (required reviewers approve the PR's code first)"
            )
            assert FORK_CHECK in job.get("if", ""), (
                f"{path.name}: job {name} holds secrets and does not refuse forks ({FORK_CHECK})"
            )


def test_the_preview_environment_holds_the_stack_secrets_and_the_aws_role() -> None:
    job = load("preview.yml")["jobs"]["preview"]
    assert job["environment"] == "preview"
    assert set(re.findall(r"secrets\.(\w+)", yaml.safe_dump(job))) == {
        "PULUMI_ACCESS_TOKEN",
        "PULUMI_CONFIG_PASSPHRASE",
    }
    finder = load("preview.yml")["jobs"]["stacks"]
    assert not holds_secrets(finder), "the job that reads the PR's file list holds nothing"


def run_stack_finder(tmp_path: Path, changed: dict[str, str], **env: str) -> list[str]:
    """The `find` step of preview.yml, run in a git repository whose HEAD is a PR's merge commit."""
    step = next(s for s in load("preview.yml")["jobs"]["stacks"]["steps"] if s.get("id") == "find")
    repo = tmp_path / "repo"
    repo.mkdir(parents=True)

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=repo,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    (repo / "Pulumi.yaml").write_text("name: devserver\n")
    (repo / "Pulumi.dev.yaml").write_text("config: {}\n")
    (repo / "Pulumi.bob.yaml").write_text("config: {}\n")
    git("add", ".")
    git("commit", "-qm", "base")
    for name, text in changed.items():
        (repo / name).write_text(text)
    git("add", ".")
    git("commit", "-qm", "the PR")
    output = tmp_path / "github-output"
    output.touch()
    subprocess.run(
        ["bash", "-c", step["run"]],
        cwd=repo,
        env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output), **env},
        check=True,
        capture_output=True,
    )
    line = next(x for x in output.read_text().splitlines() if x.startswith("stacks="))
    stacks: list[str] = json.loads(line.removeprefix("stacks="))
    return stacks


@pytest.mark.skipif(shutil.which("jq") is None, reason="the workflow's step uses jq")
def test_only_real_stacks_are_previewed_never_the_example(tmp_path: Path) -> None:
    changed = {
        "Pulumi.dev.yaml": "config: {devserver:user: changed}\n",  # the example stack file
        "Pulumi.alice.yaml": "config: {}\n",
        "README.md": "docs\n",
    }
    assert run_stack_finder(tmp_path, changed) == ["alice"]


@pytest.mark.skipif(shutil.which("jq") is None, reason="the workflow's step uses jq")
def test_a_configured_stack_list_wins_and_pr_controlled_names_are_not_passed_on(
    tmp_path: Path,
) -> None:
    changed = {"Pulumi.$(id).yaml": "config: {}\n"}
    assert run_stack_finder(tmp_path, changed) == []
    assert run_stack_finder(tmp_path / "2", changed, PREVIEW_STACKS="alice bob") == [
        "alice",
        "bob",
    ]


def test_binary_cache_is_filled_from_main_with_oidc_and_never_from_pull_requests() -> None:
    workflow = load("binary-cache.yml")
    triggers = workflow[True]  # YAML 1.1 reads `on` as True
    assert set(triggers) == {"push", "schedule", "workflow_dispatch"}, "no pull_request trigger"
    assert triggers["push"]["branches"] == ["main"]
    assert "nix/**" in triggers["push"]["paths"], (
        "a push to the shared flake (or its lock) fills it"
    )
    # The weekly flake-lock workflow's PR changes nix/flake.lock: its merge is such a push.
    lock = load("flake-lock.yml")["jobs"]["pull-request"]["steps"][-1]["with"]["add-paths"]
    assert any(fnmatch.fnmatchcase(lock, p) for p in triggers["push"]["paths"]), lock
    assert workflow["permissions"] == {}
    push = workflow["jobs"]["push"]
    assert push["permissions"] == {"id-token": "write", "contents": "read"}
    creds = next(s for s in push["steps"] if "configure-aws-credentials" in s.get("uses", ""))
    assert creds["with"]["role-to-assume"] == "${{ vars.BINARY_CACHE_ROLE_ARN }}"
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(creds["with"])
    assert "secrets." not in (WORKFLOWS / "binary-cache.yml").read_text(), "no stored credentials"


def test_binary_cache_signing_key_stays_in_a_private_file_that_is_always_removed() -> None:
    steps = {s.get("name", ""): s for s in load("binary-cache.yml")["jobs"]["push"]["steps"]}
    key_file = "$RUNNER_TEMP/binary-cache-signing-key"
    read = steps["Read the signing key"]["run"]
    assert read.index("umask 077") < read.index(key_file), "the key file is created 0600"
    assert "--query SecretString --output text >" in read, "the key goes to the file, not the log"
    push = steps["Push the signed closure"]["run"]
    assert f"secret-key={key_file}" in push
    assert (
        'nix copy --to "$to" "$OUT"' in push
        and 'nix flake archive ./nix "$lock_flag" --to "$to"' in push
    )
    remove = steps["Remove the signing key"]
    assert remove["if"] == "always()" and f'rm -f "{key_file}"' in remove["run"]
    order = list(steps)
    assert order.index("Read the signing key") < order.index("Push the signed closure")
    assert order.index("Push the signed closure") < order.index("Remove the signing key")


@pytest.mark.skipif(shutil.which("nix-instantiate") is None, reason="nix-instantiate not installed")
def test_binary_cache_builds_every_host_natively_on_its_own_architecture() -> None:
    """The host list the matrix is made of, evaluated over stand-in nixosConfigurations."""
    listing = next(
        s for s in load("binary-cache.yml")["jobs"]["hosts"]["steps"] if s.get("id") == "list"
    )
    configurations = (
        '{ sample-x86_64.pkgs.stdenv.hostPlatform.system = "x86_64-linux";'
        ' sample-aarch64.pkgs.stdenv.hostPlatform.system = "aarch64-linux"; }'
    )
    result = subprocess.run(
        [
            *("nix-instantiate", "--option", "experimental-features", "", "--eval", "--strict"),
            *("--json", "--expr", f"({listing['env']['HOSTS_EXPR']}) {configurations}"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(json.loads(result.stdout), key=lambda h: h["host"]) == [
        {"host": "sample-aarch64", "system": "aarch64-linux", "runner": "ubuntu-24.04-arm"},
        {"host": "sample-x86_64", "system": "x86_64-linux", "runner": "ubuntu-latest"},
    ]
    push = load("binary-cache.yml")["jobs"]["push"]
    assert push["runs-on"] == "${{ matrix.runner }}"
    assert push["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.hosts.outputs.hosts) }}"
    build = next(s for s in push["steps"] if s.get("id") == "build")["run"]
    assert "nixosConfigurations.$HOST.config.system.build.toplevel" in build
    assert "nix path-info --recursive --size --closure-size --json" in build
