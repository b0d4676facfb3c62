"""build_profiles on hand-made data: segments, lifecycle, tiers, attributes, as_of, history."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from profile_fixtures import at, by_key, load, rows_of, write_identity

from jingzhun.core import EngineSettings, Target
from jingzhun.engine import Engine, connect
from jingzhun.profile import (
    LifecycleSettings,
    ProfileSettings,
    TagSpec,
    build_profiles,
    identity_map_from_ids,
    load_tag_specs,
)

AS_OF = dt.date(2024, 6, 30)


@pytest.fixture
def duck(tmp_path: Path) -> Engine:
    with connect(EngineSettings(), tmp_path) as engine:
        yield engine


def _days_ago(days: int, as_of: dt.date = AS_OF) -> dt.datetime:
    return at((as_of - dt.timedelta(days=days)).isoformat())


def _orders(spec: dict[str, list[int]]) -> list[dict[str, object]]:
    """Orders of 10.00 each, ``{customer_id: [days ago, ...]}``."""
    rows = []
    for customer, ages in spec.items():
        for i, age in enumerate(ages):
            rows.append(
                {
                    "order_id": f"{customer}-{i}",
                    "customer_id": customer,
                    "ordered_at": _days_ago(age),
                    "total_amount": 10,
                }
            )
    return rows


def _identity(engine: Engine) -> None:
    """The fallback map, written as identity would write it."""
    engine.create("identity_map", identity_map_from_ids(engine).schema().to_pyarrow())
    engine.write("identity_map", identity_map_from_ids(engine, as_of=dt.date(2020, 1, 1)))


def test_named_segments_and_value_tiers(duck: Engine) -> None:
    # Five buyers, so each quintile holds one: R, F and M ranks are chosen per customer.
    load(
        duck,
        Target.ORDERS,
        _orders(
            {
                "a": [1, 20, 30, 40, 50],  # R5 F5 M5 -> Champions
                "b": [400, 410, 420, 430],  # R1 F4 M4 -> Can't lose
                "c": [10],  # R4 F1 M1 -> New
                "d": [50, 60],  # R3 F2 M2 -> Potential loyalist
                "e": [100, 110, 120],  # R2 F3 M3 -> Loyal
            }
        ),
    )
    report = build_profiles(duck, as_of=AS_OF)
    assert report.identity.startswith("fallback")
    got = {k.split(":")[1]: v for k, v in by_key(duck).items()}
    scores = {c: (p["r_score"], p["f_score"], p["m_score"]) for c, p in got.items()}
    assert scores == {
        "a": (5, 5, 5),
        "b": (1, 4, 4),
        "c": (4, 1, 1),
        "d": (3, 2, 2),
        "e": (2, 3, 3),
    }
    assert {c: p["rfm_segment"] for c, p in got.items()} == {
        "a": "Champions",
        "b": "Can't lose",
        "c": "New",
        "d": "Potential loyalist",
        "e": "Loyal",
    }
    assert {c: p["value_tier"] for c, p in got.items()} == {
        "a": "high value",
        "b": "dormant",  # last order 400 days ago
        "c": "general",
        "d": "general",
        "e": "potential",
    }
    assert report.segments == {
        "Can't lose": 1,
        "Champions": 1,
        "Loyal": 1,
        "New": 1,
        "Potential loyalist": 1,
    }


def test_ties_split_by_customer_key(duck: Engine) -> None:
    load(duck, Target.ORDERS, _orders({f"c{i:02d}": [5] for i in range(10)}))
    build_profiles(duck, as_of=AS_OF)
    got = by_key(duck)
    ordered = [got[k] for k in sorted(got)]
    assert [p["f_score"] for p in ordered] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [p["m_score"] for p in ordered] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # Recency orders by days descending, then key: the same split.
    assert [p["r_score"] for p in ordered] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_lifecycle_stages(duck: Engine) -> None:
    load(
        duck,
        Target.ORDERS,
        _orders(
            {
                "new": [10],
                "new_edge": [30],
                "active": [200, 50],  # gap 150: not a reactivation
                "reactivated": [400, 30],  # gap 370 > 180 inside the 90-day window
                "at_risk": [300, 120],
                "dormant": [300],
                "churned": [400],
                "churned_edge": [366],
                "dormant_edge": [365],
            }
        ),
    )
    returned = {"order_id": "r", "customer_id": "returner", "ordered_at": _days_ago(3)}
    load(duck, Target.ORDERS, [{**returned, "is_return": True, "total_amount": -5}])
    load(duck, Target.CUSTOMERS, [{"customer_id": "prospect"}])
    build_profiles(duck, as_of=AS_OF)
    stages = {k.split(":")[1]: p["lifecycle_stage"] for k, p in by_key(duck).items()}
    assert stages == {
        "new": "new",
        "new_edge": "new",
        "active": "active",
        "reactivated": "reactivated",
        "at_risk": "at risk",
        "dormant": "dormant",
        "dormant_edge": "dormant",
        "churned": "churned",
        "churned_edge": "churned",
        "returner": "prospect",
        "prospect": "prospect",
    }
    # Windows are settings.
    settings = ProfileSettings(
        lifecycle=LifecycleSettings(new_days=5, active_days=60, at_risk_days=250, dormant_days=400)
    )
    build_profiles(duck, as_of=AS_OF, settings=settings)
    stages = {k.split(":")[1]: p["lifecycle_stage"] for k, p in by_key(duck).items()}
    assert stages["new"] == "active"
    assert stages["at_risk"] == "at risk"
    assert stages["dormant"] == "dormant"
    assert stages["churned"] == "dormant"
    assert stages["reactivated"] == "reactivated"


def test_attributes_reachability_interests_and_scores(duck: Engine) -> None:
    load(
        duck,
        Target.CUSTOMERS,
        [
            {
                "customer_id": "1",
                "email": " Li.Wei@Example.com",
                "phone": "+86 138 0013 8000",
                "first_name": "伟",
                "last_name": "李",
                "birth_date": dt.date(1990, 7, 1),  # 33 on 2024-06-30, 34 the day after
                "gender": "f",
                "push_consent": True,
            },
            {"customer_id": "2", "email": "no-at-sign", "phone": "12345", "gender": "m"},
        ],
        source="crm",
        loaded_at=at("2020-01-01"),
    )
    # A later shop record: newer, but crm is trusted first; its city fills the gap.
    load(
        duck,
        Target.CUSTOMERS,
        [{"customer_id": "1", "email": "other@example.com", "city": "Shanghai", "gender": ""}],
        source="shop",
        loaded_at=at("2023-01-01"),
    )
    categories = {"A": "apparel", "E": "electronics", "T": "toys", "G": "grocery"}
    load(duck, Target.PRODUCTS, [{"sku": k, "category": v} for k, v in categories.items()])
    load(
        duck,
        Target.ORDERS,
        [{"order_id": "o1", "customer_id": "1", "ordered_at": _days_ago(0), "total_amount": 30}],
        source="shop",
    )
    load(
        duck,
        Target.ORDER_ITEMS,
        [
            {"order_id": "o1", "line_number": 1, "sku": "E", "quantity": 1, "unit_price": 20},
            {"order_id": "o1", "line_number": 2, "sku": "T", "quantity": 1, "unit_price": 10},
        ],
        source="shop",
    )
    load(
        duck,
        Target.EVENTS,
        [
            {
                "event_id": "v1",
                "event_type": "product_viewed",
                "occurred_at": _days_ago(0),
                "anonymous_id": "dev",
                "sku": "A",
            },
            {
                "event_id": "v2",
                "event_type": "product_viewed",
                "occurred_at": _days_ago(90),
                "anonymous_id": "dev",
                "sku": "G",
            },
            {
                "event_id": "c1",
                "event_type": "added_to_cart",
                "occurred_at": _days_ago(30),
                "anonymous_id": "dev",
                "sku": "A",
            },
            {
                "event_id": "i1",
                "event_type": "identify",
                "occurred_at": _days_ago(30),
                "anonymous_id": "dev",
                "customer_id": "1",
            },
            {
                "event_id": "x1",
                "event_type": "checkout_started",
                "occurred_at": _days_ago(14),
                "customer_id": "1",
            },
        ],
        source="web",
    )
    write_identity(
        duck,
        [
            ("crm", "1", "customer", "k1"),
            ("shop", "1", "customer", "k1"),
            ("web", "dev", "anonymous", "k1"),
            ("crm", "2", "customer", "k2"),
        ],
    )
    settings = ProfileSettings(source_priority=["crm", "shop"])
    build_profiles(duck, as_of=AS_OF, settings=settings)
    p1, p2 = by_key(duck)["k1"], by_key(duck)["k2"]
    assert (p1["email"], p1["city"], p1["gender"]) == ("Li.Wei@Example.com", "Shanghai", "f")
    assert (p1["identifiers"], p2["identifiers"]) == (3, 1)
    assert (p1["has_valid_email"], p1["has_valid_phone"], p1["has_push"]) == (True, True, True)
    assert (p2["has_valid_email"], p2["has_valid_phone"], p2["has_push"]) == (False, False, False)
    assert (p1["age"], p1["age_band"], p2["age"], p2["age_band"]) == (33, "25-34", None, None)
    assert p1["events"] == 5 and p2["events"] == 0
    # Affinity: electronics 5 (bought today), apparel 1 + 2 x 0.5^(30/90) = 2.587,
    # toys 5 ... tie with electronics broken by name; grocery 1 x 0.5 = 0.5.
    assert (p1["interest_1"], p1["interest_2"], p1["interest_3"]) == (
        "electronics",
        "toys",
        "apparel",
    )
    # Activity: identify is ignored; 1 + 0.5^3 + 0.5^1 + 0.5^(14/30) = 2.3503 weighted events.
    weighted = 1 + 0.5**3 + 0.5 + 0.5 ** (14 / 30)
    assert p1["activity_score"] == round(100 * (1 - 0.5 ** (weighted / 10)), 2)
    # Lead: viewed today 1, cart 30 days ago 5 x 0.5^(30/14), checkout 10 x 0.5^(14/14).
    lead = 1 + 0.5 ** (90 / 7) + 5 * 0.5 ** (30 / 14) + 10 * 0.5
    assert p1["lead_score"] == round(lead, 2)
    assert p2["activity_score"] == 0 and p2["lead_score"] == 0
    # Priority reversed: the shop record's e-mail wins.
    build_profiles(duck, as_of=AS_OF, settings=ProfileSettings(source_priority=["shop"]))
    assert by_key(duck)["k1"]["email"] == "other@example.com"
    # No priority: the most recently loaded record first.
    build_profiles(duck, as_of=AS_OF)
    assert by_key(duck)["k1"]["email"] == "other@example.com"
    assert by_key(duck)["k1"]["gender"] == "f"  # the blank shop value does not count


def test_as_of_leaves_out_later_orders_events_and_loads(duck: Engine) -> None:
    load(duck, Target.ORDERS, _orders({"a": [3, 1]}))
    late = {
        "order_id": "late",
        "customer_id": "a",
        "ordered_at": at("2024-07-01", 0),
        "total_amount": 99,
    }
    edge = {
        "order_id": "edge",
        "customer_id": "a",
        "ordered_at": at("2024-06-30", 23),
        "total_amount": 1,
    }
    load(duck, Target.ORDERS, [late, edge], batch="b2")
    # Loaded on 2024-07-02: a build as of 2024-06-30 did not see it.
    load(
        duck,
        Target.ORDERS,
        [
            {
                "order_id": "backfill",
                "customer_id": "a",
                "ordered_at": _days_ago(5),
                "total_amount": 7,
            }
        ],
        loaded_at=at("2024-07-02"),
        batch="b3",
    )
    build_profiles(duck, as_of=AS_OF)
    (p,) = by_key(duck).values()
    assert (p["orders"], str(p["revenue"]), p["recency_days"]) == (3, "21.0000", 0)
    build_profiles(duck, as_of=AS_OF, settings=ProfileSettings(include_late_loads=True))
    (p,) = by_key(duck).values()
    assert (p["orders"], str(p["revenue"])) == (4, "28.0000")
    build_profiles(duck, as_of=dt.date(2024, 6, 29))
    (p,) = by_key(duck).values()
    assert (p["orders"], p["recency_days"], p["as_of"]) == (2, 0, dt.date(2024, 6, 29))


def test_identity_build_is_chosen_by_as_of(duck: Engine) -> None:
    load(duck, Target.ORDERS, _orders({"x": [1], "y": [2]}))
    old = [("shop", "x", "customer", "k-old-x"), ("shop", "y", "customer", "k-old-y")]
    merged = [("shop", "x", "customer", "k-xy"), ("shop", "y", "customer", "k-xy")]
    write_identity(duck, old, as_of=dt.date(2024, 1, 1))
    write_identity(duck, merged, as_of=dt.date(2024, 6, 30), built_at=at("2024-07-01"))
    report = build_profiles(duck, as_of=AS_OF)
    assert sorted(by_key(duck)) == ["k-xy"]
    assert by_key(duck)["k-xy"]["orders"] == 2
    assert "as of 2024-06-30" in report.identity
    build_profiles(duck, as_of=dt.date(2024, 6, 29))
    assert sorted(by_key(duck)) == ["k-old-x", "k-old-y"]


def test_tag_history_across_builds_and_idempotent_rebuild(duck: Engine) -> None:
    load(duck, Target.ORDERS, _orders({"a": [10], "b": [70, 80]}))
    _identity(duck)
    tags = [
        TagSpec("two_plus", "boolean", "orders >= 2"),
        TagSpec("spend_band", "string", "CASE WHEN revenue >= 20 THEN 'high' ELSE 'low' END"),
    ]
    first = build_profiles(duck, as_of=AS_OF, tags=tags)
    assert first.history_opened == first.history_rows and first.history_closed == 0
    profiles_1 = rows_of(duck, "profiles", "customer_key")
    history_1 = rows_of(duck, "tag_history", "customer_key", "tag", "valid_from")
    # Rebuilding the same date writes the same rows.
    again = build_profiles(duck, as_of=AS_OF, tags=tags)
    assert rows_of(duck, "profiles", "customer_key") == profiles_1
    assert rows_of(duck, "tag_history", "customer_key", "tag", "valid_from") == history_1
    assert again.history_rows == first.history_rows

    # 31 days later a new order for a; b slides from active (70 days) to at risk (101 days).
    later = dt.date(2024, 7, 31)
    new_order = {"order_id": "a-new", "customer_id": "a", "ordered_at": at("2024-07-20")}
    load(duck, Target.ORDERS, [{**new_order, "total_amount": 15}], batch="b2")
    second = build_profiles(duck, as_of=later, tags=tags)
    history = rows_of(duck, "tag_history", "customer_key", "tag", "valid_from")
    a_key, b_key = "ck_shop:a", "ck_shop:b"

    def spans(key: str, tag: str) -> list[tuple[str, dt.date, dt.date | None]]:
        return [
            (r["value"], r["valid_from"], r["valid_to"])
            for r in history
            if r["customer_key"] == key and r["tag"] == tag
        ]

    assert spans(a_key, "two_plus") == [("false", AS_OF, later), ("true", later, None)]
    assert spans(a_key, "spend_band") == [("low", AS_OF, later), ("high", later, None)]
    assert spans(a_key, "lifecycle_stage") == [("new", AS_OF, later), ("active", later, None)]
    assert spans(b_key, "lifecycle_stage") == [("active", AS_OF, later), ("at risk", later, None)]
    assert spans(b_key, "two_plus") == [("true", AS_OF, None)]  # unchanged: still open
    assert spans(b_key, "spend_band") == [("high", AS_OF, None)]
    assert second.history_closed == sum(1 for r in history if r["valid_to"] == later)
    # At most one open row per customer and tag.
    open_rows = [(r["customer_key"], r["tag"]) for r in history if r["valid_to"] is None]
    assert len(open_rows) == len(set(open_rows))

    # Idempotent at the later date too.
    build_profiles(duck, as_of=later, tags=tags)
    assert rows_of(duck, "tag_history", "customer_key", "tag", "valid_from") == history
    # Rebuilding the first date rewinds the history to it.
    build_profiles(duck, as_of=AS_OF, tags=tags)
    assert rows_of(duck, "tag_history", "customer_key", "tag", "valid_from") == history_1


def test_custom_tags_from_yaml_with_event_aggregates(duck: Engine, tmp_path: Path) -> None:
    load(duck, Target.ORDERS, _orders({"a": [2, 5, 9], "b": [100]}))
    load(
        duck,
        Target.EVENTS,
        [
            {
                "event_id": f"e{i}",
                "event_type": "email_clicked",
                "occurred_at": _days_ago(age),
                "customer_id": "a",
            }
            for i, age in enumerate([0, 29, 30, 200])
        ],
        source="shop",
    )
    _identity(duck)
    folder = tmp_path / "tags"
    folder.mkdir()
    (folder / "clicker.yml").write_text(
        "name: recent_clicks\ntype: number\nexpression: count_events('email_clicked', 30)\n"
    )
    (folder / "all.yml").write_text(
        "- name: all_clicks\n  type: number\n  expression: count_events('email_clicked')\n"
        "- name: days_since_click\n  type: number\n"
        "  expression: days_since_event('email_clicked')\n"
        "- name: vip\n  type: boolean\n"
        "  expression: orders >= 3 AND recency_days BETWEEN 0 AND 7 AND NOT has_push\n"
        "- name: tier_label\n  type: string\n"
        "  expression: >-\n"
        "    CASE WHEN rfm_segment IN ('Champions', 'Need attention') THEN 'watch'\n"
        "    WHEN COALESCE(recency_days, 999) > 90 THEN 'lapsed' ELSE 'other' END\n"
        "- name: per_order\n  type: number\n"
        "  expression: ROUND(revenue / GREATEST(orders, 1), 2) + ABS(-1) - 1\n",
    )
    tags = load_tag_specs(folder)
    report = build_profiles(duck, as_of=AS_OF, tags=tags)
    assert report.custom_tags == [
        "all_clicks", "days_since_click", "vip", "tier_label", "per_order", "recent_clicks",
    ]  # fmt: skip
    a, b = by_key(duck)["ck_shop:a"], by_key(duck)["ck_shop:b"]
    assert (a["recent_clicks"], a["all_clicks"], a["days_since_click"]) == (2.0, 4.0, 0.0)
    assert (b["recent_clicks"], b["all_clicks"], b["days_since_click"]) == (0.0, 0.0, None)
    assert (a["vip"], b["vip"]) == (True, False)
    # Two buyers: a scores R2 F2 M2 (Need attention), b R1 F1 M1 (Lost, 100 days).
    assert (a["rfm_segment"], b["rfm_segment"]) == ("Need attention", "Lost")
    assert (a["tier_label"], b["tier_label"]) == ("watch", "lapsed")
    assert (a["per_order"], b["per_order"]) == (10.0, 10.0)
    history = rows_of(duck, "tag_history", "customer_key", "tag")
    assert {
        (r["customer_key"], r["tag"], r["value"]) for r in history if r["tag"] == "per_order"
    } == {
        ("ck_shop:a", "per_order", "10.0000"),
        ("ck_shop:b", "per_order", "10.0000"),
    }


def test_no_raw_tables_gives_empty_profiles(duck: Engine) -> None:
    report = build_profiles(duck, as_of=AS_OF)
    assert report.customers == 0
    assert duck.count("profiles") == 0 and duck.count("tag_history") == 0


def test_a_failed_build_loses_nothing(duck: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from jingzhun.profile import _build

    load(duck, Target.ORDERS, _orders({"a": [10], "b": [70, 80]}))
    build_profiles(duck, as_of=AS_OF)
    history = rows_of(duck, "tag_history", "customer_key", "tag", "valid_from")
    profiles = rows_of(duck, "profiles", "customer_key")
    later = dt.date(2024, 7, 31)

    # Stopped while staging: the staged tables go, the stored ones stay.
    def no_history(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(_build, "_stage", no_history)
    with pytest.raises(RuntimeError, match="disk full"):
        build_profiles(duck, as_of=later)
    monkeypatch.undo()
    assert sorted(t for t in duck.tables() if t.startswith("_")) == []
    assert rows_of(duck, "tag_history", "customer_key", "tag", "valid_from") == history

    # Stopped during the swap: the stored tables stay (DuckDB rolls back; Spark may have
    # dropped them), the staged ones are kept and the next build puts them in place first.
    replace = _build._replace

    def failing_replace(engine: Engine, name: str, *args: object) -> None:
        if name == "tag_history":
            raise RuntimeError("killed")
        replace(engine, name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_build, "_replace", failing_replace)
    with pytest.raises(RuntimeError, match="killed"):
        build_profiles(duck, as_of=later)
    monkeypatch.undo()
    assert duck.exists("_profiles_staged")
    assert rows_of(duck, "profiles", "customer_key") == profiles
    report = build_profiles(duck, as_of=later)
    assert any("previous build stopped" in w for w in report.warnings)
    assert sorted(t for t in duck.tables() if t.startswith("_")) == []
    after_recovery = rows_of(duck, "tag_history", "customer_key", "tag", "valid_from")
    build_profiles(duck, as_of=later)
    assert rows_of(duck, "tag_history", "customer_key", "tag", "valid_from") == after_recovery
    assert any(r["valid_to"] == later for r in after_recovery)
