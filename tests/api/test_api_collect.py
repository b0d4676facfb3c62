"""Segment-compatible collection: acknowledgement, dedupe, validation, limits, the loader."""

from __future__ import annotations

import contextlib
import gzip
import json
from pathlib import Path

from api_support import BANK_AS_OF, basic, bearer

from helpers import project_warehouse
from jingzhun.api import COLLECT_SOURCE
from jingzhun.engine import Engine


def _track(message_id: str, **extra: object) -> dict[str, object]:
    return {"userId": "B0001", "event": "Order Completed", "messageId": message_id, **extra}


def test_a_track_is_stored_before_the_200_and_a_repeated_message_id_is_dropped(
    bare_project: Path, serve
) -> None:
    served = serve(bare_project)
    key = served.key("collect")
    for _ in range(2):
        answer = served.client.post("/v1/track", json=_track("m-1"), headers=basic(key))
        assert answer.status_code == 200
        assert answer.json() == {"success": True}
    assert served.context.log.has("m-1")
    assert served.context.log.stats()["stored"] == 1


def test_every_call_type_is_accepted(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    headers = basic(served.key("collect"))
    calls = {
        "identify": {"userId": "u1", "traits": {"email": "a@b.co"}},
        "page": {"anonymousId": "a1", "name": "Home"},
        "screen": {"anonymousId": "a1", "name": "Cart"},
        "alias": {"userId": "u1", "previousId": "a1"},
        "group": {"userId": "u1", "groupId": "g1"},
        "track": {"userId": "u1", "event": "Signed Up"},
    }
    for n, (kind, body) in enumerate(calls.items()):
        answer = served.client.post(
            f"/v1/{kind}", json={**body, "messageId": f"c{n}"}, headers=headers
        )
        assert answer.status_code == 200, (kind, answer.text)
    assert served.context.log.stats()["stored"] == len(calls)


def test_an_invalid_event_gets_a_400_that_lists_each_problem(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    answer = served.client.post(
        "/v1/track",
        json={"event": "", "timestamp": "yesterday", "properties": [1]},
        headers=basic(served.key("collect")),
    )
    assert answer.status_code == 400
    paths = {e["path"] for e in answer.json()["errors"]}
    assert paths == {"userId", "event", "timestamp", "properties"}
    assert served.context.log.stats()["stored"] == 0


def test_a_batch_stores_its_valid_messages_and_names_the_invalid_ones(
    bare_project: Path, serve
) -> None:
    served = serve(bare_project)
    batch = {
        "batch": [
            {"type": "track", **_track("b-1")},
            {"type": "track", "userId": "B2", "messageId": "b-2"},
            {"type": "wave", "userId": "B3", "messageId": "b-3"},
            {"type": "identify", "userId": "B4", "messageId": "b-4"},
        ],
        "context": {"library": {"name": "analytics-python"}},
    }
    answer = served.client.post("/v1/batch", json=batch, headers=basic(served.key("collect")))
    assert answer.status_code == 400
    body = answer.json()
    assert body["stored"] == 2
    assert [e["path"] for e in body["errors"]] == ["batch[1].event", "batch[2].type"]
    assert served.context.log.has("b-1") and served.context.log.has("b-4")
    stored = served.context.log.after(0, 10)
    assert json.loads(stored[0].body)["context"]["library"]["name"] == "analytics-python"


def test_size_limits_32_kb_an_event_and_500_kb_a_batch(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    headers = basic(served.key("collect"))
    big = "x" * (33 * 1024)
    one = served.client.post(
        "/v1/track", json=_track("s-1", properties={"p": big}), headers=headers
    )
    assert one.status_code == 400
    assert "bytes" in one.json()["errors"][0]["message"]
    in_batch = served.client.post(
        "/v1/batch",
        json={"batch": [{"type": "track", **_track("s-2", properties={"p": big})}]},
        headers=headers,
    )
    assert in_batch.status_code == 400
    assert in_batch.json()["errors"][0]["path"] == "batch[0]"
    messages = [
        {"type": "track", **_track(f"s-{i}", properties={"p": "y" * 30_000})} for i in range(20)
    ]
    too_big = served.client.post("/v1/batch", json={"batch": messages}, headers=headers)
    assert too_big.status_code == 400
    assert "larger than 512,000 bytes" in too_big.json()["errors"][0]["message"]
    assert served.context.log.stats()["stored"] == 0


def test_write_key_as_basic_user_bearer_body_field_and_gzip(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    key = served.key("collect")
    assert served.client.post("/v1/track", json=_track("w-1")).status_code == 401
    reader = served.key("read")
    assert (
        served.client.post("/v1/track", json=_track("w-2"), headers=basic(reader)).status_code
        == 403
    )
    assert (
        served.client.post("/v1/track", json=_track("w-3"), headers=bearer(key)).status_code == 200
    )
    body = {"batch": [{"type": "track", **_track("w-4")}], "writeKey": key}
    assert served.client.post("/v1/batch", json=body).status_code == 200
    packed = gzip.compress(json.dumps({"batch": [{"type": "track", **_track("w-5")}]}).encode())
    answer = served.client.post(
        "/v1/batch",
        content=packed,
        headers={**basic(key), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert answer.status_code == 200
    assert [served.context.log.has(f"w-{i}") for i in range(1, 6)] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_not_json_and_wrong_shapes_are_400_not_500(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    headers = {**basic(served.key("collect")), "Content-Type": "application/json"}
    for body in (b"{", b"[]", b"null", b"\xff\xfe", b"[" * 100_000, b'{"batch": 3}'):
        for path in ("/v1/track", "/v1/batch"):
            answer = served.client.post(path, content=body, headers=headers)
            assert answer.status_code == 400, (path, body[:10], answer.text)


def _warehouse(project: Path) -> contextlib.AbstractContextManager[Engine]:
    return project_warehouse(project)


def test_collected_events_reach_the_warehouse_and_update_profiles_and_segment_changes(
    bank: Path, serve
) -> None:
    served = serve(bank)
    key = served.key("collect")
    # B0003 has no card payments: five large debit payments make it a big spender
    # (examples/bank/segments/big_spenders.yml: > 1,000 in 90 days, or 4 payments).
    batch = [
        {
            "type": "track",
            "userId": "B0003",
            "event": "card_payment",
            "messageId": f"pay-{i}",
            "timestamp": f"2024-06-2{i}T10:00:00.123456Z",
            "properties": {"card_type": "debit", "amount": 900},
        }
        for i in range(5)
    ]
    batch.append(
        {
            "type": "identify",
            "userId": "N0001",
            "messageId": "id-1",
            "traits": {"email": "New.One@Example.com", "name": "New One", "plan": "gold"},
        }
    )
    assert (
        served.client.post("/v1/batch", json={"batch": batch}, headers=basic(key)).status_code
        == 200
    )
    result = served.context.loader.run_once()
    assert result.error is None, result.error
    assert (result.events_loaded, result.customers_loaded, result.refreshed) == (6, 1, True)
    assert served.context.log.stats()["waiting"] == 0

    with _warehouse(bank) as engine:
        events = engine.read("raw_events")
        mine = engine.execute(
            events.filter(events._source == COLLECT_SOURCE).select(
                "event_id", "event_type", "customer_id", "occurred_at", "_file", "_batch_id"
            )
        ).to_pylist()
        assert sorted(r["event_id"] for r in mine) == ["id-1", *(f"pay-{i}" for i in range(5))]
        assert all(r["_file"].startswith("state/collect/batches/events-") for r in mine)
        first = next(r for r in mine if r["event_id"] == "pay-0")
        assert first["occurred_at"].isoformat() == "2024-06-20T10:00:00.123456+00:00"
        customers = engine.read("raw_customers")
        (new,) = engine.execute(
            customers.filter(customers._source == COLLECT_SOURCE).select(
                "customer_id", "email", "first_name", "last_name", "attributes"
            )
        ).to_pylist()
        assert (new["customer_id"], new["first_name"], new["last_name"]) == ("N0001", "New", "One")
        assert new["email"] == "New.One@Example.com"
        assert json.loads(new["attributes"]) == {"plan": "gold"}  # personal traits only sealed
        (identify,) = engine.execute(
            events.filter(events.event_id == "id-1").select("properties")
        ).to_pylist()
        assert json.loads(identify["properties"]) == {"plan": "gold"}
        changes = engine.read("segment_changes")
        profiles = engine.read("profiles")
        entered = engine.execute(
            changes.join(profiles, "customer_key")
            .filter(changes.segment == "big_spenders")
            .select(changes.change, changes.as_of)
        ).to_pylist()
    assert {"change": "entered", "as_of": BANK_AS_OF} in entered
    # neither the warehouse nor the collection log (message bodies) holds the e-mail in clear
    folders = (bank / "warehouse", bank / "state" / "collect")
    stored = b"".join(p.read_bytes() for f in folders for p in f.rglob("*") if p.is_file())
    assert b"New.One@Example.com" not in stored and b"new.one@example.com" not in stored

    # Nothing new: a second pass loads nothing. A lost watermark (a crash before it moved)
    # loads the same messages again with a new one: ingest skips the six it has.
    assert served.context.loader.run_once().events_loaded == 0
    served.context.log.set_state("loaded_seq", 0)
    late = _track("late-1")
    assert served.client.post("/v1/track", json=late, headers=basic(key)).status_code == 200
    again = served.context.loader.run_once(refresh=False)
    assert (again.messages, again.events_loaded, again.duplicates) == (7, 1, 6)
    with _warehouse(bank) as engine:
        events = engine.read("raw_events")
        assert engine.scalar(events.filter(events._source == COLLECT_SOURCE).count()) == 7
