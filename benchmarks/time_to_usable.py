"""Expected time from RunInstances to a usable machine, from a closure's size and documented rates.

Prints figures, never a pass/fail. Every input is printed with its source; an input nobody has
documented is printed as unknown (and left out of the sum), never guessed. Measure those on your
own stack with scripts/measure_time_to_usable.py and feed its phases back with --phases.

  .venv/bin/python benchmarks/time_to_usable.py                       # the rates, per GiB
  .venv/bin/python benchmarks/time_to_usable.py --closure-json closure-sample-x86_64.json
  .venv/bin/python benchmarks/time_to_usable.py --closure /nix/store/…-nixos-system-…  # runs nix

`--closure-json` takes what `nix path-info --recursive --size --closure-size --json` prints (the
binary-cache workflow uploads it per host as closure-<host>.json; Nix 2.8's list or newer Nix's
object). Run against the cache itself (`nix path-info --store s3://… --json -r`), the entries
also carry `downloadSize`: the compressed bytes on the wire.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MB = 1_000_000
MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True)
class Input:
    """A figure the model uses, and where it comes from."""

    name: str
    value: float | None
    unit: str
    source: str

    def line(self) -> str:
        shown = "unknown" if self.value is None else f"{self.value:g} {self.unit}"
        return f"  {self.name:<34} {shown:<16} source: {self.source}"


# Documented rates. Each is quoted from the page named; nothing here was measured by this project.
S3_PER_CONNECTION = Input(
    "S3 GET throughput per connection",
    85,
    "MB/s",
    "AWS S3 User Guide, 'Performance design patterns': 'one concurrent request for each "
    "85-90 MB/s' in-region S3 -> EC2 (lower end taken)",
)
NIX_SUBSTITUTION_JOBS = Input(
    "parallel substitutions",
    16,
    "jobs",
    "Nix `max-substitution-jobs` default (src/libstore worker-settings.hh); `http-connections` "
    "default 25 is not the limit",
)
GP3_THROUGHPUT = Input(
    "root disk write throughput",
    125,
    "MiB/s",
    "gp3 baseline (AWS EBS User Guide, gp3; EC2 CreateVolume `Throughput` minimum and default); "
    "components/machine.py sets no higher throughput",
)
ZSTD_DECOMPRESSION = Input(
    "zstd decompression per core",
    1580,
    "MB/s",
    "facebook/zstd README, zstd 1.5.6 -1 on a Core i7-9700K (lzbench, Silesia); the workflow "
    "pushes with compression=zstd",
)
SSH_READY = Input(
    "RunInstances -> sshd answers",
    None,
    "s",
    "not documented by AWS; issue 20 quotes 25-40 s for EC2 alone; measure it",
)
NOT_DOCUMENTED = "not documented; measure it (scripts/measure_time_to_usable.py) and pass --phases"
# The machine-side phases apply-flake.sh reports (deployPhases output), in order.
MACHINE_PHASES = ("token", "flakeInputs", "realise", "activation", "loginCheck")


@dataclass(frozen=True)
class Closure:
    """What a machine must fetch: the NAR bytes it unpacks and, if known, the bytes on the wire."""

    paths: int
    nar_bytes: int
    download_bytes: int | None
    source: str


def _entries(document: Any) -> list[dict[str, Any]]:
    # Nix 2.8 prints a list of objects with "path"; Nix >= 2.19 an object keyed by path.
    if isinstance(document, dict):
        return [{"path": k, **v} for k, v in document.items() if isinstance(v, dict)]
    return [e for e in document if isinstance(e, dict)]


def closure_from_json(text: str, source: str) -> Closure:
    """The closure's totals from `nix path-info -r --size [--closure-size] --json` output."""
    entries = _entries(json.loads(text))
    if not entries or any("narSize" not in e for e in entries):
        raise SystemExit(f"{source}: expected `nix path-info --recursive --size --json` output")
    downloads = [e.get("downloadSize") for e in entries]
    return Closure(
        paths=len(entries),
        nar_bytes=sum(int(e["narSize"]) for e in entries),
        download_bytes=None if None in downloads else sum(int(d) for d in downloads if d),
        source=source,
    )


