"""The runner on a generated shop: who enrols, what is queued and when, exactly once; consent,
caps and priorities, quiet hours, goals, crash safety; every trigger kind.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from journey_shop import add_events, copy_shop, shared_shop, write_journey
from sqlalchemy import func, select

from jingzhun.campaigns import Channel, ConsentRecord, Purpose, Status
from jingzhun.journeys import runner_for
from jingzhun.journeys._runner import JourneyRunner
from jingzhun.store import (
    JourneyEnrollment,
    JourneyEvent,
    JourneyTag,
    JourneyWatermark,
    QueuedMessage,
)
from jingzhun.workspace import Workspace

NOW = dt.datetime(2024, 4, 20, 12, 0, tzinfo=dt.UTC)
CART = """\
name: cart
trigger: {event: added_to_cart, lookback: 14d}
goal: {event: order}
steps:
  - id: bought
    wait_for: {event: order, within: 1h}
    on_event: end
  - id: reminder
    send:
      channel: email
      template: journey_cart_reminder
      offer: {name: cart_ten, kind: discount_percent, value: 10, valid_days: 7, coupon_prefix: CART}
  - id: reminded
    tag: {name: cart_reminded, value: "yes"}
"""


@pytest.fixture
def project(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    root = copy_shop(shared_shop(tmp_path_factory.getbasetemp()), tmp_path / "shop")
    for path in (root / "journeys").glob("*.yml"):
        path.unlink()  # each test writes the journeys it needs
    return root


def queued(ws: Workspace, journey: str | None = None) -> list[QueuedMessage]:
    with ws.store.session() as session:
        query = select(QueuedMessage).order_by(QueuedMessage.id)
        if journey is not None:
            query = query.where(QueuedMessage.campaign == f"journey:{journey}")
        return list(session.scalars(query).all())


def expected_cart_reminders(ws: Workspace, now: dt.datetime) -> set[str]:
    return reached_reminder(ws, now)[1]


def reached_reminder(ws: Workspace, now: dt.datetime) -> tuple[set[str], set[str]]:
    """The same rule with pandas: first add-to-cart in the 14 days before now, no order
    within the hour after it, the hour over by now, e-mail consent and a valid address.
    """
    engine = ws.engine
    ids = engine.execute(engine.read("identity_map")).to_pandas()
    customers = ids[ids.node_kind == "customer"].drop_duplicates(["node_id"])
    by_id = dict(zip(customers.node_id, customers.customer_key, strict=True))
    devices = ids[ids.node_kind == "anonymous"]
    by_device = {
        (s, d): k
        for s, d, k in zip(devices.node_source, devices.node_id, devices.customer_key, strict=True)
    }
    events = engine.execute(engine.read("raw_events")).to_pandas()
    events["key"] = [
        by_id.get(c) or by_device.get((s, a))
        for c, s, a in zip(events.customer_id, events._source, events.anonymous_id, strict=True)
    ]
    start = pd.Timestamp(now - dt.timedelta(days=14))
    end = pd.Timestamp(now)
    carts = events[
        (events.event_type == "added_to_cart")
        & (events.occurred_at > start)
        & (events.occurred_at <= end)
        & events.key.notna()
    ]
    first = carts.sort_values("occurred_at").groupby("key").occurred_at.first()
    orders = engine.execute(engine.read("raw_orders")).to_pandas()
    orders = orders[~orders.is_return.fillna(False).astype(bool)]
    orders["key"] = orders.customer_id.map(by_id)
    profiles = engine.execute(engine.read("profiles")).to_pandas().set_index("customer_key")
    out, reached = set(), set()
    for key, at in first.items():
        hour = at + pd.Timedelta(hours=1)
        if hour > end:
            continue
        mine = orders[(orders.key == key) & (orders.ordered_at > at) & (orders.ordered_at <= hour)]
        if len(mine):
            continue
        reached.add(key)
        row = profiles.loc[key]
        if bool(row.email_consent) and bool(row.has_valid_email):
            out.add(key)
    return reached, out


def test_abandoned_cart_queues_each_reminder_once(project: Path) -> None:
    write_journey(project, "cart", CART)
    with Workspace.open(project) as ws:
        runner = runner_for(ws.project, ws.engine, ws.store)
        report = runner.run(NOW)
        messages = queued(ws, "cart")
        reached, expected = reached_reminder(ws, NOW)
        assert len(expected) >= 5 and len(reached) > len(expected)
        assert {m.customer_key for m in messages} == expected
        assert report.total("queued") == len(expected)
        first = messages[0]
        assert first.idempotency_key == f"journey:cart:reminder:{first.customer_key}:email"
        assert first.channel == "email" and "@" in first.address
        assert first.payload["subject"].endswith("your cart is waiting")
        code = first.payload["offer"]["code"]
        assert code.startswith("CART-") and code in first.payload["text"]
        coupons = ws.engine.execute(ws.engine.read("coupons")).to_pylist()
        assert {c["customer_key"] for c in coupons} == expected
        with ws.store.session() as session:
            tags = session.scalar(select(func.count(JourneyTag.id)))
            enrolled = session.scalar(select(func.count(JourneyEnrollment.id)))
        assert tags == len(reached)  # the tag follows the send, sent or skipped
        # again, and again with the watermark forgotten: nobody enrols or is queued twice
        assert runner.run(NOW).total("queued") == 0
        with ws.store.session(write=True) as session:
            session.query(JourneyWatermark).delete()
        again = runner.run(NOW + dt.timedelta(minutes=5))
        assert again.total("enrolled") == 0 and again.total("queued") == 0
        assert len(queued(ws, "cart")) == len(expected)
        with ws.store.session() as session:
            assert session.scalar(select(func.count(JourneyEnrollment.id))) == enrolled


def test_a_crash_mid_batch_changes_nothing_and_the_rerun_finishes_the_work(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jingzhun.journeys._runner as runner_module

    write_journey(project, "cart", CART)
    with Workspace.open(project) as ws:
        expected = expected_cart_reminders(ws, NOW)
        runner = runner_for(ws.project, ws.engine, ws.store)
        runner.enroll(NOW)

        def state() -> list[tuple[object, ...]]:
            with ws.store.session() as session:
                return [
                    (e.id, e.version, e.state, e.current_step, e.step_started_at, e.next_due_at)
                    for e in session.scalars(
                        select(JourneyEnrollment).order_by(JourneyEnrollment.id)
                    )
                ]

        before = state()
        real_insert = runner_module.insert

        def failing_insert(table: object) -> object:
            if table is runner_module._EVENTS:
                raise RuntimeError("disk full")
            return real_insert(table)

        # a crash inside the batch's transaction leaves the store as it was
        monkeypatch.setattr(runner_module, "insert", failing_insert)
        with pytest.raises(RuntimeError, match="disk full"):
            runner.run_due(NOW)
        assert queued(ws, "cart") == []
        assert state() == before
        monkeypatch.setattr(runner_module, "insert", real_insert)

        # a crash after the commit (storing coupons): the next run queues nothing again
        def crash(self: JourneyRunner, *args: object) -> None:
            raise RuntimeError("power cut")

        original = JourneyRunner._store_coupons
        monkeypatch.setattr(JourneyRunner, "_store_coupons", crash)
        with pytest.raises(RuntimeError, match="power cut"):
            runner.run_due(NOW)
        assert {m.customer_key for m in queued(ws, "cart")} == expected
        monkeypatch.setattr(JourneyRunner, "_store_coupons", original)
        assert runner.run_due(NOW).total("queued") == 0
        assert len(queued(ws, "cart")) == len(expected)


def test_consent_withdrawn_in_the_ledger_stops_the_send(project: Path) -> None:
    write_journey(project, "cart", CART)
    with Workspace.open(project) as ws:
        target = sorted(expected_cart_reminders(ws, NOW))[0]
        ws.campaigns.consents.record(
            [
                ConsentRecord(
                    "customer_key",
                    target,
                    Purpose.MARKETING,
                    Channel.EMAIL,
                    Status.WITHDRAWN,
                    NOW - dt.timedelta(days=30),
                )
            ]
        )
        runner_for(ws.project, ws.engine, ws.store).run(NOW)
        assert target not in {m.customer_key for m in queued(ws, "cart")}
        with ws.store.session() as session:
            details = [
                e.detail
                for e in session.scalars(
                    select(JourneyEvent).where(
                        JourneyEvent.customer_key == target, JourneyEvent.kind == "skipped"
                    )
                )
            ]
        assert details == [{"reason": "no consent", "channel": "email"}]


def test_priority_and_the_frequency_cap_decide_between_journeys(project: Path) -> None:
    body = """\
