"""A binary cache the stack owns: a private, encrypted S3 bucket that CI fills with store paths
signed by a key the program generates. The machines only read it; only CI writes to it.

Trust: the secret half of the signing key lives in the stack's state (a Pulumi secret) and in one
Secrets Manager secret that only the CI writer role may read (GitHub OIDC, the default branch of
one repository). No instance role can read that secret or write to the bucket (docs/speed.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls

from components.binary_cache_policies import (
    deny_insecure_transport,
    github_oidc_trust_policy,
    writer_policy,
)
from components.instance_role import ROLE_PATH
from components.nix_signing_key import nix_public_key, nix_secret_key
from components.settings import BinaryCacheSettings
from components.settings.cache import BUCKET_PREFIX as SETTINGS_BUCKET_PREFIX
from components.stored_secret import stored_secret

# What a Nix binary cache announces (libstore binary-cache-store.cc `init`): the store it is for,
# that clients may ask it in bulk, and a priority below cache.nixos.org's 40 so it is asked first.
# Created here, so Nix never needs to write it: a machine that may only read could not.
CACHE_INFO = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n"
CACHE_INFO_KEY = "nix-cache-info"
# The lifecycle rule expires objects larger than this: every NAR and every .narinfo (a store
# path, its URL, two hashes and a signature are already more), never the ~50-byte nix-cache-info.
MIN_EXPIRING_OBJECT_BYTES = 128
DEFAULT_RETENTION_DAYS = 90
# Bucket names start with this: the operator policy and the roles' boundary are scoped to it.
BUCKET_PREFIX = SETTINGS_BUCKET_PREFIX


def signing_key_name(stack: str) -> str:
    """The key's name in signatures and in trusted-public-keys (`<name>:<key>`)."""
    return f"devserver-{re.sub(r'[^A-Za-z0-9._-]', '-', stack)}-1"


def signing_key_secret_name(stack: str) -> str:
    """The Secrets Manager name of the signing key (under devserver/, like the token secrets)."""
    return f"devserver/{stack}/binary-cache-signing-key"


def s3_url(bucket: str, region: str) -> str:
    """The Nix store URL of an S3 binary cache (Nix src/libstore/s3-binary-cache-store.md)."""
    return f"s3://{bucket}?region={region}"


@dataclass(frozen=True)
class BinaryCacheArgs:
    """Whose cache it is, where, how long unused paths stay, and which repository's CI fills it."""

    stack: str
    region: str
    tags: dict[str, str]
    retention_days: int = DEFAULT_RETENTION_DAYS
    writer_repository: str | None = None
    """`owner/name` of the GitHub repository whose main-branch workflow pushes (None: no writer
    role; grant one yourself with `writer_policy`)."""
    permissions_boundary: str | None = None
    """The boundary every role of the stack carries (docs/iam/devserver-boundary.json)."""

    def __post_init__(self) -> None:
        if self.retention_days < 1:
            raise ValueError(f"retention_days must be at least 1, got {self.retention_days}")


