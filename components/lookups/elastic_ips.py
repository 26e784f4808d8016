# Elastic IP lookups: the region's quota (Service Quotas) and the addresses in use.

from __future__ import annotations

import functools
from dataclasses import dataclass

import pulumi_aws as aws

from components.lookups.errors import DENIED_ACTION_RE, AwsLookupError, needs, no_results

# Service Quotas code of "EC2-VPC Elastic IPs" (per region; 5 unless raised).
ELASTIC_IP_QUOTA_CODE = "L-0263D0A3"
DEFAULT_ELASTIC_IP_QUOTA = 5


@dataclass(frozen=True)
class ElasticIpQuota:
    """The region's "EC2-VPC Elastic IPs" quota."""

    value: int
    unread: str = ""
    """Why Service Quotas could not be read (then `value` is AWS's default); empty when read."""


class ElasticIpLookups:
    """How many Elastic IPs the region allows and holds."""

    @functools.cache  # noqa: B019
    def elastic_ip_quota(self) -> ElasticIpQuota:
        """The region's Elastic IP quota, or AWS's default of 5 and why it was not read. The data
        source calls GetAWSDefaultServiceQuota, then GetServiceQuota, and fails if either is
        refused (terraform-provider-aws service_quota_data_source.go dataSourceServiceQuotaRead)."""
        try:
            found = aws.servicequotas.get_service_quota(
                service_code="ec2", quota_code=ELASTIC_IP_QUOTA_CODE
            )
        except Exception as err:
            named = DENIED_ACTION_RE.search(str(err))
            why = f"AWS denied {named.group(1)}" if named else str(err)
            return ElasticIpQuota(DEFAULT_ELASTIC_IP_QUOTA, unread=why)
        return ElasticIpQuota(int(found.value))

    @functools.cache  # noqa: B019
    @needs("ec2:DescribeAddresses", "the region's Elastic IPs")
    def elastic_ips(self, tags: tuple[tuple[str, str], ...] = ()) -> tuple[str, ...]:
        """The allocation ids of the region's VPC Elastic IPs (with these tags, if any)."""
        try:
            found = aws.ec2.get_eips(tags=dict(tags) or None)
        except Exception as err:
            if no_results(err):
                return ()
            raise AwsLookupError(f"the Elastic IPs cannot be listed ({err})") from err
        return tuple(sorted(found.allocation_ids or []))
