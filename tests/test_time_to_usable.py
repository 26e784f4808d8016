"""benchmarks/time_to_usable.py: every input printed with its source, nothing invented, and the
realise phase modelled from the closure size alone (figures only: no timing is asserted here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = ROOT / "benchmarks" / "time_to_usable.py"
GIB = 1024**3


def run(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), *args], capture_output=True, text=True, check=True
    )
    return result.stdout


def section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def phase_seconds(lines: list[str], name: str) -> float | None:
    row = next(line for line in lines if line.split()[0] == name)
    value = row.split()[1]
    return None if value == "unknown" else float(value)


def closure_json(
    tmp_path: Path, sizes: list[int], new_format: bool, download: bool = False
) -> Path:
    """`nix path-info -r --size --json` output: Nix 2.8's list, or newer Nix's object by path."""
    entries = []
    for i, size in enumerate(sizes):
        entry: dict[str, object] = {"path": f"/nix/store/{i:032d}-p{i}", "narSize": size}
        if download:
            entry["downloadSize"] = size // 4
        entries.append(entry)
    document: object = entries
    if new_format:
        document = {e.pop("path"): e for e in entries}
    path = tmp_path / "closure.json"
    path.write_text(json.dumps(document))
    return path


def test_every_input_carries_its_source_and_undocumented_phases_stay_unknown() -> None:
    out = run()
    inputs = section(out, "inputs")
    assert inputs and all("source:" in line for line in inputs), inputs
    assert any("closure size" in line and "unknown" in line for line in inputs)
    budget = section(out, "budget per phase, with the stack's cache")
    for name in ("waitForSsh", "token", "flakeInputs", "realise", "activation", "loginCheck"):
        assert phase_seconds(budget, name) is None, f"{name} got a figure nobody documented"
    assert "6 unknown" in budget[-1]


@pytest.mark.parametrize("new_format", [False, True], ids=["nix-2.8-list", "nix-2.19-object"])
def test_realise_follows_the_closure_size_and_the_slowest_documented_rate(
    tmp_path: Path, new_format: bool
) -> None:
    small = run("--closure-json", str(closure_json(tmp_path, [GIB // 2, GIB // 2], new_format)))
    large = run(
        "--closure-json", str(closure_json(tmp_path, [GIB, GIB, GIB // 2, GIB // 2], new_format))
    )
    one = phase_seconds(section(small, "budget per phase, with the stack's cache"), "realise")
    three = phase_seconds(section(large, "budget per phase, with the stack's cache"), "realise")
    assert one is not None and three is not None
    # 1 GiB through the gp3 baseline of 125 MiB/s (the slowest of the documented rates).
    assert one == pytest.approx(1024 / 125, abs=0.05)
    assert three == pytest.approx(3 * one, abs=0.1)
    per_gib = re.search(r": ([0-9.]+) s per GiB", small)
    assert per_gib is not None and float(per_gib.group(1)) == pytest.approx(one, abs=0.01)
    # Without a cache of the stack's own, realise is never modelled.
    assert (
        phase_seconds(section(small, "budget per phase, without a cache of your own"), "realise")
        is None
    )


def test_the_wire_uses_the_caches_download_size_when_it_is_known(tmp_path: Path) -> None:
    out = run("--closure-json", str(closure_json(tmp_path, [GIB], False, download=True)))
    wire = next(line for line in section(out, "inputs") if "on the wire" in line)
    assert "256 MiB" in wire and "closure.json" in wire
    out = run("--closure-json", str(closure_json(tmp_path, [GIB], False)))
    wire = next(line for line in section(out, "inputs") if "on the wire" in line)
    assert "1024 MiB" in wire and "upper bound" in wire


def test_measured_phases_fill_the_budget_and_are_labelled(tmp_path: Path) -> None:
    phases = tmp_path / "phases.json"
    phases.write_text(
        json.dumps(
            {
                "binaryCache": True,
                "phases": {"waitForSsh": 31.5, "token": 1.5, "realise": 20.0, "activation": 9.0},
            }
        )
    )
    out = run("--phases", str(phases))
    budget = section(out, "budget per phase, with the stack's cache")
    assert phase_seconds(budget, "waitForSsh") == 31.5
    assert phase_seconds(budget, "realise") == 20.0
    assert all("measured" in line for line in budget if line.split()[0] in ("token", "activation"))
    assert "62.0 s" in budget[-1] and "2 unknown" in budget[-1]
    without = section(out, "budget per phase, without a cache of your own")
    assert phase_seconds(without, "realise") is None, (
        "a cached run's realise is not the uncached one"
    )
