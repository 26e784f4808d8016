"""What the program asks of AWS, in every shape: the resource types and invokes it registers,
each mapped to the IAM actions the AWS provider calls for it. The operator and preview policy
tests (tests/test_operator_policy.py, tests/test_iam_policies.py) share this one map."""

from __future__ import annotations

import re
from typing import Any

from tests.program import FAKE_TOKEN, ProgramRun

KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
SHAPES: list[dict[str, Any]] = [
    {"devserver:githubTokenKmsKeyArn": KMS_KEY},
    {"devserver:preset": "x86-spot", "devserver:idleStopMinutes": 30},
    {"devserver:homeVolumeId": "vol-0123456789abcdef0", "devserver:availabilityZone": "eu-west-1b"},
    {"devserver:state": "stopped", "devserver:amiId": "ami-0aaaaaaaaaaaaaaaa"},
    {"devserver:binaryCache": True, "devserver:binaryCacheWriterRepository": "acme/infra"},
    {
        "devserver:servers": [
            {"name": "alice", "user": "alice", "githubUser": "alice-example"},
            {"name": "bob", "user": "bob", "githubUser": "bob-example", "preset": "graviton-spot"},
        ]
    },
]
EC2_TAGGING = ["ec2:CreateTags", "ec2:DeleteTags", "ec2:DescribeTags"]
# What the AWS provider calls for each resource type and invoke (create, read, update, delete).
ACTIONS: dict[str, list[str]] = {
    "aws:ec2/instance:Instance": [
        "ec2:RunInstances", "ec2:TerminateInstances", "ec2:DescribeInstances",
        "ec2:DescribeInstanceAttribute", "ec2:ModifyInstanceAttribute",
        "ec2:ModifyInstanceMetadataOptions", "ec2:DescribeInstanceCreditSpecifications",
        "ec2:DescribeVolumes", "ec2:DescribeNetworkInterfaces", "ec2:StopInstances",
        "ec2:StartInstances", "ec2:DescribeSpotInstanceRequests",
        "ec2:AssociateIamInstanceProfile", "ec2:DisassociateIamInstanceProfile",
        "ec2:ReplaceIamInstanceProfileAssociation", "ec2:DescribeIamInstanceProfileAssociations",
        "iam:PassRole", "iam:CreateServiceLinkedRole", *EC2_TAGGING,
    ],
    "aws:ebs/volume:Volume": [
        "ec2:CreateVolume", "ec2:DeleteVolume", "ec2:DescribeVolumes", "ec2:ModifyVolume",
        "ec2:DescribeVolumesModifications", *EC2_TAGGING,
        # A customer-managed key for the volume (EBS asks KMS on the caller's behalf).
        "kms:CreateGrant", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext",
        "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:Decrypt",
    ],
    "aws:ec2/volumeAttachment:VolumeAttachment": [
        "ec2:AttachVolume", "ec2:DetachVolume", "ec2:DescribeVolumes", "ec2:DescribeInstances",
        "ec2:StopInstances",
    ],
    "aws:ec2/keyPair:KeyPair": [
        "ec2:ImportKeyPair", "ec2:DeleteKeyPair", "ec2:DescribeKeyPairs", *EC2_TAGGING,
    ],
    "aws:ec2/securityGroup:SecurityGroup": [
        "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:DescribeSecurityGroups",
        "ec2:RevokeSecurityGroupEgress", *EC2_TAGGING,
    ],
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": [
        "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
        "ec2:DescribeSecurityGroupRules", "ec2:ModifySecurityGroupRules",
        "ec2:UpdateSecurityGroupRuleDescriptionsIngress", *EC2_TAGGING,
    ],
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": [
        "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress",
        "ec2:DescribeSecurityGroupRules", "ec2:ModifySecurityGroupRules",
        "ec2:UpdateSecurityGroupRuleDescriptionsEgress", *EC2_TAGGING,
    ],
    "aws:ec2transitgateway/instanceState:InstanceState": [
        "ec2:StartInstances", "ec2:StopInstances", "ec2:DescribeInstances",
        "ec2:DescribeInstanceStatus",
    ],
    "aws:ec2/tag:Tag": EC2_TAGGING,
    "aws:ec2/eip:Eip": [
        "ec2:AllocateAddress", "ec2:ReleaseAddress", "ec2:DescribeAddresses",
        "ec2:DescribeAddressesAttribute", "ec2:DisassociateAddress", *EC2_TAGGING,
    ],
    "aws:ec2/eipAssociation:EipAssociation": [
        "ec2:AssociateAddress", "ec2:DisassociateAddress", "ec2:DescribeAddresses",
    ],
    "aws:iam/role:Role": [
        "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateAssumeRolePolicy",
        # devserver:permissionsBoundary set or changed on an existing role.
        "iam:PutRolePermissionsBoundary",
        "iam:TagRole", "iam:UntagRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
        "iam:ListInstanceProfilesForRole",
    ],
    "aws:iam/rolePolicy:RolePolicy": ["iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy"],
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": [
        "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:ListAttachedRolePolicies",
    ],
    "aws:iam/instanceProfile:InstanceProfile": [
        "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
        "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
        "iam:TagInstanceProfile", "iam:UntagInstanceProfile",
    ],
    "aws:secretsmanager/secret:Secret": [
        "secretsmanager:CreateSecret", "secretsmanager:DeleteSecret",
        "secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy",
        "secretsmanager:UpdateSecret", "secretsmanager:TagResource",
        "secretsmanager:UntagResource",
        # A customer-managed key for the secret (Secrets Manager asks KMS on the caller's behalf).
        "kms:GenerateDataKey", "kms:Decrypt",
    ],
    "aws:secretsmanager/secretVersion:SecretVersion": [
        "secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue",
        "secretsmanager:ListSecretVersionIds", "secretsmanager:UpdateSecretVersionStage",
        "secretsmanager:DescribeSecret",
    ],
    "aws:dlm/lifecyclePolicy:LifecyclePolicy": [
        "dlm:CreateLifecyclePolicy", "dlm:GetLifecyclePolicy", "dlm:UpdateLifecyclePolicy",
        "dlm:DeleteLifecyclePolicy", "dlm:TagResource", "dlm:UntagResource", "iam:PassRole",
    ],
    # The binary cache (components/binary_cache.py): terraform-provider-aws
    # internal/service/s3/bucket.go reads every bucket sub-configuration (HeadBucket = ListBucket)
    # and, with force_destroy, deletes every object version; each sub-resource puts, gets and (for
    # policy) deletes its own configuration; the object is put, headed, tagged and deleted.
    "aws:s3/bucket:Bucket": [
        "s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:GetBucketLocation",
        "s3:GetBucketPolicy", "s3:GetBucketAcl", "s3:GetBucketCORS", "s3:GetBucketWebsite",
        "s3:GetBucketVersioning", "s3:GetAccelerateConfiguration", "s3:GetBucketRequestPayment",
        "s3:GetBucketLogging", "s3:GetLifecycleConfiguration", "s3:GetReplicationConfiguration",
        "s3:GetEncryptionConfiguration", "s3:GetBucketObjectLockConfiguration",
        "s3:GetBucketTagging", "s3:PutBucketTagging", "s3:ListBucketVersions", "s3:DeleteObject",
        "s3:DeleteObjectVersion",
    ],
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": [
        "s3:PutBucketOwnershipControls", "s3:GetBucketOwnershipControls",
    ],
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": [
        "s3:PutBucketPublicAccessBlock", "s3:GetBucketPublicAccessBlock",
    ],
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": [
        "s3:PutEncryptionConfiguration", "s3:GetEncryptionConfiguration",
    ],
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": [
        "s3:PutLifecycleConfiguration", "s3:GetLifecycleConfiguration",
    ],
    "aws:s3/bucketPolicy:BucketPolicy": [
        "s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy",
    ],
    "aws:s3/bucketObjectv2:BucketObjectv2": [
        "s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
        "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:ListBucketVersions",
    ],
    # The spot request canceller (components/spot_request.py) calls EC2 with boto3.
    "pulumi-python:dynamic:Resource": ["ec2:CancelSpotInstanceRequests"],
    # Invokes.
    "aws:ec2/getAmi:getAmi": ["ec2:DescribeImages"],
    "aws:ec2/getInstanceType:getInstanceType": ["ec2:DescribeInstanceTypes"],
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": ["ec2:DescribeInstanceTypeOfferings"],
    "aws:ec2/getVpc:getVpc": ["ec2:DescribeVpcs"],
    "aws:ec2/getSubnets:getSubnets": ["ec2:DescribeSubnets"],
    "aws:ec2/getSubnet:getSubnet": ["ec2:DescribeSubnets"],
    "aws:ec2/getSpotPrice:getSpotPrice": ["ec2:DescribeSpotPriceHistory"],
    "aws:ebs/getVolume:getVolume": ["ec2:DescribeVolumes"],
    "aws:ebs/getEbsVolumes:getEbsVolumes": ["ec2:DescribeVolumes"],
    "aws:ec2/getInstances:getInstances": ["ec2:DescribeInstances"],
    "aws:ec2/getKeyPair:getKeyPair": ["ec2:DescribeKeyPairs"],
    # ec2_instance_data_source.go instanceDescriptionAttributes: type info, 3 attributes, volumes.
    "aws:ec2/getInstance:getInstance": [
        "ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ec2:DescribeInstanceAttribute",
        "ec2:DescribeVolumes", "ec2:DescribeInstanceCreditSpecifications",
    ],
    "aws:pricing/getProduct:getProduct": ["pricing:GetProducts"],
    "aws:ec2/getEips:getEips": ["ec2:DescribeAddresses"],
    "aws:ec2/getNetworkInterface:getNetworkInterface": ["ec2:DescribeNetworkInterfaces"],
    # service_quota_data_source.go@01f43111: GetAWSDefaultServiceQuota first, then GetServiceQuota.
    "aws:servicequotas/getServiceQuota:getServiceQuota": [
        "servicequotas:GetAWSDefaultServiceQuota", "servicequotas:GetServiceQuota",
    ],
    # Not the program: a person opening the break-glass shell (docs/security.md).
    "person:session-manager": ["ssm:StartSession"],
}  # fmt: skip
# Types that are not AWS API calls: components, providers, TLS keys, SSH commands.
NOT_AWS = re.compile(r"^(devserver:|pulumi:providers:|tls:|command:)")


