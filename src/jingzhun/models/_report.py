"""A model as one self-contained HTML page: its metadata, headline metrics and charts.

Propensity and churn models get cumulative gains, lift by decile and calibration; uplift
models get the Qini curve, uplift by decile and per-arm outcomes in the top k. Other model
kinds (CLV's frequency–recency matrix and P(alive)) pass their own figures as
``extra_figures``. plotly.js is inlined once, so the page opens without internet; every text
from the data is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from jingzhun.models._registry import ModelRecord
from jingzhun.models._tabular import BinaryEvaluation
from jingzhun.models._uplift import UpliftEvaluation

CHART_HEIGHT = "340px"
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}
_MODEL = "#2563eb"
_RANDOM = "#9ca3af"
_CONTROL = "#f97316"

_CSS = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --card: #ffffff;
  --page: #f3f4f6; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
header { background: var(--card); border-bottom: 1px solid var(--line); padding: 20px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header .meta { margin: 0; color: var(--muted); }
header .meta span + span::before { content: "·"; margin: 0 8px; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 32px 48px; }
h2 { font-size: 16px; margin: 0 0 8px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 16px;
  margin-bottom: 24px; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 14px 16px; }
.kpi .label { color: var(--muted); font-size: 13px; text-transform: uppercase;
  letter-spacing: .04em; }
.kpi .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(520px, 100%), 1fr));
  gap: 16px; margin-bottom: 24px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px; min-width: 0; }
table { width: 100%; border-collapse: collapse; margin-top: 8px; font-size: 13px;
  font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
td.num, th.num { text-align: right; }
code { font-size: 12px; overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 16px; }
"""


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _text(value)
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _card(title: str, chart_id: str, figure: go.Figure, extra: str = "") -> str:
    figure.update_layout(
        template="plotly_white",
        margin={"l": 8, "r": 8, "t": 8, "b": 8},
        legend={"orientation": "h", "y": 1.12, "x": 0},
        font={"family": "system-ui, sans-serif", "size": 12},
    )
    body = pio.to_html(
        figure,
        include_plotlyjs=False,
        full_html=False,
        div_id=chart_id,
        config=_PLOTLY_CONFIG,
        default_height=CHART_HEIGHT,
    )
    return f'<div class="card"><h2>{_text(title)}</h2>{body}{extra}</div>'


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[int]) -> str:
    head = "".join(
        f'<th class="num">{_text(h)}</th>' if i in numeric else f"<th>{_text(h)}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_number(v)}</td>' if i in numeric else f"<td>{_text(v)}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- binary scores -------------------------------------------------------------------------------


def plot_gains(evaluation: BinaryEvaluation) -> go.Figure:
    """Cumulative share of positives captured against the share of customers targeted."""
    x = [g["targeted"] for g in evaluation.gains]
    y = [g["captured"] for g in evaluation.gains]
    return go.Figure(
        [
            go.Scatter(x=x, y=y, name="model", mode="lines+markers", marker_color=_MODEL),
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                name="random",
                mode="lines",
                line_dash="dash",
                marker_color=_RANDOM,
            ),
        ],
        layout={
            "xaxis": {"title": {"text": "share of customers targeted"}, "tickformat": ".0%"},
            "yaxis": {"title": {"text": "share of positives captured"}, "tickformat": ".0%"},
        },
    )


def plot_lift(evaluation: BinaryEvaluation) -> go.Figure:
    """Lift of each decile of the score (rate in the decile / base rate), highest first."""
    return go.Figure(
        [
            go.Bar(
                x=[str(row["decile"]) for row in evaluation.lift],
                y=[row["lift"] for row in evaluation.lift],
                name="lift",
                marker_color=_MODEL,
            ),
            go.Scatter(
                x=["1", "10"],
                y=[1, 1],
                name="base rate",
                mode="lines",
                line_dash="dash",
                marker_color=_RANDOM,
            ),
        ],
        layout={
            "xaxis": {"title": {"text": "decile of the score (1 = highest)"}, "type": "category"},
            "yaxis": {"title": {"text": "lift"}, "rangemode": "tozero"},
        },
    )


