"""Render OpenSSH `Host` blocks from a dev server stack's outputs (pure: no Pulumi, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# ssh_config(5) splits on whitespace and reads `#` as a comment; a newline in a value from another
# stack would smuggle in a directive such as ProxyCommand, so values are checked, never quoted.
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._~/@:+-]+")


class SshConfigError(ValueError):
    """An output of the referenced stack cannot be written into ~/.ssh/config as is."""


def _safe(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _SAFE_VALUE.fullmatch(value):
        raise SshConfigError(f"{name} must be a plain host, user or path, got {value!r}")
    return value


def host_block(
    alias: str,
    host_name: str,
    user: str,
    instance_id: str | None = None,
    identity_file: str | None = None,
) -> str:
    """One `Host` block for one dev server."""
    lines = [
        f"Host {_safe('alias', alias)}",
        f"    HostName {_safe('hostName', host_name)}",
        f"    User {_safe('user', user)}",
        # The dev server holds a GitHub token; an agent forwarded to it would lend it our keys too.
        "    ForwardAgent no",
        "    ServerAliveInterval 60",
    ]
    # Public DNS changes on every stop/start; the instance id changes only with a new machine.
    if instance_id is not None:
        lines.append(f"    HostKeyAlias {_safe('instanceId', instance_id)}")
    if identity_file is not None:
        lines += [
            f"    IdentityFile {_safe('identityFile', identity_file)}",
            "    IdentitiesOnly yes",
        ]
    return "\n".join(lines) + "\n"


def host_blocks(
    outputs: Mapping[str, Any],
    alias: str,
    host_name: str | None = None,
    identity_file: str | None = None,
) -> str:
    """Blocks for a stack's outputs: its server as `alias`, each of `servers` as `alias-<name>`.

    `host_name` replaces the primary server's `publicDns`, e.g. with a stable DNS record.
    """
    for key in ("publicDns", "user"):
        if not outputs.get(key):
            raise SshConfigError(
                f"the dev server stack has no {key!r} output value (is the server running?)"
            )
    blocks = [
        host_block(
            alias,
            host_name or outputs["publicDns"],
            outputs["user"],
            outputs.get("instanceId"),
            identity_file,
        )
    ]
    servers = outputs.get("servers") or {}
    for name in sorted(servers):
        server = servers[name]
        blocks.append(
            host_block(
                f"{alias}-{name}",
                server["publicDns"],
                server["user"],
                server.get("instanceId"),
                identity_file,
            )
        )
    return "\n".join(blocks)
