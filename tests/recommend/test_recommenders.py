"""The recommenders on small hand-made purchase tables whose answers are worked out by hand,
plus their contract: seeded, reproducible, masks respected, reasons present.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from jingzhun.core import NotFoundError, SpecError
from jingzhun.recommend import (
    AssociationRules,
    Blend,
    ContentBased,
    ImplicitALS,
    Interactions,
    ItemCooccurrence,
    Method,
    Popularity,
    Recommender,
    Repurchase,
    interactions_from_frame,
    make_recommender,
    replenishment_features,
)
from jingzhun.recommend._data import _assemble
from jingzhun.recommend._recommenders import top_per_row

AS_OF = dt.date(2024, 3, 31)


def _lines(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """(customer, item, order, day) rows as a lines table."""
    return pd.DataFrame(rows, columns=["customer_key", "item_id", "order_id", "ordered_on"])


# Three customers: ann bought x and y together, bob x, y and z, cat x and z. Buyers: x 3,
# y 2, z 2; x and y share 2 buyers, x and z 2, y and z 1.
BASKETS = _lines(
    [
        ("ann", "x", "o1", "2024-03-01"),
        ("ann", "y", "o1", "2024-03-01"),
        ("bob", "x", "o2", "2024-03-10"),
        ("bob", "y", "o2", "2024-03-10"),
        ("bob", "z", "o3", "2024-03-20"),
        ("cat", "x", "o4", "2024-03-25"),
        ("cat", "z", "o4", "2024-03-25"),
    ]
)
PRODUCTS = pd.DataFrame(
    {
        "item_id": ["x", "y", "z", "w"],
        "name": ["Coffee machine", "Milk jug", "Coffee beans dark", "Coffee beans light"],
        "category": ["kitchen", "kitchen", "coffee", "coffee"],
    }
)


@pytest.fixture
def baskets():
    return interactions_from_frame(BASKETS, AS_OF, products=PRODUCTS, customers=["dan"])


def test_interactions_codes_and_in_stock(baskets) -> None:
    assert baskets.n_customers == 4 and baskets.n_items == 4  # dan has no purchases, w no sale
    assert list(baskets.customer_keys[baskets.buyers]) == ["ann", "bob", "cat"]
    stock = baskets.catalogue.set_index("item_id")["in_stock"]
    assert stock.to_dict() == {"w": False, "x": True, "y": True, "z": True}
    earlier = baskets.until(dt.date(2024, 3, 15))
    assert len(earlier.purchases) == 4  # o1 and o2
    assert earlier.catalogue.set_index("item_id")["buyers"].to_dict() == {
        "w": 0,
        "x": 2,
        "y": 2,
        "z": 0,
    }
    later = baskets.after(dt.date(2024, 3, 15))
    assert sorted(baskets.item_ids[later["item"]]) == ["x", "z", "z"]


def test_top_per_row_dense_and_sparse_agree() -> None:
    dense = np.array([[0.1, 0.5, -np.inf, 0.5], [3.0, 1.0, 2.0, 0.0]])
    found = top_per_row(dense, 2)
    assert found.rows.tolist() == [0, 0, 1, 1]
    assert found.items.tolist() == [1, 3, 0, 2]  # ties by item code
    assert found.ranks.tolist() == [1, 2, 1, 2]
    sparse = top_per_row(sp.csr_matrix(np.where(np.isfinite(dense), dense, 0.0)), 2)
    assert sparse.items.tolist() == found.items.tolist()


def test_popularity_counts_buyers_and_skips_what_was_bought(baskets) -> None:
    model = Popularity().fit(baskets)
    recs = model.recommend(["dan", "cat"], 2, scope="new")
    dan = recs[recs.customer_key == "dan"]
    assert dan[["item_id", "score"]].values.tolist() == [["x", 3.0], ["y", 2.0]]
    cat = recs[recs.customer_key == "cat"]
    assert cat.item_id.tolist() == ["y"]  # cat bought x and z already
    assert cat.reason.iloc[0] == "popular: 2 customers bought it"
    recent = Popularity(window_days=12).fit(baskets)  # 20 March on: z (bob), x and z (cat)
    assert recent.recommend(["dan"], 2).item_id.tolist() == ["z", "x"]


def test_cooccurrence_cosine_by_hand(baskets) -> None:
    model = ItemCooccurrence(alpha=0.5, half_life_days=None).fit(baskets)
    x, y, z = (baskets.item_codes[i] for i in "xyz")
    sim = model.similarity_.toarray()
    assert sim[x, y] == pytest.approx(2 / math.sqrt(3 * 2))
    assert sim[y, z] == pytest.approx(1 / math.sqrt(2 * 2))
    assert sim[x, x] == 0.0
    # ann bought x and y: z scores sim(x, z) + sim(y, z)
    recs = model.recommend(["ann"], 5, scope="new")
    assert recs.item_id.tolist() == ["z"]
    assert recs.score.iloc[0] == pytest.approx(2 / math.sqrt(6) + 0.5)
    assert recs.reason.iloc[0] == "bought together with Coffee machine"
    similar = model.similar_items("x", 2)
    assert similar.similar_item_id.tolist() == ["y", "z"]  # equal scores: by item code
    assert similar.method.unique().tolist() == ["cooccurrence"]


def test_repurchase_orders_then_latest(baskets) -> None:
    lines = pd.concat(
        [BASKETS, _lines([("ann", "y", "o9", "2024-03-30"), ("ann", "x", "o8", "2024-02-01")])]
    )
    data = interactions_from_frame(lines, AS_OF, products=PRODUCTS)
    recs = Repurchase().fit(data).recommend(["ann"], 5, scope="history")
    # x and y were each in two orders; y was bought later, so it comes first
    assert recs.item_id.tolist() == ["y", "x"]
    assert recs.reason.tolist() == [
        "you bought it 2 times, last on 2024-03-30",
        "you bought it 2 times, last on 2024-03-01",
    ]


def test_association_rules_confidence_and_lift_by_hand() -> None:
    # Ten orders: bread in 6, butter in 5, both in 4. Item ids that look like numbers are
    # passed to mlxtend as plain strings.
    rows = []
    for i in range(10):
        if i < 6:
            rows.append((f"c{i}", "1001", f"o{i}", "2024-03-01"))
        if i >= 2 and i < 7:
            rows.append((f"c{i}", "1002", f"o{i}", "2024-03-01"))
        rows.append((f"c{i}", "9", f"o{i}", "2024-03-01"))
    data = interactions_from_frame(_lines(rows), AS_OF)
    model = AssociationRules(min_support=0.3, min_confidence=0.5).fit(data)
    rules = model.rules_.set_index(["antecedent", "consequent"])
    # support(both) = 0.4; confidence bread→butter = 4/6, butter→bread = 4/5; lift = 0.4/(0.6*0.5)
    assert rules.loc[("1001", "1002"), "confidence"] == pytest.approx(4 / 6)
    assert rules.loc[("1002", "1001"), "confidence"] == pytest.approx(4 / 5)
    assert rules.loc[("1001", "1002"), "lift"] == pytest.approx(0.4 / (0.6 * 0.5))
    recs = model.recommend(["c0"], 3, scope="new")  # c0 bought bread and item 9
    assert recs.item_id.tolist() == ["1002"]
    assert recs.reason.iloc[0].startswith("67% of orders with 1001 also hold it (lift 1.3)")


def test_content_based_follows_the_category(baskets) -> None:
    by_category = ContentBased(word_weight=0.0, brand_weight=0.0).fit(baskets)
    # ann bought kitchen things only, and no kitchen item is left for her
    assert by_category.recommend(["ann"], 3, scope="new").empty
    bob = by_category.recommend(["bob"], 3, scope="new")  # bob bought dark coffee beans too
    assert bob.item_id.tolist() == ["w"]
    assert bob.reason.tolist() == ["like what you buy: category coffee"]
    # by name words: 'beans' is rarer than 'coffee' (2 of 4 names against 3), so it speaks
    by_words = ContentBased(category_weight=0.0, brand_weight=0.0, max_word_share=1.0)
    bob = by_words.fit(baskets).recommend(["bob"], 3, scope="new")
    assert bob.item_id.tolist() == ["w"]
    assert bob.reason.tolist() == ["like what you buy: 'beans'"]


def test_als_is_seeded_and_learns_co_purchases() -> None:
    rng = np.random.default_rng(3)
    rows = []
    # two tastes: customers of group a buy a-items, group b buy b-items
    for c in range(60):
        group = "a" if c < 30 else "b"
        for i in rng.choice(8, 4, replace=False):
            rows.append((f"{group}{c}", f"{group}-{i}", f"o{c}", "2024-03-01"))
    data = interactions_from_frame(_lines(rows), AS_OF)
    first = ImplicitALS(factors=8, iterations=10, random_state=5).fit(data)
    again = ImplicitALS(factors=8, iterations=10, random_state=5).fit(data)
    np.testing.assert_array_equal(first.item_factors_, again.item_factors_)
    recs = first.recommend(["a0", "b59"], 3, scope="new")
    for key, group in recs.groupby("customer_key"):
        assert all(item.startswith(key[0]) for item in group.item_id), group
    assert recs.reason.str.startswith("customers with your taste buy it; close to ").all()


def test_blend_fuses_ranks(baskets) -> None:
    pop = Popularity().fit(baskets)
    cooc = ItemCooccurrence(half_life_days=None).fit(baskets)
    blend = Blend([(pop, 1.0), (cooc, 2.0)], depth=5, rank_offset=1.0).fit(baskets)
    assert blend.parts[0][0].interactions_ is baskets  # fitted parts are reused
    recs = blend.recommend(["cat"], 3, scope="all")
    # popularity ranks x 1, y 2, z 3; cat bought x and z: co-occurrence ranks y 1
    # (sim(x,y) + sim(z,y) = 0.816 + 0.5), x 2 (sim(z,x) = 0.816), z 3 (sim(x,z) = 0.816)
    expected = {
        "x": 1 / (1 + 1) + 2 / (1 + 2),
        "y": 1 / (1 + 2) + 2 / (1 + 1),
        "z": 1 / (1 + 3) + 2 / (1 + 3),
    }
    assert recs.item_id.tolist() == ["y", "x", "z"]
    assert recs.score.tolist() == pytest.approx([expected[i] for i in recs.item_id])
    assert recs.method.unique().tolist() == ["blend"]
    assert recs.reason.iloc[0] == "bought together with Coffee machine"


def test_masks_exclude_and_items(baskets) -> None:
    model = Popularity().fit(baskets)
    allowed = baskets.catalogue["item_id"].isin(["y", "z"]).to_numpy()
    exclude = pd.DataFrame({"customer_key": ["dan"], "item_id": ["z"]})
    recs = model.recommend(["dan"], 3, exclude=exclude, items=allowed)
    assert recs.item_id.tolist() == ["y"]


def test_bad_input_is_named(baskets) -> None:
    model = Popularity().fit(baskets)
    with pytest.raises(NotFoundError, match="unknown as of 2024-03-31: nobody"):
        model.recommend(["nobody"])
    with pytest.raises(ValueError, match="scope must be one of all, new, history"):
        model.recommend(["ann"], scope="old")
    with pytest.raises(NotFoundError, match="no notion of similar items"):
        model.similar_items("x")
    with pytest.raises(NotFoundError, match="item 'nope' is not in the catalogue"):
        ItemCooccurrence().fit(baskets).similar_items("nope")
    with pytest.raises(SpecError, match="unknown method 'knn'; methods: popularity"):
        make_recommender("knn")


@pytest.mark.parametrize("method", [m.value for m in Method if m is not Method.REPLENISHMENT])
def test_every_method_honours_the_contract(baskets, method: str) -> None:
    model: Recommender = make_recommender(method, random_state=1)
    if method == Method.BLEND.value:
        model = Blend([(Popularity(), 1.0), (ItemCooccurrence(), 1.0)])
    model.fit(baskets)
    recs = model.recommend(None, 2)
    assert list(recs.columns) == ["customer_key", "item_id", "rank", "score", "method", "reason"]
    assert set(recs.customer_key) <= {"ann", "bob", "cat"}
    assert (
        recs.groupby("customer_key")["rank"]
        .apply(list)
        .map(lambda r: r == list(range(1, len(r) + 1)))
    ).all()
    assert recs.reason.map(bool).all()
    new = model.recommend(None, 4, scope="new")
    bought = {(c, i) for c, i in zip(BASKETS.customer_key, BASKETS.item_id, strict=True)}
    assert not any((c, i) in bought for c, i in zip(new.customer_key, new.item_id, strict=True))


def test_replenishment_features_by_hand() -> None:
    # ann bought beans on 1, 11 and 21 March and a mug on 11 March; bob bought beans on
    # 30 March. As of 31 March.
    lines = _lines(
        [
            ("ann", "beans", "o1", "2024-03-01"),
            ("ann", "beans", "o2", "2024-03-11"),
            ("ann", "mug", "o2", "2024-03-11"),
            ("ann", "beans", "o3", "2024-03-21"),
            ("bob", "beans", "o4", "2024-03-30"),
        ]
    )
    data = interactions_from_frame(lines, AS_OF)
    rows = replenishment_features(data).set_index(["customer", "item"])
    ann, bob = (data.customer_codes[k] for k in ("ann", "bob"))
    beans, mug = (data.item_codes[i] for i in ("beans", "mug"))
    a = rows.loc[(ann, beans)]
    assert (a.orders, a.first_days, a.last_days) == (3, 30, 10)
    assert a.interval_days == 10 and a.due == 1.0  # 10 days since, every 10 days
    assert a.orders_since == 0 and a.in_last_5 == 3 and a.share == 1.0
    assert a.decay_14 == pytest.approx(0.5 ** (10 / 14) + 0.5 ** (20 / 14) + 0.5 ** (30 / 14))
    m = rows.loc[(ann, mug)]
    assert (m.orders, m.orders_since, m.share) == (1, 1, pytest.approx(1 / 3))
    assert np.isnan(m.interval_days)
    # the item figures count everybody: beans has 2 buyers, both in the last 30 days, and
    # half of them (ann) bought it more than once
    assert (a.item_buyers, a.item_buyers_30, a.item_repeat_share) == (2, 2, 0.5)
    assert rows.loc[(bob, beans)].customer_orders == 1
    assert a.orders_rank == 1.0 and m.orders_rank == 0.5  # within ann's items, 1 = most


def test_line_order_does_not_change_the_data() -> None:
    # The warehouse returns grouped rows in any order; two orders of one customer on the same
    # day are told apart by their ids, so "orders since" is the same whichever comes first.
    lines = pd.DataFrame(
        [
            ("ann", "src", "o1", 30, "beans"),
            ("ann", "src", "o2", 10, "mug"),
            ("ann", "src", "o3", 10, "beans"),
            ("bob", "src", "o4", 1, "mug"),
            ("bob", "src", "o4", 1, "beans"),
        ],
        columns=["customer_key", "_source", "order_id", "age_days", "sku"],
    ).assign(is_return=False, quantity=1.0)

    def assemble(frame: pd.DataFrame) -> Interactions:
        return _assemble(
            AS_OF,
            frame,
            products=pd.DataFrame({"sku": []}),
            listed=pd.DataFrame({"sku": [], "listed_days": []}),
            sales_days=frame[["sku", "age_days"]].drop_duplicates(),
            customers=pd.DataFrame({"customer_key": ["ann", "bob"], "customer_id": ["a", "b"]}),
            stock_days=90,
        )

    first = assemble(lines)
    again = assemble(lines.iloc[::-1].reset_index(drop=True))
    pd.testing.assert_frame_equal(first.purchases, again.purchases)
    rows = replenishment_features(first).set_index(["customer", "item"])
    ann = first.customer_codes["ann"]
    mug, beans = (first.item_codes[i] for i in ("mug", "beans"))
    assert rows.loc[(ann, beans), "orders_since"] == 0  # o3, the later id of the same day
    assert rows.loc[(ann, mug), "orders_since"] == 1
    pd.testing.assert_frame_equal(rows, replenishment_features(again).set_index(rows.index.names))