class BinaryCache(pulumi.ComponentResource):
    """A private S3 binary cache, its signing key pair and, if asked, the CI role that fills it."""

    bucket_name: pulumi.Output[str]
    """The bucket's name (chosen by AWS from BUCKET_PREFIX: unknown until it exists)."""
    url: pulumi.Output[str]
    """The Nix store URL machines substitute from (`s3://<bucket>?region=<region>`)."""
    public_key: pulumi.Output[str]
    """The Nix public key (`<name>:<base64>`) machines trust."""
    secret_key: pulumi.Output[str]
    """The Nix signing key: a Pulumi secret, in Secrets Manager for CI, never on a machine."""
    signing_key_secret_arn: pulumi.Output[str]
    """The Secrets Manager secret holding the signing key (readable by the writer role only)."""
    writer_role_arn: pulumi.Output[str | None]
    """The role GitHub Actions assumes to push (None without a writer repository)."""

    def __init__(
        self, name: str, args: BinaryCacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("devserver:aws:BinaryCache", name, None, opts)
        here = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=BUCKET_PREFIX,
            # Everything in it is rebuilt by CI: a destroy must not stop at a non-empty bucket.
            force_destroy=True,
            tags=args.tags,
            opts=here,
        )
        on_bucket = pulumi.ResourceOptions(parent=bucket)
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            # ACLs off: the bucket's policy and IAM decide everything.
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=on_bucket,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=on_bucket,
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            # SSE-S3: readers need no KMS grant; the objects are public-source builds anyway.
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    ),
                    bucket_key_enabled=True,
                )
            ],
            opts=on_bucket,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                # A path and its NAR were uploaded together and expire together; a NAR that goes
                # first is "substitute gone" to Nix, which then builds or asks the next cache.
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-old-store-paths",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(
                        object_size_greater_than=MIN_EXPIRING_OBJECT_BYTES
                    ),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=args.retention_days
                    ),
                ),
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="abort-incomplete-uploads",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=1
                    ),
                ),
            ],
            opts=on_bucket,
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=bucket.arn.apply(deny_insecure_transport),
            # S3 rejects concurrent bucket-level changes; the public access block goes first.
            opts=pulumi.ResourceOptions(parent=bucket, depends_on=[public_access, ownership]),
        )
        aws.s3.BucketObjectv2(
            f"{name}-cache-info",
            bucket=bucket.id,
            key=CACHE_INFO_KEY,
            content=CACHE_INFO,
            content_type="text/x-nix-cache-info",
            opts=pulumi.ResourceOptions(parent=bucket, depends_on=[encryption]),
        )

        key_name = signing_key_name(args.stack)
        key = tls.PrivateKey(f"{name}-signing-key", algorithm="ED25519", opts=here)
        self.secret_key = pulumi.Output.secret(
            key.private_key_openssh.apply(lambda text: nix_secret_key(key_name, text))
        )
        self.public_key = key.public_key_openssh.apply(lambda text: nix_public_key(key_name, text))
        secret = stored_secret(
            f"{name}-signing-key",
            self.secret_key,
            name=signing_key_secret_name(args.stack),
            description=f"Nix binary cache signing key of stack {args.stack} (CI only)",
            tags=args.tags,
            parent=self,
        )

        self.writer_role_arn = pulumi.Output.from_input(None)
        if args.writer_repository is not None:
            repository = args.writer_repository
            # The account and partition come from the secret's ARN: no lookup, known when it is.
            arn_fields = secret.arn.apply(lambda arn: arn.split(":"))
            role = aws.iam.Role(
                f"{name}-writer",
                assume_role_policy=arn_fields.apply(
                    lambda f: github_oidc_trust_policy(f[4], repository, f[1])
                ),
                description=f"GitHub Actions of {repository} (main) push to the binary cache",
                # Owned by the stack (=stack): the boundary lets only such roles push.
                tags=args.tags,
                path=ROLE_PATH,
                permissions_boundary=args.permissions_boundary,
                opts=here,
            )
            aws.iam.RolePolicy(
                f"{name}-writer",
                role=role.id,
                policy=pulumi.Output.all(bucket.bucket, secret.arn).apply(
                    lambda v: writer_policy(v[0], v[1], v[1].split(":")[1])
                ),
                opts=pulumi.ResourceOptions(parent=role),
            )
            self.writer_role_arn = role.arn

        self.bucket_name = bucket.bucket
        self.url = bucket.bucket.apply(lambda b: s3_url(b, args.region))
        self.signing_key_secret_arn = secret.arn
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "url": self.url,
                "public_key": self.public_key,
                "signing_key_secret_arn": self.signing_key_secret_arn,
                "writer_role_arn": self.writer_role_arn,
            }
        )

    def outputs(self) -> dict[str, pulumi.Output[object]]:
        """The `binaryCache` stack output: what CI and other stacks need (never the secret key)."""
        return {
            "url": self.url,
            "publicKey": self.public_key,
            "bucket": self.bucket_name,
            "signingKeySecretArn": self.signing_key_secret_arn,
            "writerRoleArn": self.writer_role_arn,
        }


@dataclass(frozen=True)
class TrustedCache:
    """The binary cache one machine substitutes from: where, whose key, and which bucket (if any)
    its role may read."""

    url: pulumi.Output[str]
    public_key: pulumi.Output[str]
    bucket: pulumi.Input[str] | None


def trusted_cache(
    settings: BinaryCacheSettings | None, own: BinaryCache | None
) -> TrustedCache | None:
    """The stack's own cache (its bucket, its generated key) or a team's (URL, key, and its
    bucket when it is an s3:// one), for a server's settings."""
    if settings is None:
        return None
    if settings.own:
        assert own is not None, "__main__ builds the stack's cache when a server trusts it"
        return TrustedCache(own.url, own.public_key, own.bucket_name)
    assert settings.url is not None and settings.public_key is not None
    url, key = pulumi.Output.from_input(settings.url), pulumi.Output.from_input(settings.public_key)
    return TrustedCache(url, key, settings.bucket)
