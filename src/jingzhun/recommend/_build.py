"""``fit_recommendations``: train on the data up to a date, write every customer's top N and
every item's similar items; ``explain_customer``: one customer's stored list, with reasons.

Every customer known on the training date gets a full list: customers with purchases get the
method's list under the business rules, topped up from what sold most in the last 30 days
when the method finds fewer than N; customers without purchases get that popular list.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from jingzhun.core import NotFoundError
from jingzhun.engine import Engine
from jingzhun.profile import PROFILES, find_customer_key
from jingzhun.recommend._data import Interactions, latest_order_date, load_interactions
from jingzhun.recommend._recommenders import (
    Method,
    Popularity,
    Recommender,
    make_recommender,
)
from jingzhun.recommend._rules import (
    RecommendSettings,
    allowed_items,
    excluded_pairs,
    recommend_with_rules,
)
from jingzhun.recommend._store import (
    RECOMMENDATIONS,
    RECOMMENDATIONS_SCHEMA,
    SIMILAR_ITEMS,
    SIMILAR_ITEMS_SCHEMA,
    model_info,
    read_recommendations,
    replace_table,
    stored_customer_key,
    utc_now,
)

POPULAR_DAYS = 30  # the top-up list: what most customers bought in the last 30 days


@dataclass
class RecommendReport:
    """What a fit did: the date, method, how many customers got lists and how."""

    as_of: dt.date
    method: str
    top: int
    customers: int
    buyers: int
    items: int
    rows: int
    rows_by_method: dict[str, int]
    items_recommended: int
    similar_rows: int
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "as_of": self.as_of.isoformat(),
            "method": self.method,
            "top": self.top,
            "customers": self.customers,
            "buyers": self.buyers,
            "items": self.items,
            "rows": self.rows,
            "rows_by_method": self.rows_by_method,
            "items_recommended": self.items_recommended,
            "similar_rows": self.similar_rows,
            "seconds": round(self.seconds, 2),
            "stages": {k: round(v, 2) for k, v in self.stages.items()},
            "warnings": self.warnings,
        }


def _top_up(
    lists: pd.DataFrame,
    interactions: Interactions,
    settings: RecommendSettings,
    top: int,
) -> pd.DataFrame:
    """Fill every customer's list to ``top`` from the recently popular items."""
    rules = settings.rules
    popular = Popularity(window_days=POPULAR_DAYS).fit(interactions)
    allowed = allowed_items(interactions, rules)
    counts = lists.groupby("customer_key").size()
    short = interactions.buyers[
        counts.reindex(interactions.customer_keys[interactions.buyers]).fillna(0).to_numpy() < top
    ]
    parts = [lists]
    if len(short):
        keys = list(interactions.customer_keys[short])
        extra = popular.recommend(
            keys,
            2 * top,
            exclude=excluded_pairs(interactions, rules),
            items=allowed,
        )
        taken = lists[["customer_key", "item_id"]].assign(_taken=True)
        extra = extra.merge(taken, on=["customer_key", "item_id"], how="left")
        extra = extra[extra["_taken"].isna()].drop(columns="_taken")
        extra["rank"] = (
            extra.groupby("customer_key").cumcount()
            + 1
            + counts.reindex(extra["customer_key"]).fillna(0).to_numpy(dtype=np.int64)
        )
        parts.append(extra[extra["rank"] <= top])
    has_purchases = np.zeros(interactions.n_customers, dtype=bool)
    has_purchases[interactions.buyers] = True
    cold = interactions.customer_keys[~has_purchases]
    if len(cold):
        order = popular.order_[allowed[popular.order_]][:top]
        n = len(order)
        reasons = popular._explain(np.zeros(n, dtype=np.int64), order)
        parts.append(
            pd.DataFrame(
                {
                    "customer_key": np.repeat(cold, n),
                    "item_id": np.tile(interactions.item_ids[order], len(cold)),
                    "rank": np.tile(np.arange(1, n + 1), len(cold)),
                    "score": np.tile(popular.buyers_[order].astype(np.float64), len(cold)),
                    "method": popular.method,
                    "reason": np.tile(np.array(reasons, dtype=object), len(cold)),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _similar_rows(
    recommender: Recommender, interactions: Interactions, settings: RecommendSettings
) -> pd.DataFrame:
    """Similar items for every item: the method's own, else co-occurrence's."""
    if settings.similar == 0:
        return pd.DataFrame({c: [] for c in SIMILAR_ITEMS_SCHEMA.names})
    allowed = allowed_items(interactions, settings.rules)
    try:
        return recommender.similar_table(settings.similar, items=allowed)
    except NotFoundError:
        fallback = make_recommender(Method.COOCCURRENCE).fit(interactions)
        return fallback.similar_table(settings.similar, items=allowed)


def fit_recommendations(
    engine: Engine,
    *,
    as_of: dt.date | None = None,
    settings: RecommendSettings | None = None,
    method: str | None = None,
    top: int | None = None,
    include_late_loads: bool = False,
    random_state: int = 0,
) -> RecommendReport:
    """Train on purchases up to ``as_of`` and replace ``recommendations`` and
    ``similar_items``.

    Parameters
    ----------
    engine
        The warehouse.
    as_of
        Training date (default: the date of the latest order).
    settings
        ``models/recommend.yml`` (defaults when None).
    method, top
        Override the settings' method and list length.
    include_late_loads
        Count rows loaded after ``as_of`` (a backfill); the settings' value wins when set.
    random_state
        Seed of every random choice (ALS, LightGBM, samples).
    """
    started = time.perf_counter()
    settings = settings or RecommendSettings()
    chosen = method or settings.method.value
    recommender = make_recommender(chosen, random_state=random_state)
    n = top or settings.top
    day = as_of or latest_order_date(engine)
    late = (
        settings.include_late_loads
        if settings.include_late_loads is not None
        else (include_late_loads)
    )
    stages: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[stage] = now - clock
        clock = now

    interactions = load_interactions(
        engine, day, include_late_loads=late, stock_days=settings.rules.in_stock_days
    )
    lap("load")
    recommender.fit(interactions)
    lap("fit")
    lists = recommend_with_rules(recommender, settings.rules, n)
    lists = _top_up(lists, interactions, settings, n)
    lap("recommend")
    warnings = []
    if not late and interactions.purchases.empty:
        warnings.append("no purchases loaded by the training date; is this a backfill?")
    customers = interactions.customers.set_index("customer_key")
    names = interactions.catalogue.set_index("item_id")["name"]
    built_at = utc_now()
    rows = pa.table(
        {
            "customer_key": lists["customer_key"].astype(str).to_numpy(dtype=object),
            "customer_id": customers["customer_id"]
            .reindex(lists["customer_key"])
            .to_numpy(dtype=object),
            "source": customers["source"].reindex(lists["customer_key"]).to_numpy(dtype=object),
            "item_id": lists["item_id"].astype(str).to_numpy(dtype=object),
            "item_name": names.reindex(lists["item_id"]).astype(str).to_numpy(dtype=object),
            "rank": lists["rank"].to_numpy(dtype=np.int32),
            "score": lists["score"].to_numpy(dtype=np.float64),
            "method": lists["method"].astype(str).to_numpy(dtype=object),
            "reason": lists["reason"].astype(str).to_numpy(dtype=object),
            "model_as_of": pa.array([day] * len(lists), pa.date32()),
            "built_at": pa.array([built_at] * len(lists), pa.timestamp("us", tz="UTC")),
        }
    )
    similar = _similar_rows(recommender, interactions, settings)
    lap("similar_items")
    similar_rows = pa.table(
        {
            "item_id": similar["item_id"].astype(str).to_numpy(dtype=object),
            "similar_item_id": similar["similar_item_id"].astype(str).to_numpy(dtype=object),
            "rank": similar["rank"].to_numpy(dtype=np.int32),
            "score": similar["score"].to_numpy(dtype=np.float64),
            "method": similar["method"].astype(str).to_numpy(dtype=object),
        }
    )
    replace_table(engine, RECOMMENDATIONS, RECOMMENDATIONS_SCHEMA, rows)
    replace_table(engine, SIMILAR_ITEMS, SIMILAR_ITEMS_SCHEMA, similar_rows)
    lap("write")
    by_method = lists.groupby("method").size()
    return RecommendReport(
        as_of=day,
        method=chosen,
        top=n,
        customers=int(lists["customer_key"].nunique()),
        buyers=len(interactions.buyers),
        items=interactions.n_items,
        rows=len(lists),
        rows_by_method={str(k): int(v) for k, v in by_method.items()},
        items_recommended=int(lists["item_id"].nunique()),
        similar_rows=len(similar),
        seconds=time.perf_counter() - started,
        stages=stages,
        warnings=warnings,
    )


def resolve_customer(engine: Engine, customer: str) -> str:
    """The ``customer_key`` for a key or source customer id with stored recommendations,
    else for any id the 360° view knows (e-mail, phone, device) when profiles exist.
    """
    found = stored_customer_key(engine, customer)
    if found is not None:
        return found
    if engine.exists(PROFILES) and engine.count(PROFILES):
        profiles = engine.read(PROFILES)
        as_of: dt.date = engine.scalar(profiles.as_of.max())
        return find_customer_key(engine, customer, as_of)
    raise NotFoundError(
        f"no customer '{customer.strip()}' in the recommendations: give a customer_key or a "
        "source customer id (build profiles to look customers up by e-mail or phone)"
    )


def explain_customer(engine: Engine, customer: str, *, top: int | None = None) -> dict[str, Any]:
    """One customer's stored recommendations with reasons, as plain JSON-able data."""
    key = resolve_customer(engine, customer)
    rows = read_recommendations(engine, customer_key=key, top=top).to_pylist()
    info = model_info(engine)
    if not rows:
        raise NotFoundError(
            f"customer {key} has no stored recommendations (the model was trained as of "
            f"{info['model_as_of']}); run 'jingzhun recommend fit' again to include them"
        )
    first = rows[0]
    return {
        "customer_key": key,
        "customer_id": first["customer_id"],
        "source": first["source"],
        "model_as_of": first["model_as_of"].isoformat(),
        "built_at": first["built_at"].isoformat(),
        "recommendations": [
            {
                "rank": r["rank"],
                "item_id": r["item_id"],
                "item_name": r["item_name"],
                "score": round(float(r["score"]), 6),
                "method": r["method"],
                "reason": r["reason"],
            }
            for r in rows
        ],
    }


def stored_recommendations(
    engine: Engine, customer_key: str, *, top: int = 10
) -> list[dict[str, Any]]:
    """A customer's stored list for the 360° view and message templates (empty when none)."""
    if not engine.exists(RECOMMENDATIONS):
        return []
    return [
        {k: r[k] for k in ("rank", "item_id", "item_name", "reason")}
        for r in read_recommendations(engine, customer_key=customer_key, top=top).to_pylist()
    ]