def plot_calibration(evaluation: BinaryEvaluation) -> go.Figure:
    """Observed rate against mean predicted probability, per decile of the prediction."""
    predicted = [row["mean_predicted"] for row in evaluation.calibration]
    observed = [row["observed_rate"] for row in evaluation.calibration]
    top = max([*predicted, *observed, 0.01])
    return go.Figure(
        [
            go.Scatter(
                x=predicted, y=observed, name="model", mode="lines+markers", marker_color=_MODEL
            ),
            go.Scatter(
                x=[0, top],
                y=[0, top],
                name="perfect",
                mode="lines",
                line_dash="dash",
                marker_color=_RANDOM,
            ),
        ],
        layout={
            "xaxis": {"title": {"text": "mean predicted probability"}},
            "yaxis": {"title": {"text": "observed rate"}},
        },
    )


def _binary_cards(evaluation: BinaryEvaluation) -> list[str]:
    lift_rows = [
        (r["decile"], r["rows"], r["positives"], r["rate"], r["lift"], r["cumulative_captured"])
        for r in evaluation.lift
    ]
    return [
        _card("Cumulative gains", "chart-gains", plot_gains(evaluation)),
        _card(
            "Lift by decile",
            "chart-lift",
            plot_lift(evaluation),
            _table(
                ["decile", "rows", "positives", "rate", "lift", "captured"],
                lift_rows,
                {0, 1, 2, 3, 4, 5},
            ),
        ),
        _card("Calibration", "chart-calibration", plot_calibration(evaluation)),
    ]


# -- uplift ------------------------------------------------------------------------------------


def plot_qini(evaluation: UpliftEvaluation) -> go.Figure:
    """The Qini curve: incremental outcomes (share of all rows) by share targeted."""
    x = [p["targeted"] for p in evaluation.qini]
    return go.Figure(
        [
            go.Scatter(
                x=x,
                y=[p["model"] for p in evaluation.qini],
                name="model",
                mode="lines",
                marker_color=_MODEL,
            ),
            go.Scatter(
                x=x,
                y=[p["random"] for p in evaluation.qini],
                name="random",
                mode="lines",
                line_dash="dash",
                marker_color=_RANDOM,
            ),
        ],
        layout={
            "xaxis": {"title": {"text": "share of customers targeted"}, "tickformat": ".0%"},
            "yaxis": {"title": {"text": "incremental outcomes per customer"}},
        },
    )


def plot_uplift_deciles(evaluation: UpliftEvaluation) -> go.Figure:
    """Treated and control rates per decile of predicted uplift (1 = highest)."""
    deciles = [str(d["decile"]) for d in evaluation.deciles]
    return go.Figure(
        [
            go.Bar(
                x=deciles,
                y=[d["treated_rate"] for d in evaluation.deciles],
                name="treated",
                marker_color=_MODEL,
            ),
            go.Bar(
                x=deciles,
                y=[d["control_rate"] for d in evaluation.deciles],
                name="control",
                marker_color=_CONTROL,
            ),
        ],
        layout={
            "barmode": "group",
            "xaxis": {
                "title": {"text": "decile of predicted uplift (1 = highest)"},
                "type": "category",
            },
            "yaxis": {"title": {"text": "outcome rate"}},
        },
    )


def _uplift_cards(evaluation: UpliftEvaluation) -> list[str]:
    rows = []
    for outcome, per_k in evaluation.top_outcomes.items():
        for k, values in per_k.items():
            rows.append((outcome, k, values["treated"], values["control"], values["difference"]))
    decile_rows = [
        (d["decile"], d["rows"], d["treated_rate"], d["control_rate"], d["uplift"], d["predicted"])
        for d in evaluation.deciles
    ]
    return [
        _card("Qini curve", "chart-qini", plot_qini(evaluation)),
        _card(
            "Uplift by decile",
            "chart-uplift-deciles",
            plot_uplift_deciles(evaluation),
            _table(
                ["decile", "rows", "treated", "control", "uplift", "predicted"],
                decile_rows,
                {0, 1, 2, 3, 4, 5},
            ),
        ),
        '<div class="card"><h2>Outcomes in the top k, per arm</h2>'
        + _table(["outcome", "top", "treated", "control", "difference"], rows, {2, 3, 4})
        + "</div>",
    ]