def closure_of(store_path: str) -> Closure:
    """Ask Nix for a store path's closure (the path must be in the local store)."""
    out = subprocess.run(
        [
            *("nix", "--extra-experimental-features", "nix-command"),
            "path-info",
            "-rS",
            "--json",
            store_path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return closure_from_json(out, f"nix path-info -rS --json {store_path}")


@dataclass(frozen=True)
class Download:
    """The realise phase with the cache: each limit's time; the slowest one is the phase."""

    network_s: float
    disk_s: float
    decompress_s: float

    @property
    def seconds(self) -> float:
        # Nix streams download -> decompress -> unpack for each path; the slowest stage decides.
        return max(self.network_s, self.disk_s, self.decompress_s)


def _rate(documented: Input) -> float:
    assert documented.value is not None, documented.name
    return documented.value


def download(closure: Closure, vcpus: int) -> Download:
    wire = closure.download_bytes if closure.download_bytes is not None else closure.nar_bytes
    jobs = _rate(NIX_SUBSTITUTION_JOBS)
    network = _rate(S3_PER_CONNECTION) * MB * jobs
    disk = _rate(GP3_THROUGHPUT) * MIB
    decompress = _rate(ZSTD_DECOMPRESSION) * MB * min(vcpus, jobs)
    return Download(wire / network, closure.nar_bytes / disk, closure.nar_bytes / decompress)


def measured_phases(path: Path | None) -> tuple[dict[str, float], bool]:
    """Phases measured on a real machine (the deployPhases stack output, as JSON), if given, and
    whether that run substituted from a binary cache of the stack's (its `binaryCache` field)."""
    if path is None:
        return {}, True
    data = json.loads(path.read_text())
    phases = data.get("phases", data)
    seconds = {k: float(v) for k, v in phases.items() if type(v) in (int, float)}
    return seconds, bool(phases.get("binaryCache", data.get("binaryCache", True)))


def _inputs(closure: Closure | None, vcpus: int) -> list[str]:
    lines = [i.line() for i in (S3_PER_CONNECTION, NIX_SUBSTITUTION_JOBS, GP3_THROUGHPUT)]
    lines.append(ZSTD_DECOMPRESSION.line())
    lines.append(Input("vCPUs (parallel decompression)", vcpus, "", "--vcpus").line())
    if closure is None:
        lines.append(
            Input("closure size", None, "", "not given (--closure-json, --closure)").line()
        )
        return lines
    wire, wire_source = closure.download_bytes, closure.source
    if wire is None:
        wire = closure.nar_bytes
        wire_source = "no downloadSize given: the NAR size, an upper bound (no ratio assumed)"
    lines.append(Input("closure", closure.paths, "paths", closure.source).line())
    lines.append(
        Input("closure NAR size", round(closure.nar_bytes / MIB, 1), "MiB", closure.source).line()
    )
    lines.append(
        Input("closure bytes on the wire", round(wire / MIB, 1), "MiB", wire_source).line()
    )
    return lines


def _budget(
    realise: tuple[float | None, str], phases: dict[str, float], phases_source: str
) -> list[str]:
    """One row per phase: measured if given, else modelled if documented, else unknown."""
    rows: list[tuple[str, float | None]] = []
    for name in ("waitForSsh", *MACHINE_PHASES):
        if name in phases:
            rows.append((f"{phases[name]:8.1f} s   measured: {phases_source}", phases[name]))
        elif name == "realise" and realise[0] is not None:
            rows.append((f"{realise[0]:8.1f} s   modelled: {realise[1]}", realise[0]))
        elif name == "realise":
            rows.append((f"{'unknown':>8}     {realise[1]}", None))
        elif name == "waitForSsh":
            rows.append((f"{'unknown':>8}     {SSH_READY.source}", None))
        else:
            rows.append((f"{'unknown':>8}     {NOT_DOCUMENTED}", None))
    names = ("waitForSsh", *MACHINE_PHASES)
    lines = [f"  {name:<12} {text}" for name, (text, _) in zip(names, rows, strict=True)]
    known = [seconds for _, seconds in rows if seconds is not None]
    unknown = len(rows) - len(known)
    lines.append(
        f"  {'total':<12} {sum(known):8.1f} s   the phases with a figure; {unknown} unknown"
    )
    return lines


def report(
    closure: Closure | None,
    vcpus: int,
    phases: dict[str, float],
    phases_source: str,
    cache_measured: bool = True,
) -> str:
    lines = ["time to usable: RunInstances returns -> the developer logs in with VS Code", ""]
    lines += ["inputs", *_inputs(closure, vcpus)]
    per_gib = download(Closure(0, GIB, None, "1 GiB"), vcpus)
    lines += [
        "",
        "realise with the stack's cache, per GiB of closure (NAR size, no compression assumed)",
        f"  network {per_gib.network_s:.2f} s, root disk {per_gib.disk_s:.2f} s, "
        f"decompression {per_gib.decompress_s:.2f} s: {per_gib.seconds:.2f} s per GiB",
    ]
    cached: tuple[float | None, str] = (None, "no closure size given")
    if closure is not None:
        cached = (download(closure, vcpus).seconds, "slowest of network, disk, decompression")
    # A measured realise belongs to the budget of the run it was measured in.
    other = {k: v for k, v in phases.items() if k != "realise"}
    with_cache, without = (phases, other) if cache_measured else (other, phases)
    lines += ["", "budget per phase, with the stack's cache"]
    lines += _budget(cached, with_cache, phases_source)
    # Without it: cache.nixos.org (it publishes no throughput) plus local builds of what it lacks.
    uncached = (None, "cache.nixos.org publishes no throughput and what it lacks is built here")
    lines += ["", "budget per phase, without a cache of your own"]
    lines += _budget(uncached, without, phases_source)
    lines += ["", "goal: usable 90 s after RunInstances returns (issue 20; docs/speed.md)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--closure-json", type=Path, help="nix path-info -r --size --json output")
    source.add_argument(
        "--closure", help="a store path in the local store (runs nix path-info -rS)"
    )
    parser.add_argument("--vcpus", type=int, default=4, help="the instance's vCPUs (default 4)")
    parser.add_argument("--phases", type=Path, help="measured phases (the deployPhases output)")
    args = parser.parse_args(argv)
    closure = None
    if args.closure_json is not None:
        closure = closure_from_json(args.closure_json.read_text(), str(args.closure_json))
    elif args.closure is not None:
        closure = closure_of(args.closure)
    phases, cache_measured = measured_phases(args.phases)
    print(report(closure, args.vcpus, phases, str(args.phases), cache_measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
