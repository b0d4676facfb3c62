"""profile_view: the 360° view, looked up by any id, with PII masked by default."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from profile_fixtures import at, load, write_identity

from jingzhun.core import EngineSettings, NotFoundError, Target
from jingzhun.engine import Engine, connect
from jingzhun.profile import build_profiles, mask_email, mask_name, mask_phone, profile_view

AS_OF = dt.date(2024, 6, 30)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    with connect(EngineSettings(), tmp_path_factory.mktemp("view")) as engine:
        load(
            engine,
            Target.CUSTOMERS,
            [
                {
                    "customer_id": "c1",
                    "email": "li.wei@example.com",
                    "phone": "+86 138 0013 8000",
                    "first_name": "伟",
                    "last_name": "王",
                    "birth_date": dt.date(1990, 5, 4),
                },
                {"customer_id": "c2", "email": "shared@example.com", "phone": "020 7946 0958"},
                {"customer_id": "c3", "email": "shared@example.com"},
            ],
            source="crm",
        )
        orders = [
            {
                "order_id": f"o{i:02d}",
                "customer_id": "c1",
                "ordered_at": at("2024-06-01", i % 24),
                "total_amount": 10 + i,
            }
            for i in range(12)
        ]
        orders.append(
            {
                "order_id": "future",
                "customer_id": "c1",
                "ordered_at": at("2024-07-02"),
                "total_amount": 1,
            }
        )
        load(engine, Target.ORDERS, orders)
        load(
            engine,
            Target.EVENTS,
            [
                {
                    "event_id": f"e{i:02d}",
                    "event_type": "page",
                    "occurred_at": at("2024-06-10", i),
                    "anonymous_id": "device-123456",
                }
                for i in range(11)
            ],
            source="web",
        )
        write_identity(
            engine,
            [
                ("crm", "c1", "customer", "k1"),
                ("shop", "c1", "customer", "k1"),
                ("web", "device-123456", "anonymous", "k1"),
                ("crm", "c2", "customer", "k2"),
                ("crm", "c3", "customer", "k3"),
            ],
        )
        build_profiles(engine, as_of=AS_OF)
        yield engine


def test_masks() -> None:
    assert mask_email("li.wei@example.com") == "li***@example.com"
    assert mask_email("a@b.cn") == "a***@b.cn"
    assert mask_phone("+86 138 0013 8000") == "+86 138****8000"
    assert mask_phone("0086-13800138000") == "+86 138****8000"
    assert mask_phone("13800138000") == "138****8000"
    assert mask_phone("12") == "****"
    assert mask_name("王伟") == "王*"
    assert mask_name("王") == "王*"
    assert mask_name("Margaret") == "M***"


def test_view_by_key_id_email_and_phone(built: Engine) -> None:
    view = profile_view(built, "k1")
    for wanted in ("c1", "device-123456", "LI.WEI@example.com ", "138-0013-8000", "+8613800138000"):
        assert profile_view(built, wanted) == view
    assert view["customer_key"] == "k1" and view["as_of"] == "2024-06-30"
    assert view["attributes"]["email"] == "li***@example.com"
    assert view["attributes"]["phone"] == "+86 138****8000"
    assert (view["attributes"]["first_name"], view["attributes"]["last_name"]) == ("伟*", "王*")
    assert view["attributes"]["birth_date"] == "1990-**-**"
    assert view["identifiers"] == [
        {"source": "web", "kind": "anonymous", "id": "dev***456"},
        {"source": "crm", "kind": "customer", "id": "**"},
        {"source": "shop", "kind": "customer", "id": "**"},
    ]
    assert view["tags"]["orders"] == 12 and view["tags"]["rfm_segment"] is not None
    assert len(view["recent_orders"]) == 10 and len(view["recent_events"]) == 10
    # Newest first; the order after as_of is not there.
    assert [o["order_id"] for o in view["recent_orders"][:2]] == ["o11", "o10"]
    assert view["recent_events"][0]["occurred_at"] == "2024-06-10T10:00:00+00:00"
    json.dumps(view)  # plain values only
    text = json.dumps(view, ensure_ascii=False)
    assert "li.wei@" not in text and "0013" not in text


def test_unmasked_view_for_allowed_users(built: Engine) -> None:
    view = profile_view(built, "c1", mask_pii=False)
    assert view["attributes"]["email"] == "li.wei@example.com"
    assert view["attributes"]["birth_date"] == "1990-05-04"
    assert {i["id"] for i in view["identifiers"]} == {"c1", "device-123456"}


def test_unknown_and_ambiguous_ids(built: Engine, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no customer found"):
        profile_view(built, "nobody@example.com")
    with pytest.raises(
        NotFoundError, match="belongs to 2 customers; give one of their customer_keys: k2, k3"
    ):
        profile_view(built, "shared@example.com")
    assert profile_view(built, "+44 20 7946 0958")["customer_key"] == "k2"
    with (
        connect(EngineSettings(), tmp_path) as empty,
        pytest.raises(NotFoundError, match="no profiles yet"),
    ):
        profile_view(empty, "k1")
