"""Campaign reports as self-contained HTML pages (the ``_html.py`` template, plotly.js inlined)
with PNG copies of the charts.

Every number in a page is a value of the JSON that ``jingzhun report --json`` prints: an
element showing one carries the exact value in ``data-value`` (JSON) and the key path(s) it
stands for in ``data-fields`` (a JSON list of paths), so a program can check the page against
the JSON. Charts draw the same values; nothing shown is computed from them (interval bars go
from the JSON's low to its high).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from jingzhun.measure._campaign_kpis import (
    COUNT_FIELDS,
    MONEY_FIELDS,
    RATIO_FIELDS,
    CampaignKpis,
)
from jingzhun.measure._experiment_report import PNG_PACKAGE, ReportFiles
from jingzhun.measure._html import (
    chart_card,
    escape,
    generated_at,
    html_page,
    notes_card,
    page_header,
    write_html,
)
from jingzhun.measure._overview import Overview
from jingzhun.measure._report import _charts as overview_charts
from jingzhun.measure._report import _kpis as overview_tiles

PNG_WIDTH = 900
PNG_HEIGHT = 480
_TREATED = "#2563eb"
_HOLDOUT = "#9ca3af"
_SIGNIFICANT = "#2563eb"
_NOT_SIGNIFICANT = "#9ca3af"

_EXTRA_CSS = """
section.block { margin-bottom: 24px; overflow-x: auto; }
td.label { color: var(--muted); }
.kpi .sub span + span::before { content: " – "; }
"""

KeyPath = tuple[str | int, ...]

_LABELS = {
    "customers": "Customers",
    "sent": "Sent",
    "delivered": "Delivered",
    "bounced": "Bounced",
    "opened": "Opened",
    "clicked": "Clicked",
    "unsubscribed": "Unsubscribed",
    "conversions": "Conversions",
    "orders": "Orders",
    "revenue": "Revenue",
    "returns_value": "Returns",
    "net_revenue": "Net revenue",
    "cost": "Cost",
    "delivery_rate": "Delivery rate",
    "open_rate": "Open rate",
    "ctr": "Click-through rate",
    "conversion_rate": "Conversion rate",
    "aov": "Average order value",
    "cac": "CAC",
    "roas": "ROAS",
    "roi": "ROI",
    "clv": "CLV (12 months)",
    "clv_cac": "CLV / CAC",
    "return_rate": "Return rate",
    "unsubscribe_rate": "Unsubscribe rate",
}
FIGURE_FIELDS = (*COUNT_FIELDS, *MONEY_FIELDS, *RATIO_FIELDS)

# label, key of HoldoutIncrementality / Incrementality .to_dict()
_INCREMENTAL_ROWS: tuple[tuple[str, KeyPath], ...] = (
    ("Treated customers", ("treated_n",)),
    ("Holdout customers", ("holdout_n",)),
    ("Incremental conversions", ("incremental_conversions",)),
    ("Interval low", ("incremental_conversions_ci", 0)),
    ("Interval high", ("incremental_conversions_ci", 1)),
    ("Incremental net revenue", ("incremental_revenue",)),
    ("Interval low", ("incremental_revenue_ci", 0)),
    ("Interval high", ("incremental_revenue_ci", 1)),
    ("Cost", ("cost",)),
    ("Incremental ROI", ("incremental_roi",)),
    ("Interval low", ("incremental_roi_ci", 0)),
    ("Interval high", ("incremental_roi_ci", 1)),
    ("Cost per incremental conversion", ("incremental_cac",)),
)
# the fields of ArmComparison.to_dict() shown per comparison
_COMPARISON_ROWS: tuple[tuple[str, str], ...] = (
    ("Holdout mean", "control_mean"),
    ("Treated mean", "treatment_mean"),
    ("Lift (treated - holdout)", "absolute_lift"),
    ("Interval low", "ci_low"),
    ("Interval high", "ci_high"),
    ("Relative lift", "relative_lift"),
    ("Relative interval low", "relative_ci_low"),
    ("Relative interval high", "relative_ci_high"),
    ("p-value", "p_value"),
    ("p-value, corrected", "p_value_adjusted"),
    ("Significant", "significant"),
    ("Test statistic", "statistic"),
    ("Standard error of the lift", "standard_error"),
    ("Degrees of freedom", "df"),
    ("Holdout units", "n_control"),
    ("Treated units", "n_treatment"),
    ("Alpha", "alpha"),
    ("CUPED theta", "theta"),
    ("CUPED variance reduction", "variance_reduction"),
)


def shown(value: Any) -> str:
    """How a page prints a JSON value: six significant digits, thousands separators, yes/no."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _attrs(value: Any, paths: Sequence[KeyPath]) -> str:
    fields = escape(json.dumps([list(p) for p in paths], ensure_ascii=False))
    exact = escape(json.dumps(value, ensure_ascii=False))
    return f"data-fields='{fields}' data-value='{exact}'"


