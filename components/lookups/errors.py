# How a failed AWS lookup is reported: not found (AwsLookupError), or refused (AwsPermissionError).

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import pulumi


class AwsLookupError(Exception):
    """An AWS lookup found nothing; the message says what was asked."""


def lookup_failed(server: str, err: AwsLookupError) -> str:
    """A failed lookup of what AWS holds, as a problem: AWS's, not a configuration value's."""
    return f"server {server!r}: an AWS lookup failed (no configuration key is at fault): {err}"


# The least-privilege policy for the identity running Pulumi (docs/security.md).
OPERATOR_POLICY = Path(__file__).resolve().parents[2] / "docs" / "iam" / "operator-policy.json"
# How AWS says "not allowed": EC2 UnauthorizedOperation, other services AccessDenied(Exception).
DENIED_RE = re.compile(r"UnauthorizedOperation|AccessDenied|not authorized to perform")
# IAM names the action it refused: "... is not authorized to perform: ec2:DescribeInstances ...".
DENIED_ACTION_RE = re.compile(r"not authorized to perform: ([A-Za-z0-9-]+:[A-Za-z0-9*]+)")


class AwsPermissionError(pulumi.RunError):
    """AWS refused lookups to the identity running Pulumi: a permission problem, not a bad value."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(permission_report(list(problems)))
        self.problems: tuple[str, ...] = tuple(problems)
        """Each refusal on its own, so those of several servers can be reported together."""


def permission_report(problems: list[str]) -> str:
    """The message for one or more refused lookups: nothing was created."""
    return (
        "a permission problem, not a configuration problem (nothing was created):\n  - "
        + "\n  - ".join(dict.fromkeys(problems))
    )


def policy_statement(action: str) -> str:
    """Which statement of the operator policy grants the action, as words for a message."""
    try:
        statements = json.loads(OPERATOR_POLICY.read_text(encoding="utf-8"))["Statement"]
    except (OSError, ValueError, KeyError):
        return "(its statements)"
    for statement in statements:
        actions = statement.get("Action")
        if action in (actions if isinstance(actions, list) else [actions]):
            return f"(statement {statement.get('Sid', '?')})"
    return "(no statement has it yet: add it there too)"


def denied(err: BaseException, action: str, asked: str) -> AwsPermissionError | None:
    """The permission problem an invoke's error reports, or None when it is something else."""
    text = str(err)
    found = DENIED_RE.search(text)
    if found is None:
        return None
    code = "AccessDenied" if found.group(0) == "not authorized to perform" else found.group(0)
    named = DENIED_ACTION_RE.search(text)
    action = named.group(1) if named else action
    policy = OPERATOR_POLICY.relative_to(OPERATOR_POLICY.parents[2]).as_posix()
    return AwsPermissionError(
        [
            f"AWS denied {action} ({code}) to the identity running Pulumi, reading {asked}. "
            f"Allow {action} for that identity: {policy} {policy_statement(action)} lists every "
            "action this program needs; attach it, or update your copy of it"
        ]
    )


P = ParamSpec("P")
R = TypeVar("R")


def needs(action: str, asked: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Reports a refusal of this lookup as a permission problem naming `action` (the IAM action
    the invoke calls), instead of as "not found" or a bad configuration value."""

    def wrap(lookup: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(lookup)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return lookup(*args, **kwargs)
            except AwsPermissionError:
                raise
            except Exception as err:
                problem = denied(err, action, asked)
                if problem is not None:
                    raise problem from err
                raise

        return checked

    return wrap


def no_results(err: Exception) -> bool:
    # Older AWS providers answer an empty match with this error instead of no ids.
    return "no results" in str(err).lower() or "no matching" in str(err).lower()
