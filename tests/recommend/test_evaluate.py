"""Offline evaluation: the metrics by hand, the time split, and the issue's figures on the
full UCI Online Retail data (541,909 invoice lines, Dec 2010 – Dec 2011, CC BY 4.0).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import shared_file
from jingzhun.core import NotFoundError, SpecError
from jingzhun.recommend import (
    BusinessRules,
    Evaluation,
    Popularity,
    Repurchase,
    evaluate,
    interactions_from_frame,
    load_interactions,
    make_recommender,
    ndcg_at_k,
    time_split,
)
from jingzhun.recommend._evaluate import score_lists
from jingzhun.workspace import Workspace

# Online Retail's codes that are not products: postage, carriage, fees, discounts, manual
# entries, samples, bad debt. Never recommended, never counted as relevant.
NOT_PRODUCTS = ("POST", "DOT", "C2", "M", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK",
                "PADS")  # fmt: skip


def test_ndcg_by_hand() -> None:
    hits = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], dtype=float)
    relevant = np.array([2, 1, 5])
    got = ndcg_at_k(hits, relevant, 3)
    ideal_two = 1 + 1 / math.log2(3)
    ideal_three = ideal_two + 1 / math.log2(4)
    assert got.tolist() == pytest.approx(
        [(1 + 1 / math.log2(4)) / ideal_two, 0.0, (1 / math.log2(3)) / ideal_three]
    )


def test_score_lists_by_hand() -> None:
    lists = pd.DataFrame({"customer": [0, 0, 1, 1], "item": [5, 6, 5, 7], "rank": [1, 2, 1, 2]})
    relevant = pd.DataFrame({"customer": [0, 1, 1], "item": [6, 8, 9]})
    buyers = np.zeros(10)
    buyers[[5, 6, 7]] = [8, 2, 1]
    figures = score_lists(lists, relevant, k=2, item_buyers=buyers, buyers=16, shown_items=5)
    assert figures["hit_rate"] == 0.5
    assert figures["ndcg"] == pytest.approx((1 / math.log2(3)) / 1 / 2)
    assert figures["precision"] == pytest.approx(0.25)
    assert figures["recall"] == pytest.approx(0.5)
    assert figures["coverage"] == pytest.approx(3 / 5)
    assert figures["novelty"] == pytest.approx(np.mean([1, 3, 1, 4]))  # -log2(8/16) ...


def _shop():
    lines = pd.DataFrame(
        [
            ("ann", "x", "o1", "2024-01-05"),
            ("ann", "y", "o1", "2024-01-05"),
            ("bob", "x", "o2", "2024-01-20"),
            ("ann", "x", "o3", "2024-02-10"),  # after the split: a re-purchase
            ("ann", "z", "o3", "2024-02-10"),  # a new item
            ("bob", "POST", "o4", "2024-02-11"),  # not a product
            ("new", "x", "o5", "2024-02-12"),  # no history: not a test customer
        ],
        columns=["customer_key", "item_id", "order_id", "ordered_on"],
    )
    return interactions_from_frame(lines, dt.date(2024, 2, 29))


def test_time_split_relevant_sets() -> None:
    data = time_split(_shop(), dt.date(2024, 1, 31), rules=BusinessRules(never=("POST",)))
    train = data.train
    assert train.as_of == dt.date(2024, 1, 31)
    assert len(train.purchases) == 3

    def pairs(mode: str) -> list[tuple[str, str]]:
        frame = data.relevant[mode]
        return sorted(
            zip(train.customer_keys[frame.customer], train.item_ids[frame.item], strict=True)
        )

    assert pairs("discovery") == [("ann", "z")]
    assert pairs("repurchase") == [("ann", "x")]
    assert pairs("all") == [("ann", "x"), ("ann", "z")]


def test_evaluate_small_shop() -> None:
    data = time_split(_shop(), dt.date(2024, 1, 31), rules=BusinessRules(never=("POST",)))
    result = evaluate(
        data,
        "repurchase",
        recommenders={"repurchase": Repurchase(), "popularity": Popularity()},
        rules=BusinessRules(never=("POST",), in_stock_only=False),
        k=2,
    )
    assert result.customers == 1 and result.baseline == "repurchase"
    # ann bought x then y in one order: both once; x is relevant. Ties by item code: x first.
    assert result.score("repurchase").ndcg == pytest.approx(1.0)
    assert result.to_dict()["methods"][0]["ndcg_vs_baseline"] == 1.0


def test_evaluate_bad_input() -> None:
    shop = _shop()
    with pytest.raises(SpecError, match="must come before the end of the test period"):
        time_split(shop, dt.date(2024, 3, 31))
    with pytest.raises(NotFoundError, match="no purchases up to 2023-12-31"):
        time_split(shop, dt.date(2023, 12, 31))
    data = time_split(shop, dt.date(2024, 1, 31))
    with pytest.raises(SpecError, match="unknown mode 'novel'; modes: discovery, repurchase"):
        evaluate(data, "novel")
    with pytest.raises(SpecError, match="unknown method 'knn'"):
        evaluate(data, "discovery", methods=["knn"])


SPLIT = dt.date(2011, 9, 30)
LAST = dt.date(2011, 12, 9)


@pytest.fixture(scope="module")
def online_retail(tmp_path_factory: pytest.TempPathFactory):
    """The whole of Online Retail ingested and read as of its last day (~20 s)."""
    root: Path = tmp_path_factory.mktemp("online_retail")
    (root / "sources").mkdir()
    spec = Path(__file__).parents[2] / "examples/online_retail/sources/online_retail.yml"
    text = spec.read_text().replace(
        "path: ../../../shared/data/online_retail/online_retail.csv.gz",
        f"path: {shared_file('online_retail/online_retail.csv.gz')}",
    )
    (root / "sources" / "online_retail.yml").write_text(text)
    (root / "jingzhun.yml").write_text("name: retail\ncurrency: GBP\nregion: GB\n")
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
        # Loaded today, describing 2011: a backfill, so rows loaded after the date count.
        return load_interactions(ws.engine, LAST, include_late_loads=True)


@pytest.fixture(scope="module")
def figures(online_retail) -> dict[str, Evaluation]:
    """Every mode on the issue's split, the methods fitted once (about a minute)."""
    rules = BusinessRules(never=NOT_PRODUCTS)
    data = time_split(online_retail, SPLIT, rules=rules)
    fitted = {
        name: make_recommender(name, random_state=0).fit(data.train)
        for name in ("popularity", "repurchase", "cooccurrence", "als", "rules", "content",
                     "replenishment")
    }  # fmt: skip
    blend = make_recommender("blend", random_state=0)
    for part in blend.blend_parts():  # the blend's parts are the ones fitted above
        assert part.recommender.method in fitted
    blend.parts = [(fitted[p.recommender.method], p.weight, p.scope) for p in blend.blend_parts()]
    fitted["blend"] = blend
    fitted["popularity_30_days"] = Popularity(window_days=30).fit(data.train)
    return {
        mode: evaluate(data, mode, recommenders=fitted, rules=rules)
        for mode in ("discovery", "repurchase")
    }


