"""The GitHub nix workflow runs the module-eval tests where nixpkgs exists, next to the flake check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "nix.yml"


def _steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps: list[dict[str, Any]] = workflow["jobs"]["flake-check"]["steps"]
    return steps


def test_module_eval_tests_run_with_the_flakes_own_nixpkgs_lib_after_the_flake_check() -> None:
    runs = [step.get("run", "") for step in _steps()]
    check = next(i for i, run in enumerate(runs) if "nix flake check ./nix" in run)
    module_eval = next(i for i, run in enumerate(runs) if "tests/nix/test_module_eval.py" in run)
    assert check < module_eval
    script = runs[module_eval]
    assert "nix flake archive ./nix" in script and ".inputs.nixpkgs.path" in script
    assert 'NIXPKGS_LIB="$nixpkgs/lib"' in script
    # The tests skip without a lib: the step must fail first instead of going green on skips.
    assert 'test -f "$NIXPKGS_LIB/default.nix"' in script


def test_changes_to_the_module_eval_harness_trigger_the_workflow() -> None:
    on = yaml.safe_load(WORKFLOW.read_text())[True]  # YAML 1.1 reads `on` as True
    for event in ("push", "pull_request"):
        assert "tests/nix/**" in on[event]["paths"], event
