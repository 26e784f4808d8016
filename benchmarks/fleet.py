"""How the program scales with the fleet: evaluate it under the test mocks for N servers.

Run from the repository root:  .venv/bin/python benchmarks/fleet.py [--sizes 1,10,100,300]

Each size runs the real `__main__.py` (the suite's stack `dev` from tests/stacks/, plus
`devserver:servers` with N entries) in a fresh Python process, so peak memory is that size's
alone. Wall time covers the program's evaluation under the mocks, including its first imports of
the provider SDKs, as `pulumi preview` pays them too. It prints a table and two goal checks and
exits 0 unless the program fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_100_SECONDS = 3.0
GOAL_300_OVER_100 = 3.5


def fleet(n: int) -> list[dict[str, str]]:
    """N servers that differ only in their names, as a team's stack would list them."""
    return [
        {"name": f"dev{i:03d}", "user": f"user{i:03d}", "githubUser": f"gh-user-{i:03d}"}
        for i in range(n)
    ]


def measure(n: int, gc_threshold: int | None = None) -> dict[str, float]:
    """Run the program once for N servers in this process; report what it cost."""
    if gc_threshold is not None:
        # An experiment: how much of the time is the cyclic garbage collector's.
        gc.set_threshold(gc_threshold, 50, 100)
    sys.path.insert(0, str(ROOT))
    from tests import program
    from tests.program import run_program, stack_config

    # An account whose Elastic IP quota fits the fleet (AWS's default of 5 would refuse it).
    program.ELASTIC_IP_QUOTA[0] = float(n)
    base = {**stack_config("dev"), "devserver:servers": fleet(n)}
    start = time.perf_counter()
    run = run_program(base=base)
    seconds = time.perf_counter() - start
    # ru_maxrss is in KiB on Linux.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"servers": n, "resources": len(run.resources), "seconds": seconds, "peak_mib": peak_mib}


def run_child(n: int, gc_threshold: int | None) -> dict[str, float]:
    """Measure N in a fresh interpreter; stop with the program's own error if it fails."""
    extra = [] if gc_threshold is None else ["--gc-threshold", str(gc_threshold)]
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(n), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        sys.exit(f"the program failed for {n} servers (exit {done.returncode})")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def report(rows: list[dict[str, float]]) -> str:
    """The table, then the goal checks for the sizes that were measured."""
    lines = [
        f"{'servers':>8} {'resources':>10} {'wall s':>8} {'peak MiB':>9} {'ms/added server':>16}",
    ]
    previous: dict[str, float] | None = None
    for row in rows:
        slope = "-"
        if previous is not None and row["servers"] > previous["servers"]:
            added = row["servers"] - previous["servers"]
            slope = f"{(row['seconds'] - previous['seconds']) * 1000 / added:.1f}"
        lines.append(
            f"{row['servers']:>8} {row['resources']:>10} {row['seconds']:>8.2f} "
            f"{row['peak_mib']:>9.0f} {slope:>16}"
        )
        previous = row
    by_size = {int(row["servers"]): row["seconds"] for row in rows}
    lines.append("")
    if 100 in by_size:
        met = "met" if by_size[100] < GOAL_100_SECONDS else "NOT met"
        lines.append(f"100 servers: {by_size[100]:.1f} s (goal < {GOAL_100_SECONDS:g} s): {met}")
    if 100 in by_size and 300 in by_size:
        ratio = by_size[300] / by_size[100]
        met = "met" if ratio <= GOAL_300_OVER_100 else "NOT met"
        lines.append(f"300/100 ratio: {ratio:.1f} (goal ≤ {GOAL_300_OVER_100:g}): {met}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="1,10,100,300", help="fleet sizes, comma separated")
    parser.add_argument(
        "--gc-threshold",
        type=int,
        help="set the collector's generation-0 threshold first (Python's default is 700)",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.gc_threshold)))
        return
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    rows = []
    for n in sizes:
        rows.append(run_child(n, args.gc_threshold))
        print(f"  measured {n} servers", file=sys.stderr, flush=True)
    print(report(rows))


if __name__ == "__main__":
    main()
