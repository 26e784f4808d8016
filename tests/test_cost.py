"""Cost estimates: the arithmetic by hand, and the AWS price lookups under Pulumi's mocks."""

from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pytest
from pulumi.runtime import mocks
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.cost import HOURS_PER_MONTH, PriceList, PriceLookupError, estimate
from components.settings import MachineSpec
from tests.program import REGION, FakeAws, reset_runtime

PRODUCT = "aws:pricing/getProduct:getProduct"
SPOT = "aws:ec2/getSpotPrice:getSpotPrice"
ZONE = "eu-west-1a"


class TablePrices:
    """Prices from a table, counting questions, so estimates can be checked by hand."""

    def __init__(self, on_demand: float = 0.2226, spot: float = 0.0817, gp3: float = 0.088):
        self.on_demand, self.spot, self.gp3 = on_demand, spot, gp3
        self.asked: list[tuple[str, str]] = []

    def on_demand_hourly(self, instance_type: str, region: str) -> float:
        self.asked.append(("on-demand", f"{instance_type}@{region}"))
        return self.on_demand

    def spot_hourly(self, instance_type: str, availability_zone: str) -> float:
        self.asked.append(("spot", f"{instance_type}@{availability_zone}"))
        return self.spot

    def gp3_gb_month(self, region: str) -> float:
        self.asked.append(("gp3", region))
        return self.gp3


def _spec(spot: bool = False, max_price: str | None = None) -> MachineSpec:
    return MachineSpec("x86_64", spot, "m7i.xlarge", 30, 100, max_price)


def test_on_demand_estimate_is_list_price_plus_storage_spread_over_730_hours() -> None:
    prices = TablePrices()
    cost = estimate(_spec(), REGION, ZONE, prices)
    # 130 GiB x $0.088 = $11.44/month; $11.44 / 730 h = $0.015671/h; + $0.2226/h compute
    # + $0.005/h for the Elastic IP's public IPv4.
    assert cost.storage_monthly_usd == pytest.approx(11.44)
    assert cost.compute_hourly_usd == pytest.approx(0.2226)
    assert cost.hourly_usd == pytest.approx(0.2432712, abs=1e-7)
    # $0.2226 x 730 = $162.498, + $11.44 + $3.65 (IPv4) = $177.588.
    assert cost.monthly_usd == pytest.approx(177.588)
    assert prices.asked == [("on-demand", f"m7i.xlarge@{REGION}"), ("gp3", REGION)]
    assert cost.as_output() == {
        "estimate": True,
        "currency": "USD",
        "hourly": 0.2433,
        "monthly": 177.59,
        "basis": cost.basis,
    }


def test_spot_estimate_is_its_price_cap_so_the_output_does_not_move_with_the_market() -> None:
    cheap, dear = TablePrices(spot=0.0817), TablePrices(spot=0.0999)
    cost = estimate(_spec(spot=True), REGION, ZONE, cheap)
    # At most the on-demand price: $0.2226 x 730 + $11.44 storage + $3.65 public IPv4.
    assert cost.compute_hourly_usd == pytest.approx(0.2226)
    assert cost.monthly_usd == pytest.approx(177.588)
    assert cost == estimate(_spec(spot=True), REGION, ZONE, dear), "the spot price moved"
    assert not [q for q in cheap.asked if q[0] == "spot"], "the estimate never asks it"
    assert "at most the on-demand list price of m7i.xlarge" in cost.basis


def test_spot_estimate_never_exceeds_the_max_price() -> None:
    cost = estimate(_spec(spot=True, max_price="0.05"), REGION, ZONE, TablePrices())
    assert cost.compute_hourly_usd == pytest.approx(0.05)
    assert cost.monthly_usd == pytest.approx(0.05 * HOURS_PER_MONTH + 11.44 + 3.65)
    assert "at most the max spot price $0.05/h" in cost.basis
    above = estimate(_spec(spot=True, max_price="0.5"), REGION, ZONE, TablePrices())
    assert above.compute_hourly_usd == pytest.approx(0.2226), "a cap above on-demand is moot"


