"""Backtests replay history and write nothing; each ready journey is validated and backtested
on the generated shop.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from journey_shop import copy_shop, shared_shop
from sqlalchemy import func, select

from jingzhun.journeys import TEMPLATES, backtest_journey, load_journeys, runner_for
from jingzhun.journeys._machine import PROFILE_FIELDS
from jingzhun.store import JourneyEnrollment, JourneyEvent, JourneyWatermark, QueuedMessage
from jingzhun.workspace import Workspace

START, END = dt.date(2024, 4, 1), dt.date(2024, 4, 28)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_shop(
        shared_shop(tmp_path_factory.getbasetemp()), tmp_path_factory.mktemp("bt") / "shop"
    )


def store_rows(ws: Workspace) -> dict[str, int]:
    with ws.store.session() as session:
        return {
            t.__tablename__: int(session.scalar(select(func.count()).select_from(t)) or 0)
            for t in (JourneyEnrollment, JourneyEvent, JourneyWatermark, QueuedMessage)
        }


def backtest(ws: Workspace, name: str, start: dt.date = START, end: dt.date = END):  # type: ignore[no-untyped-def]
    runner = runner_for(ws.project, ws.engine, ws.store)
    return backtest_journey(
        ws.engine,
        ws.store,
        runner.specs[name],
        start=start,
        end=end,
        timezone=ws.project.settings.timezone,
        settings=runner.settings,
        segments=runner.segments,
        include_late_loads=True,
    )


def test_ready_journeys_are_all_in_the_project(project: Path) -> None:
    assert set(TEMPLATES) <= set(load_journeys(project / "journeys"))
    assert "timezone" in PROFILE_FIELDS


def test_abandoned_cart_backtest_matches_the_runner_and_writes_nothing(project: Path) -> None:
    with Workspace.open(project) as ws:
        before = store_rows(ws)
        tables = ws.engine.tables()
        result = backtest(ws, "abandoned_cart")
        assert store_rows(ws) == before and ws.engine.tables() == tables
        data = result.to_dict()
        assert result.entered >= 20 and result.customers <= result.entered
        steps = data["steps"]
        wait, reminder = steps["bought_within_the_hour"], steps["reminder"]
        assert wait["reached"] == result.entered
        assert reminder["reached"] == reminder["queued"] + sum(reminder["skipped"].values())
        assert steps["reminded"]["reached"] == reminder["reached"]
        assert data["messages"].get("email", 0) == reminder["queued"] > 0
        assert sum(data["messages_by_day"].values()) == reminder["queued"]
        assert set(reminder["skipped"]) <= {
            "no consent",
            "unreachable",
            "frequency cap",
            "no profile",
        }
        assert sum(data["exits"].values()) == result.entered
        for row in data["sample"]:
            at = dt.datetime.fromisoformat(row["send_at"])
            assert row["step"] == "reminder" and row["channel"] == "email"
            # an hour after a cart, never in quiet hours (21:00-08:00 London)
            local = at.astimezone(dt.timezone(dt.timedelta(hours=1)))  # BST in April
            assert dt.time(8) <= local.time() < dt.time(21)
            assert START <= at.date() <= END + dt.timedelta(days=1)


def test_backtest_of_one_day_agrees_with_running_the_day(project: Path, tmp_path: Path) -> None:
    """Replaying a day and running the journey through the same day queue the same people."""
    day = dt.date(2024, 4, 20)
    copy = copy_shop(project, tmp_path / "run")
    (copy / "journeys" / "once.yml").write_text(
        """\
trigger: {event: added_to_cart, lookback: 1s}
goal: {event: order}
steps:
  - id: bought
    wait_for: {event: order, within: 1h}
    on_event: end
  - id: reminder
    send: {channel: email, content: {subject: "Your cart", text: "is waiting"}}
"""
    )
    with Workspace.open(copy) as ws:
        replay = backtest(ws, "once", day, day)
        sent = {row["customer_key"] for row in replay.to_dict()["sample"]}
        runner = runner_for(ws.project, ws.engine, ws.store)
        midnight = dt.datetime(2024, 4, 19, 23, 0, tzinfo=dt.UTC)  # 00:00 in London
        for hour in range(25):  # enrol through the day, hour by hour
            runner.run(midnight + dt.timedelta(hours=hour), journeys=["once"])
        for hour in (25, 26):  # then only finish the waits of the day's carts
            runner.run_due(midnight + dt.timedelta(hours=hour), journeys=["once"])
        with ws.store.session() as session:
            queued = set(
                session.scalars(
                    select(QueuedMessage.customer_key).where(
                        QueuedMessage.campaign == "journey:once"
                    )
                )
            )
    assert replay.messages.get("email", 0) == len(queued) > 0
    assert sent <= queued


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_ready_journey_backtests(project: Path, name: str) -> None:
    with Workspace.open(project) as ws:
        if name == "dormant_comeback":
            # the segment entries of the build (as of 2024-04-29)
            result = backtest(ws, name, dt.date(2024, 4, 29), dt.date(2024, 4, 29))
        elif name == "birthday":
            result = backtest(ws, name, dt.date(2024, 1, 1), dt.date(2024, 12, 31))
        else:
            result = backtest(ws, name)
        data = result.to_dict()
    assert result.entered > 0, data
    assert sum(data["exits"].values()) == result.entered
    first = next(iter(data["steps"].values()))
    assert first["reached"] == result.entered
    if name == "birthday":
        # everyone with a birth date enters once in a year, and is greeted at 09:00 London
        assert result.customers == result.entered
        assert all(dt.datetime.fromisoformat(r["send_at"]).minute == 0 for r in data["sample"])
    if name == "dormant_comeback":
        steps = data["steps"]
        assert steps["valuable"]["reached"] == (
            steps["alert_sales"]["reached"] + steps["winback"]["reached"]
        )
    if name == "welcome_series":
        assert data["steps"]["welcome"]["queued"] > 0
