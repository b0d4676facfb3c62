"""How far re-purchase reminders can go on Online Retail: the issue asks 1.2x the NDCG@10 of
each customer's own most frequently bought items; ``Replenishment`` gives 1.19x on the
validation split and 1.17x on the test split. This benchmark scores, on the validation split
(train to 2011-07-21, test 2011-07-22 - 2011-09-30, as ``recommend_eval`` tunes):

- the default model with three seeds: how much of a difference is noise;
- the default model with each family of further features below added: what the model does
  not yet know about the customer, the item or the pair;
- an oracle: the default model plus, as a feature, how many customers bought the item in
  the 70 days after each cut-off, i.e. perfect knowledge of every item's coming demand
  (known only in hindsight). It bounds what any item-level forecast - a better trend, last
  year's season - can add.

The oracle is scored on the test split too (train to 2011-09-30), as a bound, not to choose
anything. Figures go to ``results/recommend_repurchase_ceiling.json``. About five minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.recommend_eval import RULES, TEST, VALIDATION, _data, write_results
from jingzhun.recommend import (
    Interactions,
    ItemCooccurrence,
    Recommender,
    Replenishment,
    Repurchase,
    evaluate,
    time_split,
)
from jingzhun.recommend._recommenders import FEATURES, _group_rank

HORIZON = 70

# A family adds columns to the (customer, item) rows of one cut-off.
Family = tuple[tuple[str, ...], Callable[[Interactions, pd.DataFrame], None]]


def _pair_codes(interactions: Interactions, frame: pd.DataFrame) -> np.ndarray:
    codes: np.ndarray = (
        frame["customer"].to_numpy().astype(np.int64) * interactions.n_items
        + frame["item"].to_numpy()
    )
    return codes


def _item_dynamics(interactions: Interactions, rows: pd.DataFrame) -> None:
    """Who buys the item now: repeat and first-time buyers and lines, last 14 and 30 days."""
    p = interactions.purchases
    n = interactions.n_items
    age = p["age_days"].to_numpy()
    pair = _pair_codes(interactions, p)
    first = pd.Series(age).groupby(pair).transform("max").to_numpy()
    item = rows["item"].to_numpy()
    for days in (14, 30):
        recent = age < days
        repeat = np.unique(pair[recent & (first >= days)]) % n
        new = np.unique(pair[recent & (first < days)]) % n
        rows[f"item_repeaters_{days}"] = np.bincount(repeat, minlength=n)[item]
        rows[f"item_new_buyers_{days}"] = np.bincount(new, minlength=n)[item]
        rows[f"item_lines_{days}"] = np.bincount(p["item"].to_numpy()[recent], minlength=n)[item]


def _basket_context(interactions: Interactions, rows: pd.DataFrame) -> None:
    """How well the item goes with what the customer bought lately (item co-occurrence,
    their purchases weighed by a 14- and a 60-day half-life), and its rank among their items.
    """
    for half_life in (14, 60):
        model = ItemCooccurrence(neighbours=300, half_life_days=half_life).fit(interactions)
        scores = (model.profile_ @ model.similarity_).tocsr()
        values = np.asarray(scores[rows["customer"].to_numpy(), rows["item"].to_numpy()])
        rows[f"context_{half_life}"] = values.ravel()
        rows[f"context_{half_life}_rank"] = _group_rank(
            rows[f"context_{half_life}"].to_numpy(), rows["customer"].to_numpy()
        )


def _returns(interactions: Interactions, rows: pd.DataFrame) -> None:
    """Returns of the item by the customer, of the customer, of the item."""
    r = interactions.returns
    counts = pd.Series(_pair_codes(interactions, r)).value_counts()
    rows["pair_returns"] = counts.reindex(_pair_codes(interactions, rows)).fillna(0).to_numpy()
    by_customer = np.bincount(r["customer"].to_numpy(), minlength=interactions.n_customers)
    rows["customer_returns"] = by_customer[rows["customer"].to_numpy()]
    by_item = np.bincount(r["item"].to_numpy(), minlength=interactions.n_items)
    rows["item_returns"] = by_item[rows["item"].to_numpy()]


def _intervals(interactions: Interactions, rows: pd.DataFrame) -> None:
    """The item's usual re-buying interval over all customers, the customer's usual order
    interval, and the orders they are likely to place in the horizon.
    """
    p = interactions.purchases
    n = interactions.n_items
    days = pd.DataFrame({"pair": _pair_codes(interactions, p), "age": p["age_days"]})
    ages = days.drop_duplicates().groupby("pair")["age"]
    count, span = ages.size(), ages.max() - ages.min()
    repeat = count > 1
    interval = (span[repeat] / (count[repeat] - 1)).to_numpy()
    median = pd.Series(interval).groupby(count[repeat].index.to_numpy() % n).median()
    item_interval = np.full(n, np.nan)
    item_interval[median.index.to_numpy()] = median.to_numpy()
    rows["item_interval"] = item_interval[rows["item"].to_numpy()]
    rows["gap_of_item_interval"] = rows["last_days"] / rows["item_interval"]
    orders = rows["customer_orders"].to_numpy()
    span_days = (rows["customer_first_days"] - rows["customer_last_days"]).to_numpy()
    order_interval = np.where(orders > 1, span_days / np.maximum(orders - 1, 1), np.nan)
    rows["customer_order_interval"] = order_interval
    rows["expected_orders"] = HORIZON / np.maximum(order_interval, 1.0)


def _product_line(interactions: Interactions, rows: pd.DataFrame) -> None:
    """The customer's purchases of the item's product line (the same first or last two
    words of the name, e.g. JUMBO BAG ..., ... RED RETROSPOT), other items of it, and
    whether they bought another item of the line more lately than this one.
    """
    words = interactions.catalogue["name"].fillna("").astype(str).str.upper().str.split()
    p = interactions.purchases
    age = p["age_days"].to_numpy().astype(np.float64)
    heads, tails = words.str[:2].str.join(" "), words.str[-2:].str.join(" ")
    for name, key in (("head", heads), ("tail", tails)):
        line, _ = pd.factorize(key.to_numpy())
        lines = int(line.max()) + 1
        bought = p["customer"].to_numpy().astype(np.int64) * lines + line[p["item"].to_numpy()]
        decayed = pd.Series(np.power(0.5, age / 60)).groupby(bought).sum()
        latest = pd.Series(age).groupby(bought).min()
        wanted = rows["customer"].to_numpy().astype(np.int64) * lines + line[rows["item"]]
        rows[f"line_{name}_others"] = decayed.reindex(wanted).to_numpy() - rows["decay_60"]
        rows[f"line_{name}_newer"] = rows["last_days"] - latest.reindex(wanted).to_numpy()


def _activity(interactions: Interactions, rows: pd.DataFrame) -> None:
    """The customer's orders in the last 30 and 90 days and their trend."""
    p = interactions.purchases
    orders = p[["customer", "order", "age_days"]].drop_duplicates(["customer", "order"])
    customer = rows["customer"].to_numpy()
    for days in (30, 90):
        recent = orders["customer"].to_numpy()[orders["age_days"].to_numpy() < days]
        rows[f"orders_{days}"] = np.bincount(recent, minlength=interactions.n_customers)[customer]
    rows["orders_trend"] = (rows["orders_30"] + 1.0) / (rows["orders_90"] / 3.0 + 1.0)