def test_the_basis_says_it_is_an_estimate_and_what_it_leaves_out() -> None:
    basis = estimate(_spec(), REGION, ZONE, TablePrices()).basis
    assert basis.startswith("estimate:")
    for included in (
        "on-demand list price of m7i.xlarge",
        "gp3",
        "30 + 100 GiB",
        "public IPv4 ($0.005/h, also while stopped)",
        "running all 730 h of a month (idle stop off",
    ):
        assert included in basis, f"the basis names {included!r}"
    for excluded in ("data transfer", "snapshots", "IOPS/throughput", "taxes"):
        assert excluded in basis.split("excludes", 1)[1], f"the basis excludes {excluded!r}"


# ---------------------------------------------------------------------------------------------
# PriceList against the fake AWS.


class ProviderAwareAws(FakeAws):
    """The fake AWS, also noting which provider each invoke went through."""

    def __init__(self) -> None:
        super().__init__()
        self.providers: list[tuple[str, str]] = []

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        self.providers.append((args.token, args.provider))
        return super().call(args)

    def provider_region(self, token: str) -> set[str]:
        """The regions of the providers that served `token`."""
        refs = [ref for t, ref in self.providers if t == token]
        # An explicit provider's reference is "<urn>::<id>", the URN ending in its name.
        names = {ref.split("::")[-2] for ref in refs if ref}
        return {
            r.inputs.get("region", "")
            for r in self.resources
            if r.type == "pulumi:providers:aws" and r.name in names
        } | ({"<default provider>"} if "" in refs else set())


@pytest.fixture
def priced() -> Iterator[Callable[[Callable[[PriceList], Any]], tuple[Any, ProviderAwareAws]]]:
    """Run lookups on a fresh PriceList inside a mocked program; the runtime is reset around it."""
    reset_runtime()

    def run(ask: Callable[[PriceList], Any]) -> tuple[Any, ProviderAwareAws]:
        fake = ProviderAwareAws()
        mocks.set_mocks(fake, project="devserver", stack="dev", preview=False)
        answers: list[Any] = []
        _sync_await(run_pulumi_func(lambda: answers.append(ask(PriceList()))))
        return answers[0], fake

    yield run
    reset_runtime()


def _count(fake: FakeAws, token: str) -> int:
    return sum(1 for t, _ in fake.calls if t == token)


def test_on_demand_price_comes_from_the_price_list_once_per_type(priced: Any) -> None:
    answer, fake = priced(
        lambda p: [
            p.on_demand_hourly("m7i.xlarge", REGION),
            p.on_demand_hourly("m7i.xlarge", REGION),
            p.on_demand_hourly("m7g.xlarge", REGION),
        ]
    )
    assert answer == [pytest.approx(0.2226), pytest.approx(0.2226), pytest.approx(0.1785)]
    assert _count(fake, PRODUCT) == 2, "one Price List query per instance type"
    query = next(a for t, a in fake.calls if t == PRODUCT)
    assert query["serviceCode"] == "AmazonEC2"
    filters = {f["field"]: f["value"] for f in query["filters"]}
    assert filters == {
        "instanceType": "m7i.xlarge",
        "regionCode": REGION,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "licenseModel": "No License required",
        "capacitystatus": "Used",
    }


def test_price_list_is_asked_in_a_region_that_serves_it(priced: Any) -> None:
    _, fake = priced(lambda p: (p.on_demand_hourly("m7i.xlarge", REGION), p.gp3_gb_month(REGION)))
    assert fake.provider_region(PRODUCT) == {"us-east-1"}, (
        "the Price List API answers only in us-east-1, eu-central-1 and ap-south-1"
    )
    providers = [r.name for r in fake.resources if r.type == "pulumi:providers:aws"]
    assert providers == ["price-list-us-east-1"], "one provider for every Price List query"


