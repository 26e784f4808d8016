"""The way in under the mocks: without devserver:flake the deployment pushes this checkout's nix/,
and devserver:personalFlake layers a person's flake over the shared modules on one server."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.shared_flake import pushed_flake
from tests.program import ProgramRun

Run = Callable[..., ProgramRun]
NIX = shutil.which("nix-instantiate")
BUNDLE = "/var/lib/devserver/deploy/shared-flake.bundle"
PERSONAL = "github:alice-example/devserver-personal"
NO_FLAKE = ("devserver:flake",)


def _host_flake(run: ProgramRun, server: str = "devserver") -> str:
    return str(run.named(f"{server}-host-flake").inputs["source"].text)


def test_without_a_flake_the_deployment_pushes_nix_and_the_host_flake_names_it(
    program: Run,
) -> None:
    # A first preview: the provider checks pass and every pushed line of nix/ is shown.
    preview = program(unset=NO_FLAKE, preview=True)
    flake = pushed_flake()
    copy = preview.named("devserver-shared-flake")
    assert copy.inputs["source"].text == flake.bundle
    assert copy.inputs["remotePath"] == BUNDLE

    run = program(unset=NO_FLAKE)
    assert 'devserver.url = "path:./shared";' in _host_flake(run)
    apply = run.named("devserver-apply")
    assert f"--shared-bundle {BUNDLE}" in str(apply.inputs["create"])
    assert f"nix/ sha256={flake.digest}" in apply.inputs["triggers"], "an edit re-runs the apply"
    assert {"devserver-shared-flake"} <= {d._name for d in apply.opts.depends_on}  # type: ignore[union-attr]


def test_with_a_teams_remote_flake_nothing_is_pushed(program: Run) -> None:
    run = program()

    assert 'devserver.url = "github:acme/infra?dir=nix";' in _host_flake(run)
    assert not [r for r in run.resources if r.name.endswith("-shared-flake")]
    assert "--shared-bundle" not in str(run.named("devserver-apply").inputs["create"])


def test_a_personal_flake_is_an_input_of_that_servers_host_flake_only(program: Run) -> None:
    servers = [
        {"name": "alice", "user": "alice", "githubUser": "alice-gh", "personalFlake": PERSONAL},
        {"name": "bob", "user": "bob", "githubUser": "bob-gh"},
    ]
    run = program({"devserver:servers": servers}, unset=NO_FLAKE)

    alice, bob = _host_flake(run, "alice"), _host_flake(run, "bob")
    assert f'personal.url = "{PERSONAL}";' in alice
    assert 'personal.inputs.nixpkgs.follows = "nixpkgs";' in alice
    assert "personal.url" not in bob and "@personal" not in bob
    assert "--also-update personal" in str(run.named("alice-apply").inputs["create"])
    assert "--also-update" not in str(run.named("bob-apply").inputs["create"])


@pytest.mark.skipif(NIX is None, reason="nix-instantiate (Debian nix-bin) is not installed")
@pytest.mark.parametrize("personal", [None, PERSONAL], ids=["shared-only", "personal"])
def test_the_rendered_flake_parses_and_imports_the_personal_layer_over_the_shared_modules(
    program: Run, personal: str | None, tmp_path: Path
) -> None:
    run = program({"devserver:personalFlake": personal} if personal else {}, unset=NO_FLAKE)
    (tmp_path / "flake.nix").write_text(_host_flake(run))
    (tmp_path / "machine.json").write_text(run.named("devserver-apply").inputs["stdin"])
    subprocess.run([str(NIX), "--parse", str(tmp_path / "flake.nix")], check=True)
    # Stand-ins: nixosSystem returns its arguments; the personal flake has both module kinds.
    (tmp_path / "probe.nix").write_text(
        """
        let
          flake = import ./flake.nix;
          inputs = {
            self = { };
            nixpkgs.lib.nixosSystem = args: args;
            devserver.nixosModules.devserver = "shared";
          } // (if flake.inputs ? personal then {
            personal.nixosModules.default = "personal-nixos";
            personal.homeManagerModules.default = "personal-home";
          } else { });
          host = (flake.outputs inputs).nixosConfigurations.devserver-dev;
          settings = builtins.elemAt host.modules 1;
        in {
          inherit (flake) inputs;
          modules = builtins.length host.modules;
          first = builtins.head host.modules;
          rest = builtins.tail (builtins.tail host.modules);
          nightly = settings.devserver.autoUpgrade.extraInputs or [ ];
        }
        """
    )
    out = subprocess.run(
        [str(NIX), "--eval", "--strict", "--json", str(tmp_path / "probe.nix")],
        capture_output=True,
        text=True,
        check=True,
    )
    value: dict[str, Any] = json.loads(out.stdout)
    assert value["inputs"]["devserver"] == {"url": "path:./shared"}
    assert value["first"] == "shared"
    if personal is None:
        assert "personal" not in value["inputs"] and value["rest"] == []
        assert value["nightly"] == []
    else:
        assert value["inputs"]["personal"]["url"] == PERSONAL
        assert value["rest"] == [
            "personal-nixos",
            {"home-manager": {"users": {"alice": {"imports": ["personal-home"]}}}},
        ], "NixOS over the shared modules; home-manager for the developer only"
        assert value["nightly"] == ["personal"]
