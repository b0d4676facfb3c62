"""``jingzhun recommend``: fit recommenders, export and explain recommendations."""

from __future__ import annotations

import typer

recommend_app = typer.Typer(help="Recommendations: what to offer each customer, and why.")
