"""The worker against a real SMTP server: every queued message arrives once, through retries,
rate limits, bounces, a second worker beside it, and a worker killed with SIGKILL mid-run.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from sinks import HttpSink, SmtpSink, lookup_responder
from sqlalchemy import select
from typer.testing import CliRunner

from jingzhun.campaigns import (
    Channel,
    ConsentLedger,
    ConsentRecord,
    Purpose,
    Status,
    SuppressionList,
)
from jingzhun.cli._delivery import register
from jingzhun.core import (
    EngineError,
    NotFoundError,
    SpecError,
    StoreSettings,
    init_project,
    load_project,
)
from jingzhun.delivery import (
    Backoff,
    CallCentreList,
    DeliveryLog,
    HttpMessageLookup,
    HttpSmsChannel,
    OutboundMessage,
    RateLimit,
    SendStatus,
    SmtpChannel,
    Worker,
    build_channels,
    load_delivery_settings,
    render_from_payload,
)
from jingzhun.privacy import seal_store
from jingzhun.store import OperationalStore, QueuedMessage
from jingzhun.store._delivery_models import Delivery

pytestmark = pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")

START = dt.datetime(2024, 7, 1, 9, 0, tzinfo=dt.UTC)


class FakeClock:
    """Time that moves only when the worker sleeps or the test says so."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start
        self.slept = 0.0

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += dt.timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def open_store(root: Path) -> OperationalStore:
    """The store of a folder; of a project, with its key (as jingzhun commands open it)."""
    store = OperationalStore.open(StoreSettings().operational, root)
    store.migrate()
    if (root / "jingzhun.yml").exists():
        seal_store(load_project(root), store)
    return store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[OperationalStore]:
    with open_store(tmp_path) as opened:
        yield opened


def enqueue(
    store: OperationalStore,
    addresses: list[str],
    *,
    campaign: str = "spring",
    channel: str = "email",
    send_at: dt.datetime = START,
    created_at: dt.datetime | None = None,
) -> list[str]:
    keys = []
    with store.session(write=True) as session:
        for i, address in enumerate(addresses):
            key = f"{campaign}:ck_{i:04d}:{channel}"
            keys.append(key)
            session.add(
                QueuedMessage(
                    idempotency_key=key,
                    plan_id=f"{campaign}-plan",
                    campaign=campaign,
                    customer_key=f"ck_{i:04d}",
                    channel=channel,
                    address=address,
                    variant="a",
                    send_at=send_at,
                    payload={
                        "variant": "a",
                        "phase": "all",
                        "subject": f"Spring offer {i}",
                        "text": f"Hello customer {i}",
                        "html": f"<p>Hello customer {i}</p>",
                    },
                    status="queued",
                    created_at=created_at or send_at - dt.timedelta(hours=1),
                )
            )
    return keys


def smtp_channel(sink: SmtpSink, **options: Any) -> SmtpChannel:
    return SmtpChannel(
        "127.0.0.1", sink.port, from_address="news@shop.example", security="none", **options
    )


def statuses(store: OperationalStore) -> tuple[Counter[str], Counter[str]]:
    with store.session() as session:
        deliveries = Counter(session.scalars(select(Delivery.status)).all())
        queue = Counter(session.scalars(select(QueuedMessage.status)).all())
    return deliveries, queue


def addresses(n: int) -> list[str]:
    return [f"customer{i}@example.org" for i in range(n)]


