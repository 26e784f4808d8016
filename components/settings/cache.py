# Binary cache rules: the stack's own cache, or a team's by URL and public key, and who fills it.

from __future__ import annotations

import base64
import binascii
import re

from components.settings.declaration import SERVER, STACK, Key
from components.settings.model import BinaryCacheSettings
from components.settings.reader import Context, Reader

# Nix store URLs a machine may substitute from: an S3 bucket named by S3's rules (read with the
# instance role) with its region, or an HTTPS cache. No plain HTTP, no local path, no credentials.
S3_URL_RE = re.compile(
    r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\?region=(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)"
)
HTTPS_URL_RE = re.compile(r"https://[A-Za-z0-9.-]+(?::\d{1,5})?(?:/[A-Za-z0-9._~/%+-]*)?")
# `<name>:<base64 of a 32-byte Ed25519 key>` (Nix libutil signature/local-keys.cc).
PUBLIC_KEY_RE = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*):(?P<key>[A-Za-z0-9+/]{43}=)")
# The stack's own cache buckets start with this (components/binary_cache.py names them; the
# operator policy and the roles' boundary are scoped to it).
BUCKET_PREFIX = "devserver-cache-"
# A GitHub repository: owner (39 characters of letters, digits, inner hyphens) / name.
REPOSITORY_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
URL_ALLOWED = "s3://<bucket>?region=<region> or https://<host>[/path] (no credentials, no HTTP)"
KEY_ALLOWED = "a Nix public key <name>:<base64 of 32 bytes> (`nix key convert-secret-to-public`)"


def _public_key(r: Reader) -> str | None:
    value = r.text("binaryCachePublicKey", PUBLIC_KEY_RE, KEY_ALLOWED)
    if value is None:
        return None
    try:
        length = len(base64.b64decode(value.split(":", 1)[1], validate=True))
    except (binascii.Error, ValueError):
        length = 0
    if length != 32:
        r.fail(r.label("binaryCachePublicKey"), value, KEY_ALLOWED)
        return None
    return value


def binary_cache(r: Reader, ctx: Context) -> BinaryCacheSettings | None:
    """The cache this server trusts: the stack's own, a team's, or none (one rule for the three
    keys, so a combination that cannot work is named with every key involved)."""
    own = r.boolean("binaryCache", default=False)
    url = r.text("binaryCacheUrl", None, URL_ALLOWED)
    if url is not None and not (S3_URL_RE.fullmatch(url) or HTTPS_URL_RE.fullmatch(url)):
        r.fail(r.label("binaryCacheUrl"), url, URL_ALLOWED)
        url = ""
    key = _public_key(r)
    given = {k for k in ("binaryCacheUrl", "binaryCachePublicKey") if r.source.get(k)}
    if own and given:
        r.errors.append(
            f"{r.label('binaryCache')} and {' and '.join(r.label(k) for k in sorted(given))} "
            "exclude each other: the stack's own cache has its own URL and generated key; set "
            "either binaryCache true, or binaryCacheUrl with binaryCachePublicKey for a team's"
        )
        return None
    if len(given) == 1:
        (present,) = given
        missing = ({"binaryCacheUrl", "binaryCachePublicKey"} - given).pop()
        r.errors.append(
            f"{r.label(present)} needs {ctx.prefix}{missing} too: Nix trusts a cache only with "
            "its public key, and a key alone names no cache"
        )
        return None
    if own:
        return BinaryCacheSettings(own=True)
    if url and key:
        match = S3_URL_RE.fullmatch(url)
        return BinaryCacheSettings(url=url, public_key=key, bucket=match and match["bucket"])
    return None


def writer_repository(r: Reader, ctx: Context) -> str | None:
    return r.text("binaryCacheWriterRepository", REPOSITORY_RE, "a GitHub repository as owner/name")


# The keys this module's rules check, declared once (keys.py collects them; order = check order).
KEYS = (
    Key(
        "binaryCache",
        "boolean",
        SERVER,
        binary_cache,
        "Substitute from a binary cache the stack owns (a private, encrypted S3 bucket that CI "
        "fills with paths signed by a key the program generates): a new machine's first switch "
        "only downloads. See docs/speed.md.",
        default=False,
        details="One bucket per stack, shared by every server that sets it; the server's role "
        "may only read it. Excludes `binaryCacheUrl`.",
    ),
    Key(
        "binaryCacheUrl",
        "string",
        SERVER,
        binary_cache,
        "A team's existing binary cache to substitute from instead: s3://<bucket>?region=<region> "
        "(the instance role gets read-only access to that bucket) or https://…; needs "
        "binaryCachePublicKey.",
        default="",
        details="The machine only reads it, never writes. No plain HTTP, local paths or "
        "credentials in the URL.",
    ),
    Key(
        "binaryCachePublicKey",
        "string",
        SERVER,
        binary_cache,
        "The public key (<name>:<base64>) that signs binaryCacheUrl's paths; Nix refuses every "
        "path it did not sign.",
        default="",
    ),
    Key(
        "binaryCacheWriterRepository",
        "string",
        STACK,
        writer_repository,
        "GitHub repository (owner/name) whose main-branch workflow fills the stack's own cache "
        "through OIDC: the program creates that writer role. Unset: no role can write.",
        default="",
        details="Only with `binaryCache`. Pull requests and other branches cannot assume the "
        "role; it may upload to the bucket and read the signing key, nothing else.",
    ),
)
