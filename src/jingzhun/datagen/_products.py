"""The product catalogue: SKUs per category, bounded prices, popularity falling with price."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

from jingzhun.datagen._catalog import ADJECTIVES, CATEGORIES, Region
from jingzhun.datagen._columns import MONEY_SCALE, categorical, money

# Prices are lognormal in each category, truncated at e^(±2.3 sigma) around its median: at most
# 10x the median for electronics (sigma 1.0), 2.5x for books (sigma 0.4). No outlier price.
PRICE_TAIL = 2.3
# Within a category, demand falls with price: popularity ~ (price / median) ** -ELASTICITY
# times lognormal(0, POPULARITY_SIGMA) taste, truncated like prices. Cheap SKUs sell the most
# units; dear ones, fewer units but still their share of revenue.
ELASTICITY = 1.2
POPULARITY_SIGMA = 0.6


@dataclass(frozen=True)
class Products:
    """SKUs sorted by category, with what sampling a purchase needs.

    ``cdf`` is the cumulative popularity over all SKUs; a category's SKUs occupy
    ``[category_lo[c], category_hi[c])`` of it, so one ``searchsorted`` draws SKUs from the whole
    catalogue or from one category.
    """

    category: np.ndarray
    brand: np.ndarray  # index into ``brands``
    price: np.ndarray  # list price, int64 in 1/10 000 of the currency
    cdf: np.ndarray
    category_lo: np.ndarray
    category_hi: np.ndarray
    skus: pa.Array
    names: pa.Array
    name_code: np.ndarray  # index into ``distinct_names``: names repeat across SKUs
    distinct_names: pa.Array
    brands: pa.Array
    currency: str

    def __len__(self) -> int:
        return len(self.category)

    def sample(self, rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
        """One SKU index per entry: from that category, or from all SKUs where it is -1."""
        u = rng.random(len(category))
        within = category >= 0
        c = np.where(within, category, 0)
        lo = np.where(within, self.category_lo[c], 0.0)
        hi = np.where(within, self.category_hi[c], 1.0)
        return self._invert(lo + u * (hi - lo))

    def _invert(self, u: np.ndarray) -> np.ndarray:
        """The first SKU whose cumulative popularity exceeds ``u``.

        A guide table (Chen & Asau 1974) jumps close to the answer; a few steps forward finish
        it. Several times faster than a binary search over the catalogue for millions of draws.
        """
        guide = self._guide
        index = guide[(u * (len(guide) - 1)).astype(np.int64)]
        todo = np.flatnonzero(self.cdf[index] <= u)
        while len(todo):
            index[todo] += 1
            todo = todo[self.cdf[np.minimum(index[todo], len(self.cdf) - 1)] <= u[todo]]
            todo = todo[index[todo] < len(self.cdf) - 1]
        return np.minimum(index, len(self.cdf) - 1)

    @cached_property
    def _guide(self) -> np.ndarray:
        buckets = 4 * len(self.cdf)
        return np.searchsorted(self.cdf, np.arange(buckets + 1) / buckets, side="right")

    def table(self) -> pa.Table:
        """The ``products`` source: one row per SKU."""
        return pa.table(
            {
                "sku": self.skus,
                "name": self.names,
                "category": categorical(self.category, pa.array([c.name for c in CATEGORIES])),
                "brand": categorical(self.brand, self.brands),
                "price": money(self.price),
                "currency": categorical(np.zeros(len(self), np.int32), pa.array([self.currency])),
            }
        )


def build_products(rng: np.random.Generator, count: int, area: Region) -> Products:
    """A catalogue of about ``count`` SKUs spread over the categories by their weight."""
    weights = np.array([c.weight for c in CATEGORIES])
    per_category = np.maximum(np.round(weights / weights.sum() * count).astype(np.int64), 3)
    category = np.repeat(np.arange(len(CATEGORIES)), per_category)
    n = len(category)

    brand_names = [b for c in CATEGORIES for b in c.brands]
    brand_start = np.cumsum([0] + [len(c.brands) for c in CATEGORIES[:-1]])
    brand_count = np.array([len(c.brands) for c in CATEGORIES])
    brand = brand_start[category] + (rng.random(n) * brand_count[category]).astype(np.int64)
    noun_count = np.array([len(c.nouns) for c in CATEGORIES])
    noun = (rng.random(n) * noun_count[category]).astype(np.int64)
    adjective = rng.integers(0, len(ADJECTIVES), n)
    # A small table (a few thousand rows): readable Python beats vectorising string assembly.
    names = [
        f"{brand_names[b]} {ADJECTIVES[a]} {CATEGORIES[c].nouns[k]}"
        for b, a, c, k in zip(brand, adjective, category, noun, strict=True)
    ]

    # Prices are lognormal around each category's median with a bounded tail, then given a
    # "charm" ending (9.99, 129.90) as shops do.
    median = np.array([c.median_usd for c in CATEGORIES])[category] * area.usd_rate
    sigma = np.array([c.sigma for c in CATEGORIES])[category]
    raw = median * np.exp(sigma * _truncated_normal(rng, n, PRICE_TAIL))
    cents = np.array(area.charm_cents)[rng.integers(0, len(area.charm_cents), n)]
    whole = np.maximum(np.floor(raw).astype(np.int64) - (cents > 0), 0)
    price = (whole * 100 + cents) * (MONEY_SCALE // 100)
    price = np.maximum(price, MONEY_SCALE // 2)

    # Popularity: a long tail of taste, bent by price (cheaper SKUs sell more within their
    # category), then scaled so each category's SKUs together have the category's weight. Lines
    # drawn from the whole catalogue thus fall into categories by weight, whatever their prices.
    taste = np.exp(POPULARITY_SIGMA * _truncated_normal(rng, n, PRICE_TAIL))
    popularity = taste * (price / (median * MONEY_SCALE)) ** -ELASTICITY
    share = weights / weights.sum()
    popularity *= share[category] / np.bincount(category, popularity)[category]
    cdf = np.cumsum(popularity)
    cdf /= cdf[-1]
    ends = np.cumsum(per_category) - 1
    hi = cdf[ends]
    lo = np.concatenate([[0.0], hi[:-1]])

    # A dictionary column needs distinct values (Parquet's writer falls back to plain,
    # unreproducibly, when they repeat), so lines use codes into the distinct names.
    distinct, name_code = np.unique(np.array(names, dtype=object), return_inverse=True)
    prefix = [c.name[:3].upper() for c in CATEGORIES]
    skus = [f"{prefix[c]}-{i + 1:06d}" for i, c in enumerate(category)]
    return Products(
        category=category,
        brand=brand,
        price=price,
        cdf=cdf,
        category_lo=lo,
        category_hi=hi,
        skus=pa.array(skus),
        names=pa.array(names),
        name_code=name_code,
        distinct_names=pa.array(distinct.tolist()),
        brands=pa.array(brand_names),
        currency=area.currency,
    )


def _truncated_normal(rng: np.random.Generator, n: int, bound: float) -> np.ndarray:
    """Standard normal draws within ``[-bound, bound]``: those outside are drawn again."""
    z = rng.normal(0.0, 1.0, n)
    out = np.flatnonzero(np.abs(z) > bound)
    while len(out):
        z[out] = rng.normal(0.0, 1.0, len(out))
        out = out[np.abs(z[out]) > bound]
    return z