# -- page ----------------------------------------------------------------------------------------


def _kpis(headline: dict[str, Any]) -> str:
    tiles = "".join(
        f'<div class="kpi"><div class="label">{_text(k.replace("_", " "))}</div>'
        f'<div class="value">{_number(v)}</div></div>'
        for k, v in headline.items()
    )
    return f'<section class="kpis">{tiles}</section>'


def _metadata(record: ModelRecord) -> str:
    rows = [
        ("model id", record.model_id),
        ("kind", record.kind),
        ("name / version", f"{record.name} v{record.version}"),
        ("created", record.created_at.isoformat(timespec="seconds")),
        ("training window", json.dumps(record.training_window, ensure_ascii=False)),
        ("data fingerprint (SHA-256)", record.data_fingerprint),
        ("artifact SHA-256", record.sha256),
        ("features", ", ".join(record.features)),
        ("parameters", json.dumps(record.params, ensure_ascii=False, default=str)),
    ]
    body = "".join(f"<tr><th>{_text(k)}</th><td><code>{_text(v)}</code></td></tr>" for k, v in rows)
    return f'<div class="card"><h2>Model</h2><table><tbody>{body}</tbody></table></div>'


def evaluation_from_metrics(metrics: dict[str, Any]) -> BinaryEvaluation | UpliftEvaluation | None:
    """The evaluation a registry record's metrics hold (under ``evaluation``), if any."""
    stored = metrics.get("evaluation")
    if not isinstance(stored, dict):
        return None
    if stored.get("kind") == "uplift":
        return UpliftEvaluation.from_dict(stored)
    return BinaryEvaluation.from_dict(stored)


def write_model_report(
    record: ModelRecord,
    evaluation: BinaryEvaluation | UpliftEvaluation | None,
    path: Path,
    *,
    extra_figures: Sequence[tuple[str, go.Figure]] = (),
    notes: Sequence[str] = (),
    title: str | None = None,
) -> Path:
    """Write a model's report as one HTML file that works offline; returns the path.

    Parameters
    ----------
    record
        The registry record: metadata and headline metrics.
    evaluation
        Held-out measurements to chart (``None``: metadata and extra figures only).
    extra_figures
        ``(title, figure)`` pairs added after the standard charts (CLV's frequency–recency
        matrix and P(alive), for instance).
    notes
        Plain-text lines shown under the charts (what data the evaluation used).
    """
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    heading = title or f"{record.kind} model {record.model_id}"
    cards: list[str] = []
    headline: dict[str, Any] = record.headline()
    if isinstance(evaluation, BinaryEvaluation):
        cards += _binary_cards(evaluation)
        headline = evaluation.headline()
    elif isinstance(evaluation, UpliftEvaluation):
        cards += _uplift_cards(evaluation)
        headline = evaluation.headline()
    cards += [
        _card(name, f"chart-extra-{i}", figure) for i, (name, figure) in enumerate(extra_figures)
    ]
    meta = [
        f"Model <strong>{_text(record.model_id)}</strong>",
        f"{_text(record.kind)} v{record.version}",
        f"Generated {generated}",
    ]
    notes_html = (
        '<div class="card"><h2>Notes</h2><ul>'
        + "".join(f"<li>{_text(n)}</li>" for n in notes)
        + "</ul></div>"
        if notes
        else ""
    )
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_text(heading)}</title>",
            f"<style>{_CSS}</style>",
            f"<!-- plotly.js {plotly.__version__} (MIT licence), inlined to work offline -->",
            f"<script>{get_plotlyjs()}</script>",
            "</head>",
            "<body>",
            f'<header><h1>{_text(heading)}</h1><p class="meta">'
            + "".join(f"<span>{m}</span>" for m in meta)
            + "</p></header>",
            "<main>",
            _kpis(headline),
            f'<section class="charts">{"".join(cards)}</section>' if cards else "",
            _metadata(record),
            notes_html,
            "</main>",
            f"<footer>Generated by jingzhun on {generated}.</footer>",
            "<script>window.addEventListener('load', function () {"
            " document.querySelectorAll('.plotly-graph-div').forEach("
            "function (d) { Plotly.Plots.resize(d); }); });</script>",
            "</body>",
            "</html>",
        ]
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
