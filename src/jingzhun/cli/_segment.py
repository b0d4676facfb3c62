"""``jingzhun segment``: list, count, preview, explain and export audiences."""

from __future__ import annotations

import typer

segment_app = typer.Typer(help="Segments: audiences from rules, counted, previewed, explained.")
