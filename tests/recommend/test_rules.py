"""Business rules: recent purchases and returns kept out, in stock only, the never list, at
most K per category, and the settings file that names them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from jingzhun.core import SpecError
from jingzhun.recommend import (
    BusinessRules,
    Method,
    Popularity,
    RecommendSettings,
    allowed_items,
    cap_per_category,
    excluded_pairs,
    interactions_from_frame,
    load_recommend_settings,
    recommend_with_rules,
)

AS_OF = dt.date(2024, 6, 30)


def _data():
    # ann bought the coffee machine 3 days ago and returned a grinder 40 days ago; everyone
    # else bought beans, cups and mugs; the kettle last sold 120 days ago.
    lines = pd.DataFrame(
        [
            ("ann", "machine", "o1", "2024-06-27", 1, False),
            ("ann", "grinder", "o0", "2024-05-10", 1, False),
            ("ann", "grinder", "r0", "2024-05-21", -1, True),
            ("bob", "beans", "o2", "2024-06-20", 2, False),
            ("bob", "cups", "o2", "2024-06-20", 6, False),
            ("cat", "beans", "o3", "2024-06-25", 1, False),
            ("cat", "mugs", "o3", "2024-06-25", 2, False),
            ("cat", "cups", "o3", "2024-06-25", 2, False),
            ("dan", "machine", "o4", "2024-06-01", 1, False),
            ("dan", "kettle", "o5", "2024-03-02", 1, False),
            ("dan", "POST", "o5", "2024-03-02", 1, False),
            ("eve", "POST", "o6", "2024-06-29", 1, False),
            ("eve", "beans", "o6", "2024-06-29", 1, False),
        ],
        columns=["customer_key", "item_id", "order_id", "ordered_on", "quantity", "is_return"],
    )
    products = pd.DataFrame(
        {
            "item_id": ["machine", "grinder", "beans", "cups", "mugs", "kettle", "POST"],
            "category": ["machines", "machines", "coffee", "tableware", "tableware", "machines",
                         None],
        }
    )  # fmt: skip
    return interactions_from_frame(lines, AS_OF, products=products)


def test_recent_purchases_and_returns_are_excluded() -> None:
    data = _data()
    rules = BusinessRules(exclude_bought_days=14, exclude_returned_days=90)
    pairs = excluded_pairs(data, rules)
    rows, cols = pairs.nonzero()
    found = sorted(zip(data.customer_keys[rows], data.item_ids[cols], strict=True))
    # ann's machine (3 days) and returned grinder (40 days < 90); bob's and cat's baskets
    # (10 and 5 days); eve's (1 day). dan's machine is 29 days old: shown again.
    assert found == [
        ("ann", "grinder"), ("ann", "machine"),
        ("bob", "beans"), ("bob", "cups"),
        ("cat", "beans"), ("cat", "cups"), ("cat", "mugs"),
        ("eve", "POST"), ("eve", "beans"),
    ]  # fmt: skip
    assert excluded_pairs(data, BusinessRules(exclude_bought_days=None,
                                              exclude_returned_days=None)) is None  # fmt: skip


def test_in_stock_and_never() -> None:
    data = _data()
    stock = dict(zip(data.item_ids, data.catalogue["in_stock"], strict=True))
    assert not stock["kettle"] and stock["beans"]  # the kettle last sold 120 days ago
    assert data.catalogue.set_index("item_id").loc["kettle", "last_sold_days"] == 120
    allowed = allowed_items(data, BusinessRules(never=("POST",)))
    assert sorted(data.item_ids[allowed]) == ["beans", "cups", "grinder", "machine", "mugs"]
    everything = allowed_items(data, BusinessRules(in_stock_only=False))
    assert everything.all()
    short = interactions_from_frame(
        pd.DataFrame(
            {"customer_key": ["a"], "item_id": ["kettle"], "order_id": ["o"],
             "ordered_on": ["2024-03-02"]}
        ),
        AS_OF,
        stock_days=200,
    )  # fmt: skip
    assert short.catalogue["in_stock"].tolist() == [True]


def test_cap_per_category_reranks() -> None:
    data = _data()
    lists = pd.DataFrame(
        {
            "customer_key": ["zed"] * 5,
            "item_id": ["cups", "mugs", "POST", "beans", "machine"],
            "rank": [1, 2, 3, 4, 5],
        }
    )
    capped = cap_per_category(lists, data, 1)
    # mugs is a second tableware item; POST has no category and is never capped
    assert capped[["item_id", "rank"]].values.tolist() == [
        ["cups", 1], ["POST", 2], ["beans", 3], ["machine", 4]
    ]  # fmt: skip
    assert cap_per_category(lists, data, None)["item_id"].tolist() == lists["item_id"].tolist()


def test_recommend_with_rules_end_to_end() -> None:
    data = _data()
    model = Popularity().fit(data)
    rules = BusinessRules(
        exclude_bought_days=14, exclude_returned_days=90, max_per_category=1, never=("POST",)
    )
    lists = recommend_with_rules(model, rules, 3, customers=["ann", "dan"])
    by_customer = lists.groupby("customer_key")["item_id"].apply(list).to_dict()
    # popularity: beans 3, cups 2, machine 2, POST 2, grinder 1, mugs 1 (kettle out of stock)
    assert by_customer == {
        "ann": ["beans", "cups"],  # machine just bought, grinder returned, mugs capped
        "dan": ["beans", "cups", "machine"],
    }
    assert lists["rank"].tolist() == [1, 2, 1, 2, 3]


def test_settings_file(tmp_path: Path) -> None:
    assert load_recommend_settings(tmp_path / "missing.yml") == RecommendSettings()
    good = tmp_path / "recommend.yml"
    good.write_text("method: als\ntop: 5\nrules:\n  max_per_category: 2\n  never: [POST, 85123]\n")
    settings = load_recommend_settings(good)
    assert settings.method is Method.ALS and settings.top == 5
    assert settings.rules.never == ("POST", "85123")
    assert settings.rules.max_per_category == 2
    bad = tmp_path / "bad.yml"
    bad.write_text("method: knn\ntop: 0\nrules:\n  exclude_bought_dayz: 3\n")
    with pytest.raises(SpecError) as caught:
        load_recommend_settings(bad)
    text = str(caught.value)
    assert "bad.yml:1: field 'method'" in text and "methods: popularity, cooccurrence" in text
    assert "bad.yml:2: field 'top'" in text
    assert "bad.yml:4: field 'rules.exclude_bought_dayz' Extra inputs are not permitted" in text