priority: {priority}
trigger: {{event: added_to_cart, lookback: 14d}}
frequency_caps: {{per_day: 1}}
steps:
  - id: hello
    send: {{channel: email, content: {{subject: "{name}", text: "from {name}"}}}}
"""
    write_journey(project, "low", body.format(priority=10, name="low"))
    write_journey(project, "high", body.format(priority=90, name="high"))
    with Workspace.open(project) as ws:
        runner_for(ws.project, ws.engine, ws.store).run(NOW)
        high = {m.customer_key for m in queued(ws, "high")}
        low = {m.customer_key for m in queued(ws, "low")}
        assert len(high) >= 5
        assert not high & low  # one message a day: the higher priority took it
        with ws.store.session() as session:
            capped = session.scalar(
                select(func.count(JourneyEvent.id)).where(
                    JourneyEvent.journey == "low", JourneyEvent.kind == "skipped"
                )
            )
        assert capped >= len(high) - len(low & high)


def test_quiet_hours_move_sends_to_the_morning_in_the_customers_zone(project: Path) -> None:
    write_journey(
        project,
        "late",
        """\
trigger: {event: added_to_cart, lookback: 14d}
quiet_hours: {start: "21:00", end: "08:00"}
steps:
  - id: hello
    send: {channel: email, content: {subject: "Hi", text: "Hello"}}
