"""``jingzhun journey`` end to end: validate, run, status, backtest with --json and exit codes;
and a journey's messages delivered by the real worker to a real SMTP server, once each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from journey_shop import copy_shop, shared_shop, write_journey
from sqlalchemy import select
from typer.testing import CliRunner

from jingzhun.cli import app
from jingzhun.cli._journey import journey_app
from jingzhun.demo._smtp_sink import SmtpSink
from jingzhun.store import Delivery
from jingzhun.workspace import Workspace

cli = CliRunner()
WELCOME = """\
name: hello
trigger: {event: added_to_cart, lookback: 7d}
steps:
  - id: hello
    send:
      channel: email
      content:
        subject: "Hello {{ customer | first_name_or('there') }}"
        text: "Thanks for shopping, {{ customer | first_name_or('friend') }}."
  - id: later
    wait: 8d
  - id: again
    send: {channel: email, content: {subject: "Still there?", text: "A day later"}}
"""
DELIVERY = """\
email:
  host: 127.0.0.1
  port: {port}
  security: none
  from_address: "Shop <news@shop.example>"
tracking:
  secret_env: JZ_TEST_TRACKING_SECRET
  base_url: https://t.shop.example
  unsubscribe_url: https://t.shop.example/unsubscribe
  unsubscribe_mailto: unsubscribe@shop.example
"""


@pytest.fixture
def project(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return copy_shop(shared_shop(tmp_path_factory.getbasetemp()), tmp_path / "shop")


def run(*args: str) -> tuple[int, dict[str, object]]:
    result = cli.invoke(journey_app, [*args, "--json"])
    try:
        return result.exit_code, json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(result.output) from None


def test_validate_list_run_status_and_backtest(project: Path) -> None:
    p = str(project)
    code, data = run("validate", "--project", p)
    assert code == 0 and set(data["journeys"]) >= {"abandoned_cart", "birthday"}  # type: ignore[arg-type]
    code, data = run("list", "--project", p)
    assert code == 0 and data["count"] == 4
    code, data = run("run", "--now", "2024-04-20T13:00", "--project", p)
    assert code == 0 and data["now"] == "2024-04-20T12:00:00+00:00"  # London summer time
    totals = data["totals"]
    assert isinstance(totals, dict) and totals["enrolled"] > 0
    code, data = run("status", "abandoned_cart", "--project", p)
    assert code == 0 and sum(data["enrollments"].values()) > 0  # type: ignore[union-attr]
    assert data["watermark"] == "2024-04-20T12:00:00+00:00"
    code, data = run(
        "backtest", "abandoned_cart", "--from", "2024-04-01", "--to", "2024-04-07", "--project", p
    )
    assert code == 0 and data["entered"] > 0 and data["from"] == "2024-04-01"


def test_errors_name_file_line_and_exit_non_zero(project: Path) -> None:
    p = str(project)
    write_journey(project, "broken", "trigger: {event: x}\nsteps:\n  - id: a\n    wait: forever\n")
    code, data = run("validate", "--project", p)
    assert code == 2
    problem = data["problems"][0]  # type: ignore[index]
    assert problem["file"].endswith("journeys/broken.yml") and problem["line"] == 4
    assert problem["field"] == "steps.0.wait"
    (project / "journeys" / "broken.yml").unlink()
    code, data = run("status", "nope", "--project", p)
    assert code == 3 and "abandoned_cart" in str(data["message"])
    write_journey(
        project,
        "untemplated",
        "trigger: {event: x}\nsteps:\n  - id: a\n    send: {channel: email, template: missing}\n",
    )
    code, data = run("run", "--project", p)
    assert code == 2 and "no template 'missing'" in str(data["message"])
    result = cli.invoke(
        journey_app,
        ["backtest", "birthday", "--from", "2024-13-01", "--to", "2024-01-02", "--project", p],
    )
    assert result.exit_code == 2


def test_journey_messages_reach_a_real_smtp_server_exactly_once(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = str(project)
    for path in (project / "journeys").glob("*.yml"):
        path.unlink()
    write_journey(project, "hello", WELCOME)
    monkeypatch.setenv("JZ_TEST_TRACKING_SECRET", "x" * 32)
    with SmtpSink() as sink:
        (project / "delivery.yml").write_text(DELIVERY.format(port=sink.port))

        def worker() -> dict[str, int]:
            result = cli.invoke(
                app, ["worker", "--once", "--worker-id", "t1", "--project", p, "--json"]
            )
            assert result.exit_code == 0, result.output
            return json.loads(result.stdout)  # type: ignore[no-any-return]

        code, first = run("run", "--now", "2024-04-20T13:00", "--project", p)
        assert code == 0
        queued = first["totals"]["queued"]  # type: ignore[index]
        assert queued >= 5
        report = worker()
        assert report["sent"] == queued, report
        # the same run and the worker again: nothing is queued or sent twice
        assert run("run", "--now", "2024-04-20T13:00", "--project", p)[1]["totals"]["queued"] == 0  # type: ignore[index]
        assert worker()["sent"] == 0
        # eight days later the second step goes out to the same people (and the first step
        # to the carts of those days), each once
        code, later = run("run", "--now", "2024-04-28T14:00", "--project", p)
        more = later["totals"]["queued"]  # type: ignore[index]
        assert more > queued
        assert worker()["sent"] == more
        assert run("run", "--now", "2024-04-28T14:00", "--project", p)[1]["totals"]["queued"] == 0  # type: ignore[index]
        assert worker()["sent"] == 0
        received = list(sink.messages)
    ids = [m["Message-ID"] for m in received]
    assert len(ids) == queued + more == len(set(ids))
    again = [m for m in received if m["Subject"] == "Still there?"]
    # everyone greeted in the first run hears again (and the carts of the first hour after it)
    assert {m["To"] for m in received[:queued]} <= {m["To"] for m in again}
    hello = [m for m in received if m["Subject"] != "Still there?"]
    assert all(m["Subject"].startswith("Hello ") for m in hello)
    assert {m["To"] for m in again} <= {m["To"] for m in hello}
    # the delivery log names the journey step of every message
    with Workspace.open(project) as ws, ws.store.session() as session:
        logged = session.scalars(select(Delivery)).all()
    assert len(logged) == queued + more
    assert all(d.campaign == "journey:hello" and d.journey_step for d in logged)
