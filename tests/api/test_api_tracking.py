"""Open pixel, click redirects, RFC 8058 one-click unsubscribe and the preference centre."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from api_support import SECRET
from sqlalchemy import select

from jingzhun.delivery import Tracker
from jingzhun.store import Consent, Delivery, Suppression

KEY = "spring_sale:ck_42:email"


def _delivered(served) -> Tracker:
    now = datetime.now(UTC)
    with served.context.store.session(write=True) as session:
        session.add(
            Delivery(
                idempotency_key=KEY,
                campaign="spring_sale",
                customer_key="ck_42",
                channel="email",
                address="Ann@Example.com",
                message_id="<jz.abc@shop.example>",
                status="sent",
                attempts=1,
                created_at=now,
                updated_at=now,
            )
        )
    return Tracker(
        SECRET,
        tracking_base_url="http://testserver",
        unsubscribe_base_url="http://testserver/unsubscribe",
    )


def _events(served) -> list[dict]:
    return [json.loads(r.body) for r in served.context.log.after(0, 100)]


def test_an_open_is_recorded_with_the_properties_measurement_reads(
    bare_project: Path, serve
) -> None:
    served = serve(bare_project)
    tracker = _delivered(served)
    path = tracker.open_url(KEY).removeprefix("http://testserver")
    answer = served.client.get(path)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
    assert answer.content.startswith(b"GIF89a")
    (event,) = _events(served)
    assert event["event"] == "email_open"
    assert event["properties"] == {
        "message_id": "<jz.abc@shop.example>",
        "campaign": "spring_sale",
        "customer_key": "ck_42",
        "url": None,
        "idempotency_key": KEY,
    }
    forged = served.client.get(path.replace(".gif", "x.gif"))
    assert forged.status_code == 200 and len(_events(served)) == 1


def test_a_click_redirects_only_to_the_signed_url(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    tracker = _delivered(served)
    target = "https://shop.example/spring?utm=mail"
    path = tracker.click_url(KEY, target).removeprefix("http://testserver")
    answer = served.client.get(path, follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == target
    (event,) = _events(served)
    assert (event["event"], event["properties"]["url"]) == ("email_click", target)
    token = path.split("?")[0]
    evil = served.client.get(
        f"{token}?u={quote('https://evil.example/', safe='')}", follow_redirects=False
    )
    assert evil.status_code == 400
    open_token = tracker.open_url(KEY).split("/o/")[1].removesuffix(".gif")
    unsigned = served.client.get(
        f"/c/{open_token}?u={quote(target, safe='')}", follow_redirects=False
    )
    assert unsigned.status_code == 400
    assert len(_events(served)) == 1


def test_one_click_unsubscribe_withdraws_consent_and_suppresses_at_once(
    bare_project: Path, serve
) -> None:
    served = serve(bare_project)
    tracker = _delivered(served)
    path = tracker.unsubscribe_url(KEY).removeprefix("http://testserver")
    page = served.client.get(path)  # a GET (mail scanners) changes nothing
    assert page.status_code == 200 and "List-Unsubscribe" in page.text
    with served.context.store.session() as session:
        assert session.scalars(select(Consent)).all() == []
    for _ in range(2):  # RFC 8058 POST, twice: one withdrawal, one suppression
        answer = served.client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 200
    with served.context.store.session() as session:
        consents = session.scalars(select(Consent)).all()
        suppressed = session.scalars(select(Suppression)).all()
        assert [(c.subject_kind, c.subject, c.purpose, c.channel, c.status) for c in consents] == [
            ("customer_key", "ck_42", "marketing", "email", "withdrawn")
        ]
        assert [(s.channel, s.address, s.reason) for s in suppressed] == [
            ("email", "ann@example.com", "unsubscribe")
        ]
    events = [e for e in _events(served) if e["event"] == "unsubscribe"]
    assert served.context.log.stats()["stored"] == 1 and len(events) == 1
    assert events[0]["properties"]["customer_key"] == "ck_42"
    bad = served.client.post(path[:-2] + "xx", data={"List-Unsubscribe": "One-Click"})
    assert bad.status_code == 404


def test_the_preference_centre_records_each_changed_toggle(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    tracker = _delivered(served)
    token = tracker.unsubscribe_url(KEY).rsplit("/", 1)[1]
    page = served.client.get(f"/preferences/{token}")
    assert page.status_code == 200 and "marketing.sms" in page.text
    saved = served.client.post(
        f"/preferences/{token}", data={"marketing.email": "on", "personalisation.push": "on"}
    )
    assert saved.status_code == 200 and "2 change(s)" in saved.text
    served.client.post(f"/preferences/{token}", data={"personalisation.push": "on"})
    with served.context.store.session() as session:
        rows = session.scalars(select(Consent).order_by(Consent.id)).all()
        assert [(r.purpose, r.channel, r.status) for r in rows] == [
            ("marketing", "email", "granted"),
            ("personalisation", "push", "granted"),
            ("marketing", "email", "withdrawn"),
        ]


def test_without_a_tracking_secret_tracking_answers_503(
    bare_project: Path, serve, monkeypatch
) -> None:
    monkeypatch.delenv("JINGZHUN_TRACKING_SECRET", raising=False)
    served = serve(bare_project, tracking_secret=None)
    assert served.client.get("/c/abc.def?u=https%3A%2F%2Fx.example").status_code == 503
    assert served.client.get("/o/abc.def.gif").status_code == 200  # the pixel always loads
