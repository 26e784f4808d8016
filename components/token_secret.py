"""The GitHub token in Secrets Manager: kept encrypted there, never in plaintext elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class GithubTokenSecretArgs:
    """A token (a secret Output), who it belongs to, and an optional customer KMS key."""

    token: pulumi.Output[str]
    owner: str
    tags: dict[str, str]
    kms_key_arn: str | None = None


class GithubTokenSecret(pulumi.ComponentResource):
    """A Secrets Manager secret holding a read-only GitHub token for private flakes."""

    arn: pulumi.Output[str]
    """The secret's full ARN (with its random suffix): what the instance role may read."""

    def __init__(
        self, name: str, args: GithubTokenSecretArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("devserver:aws:GithubTokenSecret", name, None, opts)
        secret = aws.secretsmanager.Secret(
            f"{name}-github-token",
            description=f"Read-only GitHub token for {args.owner}'s dev server (private flakes)",
            kms_key_id=args.kms_key_arn,
            # A week to undo an accidental delete; the token is rotated on GitHub anyway.
            recovery_window_in_days=7,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-github-token",
            secret_id=secret.id,
            # A secret Output from `require_secret`: encrypted in state, never in a plan or a log.
            secret_string=args.token,
            opts=pulumi.ResourceOptions(parent=secret),
        )
        self.arn = secret.arn
        self.register_outputs({"arn": self.arn})
