"""Stack config as the Pulumi CLI sees it, before the program runs.

Our mocks hand the program whatever config a test gives them; the CLI first validates the stack
against Pulumi.yaml and refuses to run at all when that fails. `cli_config` below re-implements
those rules, from pulumi/pulumi at commit 1b5949891b3cefcb9974752b24a5ecef0acc86c8:

- pkg/workspace/config.go `mergeConfig` (what `ValidateStackConfigAndApplyProjectConfig` runs
  for `pulumi preview`/`up`/`destroy`): a declared key in the project's namespace that the stack
  does not set and that has no `default` (or `value`) is missing -> "Stack '<s>' is missing
  configuration value '<key>'"; a declared default is merged into the stack config as a
  *plaintext* value; undeclared keys are never looked at.
- pkg/workspace/config.go `validateStackConfigValues` / `validateStackConfigValue`: only for
  explicitly typed declarations, `secret: true` requires the merged value to be secure ->
  "Stack '<s>' with configuration key '<key>' must be encrypted as it's secret" (so a plaintext
  default always fails it), then the value must match the type (`ValidateConfigValue`).
- sdk/go/common/workspace/project.go `ValidateConfigValue` (string; integer also from a whole
  float or a string Atoi parses; boolean also from "true"/"false"; object; array with `items`)
  and `Project.Validate` (no default and value together; an array needs `items`; a typed
  default must match its type; a key outside the project namespace takes only a `value`).
- `createConfigValue`: a default of a primitive type becomes its `%v` text, others JSON.

The same rules hold back to v3.100.0 (where they lived in sdk/go/common/workspace/config.go).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import settings
from tests.program import FAKE_TOKEN, ROOT, ProgramRun, fake_openssh_private_key

Run = Callable[..., ProgramRun]

PROJECT_FILES = [ROOT / "Pulumi.yaml", ROOT / "examples/ssh-config/Pulumi.yaml"]
# Example stacks shipped with the repo and stack files the tests use as fixtures.
STACK_FILES = sorted(
    {
        *ROOT.glob("Pulumi.*.yaml"),
        *ROOT.glob("examples/*/Pulumi.*.yaml"),
        *ROOT.glob("tests/**/Pulumi.*.yaml"),
    }
)


class CliConfigError(Exception):
    """What the CLI prints before refusing to run the program."""


@dataclass(frozen=True)
class Value:
    """A stack config value as the CLI holds it: text (JSON for objects), and whether secure."""

    text: str
    secure: bool = False
    is_object: bool = False


def _stack_value(raw: Any) -> Value:
    """How a Pulumi.<stack>.yaml entry unmarshals into config.Value."""
    if isinstance(raw, dict) and set(raw) == {"secure"}:
        # The ciphertext is not ours to decrypt; the type checks below see a string.
        return Value("<decrypted secret>", secure=True)
    if isinstance(raw, dict | list):
        return Value(json.dumps(raw), is_object=True)
    if isinstance(raw, bool):
        return Value("true" if raw else "false")
    return Value(str(raw))


def _default_value(raw: Any) -> Value:
    """createConfigValue: primitives as their `%v` text, anything else as JSON; never secure."""
    if isinstance(raw, bool):
        return Value("true" if raw else "false")
    if isinstance(raw, int | str):
        return Value(str(raw))
    return Value(json.dumps(raw), is_object=True)


def _valid(type_name: str, items: dict[str, Any] | None, value: Any) -> bool:
    """ValidateConfigValue."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return True
        if isinstance(value, float):
            return value == int(value)
        if isinstance(value, str):
            try:
                int(value, 10)
            except ValueError:
                return False
            return True
        return False
    if type_name == "boolean":
        return value in ("true", "false") or isinstance(value, bool)
    if type_name == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or items is None:
        return False
    return all(_valid(items["type"], items.get("items"), item) for item in value)


def validate_project(project: dict[str, Any]) -> None:
    """Project.Validate (the config part)."""
    name = project["name"]
    for key, spec in (project.get("config") or {}).items():
        if not isinstance(spec, dict):
            continue
        if "default" in spec and "value" in spec:
            raise CliConfigError(f"project config '{key}' cannot have both a 'default' and 'value'")
        if ":" not in key or key.startswith(f"{name}:"):
            if spec.get("type") == "array" and "items" not in spec:
                raise CliConfigError(f"The configuration key '{key}' declares an array ...")
            typed_default = "type" in spec and spec.get("default") is not None
            if typed_default and not _valid(spec["type"], spec.get("items"), spec["default"]):
                raise CliConfigError(
                    f"The default value specified for configuration key '{key}' is not "
                    f"of the expected type '{spec['type']}'"
                )
        elif "type" in spec or "default" in spec or "value" not in spec:
            raise CliConfigError(f"Configuration key '{key}' is not namespaced by the project ...")


