# Reading raw config values from their sources into typed values, recording every problem.
"""Sources of raw values (stack config, a `servers` entry, a preset), the typed reader the rules
use, and what a rule may know besides its key's value.

A source gives raw values (strings from `pulumi config`, native values from a structured `servers`
entry) and a label for error messages. The reader records a problem instead of raising, so all
problems show at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pulumi

from components.settings.model import NAMESPACE, InstanceTypes


class Source(Protocol):
    def get(self, key: str) -> tuple[Any, str] | None: ...


class ConfigSource:
    """Top-level stack config (`devserver:<key>`), through the getter `load` hands over.

    The CLI requires every key Pulumi.yaml declares without a default, so optional keys are
    declared with an "unset" default: "" (or [] for lists, 0 for preset sizes) reads as unset.
    """

    def __init__(self, get: Callable[[str], str | None], zero_is_unset: frozenset[str]) -> None:
        self._get, self._zero_is_unset = get, zero_is_unset

    def get(self, key: str) -> tuple[Any, str] | None:
        value = self._get(key)
        if value is None or value in ("", "[]") or (key in self._zero_is_unset and value == "0"):
            return None
        return value, f"{NAMESPACE}:{key}"


class DictSource:
    """A mapping of keys to native values: a `devserver:servers` entry or a preset file."""

    def __init__(self, values: Mapping[str, Any], label: str) -> None:
        self._values, self._label = values, label

    def get(self, key: str) -> tuple[Any, str] | None:
        value = self._values.get(key)
        return None if value is None else (value, self._label.format(key=key))


class Chain:
    """The first source that sets a key wins: entry, then stack defaults, then the preset."""

    def __init__(self, *sources: Source) -> None:
        self._sources = sources

    def get(self, key: str) -> tuple[Any, str] | None:
        for source in self._sources:
            found = source.get(key)
            if found is not None:
                return found
        return None


@dataclass(frozen=True)
class Secret:
    """A secret key as `load` read it: the raw text (checked, never shown), whether the stack
    stores it encrypted, and the secret Output the components get."""

    raw: str | None = None
    secure: bool = False
    output: pulumi.Output[str] | None = None


@dataclass(frozen=True)
class Context:
    """What a rule may need besides its key's value."""

    region: str
    stack: str
    types: InstanceTypes
    prefix: str = f"{NAMESPACE}:"
    """How messages name this server's keys: `devserver:` or `devserver:servers[2].`."""
    default_host: str = "devserver"
    secrets: Mapping[str, Secret] = field(default_factory=dict)

    def has(self, secret: str) -> bool:
        return bool(self.secrets.get(secret, Secret()).raw)


T = TypeVar("T")


class Reader:
    """Typed reads that record a problem instead of raising, so all problems show at once."""

    def __init__(self, source: Source, errors: list[str]) -> None:
        self.source, self.errors = source, errors

    def label(self, key: str) -> str:
        found = self.source.get(key)
        return found[1] if found else f"{NAMESPACE}:{key}"

    def fail(self, label: str, value: Any, allowed: str) -> None:
        self.errors.append(f"{label} must be {allowed}, got {value!r}")

    def _read(
        self, key: str, parse: Callable[[Any], T], allowed: str, default: T | None
    ) -> T | None:
        found = self.source.get(key)
        if found is None:
            return default
        value, label = found
        try:
            return parse(value)
        except (ValueError, TypeError):
            self.fail(label, value, allowed)
            return default

    def text(
        self,
        key: str,
        pattern: re.Pattern[str] | None = None,
        allowed: str = "text",
        default: str | None = None,
        number_ok: bool = False,
    ) -> str | None:
        """Text matching `pattern`; `number_ok` for a key whose text is a number (spotMaxPrice:
        0.08), so a YAML number means the same thing when its digits fit."""
        found = self.source.get(key)
        if found is not None and _is_number(found[0]):
            return self._number_as_text(found, pattern, allowed, default, number_ok)

        def parse(value: Any) -> str:
            if not isinstance(value, str) or (pattern and not pattern.fullmatch(value)):
                raise ValueError
            return value

        return self._read(key, parse, allowed, default)

    def _number_as_text(
        self,
        found: tuple[Any, str],
        pattern: re.Pattern[str] | None,
        allowed: str,
        default: str | None,
        number_ok: bool,
    ) -> str | None:
        """A YAML number where text is expected (a `servers` entry keeps YAML's types): accepted
        for the keys whose text is a number, when its digits fit; otherwise the user quotes it."""
        value, label = found
        text = _number_text(value)
        if number_ok and (pattern is None or pattern.fullmatch(text)):
            return text
        self.errors.append(
            f"{label} must be {allowed}, got the YAML number {text}: "
            "write the value in quotes, exactly as you mean it (YAML reads 26.10 as 26.1)"
        )
        return default

    def required(self, key: str, pattern: re.Pattern[str], allowed: str, hint: str) -> str:
        value = self.text(key, pattern, allowed)
        if value is None and self.source.get(key) is None:
            self.errors.append(f"{self.label(key)} is required: {hint}")
        return value or ""

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        def parse(value: Any) -> bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ValueError

        return self._read(key, parse, "true or false", default)

    def integer(self, key: str, low: int, high: int, default: int | None = None) -> int | None:
        def parse(value: Any) -> int:
            if isinstance(value, bool):
                raise ValueError
            number = value if isinstance(value, int) else int(str(value).strip(), 10)
            if not low <= number <= high:
                raise ValueError
            return number

        return self._read(key, parse, f"a whole number from {low} to {high}", default)

    def string_list(self, key: str, example: str) -> list[Any] | None:
        def parse(value: Any) -> list[Any]:
            items = json.loads(value) if isinstance(value, str) else value
            if not isinstance(items, list):
                raise ValueError
            return items

        return self._read(key, parse, f"a list, e.g. {example}", None)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_text(value: int | float) -> str:
    """A number as YAML/JSON would print it (26.05, 0.08, 100), never Python's exponent form."""
    return str(value) if isinstance(value, int) else json.dumps(value)


def report(errors: list[str]) -> str:
    """The message of a SettingsError: every problem once, one per line."""
    return "invalid stack configuration:\n  - " + "\n  - ".join(dict.fromkeys(errors))
