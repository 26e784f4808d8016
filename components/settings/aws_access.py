# AWS access rules: the aws: provider settings other code must honour, and the customer KMS keys.

from __future__ import annotations

import re
from typing import Any

import pulumi

from components.settings.declaration import STACK, Key
from components.settings.model import NAMESPACE, AssumeRole, AwsAccess
from components.settings.reader import Context, Reader

KMS_KEY_ARN_RE = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z0-9-]+):\d{12}:"
    r"key/(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
)
# AWS partitions by region prefix; every other region is in `aws`.
PARTITIONS = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-iso-", "aws-iso"),
)
REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
# A customer managed policy (IAM's own names: letters, digits and +=,.@-_; an optional path).
POLICY_ARN_RE = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):iam::\d{12}:policy/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,128}"
)


# aws.Provider's arguments by how the stack config holds them (pulumi_aws 7.x provider.py; the
# keys are its `aws:` config keys, camelCased). Structured values stay as the config gives them:
# the provider serialises them to the same JSON the default provider is configured with.
_SECRET = ("accessKey", "secretKey", "token")
_TEXT = (
    "profile",
    "customCaBundle",
    "ec2MetadataServiceEndpoint",
    "ec2MetadataServiceEndpointMode",
    "httpProxy",
    "httpsProxy",
    "noProxy",
    "retryMode",
    "s3UsEast1RegionalEndpoint",
    "stsRegion",
    "tagPolicyCompliance",
)
_FLAGS = (
    "insecure",
    "s3UsePathStyle",
    "skipCredentialsValidation",
    "skipMetadataApiCheck",
    "skipRegionValidation",
    "skipRequestingAccountId",
    "useDualstackEndpoint",
    "useFipsEndpoint",
)
_NUMBERS = ("maxRetries", "tokenBucketRateLimiterCapacity")
_OBJECTS = (
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
# Every key passed on (a test compares them with aws.Provider's signature).
PROVIDER_KEYS = (*_SECRET, *_TEXT, *_FLAGS, *_NUMBERS, *_OBJECTS)


def provider_args(aws: pulumi.Config) -> dict[str, Any]:
    """Every `aws:` setting of the stack but the region, as aws.Provider's (snake_case) arguments.

    The stack's `aws:` config reaches the default AWS provider only; a provider the program makes
    itself gets nothing of it unless it is passed on, and its failing Configure fails the whole
    update. So every setting the default provider reads is handed over unchanged.
    """
    found: dict[str, Any] = {}
    for key in _SECRET:
        found[key] = aws.get_secret(key)
    for key in _TEXT:
        found[key] = aws.get(key)
    for key in _FLAGS:
        found[key] = aws.get_bool(key)
    for key in _NUMBERS:
        found[key] = aws.get_int(key)
    for key in _OBJECTS:
        found[key] = aws.get_object(key)
    return {_snake(k): v for k, v in found.items() if v is not None}


def kept_secret(args: dict[str, Any]) -> dict[str, Any]:
    """The provider arguments with every value the stack config marks secret wrapped as one, so
    none reaches the state in plain (`Config.get` returns a secret's value unmarked)."""
    secret = {_snake(k) for k in PROVIDER_KEYS if pulumi.runtime.is_config_secret(f"aws:{k}")}
    return {k: pulumi.Output.secret(v) if k in secret else v for k, v in args.items()}


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def region(raw: str | None, errors: list[str]) -> str:
    """`aws:region`: required; every regional resource and KMS key is checked against it."""
    value = raw or ""
    if not REGION_RE.fullmatch(value):
        errors.append(f"aws:region must be an AWS region such as eu-west-1, got {value or None!r}")
    return value


def github_token_kms_key_arn(r: Reader, ctx: Context) -> str | None:
    """The token secret's KMS key: in the stack's region, and only with a token to encrypt."""
    arn = _regional_kms_key(
        r, "githubTokenKmsKeyArn", ctx.region, "Secrets Manager only uses keys of its own region"
    )
    if arn is not None and not ctx.has("githubToken"):
        r.errors.append(
            f"{r.label('githubTokenKmsKeyArn')} is set but unused: there is no "
            f"{NAMESPACE}:githubToken to encrypt; remove it or set the token"
        )
        return None
    return arn


def ebs_kms_key_arn(r: Reader, ctx: Context) -> str | None:
    """`devserver:ebsKmsKeyArn`: EBS encrypts a volume only with a key in the volume's region."""
    return _regional_kms_key(
        r, "ebsKmsKeyArn", ctx.region, "EBS only uses keys of the volume's region"
    )


def permissions_boundary(r: Reader, ctx: Context) -> str | None:
    """`devserver:permissionsBoundary`: the managed policy set as boundary on every role."""
    arn = r.text(
        "permissionsBoundary",
        POLICY_ARN_RE,
        "a customer managed policy ARN (arn:aws:iam::<account>:policy/devserver-boundary)",
    )
    if arn is None:
        return None
    match = POLICY_ARN_RE.fullmatch(arn)
    assert match is not None, "text() checked the pattern"
    partition = _partition(ctx.region)
    if match["partition"] != partition:
        allowed = f"a policy in the stack's partition {partition}"
        r.fail(r.label("permissionsBoundary"), arn, allowed)
        return None
    return arn


def _regional_kms_key(r: Reader, key: str, region: str, why: str) -> str | None:
    """A KMS key ARN (single- or multi-region, never an alias) in the stack's partition and
    region; a multi-region key is given by the ARN of its replica there."""
    arn = r.text(
        key,
        KMS_KEY_ARN_RE,
        "a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id or mrk-… multi-region id>)",
    )
    if arn is None:
        return None
    match = KMS_KEY_ARN_RE.fullmatch(arn)
    assert match is not None, "text() checked the pattern"
    partition = _partition(region)
    if match["partition"] != partition or match["region"] != region:
        r.fail(
            r.label(key),
            arn,
            f"a key in the stack's region {region} (partition {partition}): {why}; "
            "for a multi-region key give its replica's ARN there",
        )
        return None
    return arn


def _partition(region: str) -> str:
    return next((p for prefix, p in PARTITIONS if region.startswith(prefix)), "aws")


_ASSUME_ROLE_KEYS = {
    "roleArn",
    "sessionName",
    "externalId",
    "duration",
    "policy",
    "policyArns",
    "sourceIdentity",
    "tags",
    "transitiveTagKeys",
}


def _go_duration_seconds(text: str) -> int:
    """`aws:assumeRoles[].duration` is a Go duration such as 1h or 45m30s; STS wants seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or parts is None:
        raise ValueError(text)
    hours, minutes, seconds = (int(p or 0) for p in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def _assume_role(entry: Any, label: str, errors: list[str]) -> AssumeRole | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("roleArn"), str):
        errors.append(f"{label} must be an object with a roleArn, got {entry!r}")
        return None
    unknown = sorted(set(entry) - _ASSUME_ROLE_KEYS)
    if unknown:
        errors.append(f"{label} has keys the AWS provider does not know: {', '.join(unknown)}")
        return None
    duration = None
    if entry.get("duration"):
        try:
            duration = _go_duration_seconds(str(entry["duration"]))
        except ValueError:
            errors.append(
                f"{label}.duration must be a duration like 1h or 45m, got {entry['duration']!r}"
            )
    return AssumeRole(
        role_arn=entry["roleArn"],
        session_name=entry.get("sessionName"),
        external_id=entry.get("externalId"),
        duration_seconds=duration,
        policy=entry.get("policy"),
        policy_arns=tuple(entry.get("policyArns") or ()),
        source_identity=entry.get("sourceIdentity"),
        tags=tuple(sorted((entry.get("tags") or {}).items())),
        transitive_tag_keys=tuple(entry.get("transitiveTagKeys") or ()),
    )


def aws_access(args: dict[str, Any], errors: list[str]) -> tuple[AwsAccess, list[str]]:
    """The AWS provider's credential config (`provider_args`), and what code outside the provider
    cannot honour.

    The second list holds problems that matter only when something besides the provider calls
    AWS (the spot-request canceller); the caller reports them only then.
    """
    unsupported: list[str] = []
    roles: list[AssumeRole] = []
    raw_roles = args.get("assume_roles") or []
    if not isinstance(raw_roles, list):
        errors.append(f"aws:assumeRoles must be a list of role objects, got {raw_roles!r}")
        raw_roles = []
    for i, entry in enumerate(raw_roles):
        role = _assume_role(entry, f"aws:assumeRoles[{i}]", errors)
        if role is not None:
            roles.append(role)
    files: dict[str, str | None] = {}
    for key, paths in (
        ("sharedConfigFiles", args.get("shared_config_files") or []),
        ("sharedCredentialsFiles", args.get("shared_credentials_files") or []),
    ):
        if not isinstance(paths, list) or len(paths) > 1:
            unsupported.append(
                f"aws:{key} must name at most one file for the spot-request canceller "
                f"(boto3 reads one), got {paths!r}: merge them into one file"
            )
        files[key] = str(paths[0]) if isinstance(paths, list) and paths else None
    if args.get("assume_role_with_web_identity"):
        unsupported.append(
            "aws:assumeRoleWithWebIdentity is not supported by the spot-request canceller: "
            "set AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE in the environment instead"
        )
    endpoints: dict[str, str] = {}
    raw_endpoints = args.get("endpoints") or []
    for entry in raw_endpoints if isinstance(raw_endpoints, list) else [raw_endpoints]:
        if isinstance(entry, dict):
            endpoints.update({k: str(v) for k, v in entry.items() if k in ("ec2", "sts")})
    access = AwsAccess(
        profile=args.get("profile") or None,
        assume_roles=tuple(roles),
        shared_config_file=files["sharedConfigFiles"],
        shared_credentials_file=files["sharedCredentialsFiles"],
        ec2_endpoint=endpoints.get("ec2"),
        sts_endpoint=endpoints.get("sts"),
        access_key=args.get("access_key"),
        secret_key=args.get("secret_key"),
        token=args.get("token"),
        provider_args=kept_secret(args),
    )
    return access, unsupported


# The keys this module's rules check, declared once (keys.py collects them; order = check order).
KEYS = (
    Key(
        "githubTokenKmsKeyArn",
        "string",
        STACK,
        github_token_kms_key_arn,
        "Customer KMS key for the token secret, in the stack's region (a multi-region mrk- key "
        "by its replica's ARN there); the role may decrypt with it through Secrets Manager only. "
        "Needs githubToken.",
        default="",
        details="Without a token it is refused as unused.",
    ),
    Key(
        "ebsKmsKeyArn",
        "string",
        STACK,
        ebs_kms_key_arn,
        "Customer KMS key (ARN in the stack's region, mrk- keys too) for new root and home "
        "volumes. Empty = the account's EBS default key.",
        default="",
        shown_default="the account's EBS default key",
    ),
    Key(
        "permissionsBoundary",
        "string",
        STACK,
        permissions_boundary,
        "ARN of the permissions boundary set on every IAM role the stack creates (the instance "
        "roles, the snapshot role); create it from docs/iam/devserver-boundary.json as "
        "`devserver-boundary`. Unset: roles get no boundary, and the shipped operator and "
        "developer policies refuse to create them (docs/security.md).",
        default="",
        shown_default="none (required by the shipped IAM policies)",
        details="A customer managed policy ARN in the stack's partition. Setting or changing it "
        "updates the roles in place; removing it later is refused by the shipped policies.",
    ),
)