def cli_config(
    project: dict[str, Any], stack: str, stack_config: dict[str, Any]
) -> dict[str, Value]:
    """mergeConfig(validate=true): the config the CLI hands the program, or the CLI's refusal."""
    validate_project(project)
    name = project["name"]
    merged = {k: _stack_value(v) for k, v in stack_config.items()}
    declared = {k: v for k, v in (project.get("config") or {}).items() if isinstance(v, dict)}

    def full(key: str) -> str:
        return key if ":" in key else f"{name}:{key}"

    missing = []
    for key in sorted(declared):
        spec = declared[key]
        found = full(key) in merged
        # YAML `default:` with no value is nil in Go: no default at all.
        default = spec.get("default", spec.get("value"))
        if not found and default is None and full(key).split(":")[0] == name:
            missing.append(key)
        elif not found and default is not None:
            merged[full(key)] = _default_value(default)
    if missing:
        keys = " ".join(f"'{k}'" for k in missing)
        raise CliConfigError(f"Stack '{stack}' is missing configuration value(s) {keys}")
    for key in sorted(declared):
        spec = declared[key]
        if "type" not in spec:
            continue
        value = merged.get(full(key), Value(""))
        if spec.get("secret") and not value.secure:
            raise CliConfigError(
                f"Stack '{stack}' with configuration key '{key}' must be encrypted as it's secret"
            )
        content = json.loads(value.text) if value.is_object else value.text
        if not _valid(spec["type"], spec.get("items"), content):
            raise CliConfigError(
                f"Stack '{stack}' with configuration key '{key}' must be of type '{spec['type']}'"
            )
    return merged


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


PROJECT = _load(ROOT / "Pulumi.yaml")
# The smallest stack the README's default path needs: no token, a generated deploy key.
MINIMAL_STACK = {
    "aws:region": "eu-west-1",
    "devserver:user": "alice",
    "devserver:githubUser": "alice-example",
    "devserver:flake": "github:acme/infra?dir=nix",
    "devserver:sshAllowedCidrs": ["203.0.113.7/32"],
}


