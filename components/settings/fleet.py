# The fleet merge: each `devserver:servers` entry over the stack defaults; what entries never share.

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from components.settings.declaration import STACK, Key
from components.settings.identity import server_name
from components.settings.model import NAMESPACE, DevServerSettings
from components.settings.reader import Chain, Context, DictSource, Reader

Build = Callable[[Reader, Context, str], DevServerSettings | None]


def servers(r: Reader, ctx: Context) -> list[Any] | None:
    """`devserver:servers`: a list (its entries are checked by `entries`); None = one server."""
    return r.string_list("servers", '[{"name": "alice", "user": "alice", "githubUser": "alice"}]')


def entries(
    raw: list[Any],
    top: Reader,
    ctx: Context,
    build: Build,
    allowed: Sequence[str],
    unique: Sequence[str],
) -> Iterator[DevServerSettings | None]:
    """Each entry is checked in full even when another (or itself) has a problem already.

    `build` checks one server's keys; `allowed` are the keys an entry may set, `unique` those no
    two entries may share (both from the declarations in keys.py).
    """
    label = f"{NAMESPACE}:servers"
    if not raw:
        top.fail(label, raw, "a non-empty list of servers, each with at least a name")
    _no_fleet_wide_home_volume(top)
    seen: dict[str, dict[str, str]] = {key: {} for key in unique}
    for i, entry in enumerate(raw):
        where = f"{label}[{i}]"
        if not isinstance(entry, dict):
            top.fail(
                where,
                entry,
                'an object such as {"name": "alice", "user": "alice", "githubUser": "alice"}',
            )
            yield None
            continue
        unknown = sorted(set(entry) - set(allowed))
        if unknown:
            top.errors.append(
                f"{where} has unknown keys {', '.join(unknown)}: allowed are {', '.join(allowed)}"
            )
        known = {k: v for k, v in entry.items() if k in allowed}
        own = DictSource(known, f"{where}.{{key}}")
        entry_ctx = replace(ctx, prefix=f"{where}.")
        name = server_name(Reader(own, top.errors), entry_ctx)
        entry_ctx = replace(entry_ctx, default_host=name or f"server-{i}")
        reader = Reader(Chain(own, top.source), top.errors)
        server = build(reader, entry_ctx, name or f"server-{i}")
        _check_unique(reader, where, name, seen)
        yield server if name is not None else None


def _check_unique(
    reader: Reader, where: str, name: str | None, seen: dict[str, dict[str, str]]
) -> None:
    """Refuse a value another entry already uses, naming both entries (read quietly: the entry's
    own problems are reported by its rules)."""
    quiet = Reader(reader.source, [])
    for key in seen:
        value = name if key == "name" else quiet.text(key)
        if key == "hostName":
            value = value or name  # an entry's host name defaults to its name
        if value is None:
            continue
        if value in seen[key]:
            reader.errors.append(
                f"{where}.{key} {value!r} is already used by {seen[key][value]}: "
                f"each server needs its own {key}"
            )
        else:
            seen[key][value] = where


def _no_fleet_wide_home_volume(top: Reader) -> None:
    if top.source.get("homeVolumeId") is not None:
        top.errors.append(
            f"{NAMESPACE}:homeVolumeId cannot be set for a whole fleet: every server would "
            f"mount the same /home; set homeVolumeId in the one {NAMESPACE}:servers[i] entry "
            "it belongs to"
        )


# The keys this module's rules check, declared once (keys.py collects them; order = check order).
KEYS = (
    Key(
        "servers",
        "array",
        STACK,
        servers,
        "A fleet - one entry per dev server with name, user, githubUser and any keys above; "
        "top-level keys are the defaults.",
        default=[],
        items="object",
        details='An entry may set the keys marked "per server"; see the README, "Team use".',
    ),
)
