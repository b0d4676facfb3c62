"""``jingzhun experiment``: analyse randomised experiments."""

from __future__ import annotations

import typer

experiment_app = typer.Typer(help="Analyse randomised experiments: lifts, intervals, SRM.")
