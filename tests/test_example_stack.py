"""The shipped example stack evaluates; a user's own values in a stack file never fail the suite.

The suite runs on its own stack (`tests/stacks/Pulumi.dev.yaml`). The repository's
`Pulumi.dev.yaml` is an example a user may turn into their stack, so it is evaluated only while it
is still the shipped example: no secrets and no encryption salt (which `pulumi config set --secret`
writes), the fake AWS's region, and personal values that are reserved for documentation (SSH
CIDRs in RFC 5737 / RFC 3849 ranges, an RFC 2606 email domain). A real stack cannot pass that: a
documentation range reaches no machine. Anything else is the user's, and the test skips saying why.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.program import FIXTURE_STACKS, REGION, ROOT, ProgramRun, stack_config

EXAMPLE = ROOT / "Pulumi.dev.yaml"
DOCUMENTATION_NETS = [
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]
DOCUMENTATION_DOMAINS = ("example.com", "example.org", "example.net")
# Keys the CLI adds to a stack file once it holds secrets (passphrase salt, KMS/Cloud key).
SECRET_MATERIAL = ("encryptionsalt", "encryptedkey", "secretsprovider")

# Someone's own stack, as `pulumi config set` leaves it: another region, their names, their
# address, and a token set with --secret (obviously fake ciphertext and salt).
USERS_OWN_STACK = """\
encryptionsalt: v1:ZmFrZS1zYWx0:v1:ZmFrZS1ub25jZQ==:ZmFrZS1jaGVjaw==
config:
  aws:region: us-east-2
  devserver:user: bob
  devserver:githubUser: bob-on-github
  devserver:fullName: Bob Builder
  devserver:email: bob@bob-builds.dev
  devserver:flake: github:bob-builds/devserver?dir=nix
  devserver:preset: graviton-spot
  devserver:availabilityZone: us-east-2b
  devserver:sshAllowedCidrs:
    - 100.64.12.34/32
  devserver:githubToken:
    secure: v1:ZmFrZS1ub25jZQ==:ZmFrZS1jaXBoZXJ0ZXh0LW5vdC1hLXRva2Vu
"""


def users_own_values(doc: dict[str, Any]) -> list[str]:
    """Why a stack file is not the shipped example; empty when it is."""
    reasons = [f"it has `{key}`" for key in SECRET_MATERIAL if key in doc]
    config = doc.get("config") or {}
    reasons += [
        f"{key} is an encrypted secret"
        for key, value in config.items()
        if isinstance(value, dict) and "secure" in value
    ]
    if config.get("aws:region") != REGION:
        reasons.append(f"aws:region is {config.get('aws:region')!r}")
    for cidr in config.get("devserver:sshAllowedCidrs") or []:
        try:
            net = ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            reasons.append(f"sshAllowedCidrs has {cidr!r}")
            continue
        if not any(net.version == d.version and net.subnet_of(d) for d in DOCUMENTATION_NETS):
            reasons.append(f"sshAllowedCidrs has {cidr!r}")
    email = str(config.get("devserver:email") or "")
    if email.rpartition("@")[2] not in DOCUMENTATION_DOMAINS:
        reasons.append("devserver:email is a real address")
    return reasons


def test_the_shipped_example_stack_evaluates_while_it_is_the_example(
    program: Callable[..., ProgramRun],
) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text()) if EXAMPLE.exists() else None
    if not isinstance(doc, dict):
        pytest.skip("no example stack Pulumi.dev.yaml in this checkout")
    reasons = users_own_values(doc)
    if reasons:
        pytest.skip(
            "Pulumi.dev.yaml holds your own values (" + "; ".join(reasons) + "); only the shipped"
            " example is evaluated, the suite itself runs on tests/stacks/Pulumi.dev.yaml"
        )

    run = program(base=stack_config(stack_file=EXAMPLE))

    assert run.outputs["user"] == doc["config"]["devserver:user"], "Pulumi.dev.yaml: user output"
    assert len(run.of_type("aws:ec2/instance:Instance")) == 1, "Pulumi.dev.yaml: one machine"


def test_placeholder_values_are_recognised_and_a_users_own_stack_is_not() -> None:
    # The suite's fixture carries the same kind of placeholders as the shipped example.
    fixture = yaml.safe_load((FIXTURE_STACKS / "Pulumi.dev.yaml").read_text())
    assert users_own_values(fixture) == [], "tests/stacks/Pulumi.dev.yaml: placeholders only"
    assert users_own_values(yaml.safe_load(USERS_OWN_STACK)) == [
        "it has `encryptionsalt`",
        "devserver:githubToken is an encrypted secret",
        "aws:region is 'us-east-2'",
        "sshAllowedCidrs has '100.64.12.34/32'",
        "devserver:email is a real address",
    ]


def _copy_of_the_repository(dest: Path) -> Path:
    """What a fresh clone holds: tracked and new, non-ignored files (no .venv, no state)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        shutil.copytree(
            ROOT,
            dest,
            ignore=shutil.ignore_patterns(".git", ".venv", "venv", ".pulumi-state", "*cache*"),
        )
        return dest
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.mark.skipif(
    os.environ.get("DEVSERVER_NESTED_SUITE") == "1", reason="already inside the copied suite"
)
def test_a_users_own_values_and_encrypted_token_in_pulumi_dev_yaml_never_fail_the_suite(
    tmp_path: Path,
) -> None:
    clone = _copy_of_the_repository(tmp_path / "clone")
    (clone / "Pulumi.dev.yaml").write_text(USERS_OWN_STACK)
    # Every module that evaluates the program or reads stack files (the rest never touch them).
    modules = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py"))

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *modules],
        cwd=clone,
        env={**os.environ, "DEVSERVER_NESTED_SUITE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
    assert done.returncode == 0, f"the suite failed on a user's own Pulumi.dev.yaml:\n{tail}"
    assert "Pulumi.dev.yaml holds your own values" in done.stdout, (
        f"the example stack test should have skipped on the user's values:\n{tail}"
    )