def test_every_message_arrives_once_and_a_second_run_sends_nothing(
    store: OperationalStore,
) -> None:
    keys = enqueue(store, addresses(25))
    enqueue(store, ["later@example.org"], campaign="later", send_at=START + dt.timedelta(days=1))
    clock = FakeClock()
    with SmtpSink() as sink:
        channel = smtp_channel(sink)
        worker = Worker(store, {"email": channel}, batch_size=10, clock=clock)
        report = worker.run_once()
        assert (report.claimed, report.sent, report.failed) == (25, 25, 0)
        assert worker.run_once().claimed == 0
        # another worker (another process) over the same store finds nothing to do either
        other = Worker(store, {"email": smtp_channel(sink)}, clock=clock, worker_id="other")
        assert other.run_once().claimed == 0
        received = sink.message_ids()
    assert sorted(received) == sorted(channel.message_id_for(k) for k in keys)
    assert set(received.values()) == {1}
    assert statuses(store) == (Counter({"sent": 25}), Counter({"sent": 25, "queued": 1}))
    record = DeliveryLog(store).get(keys[0])
    assert record is not None and record.attempts == 1 and record.sent_at == START
    assert record.message_id == channel.message_id_for(keys[0])
    assert record.provider_id is not None and "queued as" in record.provider_id


def test_soft_failures_are_retried_with_seeded_backoff_until_they_arrive_once(
    store: OperationalStore,
) -> None:
    keys = enqueue(store, ["flaky@example.org", "steady@example.org"])
    refusals = Counter[str]()

    def greylist(address: str) -> str | None:
        if address.startswith("flaky") and refusals[address] < 2:
            refusals[address] += 1
            return "451 4.7.1 greylisted"
        return None

    backoff = Backoff(base_seconds=60, max_seconds=600, max_attempts=5, seed=7)
    clock = FakeClock()
    log = DeliveryLog(store)
    with SmtpSink(rcpt_reply=greylist) as sink:
        worker = Worker(store, {"email": smtp_channel(sink)}, backoff=backoff, clock=clock)
        first = worker.run_once()
        assert (first.sent, first.retried) == (1, 1)
        record = log.get(keys[0])
        assert record is not None and record.status == "retry" and record.attempts == 1
        assert record.next_attempt_at == START + dt.timedelta(seconds=backoff.delay(keys[0], 1))
        assert START + dt.timedelta(seconds=30) <= record.next_attempt_at
        assert record.next_attempt_at <= START + dt.timedelta(seconds=60)
        assert "greylisted" in (record.last_error or "")
        assert worker.run_once().claimed == 0  # not due yet
        clock.advance(60)
        assert worker.run_once().retried == 1
        record = log.get(keys[0])
        assert record is not None and record.attempts == 2
        delay = (record.next_attempt_at or START) - clock.now
        assert dt.timedelta(seconds=60) <= delay <= dt.timedelta(seconds=120)  # doubled
        clock.advance(120)
        assert worker.run_once().sent == 1
        assert set(sink.message_ids().values()) == {1} and len(sink.messages) == 2
    record = log.get(keys[0])
    assert record is not None and (record.status, record.attempts) == ("sent", 3)


def test_backoff_is_exponential_capped_jittered_and_seeded() -> None:
    backoff = Backoff(base_seconds=10, max_seconds=100, max_attempts=8, seed=1)
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (6, 100)]:
        delays = [backoff.delay(f"c:{i}:email", attempt) for i in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) == 200  # spread out, not in lockstep
    assert backoff.delay("c:1:email", 2) == Backoff(10, 100, 8, seed=1).delay("c:1:email", 2)
    assert backoff.delay("c:1:email", 2) != Backoff(10, 100, 8, seed=2).delay("c:1:email", 2)


def test_a_message_fails_after_its_last_attempt(store: OperationalStore) -> None:
    (key,) = enqueue(store, ["busy@example.org"])
    clock = FakeClock()
    with SmtpSink(rcpt_reply=lambda address: "450 4.2.1 mailbox busy") as sink:
        worker = Worker(
            store,
            {"email": smtp_channel(sink)},
            backoff=Backoff(base_seconds=1, max_seconds=1, max_attempts=3),
            clock=clock,
        )
        reports = []
        for _ in range(3):
            reports.append(worker.run_once())
            clock.advance(5)
    assert [(r.retried, r.failed) for r in reports] == [(1, 0), (1, 0), (0, 1)]
    record = DeliveryLog(store).get(key)
    assert record is not None and record.status == "failed" and record.attempts == 3
    assert (record.last_error or "").startswith("gave up after 3 attempts")
    assert statuses(store)[1] == Counter({"failed": 1})