FAMILIES: dict[str, Family] = {
    "item dynamics": (
        tuple(
            f"item_{what}_{days}"
            for days in (14, 30)
            for what in ("repeaters", "new_buyers", "lines")
        ),
        _item_dynamics,
    ),
    "basket context": (
        ("context_14", "context_14_rank", "context_60", "context_60_rank"),
        _basket_context,
    ),
    "returns": (("pair_returns", "customer_returns", "item_returns"), _returns),
    "intervals": (
        ("item_interval", "gap_of_item_interval", "customer_order_interval", "expected_orders"),
        _intervals,
    ),
    "product line": (
        tuple(f"line_{n}_{w}" for n in ("head", "tail") for w in ("others", "newer")),
        _product_line,
    ),
    "customer activity": (("orders_30", "orders_90", "orders_trend"), _activity),
}


class WithFeatures(Replenishment):
    """``Replenishment`` learning from its features and those of ``families``."""

    def __init__(self, families: tuple[Family, ...] = (), **settings: Any) -> None:
        super().__init__(**settings)
        self.families = families
        self.feature_names = FEATURES + tuple(n for names, _ in families for n in names)

    def _features(
        self, interactions: Interactions, customers: np.ndarray | None = None
    ) -> pd.DataFrame:
        rows = super()._features(interactions, customers)
        for _, add in self.families:
            add(interactions, rows)
        return rows


