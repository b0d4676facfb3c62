"""The console's charts as plotly figure JSON, drawn in the browser by the bundled plotly.js.

A figure travels as JSON inside the page (``<script type="application/json">``) and the
console's script draws it, so no page carries inline code. Text from the data goes through
``escape`` first: plotly reads a few HTML tags and entities in labels when it draws.
Counts a principal may not see exactly (``small_count``) are drawn as gaps labelled ``<k``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from jingzhun.core import Principal, small_count

BAR = "#2563eb"
LINE = "#f97316"
MUTED = "#9ca3af"
GOOD = "#16a34a"


def escape(value: object) -> str:
    """Text from the data as plotly should print it (entities, no tags)."""
    return html.escape(str(value), quote=True)


def figure_json(figure: go.Figure) -> dict[str, Any]:
    """The figure as plain JSON data (numpy arrays written out), with the console's layout."""
    figure.update_layout(
        template="plotly_white",
        margin={"l": 8, "r": 8, "t": 8, "b": 8},
        legend={"orientation": "h", "y": 1.12, "x": 0},
        font={"family": "system-ui, sans-serif", "size": 12},
        height=320,
    )
    data: dict[str, Any] = json.loads(figure.to_json())
    return data


def shown_counts(values: Sequence[int], principal: Principal) -> tuple[list[int | None], list[str]]:
    """Bar heights and labels: a count hidden by ``small_count`` has no bar, only its label."""
    heights: list[int | None] = []
    labels: list[str] = []
    for value in values:
        shown = small_count(int(value), principal)
        heights.append(shown if isinstance(shown, int) else None)
        labels.append(f"{shown:,}" if isinstance(shown, int) else shown)
    return heights, labels


def count_bars(
    names: Sequence[str],
    counts: Sequence[int],
    principal: Principal,
    *,
    value_name: str,
    axis_name: str,
    horizontal: bool = False,
) -> dict[str, Any]:
    """Bars of counts per named group (in the order given), small counts hidden."""
    heights, labels = shown_counts(counts, principal)
    escaped = [escape(n) for n in names]
    if horizontal:
        bar = go.Bar(
            x=heights[::-1],
            y=escaped[::-1],
            text=labels[::-1],
            orientation="h",
            name=value_name,
            marker_color=BAR,
            textposition="outside",
            cliponaxis=False,
        )
        layout = {"yaxis": {"type": "category", "automargin": True, "title": {"text": axis_name}}}
    else:
        bar = go.Bar(
            x=escaped,
            y=heights,
            text=labels,
            name=value_name,
            marker_color=BAR,
            textposition="outside",
            cliponaxis=False,
        )
        layout = {
            "xaxis": {"type": "category", "title": {"text": axis_name}},
            "yaxis": {"title": {"text": value_name}, "rangemode": "tozero"},
        }
    return figure_json(go.Figure(bar, layout=layout))


def money_and_count_by_month(
    months: Sequence[str],
    money: Sequence[float],
    counts: Sequence[int],
    principal: Principal,
    *,
    money_name: str,
    count_name: str,
) -> dict[str, Any]:
    """Money as bars on the left axis and a count as a line on the right, one x per month."""
    heights, labels = shown_counts(counts, principal)
    figure = go.Figure(
        [
            go.Bar(x=list(months), y=list(money), name=money_name, marker_color=BAR),
            go.Scatter(
                x=list(months),
                y=heights,
                text=labels,
                name=count_name,
                yaxis="y2",
                mode="lines+markers",
                marker_color=LINE,
                hovertemplate="%{x}: %{text}<extra></extra>",
            ),
        ]
    )
    figure.update_layout(
        xaxis={"type": "category"},
        yaxis={"title": {"text": money_name}, "rangemode": "tozero"},
        yaxis2={
            "title": {"text": count_name},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
        },
    )
    return figure_json(figure)


def ranking(names: Sequence[str], money: Sequence[float], *, money_name: str) -> dict[str, Any]:
    """Horizontal bars of money per name, the biggest on top."""
    figure = go.Figure(
        go.Bar(
            x=list(money)[::-1],
            y=[escape(n) for n in names][::-1],
            orientation="h",
            marker_color=BAR,
            name=money_name,
            hovertemplate="%{y}: %{x:,.2f}<extra></extra>",
        ),
        layout={"yaxis": {"type": "category", "automargin": True}},
    )
    return figure_json(figure)


def waterfall(steps: Sequence[str], counts: Sequence[int], principal: Principal) -> dict[str, Any]:
    """A campaign plan's eligibility waterfall: customers left after each step."""
    return count_bars(
        [s.replace("_", " ") for s in steps],
        counts,
        principal,
        value_name="Customers",
        axis_name="Step",
    )


def lift(
    groups: Sequence[str],
    rates: Sequence[float],
    *,
    low: Sequence[float | None] | None = None,
    high: Sequence[float | None] | None = None,
    axis_name: str,
) -> dict[str, Any]:
    """Rates of the groups of a campaign (holdout, treated, ...) as bars with their intervals.

    ``low`` and ``high`` are the interval's ends; the error bars are drawn between them, not
    from a symmetric width.
    """
    error_y = None
    if low is not None and high is not None:
        error_y = {
            "type": "data",
            "symmetric": False,
            "array": [(h - r) if h is not None else 0 for h, r in zip(high, rates, strict=True)],
            "arrayminus": [
                (r - lo) if lo is not None else 0 for lo, r in zip(low, rates, strict=True)
            ],
        }
    colours = [MUTED if i == 0 else GOOD for i in range(len(groups))]
    figure = go.Figure(
        go.Bar(
            x=[escape(g) for g in groups],
            y=list(rates),
            marker_color=colours,
            error_y=error_y,
            text=[f"{r:.2%}" for r in rates],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}: %{y:.2%}<extra></extra>",
        ),
        layout={
            "xaxis": {"type": "category"},
            "yaxis": {"title": {"text": axis_name}, "tickformat": ".1%", "rangemode": "tozero"},
        },
    )
    return figure_json(figure)