def registered_types() -> set[str]:
    """Every resource type and invoke token the program uses across its shapes."""
    from components.settings import openssh_public_blob
    from tests.program import (
        INSTANCES,
        KEY_PAIRS,
        fake_openssh_private_key,
        reset_runtime,
        run_program,
    )

    # A machine of every server from another rebuild generation: it is read, and never blocks.
    for name in ("devserver", "alice", "bob"):
        INSTANCES[f"i-0{name}"] = {
            "tags": {"devserver:stack": "dev", "devserver:server": name,
                     "devserver:purpose": "devserver", "devserver:rebuild": "999"},
            "state": "running",
        }  # fmt: skip
    found: set[str] = set()
    try:
        for shape in SHAPES:
            reset_runtime()
            run: ProgramRun = run_program(shape, secrets={"devserver:githubToken": FAKE_TOKEN})
            found |= {r.type for r in run.resources} | {token for token, _ in run.calls}
        # A machine of the default server launched with the configured deploy key: its key
        # pair is read too.
        key = fake_openssh_private_key()
        INSTANCES["i-0devserver"]["tags"]["devserver:rebuild"] = "0"
        KEY_PAIRS["devserver-deploy-2468"] = f"ssh-ed25519 {openssh_public_blob(key)}"
        reset_runtime()
        run = run_program({}, secrets={"devserver:deployPrivateKey": key})
        found |= {r.type for r in run.resources} | {token for token, _ in run.calls}
    finally:
        INSTANCES.clear()
        KEY_PAIRS.clear()
    reset_runtime()
    assert {"aws:ec2/getInstance:getInstance", "aws:ec2/getKeyPair:getKeyPair"} <= found, (
        "the existing machine and its key pair were read"
    )
    return found


# Invokes are the read-only lookups a preview makes; resources are only planned by it.
INVOKE = re.compile(r"^[a-z0-9-]+:[a-zA-Z0-9]+/get[A-Za-z0-9]*:get[A-Za-z0-9]*$")


def is_invoke(token: str) -> bool:
    return bool(INVOKE.match(token))
