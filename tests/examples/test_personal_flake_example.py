"""examples/personal-flake: a layer the host flake imports over the shared modules, evaluated with
stand-ins for nixpkgs (Debian's Nix 2.8 evaluates it; full NixOS evaluation is the workflow's)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from components.host_flake import HostFlake, machine_json

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "personal-flake" / "flake.nix"
NIX = shutil.which("nix-instantiate")

pytestmark = pytest.mark.skipif(NIX is None, reason="nix-instantiate (Debian nix-bin) is missing")


def test_the_example_is_imported_over_the_shared_modules_for_nixos_and_home_manager(
    tmp_path: Path,
) -> None:
    host = HostFlake("path:./shared", "devserver-alice", "x86_64-linux", "alice", "Alice",
                     "alice@example.com", "alice-gh", "eu-west-1", None, 0, "26.05",
                     personalFlake="github:alice-gh/devserver-personal")  # fmt: skip
    (tmp_path / "flake.nix").write_text(host.render())
    (tmp_path / "machine.json").write_text(machine_json("/dev/disk/by-id/x", ["ssh-ed25519 AAAA"]))
    probe = tmp_path / "probe.nix"
    probe.write_text(
        f"""
        let
          flake = import ./flake.nix;
          personal = (import {EXAMPLE}).outputs {{ self = personal; }};
          out = flake.outputs {{
            self = {{ }};
            nixpkgs.lib.nixosSystem = args: args;
            devserver.nixosModules.devserver = "shared";
            inherit personal;
          }};
          modules = out.nixosConfigurations.devserver-alice.modules;
          pkgs = {{ ripgrep = "rg"; fd = "fd"; htop = "htop"; jq = "jq"; }};
          home = builtins.elemAt modules 3;
          hm = builtins.head home.home-manager.users.alice.imports;
        in {{
          input = flake.inputs.personal;
          first = builtins.head modules;
          nixos = (builtins.elemAt modules 2 {{ inherit pkgs; }}).environment.systemPackages;
          homePackages = (hm {{ inherit pkgs; }}).home.packages;
          vscode = (hm {{ inherit pkgs; }}).home.file.".vscode-server/data/Machine/settings.json".text;
          nightly = (builtins.elemAt modules 1).devserver.autoUpgrade.extraInputs;
        }}
        """
    )
    result = subprocess.run(
        [str(NIX), "--eval", "--strict", "--json", str(probe)],
        capture_output=True,
        text=True,
        check=True,
    )
    value = json.loads(result.stdout)
    assert value["input"] == {
        "url": "github:alice-gh/devserver-personal",
        "inputs": {"nixpkgs": {"follows": "nixpkgs"}},
    }
    assert value["first"] == "shared", "the shared modules come first; the personal layer over them"
    assert value["nixos"] == ["rg", "fd", "htop"]
    assert value["homePackages"] == ["jq"]
    assert json.loads(value["vscode"])["editor.formatOnSave"] is True
    assert value["nightly"] == ["personal"], "the nightly upgrade follows the personal flake too"