def test_rate_limit_spaces_sends_out(store: OperationalStore) -> None:
    enqueue(store, addresses(21))
    clock = FakeClock()
    with SmtpSink() as sink:
        worker = Worker(
            store,
            {"email": smtp_channel(sink)},
            rate_limits={"email": RateLimit(per_second=10, burst=1)},
            batch_size=8,
            clock=clock,
            sleep=clock.sleep,
        )
        assert worker.run_once().sent == 21
        assert len(sink.messages) == 21
    # one token at once, then one every 0.1 s: 20 waits of 0.1 s
    assert clock.slept == pytest.approx(2.0, abs=1e-6)


def test_a_real_rate_limit_holds_on_the_wire(store: OperationalStore) -> None:
    enqueue(store, addresses(9))
    stamps: list[float] = []

    def note(n: int, message: Any) -> bool:
        stamps.append(dt.datetime.now().timestamp())
        return True

    with SmtpSink(on_data=note) as sink:
        worker = Worker(
            store, {"email": smtp_channel(sink)}, rate_limits={"email": RateLimit(20, burst=1)}
        )
        assert worker.run_once().sent == 9
    # from the second message on (the first one also waited for the connection): 7 gaps of
    # at least 1/20 s
    assert stamps[-1] - stamps[1] >= 7 / 20 - 0.005


def test_hard_bounce_suppresses_the_address_for_every_later_campaign(
    store: OperationalStore,
) -> None:
    enqueue(store, ["gone@example.org", "ann@example.org"])
    (later,) = enqueue(store, ["GONE@Example.org"], campaign="summer")

    def rcpt(address: str) -> str | None:
        return "550 5.1.1 user unknown" if address.lower().startswith("gone@") else None

    clock = FakeClock()
    with SmtpSink(rcpt_reply=rcpt) as sink:
        worker = Worker(store, {"email": smtp_channel(sink)}, batch_size=2, clock=clock)
        report = worker.run_once()
        assert (report.sent, report.bounced, report.suppressed) == (1, 1, 1)
        assert [m.rcpt_tos for m in sink.messages] == [["ann@example.org"]]
    assert SuppressionList(store).addresses(Channel.EMAIL) == ["gone@example.org"]
    record = DeliveryLog(store).get(later)
    assert record is not None and record.status == "suppressed" and record.attempts == 0
    assert statuses(store)[1] == Counter({"sent": 1, "suppressed": 2})


def test_complaint_feedback_and_consent_withdrawn_after_launch_stop_later_sends(
    store: OperationalStore,
) -> None:
    (first, _) = enqueue(store, ["ann@example.org", "bo@example.org"])
    clock = FakeClock()
    with SmtpSink() as sink:
        worker = Worker(store, {"email": smtp_channel(sink)}, clock=clock)
        assert worker.run_once().sent == 2
        log = DeliveryLog(store)
        assert log.record_feedback(first, SendStatus.COMPLAINT, source="arf:feedback-loop")
        assert not log.record_feedback("no:such:key", SendStatus.COMPLAINT)
        record = log.get(first)
        assert record is not None and record.status == "complained" and record.sent_at == START
        # bo withdraws consent by e-mail after the summer campaign was queued
        summer = enqueue(
            store, ["ann@example.org", "bo@example.org", "cy@example.org"], campaign="summer"
        )
        ConsentLedger(store).record(
            [
                ConsentRecord(
                    "email",
                    "BO@example.org",
                    Purpose.MARKETING,
                    Channel.EMAIL,
                    Status.WITHDRAWN,
                    START - dt.timedelta(minutes=5),
                )
            ]
        )
        report = worker.run_once()
        assert (report.sent, report.suppressed) == (1, 2)
        assert sink.messages[-1].rcpt_tos == ["cy@example.org"]
    reasons = {k: (log.get(k).last_error or "") for k in summer[:2]}  # type: ignore[union-attr]
    assert "suppression list" in reasons[summer[0]]
    assert "consent withdrawn" in reasons[summer[1]]