""",
    )
    late = dt.datetime(2024, 4, 20, 22, 30, tzinfo=dt.UTC)  # 23:30 in London
    with Workspace.open(project) as ws:
        runner_for(ws.project, ws.engine, ws.store).run(late)
        messages = queued(ws, "late")
        assert messages
        london = ZoneInfo("Europe/London")
        for m in messages:
            assert m.send_at.astimezone(london) == dt.datetime(2024, 4, 21, 8, 0, tzinfo=london)


def test_location_events_near_a_store_enrol_and_far_ones_do_not(project: Path) -> None:
    write_journey(
        project,
        "walk_past",
        """\
trigger: {location: {event: location, radius_m: 150}, lookback: 1h}
stores:
  - {id: covent_garden, lat: 51.5117, lon: -0.1240}
  - {id: manchester, lat: 53.4808, lon: -2.2426}
re_entry: {after_days: 1}
steps:
  - id: coupon
    send: {channel: email, content: {subject: "Nearby!", text: "Pop in: 10% off today"}}
""",
    )
    with Workspace.open(project) as ws:
        ids = ws.engine.read("identity_map")
        rows = ws.engine.execute(
            ids.filter(ids.node_kind == "customer").select("node_id", "customer_key").limit(400)
        ).to_pylist()
        profiles = (
            ws.engine.execute(ws.engine.read("profiles")).to_pandas().set_index("customer_key")
        )
        ok = [
            r
            for r in rows
            if r["customer_key"] in profiles.index
            and profiles.loc[r["customer_key"]].email_consent
            and profiles.loc[r["customer_key"]].has_valid_email
        ]
        near, far, stale = ok[0], ok[1], ok[2]
        at = NOW - dt.timedelta(minutes=20)
        add_events(
            ws.engine,
            [
                # about 90 m from Covent Garden's point
                {
                    "event_id": "loc-1",
                    "event_type": "location",
                    "occurred_at": at,
                    "customer_id": near["node_id"],
                    "properties": json.dumps({"lat": 51.5125, "lon": -0.1240}),
                },
                # about 1.1 km away
                {
                    "event_id": "loc-2",
                    "event_type": "location",
                    "occurred_at": at,
                    "customer_id": far["node_id"],
                    "properties": json.dumps({"lat": 51.5217, "lon": -0.1240}),
                },
                # near, but two hours ago: outside the first run's lookback
                {
                    "event_id": "loc-3",
                    "event_type": "location",
                    "occurred_at": NOW - dt.timedelta(hours=2),
                    "customer_id": stale["node_id"],
                    "properties": json.dumps({"lat": 53.4808, "lon": -2.2426}),
                },
            ],
        )
        report = runner_for(ws.project, ws.engine, ws.store).run(NOW)
        assert report.total("enrolled") == 1
        with ws.store.session() as session:
            enrolment = session.scalars(select(JourneyEnrollment)).one()
        assert enrolment.customer_key == near["customer_key"]
        assert enrolment.context["store"] == "covent_garden"
        assert 80 < enrolment.context["distance_m"] < 100
        assert [m.customer_key for m in queued(ws, "walk_past")] == [near["customer_key"]]


def test_birthdays_are_greeted_at_nine_local_time_once_a_year(project: Path) -> None:
    write_journey(
        project,
        "bday",
        """\
