"""``jingzhun attribution``, ``jingzhun funnel`` and ``experiment analyze --report``: JSON equal
to the library's, tables for people, and errors with their exit codes."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from helpers import shared_file
from jingzhun.cli import app as jingzhun_app
from jingzhun.cli._measure import parse_duration, register
from jingzhun.core import ExitCode, SpecError, init_project
from jingzhun.measure import attribute, simulate_journeys
from jingzhun.workspace import Workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """An application with the two commands, as ``register`` adds them to ``jingzhun``."""
    application = typer.Typer()
    register(application)
    return application


@pytest.fixture(scope="module")
def touches_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sim = simulate_journeys(2_000, {"display": 0.08, "email": 0.04, "search": 0.01}, 0.02, seed=5)
    path = tmp_path_factory.mktemp("touches") / "touches.csv"
    sim.touches.to_csv(path, index=False)
    return path


def test_attribution_json_equals_the_library(app: typer.Typer, touches_csv: Path) -> None:
    result = runner.invoke(app, ["attribution", "--touches", str(touches_csv), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["touch_log"] == str(touches_csv)
    expected = attribute(pd.read_csv(touches_csv), source=touches_csv).to_dict()
    assert {k: v for k, v in payload.items() if k != "touch_log"} == expected
    assert sum(payload["models"]["shapley"]["conversions"].values()) == pytest.approx(
        payload["conversions"]
    )


def test_attribution_table_for_people(app: typer.Typer, touches_csv: Path) -> None:
    result = runner.invoke(
        app,
        [
            "attribution",
            "--touches",
            str(touches_csv),
            "--models",
            "last_touch,markov",
            "--markov-order",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "touches.csv" in result.stdout and "last_touch" in result.stdout
    assert "shapley" not in result.stdout
    assert "Markov: P(conversion)" in result.stdout
    for channel in ("display", "email", "search"):
        assert channel in result.stdout


def test_attribution_with_conversion_events(app: typer.Typer, tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(
        "customer,at,source,revenue\n"
        "007,2024-01-01 10:00:00,email,\n"
        "007,2024-01-02 10:00:00,search,\n"
        "007,2024-01-02 11:00:00,purchase,30\n"
        "8,2024-01-01 10:00:00,search,\n",
        encoding="utf-8",
    )
    result = runner.invoke(
        app,
        [
            "attribution",
            "--touches",
            str(log),
            "--journey-col",
            "customer",
            "--time-col",
            "at",
            "--channel-col",
            "source",
            "--conversion-event",
            "purchase",
            "--value-col",
            "revenue",
            "--models",
            "first_touch,time_decay",
            "--half-life",
            "1d",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["journeys"], payload["paths"], payload["conversions"]) == (2, 2, 1.0)
    assert payload["models"]["first_touch"]["value"] == {"email": 30.0, "search": 0.0}
    # ages 25 h and 1 h with a one-day half-life
    email, search = 2 ** (-25 / 24), 2 ** (-1 / 24)
    assert payload["models"]["time_decay"]["conversions"]["email"] == pytest.approx(
        email / (email + search), rel=1e-12
    )


def test_attribution_errors(app: typer.Typer, touches_csv: Path, tmp_path: Path) -> None:
    missing = runner.invoke(
        app, ["attribution", "--touches", str(touches_csv), "--channel-col", "source"]
    )
    assert missing.exit_code == ExitCode.DATA_ERROR
    assert "column 'source'" in missing.output and "touches.csv" in missing.output

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "journey_id,timestamp,channel,converted\n"
        "a,2024-01-01 10:00:00,email,1\n"
        "a,2024-13-01 10:00:00,search,1\n",
        encoding="utf-8",
    )
    when = runner.invoke(app, ["attribution", "--touches", str(bad), "--json"])
    assert when.exit_code == ExitCode.DATA_ERROR
    error = json.loads(when.stdout)
    assert (error["row"], error["column"]) == (3, "timestamp")

    for extra, text in [
        (["--half-life", "a week"], "not a duration"),
        (["--models", "last_click"], "'last_click' is not one of"),
        (["--conversion-col", "converted", "--conversion-event", "buy"], "give one"),
        (["--first", "0.7", "--last", "0.7"], "at most 1"),
    ]:
        result = runner.invoke(app, ["attribution", "--touches", str(touches_csv), *extra])
        assert result.exit_code == ExitCode.SPEC_ERROR, (extra, result.output)
        assert text in result.output
    gone = runner.invoke(app, ["attribution", "--touches", str(tmp_path / "nope.csv")])
    assert gone.exit_code == ExitCode.NOT_FOUND


def test_parse_duration() -> None:
    where = Path("x")
    assert parse_duration("7d", "--within", where).total_seconds() == 7 * 86_400
    assert parse_duration("1d12h", "--within", where).total_seconds() == 36 * 3_600
    assert parse_duration("1.5h", "--within", where).total_seconds() == 5_400
    assert parse_duration("2w", "--within", where).days == 14
    for text in ("", "7", "7 days", "d7", "7x"):
        with pytest.raises(SpecError, match="--within"):
            parse_duration(text, "--within", where)


EVENTS_SPEC = """\
name: web
path: data/events.csv
target: events
columns:
  event_id: id
  event_type: step
  occurred_at: {from: at, format: "%Y-%m-%d %H:%M:%S"}
  customer_id: who
