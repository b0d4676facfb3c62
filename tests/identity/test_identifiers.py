"""Identifier extraction: latest versions, normalisation, placeholders, masking, events, as_of."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from raw_tables import LOADED, customer, event, load, order

from jingzhun.core import EngineKind, EngineSettings
from jingzhun.engine import Engine, connect
from jingzhun.identity import IdentitySettings, extract_identifiers, node_key, parse_node_key
from jingzhun.identity._identifiers import BLOCKED, NO_HASH_KEY

KEY = b"test-key"


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[Engine]:
    """DuckDB only: these rules are engine-independent Arrow and Ibis code."""
    with connect(EngineSettings(kind=EngineKind.DUCKDB), tmp_path) as engine:
        yield engine


def identifiers(engine: Engine) -> set[tuple[str, str, str, str, str]]:
    rows = engine.execute(engine.read("identifiers")).to_pylist()
    return {(r["node_source"], r["node_id"], r["node_kind"], r["kind"], r["value"]) for r in rows}


def values(engine: Engine, kind: str) -> dict[tuple[str, str], str]:
    return {(s, i): v for s, i, _, k, v in identifiers(engine) if k == kind}


def test_node_keys_round_trip() -> None:
    assert node_key("crm", "1") == "c:crm:1"
    assert node_key("web", "a:b", "anonymous") == "a:web:a:b"  # ids may hold colons
    assert parse_node_key("a:web:a:b") == ("web", "a:b", "anonymous")
    with pytest.raises(ValueError, match="not a node key"):
        parse_node_key("crm:1")


def test_the_latest_version_of_a_customer_record_counts(duck: Engine) -> None:
    load(
        duck,
        customers=[
            customer("crm", "1", email="old@mail.cn", _loaded_at=LOADED, _row_hash="a"),
            customer(
                "crm",
                "1",
                email="new@mail.cn",
                _loaded_at=LOADED + timedelta(days=1),
                _row_hash="b",
            ),
            customer("shop", "1", email="other@mail.cn"),  # another source: another record
        ],
    )
    tables = extract_identifiers(duck, region="CN", hash_key=KEY)
    assert values(duck, "email") == {("crm", "1"): "new@mail.cn", ("shop", "1"): "other@mail.cn"}
    assert tables.counts["customer_id"] == 2
    # An as_of before the second load sees the first version.
    extract_identifiers(duck, region="CN", hash_key=KEY, as_of=LOADED.date())
    assert values(duck, "email")[("crm", "1")] == "old@mail.cn"


def test_emails_and_phones_are_normalised_and_refusals_masked(duck: Engine) -> None:
    load(
        duck,
        customers=[
            customer("crm", "1", email="  Li.Wei@Example.CN ", phone="138-0013-8001"),
            customer("crm", "2", phone="+86 139 1234 5678"),
            customer("crm", "3", email="liwei.at.example.cn", phone="12345"),
        ],
    )
    tables = extract_identifiers(duck, region="CN", hash_key=KEY)
    assert values(duck, "email") == {("crm", "1"): "li.wei@example.cn"}
    assert values(duck, "phone") == {("crm", "1"): "+8613800138001", ("crm", "2"): "+8613912345678"}
    rejects = duck.execute(duck.read("identifier_rejects")).to_pylist()
    assert tables.rejected == 2
    assert {(r["node_id"], r["kind"], r["masked_value"]) for r in rejects} == {
        ("3", "email", "li***"),
        ("3", "phone", "12***"),
    }
    assert {r["reason"] for r in rejects} == {
        "not an e-mail address",
        "not a valid phone number for region CN",
    }
    # The refused values never appear in clear.
    text = repr(rejects)
    assert "liwei.at.example.cn" not in text and "12345" not in text


def test_placeholders_are_refused_in_every_spelling(duck: Engine) -> None:
    load(
        duck,
        customers=[
            customer("crm", "1", phone="13800138000", email="TEST@test.com"),
            customer("crm", "2", phone="+86 138 0013 8000", email="noemail@shop.cn"),
            customer("crm", "3", phone="138-0000-0000", email="store@example.com"),
            customer("crm", "4", phone="13912345678", email="zhang.san@163.com"),
            customer("crm", "5", phone="13700000001"),  # listed by the project below
        ],
    )
    settings = IdentitySettings(blocklist=(*IdentitySettings.blocklist, "137 0000 0001"))
    extract_identifiers(duck, region="CN", hash_key=KEY, settings=settings)
    assert values(duck, "phone") == {("crm", "4"): "+8613912345678"}
    assert values(duck, "email") == {("crm", "4"): "zhang.san@163.com"}
    rejects = duck.execute(duck.read("identifier_rejects")).to_pylist()
    assert len(rejects) == 7
    assert {r["reason"] for r in rejects} == {BLOCKED}


def test_id_numbers_are_kept_only_as_keyed_hashes(duck: Engine) -> None:
    number = "11010519491231002X"
    load(
        duck,
        customers=[
            customer("crm", "1", attributes=f'{{"id_number": "{number.lower()}", "tier": "gold"}}'),
            customer("crm", "2", attributes='{"tier": "gold"}'),
        ],
    )
    extract_identifiers(duck, region="CN", hash_key=KEY)
    expected = hmac.new(KEY, number.encode(), hashlib.sha256).hexdigest()
    assert values(duck, "id_hash") == {("crm", "1"): expected}
    assert number not in repr(identifiers(duck)) and number.lower() not in repr(identifiers(duck))
    # Without a key an ID number is refused, never stored.
    extract_identifiers(duck, region="CN", hash_key=None)
    assert values(duck, "id_hash") == {}
    (reject,) = duck.execute(duck.read("identifier_rejects")).to_pylist()
    assert (reject["reason"], reject["masked_value"]) == (NO_HASH_KEY, "11***")


def test_events_and_orders_name_nodes_and_links(duck: Engine) -> None:
    load(
        duck,
        events=[
            event("e1", "identify", customer_id="W1", anonymous_id="A1"),
            event("e2", "page", anonymous_id="A1"),
            event("e3", "product_viewed", customer_id="W2", anonymous_id="A2"),
            event(
                "e4",
                "alias",
                customer_id="W1",
                anonymous_id="A3",
                properties='{"previous_id":"A4"}',
            ),
            event("e5", "alias", anonymous_id="A5", properties='{"previousId": "A6"}'),
            event("e6", "page", anonymous_id="A7"),
        ],
        orders=[order("o1", "W1"), order("o2", None)],
    )
    tables = extract_identifiers(duck, region="CN", hash_key=KEY)
    nodes = {(s, i, n) for s, i, n, _, _ in identifiers(duck)}
    assert nodes == {
        ("web", "W1", "customer"),
        ("web", "W2", "customer"),
        ("shop", "W1", "customer"),
        *{("web", f"A{i}", "anonymous") for i in range(1, 8)},
    }
    links = duck.execute(duck.read("identity_links")).to_pylist()
    assert {(r["node_a"], r["node_b"], r["reason"], r["evidence"]) for r in links} == {
        ("a:web:A1", "c:web:W1", "identify_event", "e1"),
        ("a:web:A2", "c:web:W2", "identify_event", "e3"),  # any event carrying both ids
        ("a:web:A3", "c:web:W1", "alias_event", "e4"),
        ("a:web:A4", "c:web:W1", "alias_event", "e4"),  # Segment's previousId, merged in
        ("a:web:A6", "a:web:A5", "alias_event", "e5"),
    }
    assert tables.counts["links"] == 5


def test_as_of_ignores_later_loads_and_later_events(duck: Engine) -> None:
    later = LOADED + timedelta(days=40)
    early = datetime(2024, 2, 1, tzinfo=UTC)  # the event feed is loaded daily
    load(
        duck,
        customers=[customer("crm", "1", email="a@b.cn"), customer("crm", "2", _loaded_at=later)],
        events=[
            event("e1", "identify", customer_id="W1", anonymous_id="A1", _loaded_at=early),
            event(
                "e2",
                "identify",
                customer_id="W2",
                anonymous_id="A2",
                occurred_at=datetime(2024, 2, 20, 23, 30, tzinfo=UTC),  # 21 Feb in Shanghai
                _loaded_at=early,
            ),
        ],
    )
    settings = IdentitySettings(timezone="Asia/Shanghai")
    extract_identifiers(duck, region="CN", hash_key=KEY, as_of=date(2024, 3, 1), settings=settings)
    nodes = {(s, i) for s, i, _, _, _ in identifiers(duck)}
    assert nodes == {("crm", "1"), ("web", "W1"), ("web", "A1"), ("web", "W2"), ("web", "A2")}
    extract_identifiers(duck, region="CN", hash_key=KEY, as_of=date(2024, 2, 20), settings=settings)
    assert {(s, i) for s, i, _, _, _ in identifiers(duck)} == {("web", "W1"), ("web", "A1")}


def test_missing_raw_tables_give_empty_identifiers(duck: Engine) -> None:
    tables = extract_identifiers(duck, region="GB", hash_key=KEY)
    assert tables.counts == {"links": 0}
    assert duck.count("identifiers") == 0


def test_settings_check_their_values() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        IdentitySettings(max_nodes_per_identifier=1)
    with pytest.raises(ValueError, match="review_threshold <= merge_threshold"):
        IdentitySettings(review_threshold=0.99, merge_threshold=0.9)
    assert IdentitySettings().cutoff(None) is None
    assert IdentitySettings(timezone="Asia/Shanghai").cutoff(date(2024, 3, 1)) == datetime(
        2024, 3, 1, 16, 0, tzinfo=UTC
    )


def test_arrow_columns_of_identifiers(duck: Engine) -> None:
    load(duck, customers=[customer("crm", "1", email="a@b.cn")])
    extract_identifiers(duck, region="CN", hash_key=KEY)
    schema = duck.execute(duck.read("identifiers")).schema
    assert schema.names == ["node_source", "node_id", "node_kind", "kind", "value"]
    assert all(t == pa.string() for t in schema.types)