trigger: {birthday: true}
re_entry: {after_days: 300}
steps:
  - id: morning
    wait_until: "09:00"
  - id: greeting
    send: {channel: email, content: {subject: "Happy birthday", text: "Many happy returns"}}
""",
    )
    london = ZoneInfo("Europe/London")
    with Workspace.open(project) as ws:
        profiles = ws.engine.execute(ws.engine.read("profiles")).to_pandas()
        born = profiles[profiles.birth_date.notna()]
        reachable = set(
            born[
                born.email_consent.fillna(False).astype(bool)
                & born.has_valid_email.fillna(False).astype(bool)
            ].customer_key
        )
        # the day of 2024 with the most reachable birthdays
        counts = Counter(
            (d.month, d.day)
            for d, k in zip(born.birth_date, born.customer_key, strict=True)
            if k in reachable and (d.month, d.day) != (2, 29)
        )
        (month, dom), _ = counts.most_common(1)[0]
        day = dt.date(2024, month, dom)
        midnight = dt.datetime.combine(day, dt.time(0, 30), tzinfo=london).astimezone(dt.UTC)
        today = set(
            born[[d.month == day.month and d.day == day.day for d in born.birth_date]].customer_key
        )
        assert len(today & reachable) >= 2
        runner = runner_for(ws.project, ws.engine, ws.store)
        report = runner.run(midnight)
        assert report.total("enrolled") == len(today) and report.total("queued") == 0
        report = runner.run(midnight + dt.timedelta(hours=8, minutes=30))  # 09:00
        messages = queued(ws, "bday")
        assert {m.customer_key for m in messages} == today & reachable
        for m in messages:
            assert m.send_at.astimezone(london).time() == dt.time(9, 0)
        # a year later they are greeted again; the day after, nobody new from today
        assert runner.run(midnight + dt.timedelta(days=1)).journeys["bday"]["queued"] == 0
        next_year = midnight.replace(year=2025)
        runner.run(next_year)  # a year of birthdays since the watermark: everyone's comes round
        with ws.store.session() as session:
            entries = session.execute(
                select(JourneyEnrollment.customer_key, JourneyEnrollment.entry).where(
                    JourneyEnrollment.trigger_id == f"birth_date:{next_year.year}"
                )
            ).all()
        again = {key for key, entry in entries if entry == 2}
        assert again == today


def test_segment_entries_and_schedules_enrol_the_segments_members(project: Path) -> None:
    write_journey(
        project,
        "entered_buyers",
        """\
trigger: {segment: buyers, change: entered}
steps:
  - {id: noted, tag: {name: buyer}}
""",
    )
    write_journey(
        project,
        "weekly",
        """\
trigger: {schedule: {daily_at: "09:00"}, audience: buyers}
re_entry: always
steps:
  - {id: noted, tag: {name: weekly}}
""",
    )
    with Workspace.open(project) as ws:
        members = set(ws.segments.members("buyers"))
        assert members
        now = dt.datetime.now(dt.UTC)  # segment changes carry the build's real time
        runner = runner_for(ws.project, ws.engine, ws.store)
        report = runner.run(now)
        assert report.journeys["entered_buyers"]["enrolled"] == len(members)
        # the last 09:00 London time within the day before now
        assert report.journeys["weekly"]["enrolled"] == len(members)
        again = runner.run(now + dt.timedelta(minutes=1))
        assert again.total("enrolled") == 0
        tomorrow = runner.run(now + dt.timedelta(days=1))
        assert tomorrow.journeys["weekly"]["enrolled"] == len(members)
        assert tomorrow.journeys["entered_buyers"]["enrolled"] == 0
