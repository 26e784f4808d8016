# The IAM and bucket policies of the binary cache: machines read it, CI's OIDC role writes to it.

from __future__ import annotations

import json

# GitHub's OIDC issuer for Actions (docs.github.com, "Configuring OpenID Connect in AWS").
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
# What Nix reads from an S3 binary cache (Nix src/libstore/s3-binary-cache-store.md, "Authenticated
# reads") and what `nix copy --to s3://…` needs on top to write (same page, "Authenticated writes").
READ_ACTIONS = ("s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket")
WRITE_ACTIONS = (
    "s3:AbortMultipartUpload",
    "s3:GetBucketLocation",
    "s3:GetObject",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:ListMultipartUploadParts",
    "s3:PutObject",
)


def _arns(bucket: str, partition: str) -> list[str]:
    return [f"arn:{partition}:s3:::{bucket}", f"arn:{partition}:s3:::{bucket}/*"]


def reader_policy(bucket: str, partition: str = "aws") -> str:
    """What a machine may do with a binary cache bucket: read it, and nothing else."""
    statement = {
        "Sid": "ReadBinaryCache",
        "Effect": "Allow",
        "Action": list(READ_ACTIONS),
        "Resource": _arns(bucket, partition),
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def writer_policy(bucket: str, secret_arn: str, partition: str = "aws") -> str:
    """What CI may do: upload to this one bucket and read this one signing key."""
    statements = [
        {
            "Sid": "UploadToBinaryCache",
            "Effect": "Allow",
            "Action": list(WRITE_ACTIONS),
            "Resource": _arns(bucket, partition),
        },
        {
            "Sid": "ReadSigningKey",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secret_arn,
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def github_oidc_trust_policy(account: str, repository: str, partition: str = "aws") -> str:
    """Only GitHub Actions runs of `repository` on its main branch (push, schedule, dispatch), with
    the audience configure-aws-credentials asks for, may assume the writer role. Pull requests
    (sub `repo:<r>:pull_request`) and other branches cannot: PR-authored code never signs."""
    provider = f"arn:{partition}:iam::{account}:oidc-provider/{GITHUB_OIDC_HOST}"
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": provider},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                f"{GITHUB_OIDC_HOST}:sub": f"repo:{repository}:ref:refs/heads/main",
            }
        },
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def deny_insecure_transport(bucket_arn: str) -> str:
    """Nothing reaches the bucket over plain HTTP (AWS S3 User Guide, `aws:SecureTransport`)."""
    statement = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})
