"""Prices and popularity: demand falls with price within a category, and no single SKU or
category swamps the revenue (the demo once made one £1,799 smartwatch 88 % of it)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from jingzhun.datagen import generate
from jingzhun.datagen._catalog import CATEGORIES, region_data
from jingzhun.datagen._columns import MONEY_SCALE
from jingzhun.datagen._products import PRICE_TAIL, build_products

WORLDS = {
    # The demo's own shop: 5,000 customers, so the smallest catalogue (200 SKUs, 20 of them
    # electronics), where one SKU can most easily dominate.
    "demo-gb": {
        "customers": 5000,
        "days": 374,
        "seed": 42,
        "start": dt.date(2010, 12, 1),
        "region": "GB",
    },
    "cn": {"customers": 4000, "days": 365, "seed": 11, "region": "CN"},
}


@pytest.fixture(scope="module", params=list(WORLDS))
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Sales lines (returns left out) and the catalogue of one generated world."""
    report = generate(tmp_path_factory.mktemp(request.param), **WORLDS[request.param])
    lines = pq.read_table(
        report.paths["order_lines"], columns=["sku", "category", "quantity", "amount", "is_return"]
    ).to_pandas()
    sales = lines[~lines["is_return"]].assign(amount=lambda f: f["amount"].astype(float))
    products = pq.read_table(report.paths["products"]).to_pandas()
    products["price"] = products["price"].astype(float)
    return {"sales": sales, "products": products, "region": report.region}


def test_no_sku_takes_a_large_share_of_revenue(world: dict) -> None:
    sales = world["sales"]
    per_sku = sales.groupby("sku")["amount"].sum().sort_values(ascending=False)
    share = per_sku / per_sku.sum()
    assert share.iloc[0] < 0.06, share.head()
    assert share.iloc[:10].sum() < 0.3  # a head of best sellers, not one hero


def test_category_shares_look_like_a_general_retailer(world: dict) -> None:
    sales = world["sales"]
    revenue = sales.groupby("category")["amount"].sum()
    share = revenue / revenue.sum()
    assert set(share.index) == {c.name for c in CATEGORIES}
    assert share.max() < 0.4, share  # electronics may lead, but not swamp the rest
    assert share.min() > 0.01, share
    assert {"apparel", "electronics"} <= set(share.nlargest(3).index)
    # Groceries fill baskets but not the till: more of the lines than of the revenue.
    lines = sales["category"].value_counts(normalize=True)
    assert lines["grocery"] > share["grocery"]
    assert lines["electronics"] < share["electronics"]


def test_demand_falls_with_price_within_a_category(world: dict) -> None:
    sales, products = world["sales"], world["products"]
    units = sales.groupby("sku")["quantity"].sum()
    catalogue = products.set_index("sku").assign(units=units).fillna({"units": 0})
    correlations = {}
    for category, rows in catalogue.groupby("category"):
        # Spearman: Pearson correlation of the ranks.
        correlations[category] = rows["price"].rank().corr(rows["units"].rank())
    assert all(rho < 0 for rho in correlations.values()), correlations
    assert np.mean(list(correlations.values())) < -0.5, correlations


def test_prices_stay_within_each_categorys_bounds(world: dict) -> None:
    products = world["products"]
    rate = region_data(world["region"]).usd_rate
    for category in CATEGORIES:
        prices = products.loc[products["category"] == category.name, "price"]
        median = category.median_usd * rate
        top = median * math.exp(PRICE_TAIL * category.sigma)
        assert prices.max() <= min(top, 10 * median), category.name
        # Charm endings take up to one unit off; tiny prices are floored at 0.50.
        assert prices.min() >= min(median * math.exp(-PRICE_TAIL * category.sigma) - 1, 0.5)


@pytest.mark.parametrize("region", ["GB", "CN"])
def test_catalogues_of_many_seeds_keep_revenue_spread(region: str) -> None:
    # Expected revenue per SKU = its chance to be drawn x price x mean quantity, for the
    # smallest catalogue (200 SKUs) over many seeds: the property must not hinge on one seed.
    area = region_data(region)
    quantity = 1 + np.array([c.quantity_mean for c in CATEGORIES])
    electronics = [c.name for c in CATEGORIES].index("electronics")
    top, electronics_share = [], []
    for seed in range(100):
        products = build_products(np.random.default_rng(seed), 200, area)
        chance = np.diff(products.cdf, prepend=0.0)
        revenue = chance * products.price / MONEY_SCALE * quantity[products.category]
        revenue /= revenue.sum()
        top.append(revenue.max())
        electronics_share.append(revenue[products.category == electronics].sum())
    assert np.median(top) < 0.04 and max(top) < 0.08
    assert 0.15 < np.median(electronics_share) < 0.35
    assert np.quantile(electronics_share, 0.95) < 0.4 and max(electronics_share) < 0.45
