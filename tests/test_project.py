"""Pulumi.yaml declares every key the program reads, with the defaults the code uses."""

import re
from pathlib import Path
from typing import Any

import yaml

from components import settings
from components.settings import generate

ROOT = Path(__file__).resolve().parent.parent
PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
DECLARED: dict[str, Any] = PROJECT["config"]


def test_project_is_named_devserver_and_runs_python_in_a_virtualenv() -> None:
    assert PROJECT["name"] == "devserver"
    assert PROJECT["runtime"]["name"] == "python"
    assert PROJECT["runtime"]["options"]["virtualenv"] == ".venv"


def test_the_project_declares_the_minimum_cli_version_the_readme_names() -> None:
    # pulumi/pulumi sdk/go/common/workspace/project.go: a blang/semver range the CLI checks.
    assert PROJECT.get("requiredPulumiVersion") == ">=3.200.0"
    readme = (ROOT / "README.md").read_text()
    assert "3.200 or newer" in readme, "README.md must name the same minimum CLI version"


def test_every_key_the_program_reads_is_declared_with_type_and_description() -> None:
    # The optional secrets are read but cannot be declared (see tests/test_cli_config.py).
    assert set(DECLARED) == set(settings.KNOWN_KEYS) - set(settings.SECRET_KEYS)
    for key, spec in DECLARED.items():
        assert spec.get("type") in ("string", "integer", "boolean", "array"), key
        assert len(spec.get("description", "")) > 20, f"{key} needs a description"


def test_only_the_required_keys_lack_a_default() -> None:
    # The CLI refuses to run a stack that misses a declared key without a default.
    required = {key for key, spec in DECLARED.items() if "default" not in spec}
    # devserver:flake is optional: unset, the deployment pushes this checkout's nix/.
    assert required == {"sshAllowedCidrs"}


def test_declared_defaults_are_the_code_defaults_or_mean_unset() -> None:
    defaults = {key: spec["default"] for key, spec in DECLARED.items() if "default" in spec}
    # A boolean default is meaningful (False == 0 in Python, so it is told apart by type).
    meaningful = {
        k: v
        for k, v in defaults.items()
        if isinstance(v, bool) or v not in ("", [], 0) or k == "idleStopMinutes"
    }
    assert meaningful == {
        "preset": settings.DEFAULT_PRESET,
        "nixosRelease": settings.DEFAULT_NIXOS_RELEASE,
        "homeVolumeProtect": True,
        "deploy": True,
        "ssmSessionManager": True,
        "idleStopMinutes": 0,
        "state": "running",
        "snapshots": True,
        "snapshotRetentionDays": 7,
        "binaryCache": False,
    }
    assert {k for k, v in defaults.items() if not isinstance(v, bool) and v == 0} == {
        *settings.PRESET_SIZE_KEYS,
        "idleStopMinutes",
        "rebuild",
        "githubUserId",
    }


def test_secret_keys_are_not_declared_but_documented_in_pulumi_yaml() -> None:
    # Declared, an optional secret fails the CLI's config validation either way.
    text = (ROOT / "Pulumi.yaml").read_text()
    assert not {k for k, spec in DECLARED.items() if spec.get("secret")}
    for key in settings.SECRET_KEYS:
        assert key not in DECLARED and f"devserver:{key}" in text, key


def test_pulumi_yaml_and_the_configuration_page_are_generated_from_the_key_declarations() -> None:
    # Each key is declared once (components/settings/); both files are rendered from it.
    stale = generate.stale(ROOT)
    assert not stale, (
        f"{' and '.join(stale)} {'differs' if len(stale) == 1 else 'differ'} from the key "
        "declarations in components/settings/: "
        f"run {generate.COMMAND}"
    )


def test_the_configuration_page_documents_every_key_and_readme_every_output() -> None:
    page = (ROOT / "docs/configuration.md").read_text()
    for key in (*DECLARED, *settings.SECRET_KEYS):
        assert f"`devserver:{key}`" in page, f"docs/configuration.md misses devserver:{key}"
    readme = (ROOT / "README.md").read_text()
    assert "docs/configuration.md" in readme, "README.md links the configuration reference"
    from components.devserver import CONTRACT_OUTPUTS, EXTRA_OUTPUTS

    outputs = (ROOT / "docs/team-use.md").read_text()
    for output in (*CONTRACT_OUTPUTS, *EXTRA_OUTPUTS):
        assert f"`{output}`" in outputs, f"docs/team-use.md does not document the output {output}"
    assert "./scripts/up alice" in readme and "./scripts/test" in readme


def test_readme_first_up_needs_no_repository_and_reaches_up_on_the_first_screen() -> None:
    readme = (ROOT / "README.md").read_text()
    first_up = readme.split("## First up", 1)[1].split("\n## ", 1)[0]
    block = first_up.split("```sh", 1)[1].split("```", 1)[0]
    steps = [
        "./scripts/pulumi stack init alice",
        "./scripts/pulumi config set aws:region",
        "./scripts/pulumi config set devserver:user",
        "./scripts/pulumi config set devserver:githubUser",
        "./scripts/pulumi config set --path 'devserver:sshAllowedCidrs[0]'",
        # docs/iam/operator-policy.json refuses iam:CreateRole without the boundary.
        "./scripts/pulumi config set devserver:permissionsBoundary arn:aws:iam::",
        "./scripts/check alice",
        "./scripts/up alice",
    ]
    positions = [block.find(step) for step in steps]
    assert -1 not in positions, f"README First up misses {steps[positions.index(-1)]}"
    assert positions == sorted(positions), "README First up runs its steps out of order"
    assert "devserver:flake" not in block, "a newcomer needs no repository (nix/ is pushed)"
    commands = [line.split("#")[0].split() for line in block.strip().splitlines()]
    assert all(c[0] in ("./scripts/pulumi", "./scripts/up", "./scripts/check") for c in commands), (
        "every First up command goes through the project's scripts"
    )
    first = next(i for i, line in enumerate(readme.splitlines(), 1) if "./scripts/up alice" in line)
    assert first <= 60, f"README's first ./scripts/up is on line {first}, not within the first 60"


def test_every_relative_markdown_link_in_the_readme_and_docs_resolves_to_a_file() -> None:
    link = re.compile(r"\]\(([^)\s]+)\)")
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, line in enumerate(page.read_text().splitlines(), 1):
            for target in link.findall(line):
                path = target.split("#", 1)[0]
                if not path or re.match(r"[a-z][a-z0-9+.-]*:", path):
                    continue
                if not (page.parent / path).exists():
                    broken.append(f"{page.relative_to(ROOT)}:{n}: {target}")
    assert not broken, broken
