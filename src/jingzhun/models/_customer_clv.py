"""CLV for the customers in the warehouse: BG/NBD + Gamma-Gamma fitted on their orders as
of a date, written to ``scores`` as ``p_alive``, ``expected_purchases_12m`` and ``clv_12m``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pyarrow as pa

from jingzhun.core import NotFoundError
from jingzhun.engine import Engine
from jingzhun.models._clv import ClvResult, TimeUnit, fit_clv
from jingzhun.models._features import SCORES_SCHEMA, write_scores
from jingzhun.models._registry import ModelRecord
from jingzhun.models._report import write_model_report
from jingzhun.profile import AsOf, customer_orders, identity_snapshot

CLV_SCORES = ("p_alive", "expected_purchases_12m", "clv_12m")


@dataclass
class CustomerClv:
    """The fitted models, their id (a hash of parameters and date) and the rows written."""

    model_id: str
    as_of: dt.date
    result: ClvResult
    scored: int

    def to_dict(self) -> dict[str, Any]:
        """Parameters, calibration and rows written, for ``--json``."""
        return {
            "model_id": self.model_id,
            "as_of": self.as_of.isoformat(),
            "scored": self.scored,
            "scores": list(CLV_SCORES),
            **self.result.to_dict(),
        }


def fit_customer_clv(
    engine: Engine,
    as_of: dt.date,
    *,
    include_late_loads: bool = False,
    horizon_months: int = 12,
    discount_rate: float = 0.01,
) -> CustomerClv:
    """Fit BG/NBD and Gamma-Gamma on every customer's orders (not returns, net value) up to
    ``as_of`` in weeks, as Fader, Hardie & Lee do, and write the scores.
    """
    day = AsOf(as_of, include_late_loads)
    orders = customer_orders(engine, day, identity_snapshot(engine, as_of))
    if orders is None:
        raise NotFoundError("no orders in the warehouse: CLV needs purchases (ingest orders)")
    sales = orders.filter(~orders.is_return & (orders.net > 0))
    frame = engine.execute(
        sales.select("customer_key", "order_date", amount=sales.net.cast("float64"))
    ).to_pandas()
    if frame.empty:
        raise NotFoundError(f"no purchases up to {as_of}: CLV needs at least one order")
    result = fit_clv(
        frame,
        customer_col="customer_key",
        date_col="order_date",
        amount_col="amount",
        calibration_end=as_of,
        time_unit=TimeUnit.WEEK,
        pareto_nbd=False,
    )
    table = result.customer_table(horizon=horizon_months, discount_rate=discount_rate)
    params = repr(sorted(result.to_dict()["bgnbd"].items())) + str(as_of)
    model_id = (
        "clv-" + as_of.strftime("%Y%m%d") + "-" + hashlib.sha256(params.encode()).hexdigest()[:6]
    )
    scored_at = dt.datetime.now(dt.UTC)
    columns = {"p_alive": "p_alive", "expected_purchases_12m": "expected_purchases"}
    if "expected_clv" in table.columns:
        columns["clv_12m"] = "expected_clv"
    written = 0
    for score_name, column in columns.items():
        rows = pa.table(
            {
                "customer_key": pa.array(table.index.astype(str).tolist(), pa.string()),
                "model_id": pa.array([model_id] * len(table), pa.string()),
                "score_name": pa.array([score_name] * len(table), pa.string()),
                "score": pa.array(table[column].to_numpy(dtype="float64"), pa.float64()),
                "scored_at": pa.array([scored_at] * len(table), pa.timestamp("us", tz="UTC")),
                "as_of": pa.array([as_of] * len(table), pa.date32()),
            },
            schema=SCORES_SCHEMA,
        )
        written = write_scores(engine, rows, score_name=score_name)
    return CustomerClv(model_id, as_of, result, written)


def plot_frequency_recency(result: ClvResult, horizon_weeks: float = 52.0) -> go.Figure:
    """Expected purchases over the next ``horizon_weeks`` for each (frequency, recency) pair of
    a customer with the median age T — Fader, Hardie & Lee's frequency–recency matrix.
    """
    summary = result.summary
    unit_days = result.time_unit.days
    age = float(np.median(summary["T"].to_numpy(np.float64)))
    max_x = int(max(1, np.percentile(summary["frequency"], 99)))
    xs = np.arange(0, max_x + 1, dtype=np.float64)
    ts = np.linspace(0, age, 25)
    grid_x, grid_t = np.meshgrid(xs, ts)
    horizon = horizon_weeks * 7 / unit_days
    # without repeat purchases recency is 0 by definition: that column has one valid cell
    recency = np.where(grid_x == 0, 0.0, grid_t)
    expected = result.bgnbd.expected_purchases(
        horizon, grid_x.ravel(), recency.ravel(), np.full(grid_x.size, age)
    ).reshape(grid_x.shape)
    expected = np.where((grid_x == 0) & (grid_t > 0), np.nan, expected)
    figure = go.Figure(
        go.Heatmap(
            x=xs,
            y=ts,
            z=expected,
            colorscale="Blues",
            colorbar={"title": "purchases"},
            hovertemplate="frequency %{x}<br>recency %{y:.1f}<br>expected %{z:.2f}<extra></extra>",
        )
    )
    figure.update_layout(
        xaxis_title="repeat purchases (frequency)",
        yaxis_title=f"recency ({result.time_unit.value}s, T = {age:.0f})",
        margin={"l": 60, "r": 10, "t": 10, "b": 50},
    )
    return figure


def plot_p_alive(result: ClvResult) -> go.Figure:
    """How many customers have each P(alive), by repeat buyers and one-time buyers."""
    summary = result.summary
    x, t_x, age = (summary[c].to_numpy(np.float64) for c in ("frequency", "recency", "T"))
    p_alive = result.bgnbd.expected_probability_alive(x, t_x, age)
    figure = go.Figure()
    for label, mask in (("repeat buyers", x > 0), ("one purchase", x == 0)):
        figure.add_trace(go.Histogram(x=p_alive[mask], name=label, xbins={"size": 0.05}))
    figure.update_layout(
        barmode="stack",
        xaxis_title="P(alive)",
        yaxis_title="customers",
        margin={"l": 60, "r": 10, "t": 10, "b": 50},
    )
    return figure


def clv_record(result: ClvResult, *, model_id: str, source: str) -> ModelRecord:
    """A registry-shaped record of a CLV fit, for its report."""
    payload = result.to_dict()
    metrics: dict[str, Any] = {
        "customers": payload["customers"],
        "log_likelihood": payload["bgnbd"]["log_likelihood"],
    }
    holdout = payload.get("holdout") or {}
    for key in ("predicted", "actual", "correlation", "mean_absolute_error"):
        if key in holdout:
            metrics[f"holdout_{key}"] = holdout[key]
    return ModelRecord(
        model_id=model_id,
        kind="clv",
        name="clv",
        version=1,
        params={k: v for k, v in payload.items() if k in ("bgnbd", "gamma_gamma", "pareto_nbd")},
        features=["frequency", "recency", "T", "monetary_value"],
        training_window=payload["calibration"],
        data_fingerprint=source,
        metrics=metrics,
        artifact="",
        sha256="",
        created_at=dt.datetime.now(dt.UTC),
    )


def write_clv_report(result: ClvResult, path: Path, *, source: str) -> Path:
    """The CLV report: parameters, holdout check, the frequency–recency matrix and P(alive)."""
    params = repr(sorted(result.to_dict()["bgnbd"].items()))
    model_id = "clv-" + hashlib.sha256(params.encode()).hexdigest()[:8]
    return write_model_report(
        clv_record(result, model_id=model_id, source=source),
        None,
        path,
        extra_figures=[
            (
                "Expected purchases in the next year by frequency and recency",
                plot_frequency_recency(result),
            ),
            ("P(alive) of the customers", plot_p_alive(result)),
        ],
        notes=[
            f"Transactions: {source}",
            "BG/NBD (Fader, Hardie & Lee 2005), Gamma-Gamma (Fader & Hardie 2013).",
        ],
        title="CLV model: BG/NBD and Gamma-Gamma",
    )
