"""E-mails per second through ``jingzhun worker``'s send path to a local SMTP sink, beside two
baselines sending the same messages over one SMTP session; medians of 3 runs.

The sink is aiosmtpd on 127.0.0.1 in its own process (so it does not share the benchmark's
GIL); it counts what it accepts and every Message-ID, and each run checks that every message
arrived exactly once. The queue holds what a launched plan writes (consent and caps were
checked by the plan); at send time the worker still checks the suppression list (2,000
addresses) and consent recorded since launch (2,000 records), renders from the payload,
builds multipart text + HTML with the open pixel, two tracked links and the RFC 8058
unsubscribe headers, keeps the journal, and claims and records in the SQLite store.

- ``jingzhun_worker``: ``Worker.run_once`` over ``N`` queued messages, batches of 200.
- ``smtplib_prebuilt``: the same bytes (built beforehand by ``SmtpChannel.build_message``)
  sent with ``smtplib.SMTP.sendmail`` in one session: the transport's ceiling.
- ``stdlib_emailmessage``: the standard library's way, ``EmailMessage`` (text + HTML, same
  headers) built per message and sent with ``send_message`` in one session, no store.

Target (issue 8, item 7): >= 1,000 e-mails/s. ``JZ_BENCH_EMAILS`` sets ``N`` (default 20,000).
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import shutil
import smtplib
import socket
import statistics
import tempfile
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from jingzhun.campaigns import Channel, ConsentLedger, ConsentRecord, Purpose, Status
from jingzhun.core import StoreSettings
from jingzhun.delivery import SmtpChannel, Tracker, Worker, render_from_payload
from jingzhun.store import OperationalStore, QueuedMessage, Suppression

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
N = int(os.environ.get("JZ_BENCH_EMAILS", "20000"))
REPEATS = 3
TARGET = 1_000
FROM = "Shop <news@shop.example>"
SECRET = "benchmark-tracking-secret-0123"


def _sink(port: int, ready: Any, done: Any, results: Any) -> None:
    """The SMTP sink process: count messages and Message-IDs until told to stop."""
    from aiosmtpd.controller import Controller

    class Counting:
        def __init__(self) -> None:
            self.ids: list[bytes] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            data = envelope.original_content or b""
            start = data.find(b"Message-ID: ")
            end = data.find(b"\r\n", start)
            self.ids.append(data[start + 12 : end])
            return "250 OK"

    handler = Counting()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        command = done.recv()
        if command == "count":
            counts: dict[bytes, int] = {}
            for mid in handler.ids:
                counts[mid] = counts.get(mid, 0) + 1
            results.send((len(handler.ids), len(counts), max(counts.values(), default=0)))
            handler.ids.clear()
        else:
            break
    controller.stop()


class Sink:
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        ctx = mp.get_context("spawn")
        self._ready = ctx.Event()
        self._commands, theirs = ctx.Pipe()
        self._results, mine = ctx.Pipe()
        self._process = ctx.Process(
            target=_sink, args=(self.port, self._ready, theirs, mine), daemon=True
        )

    def __enter__(self) -> Sink:
        self._process.start()
        if not self._ready.wait(30):
            raise RuntimeError("the SMTP sink did not start")
        return self

    def count(self) -> tuple[int, int, int]:
        """(messages, distinct Message-IDs, most copies of one) since the last count."""
        self._commands.send("count")
        return tuple(self._results.recv())  # type: ignore[return-value]

    def __exit__(self, *exc: object) -> None:
        self._commands.send("stop")
        self._process.join(10)


def _payload(i: int) -> dict[str, Any]:
    return {
        "variant": "a",
        "phase": "all",
        "subject": f"Your spring offer, customer {i}",
        "text": f"Hello customer {i},\n\n20% off this week: https://shop.example/spring\n",
        "html": (
            f"<html><body><p>Hello customer {i},</p><p>20% off this week: "
            '<a href="https://shop.example/spring?utm_source=email">see the offer</a> or '
            '<a href="https://shop.example/stores">find a store</a>.</p></body></html>'
        ),
    }


def _channel(port: int) -> SmtpChannel:
    tracker = Tracker(
        SECRET,
        tracking_base_url="https://t.shop.example",
        unsubscribe_base_url="https://t.shop.example/unsubscribe",
        unsubscribe_mailto="unsubscribe@shop.example",
    )
    return SmtpChannel("127.0.0.1", port, from_address=FROM, security="none", tracker=tracker)


def _fill(root: Path) -> OperationalStore:
    store = OperationalStore.open(StoreSettings().operational, root)
    store.migrate()
    now = dt.datetime.now(dt.UTC)
    queued = now - dt.timedelta(hours=1)
    rows = [
        {
            "idempotency_key": f"spring:ck_{i:07d}:email",
            "plan_id": "spring-plan",
            "campaign": "spring",
            "customer_key": f"ck_{i:07d}",
            "channel": "email",
            "address": f"customer{i}@example.org",
            "variant": "a",
            "send_at": now - dt.timedelta(minutes=1),
            "payload": _payload(i),
            "status": "queued",
            "created_at": queued,
        }
        for i in range(N)
    ]
    suppressed = [
        {
            "channel": "email",
            "address": f"gone{i}@example.net",
            "reason": "hard_bounce",
            "source": "benchmark",
            "created_at": queued,
        }
        for i in range(2_000)
    ]
    with store.session(write=True) as session:
        session.execute(insert(QueuedMessage), rows)
        session.execute(insert(Suppression), suppressed)
    ConsentLedger(store).record(
        ConsentRecord(
            "email",
            f"other{i}@example.net",
            Purpose.MARKETING,
            Channel.EMAIL,
            Status.GRANTED if i % 2 else Status.WITHDRAWN,
            now - dt.timedelta(minutes=30),
        )
        for i in range(2_000)
    )
    return store


def run_jingzhun(sink: Sink) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="jz-bench-delivery-"))
    try:
        store = _fill(root)
        worker = Worker(
            store,
            {"email": _channel(sink.port)},
            render_from_payload,
            batch_size=200,
            journal=root / "state" / "delivery" / "bench.journal",
            worker_id="bench",
        )
        started = time.perf_counter()
        report = worker.run_once()
        seconds = time.perf_counter() - started
        worker.close()
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    received, distinct, most = sink.count()
    assert report.sent == N and received == N and distinct == N and most == 1, (report, received)
    return {"seconds": round(seconds, 3), "per_second": round(N / seconds, 1)}


def run_prebuilt(sink: Sink) -> dict[str, Any]:
    channel = _channel(sink.port)
    messages = [
        (
            f"customer{i}@example.org",
            channel.build_message(render_from_payload(_queued(i))),
        )
        for i in range(N)
    ]
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
        for to, data in messages:
            smtp.sendmail("news@shop.example", [to], data)
    seconds = time.perf_counter() - started
    received, distinct, most = sink.count()
    assert received == N and distinct == N and most == 1
    return {"seconds": round(seconds, 3), "per_second": round(N / seconds, 1)}


def run_emailmessage(sink: Sink) -> dict[str, Any]:
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
        for i in range(N):
            payload = _payload(i)
            message = EmailMessage(policy=policy.SMTP)
            message["From"] = FROM
            message["To"] = f"customer{i}@example.org"
            message["Subject"] = payload["subject"]
            message["Message-ID"] = f"<bench.{i}@shop.example>"
            message["List-Unsubscribe"] = "<https://t.shop.example/unsubscribe/x>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            message.set_content(payload["text"])
            message.add_alternative(payload["html"], subtype="html")
            smtp.send_message(message)
    seconds = time.perf_counter() - started
    received, distinct, most = sink.count()
    assert received == N and distinct == N and most == 1
    return {"seconds": round(seconds, 3), "per_second": round(N / seconds, 1)}


def _queued(i: int) -> QueuedMessage:
    return QueuedMessage(
        idempotency_key=f"spring:ck_{i:07d}:email",
        campaign="spring",
        customer_key=f"ck_{i:07d}",
        channel="email",
        address=f"customer{i}@example.org",
        variant="a",
        payload=_payload(i),
    )


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {
        "jingzhun_worker": [],
        "smtplib_prebuilt": [],
        "stdlib_emailmessage": [],
    }
    load_before = os.getloadavg()
    with Sink() as sink:
        for repeat in range(REPEATS):
            for name, run in (
                ("jingzhun_worker", run_jingzhun),
                ("smtplib_prebuilt", run_prebuilt),
                ("stdlib_emailmessage", run_emailmessage),
            ):
                figures = run(sink)
                runs[name].append(figures)
                print(json.dumps({"repeat": repeat, name: figures}), flush=True)
    medians = {
        name: round(statistics.median(r["per_second"] for r in results), 1)
        for name, results in runs.items()
    }
    summary = {
        "benchmark": "delivery_smtp",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # other work on the machine slows every run; runs are interleaved for fairness
            "load_average_1m_before_after": [
                round(load_before[0], 2),
                round(os.getloadavg()[0], 2),
            ],
        },
        "emails": N,
        "repeats": REPEATS,
        "median_emails_per_second": medians,
        "jingzhun_vs_smtplib_prebuilt": round(
            medians["jingzhun_worker"] / medians["smtplib_prebuilt"], 2
        ),
        "jingzhun_vs_stdlib_emailmessage": round(
            medians["jingzhun_worker"] / medians["stdlib_emailmessage"], 2
        ),
        "target_emails_per_second": TARGET,
        "target_met": medians["jingzhun_worker"] >= TARGET,
        "runs": runs,
    }
    out = RESULTS / "delivery_smtp.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
