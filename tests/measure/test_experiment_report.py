"""The experiment report page: every number in its tables is the JSON value at the path the
cell names (read back out of the HTML), every number of the JSON is in the page, the page
works offline, data text is escaped, and PNG charts are written or their absence explained."""

from __future__ import annotations

import importlib.util
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from helpers import shared_file
from jingzhun.measure import (
    PNG_PACKAGE,
    ExperimentReport,
    analyze_experiment,
    plot_lift,
    write_experiment_report,
)

CONTROL = "No E-Mail"


class TableCells(HTMLParser):
    """Collects every table cell that carries a JSON value: its paths, exact value and text."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "td" and "data-fields" in named:
            self._open = {
                "paths": json.loads(named["data-fields"] or "[]"),
                "value": json.loads(named["data-value"] or ""),
                "text": "",
            }

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._open is not None:
            self.cells.append(self._open)
            self._open = None


def table_cells(page: str) -> list[dict[str, Any]]:
    parser = TableCells()
    parser.feed(page)
    return parser.cells


def at_path(payload: Any, path: list[Any]) -> Any:
    for key in path:
        payload = payload[key]
    return payload


def value_leaves(payload: Any, path: tuple = ()) -> dict[tuple, Any]:
    """Every number and boolean in a JSON document, by its path."""
    if isinstance(payload, dict):
        items = payload.items()
    elif isinstance(payload, list):
        items = enumerate(payload)
    else:
        if isinstance(payload, bool | int | float):
            return {path: payload}
        return {}
    leaves: dict[tuple, Any] = {}
    for key, value in items:
        leaves.update(value_leaves(value, (*path, key)))
    return leaves


def shown(value: Any) -> str:
    """How the page prints a value: six significant digits, thousands separators, yes/no."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.6g}"


@pytest.fixture(scope="module")
def hillstrom() -> pd.DataFrame:
    return pd.read_csv(shared_file("hillstrom/hillstrom.csv.gz"))


@pytest.fixture(scope="module", params=["plain", "cuped"])
def report(request: pytest.FixtureRequest, hillstrom: pd.DataFrame) -> ExperimentReport:
    covariates = {"spend": "history"} if request.param == "cuped" else None
    return analyze_experiment(
        hillstrom, "segment", CONTROL, ["visit", "conversion", "spend"], covariates=covariates
    )


def test_every_number_in_the_page_is_the_json(report: ExperimentReport, tmp_path: Path) -> None:
    files = write_experiment_report(
        report, tmp_path / "reports" / "hillstrom.html", title="Hillstrom", images=False
    )
    page = files.html.read_text(encoding="utf-8")
    payload = json.loads(json.dumps(report.to_dict()))
    cells = table_cells(page)
    assert cells, "the page has no value cells"
    covered: set[tuple] = set()
    for cell in cells:
        for path in cell["paths"]:
            assert at_path(payload, path) == cell["value"], path  # exact, not approximate
            covered.add(tuple(path))
        assert cell["text"] == shown(cell["value"])
    leaves = value_leaves(payload)
    missing = sorted(set(leaves) - covered, key=str)
    assert not missing, f"JSON values not in the page: {missing}"

    # Hillstrom, Mens E-Mail against No E-Mail on visit: +7.659 pt [+6.995, +8.323]
    visit = report.get("Mens E-Mail", "visit")
    index = report.comparisons.index(visit)
    lift = [c for c in cells if ["comparisons", index, "absolute_lift"] in c["paths"]]
    assert lift[0]["text"] == "0.0765896" and lift[0]["value"] == visit.absolute_lift
    arms = [c for c in cells if ["arms", CONTROL] in c["paths"]]
    assert arms[0]["text"] == "21,306" and ["srm", "observed", CONTROL] in arms[0]["paths"]
    if report.comparisons[-1].theta is not None:
        assert "CUPED theta" in page
    else:
        assert "CUPED theta" not in page


def test_the_page_works_offline(report: ExperimentReport, tmp_path: Path) -> None:
    files = write_experiment_report(report, tmp_path / "r.html", images=False)
    page = files.html.read_text(encoding="utf-8")
    plotly_js = get_plotlyjs()
    assert page.count(plotly_js) == 1
    rest = page.replace(plotly_js, "")
    assert not re.search(r"https?://", rest)
    assert "<script src=" not in page
    assert rest.count("<script") == 1 + 3 + 1  # plotly.js, one per metric, resize on load
    for index in range(3):
        assert f'<div id="chart-lift-{index}"' in rest
    assert "No sample-ratio mismatch" in rest


def test_the_chart_draws_the_json_values(report: ExperimentReport) -> None:
    figure = plot_lift(report, "spend")
    xs = [list(trace.x) for trace in figure.data]
    for comparison in report.for_metric("spend"):
        assert [comparison.ci_low, comparison.ci_high] in xs
        assert [comparison.absolute_lift] in xs
    with pytest.raises(KeyError):
        plot_lift(report, "revenue")


def test_text_from_the_data_is_escaped(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "arm": ["<b>ctl</b>"] * 50 + ["<script>alert(1)</script>"] * 50,
            "clicks & <more>": rng.integers(0, 2, 100),
        }
    )
    report = analyze_experiment(frame, "arm", "<b>ctl</b>", ["clicks & <more>"])
    files = write_experiment_report(
        report, tmp_path / "x.html", title="Test <1>", notes=["from <file>"], images=False
    )
    page = files.html.read_text(encoding="utf-8").replace(get_plotlyjs(), "")
    assert "<script>alert" not in page and "<b>ctl" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "clicks &amp; &lt;more&gt;" in page
    assert "<title>Test &lt;1&gt;</title>" in page and "from &lt;file&gt;" in page
    for cell in table_cells(page):
        for path in cell["paths"]:
            assert at_path(report.to_dict(), path) == cell["value"]


def test_png_charts_or_a_note_that_says_what_to_install(
    report: ExperimentReport, tmp_path: Path
) -> None:
    files = write_experiment_report(report, tmp_path / "hillstrom.html")
    assert files.html.is_file()
    if importlib.util.find_spec("kaleido") is None:
        assert files.images == []
        assert len(files.notes) == 1 and PNG_PACKAGE in files.notes[0]
        assert not list(tmp_path.glob("*.png"))
    else:  # pragma: no cover - kaleido is not a dependency yet
        assert [p.name for p in files.images] == [
            "hillstrom-visit.png",
            "hillstrom-conversion.png",
            "hillstrom-spend.png",
        ]
        assert all(p.read_bytes().startswith(b"\x89PNG") for p in files.images)
    assert write_experiment_report(report, tmp_path / "b.html", images=False).notes == []
    assert files.to_dict()["html"] == str(files.html)
