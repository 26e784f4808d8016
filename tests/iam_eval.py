"""A small IAM policy evaluator for the shipped policies (single account, identity policies plus a
permissions boundary; no resource policies, SCPs or session policies).

No well-kept offline evaluator does conditions, policy variables and boundaries: moto's
access_control.py says "TODO add support for the Resource and Condition parts" and knows only
StringEquals; policyuniverse and parliament parse and lint, they do not decide a request. So each
rule here cites the AWS page it stands in for (IAM User Guide, read 2026; see docs/upstream-facts.md):

- EVAL: reference_policies_evaluation-logic_policy-eval-denyallow.html ("By default, all requests
  are implicitly denied", "An explicit deny overrides an explicit allow").
- BOUNDARY: access_policies_boundaries.html ("The effective permissions are the intersection of
  both policy types. An explicit deny in either of these policies overrides the allow.")
- OPERATORS: reference_policies_elements_condition_operators.html ("If the key that you specify
  in a policy condition is not present in the request context, the values do not match and the
  condition is false. If the policy condition requires that the key is not matched, such as
  StringNotLike or ArnNotLike, and the right key is not present, the condition is true. This logic
  applies to all condition operators except ...IfExists and Null check").
- MULTI: reference_policies_condition-logic-multiple-context-keys-or-values.html (operators AND,
  keys AND, values of one key OR; ForAllValues is true when the key is missing, ForAnyValue false).
- VARIABLES: reference_policies_variables.html ("${aws:PrincipalTag/...}" is replaced from the
  request context; a variable AWS cannot resolve may make the whole statement invalid: here the
  statement never matches, the safe reading for both Allow and the tests).
- ARN: ArnLike checks each of the six colon-separated parts separately, with * and ? wildcards.
- ACTION: action names are case-insensitive, resource ARNs case-sensitive
  (reference_policies_elements_action.html, reference_policies_elements_resource.html).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Value = str | bool | Sequence[str]
VARIABLE = re.compile(r"\$\{([^}]+)\}")


class Unresolved(Exception):
    """A policy variable names a key the request context lacks (VARIABLES)."""


@dataclass(frozen=True)
class Request:
    """One action on one resource with its request context (condition keys and their values)."""

    action: str
    resource: str
    context: Mapping[str, Value] = field(default_factory=dict)


def _list(value: Any) -> list[Any]:
    return [value] if isinstance(value, (str, bool)) else list(value)


def _substitute(text: str, context: Mapping[str, Value]) -> str:
    """Replace ${key} from the request context (VARIABLES); a missing or multivalued key raises."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        found = _lookup(context, name)
        if found is None or not isinstance(found, str):
            raise Unresolved(name)
        return found

    return VARIABLE.sub(one, text)


def _lookup(context: Mapping[str, Value], key: str) -> Value | None:
    """Condition key names are case-insensitive (reference_policies_elements_condition.html)."""
    for name, value in context.items():
        if name.lower() == key.lower():
            return value
    return None


def _wild(value: str, pattern: str, *, ignore_case: bool = False) -> bool:
    if ignore_case:
        return fnmatch.fnmatchcase(value.lower(), pattern.lower())
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _arn_like(value: str, pattern: str) -> bool:
    """ARN: each of the six colon-separated parts is matched on its own."""
    have, want = value.split(":", 5), pattern.split(":", 5)
    return len(have) == len(want) == 6 and all(_wild(h, w) for h, w in zip(have, want, strict=True))


def _compare(base: str, actual: str, wanted: str) -> bool:
    """One value against one policy value, for the base operator (without Not, IfExists)."""
    if base == "StringEquals":
        return actual == wanted
    if base == "StringEqualsIgnoreCase":
        return actual.lower() == wanted.lower()
    if base == "StringLike":
        return _wild(actual, wanted)
    if base in ("ArnEquals", "ArnLike"):
        return _arn_like(actual, wanted)
    if base == "Bool":
        return str(actual).lower() == str(wanted).lower()
    raise NotImplementedError(f"condition operator {base} is not modelled here")


NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition(operator: str, key: str, wanted: Any, context: Mapping[str, Value]) -> bool:
    """One operator and key of a Condition block (OPERATORS, MULTI)."""
    qualifier, _, op = operator.rpartition(":")
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    actual = _lookup(context, key)
    wanted_values = [_substitute(str(w), context) for w in _list(wanted)]
    if op == "Null":
        # Null: "true" matches an absent key, "false" a present one.
        return (actual is None) == (wanted_values[0].lower() == "true")
    if actual is None:
        if if_exists:
            return True
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return op in NEGATED
    negated = op in NEGATED
    base = NEGATED.get(op, op)
    actual_values = [str(a) if isinstance(a, bool) else a for a in _list(actual)]

    def matches(value: str) -> bool:
        return any(_compare(base, value, w) for w in wanted_values)

    if qualifier == "ForAllValues":
        return all(matches(v) != negated for v in actual_values)
    if qualifier == "ForAnyValue":
        return any(matches(v) != negated for v in actual_values)
    # A single-valued key: true when it matches one of the values (negated: none of them).
    return any(matches(v) for v in actual_values) != negated


def _matches(statement: Mapping[str, Any], request: Request) -> bool:
    """Does the statement apply to the request (ACTION, resource, every condition)?"""
    action = request.action.lower()
    if "Action" in statement:
        if not any(_wild(action, a, ignore_case=True) for a in _list(statement["Action"])):
            return False
    elif any(_wild(action, a, ignore_case=True) for a in _list(statement["NotAction"])):
        return False
    try:
        if "Resource" in statement:
            patterns = [_substitute(r, request.context) for r in _list(statement["Resource"])]
            if not any(_resource_match(request.resource, p) for p in patterns):
                return False
        else:
            patterns = [_substitute(r, request.context) for r in _list(statement["NotResource"])]
            if any(_resource_match(request.resource, p) for p in patterns):
                return False
        return all(
            _condition(operator, key, wanted, request.context)
            for operator, block in statement.get("Condition", {}).items()
            for key, wanted in block.items()
        )
    except Unresolved:
        return False


def _resource_match(resource: str, pattern: str) -> bool:
    return pattern == "*" or _arn_like(resource, pattern) or resource == pattern


def statements_matching(policy: Mapping[str, Any], request: Request, effect: str) -> list[str]:
    """The Sids (or indexes) of the policy's statements with this effect that apply."""
    return [
        str(s.get("Sid", i))
        for i, s in enumerate(policy["Statement"])
        if s["Effect"] == effect and _matches(s, request)
    ]


def decide(
    request: Request,
    identity: Sequence[Mapping[str, Any]],
    boundary: Mapping[str, Any] | None = None,
) -> str:
    """ "Allow", "ExplicitDeny" or "ImplicitDeny" (EVAL, BOUNDARY)."""
    every = [*identity, *([boundary] if boundary else [])]
    if any(statements_matching(p, request, "Deny") for p in every):
        return "ExplicitDeny"
    if not any(statements_matching(p, request, "Allow") for p in identity):
        return "ImplicitDeny"
    if boundary is not None and not statements_matching(boundary, request, "Allow"):
        return "ImplicitDeny"
    return "Allow"


def allowed(
    requests: Sequence[Request],
    identity: Sequence[Mapping[str, Any]],
    boundary: Mapping[str, Any] | None = None,
) -> bool:
    """An API call that touches several resources needs every one of them allowed."""
    return all(decide(r, identity, boundary) == "Allow" for r in requests)
