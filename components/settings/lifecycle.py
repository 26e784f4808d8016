# Lifecycle rules: running or stopped, idle stop, rebuild generation, deployment, break-glass shell.

from __future__ import annotations

import re

from components.settings.declaration import SERVER, Key
from components.settings.reader import Context, Reader

# Highest `devserver:rebuild` generation; any whole number works, this only keeps names short.
MAX_REBUILD = 999999


def state(r: Reader, ctx: Context) -> str | None:
    return r.text("state", re.compile("running|stopped"), "running or stopped", default="running")


def idle_stop_minutes(r: Reader, ctx: Context) -> int | None:
    return r.integer("idleStopMinutes", 0, 1440, default=0)


def rebuild(r: Reader, ctx: Context) -> int | None:
    return r.integer("rebuild", 0, MAX_REBUILD, default=0)


def deploy(r: Reader, ctx: Context) -> bool | None:
    return r.boolean("deploy", default=True)


def ssm_session_manager(r: Reader, ctx: Context) -> bool | None:
    return r.boolean("ssmSessionManager", default=True)


# The keys this module's rules check, declared once (keys.py collects them; order = check order).
KEYS = (
    Key(
        "idleStopMinutes",
        "integer",
        SERVER,
        idle_stop_minutes,
        "Power the machine off after this many idle minutes (no SSH session, low CPU); 0 turns it "
        "off.",
        default=0,
        shown_default="`0` (off)",
        details='0 to 1440. The machine *stops*; see the README, "Idle stop, and starting again".',
    ),
    Key(
        "state",
        "string",
        SERVER,
        state,
        "running or stopped. `pulumi up --refresh` starts a machine that stopped itself.",
        default="running",
    ),
    Key(
        "deploy",
        "boolean",
        SERVER,
        deploy,
        "Apply the NixOS flake to the machine over SSH on `pulumi up`.",
        default=True,
    ),
    Key(
        "rebuild",
        "integer",
        SERVER,
        rebuild,
        "Rebuild generation. Raise it by one to replace the machine with a new one from the "
        "current NixOS AMI; /home is kept and moves over. Needed together with spot on/off, a new "
        "spotMaxPrice, another subnet or zone, a spot machine's instance type, or a new deploy "
        "key.",
        default=0,
    ),
    Key(
        "ssmSessionManager",
        "boolean",
        SERVER,
        ssm_session_manager,
        "Break-glass shell through SSM Session Manager when SSH fails - the instance role gets "
        "Session Manager's five channel actions (no ssm:GetParameter, no other secret).",
        default=True,
        details="`aws ssm start-session --target <instanceId>`; the actions are AWS's "
        "`AWSCloud9SSMInstanceProfile` set and the machine runs the SSM agent; `false` drops "
        "the policy.",
    ),
)