def _program_config(merged: dict[str, Value]) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged config as the program receives it (PULUMI_CONFIG: text, secrets marked)."""
    plain = {k: v.text for k, v in merged.items() if not v.secure}
    secret = {k: FAKE_TOKEN for k, v in merged.items() if v.secure}
    return plain, secret


@pytest.mark.parametrize("path", PROJECT_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_project_file_passes_the_clis_project_validation(path: Path) -> None:
    validate_project(_load(path))


def test_a_stack_without_either_secret_passes_the_cli_and_runs(program: Run) -> None:
    merged = cli_config(PROJECT, "dev", MINIMAL_STACK)
    plain, secret = _program_config(merged)
    run = program(base=plain, secrets=secret)
    assert run.outputs["githubTokenSecretArn"] is None, "no token set: no token secret"
    assert run.of_type("tls:index/privateKey:PrivateKey"), "no key set: a deploy key is generated"


def _readme_stacks() -> list[dict[str, Any]]:
    """The stack files the README and docs/ show (```yaml blocks with a config: map)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    readme = "".join(p.read_text(encoding="utf-8") for p in pages)
    blocks = [yaml.safe_load(b.split("```", 1)[0]) for b in readme.split("```yaml\n")[1:]]
    return [
        b["config"] for b in blocks if isinstance(b, dict) and isinstance(b.get("config"), dict)
    ]


def test_the_readme_fleet_stack_passes_the_cli_and_runs(program: Run) -> None:
    fleets = [c for c in _readme_stacks() if "devserver:servers" in c]
    assert fleets, "the README shows a fleet stack"
    for config in fleets:
        # No top-level user or githubUser: the CLI must not require them.
        assert "devserver:user" not in config and "devserver:githubUser" not in config
        plain, secret = _program_config(cli_config(PROJECT, "team", config))
        run = program(base=plain, secrets=secret, stack="team")
        assert set(run.outputs["servers"]) == {s["name"] for s in config["devserver:servers"]}


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_stack_file_passes_the_clis_config_validation(path: Path) -> None:
    # A stack file belongs to the nearest Pulumi.yaml above it (test fixtures: the repo's).
    project_file = next(d / "Pulumi.yaml" for d in path.parents if (d / "Pulumi.yaml").exists())
    project = _load(project_file)
    config = _load(path).get("config") or {}
    cli_config(project, path.name.split(".")[1], config)


def test_the_example_consumer_needs_only_its_stack_reference() -> None:
    project = _load(ROOT / "examples/ssh-config/Pulumi.yaml")
    with pytest.raises(CliConfigError, match=r"missing configuration value.*'devserverStack'"):
        cli_config(project, "dev", {})
    cli_config(project, "dev", {"devserver-ssh-config:devserverStack": "acme/devserver/alice"})


def test_secrets_set_with_config_set_secret_pass_the_cli_and_reach_the_program_as_secrets(
    program: Run,
) -> None:
    stack = {
        **MINIMAL_STACK,
        "devserver:githubToken": {"secure": "v1:ZmFrZQ=="},
        "devserver:deployPrivateKey": {"secure": "v1:ZmFrZQ=="},
    }
    merged = cli_config(PROJECT, "dev", stack)
    assert merged["devserver:githubToken"].secure and merged["devserver:deployPrivateKey"].secure
    plain, secret = _program_config(merged)
    # The pass-phrase would decrypt these to a token and a key of the shapes the program checks.
    secret["devserver:deployPrivateKey"] = fake_openssh_private_key()
    run = program(base=plain, secrets=secret)
    assert run.outputs["githubTokenSecretArn"], "the token secret exists"


def test_a_plaintext_token_passes_the_cli_but_the_program_refuses_it(program: Run) -> None:
    merged = cli_config(PROJECT, "dev", {**MINIMAL_STACK, "devserver:githubToken": FAKE_TOKEN})
    plain, _ = _program_config(merged)
    run = program(base=plain, raise_errors=False)
    assert "devserver:githubToken must be stored as a secret" in str(run.error)
    assert FAKE_TOKEN not in str(run.error), "the error never repeats the token"


def test_a_misspelt_secret_key_passes_the_cli_but_the_program_names_the_right_one(
    program: Run,
) -> None:
    merged = cli_config(PROJECT, "dev", {**MINIMAL_STACK, "devserver:githubTokn": "x"})
    plain, _ = _program_config(merged)
    run = program(base=plain, raise_errors=False)
    assert "devserver:githubTokn is not a configuration key" in str(run.error)
    assert "did you mean devserver:githubToken?" in str(run.error)


def test_no_declared_key_is_secret_with_a_default_or_required_without_being_needed() -> None:
    # The two ways a declaration makes an optional secret impossible.
    for key, spec in PROJECT["config"].items():
        if spec.get("secret") and "type" in spec:
            assert "default" not in spec, f"{key}: a plaintext default fails `secret: true`"
    required = {k for k, spec in PROJECT["config"].items() if "default" not in spec}
    # user and githubUser are per server: a fleet sets them in each entry, not at the top;
    # flake is optional (unset, the deployment pushes this checkout's nix/).
    assert required == {"sshAllowedCidrs"}
    assert not set(settings.SECRET_KEYS) & set(PROJECT["config"])


def test_the_cli_rules_refuse_what_the_cli_refuses() -> None:
    # The re-implementation itself: each rule fails where pulumi/pulumi's own tests say it does.
    project = {
        "name": "p",
        "config": {
            "secretWithDefault": {"type": "string", "secret": True, "default": ""},
            "needed": {"type": "string"},
            "count": {"type": "integer", "default": 1},
        },
    }
    with pytest.raises(CliConfigError, match="must be encrypted as it's secret"):
        cli_config(project, "dev", {"p:needed": "x"})
    del project["config"]["secretWithDefault"]
    with pytest.raises(CliConfigError, match=r"missing configuration value.*'needed'"):
        cli_config(project, "dev", {})
    with pytest.raises(CliConfigError, match="'count' must be of type 'integer'"):
        cli_config(project, "dev", {"p:needed": "x", "p:count": "many"})
    assert cli_config(project, "dev", {"p:needed": "x", "p:undeclared": "y"})["p:count"].text == "1"
