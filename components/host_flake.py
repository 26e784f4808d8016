"""Renders /etc/nixos/flake.nix for one machine from the template in nix/templates/host/.

The flake holds only values the program chooses, so it is known at `pulumi preview` - even for a
brand-new stack - and `pulumi preview --diff` shows the exact flake a change puts on the machine.
What AWS or a generated resource returns (the home volume id, the deploy key) goes into
/etc/nixos/machine.json instead, which the flake reads with `builtins.fromJSON`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent / "nix" / "templates" / "host" / "flake.nix"
PLACEHOLDER = re.compile(r'"@([A-Za-z]+)@"')
# A template line ending in `# @<part>` is kept only when the part is on: part -> the field that
# turns it on (a field that is None turns it off, and its placeholders go with its lines).
OPTIONAL_PARTS = {"personal": "personalFlake"}
OPTIONAL_LINE = re.compile(r"[ \t]*#[ \t]*@([A-Za-z]+)[ \t]*$")
# What the host flake names as the shared flake when the deployment pushes this checkout's nix/:
# the pushed directory beside flake.nix (a relative path input, Nix 2.26 and later).
PUSHED_SHARED_FLAKE = "path:./shared"


def nix_string(text: str) -> str:
    """A Nix string literal holding exactly `text` (no interpolation, no escapes left open)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def machine_json(
    home_device: str,
    root_authorized_keys: list[str],
    binary_cache: tuple[str, str] | None = None,
) -> str:
    """/etc/nixos/machine.json: what AWS chose for this machine, read by the host flake. The
    binary cache (URL, public key) is here too: the stack's own bucket name and generated key are
    known only once they exist; without a cache the file is what it was before caches."""
    document: dict[str, object] = {
        "homeDevice": home_device,
        "rootAuthorizedKeys": root_authorized_keys,
    }
    if binary_cache is not None:
        document["binaryCache"] = {"url": binary_cache[0], "publicKey": binary_cache[1]}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class HostFlake:
    """The values the host flake sets; names match the template's placeholders."""

    sharedFlake: str
    hostName: str
    system: str
    user: str
    fullName: str
    email: str
    githubUser: str
    region: str
    tokenSecretId: str | None
    """The token secret's program-chosen name (GetSecretValue takes a name), or None."""
    idleStopMinutes: int
    stateVersion: str
    personalFlake: str | None = None
    """The person's own flake over the shared modules (devserver:personalFlake), or None."""
    githubUserId: int | None = None
    """The GitHub account id the login must still belong to (devserver:githubUserId), or None."""

    def render(self, template: str | None = None) -> str:
        """The flake text: every quoted placeholder replaced by a Nix value, each exactly once."""
        text = TEMPLATE.read_text(encoding="utf-8") if template is None else template
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        off = {part for part, name in OPTIONAL_PARTS.items() if values[name] is None}
        text = "".join(_keep_line(line, off) for line in text.splitlines(keepends=True))
        for part in off:
            values.pop(OPTIONAL_PARTS[part])
        found = PLACEHOLDER.findall(text)
        if sorted(found) != sorted(values):
            raise ValueError(
                f"{TEMPLATE} has placeholders {sorted(found)}, expected {sorted(values)}"
            )

        def nix_value(match: re.Match[str]) -> str:
            value = values[match.group(1)]
            if value is None:
                return "null"
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise TypeError(f"{match.group(1)} must be a string, an integer or None")
            return str(value) if isinstance(value, int) else nix_string(value)

        return PLACEHOLDER.sub(nix_value, text)


def _keep_line(line: str, off: set[str]) -> str:
    """The line without its part marker, or nothing when its part is off."""
    marker = OPTIONAL_LINE.search(line)
    if marker is None:
        return line
    if marker.group(1) in off:
        return ""
    return line[: marker.start()] + line[len(line.rstrip("\n")) :]
