"""What a dev server costs, estimated from AWS's own price data: instance hours, gp3, public IPv4.

`estimate` is pure arithmetic over a `Prices` source; `PriceList` is that source in production,
asking the AWS Price List API (on-demand, gp3) and EC2's spot price history (spot).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi_aws as aws

from components.lookups import denied
from components.settings import MachineSpec

# AWS's own convention for turning hourly prices into monthly ones (365 * 24 / 12).
HOURS_PER_MONTH = 730
# The Price List API answers only in us-east-1, eu-central-1 and ap-south-1; prices for every
# region come from any of them.
PRICE_LIST_REGION = "us-east-1"
EXCLUDES = "data transfer, snapshots, IOPS/throughput above the gp3 baseline, taxes"
# Every public IPv4 address, an Elastic IP included, is billed at this flat rate per hour (AWS VPC
# pricing, "Public IPv4 Address", since 2024-02-01); the machine's Elastic IP is billed while it is
# stopped too. One rate in every commercial region, so it is not looked up.
PUBLIC_IPV4_HOURLY_USD = 0.005
# With idle stop on, the machine runs while it is used: assume a working month (22 days of 8 hours)
# plus the idle minutes before each evening's stop. Disks and the Elastic IP bill all month anyway.
WORKING_DAYS_PER_MONTH = 22
WORKING_HOURS_PER_DAY = 8


class PriceLookupError(pulumi.RunError):
    """AWS has no price for what was asked; the message names the instance type and region."""


class Prices(Protocol):
    """Where estimates get prices from (AWS in production, a table in tests)."""

    def on_demand_hourly(self, instance_type: str, region: str) -> float: ...

    def spot_hourly(self, instance_type: str, availability_zone: str) -> float: ...

    def gp3_gb_month(self, region: str) -> float: ...


@dataclass(frozen=True)
class CostEstimate:
    """An estimate, in USD: what the machine costs per hour and per month, and what that covers."""

    hourly_usd: float
    monthly_usd: float
    compute_hourly_usd: float
    storage_monthly_usd: float
    basis: str
    idle_stop_minutes: int = 0

    @property
    def idle_stop_hours(self) -> float:
        """Running hours a month with idle stop on (the assumption WORKING_* states)."""
        daily = WORKING_HOURS_PER_DAY + self.idle_stop_minutes / 60
        return WORKING_DAYS_PER_MONTH * daily

    def as_output(self) -> dict[str, Any]:
        """The estimate as a stack output, labelled as one."""
        output: dict[str, Any] = {
            "estimate": True,
            "currency": "USD",
            "hourly": round(self.hourly_usd, 4),
            "monthly": round(self.monthly_usd, 2),
            "basis": self.basis,
        }
        if self.idle_stop_minutes:
            always = self.storage_monthly_usd + PUBLIC_IPV4_HOURLY_USD * HOURS_PER_MONTH
            hours = self.idle_stop_hours
            output["withIdleStop"] = {
                "monthly": round(always + self.compute_hourly_usd * hours, 2),
                "runningHours": round(hours, 1),
                "assumes": (
                    f"{WORKING_HOURS_PER_DAY} h of use on {WORKING_DAYS_PER_MONTH} days a month, "
                    f"then {self.idle_stop_minutes} idle minutes before the stop; disks and the "
                    f"Elastic IP bill all {HOURS_PER_MONTH} h"
                ),
            }
        return output


def estimate(
    spec: MachineSpec,
    region: str,
    availability_zone: str,
    prices: Prices,
    idle_stop_minutes: int = 0,
) -> CostEstimate:
    """Compute (on-demand list price or current spot price) plus root and home gp3 storage."""
    # Spot: the most it can cost, the on-demand price (or a lower max price). The spot price
    # itself moves every hour, and an output that moves with it changes on every `up`.
    compute = prices.on_demand_hourly(spec.instance_type, region)
    compute_basis = f"on-demand list price of {spec.instance_type} (Linux) in {region}"
    if spec.spot:
        compute_basis = f"at most the {compute_basis} (what a spot machine pays at worst)"
        if spec.spot_max_price is not None and float(spec.spot_max_price) < compute:
            compute = float(spec.spot_max_price)
            compute_basis = f"at most the max spot price ${spec.spot_max_price}/h"
    gib = spec.root_volume_gib + spec.home_volume_gib
    gb_month = prices.gp3_gb_month(region)
    storage_monthly = gib * gb_month
    hourly = compute + storage_monthly / HOURS_PER_MONTH + PUBLIC_IPV4_HOURLY_USD
    basis = (
        f"estimate: {compute_basis} (${compute:.4f}/h) + gp3 storage for root and home "
        f"({spec.root_volume_gib} + {spec.home_volume_gib} GiB at ${gb_month:.4f}/GB-month) "
        f"+ the Elastic IP's public IPv4 (${PUBLIC_IPV4_HOURLY_USD}/h, also while stopped), "
        f"running all {HOURS_PER_MONTH} h of a month (idle stop off; withIdleStop, when on, "
        f"assumes a working month); excludes {EXCLUDES}"
    )
    return CostEstimate(
        hourly_usd=hourly,
        monthly_usd=hourly * HOURS_PER_MONTH,
        compute_hourly_usd=compute,
        storage_monthly_usd=storage_monthly,
        basis=basis,
        idle_stop_minutes=idle_stop_minutes,
    )


def _usd_prices(result: str, unit: str) -> Iterator[float]:
    """The USD prices per `unit` in one Price List product's on-demand terms."""
    product = json.loads(result)
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if dimension.get("unit") == unit and usd is not None:
                yield float(usd)