def _cell(value: Any, paths: Sequence[KeyPath], *, text: bool = False) -> str:
    """A table cell showing a JSON value, with the exact value and its JSON path(s)."""
    cls = "" if text else " class='num'"
    return f"<td{cls} {_attrs(value, paths)}>{escape(shown(value))}</td>"


def _span(value: Any, paths: Sequence[KeyPath], cls: str = "") -> str:
    klass = f" class='{cls}'" if cls else ""
    return f"<span{klass} {_attrs(value, paths)}>{escape(shown(value))}</span>"


def _at(payload: Any, path: KeyPath) -> Any:
    for key in path:
        payload = payload[key]
    return payload


def _table(head: Sequence[str], rows: Sequence[str]) -> str:
    cells = "".join(f"<th{' class=num' if i else ''}>{escape(h)}</th>" for i, h in enumerate(head))
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figures_table(
    payload: dict[str, Any], columns: Sequence[tuple[str, KeyPath]], first: str
) -> str:
    """Every KPI field as a row, one column per set of figures (a group, a variant)."""
    rows = []
    for name in FIGURE_FIELDS:
        cells = "".join(_cell(_at(payload, (*base, name)), [(*base, name)]) for _, base in columns)
        rows.append(f"<tr><td class='label'>{_LABELS[name]}</td>{cells}</tr>")
    return _table([first, *(label for label, _ in columns)], rows)


def _tile(label: str, value_path: KeyPath, payload: Any, ci: KeyPath | None = None) -> str:
    sub = ""
    if ci is not None and _at(payload, ci) is not None:
        sub = (
            "<div class='sub'>interval "
            + _span(_at(payload, (*ci, 0)), [(*ci, 0)])
            + _span(_at(payload, (*ci, 1)), [(*ci, 1)])
            + "</div>"
        )
    return (
        f"<div class='kpi'><div class='label'>{escape(label)}</div>"
        + _span(_at(payload, value_path), [value_path], "value")
        + f"{sub}</div>"
    )


def _tiles(payload: dict[str, Any], prefix: KeyPath = ()) -> str:
    tiles = []
    root = _at(payload, prefix)
    if root["incrementality"] is not None:
        inc: KeyPath = (*prefix, "incrementality", "overall")
        tiles += [
            _tile(
                "Incremental conversions",
                (*inc, "incremental_conversions"),
                payload,
                (*inc, "incremental_conversions_ci"),
            ),
            _tile(
                "Incremental net revenue",
                (*inc, "incremental_revenue"),
                payload,
                (*inc, "incremental_revenue_ci"),
            ),
            _tile(
                "Incremental ROI", (*inc, "incremental_roi"), payload, (*inc, "incremental_roi_ci")
            ),
        ]
    treated: KeyPath = (*prefix, "totals", "treatment")
    tiles += [
        _tile("Revenue (treated)", (*treated, "revenue"), payload),
        _tile("Cost", (*treated, "cost"), payload),
        _tile("ROI (treated)", (*treated, "roi"), payload),
        _tile("ROAS (treated)", (*treated, "roas"), payload),
    ]
    return f"<section class='kpis'>{''.join(tiles)}</section>"


# -- charts -------------------------------------------------------------------------------------


