"""The overview as one self-contained HTML page: KPI tiles, plotly charts and data notes.

The page must open on a machine without internet, so plotly.js is inlined once in the head
and every chart is a ``<div>`` plus a short script that draws into it. Every text that comes
from the data (names of categories, countries, event types, the notes) is HTML-escaped, in the
page and in the chart labels (plotly reads entities back into characters when it draws).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import plotly.graph_objects as go

from jingzhun.measure._html import (
    chart_card,
    escape,
    generated_at,
    html_page,
    notes_card,
    page_header,
    write_html,
)
from jingzhun.measure._overview import (
    CountFigure,
    MonthFigures,
    Overview,
    RankedBy,
    RankedFigure,
)

TOP_EVENT_TYPES = 20
_BAR = "#2563eb"
_LINE = "#f97316"
_RETURNS = "#dc2626"


def write_overview_report(
    overview: Overview,
    path: Path,
    *,
    title: str,
    project: str,
    notes: Sequence[str] = (),
) -> Path:
    """Write the overview as one HTML file that works offline; returns the path written.

    Parameters
    ----------
    overview
        The figures, from ``jingzhun.measure.overview``.
    path
        The HTML file to write; its folder is created when missing.
    title, project
        Shown in the page header.
    notes
        Lines for the data-notes section: attribution of the data, quarantine counts and the
        like. Plain text; it is escaped.
    """
    generated = generated_at()
    page = html_page(
        title=title,
        header=_header(overview, title=title, project=project, generated=generated),
        body=[
            _kpis(overview),
            '<section class="charts">',
            *_charts(overview),
            "</section>",
            _notes(overview, notes),
        ],
        generated=generated,
    )
    return write_html(path, page)


def _money(value: Decimal | None, currency: str) -> str:
    if value is None:
        return "–"
    return f"{escape(currency)} {value:,.2f}"


def _header(overview: Overview, *, title: str, project: str, generated: str) -> str:
    if overview.first_order_date is None:
        period = "No orders"
    else:
        period = (
            f"Orders {overview.first_order_date:%Y-%m-%d} to {overview.last_order_date:%Y-%m-%d}"
        )
    as_of = f"As of {overview.as_of:%Y-%m-%d}" if overview.as_of else "All data loaded"
    meta = [f"Project <strong>{escape(project)}</strong>", period, as_of, f"Generated {generated}"]
    return page_header(title, meta)


def _kpis(overview: Overview) -> str:
    currency = overview.currency
    anonymous_share = (
        f"{overview.anonymous_orders / overview.orders:.1%} of orders" if overview.orders else ""
    )
    tiles = [
        ("Customers", f"{overview.customers:,}", "distinct customer ids"),
        ("Orders", f"{overview.orders:,}", f"{overview.order_lines:,} order lines"),
        (
            "Revenue",
            _money(overview.revenue, currency),
            f"net {_money(overview.net_revenue, currency)} after returns",
        ),
        ("Average order value", _money(overview.average_order_value, currency), "gross revenue"),
        (
            "Returns",
            f"{overview.returns:,}",
            f"{_money(overview.returns_value, currency)} returned",
        ),
        ("Anonymous orders", f"{overview.anonymous_orders:,}", anonymous_share),
    ]
    cards = "".join(
        f'<div class="kpi"><div class="label">{label}</div><div class="value">{value}</div>'
        f'<div class="sub">{sub}</div></div>'
        for label, value, sub in tiles
    )
    return f'<section class="kpis">{cards}</section>'


def _charts(overview: Overview) -> list[str]:
    currency = escape(overview.currency)
    months = overview.by_month
    by_category = overview.top_ranked_by is RankedBy.CATEGORY
    ranked, one_ranked = ("categories", "category") if by_category else ("products", "product")
    cards = [
        chart_card(
            "Revenue and orders by month",
            "chart-revenue-by-month",
            _bar_and_line(
                months,
                bars=[float(m.revenue) for m in months],
                bar_name=f"Revenue ({currency})",
                line=[m.orders for m in months],
                line_name="Orders",
                bar_colour=_BAR,
            ),
        ),
        chart_card(
            f"Top {ranked} by revenue",
            "chart-top-categories",
            _ranking(overview.top_categories, currency),
            _ranking_table(overview.top_categories, one_ranked, currency),
        ),
        chart_card(
            "Returns by month",
            "chart-returns-by-month",
            _bar_and_line(
                months,
                bars=[float(m.returns_value) for m in months],
                bar_name=f"Returned value ({currency})",
                line=[m.returns for m in months],
                line_name="Returns",
                bar_colour=_RETURNS,
            )
            if overview.returns
            else None,
        ),
        chart_card(
            "Customers by number of orders",
            "chart-customers-by-orders",
            _counts(overview.customers_by_orders, "Customers", "Orders per customer")
            if any(b.count for b in overview.customers_by_orders)
            else None,
        ),
        chart_card(
            "Top countries by revenue",
            "chart-top-countries",
            _ranking(overview.top_countries, currency),
            _ranking_table(overview.top_countries, "country", currency),
        ),
    ]
    if overview.rfm_segments:
        cards.append(
            chart_card(
                "Customers by RFM segment",
                "chart-rfm-segments",
                _counts(overview.rfm_segments, "Customers", "RFM segment", horizontal=True),
            )
        )
    if overview.events_by_type is not None:
        top_events = overview.events_by_type[:TOP_EVENT_TYPES]
        cards.append(
            chart_card(
                f"Events by type ({overview.events or 0:,} events)",
                "chart-events-by-type",
                _counts(top_events, "Events", "Event type", horizontal=True)
                if top_events
                else None,
            )
        )
    return cards


def _bar_and_line(
    months: Sequence[MonthFigures],
    *,
    bars: list[float],
    bar_name: str,
    line: list[int],
    line_name: str,
    bar_colour: str,
) -> go.Figure | None:
    """Money as bars on the left axis, a count as a line on the right axis, one x per month."""
    if not months:
        return None
    x = [m.month for m in months]
    figure = go.Figure(
        [
            go.Bar(x=x, y=bars, name=bar_name, marker_color=bar_colour),
            go.Scatter(
                x=x, y=line, name=line_name, yaxis="y2", mode="lines+markers", marker_color=_LINE
            ),
        ]
    )
    figure.update_layout(
        xaxis={"type": "category"},
        yaxis={"title": {"text": bar_name}, "rangemode": "tozero"},
        yaxis2={
            "title": {"text": line_name},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
        },
    )
    return figure


def _ranking(entries: Sequence[RankedFigure], currency: str) -> go.Figure | None:
    """Horizontal bars, the biggest on top; names escaped because they come from the data."""
    if not entries:
        return None
    ordered = list(reversed(entries))
    return go.Figure(
        go.Bar(
            x=[float(e.revenue) for e in ordered],
            y=[escape(e.name) for e in ordered],
            customdata=[e.orders for e in ordered],
            orientation="h",
            marker_color=_BAR,
            hovertemplate=f"%{{y}}<br>%{{x:,.2f}} {currency}<br>%{{customdata}} orders"
            "<extra></extra>",
        ),
        layout={"yaxis": {"type": "category", "automargin": True}},
    )


def _ranking_table(entries: Sequence[RankedFigure], name: str, currency: str) -> str:
    if not entries:
        return ""
    rows = "".join(
        f"<tr><td>{escape(e.name)}</td><td class='num'>{e.revenue:,.2f}</td>"
        f"<td class='num'>{e.orders:,}</td></tr>"
        for e in entries
    )
    return (
        f"<table><thead><tr><th>{name.capitalize()}</th><th class='num'>Revenue ({currency})</th>"
        f"<th class='num'>Orders</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _counts(
    entries: Sequence[CountFigure], value_name: str, axis_name: str, *, horizontal: bool = False
) -> go.Figure:
    """Bars of counts per named group, in the order given."""
    names = [escape(e.name) for e in entries]
    counts = [e.count for e in entries]
    if horizontal:
        bar = go.Bar(x=counts[::-1], y=names[::-1], orientation="h", name=value_name)
        layout = {"yaxis": {"type": "category", "automargin": True, "title": {"text": axis_name}}}
    else:
        bar = go.Bar(x=names, y=counts, name=value_name)
        layout = {
            "xaxis": {"type": "category", "title": {"text": axis_name}},
            "yaxis": {"title": {"text": value_name}},
        }
    bar.marker.color = _BAR
    return go.Figure(bar, layout=layout)


def _notes(overview: Overview, notes: Sequence[str]) -> str:
    """List the caller's notes, then how the figures are defined and what was left out."""
    items = [escape(note) for note in notes]
    items.append(
        f"Money is in {escape(overview.currency)} as loaded; no conversion is done. Revenue is "
        "the gross of sales lines; returns are orders marked as returns, lines marked as "
        "returns and lines with negative quantities; months are calendar months in UTC."
    )
    if overview.unmatched_lines:
        items.append(
            f"{overview.unmatched_lines:,} order lines have no order in raw_orders, so no date; "
            "they are left out of every money figure."
        )
    if overview.top_ranked_by is RankedBy.PRODUCT and overview.top_categories:
        items.append("The products carry no category, so products are ranked instead.")
    return notes_card(items)
