"""nixos-devserver: read the settings, build one DevServer per server, export the contract."""

import gc

import pulumi

from components import settings
from components.cost import PriceList
from components.devserver import DevServer, plan, with_cost
from components.lookups import AwsLookups
from components.snapshots import HomeSnapshots, HomeSnapshotsArgs, home_target_tag

# A fleet registers thousands of small, long-lived objects; with the default thresholds the
# cyclic GC spends about half of a 100-server run rescanning them (see benchmarks/fleet.py).
gc.set_threshold(50_000, 50, 100)

lookups = AwsLookups()
stack = settings.load(lookups)
# Plan every server before building any, so a bad input anywhere stops the run with nothing created.
plans = [plan(server, lookups) for server in stack.servers]
prices = PriceList()
servers = {p.settings.name: DevServer(p.settings.name, with_cost(p, prices)) for p in plans}

if stack.snapshots:
    HomeSnapshots(
        "home-snapshots",
        HomeSnapshotsArgs(
            retention_days=stack.snapshot_retention_days,
            tags={"devserver:stack": pulumi.get_stack(), "devserver:purpose": "devserver"},
            target_tags=home_target_tag(pulumi.get_stack()),
        ),
    )

if not stack.fleet:
    for key, value in servers["devserver"].outputs().items():
        pulumi.export(key, value)
pulumi.export("servers", {name: server.outputs() for name, server in servers.items()})
