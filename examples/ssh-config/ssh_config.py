"""Render OpenSSH config and known_hosts from a dev server stack's `servers` output (pure, no I/O).

Both stack shapes export `servers` (a single-server stack as one entry, `devserver`), so this
reads only that: one server becomes `Host <alias>`, several become `Host <alias>-<name>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# ssh_config(5) splits on whitespace and reads `#` as a comment; a newline in a value from another
# stack would smuggle in a directive such as ProxyCommand, so values are checked, never quoted.
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._~/@:+-]+")
# A public key as sshd prints it: type, base64 blob, optional comment (dropped here).
_HOST_KEY = re.compile(
    r"(ssh-[a-z0-9-]+|ecdsa-sha2-nistp(?:256|384|521)) ([A-Za-z0-9+/]+={0,2})(?: [^\r\n]*)?"
)
DEFAULT_KNOWN_HOSTS = "~/.ssh/devserver_known_hosts"


class SshConfigError(ValueError):
    """An output of the referenced stack cannot be written into ~/.ssh/config as is."""


def _safe(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _SAFE_VALUE.fullmatch(value):
        raise SshConfigError(f"{name} must be a plain host, user or path, got {value!r}")
    return value


def known_hosts_line(host_key_alias: str, host_key: str) -> str:
    """The known_hosts entry for a pinned host key, under the host's HostKeyAlias."""
    match = _HOST_KEY.fullmatch(host_key.strip())
    if not match:
        raise SshConfigError(f"sshHostKey of {host_key_alias} is not an OpenSSH public key")
    return f"{_safe('instanceId', host_key_alias)} {match[1]} {match[2]}\n"


def host_block(
    alias: str,
    host_name: str,
    user: str,
    instance_id: str | None = None,
    identity_file: str | None = None,
    known_hosts_file: str | None = None,
) -> str:
    """One `Host` block; with `known_hosts_file`, only the pinned host key is accepted."""
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
    if known_hosts_file is not None:
        lines += [
            f"    UserKnownHostsFile {_safe('knownHostsFile', known_hosts_file)}",
            "    StrictHostKeyChecking yes",
        ]
    if identity_file is not None:
        lines += [
            f"    IdentityFile {_safe('identityFile', identity_file)}",
            "    IdentitiesOnly yes",
        ]
    return "\n".join(lines) + "\n"


def host_aliases(servers: Mapping[str, Any], alias: str) -> dict[str, str]:
    """Server name → the name typed after `ssh`."""
    if len(servers) == 1:
        return {name: alias for name in servers}
    return {name: f"{alias}-{name}" for name in servers}


def render(
    servers: Mapping[str, Mapping[str, Any]] | None,
    alias: str,
    host_name: str | None = None,
    identity_file: str | None = None,
    known_hosts_file: str = DEFAULT_KNOWN_HOSTS,
) -> tuple[str, str]:
    """(ssh_config text, known_hosts text) for every server of the stack.

    `host_name` replaces the server's `publicDns` (a stable DNS record); one server only. A
    server whose deployment pinned no host key (`sshHostKey` null, deploy off) gets no
    UserKnownHostsFile/StrictHostKeyChecking lines: ssh then asks as usual.
    """
    if not servers:
        raise SshConfigError("the dev server stack has no 'servers' output value")
    if host_name is not None and len(servers) != 1:
        raise SshConfigError("dnsName names one server; this stack has several")
    names = host_aliases(servers, alias)
    blocks, known_hosts = [], []
    for name in sorted(servers):
        server = servers[name]
        for key in ("publicDns", "user"):
            if not server.get(key):
                raise SshConfigError(
                    f"server {name!r} has no {key!r} output value (is the server running?)"
                )
        instance_id = server.get("instanceId")
        host_key = server.get("sshHostKey")
        pinned = bool(host_key and instance_id)
        if pinned:
            known_hosts.append(known_hosts_line(instance_id, host_key))
        blocks.append(
            host_block(
                names[name],
                host_name or server["publicDns"],
                server["user"],
                instance_id,
                identity_file,
                known_hosts_file if pinned else None,
            )
        )
    return "\n".join(blocks), "".join(known_hosts)
