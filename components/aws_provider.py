"""Explicit AWS providers, built from the stack's own `aws:` settings in one place.

The stack's `aws:` config reaches the default AWS provider only. A provider the program makes
itself (the Price List API's, which must live in a region that serves it) gets nothing of it
unless it is passed on, and a provider whose Configure fails fails the whole update: the
program cannot catch it. So every setting the default provider reads - keys, profile, shared
files, assumed roles, endpoints, retries, proxies - is handed over unchanged; only the region
is the caller's. (The spot-request canceller, which is not a provider, gets the same settings as
`AwsAccess`, components/spot_request.py.)
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

# aws.Provider's arguments by how the stack config holds them (pulumi_aws 7.x provider.py; the
# keys are its `aws:` config keys, camelCased). Structured values stay as the config gives them:
# the provider serialises them to the same JSON the default provider is configured with.
SECRET = ("accessKey", "secretKey", "token")
TEXT = (
    "profile",
    "customCaBundle",
    "httpProxy",
    "httpsProxy",
    "noProxy",
    "retryMode",
    "stsRegion",
    "tagPolicyCompliance",
)
FLAGS = (
    "insecure",
    "skipCredentialsValidation",
    "skipMetadataApiCheck",
    "skipRegionValidation",
    "skipRequestingAccountId",
    "useDualstackEndpoint",
    "useFipsEndpoint",
)
NUMBERS = ("maxRetries", "tokenBucketRateLimiterCapacity")
OBJECTS = (
    "allowedAccountIds",
    "assumeRoleWithWebIdentity",
    "assumeRoles",
    "defaultTags",
    "endpoints",
    "forbiddenAccountIds",
    "ignoreTags",
    "sharedConfigFiles",
    "sharedCredentialsFiles",
    "userAgents",
)


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def stack_aws_settings(config: pulumi.Config | None = None) -> dict[str, Any]:
    """Every `aws:` setting of the stack but the region, as aws.Provider arguments."""
    aws_config = config or pulumi.Config("aws")
    found: dict[str, Any] = {}
    for key in SECRET:
        found[key] = aws_config.get_secret(key)
    for key in TEXT:
        found[key] = aws_config.get(key)
    for key in FLAGS:
        found[key] = aws_config.get_bool(key)
    for key in NUMBERS:
        found[key] = aws_config.get_int(key)
    for key in OBJECTS:
        found[key] = aws_config.get_object(key)
    return {_snake(k): v for k, v in found.items() if v is not None}


def explicit_provider(name: str, region: str) -> aws.Provider:
    """An AWS provider in `region` that authenticates exactly like the stack's default one."""
    return aws.Provider(name, region=region, **stack_aws_settings())
