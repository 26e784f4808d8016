"""What `./scripts/up <stack>` checks before it calls the Pulumi CLI, one clear message per problem.

Usage: python scripts/preflight.py <stack>   (exit 0: ready; exit 1: each problem on stderr)

It reads only local files and the environment, never AWS: the stack file exists, every key the
CLI requires is set (`aws:region` and the keys Pulumi.yaml declares without a default), and AWS
credentials are configured somewhere the AWS SDK looks (environment keys, a web identity or
container role, a profile in the shared files, or `aws:profile`), or in the stack config itself
(`aws:accessKey`/`aws:secretKey`, or profiles in `aws:sharedConfigFiles`/`sharedCredentialsFiles`).
Whether they are still valid (an expired SSO session) only AWS can say; Pulumi reports that
itself. A passphrase stack run without a terminal needs PULUMI_CONFIG_PASSPHRASE(_FILE).
"""

from __future__ import annotations

import configparser
import difflib
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "devserver"
FIRST_UP = "README.md, 'First up'"


# Per-server keys a single-server stack must set at the top (a fleet sets them in each entry).
SERVER_REQUIRED = (f"{NAMESPACE}:user", f"{NAMESPACE}:githubUser")
# Keys Pulumi.yaml cannot declare (optional secrets; see its header) but the program reads.
UNDECLARED_KEYS = (f"{NAMESPACE}:githubToken", f"{NAMESPACE}:deployPrivateKey")


def known_keys(project: dict[str, Any]) -> list[str]:
    """Every `devserver:` key the program reads: Pulumi.yaml's declarations and the secrets."""
    declared = project.get("config") or {}
    own = [key if ":" in key else f"{NAMESPACE}:{key}" for key in declared]
    return sorted({*own, *UNDECLARED_KEYS})


def set_command(stack: str, key: str, project: dict[str, Any]) -> str:
    """The command that sets a key; a list key is set element by element with --path."""
    spec = (project.get("config") or {}).get(key.removeprefix(f"{NAMESPACE}:"))
    if isinstance(spec, dict) and spec.get("type") == "array":
        return f"./scripts/pulumi config set --stack {stack} --path '{key}[0]' …"
    return f"./scripts/pulumi config set --stack {stack} {key} …"


def typos(config: dict[str, Any], known: list[str]) -> dict[str, str]:
    """Each unknown `devserver:` key of the stack file, with the known key it is closest to."""
    found = {}
    for key in sorted(k for k in config if k.startswith(f"{NAMESPACE}:") and k not in known):
        close = difflib.get_close_matches(key, known, n=1)
        found[key] = close[0] if close else ""
    return found


def required_keys(project: dict[str, Any], config: dict[str, Any] | None = None) -> list[str]:
    """Keys the CLI refuses to run without (declared without a default), plus the region, plus
    the per-server keys when the stack is a single server."""
    declared = project.get("config") or {}
    own = [
        key if ":" in key else f"{NAMESPACE}:{key}"
        for key, spec in declared.items()
        if isinstance(spec, dict) and "default" not in spec
    ]
    single = not (config or {}).get(f"{NAMESPACE}:servers")
    return ["aws:region", *own, *(SERVER_REQUIRED if single else ())]


