"""nixos-devserver: read the settings, build one DevServer per server, export the contract."""

import pulumi

from components import settings
from components.devserver import DevServer, plan
from components.lookups import AwsLookups

lookups = AwsLookups()
stack = settings.load(lookups)
# Plan every server before building any, so a bad input anywhere stops the run with nothing created.
plans = [plan(server, lookups) for server in stack.servers]
servers = {p.settings.name: DevServer(p.settings.name, p) for p in plans}

if not stack.fleet:
    for key, value in servers["devserver"].outputs().items():
        pulumi.export(key, value)
pulumi.export("servers", {name: server.outputs() for name, server in servers.items()})
