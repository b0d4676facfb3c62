"""A small shop whose e-mail campaign is planned, launched and delivered through the real
worker to an aiosmtpd server on 127.0.0.1, followed by tracking events and orders injected at
known times, so every campaign KPI has a value a test can compute by hand.

``launched_shop(root)`` builds it once per test run (the tests copy the folder when they
change it) and returns a ``Shop`` with what the test needs to know: who was planned in which
group, when each message went out, and which orders and events were added.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import select

from jingzhun.campaigns import SEND_PLAN
from jingzhun.models import SCORES_SCHEMA, write_scores
from jingzhun.store import Delivery
from jingzhun.workspace import Workspace

CAMPAIGN = "spring"
TRACKING_ENV = "JINGZHUN_TEST_KPI_TRACKING_SECRET"
COST_PER_CONTACT = 0.5
WINDOW_DAYS = 7
BOUNCING = {"c05@shop.example", "c17@shop.example"}  # the server refuses these (RCPT 550)

PROJECT = """\
name: kpi_shop
timezone: UTC
currency: GBP
region: GB
engine:
  kind: duckdb
sources:
  - sources/*.yml
"""
CRM = """\
name: crm
path: data/customers.csv
target: customers
columns:
  customer_id: customer_id
  email: email
  first_name: first_name
  country: country
  email_consent: {from: email_consent, true_values: ["yes"], false_values: ["no"]}
"""
SHOP = """\
name: shop
path: data/orders/*.csv
target: orders
timezone: UTC
columns:
  order_id: order_id
  customer_id: customer_id
  ordered_at: ordered_at
  is_return: {from: is_return, true_values: ["yes"], false_values: ["no"]}
  total_amount: {from: total_amount, type: decimal}
"""
TRACKING = """\
name: tracking
path: data/events/*.csv
target: events
timezone: UTC
columns:
  event_id: event_id
  customer_id: customer_id
  event_type: event_type
  occurred_at: occurred_at
  properties: properties
"""
SEGMENT = """\
name: everyone
description: Every customer with an e-mail address
rule: has_valid_email = true
"""
CAMPAIGN_SPEC = f"""\
name: {CAMPAIGN}
audience: everyone
channel: email
goal: {{event: order, within_days: {WINDOW_DAYS}}}
variants:
  - {{name: a, template: spring_a, share: 0.5}}
  - {{name: b, template: spring_b, share: 0.5}}
cost_per_contact: {COST_PER_CONTACT}
value_per_conversion: 30
holdout: {{fraction: 0.25, seed: 3, stratify_by: country}}
"""
TEMPLATE = """\
subject: "Spring offer {variant}"
html: |
  <html><body><p>Hello {{{{ customer.first_name | default('there') }}}}</p>
  <p><a href="https://shop.example/spring">See the offer</a></p></body></html>
"""
DELIVERY = """\
email:
  host: 127.0.0.1
  port: {port}
  security: none
  from_address: "Shop <news@shop.example>"
tracking:
  secret_env: {env}
  base_url: https://t.shop.example
  unsubscribe_url: https://t.shop.example/unsubscribe
  unsubscribe_mailto: unsubscribe@shop.example
"""


class _Sink:
    """aiosmtpd handler: refuses the BOUNCING addresses, keeps the Message-IDs of the rest."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.lower() in BOUNCING:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope.original_content or b"")
        return "250 2.0.0 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Shop:
    """The built project and the facts the tests compute their expectations from."""

    root: Path
    as_of: dt.date  # the day to measure on (every window has closed by then)
    plan: list[dict[str, Any]]  # send_plan rows of the launched plan
    deliveries: dict[str, dict[str, Any]]  # customer_key -> idempotency_key, status, sent_at
    keys: dict[str, str]  # customer_id -> customer_key
    orders: list[dict[str, Any]] = field(default_factory=list)  # injected after the send
    events: list[dict[str, Any]] = field(default_factory=list)  # injected tracking events
    clv: dict[str, float] = field(default_factory=dict)  # customer_key -> clv_12m
    received: int = 0


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _build(root: Path) -> Shop:
    for folder in ("sources", "segments", "campaigns", "templates", "data", "tags"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    # the shop's history is loaded today: build profiles three days back as a backfill
    (root / "tags" / "_settings.yml").write_text("include_late_loads: true\n")
    (root / "jingzhun.yml").write_text(PROJECT)
    (root / "sources" / "crm.yml").write_text(CRM)
    (root / "sources" / "shop.yml").write_text(SHOP)
    (root / "sources" / "tracking.yml").write_text(TRACKING)
    (root / "segments" / "everyone.yml").write_text(SEGMENT)
    (root / "campaigns" / f"{CAMPAIGN}.yml").write_text(CAMPAIGN_SPEC)
    for variant in ("a", "b"):
        (root / "templates" / f"spring_{variant}.yml").write_text(TEMPLATE.format(variant=variant))
    ids = [f"C{n:02d}" for n in range(1, 41)]
    _write_csv(
        root / "data" / "customers.csv",
        [
            {
                "customer_id": cid,
                "email": f"c{cid[1:]}@shop.example",
                "first_name": f"Name{cid[1:]}",
                "country": "GB" if n < 24 else "FR",
                "email_consent": "yes",
            }
            for n, cid in enumerate(ids)
        ],
    )
    today = dt.datetime.now(dt.UTC).date()
    build_day = today - dt.timedelta(days=3)
    history = dt.datetime.combine(build_day - dt.timedelta(days=40), dt.time(12), dt.UTC)
    _write_csv(
        root / "data" / "orders" / "history.csv",
        [
            {
                "order_id": f"H{cid}",
                "customer_id": cid,
                "ordered_at": _stamp(history),
                "is_return": "no",
                "total_amount": "20.00",
            }
            for cid in ids[::3]
        ],
    )
    _write_csv(
        root / "data" / "events" / "history.csv",
        [
            {
                "event_id": "visit-C01",
                "customer_id": "C01",
                "event_type": "page",
                "occurred_at": _stamp(history),
                "properties": "{}",
            }
        ],
    )
    os.environ[TRACKING_ENV] = "k" * 32
    sink = _Sink()
    port = _free_port()
    (root / "delivery.yml").write_text(DELIVERY.format(port=port, env=TRACKING_ENV))
    with Workspace.open(root) as ws:
        loaded = ws.ingest.run()
        assert loaded.ok, loaded.to_dict()
        ws.build(build_day, probabilistic=False)
        nodes = ws.engine.read("identity_map")
        nodes = nodes.filter((nodes.node_kind == "customer") & (nodes.node_source == "crm"))
        keys = {
            r["node_id"]: r["customer_key"]
            for r in ws.engine.execute(nodes.select("node_id", "customer_key")).to_pylist()
        }
        # clv_12m for every other customer, exact in binary so sums do not depend on order
        clv = {keys[cid]: 50.0 + 12.5 * n for n, cid in enumerate(ids) if n % 2 == 0}
        now = dt.datetime.now(dt.UTC)
        write_scores(
            ws.engine,
            pa.table(
                {
                    "customer_key": list(clv),
                    "model_id": ["clv-test"] * len(clv),
                    "score_name": ["clv_12m"] * len(clv),
                    "score": list(clv.values()),
                    "scored_at": [now] * len(clv),
                    "as_of": [build_day] * len(clv),
                },
                schema=SCORES_SCHEMA,
            ),
            score_name="clv_12m",
        )
        plan = ws.campaigns.plan(CAMPAIGN, by="analyst")
        ws.campaigns.launch(CAMPAIGN, by="manager")
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            with ws.delivery.worker(worker_id="kpi-test") as worker:
                worker.run_once()
        finally:
            controller.stop()
        rows = ws.engine.read(SEND_PLAN)
        planned = ws.engine.execute(rows.filter(rows.plan_id == plan.plan_id)).to_pylist()
        with ws.store.session() as session:
            logged = session.scalars(select(Delivery).where(Delivery.campaign == CAMPAIGN)).all()
            deliveries = {
                d.customer_key: {
                    "message_key": d.idempotency_key,
                    "status": d.status,
                    "sent_at": d.sent_at,
                }
                for d in logged
            }
    shop = Shop(
        root=root,
        as_of=today + dt.timedelta(days=12),
        plan=planned,
        deliveries=deliveries,
        keys=keys,
        clv=clv,
        received=len(sink.received),
    )
    _inject(shop)
    with Workspace.open(root) as ws:
        loaded = ws.ingest.run()
        assert loaded.ok, loaded.to_dict()
    return shop


def _inject(shop: Shop) -> None:
    """Orders and tracking events at known times after the send (and a few that must not
    count: before the send, after the window, without a message key)."""
    by_key = {v: k for k, v in shop.keys.items()}
    treated = sorted(
        (r for r in shop.plan if r["group"] == "treatment"), key=lambda r: r["customer_key"]
    )
    holdout = sorted(
        (r for r in shop.plan if r["group"] == "holdout"), key=lambda r: r["customer_key"]
    )
    sent = [r for r in treated if shop.deliveries[r["customer_key"]]["status"] == "sent"]
    first_sent = min(d["sent_at"] for d in shop.deliveries.values() if d["sent_at"] is not None)
    hour = dt.timedelta(hours=1)
    day = dt.timedelta(days=1)
    orders: list[dict[str, Any]] = []

    def order(row: dict[str, Any], at: dt.datetime, amount: str, is_return: bool = False) -> None:
        orders.append(
            {
                "order_id": f"P{len(orders) + 1:03d}",
                "customer_id": by_key[row["customer_key"]],
                "ordered_at": _stamp(at),
                "is_return": "yes" if is_return else "no",
                "total_amount": amount,
            }
        )

    for n, row in enumerate(sent[:8]):
        at = shop.deliveries[row["customer_key"]]["sent_at"]
        order(row, at + day + n * hour, f"{40 + 10 * n}.25")
    order(sent[0], shop.deliveries[sent[0]["customer_key"]]["sent_at"] + 2 * day, "15.50")
    order(sent[1], shop.deliveries[sent[1]["customer_key"]]["sent_at"] + 3 * day, "12.00", True)
    order(sent[9], shop.deliveries[sent[9]["customer_key"]]["sent_at"] + 8 * day, "99.00")
    order(sent[10], shop.deliveries[sent[10]["customer_key"]]["sent_at"] - hour, "77.00")
    bounced = [r for r in treated if shop.deliveries[r["customer_key"]]["status"] == "bounced"]
    if bounced:
        order(bounced[0], first_sent + 2 * day, "33.75")
    for n, row in enumerate(holdout[:2]):
        order(row, first_sent + (2 + n) * day, f"{25 + 5 * n}.50")
    order(holdout[2], first_sent + 9 * day, "61.00")

    events: list[dict[str, Any]] = []

    def event(row: dict[str, Any], kind: str, at: dt.datetime, key: str | None) -> None:
        properties = {} if key is None else {"idempotency_key": key, "campaign": "spring"}
        events.append(
            {
                "event_id": f"T{len(events) + 1:03d}",
                "customer_id": by_key[row["customer_key"]],
                "event_type": kind,
                "occurred_at": _stamp(at),
                "properties": json.dumps(properties),
            }
        )

    for n, row in enumerate(sent[:14]):
        d = shop.deliveries[row["customer_key"]]
        event(row, "email_open", d["sent_at"] + hour, d["message_key"])
        if n % 3 == 0:
            event(row, "email_open", d["sent_at"] + 2 * hour, d["message_key"])  # again
        if n % 2 == 0:
            event(row, "email_click", d["sent_at"] + 2 * hour, d["message_key"])
    for row in sent[14:16]:  # a click whose open pixel was blocked
        d = shop.deliveries[row["customer_key"]]
        event(row, "email_click", d["sent_at"] + hour, d["message_key"])
    d = shop.deliveries[sent[2]["customer_key"]]
    event(sent[2], "unsubscribe", d["sent_at"] + 3 * hour, d["message_key"])
    event(sent[20], "email_open", first_sent + hour, None)  # no message key: not counted
    event(holdout[0], "email_open", first_sent + hour, "spring:ck_unknown:email")
    shop.orders, shop.events = orders, events
    _write_csv(shop.root / "data" / "orders" / "after_send.csv", orders)
    _write_csv(shop.root / "data" / "events" / "tracking.csv", events)


_BUILT: dict[str, Shop] = {}


def launched_shop(workdir: Path) -> Shop:
    """The shop, built once per test run under ``workdir`` (reused afterwards)."""
    if "shop" not in _BUILT:
        root = workdir / "kpi_shop"
        shutil.rmtree(root, ignore_errors=True)
        _BUILT["shop"] = _build(root)
    return _BUILT["shop"]