def _profiles(path: Path, config_file: bool) -> set[str]:
    """Profile names in an AWS shared config or credentials file."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        return set()
    names = set()
    for section in parser.sections():
        if config_file:
            # ~/.aws/config names them `[profile x]`, except `[default]`; sso-session is no profile.
            if section == "default":
                names.add("default")
            elif section.startswith("profile "):
                names.add(section.removeprefix("profile ").strip())
        else:
            names.add(section)
    return names


def aws_credentials_problem(
    env: dict[str, str], stack_profile: str | None, stack: dict[str, Any] | None = None
) -> str | None:
    """None when the AWS SDK has credentials to find, else what to do. `stack` is the stack's
    config: the AWS provider also takes keys and shared files from `aws:` keys there."""
    aws = stack or {}
    if aws.get("aws:accessKey") and aws.get("aws:secretKey"):
        return None  # static keys in the stack config (pulumi config set --secret aws:secretKey)
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return None
    if env.get("AWS_WEB_IDENTITY_TOKEN_FILE") and env.get("AWS_ROLE_ARN"):
        return None
    if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or env.get(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    ):
        return None
    home = Path(env.get("HOME") or Path.home())
    config_file = Path(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config")
    credentials_file = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials")
    # aws:sharedConfigFiles / aws:sharedCredentialsFiles replace the default files.
    config_files = _paths(aws.get("aws:sharedConfigFiles")) or [config_file]
    credentials_files = _paths(aws.get("aws:sharedCredentialsFiles")) or [credentials_file]
    known = set().union(
        *(_profiles(p, True) for p in config_files),
        *(_profiles(p, False) for p in credentials_files),
    )
    config_file, credentials_file = config_files[0], credentials_files[0]
    profile = stack_profile or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE")
    source = "aws:profile" if stack_profile else "AWS_PROFILE"
    if profile:
        if profile in known:
            return None
        return (
            f"{source} is {profile!r}, but no such profile is in {config_file} or "
            f"{credentials_file}: run `aws configure --profile {profile}` or "
            f"`aws configure sso --profile {profile}`"
        )
    if "default" in known:
        return None
    if env.get("DEVSERVER_AWS_CREDENTIALS") == "instance-role":
        return None  # the operator says the machine's own role (instance metadata) is meant
    return (
        "no AWS credentials: set AWS_PROFILE to a profile (`aws configure sso` or "
        "`aws configure`), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; on an EC2 machine "
        "with a role, set DEVSERVER_AWS_CREDENTIALS=instance-role"
    )


def _paths(value: Any) -> list[Path]:
    """A list-of-paths config value (a YAML list, or its JSON text) as paths."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [value]
    return [Path(str(v)).expanduser() for v in value] if isinstance(value, list) else []


def passphrase_problem(doc: dict[str, Any], env: dict[str, str], interactive: bool) -> str | None:
    """None when Pulumi can get the passphrase of a passphrase-encrypted stack, else what to do."""
    passphrase_file = env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if passphrase_file and not Path(passphrase_file).expanduser().is_file():
        return f"PULUMI_CONFIG_PASSPHRASE_FILE names {passphrase_file}, which is not a file"
    # `encryptionsalt` marks the passphrase secrets provider (KMS and Pulumi Cloud stacks lack it).
    if "encryptionsalt" not in doc or passphrase_file or "PULUMI_CONFIG_PASSPHRASE" in env:
        return None
    if interactive:
        return None  # Pulumi asks for it
    return (
        "this stack's secrets need its passphrase and there is no terminal to ask on: set "
        "PULUMI_CONFIG_PASSPHRASE_FILE to a file holding it (or PULUMI_CONFIG_PASSPHRASE)"
    )


def problems(stack: str, root: Path, env: dict[str, str], interactive: bool = False) -> list[str]:
    """Everything that would make `pulumi up` on this stack fail before it starts."""
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        return [
            f"no stack file Pulumi.{stack}.yaml: create the stack and set its keys first "
            f"(`./scripts/pulumi stack init {stack}`, then `./scripts/pulumi config set …`; "
            f"see {FIRST_UP})"
        ]
    found: list[str] = []
    project = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    try:
        doc = yaml.safe_load(stack_file.read_text()) or {}
    except yaml.YAMLError as err:
        return [f"Pulumi.{stack}.yaml is not valid YAML: {err}"]
    config = doc.get("config") or {}
    misspelt = typos(config, known_keys(project))
    meant = {right: wrong for wrong, right in misspelt.items() if right}
    for key in required_keys(project, config):
        if config.get(key) in (None, "", []):
            typo = f" ({meant[key]} is set: a typo?)" if key in meant else ""
            found.append(
                f"{key} is not set in Pulumi.{stack}.yaml{typo}: "
                f"`{set_command(stack, key, project)}` (see {FIRST_UP})"
            )
    for wrong, right in misspelt.items():
        hint = f"did you mean {right}?" if right else "see docs/configuration.md for the keys"
        found.append(
            f"{wrong} in Pulumi.{stack}.yaml is not a key of this program: {hint} "
            f"(remove it with `./scripts/pulumi config rm --stack {stack} {wrong}`)"
        )
    problem = passphrase_problem(doc, env, interactive)
    if problem:
        found.append(problem)
    profile = config.get("aws:profile")
    problem = aws_credentials_problem(env, profile if isinstance(profile, str) else None, config)
    if problem:
        found.append(problem)
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1]:
        sys.stderr.write("usage: scripts/preflight.py <stack>\n")
        return 2
    found = problems(argv[1], ROOT, dict(os.environ), interactive=sys.stdin.isatty())
    for problem in found:
        sys.stderr.write(f"scripts/up: {problem}\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