def plot_funnel(kpis: CampaignKpis) -> go.Figure:
    """Treated customers at each step: planned → sent → delivered → opened → clicked → converted."""
    return go.Figure(
        go.Funnel(
            y=[escape(step["step"]) for step in kpis.funnel],
            x=[step["customers"] for step in kpis.funnel],
            marker={"color": _TREATED},
            textinfo="value",
        )
    )


def plot_daily(kpis: CampaignKpis) -> go.Figure | None:
    """Share of each group converting per day (first conversion), treated against holdout."""
    if not kpis.daily:
        return None
    days = [d["day"] for d in kpis.daily]
    figure = go.Figure()
    for prefix, name, colour in (
        ("treated", "treated", _TREATED),
        ("holdout", "holdout", _HOLDOUT),
    ):
        figure.add_trace(
            go.Scatter(
                x=days,
                y=[d[f"{prefix}_rate"] for d in kpis.daily],
                customdata=[d[f"{prefix}_conversions"] for d in kpis.daily],
                mode="lines+markers",
                name=name,
                line={"color": colour},
                hovertemplate="%{x}<br>%{y:.2%} (%{customdata} customers)<extra></extra>",
            )
        )
    figure.update_layout(
        xaxis={"type": "category", "title": {"text": "day of first conversion (UTC)"}},
        yaxis={"tickformat": ".1%", "title": {"text": "share of the group converting"}},
    )
    return figure


def plot_variant_lift(kpis: CampaignKpis, metric: str) -> go.Figure | None:
    """Each variant's lift over the holdout (``conversions`` or ``revenue``), with its interval."""
    if kpis.incrementality is None:
        return None
    entries = [("all variants", kpis.incrementality.result[metric])]
    entries += [(name, inc.result[metric]) for name, inc in kpis.incrementality_by_variant.items()]
    figure = go.Figure()
    for label, comparison in entries:
        if comparison is None:
            continue
        arm = escape(label)
        colour = _SIGNIFICANT if comparison["significant"] else _NOT_SIGNIFICANT
        low, high = comparison["ci_low"], comparison["ci_high"]
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
            figure.add_trace(
                go.Scatter(
                    x=[low, high],
                    y=[arm, arm],
                    mode="lines+markers",
                    marker={"symbol": "line-ns-open", "size": 16, "color": colour},
                    line={"color": colour, "width": 3},
                    hoverinfo="x",
                    showlegend=False,
                )
            )
        figure.add_trace(
            go.Scatter(
                x=[comparison["absolute_lift"]],
                y=[arm],
                mode="markers",
                marker={"symbol": "diamond", "size": 13, "color": colour},
                showlegend=False,
                hovertemplate=f"{arm}<br>lift %{{x}}<extra></extra>",
            )
        )
    figure.add_vline(x=0, line={"color": "#6b7280", "dash": "dot"})
    level = f"{(1 - kpis.alpha) * 100:g}%"
    unit = "conversion rate" if metric == "conversions" else "net revenue per customer"
    figure.update_layout(
        xaxis={
            "title": {"text": f"difference in {unit}, {level} interval"},
            "tickformat": ".2%" if metric == "conversions" else None,
            "zeroline": False,
        },
        yaxis={"type": "category", "automargin": True, "autorange": "reversed"},
    )
    return figure


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "chart"


def write_images(
    figures: dict[str, go.Figure | None], path: Path, images: bool
) -> tuple[list[Path], list[str]]:
    """PNG files ``<stem>-<name>.png`` next to the page, all in one kaleido session.

    Without kaleido or a Chromium for it the page stands alone and a note says why.
    """
    drawn = {name: fig for name, fig in figures.items() if fig is not None}
    if not images or not drawn:
        return [], []
    if importlib.util.find_spec("kaleido") is None:
        return [], [
            f"PNG charts were skipped: plotly's image export needs the kaleido package "
            f"({PNG_PACKAGE}), which is not installed. The HTML page holds the same charts."
        ]
    import kaleido

    targets = {name: path.with_name(f"{path.stem}-{_slug(name)}.png") for name in drawn}
    jobs = [
        {
            "fig": figure,
            "path": str(targets[name]),
            "opts": {"format": "png", "width": PNG_WIDTH, "height": PNG_HEIGHT},
        }
        for name, figure in drawn.items()
    ]
    try:
        kaleido.write_fig_from_object_sync(jobs, cancel_on_error=True)
    except Exception as exc:  # kaleido raises its own types (no Chromium, a crashed browser)
        return [], [
            f"PNG charts were skipped: kaleido could not render them ({type(exc).__name__}: "
            f"{exc}). kaleido needs a Chromium (e.g. Debian's 'chromium' package). The HTML "
            "page holds the same charts."
        ]
    written = [p for p in targets.values() if p.is_file()]
    missing = [str(p) for p in targets.values() if not p.is_file()]
    notes = [f"PNG charts not written: {', '.join(missing)}"] if missing else []
    return written, notes