@pytest.mark.slow
def test_online_retail_discovery(figures) -> None:
    """Issue 6: new items, NDCG@10 at least 1.5x popularity's among unbought items."""
    result = figures["discovery"]
    assert result.customers == 1768
    # Popularity is fully determined by the data: NDCG@10 0.0433, HR@10 0.284.
    assert result.score("popularity").ndcg == pytest.approx(0.0433, abs=5e-4)
    assert result.score("popularity").hit_rate == pytest.approx(0.284, abs=1e-3)
    assert result.ratio("blend") >= 1.5  # measured 2.32
    assert result.ratio("als") >= 1.5  # 2.44
    assert result.ratio("cooccurrence") >= 1.5  # 1.96
    assert result.ratio("rules") >= 1.5  # 1.94
    assert result.ratio("content") >= 1.5  # 1.73
    # the last 30 days' best sellers are a harder baseline (NDCG@10 0.0759); the blend is
    # 1.32x that
    recent = result.score("popularity_30_days").ndcg
    assert recent == pytest.approx(0.0759, abs=5e-4)
    assert result.score("blend").ndcg >= 1.25 * recent
    assert result.score("blend").coverage > 5 * result.score("popularity").coverage
    assert result.score("blend").novelty > result.score("popularity").novelty


@pytest.mark.slow
def test_online_retail_repurchase(figures) -> None:
    """Re-purchase reminders beat each customer's own most frequently bought items."""
    result = figures["repurchase"]
    assert result.customers == 1651
    assert result.score("repurchase").ndcg == pytest.approx(0.4447, abs=5e-4)
    assert result.ratio("replenishment") >= 1.15  # measured 1.167
    assert result.ratio("blend") == pytest.approx(result.ratio("replenishment"))
    assert result.score("replenishment").hit_rate > result.score("repurchase").hit_rate


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="issue 6 asks 1.2x own-most-frequent for reminders; the best found is 1.17x "
    "(1.19x on validation; an oracle of every item's coming demand gives 1.22x) — see the "
    "recommend README, 'Not reached'",
)
def test_online_retail_repurchase_goal(figures) -> None:
    assert figures["repurchase"].ratio("replenishment") >= 1.2
