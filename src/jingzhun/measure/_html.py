"""The one page template of measure's HTML reports: style, header, chart cards, offline plotly.

Every report opens on a machine without internet, so plotly.js is inlined once in the head and
each chart is a ``<div>`` plus a short script that draws into it. Text that comes from the data
goes through ``escape`` (in the page and in chart labels: plotly reads entities back into
characters when it draws).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path

import plotly
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

CHART_HEIGHT = "340px"
# The mode bar covers the plot area in a static report; zoom still works by dragging.
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}

CSS = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --card: #ffffff;
  --page: #f3f4f6; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
header { background: var(--card); border-bottom: 1px solid var(--line); padding: 20px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header .meta { margin: 0; color: var(--muted); }
header .meta span + span::before { content: "·"; margin: 0 8px; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 32px 48px; }
h2 { font-size: 16px; margin: 0 0 8px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 16px;
  margin-bottom: 24px; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 14px 16px; }
.kpi .label { color: var(--muted); font-size: 13px; text-transform: uppercase;
  letter-spacing: .04em; }
.kpi .value { font-size: clamp(18px, 1.6vw, 24px); font-weight: 600; margin: 2px 0;
  font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.kpi .sub { color: var(--muted); font-size: 13px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(520px, 100%), 1fr));
  gap: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px; min-width: 0; }
.card .empty { color: var(--muted); margin: 24px 0; }
table { width: 100%; border-collapse: collapse; margin-top: 8px; font-size: 13px;
  font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left; }
th.num, td.num { text-align: right; }
.notes { margin-top: 24px; }
.notes ul { margin: 0; padding-left: 20px; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 16px; }
"""

# Each chart is drawn while the page is still arriving, when its card may be the only one in
# its grid row; every chart is sized again once the layout is final.
_RESIZE_ON_LOAD = (
    "<script>window.addEventListener('load', function () {"
    " document.querySelectorAll('.plotly-graph-div').forEach("
    "function (d) { Plotly.Plots.resize(d); }); });</script>"
)


def escape(value: object) -> str:
    """The value as HTML text, quotes included (safe inside attributes too)."""
    return html.escape(str(value), quote=True)


def generated_at() -> str:
    """The current UTC minute, as reports print it."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def page_header(title: str, meta: Sequence[str]) -> str:
    """The page header: the escaped title and a line of meta parts (already HTML)."""
    spans = "".join(f"<span>{part}</span>" for part in meta)
    return f'<header><h1>{escape(title)}</h1><p class="meta">{spans}</p></header>'


def chart_card(title: str, chart_id: str, figure: go.Figure | None, extra: str = "") -> str:
    """A card with a title (HTML), one plotly chart (or an empty note) and extra HTML below."""
    if figure is None:
        body = '<p class="empty">No data in this period.</p>'
    else:
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
            config=PLOTLY_CONFIG,
            default_height=CHART_HEIGHT,
        )
    return f'<div class="card"><h2>{title}</h2>{body}{extra}</div>'


def notes_card(items: Sequence[str]) -> str:
    """The data-notes section; ``items`` are HTML (escape text from the data first)."""
    bullets = "".join(f"<li>{item}</li>" for item in items)
    return f'<section class="notes card"><h2>Data notes</h2><ul>{bullets}</ul></section>'


def html_page(
    *, title: str, header: str, body: Sequence[str], generated: str, extra_css: str = ""
) -> str:
    """A whole report page: plotly.js inlined once, the header, the main parts, a footer."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            f"<style>{CSS}{extra_css}</style>",
            f"<!-- plotly.js {plotly.__version__} (MIT licence), inlined to work offline -->",
            f"<script>{get_plotlyjs()}</script>",
            "</head>",
            "<body>",
            header,
            "<main>",
            *body,
            "</main>",
            f"<footer>Generated by jingzhun on {generated}.</footer>",
            _RESIZE_ON_LOAD,
            "</body>",
            "</html>",
        ]
    )


def write_html(path: Path, page: str) -> Path:
    """Write the page as UTF-8, creating its folder; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