# -- the campaign page --------------------------------------------------------------------------


def _settings_table(payload: dict[str, Any], prefix: KeyPath) -> str:
    root = _at(payload, prefix)
    rows = [
        (
            "Attribution window (days)",
            _cell(root["attribution_window_days"], [(*prefix, "attribution_window_days")]),
        ),
        ("Cost per contact", _cell(root["cost_per_contact"], [(*prefix, "cost_per_contact")])),
        ("Alpha (intervals at 1 - alpha)", _cell(root["alpha"], [(*prefix, "alpha")])),
        (
            "Every window closed by as-of",
            _cell(root["window"]["complete"], [(*prefix, "window", "complete")]),
        ),
        ("Goal event", f"<td class='num'>{escape(root['goal']['event'])}</td>"),
    ]
    for key, value in root["goal"]["where"].items():
        rows.append((f"Goal: {escape(key)}", _cell(value, [(*prefix, "goal", "where", key)])))
    body = "".join(f"<tr><td class='label'>{label}</td>{cell}</tr>" for label, cell in rows)
    return f"<table><tbody>{body}</tbody></table>"


def _incrementality_card(payload: dict[str, Any], prefix: KeyPath) -> str:
    inc = _at(payload, (*prefix, "incrementality"))
    if inc is None:
        return ""
    columns: list[tuple[str, KeyPath]] = [("all variants", (*prefix, "incrementality", "overall"))]
    columns += [
        (name, (*prefix, "incrementality", "by_variant", name)) for name in inc["by_variant"]
    ]
    rows = []
    for label, key in _INCREMENTAL_ROWS:
        cells = "".join(
            _cell(_at(payload, (*base, *key)), [(*base, *key)])
            if _at(payload, (*base, key[0])) is not None
            else "<td class='num'>—</td>"
            for _, base in columns
        )
        rows.append(f"<tr><td class='label'>{label}</td>{cells}</tr>")
    head = ["Against the holdout", *(name for name, _ in columns)]
    parts = [_table(head, rows)]
    for metric, title in (
        ("conversions", "Conversion rate"),
        ("revenue", "Net revenue per customer"),
    ):
        body = []
        for label, name in _COMPARISON_ROWS:
            values = [_at(payload, base)[metric] for _, base in columns]
            if name in ("p_value_adjusted", "theta", "variance_reduction", "df") and all(
                v is None or v[name] is None for v in values
            ):
                continue
            cells = "".join(
                _cell(v[name], [(*base, metric, name)])
                if v is not None
                else "<td class='num'>—</td>"
                for v, (_, base) in zip(values, columns, strict=True)
            )
            body.append(f"<tr><td class='label'>{label}</td>{cells}</tr>")
        method = next((v["method"] for v in values if v is not None), "")
        parts.append(
            f"<h2>{title} ({escape(method)})</h2>" + _table([title, *(n for n, _ in columns)], body)
        )
    return (
        "<section class='block card'><h2>What the campaign added over its holdout</h2>"
        + "".join(parts)
        + "</section>"
    )


