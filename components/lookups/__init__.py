# Read-only AWS lookups (Pulumi invokes) made before any resource: the package's public names.
"""Everything here is plain data, resolved synchronously at plan time, so a bad input is reported
before the first resource is registered. Results are cached: a fleet asks once per instance type.

Layout: errors.py says how a failed lookup is reported (not found, or refused: a permission
problem naming the IAM action); the lookups live by AWS area in instances.py, images.py,
network.py, volumes.py and elastic_ips.py; aws_lookups.py composes them into `AwsLookups`.
"""

from components.lookups.aws_lookups import AwsLookups
from components.lookups.elastic_ips import (
    DEFAULT_ELASTIC_IP_QUOTA,
    ELASTIC_IP_QUOTA_CODE,
    ElasticIpQuota,
)
from components.lookups.errors import (
    DENIED_ACTION_RE,
    DENIED_RE,
    OPERATOR_POLICY,
    AwsLookupError,
    AwsPermissionError,
    denied,
    lookup_failed,
    permission_report,
    policy_statement,
)
from components.lookups.images import EC2_ARCHITECTURE, NIXOS_AMI_OWNER, Image
from components.lookups.instances import (
    LIVE_INSTANCE_STATES,
    SPOT_INTERRUPTION_STOP,
    ExistingInstance,
    InstanceTypeInfo,
)
from components.lookups.network import Subnet
from components.lookups.volumes import ExistingVolume

__all__ = [
    "DEFAULT_ELASTIC_IP_QUOTA",
    "DENIED_ACTION_RE",
    "DENIED_RE",
    "EC2_ARCHITECTURE",
    "ELASTIC_IP_QUOTA_CODE",
    "LIVE_INSTANCE_STATES",
    "NIXOS_AMI_OWNER",
    "OPERATOR_POLICY",
    "SPOT_INTERRUPTION_STOP",
    "AwsLookupError",
    "AwsLookups",
    "AwsPermissionError",
    "ElasticIpQuota",
    "ExistingInstance",
    "ExistingVolume",
    "Image",
    "InstanceTypeInfo",
    "Subnet",
    "denied",
    "lookup_failed",
    "permission_report",
    "policy_statement",
]
