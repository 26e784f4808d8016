"""`scripts/up` and `scripts/pulumi`: one backend for every command, and checks before the CLI runs.

Each test copies the scripts, Pulumi.yaml and a stack file into a temporary repository and puts a
fake `pulumi` on PATH that records its arguments and the backend it was given. `.venv/bin/python`
there is this interpreter, and the requirements stamp is current, so no pip runs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPLETE_STACK = """\
config:
  aws:region: eu-west-1
  devserver:user: alice
  devserver:githubUser: alice-example
  devserver:flake: github:alice-example/devserver?dir=nix
  devserver:sshAllowedCidrs:
    - 203.0.113.7/32
"""
FAKE_PULUMI = """\
#!/usr/bin/env bash
# Records argv and the backend; fails `stack select` when FAKE_NO_STACK is set, as the CLI does.
python3 -c 'import json, os, sys; print(json.dumps({"argv": sys.argv[1:], \
"backend": os.environ.get("PULUMI_BACKEND_URL")}))' "$@" >>"$FAKE_PULUMI_LOG"
if [ "$1" = stack ] && [ "$2" = select ] && [ -n "${FAKE_NO_STACK:-}" ]; then
  echo "error: no stack named '$3' found" >&2
  exit 255
fi
"""
KEYS = {
    "AWS_ACCESS_KEY_ID": "fake-access-key-id-for-tests",
    "AWS_SECRET_ACCESS_KEY": "fake-secret-key",
}


class Repo:
    """A temporary copy of what scripts/up needs, with a fake CLI and a clean environment."""

    def __init__(self, tmp: Path, with_cli: bool = True) -> None:
        self.root = tmp / "repo"
        (self.root / "scripts").mkdir(parents=True)
        for name in ("scripts/up", "scripts/pulumi", "scripts/preflight.py", "Pulumi.yaml"):
            shutil.copy2(ROOT / name, self.root / name)
        requirements = ROOT / "requirements.txt"
        shutil.copy2(requirements, self.root / "requirements.txt")
        venv_bin = self.root / ".venv" / "bin"
        venv_bin.mkdir(parents=True)
        (venv_bin / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (venv_bin / "python").chmod(0o755)
        digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
        (self.root / ".venv" / ".devserver-requirements.sha256").write_text(digest + "\n")
        self.bin = tmp / "bin"
        self.bin.mkdir()
        if with_cli:
            (self.bin / "pulumi").write_text(FAKE_PULUMI)
            (self.bin / "pulumi").chmod(0o755)
        self.home = tmp / "home"
        self.home.mkdir()
        self.log = tmp / "pulumi-calls.jsonl"
        self.env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.home),
            "FAKE_PULUMI_LOG": str(self.log),
        }

    def stack(self, name: str, text: str = COMPLETE_STACK) -> None:
        (self.root / f"Pulumi.{name}.yaml").write_text(text)

    def run(
        self, *args: str, script: str = "scripts/up", **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.root / script), *args],
            cwd=self.root,
            env={**self.env, **env},
            stdin=subprocess.DEVNULL,  # no terminal, as in CI
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def calls(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path)


def test_up_selects_the_existing_stack_and_runs_up_on_the_local_backend(repo: Repo) -> None:
    repo.stack("alice")

    done = repo.run("alice", "--yes", **KEYS)

    assert done.returncode == 0, done.stderr
    backend = f"file://{repo.root}/.pulumi-state"
    assert repo.calls() == [
        {"argv": ["stack", "select", "alice"], "backend": backend},
        {"argv": ["up", "--stack", "alice", "--yes"], "backend": backend},
    ], "scripts/up: the CLI calls and their backend"
    assert (repo.root / ".pulumi-state").is_dir(), "scripts/pulumi creates the state directory"


def test_an_organization_qualified_stack_uses_the_stack_file_of_its_name(repo: Repo) -> None:
    repo.stack("alice")
    team = "https://api.pulumi.com"

    done = repo.run("acme/alice", PULUMI_BACKEND_URL=team, **KEYS)

    assert done.returncode == 0, done.stderr
    assert [c["argv"] for c in repo.calls()] == [
        ["stack", "select", "acme/alice"],
        ["up", "--stack", "acme/alice"],
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["config", "set", "--secret", "devserver:githubToken"],
        ["stack", "output", "sshCommand"],
        ["refresh"],
        ["destroy"],
        ["import", "aws:ec2/volume:Volume", "home", "vol-0123456789abcdef0"],
        ["stack", "init", "alice"],
    ],
)
def test_every_documented_command_goes_to_the_same_backend_as_up(
    repo: Repo, command: list[str]
) -> None:
    done = repo.run(*command, script="scripts/pulumi")

    assert done.returncode == 0, done.stderr
    assert repo.calls() == [{"argv": command, "backend": f"file://{repo.root}/.pulumi-state"}]


def test_a_team_backend_in_pulumi_backend_url_is_used_unchanged(repo: Repo) -> None:
    repo.stack("alice")
    team = "s3://acme-pulumi-state?region=eu-west-1&awssdk=v2"

    done = repo.run("alice", PULUMI_BACKEND_URL=team, **KEYS)

    assert done.returncode == 0, done.stderr
    assert {c["backend"] for c in repo.calls()} == {team}
    assert not (repo.root / ".pulumi-state").exists(), "no local state with a team backend"


def test_a_missing_stack_file_is_named_and_the_cli_never_runs(repo: Repo) -> None:
    done = repo.run("alice", **KEYS)

    assert done.returncode == 1
    assert "no stack file Pulumi.alice.yaml" in done.stderr
    assert "stack init alice" in done.stderr
    assert repo.calls() == [], "scripts/up must not call pulumi without a stack file"


def test_each_missing_required_key_gets_its_own_message(repo: Repo) -> None:
    repo.stack("alice", "config:\n  aws:region: eu-west-1\n  devserver:githubUser: alice-example\n")

    done = repo.run("alice", **KEYS)

    assert done.returncode == 1
    lines = done.stderr.splitlines()
    for key in ("devserver:user", "devserver:sshAllowedCidrs"):
        assert [line for line in lines if line.startswith(f"scripts/up: {key} is not set")], (
            f"scripts/up: no message for the missing {key}:\n{done.stderr}"
        )
    assert len(lines) == 2, f"one line per missing key:\n{done.stderr}"
    assert repo.calls() == []


def test_a_misspelt_key_is_named_with_the_key_it_was_meant_to_be(repo: Repo) -> None:
    repo.stack("alice", COMPLETE_STACK.replace("devserver:githubUser", "devserver:githubUsr"))

    done = repo.run("alice", **KEYS)

    assert done.returncode == 1
    assert (
        "devserver:githubUser is not set in Pulumi.alice.yaml (devserver:githubUsr is set: a typo?)"
        in done.stderr
    ), done.stderr
    assert (
        "devserver:githubUsr in Pulumi.alice.yaml is not a key of this program: did you mean devserver:githubUser?"
        in done.stderr
    ), done.stderr
    assert repo.calls() == []


def test_a_missing_list_key_is_set_with_path_element_by_element(repo: Repo) -> None:
    repo.stack("alice", "\n".join(COMPLETE_STACK.splitlines()[:-2]) + "\n")

    done = repo.run("alice", **KEYS)

    assert "--path 'devserver:sshAllowedCidrs[0]'" in done.stderr, done.stderr


def test_a_fleet_stack_needs_no_top_level_user(repo: Repo) -> None:
    # Each servers entry names its own user and GitHub account; the top level sets neither.
    repo.stack(
        "team",
        "config:\n  aws:region: eu-west-1\n  devserver:flake: github:acme/infra?dir=nix\n"
        '  devserver:sshAllowedCidrs: ["203.0.113.0/24"]\n'
        "  devserver:servers:\n    - {name: alice, user: alice, githubUser: alice-gh}\n",
    )

    done = repo.run("team", **KEYS)

    assert "is not set" not in done.stderr, done.stderr
    assert repo.calls(), "scripts/up goes on to the CLI"


def test_no_aws_credentials_is_reported_before_the_cli_runs(repo: Repo) -> None:
    repo.stack("alice")

    done = repo.run("alice")

    assert done.returncode == 1
    assert done.stderr.startswith("scripts/up: no AWS credentials"), done.stderr
    assert repo.calls() == []


def test_an_aws_profile_must_exist_in_the_shared_files(repo: Repo) -> None:
    repo.stack("alice")

    done = repo.run("alice", AWS_PROFILE="work-sso")

    assert done.returncode == 1
    assert "AWS_PROFILE is 'work-sso', but no such profile" in done.stderr
    assert repo.calls() == []


def test_an_sso_profile_in_the_aws_config_file_counts_as_credentials(repo: Repo) -> None:
    repo.stack("alice")
    (repo.home / ".aws").mkdir()
    (repo.home / ".aws" / "config").write_text(
        "[profile work-sso]\nsso_session = acme\nsso_account_id = 123456789012\n"
        "sso_role_name = DevServerOperator\nregion = eu-west-1\n\n"
        "[sso-session acme]\nsso_start_url = https://acme.awsapps.com/start\n"
        "sso_region = eu-west-1\n"
    )

    done = repo.run("alice", AWS_PROFILE="work-sso")

    assert done.returncode == 0, done.stderr
    assert [c["argv"][0] for c in repo.calls()] == ["stack", "up"]


def test_a_passphrase_stack_without_a_terminal_needs_the_passphrase_from_the_environment(
    repo: Repo, tmp_path: Path
) -> None:
    repo.stack(
        "alice", "encryptionsalt: v1:ZmFrZS1zYWx0:v1:ZmFrZS1ub25jZQ==:ZmFrZQ==\n" + COMPLETE_STACK
    )
    passphrase = tmp_path / "passphrase"

    missing = repo.run("alice", **KEYS)
    wrong_file = repo.run("alice", PULUMI_CONFIG_PASSPHRASE_FILE=str(passphrase), **KEYS)
    passphrase.write_text("correct horse battery staple\n")
    given = repo.run("alice", PULUMI_CONFIG_PASSPHRASE_FILE=str(passphrase), **KEYS)

    assert missing.returncode == 1
    assert "set PULUMI_CONFIG_PASSPHRASE_FILE" in missing.stderr
    assert wrong_file.returncode == 1
    assert (
        f"PULUMI_CONFIG_PASSPHRASE_FILE names {passphrase}, which is not a file"
        in wrong_file.stderr
    )
    assert given.returncode == 0, given.stderr
    assert [c["argv"][0] for c in repo.calls()] == ["stack", "up"], "the CLI ran only once ready"


def test_a_stack_missing_on_the_backend_is_not_created_behind_the_users_back(repo: Repo) -> None:
    repo.stack("alice")

    done = repo.run("alice", FAKE_NO_STACK="1", **KEYS)

    assert done.returncode == 1
    assert "stack alice is not on backend" in done.stderr
    assert [c["argv"] for c in repo.calls()] == [["stack", "select", "alice"]], (
        "scripts/up: neither --create nor `up` after a failed select"
    )


def test_without_the_cli_or_a_stack_name_the_script_says_what_is_missing(tmp_path: Path) -> None:
    repo = Repo(tmp_path, with_cli=False)
    repo.stack("alice")

    no_cli = repo.run("alice", **KEYS)
    no_stack = repo.run(**KEYS)

    assert no_cli.returncode == 1
    assert "the Pulumi CLI is not installed" in no_cli.stderr
    assert no_stack.returncode == 2
    assert no_stack.stderr.startswith("usage: ./scripts/up <stack>")
    assert repo.calls() == []


# Secure values as `pulumi config set --secret` stores them (obviously fake ciphertext).
STACK_KEYS = (
    "  aws:accessKey:\n    secure: v1:ZmFrZS1hY2Nlc3Mta2V5:ZmFrZQ==\n"
    "  aws:secretKey:\n    secure: v1:ZmFrZS1zZWNyZXQta2V5:ZmFrZQ==\n"
)


def test_credentials_only_in_the_stack_config_are_credentials(repo: Repo) -> None:
    # The AWS provider reads aws:accessKey/secretKey and aws:sharedCredentialsFiles from the stack
    # config (pulumi_aws config/vars.py); the CLI passes them on, nothing else is needed.
    repo.stack("alice", COMPLETE_STACK + STACK_KEYS)
    done = repo.run("alice")
    assert done.returncode == 0, done.stderr
    files = repo.root / "creds"
    files.write_text("[team]\naws_access_key_id = x\naws_secret_access_key = y\n")
    repo.stack(
        "bob",
        COMPLETE_STACK + f"  aws:profile: team\n  aws:sharedCredentialsFiles:\n    - {files}\n",
    )
    done = repo.run("bob")
    assert done.returncode == 0, done.stderr
