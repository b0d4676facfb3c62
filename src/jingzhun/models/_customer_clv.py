"""CLV for the customers in the warehouse: BG/NBD + Gamma-Gamma fitted on their orders as
of a date, written to ``scores`` as ``p_alive``, ``expected_purchases_12m`` and ``clv_12m``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from jingzhun.core import NotFoundError
from jingzhun.engine import Engine
from jingzhun.models._clv import ClvResult, TimeUnit, fit_clv
from jingzhun.models._features import SCORES_SCHEMA, write_scores
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