"""
CUSTOMERS_SPEC = """\
name: crm
path: data/customers.csv
target: customers
columns:
  customer_id: who
"""
# a: views Jan 1 and Jan 10, cart Jan 11, order Jan 12; b: view, cart, order before the cart;
# c: all at the same moment.
EVENTS_CSV = """\
id,who,at,step
1,a,2024-01-01 00:00:00,view
2,a,2024-01-10 00:00:00,view
3,a,2024-01-11 00:00:00,cart
4,a,2024-01-12 00:00:00,order
5,b,2024-01-01 00:00:00,view
6,b,2024-01-02 00:00:00,cart
7,b,2024-01-01 12:00:00,order
8,c,2024-01-01 09:00:00,view
9,c,2024-01-01 09:00:00,cart
10,c,2024-01-01 09:00:00,order
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = init_project(tmp_path_factory.mktemp("funnel") / "shop", name="shop")
    (root / "sources" / "web.yml").write_text(EVENTS_SPEC, encoding="utf-8")
    (root / "sources" / "crm.yml").write_text(CUSTOMERS_SPEC, encoding="utf-8")
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "events.csv").write_text(EVENTS_CSV, encoding="utf-8")
    (root / "data" / "customers.csv").write_text("who\na\nb\nc\n", encoding="utf-8")
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
    return root


def test_funnel_json(app: typer.Typer, project: Path) -> None:
    base = ["funnel", "--steps", "view,cart,order", "--project", str(project), "--json"]
    today = runner.invoke(app, base)
    assert today.exit_code == 0, today.output
    assert [s["customers"] for s in json.loads(today.stdout)["steps"]] == [3, 3, 2]
    fast = runner.invoke(app, [*base, "--within", "12h"])
    assert [s["customers"] for s in json.loads(fast.stdout)["steps"]] == [3, 1, 1]
    # loaded today: on Jan 10 2024 nothing was loaded yet, unless late loads count
    past = [*base, "--within", "3d", "--as-of", "2024-01-10"]
    assert [s["customers"] for s in json.loads(runner.invoke(app, past).stdout)["steps"]] == [
        0,
        0,
        0,
    ]
    late = runner.invoke(app, [*past, "--include-late-loads"])
    payload = json.loads(late.stdout)
    assert [s["customers"] for s in payload["steps"]] == [3, 2, 1]
    assert payload["as_of"] == "2024-01-10" and payload["within_seconds"] == 3 * 86_400
    assert payload["steps"][1]["conversion_from_previous"] == pytest.approx(2 / 3)


def test_funnel_table_and_errors(app: typer.Typer, project: Path) -> None:
    shown = runner.invoke(
        app, ["funnel", "--steps", "view,cart,order", "--within", "3d", "-p", str(project)]
    )
    assert shown.exit_code == 0, shown.output
    assert "within 3 days" in shown.stdout and "66.7%" in shown.stdout
    bad = runner.invoke(app, ["funnel", "--steps", "view,cart", "--within", "soon", "-p", "."])
    assert bad.exit_code == ExitCode.SPEC_ERROR and "--within" in bad.output
    twice = runner.invoke(app, ["funnel", "--steps", "view,view", "-p", str(project)])
    assert twice.exit_code == ExitCode.SPEC_ERROR and "appear twice" in twice.output


class ValueCells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[list[Any], Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "td" and "data-fields" in named:
            paths = json.loads(named["data-fields"] or "[]")
            self.cells.append((paths, json.loads(named["data-value"] or "")))


def test_experiment_analyze_writes_the_report(tmp_path: Path) -> None:
    table = shared_file("hillstrom/hillstrom.csv.gz")
    args = [
        "experiment",
        "analyze",
        "--table",
        str(table),
        "--arm-col",
        "segment",
        "--control",
        "No E-Mail",
        "--metrics",
        "visit,conversion,spend",
        "--report",
        str(tmp_path / "out" / "hillstrom.html"),
    ]
    result = runner.invoke(jingzhun_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    page = Path(payload["report"]["html"])
    assert page.is_file() and page.name == "hillstrom.html"
    parser = ValueCells()
    parser.feed(page.read_text(encoding="utf-8"))
    assert len(parser.cells) > 50
    for paths, value in parser.cells:
        for path in paths:
            located: Any = payload
            for key in path:
                located = located[key]
            assert located == value, path  # the page says what --json says
    people = runner.invoke(jingzhun_app, args)
    assert people.exit_code == 0, people.output
    assert "report written to" in people.stdout and "hillstrom.html" in people.stdout
    blocked = tmp_path / "file"
    blocked.write_text("not a folder", encoding="utf-8")
    refused = runner.invoke(jingzhun_app, [*args[:-1], str(blocked / "r.html")])
    assert refused.exit_code == ExitCode.SPEC_ERROR and "--report" in refused.output