def _rows_table(payload: dict[str, Any], prefix: KeyPath) -> str:
    dims = ("group", "variant", "segment", "channel", "day")
    rows = []
    for i, row in enumerate(_at(payload, (*prefix, "rows"))):
        cells = "".join(f"<td>{escape(row[d])}</td>" for d in dims)
        cells += "".join(_cell(row[f], [(*prefix, "rows", i, f)]) for f in FIGURE_FIELDS)
        rows.append(f"<tr>{cells}</tr>")
    head = [*dims, *(_LABELS[f] for f in FIGURE_FIELDS)]
    cells = "".join(f"<th>{escape(h)}</th>" for h in head[: len(dims)])
    cells += "".join(f"<th class='num'>{escape(h)}</th>" for h in head[len(dims) :])
    return (
        "<section class='block card'><h2>KPIs by group, variant, segment, channel and day "
        "(the day a customer's window opened, UTC)</h2>"
        f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _funnel_table(payload: dict[str, Any], prefix: KeyPath) -> str:
    rows = "".join(
        f"<tr><td>{escape(step['step'])}</td>"
        + _cell(step["customers"], [(*prefix, "funnel", i, "customers")])
        + "</tr>"
        for i, step in enumerate(_at(payload, (*prefix, "funnel")))
    )
    return _table(["Step (treated customers)", "Customers"], [rows])


def _daily_table(payload: dict[str, Any], prefix: KeyPath) -> str:
    fields = ("treated_conversions", "treated_rate", "holdout_conversions", "holdout_rate")
    rows = [
        f"<tr><td>{escape(day['day'])}</td>"
        + "".join(_cell(day[f], [(*prefix, "daily", i, f)]) for f in fields)
        + "</tr>"
        for i, day in enumerate(_at(payload, (*prefix, "daily")))
    ]
    return _table(
        ["Day", "Treated converting", "Share of treated", "Holdout converting", "Share of holdout"],
        rows,
    )


def _campaign_figures(kpis: CampaignKpis) -> dict[str, go.Figure | None]:
    return {
        "funnel": plot_funnel(kpis),
        "daily": plot_daily(kpis),
        "lift-conversions": plot_variant_lift(kpis, "conversions"),
        "lift-revenue": plot_variant_lift(kpis, "revenue"),
    }


def _definitions() -> str:
    return (
        "Sent: the channel took the message or refused the address (status sent, complained "
        "or bounced); delivered: sent or complained. Opens, clicks and unsubscribes are the "
        "tracking events that name the message; a click counts as an open. A conversion is a "
        "customer with the goal event within the attribution window, which opens when the "
        "message was sent (for the holdout and unsent customers: the planned send time, or "
        "the campaign's first send when later). Conversions and revenue count every planned "
        "customer, whether the message arrived or not, so treated and holdout compare like "
        "with like. ROI and the incremental figures use revenue net of returns; ROAS uses "
        "gross revenue. Conversion lifts use the two-proportion z (Wald interval), revenue "
        "lifts Welch's t on net revenue per customer, both scaled to the treated customers; "
        "each variant is compared with the whole holdout."
    )


def write_campaign_report(
    kpis: CampaignKpis,
    path: Path,
    *,
    title: str | None = None,
    notes: Sequence[str] = (),
    images: bool = True,
) -> ReportFiles:
    """Write a campaign's outcomes as one offline HTML page plus PNG charts beside it.

    Parameters
    ----------
    kpis
        From ``campaign_kpis``; every number of the page is a value of ``kpis.to_dict()``.
    path
        The HTML file; its folder is created. PNGs go next to it as ``<stem>-<chart>.png``.
    title
        Shown in the page header (default: the campaign's name).
    notes
        Extra lines for the data notes (plain text, escaped).
    images
        Try to write PNG charts (needs kaleido and a Chromium).
    """
    payload = json.loads(json.dumps(kpis.to_dict()))
    heading = title or f"Campaign {kpis.campaign}"
    generated = generated_at()
    meta = [
        f"Plan <strong>{escape(kpis.plan_id)}</strong>",
        f"Channel <strong>{escape(kpis.channel)}</strong>",
        f"As of {escape(kpis.as_of.isoformat())}",
        f"Money in {escape(kpis.currency or 'the currency loaded')}",
        f"Generated {generated}",
    ]
    figures = _campaign_figures(kpis)
    groups: list[tuple[str, KeyPath]] = [
        ("treated", ("totals", "treatment")),
        ("holdout", ("totals", "holdout")),
    ]
    variants: list[tuple[str, KeyPath]] = [(name, ("variants", name)) for name in kpis.variants]
    cards = [
        chart_card(
            "Reach and response (treated)",
            "chart-funnel",
            figures["funnel"],
            _funnel_table(payload, ()),
        ),
        chart_card(
            "Conversions per day, treated against holdout",
            "chart-daily",
            figures["daily"],
            _daily_table(payload, ()),
        ),
    ]
    if kpis.incrementality is not None:
        cards += [
            chart_card(
                "Conversion-rate lift by variant", "chart-lift-conv", figures["lift-conversions"]
            ),
            chart_card(
                "Net revenue per customer: lift by variant",
                "chart-lift-rev",
                figures["lift-revenue"],
            ),
        ]
    items = [escape(n) for n in (*notes, *kpis.notes)]
    items.append(escape(_definitions()))
    items.append(
        "Every number on this page equals the JSON of 'jingzhun report "
        f"{escape(kpis.campaign)} --json' (each value carries its JSON path)."
    )
    body = [
        _tiles(payload),
        "<section class='block card'><h2>Settings</h2>"
        + _settings_table(payload, ())
        + "</section>",
        "<section class='charts'>",
        *cards,
        "</section>",
        "<section class='block card'><h2>Treated and holdout</h2>"
        + _figures_table(payload, groups, "Figure")
        + "</section>",
    ]
    if variants:
        body.append(
            "<section class='block card'><h2>Treated customers by variant</h2>"
            + _figures_table(payload, variants, "Figure")
            + "</section>"
        )
    body += [_incrementality_card(payload, ()), _rows_table(payload, ()), notes_card(items)]
    page = html_page(
        title=heading,
        header=page_header(heading, meta),
        body=body,
        generated=generated,
        extra_css=_EXTRA_CSS,
    )
    written = write_html(path, page)
    pngs, png_notes = write_images(figures, path, images)
    return ReportFiles(html=written, images=pngs, notes=png_notes)


# -- all campaigns ------------------------------------------------------------------------------

# label, path inside one campaign's JSON
_SUMMARY_COLUMNS: tuple[tuple[str, KeyPath], ...] = (
    ("Treated", ("totals", "treatment", "customers")),
    ("Holdout", ("totals", "holdout", "customers")),
    ("Sent", ("totals", "treatment", "sent")),
    ("Delivered", ("totals", "treatment", "delivered")),
    ("Opened", ("totals", "treatment", "opened")),
    ("Clicked", ("totals", "treatment", "clicked")),
    ("Conversions", ("totals", "treatment", "conversions")),
    ("Conversion rate", ("totals", "treatment", "conversion_rate")),
    ("Holdout conversion rate", ("totals", "holdout", "conversion_rate")),
    ("Revenue", ("totals", "treatment", "revenue")),
    ("Net revenue", ("totals", "treatment", "net_revenue")),
    ("Cost", ("totals", "treatment", "cost")),
    ("ROI", ("totals", "treatment", "roi")),
    ("Incremental conversions", ("incrementality", "overall", "incremental_conversions")),
    ("low", ("incrementality", "overall", "incremental_conversions_ci", 0)),
    ("high", ("incrementality", "overall", "incremental_conversions_ci", 1)),
    ("Incremental net revenue", ("incrementality", "overall", "incremental_revenue")),
    ("low", ("incrementality", "overall", "incremental_revenue_ci", 0)),
    ("high", ("incrementality", "overall", "incremental_revenue_ci", 1)),
    ("Incremental ROI", ("incrementality", "overall", "incremental_roi")),
    ("low", ("incrementality", "overall", "incremental_roi_ci", 0)),
    ("high", ("incrementality", "overall", "incremental_roi_ci", 1)),
)


def _summary_value(campaign: dict[str, Any], path: KeyPath) -> tuple[bool, Any]:
    value: Any = campaign
    for key in path:
        if value is None:
            return False, None
        value = value[key]
    return True, value


def campaigns_payload(
    campaigns: Sequence[CampaignKpis], overview: Overview | None
) -> dict[str, Any]:
    """The JSON of the all-campaigns report: every campaign's figures and the overview."""
    return {
        "campaigns": [k.to_dict() for k in campaigns],
        "overview": None if overview is None else overview.to_dict(),
    }


def plot_campaign_lifts(campaigns: Sequence[CampaignKpis]) -> go.Figure | None:
    """Incremental conversions of each campaign with its interval."""
    measured = [k for k in campaigns if k.incrementality is not None]
    if not measured:
        return None
    figure = go.Figure()
    for k in measured:
        assert k.incrementality is not None
        result = k.incrementality.result
        name = escape(k.campaign)
        low, high = result["incremental_conversions_ci"]
        colour = _SIGNIFICANT if result["conversions"]["significant"] else _NOT_SIGNIFICANT
        if low is not None and high is not None:
            figure.add_trace(
                go.Scatter(
                    x=[low, high],
                    y=[name, name],
                    mode="lines+markers",
                    marker={"symbol": "line-ns-open", "size": 16, "color": colour},
                    line={"color": colour, "width": 3},
                    hoverinfo="x",
                    showlegend=False,
                )
            )
        figure.add_trace(
            go.Scatter(
                x=[result["incremental_conversions"]],
                y=[name],
                mode="markers",
                marker={"symbol": "diamond", "size": 13, "color": colour},
                showlegend=False,
            )
        )
    figure.add_vline(x=0, line={"color": "#6b7280", "dash": "dot"})
    figure.update_layout(
        xaxis={"title": {"text": "incremental conversions over the holdout"}, "zeroline": False},
        yaxis={"type": "category", "automargin": True, "autorange": "reversed"},
    )
    return figure


def write_campaigns_report(
    campaigns: Sequence[CampaignKpis],
    path: Path,
    *,
    overview: Overview | None = None,
    title: str = "Campaigns",
    project: str = "",
    notes: Sequence[str] = (),
    images: bool = True,
) -> ReportFiles:
    """Write every launched campaign's summary (and the warehouse overview) as one page.

    Every number of the campaign table is a value of ``campaigns_payload(campaigns,
    overview)``; the overview section is the overview report's tiles and charts.
    """
    payload = json.loads(json.dumps(campaigns_payload(campaigns, overview), default=str))
    generated = generated_at()
    meta = [f"Project <strong>{escape(project)}</strong>"] if project else []
    meta += [f"{len(campaigns)} launched campaign(s)", f"Generated {generated}"]
    rows = []
    for i, campaign in enumerate(payload["campaigns"]):
        cells = [f"<td>{escape(campaign['campaign'])}</td>"]
        for _, path_in in _SUMMARY_COLUMNS:
            present, value = _summary_value(campaign, path_in)
            cells.append(
                _cell(value, [("campaigns", i, *path_in)]) if present else "<td class='num'>—</td>"
            )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "<th>Campaign</th>" + "".join(
        f"<th class='num'>{escape(label)}</th>" for label, _ in _SUMMARY_COLUMNS
    )
    summary = (
        "<section class='block card'><h2>Launched campaigns (treated customers unless "
        "named; intervals of the incremental figures as low / high)</h2>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )
    lifts = plot_campaign_lifts(campaigns)
    figures: dict[str, go.Figure | None] = {"campaign-lifts": lifts}
    body = [summary]
    if lifts is not None:
        body += [
            "<section class='charts'>",
            chart_card("Incremental conversions by campaign", "chart-campaign-lifts", lifts),
            "</section>",
        ]
    if overview is not None:
        body += [
            "<h2>Overview of the warehouse</h2>",
            overview_tiles(overview),
            "<section class='charts'>",
            *overview_charts(overview),
            "</section>",
        ]
    items = [escape(n) for n in notes]
    for k in campaigns:
        items += [f"{escape(k.campaign)}: {escape(n)}" for n in k.notes]
    items.append(escape(_definitions()))
    items.append(
        "Every number of the campaign table equals the JSON of 'jingzhun report --json' (each "
        "value carries its JSON path); 'jingzhun report CAMPAIGN' gives one campaign in full."
    )
    body.append(notes_card(items))
    page = html_page(
        title=title,
        header=page_header(title, meta),
        body=body,
        generated=generated,
        extra_css=_EXTRA_CSS,
    )
    written = write_html(path, page)
    pngs, png_notes = write_images(figures, path, images)
    return ReportFiles(html=written, images=pngs, notes=png_notes)
