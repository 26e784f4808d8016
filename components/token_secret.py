"""The GitHub token in Secrets Manager: kept encrypted there, never in plaintext elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.stored_secret import stored_secret


def token_secret_name(stack: str, server: str) -> str:
    """The secret's name, chosen by the program so the host flake knows it at preview."""
    return f"devserver/{stack}/{server}/github-token"


@dataclass(frozen=True)
class GithubTokenSecretArgs:
    """A token (a secret Output), who it belongs to, and an optional customer KMS key."""

    token: pulumi.Output[str]
    owner: str
    tags: dict[str, str]
    kms_key_arn: str | None = None
    name: str | None = None
    """The secret's name (see token_secret_name); None lets Pulumi auto-name it."""


class GithubTokenSecret(pulumi.ComponentResource):
    """A Secrets Manager secret holding a read-only GitHub token for private flakes."""

    arn: pulumi.Output[str]
    """The secret's full ARN (with its random suffix): what the instance role may read."""
    secret_name: str | None
    """The program-chosen name (what the machine asks GetSecretValue for)."""

    def __init__(
        self, name: str, args: GithubTokenSecretArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("devserver:aws:GithubTokenSecret", name, None, opts)
        secret = stored_secret(
            f"{name}-github-token",
            # A secret Output from `require_secret`: encrypted in state, never in a plan or a log.
            args.token,
            name=args.name,
            description=f"Read-only GitHub token for {args.owner}'s dev server (private flakes)",
            tags=args.tags,
            parent=self,
            kms_key_id=args.kms_key_arn,
        )
        self.arn = secret.arn
        self.secret_name = args.name
        self.register_outputs({"arn": self.arn})
