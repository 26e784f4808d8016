# What one key's declaration holds (see keys.py for the declarations themselves).
"""The shape of a key declaration, and how its rules run.

No schema library: pydantic v2, msgspec and attrs+cattrs each validate one value against one type,
but a key here is read from a chain of sources (a `servers[i]` entry, the stack's default, a
preset file), its message must name the source it came from (`devserver:servers[1].arch`,
`arch of presets/x86.yaml`), a YAML number may stand for text, and most rules depend on other
keys (region, arch, spot, the token); translating a library's errors back into these messages
would be more code than the typed reader and plain rule functions it would replace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from components.settings.reader import Context, Reader

# A rule reads its key (with `r`, which records every problem) and returns the checked value.
Rule = Callable[[Reader, Context], Any]
Scope = Literal["server", "stack", "entry"]
# Top level (the default for every server of a fleet) or in a `devserver:servers[i]` entry.
SERVER: Scope = "server"
# Once per stack, top level only.
STACK: Scope = "stack"
# Only in a `devserver:servers[i]` entry.
ENTRY: Scope = "entry"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


# No default in Pulumi.yaml: the CLI refuses to run a stack that does not set the key.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Key:
    """One configuration key: what Pulumi.yaml declares, what the docs say, and its rule."""

    name: str
    type: Literal["string", "integer", "boolean", "array"]
    scope: Scope
    rule: Rule
    """Keys checked together (the machine keys) share one rule; it runs once per server."""
    description: str
    """One paragraph, shown by the CLI (Pulumi.yaml) and in the docs table."""
    default: Any = REQUIRED
    """As Pulumi.yaml declares it; "", [] and a preset key's 0 only stand for "unset"."""
    shown_default: str = ""
    """What an unset key means, for the docs, when the declared default does not say it."""
    details: str = ""
    """More for the docs table: limits, what is refused, how it interacts with other keys."""
    secret: bool = False
    """Read as a secret, and not declared in Pulumi.yaml (why: the comment there)."""
    items: str | None = None
    """The type of an array's items."""
    preset: bool = False
    """Set by every presets/*.yaml file; an unset key takes the preset's value."""
    unique: bool = False
    """No two servers of a fleet may share a value."""


def run_rules(keys: Sequence[Key], scope: Scope, r: Reader, ctx: Context) -> dict[str, Any]:
    """The checked value of every key of `scope`, its rules run in declaration order (a rule
    shared by several keys runs once; each of them gets its result)."""
    results: dict[Rule, Any] = {}
    values: dict[str, Any] = {}
    for key in keys:
        if key.scope == scope:
            if key.rule not in results:
                results[key.rule] = key.rule(r, ctx)
            values[key.name] = results[key.rule]
    return values
