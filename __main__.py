"""nixos-devserver: read the settings, build one DevServer per server, export the contract."""

import gc

import pulumi

from components import settings
from components.binary_cache import BinaryCache, BinaryCacheArgs
from components.cost import PriceList, total_cost
from components.devserver import build_servers
from components.lookups import AwsLookups
from components.plan import plan_all, with_cost
from components.snapshots import HomeSnapshots, HomeSnapshotsArgs, home_target_tag

# A fleet registers thousands of small objects that live until the program exits; the cyclic GC
# spent about half of a 100-server run rescanning them. Reference counting still frees what dies;
# peak memory at 300 servers grew by ~4% without it (see benchmarks/fleet.py and the README).
gc.disable()

lookups = AwsLookups()
stack = settings.load(lookups)
# Plan every server before building any, so a bad input anywhere stops the run with nothing created
# (and the lookup problems of all servers are reported together).
plans = plan_all(stack.servers, lookups)
prices = PriceList(stack.aws_access.provider_args)
cache = None
if stack.owns_binary_cache:
    cache = BinaryCache(
        "binary-cache",
        BinaryCacheArgs(
            stack.stack,
            stack.region,
            stack.stack_owned_tags,
            writer_repository=stack.binary_cache_writer_repository,
            permissions_boundary=stack.permissions_boundary,
        ),
    )
    pulumi.export("binaryCache", cache.outputs())
servers = build_servers([with_cost(p, prices) for p in plans], stack, cache)

if stack.snapshots:
    HomeSnapshots(
        "home-snapshots",
        HomeSnapshotsArgs(
            retention_days=stack.snapshot_retention_days,
            tags=stack.snapshot_tags,
            target_tags=home_target_tag(stack.stack),
            permissions_boundary=stack.permissions_boundary,
        ),
    )

if not stack.fleet:
    for key, value in servers["devserver"].outputs().items():
        pulumi.export(key, value)
pulumi.export("servers", {name: server.outputs() for name, server in servers.items()})
if stack.fleet:
    # What the whole fleet costs; each server's own estimate is in servers.<name>.estimatedCost.
    pulumi.export("estimatedCost", total_cost([s.estimated_cost or {} for s in servers.values()]))