def test_gp3_price_is_per_gb_month_in_the_stacks_region(priced: Any) -> None:
    answer, fake = priced(lambda p: (p.gp3_gb_month(REGION), p.gp3_gb_month(REGION)))
    assert answer == (pytest.approx(0.088), pytest.approx(0.088))
    assert _count(fake, PRODUCT) == 1
    filters = {
        f["field"]: f["value"] for f in next(a for t, a in fake.calls if t == PRODUCT)["filters"]
    }
    assert filters == {"productFamily": "Storage", "volumeApiName": "gp3", "regionCode": REGION}


def test_spot_price_is_the_zones_linux_price_asked_once(priced: Any) -> None:
    answer, fake = priced(
        lambda p: (p.spot_hourly("m7g.xlarge", ZONE), p.spot_hourly("m7g.xlarge", ZONE))
    )
    assert answer == (pytest.approx(0.0664), pytest.approx(0.0664))
    assert _count(fake, SPOT) == 1
    query = next(a for t, a in fake.calls if t == SPOT)
    assert (query["instanceType"], query["availabilityZone"]) == ("m7g.xlarge", ZONE)
    assert query["filters"] == [{"name": "product-description", "values": ["Linux/UNIX"]}]
    assert fake.provider_region(SPOT) == {"<default provider>"}, (
        "spot prices are the stack region's"
    )


def test_an_instance_type_without_a_list_price_names_the_type_and_region(priced: Any) -> None:
    with pytest.raises(PriceLookupError, match=rf"instance type t2\.large in {REGION}"):
        priced(lambda p: p.on_demand_hourly("t2.large", REGION))


def test_a_zone_without_a_spot_price_names_the_type_and_zone(priced: Any) -> None:
    # c7g.2xlarge is offered only in eu-west-1b.
    with pytest.raises(PriceLookupError, match=r"c7g\.2xlarge in eu-west-1a"):
        priced(lambda p: p.spot_hourly("c7g.2xlarge", ZONE))


def test_estimate_from_the_price_list_matches_the_hand_computed_one(priced: Any) -> None:
    cost, fake = priced(lambda p: estimate(_spec(), REGION, ZONE, p))
    hand = estimate(_spec(), REGION, ZONE, TablePrices(on_demand=0.2226, gp3=0.088))
    assert cost == hand
    assert _count(fake, SPOT) == 0


def test_with_idle_stop_the_estimate_also_gives_a_working_month_and_says_what_it_assumes() -> None:
    prices = TablePrices(on_demand=0.2226, gp3=0.088)
    always_on = estimate(_spec(), REGION, ZONE, prices).as_output()
    assert "withIdleStop" not in always_on, "idle stop off: the machine runs all month"
    assert "running all 730 h of a month" in always_on["basis"]

    cost = estimate(_spec(), REGION, ZONE, prices, idle_stop_minutes=60).as_output()

    idle = cost["withIdleStop"]
    assert idle["runningHours"] == 22 * 9, "8 h of use and the hour before the stop, 22 days"
    storage = (30 + 100) * 0.088
    assert idle["monthly"] == round(storage + 0.005 * 730 + 0.2226 * 198, 2)
    assert "60 idle minutes before the stop" in idle["assumes"]
    assert cost["monthly"] == always_on["monthly"], "the always-on figure stays as it was"


def test_a_fleet_exports_its_total_cost(program: Any) -> None:
    servers = [
        {"name": "alice", "user": "alice", "githubUser": "alice-gh"},
        {"name": "bob", "user": "bob", "githubUser": "bob-gh", "idleStopMinutes": 30},
    ]
    run = program({"devserver:servers": servers})

    each = [run.outputs["servers"][n]["estimatedCost"] for n in ("alice", "bob")]
    total = run.outputs["estimatedCost"]
    assert total["monthly"] == round(sum(c["monthly"] for c in each), 2)
    assert total["servers"] == 2 and total["estimate"] is True
    with_idle = each[0]["monthly"] + each[1]["withIdleStop"]["monthly"]
    assert total["withIdleStop"]["monthly"] == round(with_idle, 2)