def item_oracle(everything: Interactions) -> Family:
    """Buyers of each item in the ``HORIZON`` days after the cut-off, read from all the
    data: known only in hindsight.
    """

    def add(interactions: Interactions, rows: pd.DataFrame) -> None:
        start = (everything.as_of - interactions.as_of).days  # age of the cut-off day
        p = everything.purchases
        ages = p["age_days"].to_numpy()
        later = p[(ages < start) & (ages >= start - HORIZON)]
        items = np.unique(_pair_codes(everything, later)) % everything.n_items
        buyers = np.bincount(items, minlength=everything.n_items)
        rows["item_future_buyers"] = buyers[rows["item"].to_numpy()]

    return ("item_future_buyers",), add


def _scores(split: Any, recommenders: dict[str, Recommender]) -> dict[str, dict[str, float]]:
    result = evaluate(
        split, "repurchase", recommenders={"repurchase": Repurchase(), **recommenders}, rules=RULES
    )
    base = result.score("repurchase").ndcg
    return {
        s.method: {"ndcg": round(s.ndcg, 4), "ratio": round(s.ndcg / base, 4), "seconds": s.seconds}
        for s in result.scores
    }


def main() -> None:
    started = time.perf_counter()
    data = _data()
    validation = time_split(data, VALIDATION[0], test_until=VALIDATION[1], rules=RULES)
    candidates: dict[str, Recommender] = {
        f"default seed={seed}": Replenishment(random_state=seed) for seed in (0, 1, 2)
    }
    candidates |= {
        f"+ {name}": WithFeatures((family,), random_state=0) for name, family in FAMILIES.items()
    }
    candidates["+ all families"] = WithFeatures(tuple(FAMILIES.values()), random_state=0)
    candidates["+ item oracle"] = WithFeatures((item_oracle(data),), random_state=0)
    on_validation = _scores(validation, candidates)
    for name, figures in on_validation.items():
        print(f"validation {name}: {figures}", flush=True)
    test = time_split(data, TEST[0], test_until=TEST[1], rules=RULES)
    on_test = _scores(
        test,
        {
            "default seed=0": Replenishment(random_state=0),
            "+ item oracle": WithFeatures((item_oracle(data),), random_state=0),
        },
    )
    for name, figures in on_test.items():
        print(f"test {name}: {figures}", flush=True)
    out = {
        "benchmark": "recommend_repurchase_ceiling",
        "data": "UCI Online Retail, 541,909 lines (CC BY 4.0, doi:10.24432/C5BW33)",
        "metric": "NDCG@10 on items bought again; ratio = over each customer's own most "
        "frequently bought items (the issue asks 1.2)",
        "validation": {
            "train_until": VALIDATION[0].isoformat(),
            "test_until": VALIDATION[1].isoformat(),
            "scores": on_validation,
        },
        "test": {
            "train_until": TEST[0].isoformat(),
            "test_until": TEST[1].isoformat(),
            "scores": on_test,
        },
        "families": {name: list(names) for name, (names, _) in FAMILIES.items()},
    }
    write_results("recommend_repurchase_ceiling", out, started)


if __name__ == "__main__":
    main()
