# The preflight check that a stack's servers fit in the region's Elastic IP quota.

from __future__ import annotations

import pulumi

from components.lookups import AwsLookupError, AwsLookups
from components.settings import DevServerSettings, SettingsError


def check_elastic_ips(servers: tuple[DevServerSettings, ...], lookups: AwsLookups) -> None:
    """Refuse, before anything is created, an update that needs more Elastic IPs than the region
    has left: each server holds one, and EC2 allows 5 per region unless the quota is raised
    (Service Quotas L-0263D0A3); past it, AllocateAddress fails half-way through the update.
    An update that allocates nothing is never refused, and a quota that could not be read is
    only a warning: a refusal must not rest on AWS's default when the quota may be raised."""
    if not servers:
        return
    try:
        quota = lookups.elastic_ip_quota()
        in_use = len(lookups.elastic_ips())
        ours = len(lookups.elastic_ips((("devserver:stack", servers[0].stack),)))
    except AwsLookupError as err:
        pulumi.log.warn(f"the Elastic IP quota was not checked: {err}")
        return
    needed = max(0, len(servers) - ours)
    if needed == 0 or in_use + needed <= quota.value:
        return
    region = servers[0].region
    # Only a fleet has a key that asks for more addresses; one server needs its one address.
    key = "devserver:servers: " if len(servers) > 1 else ""
    shortfall = (
        f"this update needs {needed} new Elastic IP(s) (one per server: {len(servers)} servers, "
        f"{ours} with an address already), but {region} has {in_use} of its {quota.value} in use"
    )
    ask = (
        f"aws service-quotas request-service-quota-increase --region {region} --service-code ec2 "
        f"--quota-code L-0263D0A3 --desired-value {in_use + needed}"
    )
    if quota.unread:
        pulumi.log.warn(
            f"{key}the Elastic IP quota (L-0263D0A3) could not be read ({quota.unread}; the "
            "operator policy needs servicequotas:GetAWSDefaultServiceQuota and "
            f"servicequotas:GetServiceQuota), so AWS's default is assumed: {shortfall}. Unless "
            f"the quota was raised, AllocateAddress will fail half-way; ask for more: {ask}"
        )
        return
    raise SettingsError(
        f'{key}{shortfall} (quota L-0263D0A3 "EC2-VPC Elastic IPs"). Ask for more first: '
        f"{ask}; or release addresses nobody uses, or add fewer servers to this stack."
    )
