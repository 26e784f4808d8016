# Secret rules: githubToken and deployPrivateKey must be stored encrypted and have the right shape.

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

import pulumi

from components.settings.declaration import STACK, Key
from components.settings.model import NAMESPACE
from components.settings.reader import Context, Reader, Secret

# A GitHub token is printable ASCII without spaces (ghp_…, github_pat_…).
TOKEN_RE = re.compile(r"[\x21-\x7e]+")
# The armour around an OpenSSH private key (written in two parts so secret scanners that grep
# for it do not flag this constant).
OPENSSH_KEY_BEGIN = "-----BEGIN OPENSSH " + "PRIVATE KEY-----"
OPENSSH_KEY_END = "-----END OPENSSH " + "PRIVATE KEY-----"
# openssh-portable PROTOCOL.key: the decoded body starts with this magic, then the cipher name.
OPENSSH_KEY_MAGIC = b"openssh-key-v1\x00"


@dataclass(frozen=True)
class DeployKey:
    """`devserver:deployPrivateKey`: the secret key, and the public blob it carries in the clear."""

    private_key: pulumi.Output[str]
    public_blob: str | None


def _stored(r: Reader, ctx: Context, key: str) -> Secret | None:
    """A secret key; set in plaintext it is refused, so the user's token never sits in a file."""
    full = f"{NAMESPACE}:{key}"
    secret = ctx.secrets.get(key, Secret())
    if not secret.raw:
        return None
    if not secret.secure or secret.output is None:
        r.errors.append(
            f"{full} must be stored as a secret (./scripts/pulumi config set --secret {full} …); "
            "it is in plaintext now, so rotate it and set it again"
        )
        return None
    return secret


def github_token(r: Reader, ctx: Context) -> pulumi.Output[str] | None:
    """A pasted token often carries a newline; refused (never trimmed or echoed): what is stored
    is exactly what reaches the machine."""
    secret = _stored(r, ctx, "githubToken")
    if secret is None:
        return None
    full = f"{NAMESPACE}:githubToken"
    if not TOKEN_RE.fullmatch(secret.raw or ""):
        r.errors.append(
            f"{full} must be the token alone, without spaces, newlines or control characters "
            "(value not shown): set it again with "
            f'`printf %s "$TOKEN" | ./scripts/pulumi config set --secret {full}`'
        )
    return secret.output


def deploy_private_key(r: Reader, ctx: Context) -> DeployKey | None:
    """The deploy key is used deep inside provider calls; its shape is checked here, from the raw
    config value, so a wrong paste fails before anything is registered. Never echoed."""
    secret = _stored(r, ctx, "deployPrivateKey")
    if secret is None or secret.output is None:
        return None
    full = f"{NAMESPACE}:deployPrivateKey"
    problem = _openssh_key_problem(secret.raw or "")
    if problem:
        r.errors.append(
            f"{full} must be an unencrypted OpenSSH private key ({OPENSSH_KEY_BEGIN} … "
            f"{OPENSSH_KEY_END}, as ssh-keygen -t ed25519 -N '' writes it), but {problem} "
            "(value not shown)"
        )
    return DeployKey(secret.output, openssh_public_blob(secret.raw or ""))


def _openssh_key_problem(text: str) -> str | None:
    """What is wrong with an OpenSSH private key's armour and header, or None."""
    lines = text.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != OPENSSH_KEY_BEGIN:
        return f"it does not start with {OPENSSH_KEY_BEGIN}"
    if lines[-1].strip() != OPENSSH_KEY_END:
        return f"it does not end with {OPENSSH_KEY_END}"
    try:
        body = base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        return "its body is not base64"
    if not body.startswith(OPENSSH_KEY_MAGIC):
        return "its body is not an openssh-key-v1 key"
    rest = body[len(OPENSSH_KEY_MAGIC) :]
    length = int.from_bytes(rest[:4], "big")
    if rest[4 : 4 + length] != b"none":
        return "it is protected by a passphrase, which the deployment cannot enter"
    return None


def openssh_public_blob(text: str) -> str | None:
    """The public key (base64 wire blob, as in `ssh-ed25519 <blob>`) an unencrypted OpenSSH
    private key carries in the clear (PROTOCOL.key: magic, cipher, kdf, kdf options, count,
    public key), or None when it is not such a key. Nothing secret is read."""
    if _openssh_key_problem(text) is not None:
        return None
    lines = text.strip().splitlines()
    body = base64.b64decode("".join(line.strip() for line in lines[1:-1]))
    at = len(OPENSSH_KEY_MAGIC)
    for _ in range(3):  # cipher name, kdf name, kdf options
        at += 4 + int.from_bytes(body[at : at + 4], "big")
    at += 4  # the number of keys
    length = int.from_bytes(body[at : at + 4], "big")
    blob = body[at + 4 : at + 4 + length]
    return base64.b64encode(blob).decode() if len(blob) == length and blob else None


# The keys this module's rules check, declared once (keys.py collects them; order = check order).
KEYS = (
    Key(
        "githubToken",
        "string",
        STACK,
        github_token,
        "Read-only GitHub token for private `github:` flakes, kept in Secrets Manager and read "
        "by the "
        "machine's own role (pulumi config set --secret ...). The token alone: spaces or a "
        "newline are refused, not trimmed.",
        default="",
        details="Set in plaintext it is refused; a token with control characters too (never "
        'shown: set it again with `printf %s "$TOKEN" | pulumi config set --secret '
        "devserver:githubToken`).",
        secret=True,
    ),
    Key(
        "deployPrivateKey",
        "string",
        STACK,
        deploy_private_key,
        "Unencrypted OpenSSH private key (BEGIN OPENSSH PRIVATE KEY) to deploy with. Defaults to "
        "a generated ed25519 key kept as a Pulumi secret (pulumi config set --secret ...).",
        default="",
        shown_default="generated",
        details="Checked up front, never shown: the OpenSSH armour and no passphrase "
        "(`ssh-keygen -t ed25519 -N ''`). Changing it replaces the machine: change it together "
        "with `devserver:rebuild`.",
        secret=True,
    ),
)
