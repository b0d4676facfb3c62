"""The campaign report page: every number shown is the JSON value at the path it names (read
back out of the HTML), every number of the JSON is shown, the page works offline, PNG charts
are written in one kaleido session, and without kaleido or Chromium the page says so."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from campaign_outcomes_project import CAMPAIGN, Shop, launched_shop
from plotly.offline import get_plotlyjs

import jingzhun.measure._campaign_report as campaign_report
from jingzhun.measure import CampaignKpis, campaign_kpis, write_campaign_report
from jingzhun.workspace import Workspace


class ValueElements(HTMLParser):
    """Every element that carries a JSON value: its paths, exact value and shown text."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if "data-fields" in named:
            self._open.append(
                {
                    "tag": tag,
                    "paths": json.loads(named["data-fields"] or "[]"),
                    "value": json.loads(named["data-value"] or ""),
                    "text": "",
                }
            )

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1]["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1]["tag"] == tag:
            self.values.append(self._open.pop())


def value_elements(page: str) -> list[dict[str, Any]]:
    parser = ValueElements()
    parser.feed(page)
    return parser.values


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
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def check_page_against_json(page: str, payload: dict[str, Any], prefix: tuple = ()) -> set[tuple]:
    """Every value element equals the JSON at each of its paths, exactly, and shows it."""
    elements = value_elements(page)
    assert elements, "the page has no value elements"
    covered: set[tuple] = set()
    for element in elements:
        for path in element["paths"]:
            assert at_path(payload, path) == element["value"], path
            covered.add(tuple(path))
        assert element["text"] == shown(element["value"]), element
    return covered


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return launched_shop(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def kpis(shop: Shop) -> CampaignKpis:
    with Workspace.open(shop.root) as ws:
        return campaign_kpis(
            ws.engine, ws.store, ws.campaigns.spec(CAMPAIGN), as_of=shop.as_of, currency="GBP"
        )


def test_every_number_in_the_page_is_the_json(kpis: CampaignKpis, tmp_path: Path) -> None:
    files = write_campaign_report(kpis, tmp_path / "reports" / "spring.html")
    page = files.html.read_text(encoding="utf-8")
    payload = json.loads(json.dumps(kpis.to_dict()))
    covered = check_page_against_json(page, payload)
    missing = sorted(set(value_leaves(payload)) - covered, key=str)
    assert not missing, f"JSON values not in the page: {missing}"

    # the tiles: incremental conversions with their interval, ROI
    overall = payload["incrementality"]["overall"]
    tiles = [e for e in value_elements(page) if e["tag"] == "span"]
    shown_paths = {tuple(p) for e in tiles for p in e["paths"]}
    assert ("incrementality", "overall", "incremental_conversions") in shown_paths
    assert ("incrementality", "overall", "incremental_conversions_ci", 0) in shown_paths
    assert ("incrementality", "overall", "incremental_roi") in shown_paths
    assert overall["incremental_revenue"] == 471.25  # 651.25 - 12 over 30, less 56 over 10, × 30

    # offline: plotly.js inlined once, nothing fetched from the network
    assert page.count(get_plotlyjs()) == 1
    rest = page.replace(get_plotlyjs(), "")
    assert "<script src=" not in rest and "cdn.plot.ly" not in rest and "https://" not in rest

    # PNG charts, one kaleido session for all four
    assert files.notes == []
    assert sorted(p.name for p in files.images) == [
        "spring-daily.png",
        "spring-funnel.png",
        "spring-lift-conversions.png",
        "spring-lift-revenue.png",
    ]
    for image in files.images:
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_kaleido_the_page_is_written_and_says_why(
    kpis: CampaignKpis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = campaign_report.importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "kaleido" else real(name, *args)

    monkeypatch.setattr(campaign_report.importlib.util, "find_spec", find_spec)
    files = write_campaign_report(kpis, tmp_path / "spring.html")
    assert files.html.is_file() and files.images == []
    assert "kaleido==1.5.0" in files.notes[0] and "skipped" in files.notes[0]


def test_without_chromium_the_page_is_written_and_says_why(
    kpis: CampaignKpis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kaleido

    class ChromeNotFoundError(RuntimeError):
        pass

    def no_browser(*args: object, **kwargs: object) -> None:
        raise ChromeNotFoundError("Chrome not found")

    monkeypatch.setattr(kaleido, "write_fig_from_object_sync", no_browser)
    files = write_campaign_report(kpis, tmp_path / "spring.html")
    assert files.html.is_file() and files.images == []
    assert "ChromeNotFoundError" in files.notes[0] and "Chromium" in files.notes[0]
    assert not list(tmp_path.glob("*.png"))