class PriceList:
    """AWS price data behind a small typed surface; each distinct question is asked once."""

    def __init__(
        self,
        provider_args: Mapping[str, Any] | None = None,
        price_list_region: str = PRICE_LIST_REGION,
    ) -> None:
        # Every `aws:` setting of the stack but the region (settings.AwsAccess.provider_args).
        self._provider_args = dict(provider_args or {})
        self._price_list_region = price_list_region

    @functools.cached_property
    def _price_list_opts(self) -> pulumi.InvokeOptions:
        # `get_product` has no per-call region (the provider marks the Price List API as global),
        # so it needs a provider in a region that serves it. Made on first use, that is after
        # the settings are validated; a provider creates nothing in AWS.
        # Authenticates exactly like the stack's default provider: every AWS setting of the stack
        # (keys, profile, files, roles, endpoints) but the region.
        provider = aws.Provider(
            f"price-list-{self._price_list_region}",
            region=self._price_list_region,
            **self._provider_args,
        )
        return pulumi.InvokeOptions(provider=provider)

    def _product(self, what: str, region: str, filters: dict[str, str], unit: str) -> float:
        try:
            result = aws.pricing.get_product(
                service_code="AmazonEC2",
                filters=[
                    aws.pricing.GetProductFilterArgs(field=k, value=v) for k, v in filters.items()
                ],
                opts=self._price_list_opts,
            ).result
        except Exception as err:
            refused = denied(err, "pricing:GetProducts", "the AWS Price List")
            if refused is not None:
                raise PriceLookupError(refused.problems[0]) from err
            raise PriceLookupError(
                f"the AWS Price List has no single on-demand price for {what} in {region} ({err})"
            ) from err
        found = list(_usd_prices(result, unit))
        if not found:
            raise PriceLookupError(
                f"the AWS Price List entry for {what} in {region} has no USD price per {unit}"
            )
        return found[0]

    @functools.cache  # noqa: B019 - one price list per program run; the cache dies with it
    def on_demand_hourly(self, instance_type: str, region: str) -> float:
        """The on-demand list price per hour of a Linux instance with shared tenancy."""
        return self._product(
            f"the instance type {instance_type}",
            region,
            {
                "instanceType": instance_type,
                "regionCode": region,
                "operatingSystem": "Linux",
                "tenancy": "Shared",
                "preInstalledSw": "NA",
                "licenseModel": "No License required",
                # "Used" is the ordinary on-demand price (not a capacity reservation's).
                "capacitystatus": "Used",
            },
            "Hrs",
        )

    @functools.cache  # noqa: B019
    def spot_hourly(self, instance_type: str, availability_zone: str) -> float:
        """The latest spot price per hour of a Linux instance in one availability zone."""
        try:
            price = aws.ec2.get_spot_price(
                instance_type=instance_type,
                availability_zone=availability_zone,
                filters=[
                    aws.ec2.GetSpotPriceFilterArgs(
                        name="product-description", values=["Linux/UNIX"]
                    )
                ],
            ).spot_price
            return float(price)
        except Exception as err:
            raise PriceLookupError(
                f"EC2 has no spot price for the instance type {instance_type} "
                f"in {availability_zone} ({err})"
            ) from err

    @functools.cache  # noqa: B019
    def gp3_gb_month(self, region: str) -> float:
        """The gp3 storage price per GB-month (baseline IOPS and throughput are included)."""
        return self._product(
            "gp3 storage",
            region,
            {"productFamily": "Storage", "volumeApiName": "gp3", "regionCode": region},
            "GB-Mo",
        )


def estimated_cost(
    spec: MachineSpec,
    region: str,
    availability_zone: str,
    prices: Prices,
    idle_stop_minutes: int = 0,
) -> dict[str, Any]:
    """The stack output: an estimate, or why there is none (a missing price never fails `up`).
    A spot machine's current price is logged, not exported (it changes hourly)."""
    if spec.spot:
        try:
            now = prices.spot_hourly(spec.instance_type, availability_zone)
            pulumi.log.info(
                f"current spot price of {spec.instance_type} in {availability_zone}: "
                f"${now:.4f}/h (estimatedCost shows the most it can cost)"
            )
        except PriceLookupError as err:
            pulumi.log.info(str(err))
    try:
        cost = estimate(spec, region, availability_zone, prices, idle_stop_minutes)
        return cost.as_output()
    except PriceLookupError as err:
        return {"estimate": True, "available": False, "reason": str(err)}


def total_cost(costs: list[dict[str, Any]]) -> dict[str, Any]:
    """A fleet's estimate: the sum of its servers' (unavailable when any of them is)."""
    missing = [c.get("reason", "") for c in costs if c.get("available") is False]
    if missing:
        return {"estimate": True, "available": False, "reason": "; ".join(dict.fromkeys(missing))}
    total: dict[str, Any] = {
        "estimate": True,
        "currency": "USD",
        "hourly": round(sum(c["hourly"] for c in costs), 4),
        "monthly": round(sum(c["monthly"] for c in costs), 2),
        "servers": len(costs),
        "basis": "the sum of the servers' estimates (servers.<name>.estimatedCost)",
    }
    if any("withIdleStop" in c for c in costs):
        total["withIdleStop"] = {
            "monthly": round(sum(c.get("withIdleStop", c)["monthly"] for c in costs), 2),
            "assumes": "each server's own withIdleStop (servers without idle stop: all month)",
        }
    return total
