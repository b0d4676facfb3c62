"""``jingzhun model``: fit, score, list and report predictive models (sub-commands live beside)."""

from __future__ import annotations

import typer

model_app = typer.Typer(help="Predictive models: CLV, propensity and churn, uplift, retention.")
fit_app = typer.Typer(help="Fit a model and register it.")
model_app.add_typer(fit_app, name="fit")
