"""The pack's policies: each pure rule of `rules` as a mandatory ResourceValidationPolicy."""

from __future__ import annotations

from collections.abc import Callable

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from . import rules

Rule = Callable[[rules.Resource], list[str]]


def _validate_with(rule: Rule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = rules.Resource(args.resource_type, args.props, bool(args.opts.protect))
        for message in rule(resource):
            report_violation(message, None)

    return validate


def _policy(name: str, rule: Rule) -> ResourceValidationPolicy:
    # The rule's docstring is the description shown next to a violation.
    return ResourceValidationPolicy(
        name=name,
        description=(rule.__doc__ or name).strip(),
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_validate_with(rule),
    )


def _validate_stack(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    resources = [
        rules.StackResource(
            r.resource_type,
            r.props,
            r.urn,
            r.parent.urn if r.parent else None,
            r.parent.resource_type if r.parent else None,
        )
        for r in args.resources
    ]
    for message, urn in rules.no_ssh_from_anywhere_in_pieces(resources):
        report_violation(message, urn)


# Separate rule resources can only be seen together by a stack policy.
SSH_IN_PIECES = StackValidationPolicy(
    name="no-ssh-from-anywhere-in-pieces",
    description=(rules.no_ssh_from_anywhere_in_pieces.__doc__ or "").strip(),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_stack,
)

POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    _policy("ec2-imdsv2-required", rules.imdsv2_required),
    _policy("ebs-volumes-encrypted", rules.ebs_encrypted),
    _policy("no-ssh-from-anywhere", rules.no_ssh_from_anywhere),
    _policy("iam-least-privilege", rules.iam_least_privilege),
    _policy("home-volume-protected", rules.home_volume_protected),
    _policy("no-token-in-user-data", rules.no_token_in_user_data),
    SSH_IN_PIECES,
]
