"""An experiment as one self-contained HTML page: arms and SRM, a lift chart and a table per metric.

Every number in the page is a value of ``ExperimentReport.to_dict()`` (what ``--json`` prints):
a table cell shows it to six significant digits and carries the exact value in ``data-value``
and the JSON path(s) it came from in ``data-fields`` (a JSON list of key paths), so the page
can be checked against the JSON mechanically. The charts draw the same values; nothing in the
page is computed from them (interval bars are drawn from ``ci_low`` to ``ci_high``, not as
offsets from the lift).

PNG copies of the charts need plotly's image exporter, the ``kaleido`` package (which drives a
Chromium); without it the HTML is written alone and the returned notes say so.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from jingzhun.measure._experiments import ComparisonMethod, ExperimentReport
from jingzhun.measure._html import (
    chart_card,
    escape,
    generated_at,
    html_page,
    notes_card,
    page_header,
    write_html,
)

PNG_PACKAGE = "kaleido==1.5.0"
PNG_WIDTH = 900
_SIGNIFICANT = "#2563eb"
_NOT_SIGNIFICANT = "#9ca3af"

_EXTRA_CSS = """
section.block { margin-bottom: 24px; }
.verdict-ok { color: #15803d; font-weight: 600; }
.verdict-bad { color: #b91c1c; font-weight: 600; }
td.label { color: var(--muted); }
"""

KeyPath = tuple[str | int, ...]  # keys into ExperimentReport.to_dict()


@dataclass(frozen=True)
class ReportFiles:
    """What ``write_experiment_report`` wrote: the page, the PNG charts, and notes on both."""

    html: Path
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values."""
        return {
            "html": str(self.html),
            "images": [str(p) for p in self.images],
            "notes": list(self.notes),
        }


def _cell(value: Any, paths: Sequence[KeyPath], *, text: str | None = None) -> str:
    """A table cell showing a JSON value, with the exact value and its JSON path(s)."""
    fields = escape(json.dumps([list(p) for p in paths], ensure_ascii=False))
    if value is None:
        exact, shown = "null", "—"
    elif isinstance(value, bool):
        exact, shown = json.dumps(value), "yes" if value else "no"
    elif isinstance(value, int):
        exact, shown = str(value), f"{value:,}"
    else:
        exact, shown = repr(float(value)), f"{float(value):.6g}"
    return (
        f"<td class='num' data-fields='{fields}' data-value='{exact}'>"
        f"{escape(text) if text is not None else shown}</td>"
    )


def _level(alpha: float) -> str:
    return f"{(1 - alpha) * 100:g}%"


def _settings_table(report: ExperimentReport) -> str:
    alpha_paths: list[KeyPath] = [("alpha",)]
    alpha_paths += [("comparisons", i, "alpha") for i in range(len(report.comparisons))]
    rows = [
        ("Alpha (two-sided; intervals at 1 - alpha)", _cell(report.alpha, alpha_paths)),
        (
            "Correction across arms of a metric",
            f"<td class='num'>{escape(report.correction)}</td>",
        ),
        ("Alpha of the sample-ratio check", _cell(report.srm.alpha, [("srm", "alpha")])),
    ]
    body = "".join(f"<tr><td class='label'>{label}</td>{cell}</tr>" for label, cell in rows)
    return f"<table><tbody>{body}</tbody></table>"


def _arms_card(report: ExperimentReport) -> str:
    srm = report.srm
    rows = []
    for arm, units in report.arms.items():
        role = " (control)" if arm == report.control else ""
        rows.append(
            f"<tr><td>{escape(arm)}{role}</td>"
            + _cell(units, [("arms", arm), ("srm", "observed", arm)])
            + _cell(srm.expected_shares[arm], [("srm", "expected_shares", arm)])
            + _cell(srm.expected[arm], [("srm", "expected", arm)])
            + "</tr>"
        )
    arms_table = (
        "<table><thead><tr><th>Arm</th><th class='num'>Units</th>"
        "<th class='num'>Planned share</th><th class='num'>Expected units</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    verdict = (
        "<span class='verdict-bad'>Sample-ratio mismatch: the assignment is suspect; find "
        "the cause before trusting any lift.</span>"
        if srm.mismatch
        else "<span class='verdict-ok'>No sample-ratio mismatch.</span>"
    )
    srm_table = (
        "<table><thead><tr><th class='num'>Chi-square</th><th class='num'>Degrees of freedom</th>"
        "<th class='num'>p-value</th><th class='num'>Mismatch</th></tr></thead><tbody><tr>"
        + _cell(srm.chi2, [("srm", "chi2")])
        + _cell(srm.df, [("srm", "df")])
        + _cell(srm.p_value, [("srm", "p_value")])
        + _cell(srm.mismatch, [("srm", "mismatch")])
        + "</tr></tbody></table>"
    )
    return (
        '<section class="block card"><h2>Arms and the sample-ratio check</h2>'
        f"{arms_table}<p>{verdict}</p>{srm_table}{_settings_table(report)}</section>"
    )


# label, field of ArmComparison.to_dict(), shown only when some arm has a value
_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("Units in control", "n_control", False),
    ("Units in the arm", "n_treatment", False),
    ("Control mean", "control_mean", False),
    ("Arm mean", "treatment_mean", False),
    ("Lift (arm - control)", "absolute_lift", False),
    ("Interval low", "ci_low", False),
    ("Interval high", "ci_high", False),
    ("Relative lift", "relative_lift", False),
    ("Relative interval low", "relative_ci_low", False),
    ("Relative interval high", "relative_ci_high", False),
    ("p-value", "p_value", False),
    ("p-value, corrected", "p_value_adjusted", True),
    ("Significant", "significant", False),
    ("Test statistic", "statistic", False),
    ("Standard error of the lift", "standard_error", False),
    ("Degrees of freedom", "df", True),
    ("CUPED theta", "theta", True),
    ("CUPED variance reduction", "variance_reduction", True),
)


def _metric_table(report: ExperimentReport, metric: str) -> str:
    indexed = [(i, c) for i, c in enumerate(report.comparisons) if c.metric == metric]
    values = [(i, c.to_dict()) for i, c in indexed]
    head = "".join(f"<th class='num'>{escape(c.arm)}</th>" for _, c in indexed)
    body = []
    for label, key, optional in _ROWS:
        if optional and all(v[key] is None for _, v in values):
            continue
        cells = "".join(_cell(v[key], [("comparisons", i, key)]) for i, v in values)
        body.append(f"<tr><td class='label'>{label}</td>{cells}</tr>")
    method = escape(indexed[0][1].method)
    return (
        f"<table><thead><tr><th>{method}</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def plot_lift(report: ExperimentReport, metric: str) -> go.Figure:
    """Each arm's lift over control on one metric, with its interval; significant arms in blue.

    Raises
    ------
    KeyError
        The report has no such metric.
    """
    comparisons = report.for_metric(metric)
    if not comparisons:
        raise KeyError(metric)
    proportions = comparisons[0].method is ComparisonMethod.PROPORTIONS_Z
    figure = go.Figure()
    for c in comparisons:
        arm = escape(c.arm)
        colour = _SIGNIFICANT if c.significant else _NOT_SIGNIFICANT
        if math.isfinite(c.ci_low) and math.isfinite(c.ci_high):
            figure.add_trace(
                go.Scatter(
                    x=[c.ci_low, c.ci_high],
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
                x=[c.absolute_lift],
                y=[arm],
                mode="markers",
                marker={"symbol": "diamond", "size": 13, "color": colour},
                name=arm,
                showlegend=False,
                hovertemplate=f"{arm}<br>lift %{{x}}<extra></extra>",
            )
        )
    figure.add_vline(x=0, line={"color": "#6b7280", "dash": "dot"})
    unit = "difference in rate" if proportions else f"difference in mean {escape(metric)}"
    figure.update_layout(
        xaxis={
            "title": {"text": f"{unit}, {_level(report.alpha)} interval"},
            "tickformat": ".2%" if proportions else None,
            "zeroline": False,
        },
        # the first arm on top, as in the tables
        yaxis={"type": "category", "automargin": True, "autorange": "reversed"},
    )
    return figure


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "metric"


def _write_images(
    figures: dict[str, go.Figure], path: Path, images: bool
) -> tuple[list[Path], list[str]]:
    """PNG files next to the page when kaleido is installed; otherwise a note saying why not."""
    if not images:
        return [], []
    if importlib.util.find_spec("kaleido") is None:
        return [], [
            f"PNG charts were not written: plotly's image export needs the kaleido package "
            f"({PNG_PACKAGE}), which is not installed. The HTML page holds the same charts."
        ]
    written: list[Path] = []
    for metric, figure in figures.items():
        target = path.with_name(f"{path.stem}-{_slug(metric)}.png")
        try:
            figure.write_image(target, width=PNG_WIDTH, height=120 + 80 * len(figure.data))
        except Exception as exc:  # kaleido raises its own types (no Chrome, a crashed browser)
            return written, [f"PNG charts stopped at {metric}: {type(exc).__name__}: {exc}"]
        written.append(target)
    return written, []


def write_experiment_report(
    report: ExperimentReport,
    path: Path,
    *,
    title: str = "Experiment report",
    notes: Sequence[str] = (),
    images: bool = True,
) -> ReportFiles:
    """Write the experiment as one HTML file that works offline, plus PNG charts if possible.

    Parameters
    ----------
    report
        From ``analyze_experiment``.
    path
        The HTML file; its folder is created when missing. PNG charts go next to it as
        ``<stem>-<metric>.png``.
    title
        Shown in the page header.
    notes
        Lines for the data-notes section (the source of the table, its licence); plain text,
        escaped.
    images
        Try to write PNG charts (needs kaleido).
    """
    generated = generated_at()
    meta = [
        f"Arms in <strong>{escape(report.arm_col)}</strong>",
        f"Control <strong>{escape(report.control)}</strong>",
        f"{_level(report.alpha)} intervals",
        f"Generated {generated}",
    ]
    figures = {metric: plot_lift(report, metric) for metric in report.metrics}
    cards = [
        chart_card(
            f"{escape(metric)}: lift over {escape(report.control)}",
            f"chart-lift-{index}",
            figures[metric],
            _metric_table(report, metric),
        )
        for index, metric in enumerate(report.metrics)
    ]
    items = [escape(note) for note in notes]
    items.append(
        "Lifts are arm minus control. 0/1 metrics are compared as proportions (two-proportion "
        "z: Wald interval, pooled test), others by Welch's t; relative lifts have delta-method "
        "intervals. A rate of 0.01 is one percentage point."
    )
    if report.correction.value != "none" and len(report.arms) > 2:
        items.append(
            f"Corrected p-values use {escape(report.correction)} across the arms of each "
            "metric; 'Significant' uses the corrected p-value."
        )
    items.append(
        "The sample-ratio check is a chi-square test of the arm sizes against the planned "
        "shares (Fabijan et al. 2019); every number in the tables equals the JSON output of "
        "'jingzhun experiment analyze --json'."
    )
    page = html_page(
        title=title,
        header=page_header(title, meta),
        body=[
            _arms_card(report),
            '<section class="charts">',
            *cards,
            "</section>",
            notes_card(items),
        ],
        generated=generated,
        extra_css=_EXTRA_CSS,
    )
    written = write_html(path, page)
    pngs, png_notes = _write_images(figures, path, images)
    return ReportFiles(html=written, images=pngs, notes=png_notes)