def test_a_broken_render_fails_only_its_message(store: OperationalStore) -> None:
    keys = enqueue(store, ["ann@example.org", "bo@example.org"])

    def render(queued: QueuedMessage) -> OutboundMessage:
        if queued.address.startswith("ann"):
            raise KeyError("offer_code")
        return render_from_payload(queued)

    with SmtpSink() as sink:
        report = Worker(store, {"email": smtp_channel(sink)}, render, clock=FakeClock()).run_once()
        assert (report.sent, report.failed) == (1, 1)
    record = DeliveryLog(store).get(keys[0])
    assert record is not None and "KeyError" in (record.last_error or "")


def test_two_workers_side_by_side_never_send_a_message_twice(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        enqueue(store, addresses(120))
    failures: list[BaseException] = []
    with SmtpSink() as sink:

        def work(name: str) -> None:
            try:
                with open_store(tmp_path) as own:  # each worker its own connections
                    Worker(
                        own, {"email": smtp_channel(sink)}, batch_size=7, worker_id=name
                    ).run_once()
            except BaseException as exc:  # pragma: no cover - reported below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counts = sink.message_ids()
    assert failures == []
    assert len(counts) == 120 and set(counts.values()) == {1}


def test_a_refused_login_stops_the_run_and_gives_the_messages_back(
    store: OperationalStore,
) -> None:
    keys = enqueue(store, addresses(3))
    with SmtpSink(users={"mailer": "right"}) as sink:
        wrong = smtp_channel(sink, username="mailer", password="wrong")
        with pytest.raises(EngineError, match="refused the login"):
            Worker(store, {"email": wrong}, clock=FakeClock()).run_once()
        record = DeliveryLog(store).get(keys[0])
        assert record is not None and (record.status, record.attempts) == ("retry", 0)
        right = smtp_channel(sink, username="mailer", password="right")
        assert Worker(store, {"email": right}, clock=FakeClock()).run_once().sent == 3
        assert set(sink.message_ids().values()) == {1} and len(sink.messages) == 3


def test_an_unreachable_server_leaves_messages_waiting_without_using_attempts(
    store: OperationalStore,
) -> None:
    keys = enqueue(store, addresses(4))
    with SmtpSink() as sink:
        port = sink.port
    down = SmtpChannel("127.0.0.1", port, from_address="news@shop.example", security="none")
    report = Worker(store, {"email": down}, clock=FakeClock()).run_once()
    assert (report.claimed, report.sent, report.retried, report.released) == (4, 0, 1, 3)
    records = [DeliveryLog(store).get(k) for k in keys]
    assert sorted((r.status, r.attempts) for r in records if r) == [
        ("retry", 0),
        ("retry", 0),
        ("retry", 0),
        ("retry", 1),
    ]


def test_channels_take_turns_and_each_message_goes_its_own_way(
    store: OperationalStore, tmp_path: Path
) -> None:
    emails = enqueue(store, addresses(4))
    texts = enqueue(store, [f"+86138001380{i:02d}" for i in range(5)], channel="sms")
    calls = enqueue(store, ["+86 139 0013 9000"], channel="call_centre")
    clock = FakeClock()
    with SmtpSink() as smtp, HttpSink() as http:
        channels = {
            "email": smtp_channel(smtp),
            "sms": HttpSmsChannel(http.url, body={"to": "{address}", "text": "{body}"}),
            "call_centre": CallCentreList(tmp_path / "calls", region="CN"),
        }
        worker = Worker(
            store,
            channels,
            rate_limits={"sms": RateLimit(per_second=2, burst=1)},
            lease_seconds=4,
            settle_seconds=1,
            clock=clock,
            sleep=clock.sleep,
        )
        report = worker.run_once()
        assert (report.sent, report.released) == (10, 0)
        assert len(smtp.messages) == 4
        assert sorted(r.json()["to"] for r in http.posts()) == sorted(
            f"+86138001380{i:02d}" for i in range(5)
        )
        assert all(r.json()["text"].startswith("Hello customer") for r in http.posts())
    # sms at 2/s under a 4 s lease: batches of 2*1+1 = 3, each sent within a quarter lease
    assert clock.slept == pytest.approx(2.0)
    with (tmp_path / "calls" / "spring.call_centre.csv").open() as handle:
        assert [row["phone"] for row in csv.DictReader(handle)] == ["+8613900139000"]
    assert {DeliveryLog(store).get(k).status for k in emails + texts + calls} == {"sent"}  # type: ignore[union-attr]


def test_a_slow_batch_gives_back_claims_older_than_half_the_lease(
    store: OperationalStore,
) -> None:
    enqueue(store, addresses(6))
    clock = FakeClock()

    def slow_render(queued: QueuedMessage) -> OutboundMessage:
        clock.advance(3)  # a slow template engine
        return render_from_payload(queued)

    with SmtpSink() as sink:
        worker = Worker(
            store,
            {"email": smtp_channel(sink)},
            slow_render,
            batch_size=6,
            lease_seconds=10,
            settle_seconds=1,
            clock=clock,
        )
        report = worker.run_once()
        counts = sink.message_ids()
    assert report.sent == 6 and report.released > 0
    assert len(counts) == 6 and set(counts.values()) == {1}
    with store.session() as session:
        attempts = set(session.scalars(select(Delivery.attempts)).all())
    assert attempts == {1}  # giving a claim back costs no attempt


def test_run_forever_picks_up_new_messages_until_stopped(store: OperationalStore) -> None:
    enqueue(store, addresses(2), send_at=dt.datetime.now(dt.UTC))
    stop = threading.Event()
    with SmtpSink() as sink:
        worker = Worker(store, {"email": smtp_channel(sink)})
        reports: list[Any] = []
        thread = threading.Thread(
            target=lambda: reports.append(worker.run_forever(poll_seconds=0.05, stop_event=stop))
        )
        thread.start()
        enqueue(store, ["late@example.org"], campaign="late", send_at=dt.datetime.now(dt.UTC))
        deadline = dt.datetime.now() + dt.timedelta(seconds=10)
        while len(sink.messages) < 3 and dt.datetime.now() < deadline:
            stop.wait(0.02)
        stop.set()
        thread.join(10)
        worker.close()
    assert not thread.is_alive()
    assert len(sink.messages) == 3 and reports[0].sent == 3


def test_a_batch_cut_short_by_an_error_is_settled_from_the_journal(
    store: OperationalStore, tmp_path: Path
) -> None:
    keys = enqueue(store, addresses(5))

    class Breaking(SmtpChannel):
        def _deliver(self, message: OutboundMessage) -> Any:
            if message.recipient == "customer2@example.org" and not getattr(self, "broke", 0):
                self.broke = 1
                raise RuntimeError("a bug in a channel")
            return super()._deliver(message)

    clock = FakeClock()
    with SmtpSink() as sink:
        channel = Breaking(
            "127.0.0.1", sink.port, from_address="news@shop.example", security="none"
        )
        worker = Worker(
            store,
            {"email": channel},
            journal=tmp_path / "w.journal",
            clock=clock,
            sleep=clock.sleep,
        )
        with pytest.raises(RuntimeError):
            worker.run_once()
        assert len(sink.messages) == 2
        report = worker.run_once()  # no lease to wait for: the journal tells what happened
        worker.close()
        counts = sink.message_ids()
    # the first two were answered (recorded as sent), the third was attempted without an
    # answer (held: without a lookup nobody can say), the last two never went out (sent now)
    assert (report.recovered, report.sent, report.in_doubt) == (5, 4, 1)
    assert len(counts) == 4 and set(counts.values()) == {1}
    assert clock.slept == pytest.approx(10.0)  # settle_seconds after the unanswered attempt
    record = DeliveryLog(store).get(keys[2])
    assert record is not None and record.status == "in_doubt"


def _abandon(store: OperationalStore, channel: SmtpChannel, keys: list[str]) -> None:
    """Claims of a worker that died an hour ago."""
    DeliveryLog(store).claim(
        channels={"email"},
        owner="dead-host/0001",
        now=START + dt.timedelta(minutes=1),
        limit=len(keys),
        message_id_for=lambda _, key: channel.message_id_for(key),
    )


def test_abandoned_claims_are_resolved_by_asking_the_provider(store: OperationalStore) -> None:
    keys = enqueue(store, addresses(5))
    clock = FakeClock(START + dt.timedelta(hours=1))
    with SmtpSink() as sink, HttpSink(lookup_responder(sink)) as api:
        channel = smtp_channel(sink, lookup=HttpMessageLookup(api.url + "/messages/{message_id}"))
        _abandon(store, channel, keys)
        # the dead worker had got two messages out before it died
        for key in keys[:2]:
            assert (
                smtp_channel(sink)
                .send(OutboundMessage(key, addresses(5)[keys.index(key)], text="x"))
                .status
                is SendStatus.SENT
            )
        report = Worker(store, {"email": channel}, clock=clock, lease_seconds=600).run_once()
        assert (report.recovered, report.sent) == (5, 5)  # 2 confirmed, 3 sent now
        counts = sink.message_ids()
    assert len(counts) == 5 and set(counts.values()) == {1}
    confirmed = DeliveryLog(store).get(keys[0])
    assert confirmed is not None and confirmed.provider_id == "confirmed by the provider's lookup"


def test_abandoned_claims_without_a_lookup_are_held_not_sent_twice(
    store: OperationalStore,
) -> None:
    keys = enqueue(store, addresses(3))
    clock = FakeClock(START + dt.timedelta(hours=1))
    with SmtpSink() as sink:
        channel = smtp_channel(sink)
        _abandon(store, channel, keys)
        smtp_channel(sink).send(OutboundMessage(keys[0], addresses(3)[0], text="x"))
        report = Worker(store, {"email": channel}, clock=clock, lease_seconds=600).run_once()
        assert (report.recovered, report.in_doubt, report.sent) == (3, 3, 0)
        assert len(sink.messages) == 1
        # a person checks the mail log, finds only the first one, and lets the others go
        assert DeliveryLog(store).resend_in_doubt(keys[1:], now=clock.now) == 2
        assert Worker(store, {"email": channel}, clock=clock).run_once().sent == 2
        counts = sink.message_ids()
    assert len(counts) == 3 and set(counts.values()) == {1}
    assert statuses(store)[0] == Counter({"sent": 2, "in_doubt": 1})


# -- SIGKILL in the middle of a send run ---------------------------------------------------------

RUN_CLI = textwrap.dedent(
    """
    import typer
    from jingzhun.cli._delivery import register

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        pass

    register(app)
    app()
    """
)


def make_project(tmp_path: Path, smtp: SmtpSink, lookup_url: str | None) -> Path:
    root = init_project(tmp_path / "shop", name="shop")
    lookup = f"\n  lookup: {{url: '{lookup_url}/messages/{{message_id}}'}}" if lookup_url else ""
    (root / "delivery.yml").write_text(
        textwrap.dedent(
            f"""\
            worker: {{batch_size: 5, lease_seconds: 60, settle_seconds: 0.5}}
            email:
              host: 127.0.0.1
              port: {smtp.port}
              security: none
              from_address: "Shop <news@shop.example>"
            """
        ).rstrip()
        + lookup
        + "\n",
        encoding="utf-8",
    )
    return root


def run_worker(root: Path, smtp: SmtpSink, kill_at: int | None, accept: bool) -> dict[str, Any]:
    """Run ``jingzhun worker --once``; with ``kill_at``, the SMTP server SIGKILLs the worker
    when the n-th message of this run has arrived, before (``accept=False``) or after it has
    taken responsibility for it, and the worker never sees the reply.
    """
    process: subprocess.Popen[str] | None = None
    start = smtp.data_count

    def on_data(n: int, message: Any) -> bool:
        if kill_at is not None and n - start == kill_at and process is not None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return accept
        return True

    smtp.on_data = on_data
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            *(sys.executable, "-c", RUN_CLI, "worker", "--once", "--json"),
            *("--project", str(root), "--worker-id", "worker-1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out, err = process.communicate(timeout=60)
    smtp.on_data = None
    if kill_at is not None:
        assert process.returncode == -signal.SIGKILL, err
        return {}
    assert process.returncode == 0, err
    return dict(json.loads(out))


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_sends_every_message_exactly_once(tmp_path: Path) -> None:
    with SmtpSink(delay=0.01) as smtp, HttpSink(lookup_responder(smtp)) as api:
        root = make_project(tmp_path, smtp, api.url)
        with open_store(root) as store:
            keys = enqueue(store, addresses(23), send_at=dt.datetime.now(dt.UTC))
        # killed after the server took the 7th message, before the worker heard its "250"
        run_worker(root, smtp, kill_at=7, accept=True)
        assert len(smtp.messages) == 7
        with open_store(root) as store:
            assert statuses(store)[0] == Counter({"sent": 5, "sending": 5})
        report = run_worker(root, smtp, kill_at=None, accept=True)
        counts = smtp.message_ids()
    channel = SmtpChannel("x", 25, from_address="news@shop.example")
    assert sorted(counts) == sorted(channel.message_id_for(k) for k in keys)
    assert set(counts.values()) == {1}, "a message reached the server twice"
    # the restart found the second batch claimed: the 6th answered in the journal, the 7th in
    # flight and confirmed by the provider's lookup (both recorded as sent, not sent again),
    # the 8th to 10th never attempted; then it sent the 16 messages the server had not seen
    assert (report["recovered"], report["in_doubt"], report["sent"]) == (5, 0, 2 + 16)
    with open_store(root) as store:
        assert statuses(store) == (Counter({"sent": 23}), Counter({"sent": 23}))
        confirmed = DeliveryLog(store).get(keys[6])
        runs = store.recent_runs(5)
    assert confirmed is not None and confirmed.provider_id == "confirmed by the provider's lookup"
    assert [r.status.value for r in runs] == ["ok", "running"]  # the killed run never finished


@pytest.mark.slow
def test_sigkill_without_a_lookup_holds_the_message_in_flight(tmp_path: Path) -> None:
    with SmtpSink(delay=0.01) as smtp:
        root = make_project(tmp_path, smtp, lookup_url=None)
        with open_store(root) as store:
            keys = enqueue(store, addresses(12), send_at=dt.datetime.now(dt.UTC))
        run_worker(root, smtp, kill_at=8, accept=True)
        report = run_worker(root, smtp, kill_at=None, accept=True)
        counts = smtp.message_ids()
    assert len(counts) == 12 and set(counts.values()) == {1}  # all arrived, none twice
    # run 2: the 6th and 7th answered in the journal (recorded as sent), the 8th held, the
    # 9th to 12th sent
    assert report["in_doubt"] == 1 and report["sent"] == 2 + 4
    with open_store(root) as store:
        deliveries, _ = statuses(store)
        held = [DeliveryLog(store).get(k) for k in keys]
    assert deliveries == Counter({"sent": 11, "in_doubt": 1})
    (doubt,) = [r for r in held if r and r.status == "in_doubt"]
    assert doubt.idempotency_key == keys[7]  # the 8th: the server had it, the worker never knew


# -- delivery.yml and the command --------------------------------------------------------------


def test_settings_errors_name_the_file_line_and_field(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"delivery\.yml not found"):
        load_delivery_settings(tmp_path)
    (tmp_path / "delivery.yml").write_text(
        textwrap.dedent(
            """\
            email:
              host: smtp.example.com
              security: none
              from_address: news@shop.example
              username: mailer
              password_env: SMTP_PASSWORD
            sms:
              url: https://sms.example.com/send
              body: {to: "{phone}", text: "{body}"}
            pigeon: {}
            """
        )
    )
    with pytest.raises(SpecError) as info:
        load_delivery_settings(tmp_path)
    problems = {(p.field, p.line) for p in info.value.problems}
    assert ("email", 1) in problems  # a login in clear text to a remote server
    assert ("sms.body", 9) in problems  # {phone} is not a placeholder
    assert ("pigeon", 10) in problems
    assert "password in clear text" in str(info.value)


def test_channels_are_built_with_secrets_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "delivery.yml").write_text(
        textwrap.dedent(
            """\
            tracking: {secret_env: TRACK_SECRET, base_url: "https://t.shop.example"}
            email:
              host: smtp.example.com
              from_address: news@shop.example
              username: mailer
              password_env: SMTP_PASSWORD
              rate: {per_second: 50, burst: 10}
            sms: {url: "https://sms.example.com/send", body: {to: "{address}"}, auth_env: SMS}
            webhook: {url: "https://crm.example.com/hook", secret_env: HOOK_SECRET}
            ads: {folder: exports/ads, format: meta}
            call_centre: {folder: exports/calls}
            """
        )
    )
    settings = load_delivery_settings(tmp_path)
    with pytest.raises(SpecError) as info:
        build_channels(settings, root=tmp_path, environ={"TRACK_SECRET": "short"})
    messages = {p.field: p.message for p in info.value.problems}
    assert messages["tracking.secret_env"] == "TRACK_SECRET is under 16 bytes"
    assert messages["email.password_env"] == "environment variable SMTP_PASSWORD is not set"
    assert info.value.problems[1].line == 6
    env = {
        "TRACK_SECRET": "x" * 20,
        "SMTP_PASSWORD": "pw",
        "SMS": "token",
        "HOOK_SECRET": "y" * 20,
    }
    channels = build_channels(settings, root=tmp_path, region="GB", environ=env)
    assert sorted(channels) == ["ads", "call_centre", "email", "sms", "webhook"]
    assert settings.rate_limits() == {"email": RateLimit(50, 10)}
    assert str(channels["ads"]).endswith(f"{tmp_path / 'exports' / 'ads'}')")


def test_the_worker_command_sends_and_reports_counts(tmp_path: Path) -> None:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        pass

    register(app)
    runner = CliRunner()
    with SmtpSink() as smtp:
        root = make_project(tmp_path, smtp, lookup_url=None)
        with open_store(root) as store:
            enqueue(store, addresses(6), send_at=dt.datetime.now(dt.UTC))
        result = runner.invoke(app, ["worker", "--once", "--json", "--project", str(root)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["sent"] == 6
        again = runner.invoke(app, ["worker", "--once", "--project", str(root)])
        assert again.exit_code == 0 and "claimed" in again.stdout
        assert len(smtp.messages) == 6
        assert "@example.org" not in result.stdout + again.stdout  # no addresses printed
    (root / "delivery.yml").unlink()
    missing = runner.invoke(app, ["worker", "--once", "--project", str(root)])
    assert missing.exit_code == 3 and "delivery.yml not found" in missing.stderr


def test_the_readme_example_runs(
    store: OperationalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    readme = Path(__file__).resolve().parents[2] / "src" / "jingzhun" / "delivery" / "README.md"
    (block,) = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)
    enqueue(store, addresses(3), send_at=dt.datetime.now(dt.UTC))
    monkeypatch.setenv("JINGZHUN_TRACKING_SECRET", "readme-secret-0123456789")
    with SmtpSink() as smtp:
        names = {"store": store, "root": tmp_path, "smtp_host": "127.0.0.1", "smtp_port": smtp.port}
        exec(compile(block, "delivery/README.md", "exec"), names)
        assert len(smtp.messages) == 3
        assert smtp.messages[0].message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert capsys.readouterr().out == "3\n"
