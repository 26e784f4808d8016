#!/usr/bin/env python3
"""Measure the real time to usable of your own stack: RunInstances -> a working SSH login.

  ./scripts/measure_time_to_usable.py <stack> --rebuild [--out phases.json]

It needs what `./scripts/up` needs (the Pulumi CLI, AWS credentials, the stack's passphrase) plus
the AWS CLI and `ssh` with your GitHub key. It raises `devserver:rebuild` by one and runs
`./scripts/up <stack> --yes`: a new machine from the current NixOS AMI takes over /home, exactly as
a rebuild does (README, "Lifecycle"; the root disk is new, /home is kept). Meanwhile it watches
EC2 for the new machine and its port 22; afterwards it logs in as you over SSH (what VS Code
Remote-SSH does first) and prints each step after EC2's LaunchTime of the machine, with the
machine's own phases (the deployPhases stack output). `--out` writes them for
`benchmarks/time_to_usable.py --phases`. Never run in CI: it changes a real stack.

Clocks: LaunchTime is EC2's, the other times are this computer's (keep it NTP-synced).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PULUMI = str(ROOT / "scripts" / "pulumi")


def pulumi(stack: str, *args: str) -> str:
    return subprocess.run(
        [PULUMI, *args, "--stack", stack], capture_output=True, text=True, check=True
    ).stdout


def current_rebuild(stack: str) -> int:
    result = subprocess.run(
        [PULUMI, "config", "get", "devserver:rebuild", "--stack", stack],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(result.stdout.strip() or 0) if result.returncode == 0 else 0


@dataclass
class Watch:
    """What the watcher saw of the new machine, in this computer's clock (epoch seconds)."""

    stack: str
    region: str
    old_instance: str
    instance: str | None = None
    launch_time: float | None = None
    ssh_open: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def _describe(self) -> list[dict[str, object]]:
        out = subprocess.run(
            [
                *("aws", "ec2", "describe-instances", "--region", self.region, "--output", "json"),
                "--filters",
                f"Name=tag:devserver:stack,Values={self.stack}",
                "Name=instance-state-name,Values=pending,running",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        reservations = json.loads(out or "{}").get("Reservations", [])
        return [i for r in reservations for i in r.get("Instances", [])]

    def run(self) -> None:
        while not self.stop.is_set() and self.ssh_open is None:
            for instance in self._describe():
                if instance["InstanceId"] == self.old_instance:
                    continue
                self.instance = str(instance["InstanceId"])
                launched = str(instance["LaunchTime"]).replace("Z", "+00:00")
                self.launch_time = dt.datetime.fromisoformat(launched).timestamp()
                address = instance.get("PublicIpAddress")
                if address and port_open(str(address)):
                    self.ssh_open = time.time()
            self.stop.wait(2)


def port_open(host: str, port: int = 22) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            return bool(conn.recv(4).startswith(b"SSH-"))
    except OSError:
        return False


def login_works(user: str, host: str) -> bool:
    """An SSH login as the developer with their own key, running a command (VS Code's first)."""
    return (
        subprocess.run(
            [
                *("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"),
                *("-o", "StrictHostKeyChecking=accept-new"),
                f"{user}@{host}",
                "true",
            ],
            check=False,
        ).returncode
        == 0
    )


def summary(launch: float, marks: dict[str, float | None], phases: object) -> dict[str, object]:
    """Each mark as seconds after LaunchTime (None where it was not seen), and the phases."""
    return {
        "afterLaunch": {k: None if v is None else round(v - launch, 1) for k, v in marks.items()},
        "phases": phases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stack")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="required: agree to raise devserver:rebuild (a new machine; /home is kept)",
    )
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if not args.rebuild:
        parser.error("pass --rebuild: the measurement launches a new machine (see --help)")
    for tool in ("pulumi", "aws", "ssh"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not on PATH")

    outputs = json.loads(pulumi(args.stack, "stack", "output", "--json"))
    if "instanceId" not in outputs:
        parser.error("a single-server stack is needed (a fleet exports only `servers`)")
    region = pulumi(args.stack, "config", "get", "aws:region").strip()
    generation = current_rebuild(args.stack) + 1
    subprocess.run(
        [PULUMI, "config", "set", "devserver:rebuild", str(generation), "--stack", args.stack],
        check=True,
    )
    watch = Watch(args.stack, region, str(outputs["instanceId"]))
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    up = subprocess.run([str(ROOT / "scripts" / "up"), args.stack, "--yes"], check=False)
    up_done = time.time()
    watch.stop.set()
    watcher.join()
    if up.returncode != 0:
        print(f"./scripts/up failed (exit {up.returncode}); nothing to measure", file=sys.stderr)
        return up.returncode
    outputs = json.loads(pulumi(args.stack, "stack", "output", "--json"))
    login_ok = time.time() if login_works(str(outputs["user"]), str(outputs["publicDns"])) else None
    if watch.launch_time is None:
        print(
            "the new machine was never seen in EC2; no LaunchTime to measure from", file=sys.stderr
        )
        return 1
    marks = {"sshdAnswers": watch.ssh_open, "deploymentDone": up_done, "loginWorks": login_ok}
    result = summary(watch.launch_time, marks, outputs.get("deployPhases"))
    print(f"machine {watch.instance} (rebuild {generation}), seconds after EC2's LaunchTime:")
    for mark, seconds in result["afterLaunch"].items():  # type: ignore[attr-defined]
        print(f"  {mark:<16} {'not seen' if seconds is None else f'{seconds:.1f} s'}")
    print(f"machine phases (deployPhases): {json.dumps(result['phases'])}")
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
