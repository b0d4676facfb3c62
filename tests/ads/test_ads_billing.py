"""Billing: a click is billed once, only while the day's budget lasts, and the spend never
passes the budget by more than one click's price — with threads and processes clicking at
the same time on one store.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ads_shop import DAY, FRAUD
from sqlalchemy import select

from jingzhun.ads import (
    AdLedger,
    AdServer,
    AudienceIndex,
    CtrModel,
    DecideRequest,
    FraudRules,
    ServerSettings,
    campaign_from_dict,
    open_ad_server,
    read_logs,
)
from jingzhun.store import AdBudgetDay
from jingzhun.workspace import Workspace

TINY = {
    "name": "tiny",
    "max_cpc": 0.40,
    "daily_budget": 3.0,
    "flight": {"start": "2024-04-01", "end": "2024-06-30"},
    "creatives": [{"name": "a", "title": "A", "landing_url": "https://shop.example/a"}],
}
SETTINGS = ServerSettings(reserve_cpc=0.25)  # alone in the auction, a click costs 0.25
NOON = dt.datetime.combine(DAY, dt.time(12), tzinfo=ZoneInfo("Europe/London"))
THREADS = 8


def _click_all(root: str, jobs: list[tuple[str, str, float]]) -> list[float]:
    """A server on the project's store (no warehouse: DuckDB admits one process) clicking every
    (token, device, seconds) job from several threads.
    """
    with Workspace.open(root) as ws:
        index = AudienceIndex([campaign_from_dict(TINY)], {}, (0,), {}, {}, {}, None)
        server = AdServer(
            index,
            CtrModel(),
            ws.store,
            secret=ws.project.secret("ads"),
            timezone="Europe/London",
            fraud=FraudRules(FRAUD),
            settings=SETTINGS,
        )
        try:

            def one(job: tuple[str, str, float]) -> float:
                token, device, seconds = job
                result = server.click(
                    token,
                    device_id=device,
                    ip=f"82.1.{hash(device) % 250}.{len(device) % 250}",
                    now=NOON + dt.timedelta(seconds=seconds),
                )
                return result.charged

            with ThreadPoolExecutor(THREADS) as pool:
                return list(pool.map(one, jobs))
        finally:
            server.close()


def test_spend_never_passes_the_budget_by_more_than_one_click(project: Path) -> None:
    with Workspace.open(project) as ws:
        server = open_ad_server(
            ws.project,
            ws.engine,
            ws.store,
            campaigns={"tiny": campaign_from_dict(TINY)},
            fraud=FRAUD,
            settings=SETTINGS,
        )
        try:
            jobs = []
            for n in range(240):
                device = f"device-{n}"
                d = server.decide(
                    DecideRequest("app_home", anonymous_id=device, device_id=device),
                    now=NOON + dt.timedelta(seconds=n / 100),
                )
                assert d is not None and d.price == 0.25
                jobs.append((d.token, device, 30 + n / 100))
        finally:
            server.close()
    # three processes (this one and two more), eight threads each, all clicking at once
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        pending = [pool.apply_async(_click_all, (str(project), jobs[k::3])) for k in (1, 2)]
        mine = _click_all(str(project), jobs[0::3])
        charged = mine + [c for p in pending for c in p.get(timeout=300)]
    with Workspace.open(project) as ws:
        logs = read_logs(ws.store)
        with ws.store.session() as session:
            budget_row = session.scalar(select(AdBudgetDay).where(AdBudgetDay.campaign == "tiny"))
    assert budget_row is not None
    assert len(logs.clicks) == 240 and logs.clicks["valid"].all()
    charges = logs.ledger[logs.ledger["kind"] == "charge"]
    assert charges["click_id"].is_unique
    assert abs(charges["amount"].sum() - budget_row.spent) < 1e-9
    assert abs(sum(charged) - budget_row.spent) < 1e-9
    assert 3.0 <= budget_row.spent <= 3.0 + 0.25 + 1e-9  # at most one click over the budget
    assert len(charges) == 12 and (logs.clicks["charged"] > 0).sum() == 12


def test_credits_are_given_once(project: Path) -> None:
    with Workspace.open(project) as ws:
        server = open_ad_server(
            ws.project,
            ws.engine,
            ws.store,
            campaigns={"tiny": campaign_from_dict(TINY)},
            fraud=FRAUD,
            settings=SETTINGS,
        )
        try:
            d = server.decide(DecideRequest("app_home", device_id="d9"), now=NOON)
            assert d is not None
            click = server.click(
                d.token, device_id="d9", ip="81.1.1.1", now=NOON + dt.timedelta(seconds=5)
            )
        finally:
            server.close()
        ledger = AdLedger(ws.store)
        assert ledger.net_spend() == 0.25
        now = dt.datetime.now(dt.UTC)
        assert ledger.credit([(click.click_id, "anomaly")], now=now) == 1
        assert ledger.credit([(click.click_id, "anomaly")], now=now) == 0
        assert ledger.net_spend() == 0.0
        row: Any = read_logs(ws.store).clicks.iloc[0]
        assert not row["valid"] and row["reason"] == "anomaly"
