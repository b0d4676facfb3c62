"""Ad reports: delivery, cost and results per campaign, creative, audience segment and day,
as tables (``AdReport``) and one offline HTML page with charts (``write_ad_report``).

Everything is counted on the day the impression was served (project time zone): a click,
its cost and its conversions belong to their impression's campaign, creative, segment and
day. ``clicks`` are valid clicks (after the rules and any later credit), ``spend`` is the
ledger's charges minus credits, ``reach`` counts distinct people (customer, else anonymous
id, device or IP), ``frequency = impressions / reach``, ``CTR = clicks / impressions``,
``CPC = spend / clicks``, ``CPA = spend / conversions``, ``ROAS = conversion value / spend``.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from jingzhun.ads._ledger import AdLogs, read_logs
from jingzhun.engine import Engine
from jingzhun.profile import PROFILES
from jingzhun.store import OperationalStore

METRICS = (
    "impressions",
    "reach",
    "frequency",
    "clicks",
    "invalid_clicks",
    "ctr",
    "spend",
    "cpc",
    "conversions",
    "conversion_value",
    "cpa",
    "roas",
)
DIMENSIONS = ("campaign", "creative", "segment", "day")


@dataclass
class AdReport:
    """The report's tables (one per dimension) and totals."""

    tables: dict[str, pd.DataFrame]
    totals: dict[str, Any]
    segment_by: str
    currency: str

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""

        def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
            clean = frame.replace({np.nan: None})
            return [
                {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                for r in clean.to_dict("records")
            ]

        return {
            "segment_by": self.segment_by,
            "currency": self.currency,
            "totals": self.totals,
            **{f"by_{name}": rows(frame) for name, frame in self.tables.items()},
        }


def _ratios(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["frequency"] = out["impressions"] / out["reach"].replace(0, np.nan)
    out["ctr"] = out["clicks"] / out["impressions"].replace(0, np.nan)
    out["cpc"] = out["spend"] / out["clicks"].replace(0, np.nan)
    out["cpa"] = out["spend"] / out["conversions"].replace(0, np.nan)
    out["roas"] = out["conversion_value"] / out["spend"].replace(0, np.nan)
    return out


def _segments(engine: Engine | None, column: str) -> dict[str, str]:
    if engine is None or not engine.exists(PROFILES):
        return {}
    profiles = engine.read(PROFILES)
    if column not in profiles.columns:
        known = ", ".join(profiles.columns)
        raise ValueError(f"segment_by '{column}' is not a profile column; columns: {known}")
    rows = engine.execute(profiles.select("customer_key", column)).to_pylist()
    return {str(r["customer_key"]): str(r[column]) for r in rows if r[column] is not None}


def ad_report(
    store: OperationalStore,
    engine: Engine | None = None,
    *,
    timezone: str = "UTC",
    segment_by: str = "value_tier",
    currency: str = "",
    logs: AdLogs | None = None,
) -> AdReport:
    """The report over every logged impression (or over ``logs``); ``segment_by`` is the
    profile column that splits people into segments (``anonymous`` for unknown visitors).
    """
    logs = logs or read_logs(store)
    imps = logs.impressions.copy()
    if len(imps) == 0:
        empty = pd.DataFrame(columns=[*DIMENSIONS[:1], *METRICS])
        return AdReport(
            {d: empty for d in DIMENSIONS}, {m: 0 for m in METRICS}, segment_by, currency
        )
    segments = _segments(engine, segment_by)
    imps["day"] = imps["served_at"].dt.tz_convert(timezone).dt.date.astype(str)
    imps["segment"] = imps["customer_key"].map(segments)
    imps.loc[imps["customer_key"].isna(), "segment"] = "anonymous"
    imps["segment"] = imps["segment"].fillna("unknown")
    imps["person"] = (
        imps["customer_key"]
        .fillna(imps["anonymous_id"])
        .fillna(imps["device_id"])
        .fillna(imps["ip"])
    )
    clicks = logs.clicks.merge(
        imps[["impression_id", "day", "segment"]], on="impression_id", how="inner"
    )
    ledger = logs.ledger
    net = ledger.groupby("click_id")["amount"].sum() if len(ledger) else pd.Series(dtype=float)
    clicks["spend"] = clicks["click_id"].map(net).fillna(0.0)
    clicks["valid"] = clicks["valid"].astype(bool)
    conversions = logs.conversions.merge(
        clicks[["click_id", "impression_id"]], on="click_id", how="inner"
    )
    imps_by_id = imps.set_index("impression_id")
    keys = ["campaign", "creative", "segment", "day"]
    for key in keys[1:]:
        if key not in conversions:
            conversions[key] = conversions["impression_id"].map(imps_by_id[key])
    tables: dict[str, pd.DataFrame] = {}
    for dimension in DIMENSIONS:
        a = imps.groupby(dimension).agg(
            impressions=("impression_id", "size"), reach=("person", "nunique")
        )
        c = clicks.groupby(dimension).agg(
            clicks=("valid", "sum"),
            invalid_clicks=("valid", lambda v: int((~v).sum())),
            spend=("spend", "sum"),
        )
        v = conversions.groupby(dimension).agg(
            conversions=("conversion_id", "size"), conversion_value=("value", "sum")
        )
        frame = (
            a.join(c, how="left")
            .join(v, how="left")
            .fillna(
                {
                    "clicks": 0,
                    "invalid_clicks": 0,
                    "spend": 0.0,
                    "conversions": 0,
                    "conversion_value": 0.0,
                }
            )
        )
        frame = _ratios(frame).reset_index()
        for column in ("impressions", "reach", "clicks", "invalid_clicks", "conversions"):
            frame[column] = frame[column].astype(int)
        tables[dimension] = frame[[dimension, *METRICS]]
    totals_frame = _ratios(
        pd.DataFrame(
            {
                "impressions": [len(imps)],
                "reach": [imps["person"].nunique()],
                "clicks": [int(clicks["valid"].sum())],
                "invalid_clicks": [int((~logs.clicks["valid"].astype(bool)).sum())],
                "spend": [float(clicks["spend"].sum())],
                "conversions": [len(conversions)],
                "conversion_value": [float(conversions["value"].sum())],
            }
        )
    )
    totals = {
        k: (None if pd.isna(v) else (round(float(v), 4) if isinstance(v, float) else int(v)))
        for k, v in totals_frame.iloc[0].items()
    }
    return AdReport(tables, totals, segment_by, currency)


# -- the page ---------------------------------------------------------------------------------

_CSS = """
body { margin: 0; background: #f3f4f6; color: #1f2937;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { background: #fff; border-bottom: 1px solid #e5e7eb; padding: 20px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; } header p { margin: 0; color: #6b7280; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 32px 48px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px;
  margin-bottom: 20px; }
.kpi, .card { background: #fff; border: 1px solid #e5e7eb; border-radius: 10px; padding: 14px; }
.kpi .label { color: #6b7280; font-size: 12px; text-transform: uppercase; }
.kpi .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(520px, 100%), 1fr));
  gap: 16px; margin-bottom: 16px; }
h2 { font-size: 16px; margin: 0 0 8px; }
table { width: 100%; border-collapse: collapse; font-size: 13px;
  font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e5e7eb; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.card + .card { margin-top: 16px; }
"""


def _figure(figure: go.Figure, div_id: str) -> str:
    figure.update_layout(
        template="plotly_white",
        margin={"l": 8, "r": 8, "t": 8, "b": 8},
        legend={"orientation": "h", "y": 1.12, "x": 0},
        height=320,
    )
    return pio.to_html(
        figure, include_plotlyjs=False, full_html=False, div_id=div_id,
        config={"displaylogo": False, "displayModeBar": False, "responsive": True},
    )  # fmt: skip


def _table(title: str, frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float):
                text = (
                    ""
                    if np.isnan(value)
                    else f"{value:,.4f}"
                    if abs(value) < 1
                    else f"{value:,.2f}"
                )
            else:
                text = str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="card"><h2>{html.escape(title)}</h2><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def write_ad_report(report: AdReport, path: Path, *, title: str = "Ads report") -> Path:
    """One HTML page (plotly.js inlined, works offline): totals, charts, the four tables."""
    t = report.totals
    money = report.currency + " " if report.currency else ""

    def fmt(name: str, value: Any) -> str:
        if value is None:
            return "–"
        if name in ("ctr",):
            return f"{100 * value:.2f} %"
        if name in ("spend", "cpc", "cpa", "conversion_value"):
            return f"{money}{value:,.2f}"
        if name in ("frequency", "roas"):
            return f"{value:.2f}"
        return f"{value:,}"

    kpis = "".join(
        f'<div class="kpi"><div class="label">{name.replace("_", " ")}</div>'
        f'<div class="value">{html.escape(fmt(name, t.get(name)))}</div></div>'
        for name in METRICS
    )
    day = report.tables["day"]
    campaign = report.tables["campaign"]
    creative = report.tables["creative"]
    segment = report.tables["segment"]
    charts = []
    if len(day):
        f1 = go.Figure()
        f1.add_bar(x=day["day"], y=day["impressions"], name="impressions")
        f1.add_scatter(
            x=day["day"], y=day["clicks"], name="clicks", yaxis="y2", mode="lines+markers"
        )
        f1.update_layout(yaxis2={"overlaying": "y", "side": "right"})
        charts.append(("Impressions and clicks by day", _figure(f1, "by_day")))
        f2 = go.Figure()
        f2.add_bar(x=day["day"], y=day["spend"], name="spend")
        f2.add_scatter(x=day["day"], y=day["roas"], name="ROAS", yaxis="y2", mode="lines+markers")
        f2.update_layout(yaxis2={"overlaying": "y", "side": "right"})
        charts.append(("Spend and ROAS by day", _figure(f2, "spend_day")))
    if len(campaign):
        f3 = go.Figure()
        f3.add_bar(x=campaign["campaign"], y=campaign["spend"], name="spend")
        f3.add_bar(x=campaign["campaign"], y=campaign["conversion_value"], name="conversion value")
        charts.append(("Spend and conversion value by campaign", _figure(f3, "campaign")))
    if len(creative):
        f4 = go.Figure()
        f4.add_bar(x=creative["creative"], y=100 * creative["ctr"].fillna(0), name="CTR %")
        charts.append(("CTR by creative (%)", _figure(f4, "creative")))
    if len(segment):
        f5 = go.Figure()
        f5.add_bar(x=segment["segment"], y=segment["reach"], name="reach")
        f5.add_bar(x=segment["segment"], y=segment["clicks"], name="clicks")
        charts.append((f"Reach and clicks by {report.segment_by}", _figure(f5, "segment")))
    cards = "".join(f'<div class="card"><h2>{html.escape(a)}</h2>{b}</div>' for a, b in charts)
    tables = "".join(_table(f"By {name}", frame) for name, frame in report.tables.items())
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title><style>{_CSS}</style>",
            f"<script>{get_plotlyjs()}</script></head><body>",
            f"<header><h1>{html.escape(title)}</h1><p>generated {generated}; segments by "
            f"{html.escape(report.segment_by)}</p></header>",
            f'<main><div class="kpis">{kpis}</div><div class="charts">{cards}</div>{tables}</main>',
            "</body></html>",
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
