# One Secrets Manager secret with one value, under a name the program chooses (token, signing key).

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def stored_secret(
    resource_name: str,
    value: pulumi.Input[str],
    *,
    name: str | None,
    description: str,
    tags: dict[str, str],
    parent: pulumi.Resource,
    kms_key_id: str | None = None,
) -> aws.secretsmanager.Secret:
    """The secret and its one version; `value` should be a secret Output (encrypted in state)."""
    secret = aws.secretsmanager.Secret(
        resource_name,
        name=name,
        description=description,
        kms_key_id=kms_key_id,
        # Deleted at once: with a fixed name, a secret pending deletion would block the next
        # `pulumi up` of a re-created stack; the value's source of truth is the stack.
        recovery_window_in_days=0,
        tags=tags,
        # A fixed name cannot exist twice: a replacement must delete the old secret first.
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
    )
    aws.secretsmanager.SecretVersion(
        resource_name,
        secret_id=secret.id,
        secret_string=value,
        opts=pulumi.ResourceOptions(parent=secret),
    )
    return secret
