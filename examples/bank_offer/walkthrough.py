"""Worked example: the credit-card offer by SMS to the debit-card holders it moves most.

Run from this folder: ``python walkthrough.py``. Each step prints what it did; README.md
tells the story and gives the command-line equivalents. ``main(root)`` returns the figures
(``tests/campaigns/test_bank_offer.py`` runs it on a copy of this folder).
"""

from __future__ import annotations

import datetime as dt
import runpy
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from jingzhun.core import EngineError, RefusedError
from jingzhun.identity import IDENTITY_MAP_TABLE
from jingzhun.models import (
    SCORES_SCHEMA,
    UpliftFit,
    fit_uplift_table,
    frame_fingerprint,
    write_scores,
)
from jingzhun.workspace import Workspace

AS_OF = dt.date(2024, 6, 30)
SEGMENT = "credit_card_offer"
CAMPAIGN = "credit_card_sms"
SCORE_NAME = "cc_uplift"
ANALYST, MANAGER = "analyst", "manager"


def heading(title: str) -> None:
    """Print the title of a step."""
    print(f"\n== {title}")


def say(text: str) -> None:
    """Print what a step did."""
    print(f"   {text}")


def customer_keys(ws: Workspace) -> pd.DataFrame:
    """``customer_id`` (the core-banking id) → ``customer_key`` from the identity map.

    Parameters
    ----------
    ws
        An open workspace whose identities are built.

    Returns
    -------
    pandas.DataFrame
        One row per customer id, columns ``customer_id`` and ``customer_key``.
    """
    nodes = ws.engine.read(IDENTITY_MAP_TABLE)
    nodes = (
        nodes.filter(nodes.node_kind == "customer")
        .select(customer_id=nodes.node_id, customer_key=nodes.customer_key)
        .distinct()
    )
    keys = ws.engine.execute(nodes).to_pandas()
    repeated = keys.customer_id[keys.customer_id.duplicated()]
    if len(repeated):
        raise ValueError(f"customer ids with more than one customer_key: {list(repeated[:5])}")
    return keys


def store_scores(ws: Workspace, scores: pd.DataFrame, *, model_id: str) -> int:
    """Write predicted uplifts to the warehouse's ``scores`` as ``cc_uplift``, replacing the
    previous ones, so the campaign's selection can read them.

    Parameters
    ----------
    ws
        An open workspace whose identities are built.
    scores
        Columns ``customer_id`` (the core-banking id) and ``score`` (the predicted uplift).
    model_id
        The registered model that made the scores.

    Returns
    -------
    int
        Rows written (customers known to the identity map).
    """
    keyed = scores.merge(customer_keys(ws), on="customer_id", how="inner", validate="1:1")
    now = dt.datetime.now(dt.UTC)
    rows = pa.table(
        {
            "customer_key": keyed.customer_key.astype(str).tolist(),
            "model_id": [model_id] * len(keyed),
            "score_name": [SCORE_NAME] * len(keyed),
            "score": keyed.score.astype(float).tolist(),
            "scored_at": [now] * len(keyed),
            "as_of": [AS_OF] * len(keyed),
        },
        schema=SCORES_SCHEMA,
    )
    return write_scores(ws.engine, rows, score_name=SCORE_NAME)


def fit_pilot(pilot: pd.DataFrame, splits: int = 5) -> tuple[UpliftFit, dict[str, Any]]:
    """Fit the uplift model on the randomised pilot and measure it on held-out halves.

    Parameters
    ----------
    pilot
        ``data/pilot.csv``: features, ``treated`` 0/1, ``opened_credit_card`` 0/1.
    splits
        Random half/half splits measured (seeds 0, 1, ...); the model kept is the first's.

    Returns
    -------
    fit, figures
        The ``UpliftFit`` and the figures to quote: the pilot's overall lift, uplift@30% of
        the model and of the rule "most card payments in 90 days first", both over the splits.
    """
    fit = fit_uplift_table(
        pilot,
        treatment_column="treated",
        treatment_value="1",
        control_value="0",
        target="opened_credit_card",
        id_column="customer_id",
        baseline_column="payments_90d",
        test_fraction=0.5,
        seed=0,
        splits=splits,
        params={"random_state": 0, "n_jobs": 1},
    )
    rates = pilot.groupby("treated").opened_credit_card.mean()
    summary = fit.summary()
    figures = {
        "rows": len(pilot),
        "features": fit.features,
        "splits": splits,
        "treated_rate": round(float(rates[1]), 4),
        "control_rate": round(float(rates[0]), 4),
        "overall_lift": round(float(rates[1] - rates[0]), 4),
        "uplift_at_30": round(summary["uplift_at_30%_mean"], 4),
        "uplift_at_30_std": round(summary["uplift_at_30%_std"], 4),
        "rule_uplift_at_30": round(summary["baseline_uplift_at_30%_mean"], 4),
        "qini": round(summary["qini_coefficient_mean"], 4),
    }
    return fit, figures


def main(root: Path) -> dict[str, Any]:
    """Run the worked example in the project folder ``root`` and return its figures.

    Parameters
    ----------
    root
        This folder, or a copy of it: ``jingzhun.yml``, ``sources/``, ``segments/``,
        ``campaigns/`` and ``make_data.py``.
    """
    figures: dict[str, Any] = {}

    heading("1. Make the data (seeded)")
    make_data = runpy.run_path(str(root / "make_data.py"))
    figures["data"] = make_data["write_data"](root / "data")
    for name, rows in figures["data"].items():
        say(f"data/{name}: {rows:,} rows")

    with Workspace.open(root) as ws:
        heading("2. Load the sources (jingzhun ingest)")
        loaded = ws.ingest.run()
        if not loaded.ok:
            raise EngineError(f"a source file was refused: {loaded.to_dict()}")
        figures["ingest"] = loaded.to_dict()["totals"]
        say(", ".join(f"{k} {v:,}" for k, v in figures["ingest"].items()))

        heading(f"3. Identities, profiles and segments as of {AS_OF} (jingzhun build)")
        built = ws.build(AS_OF)
        figures["customers"] = built.profiles.customers
        say(f"{built.profiles.customers:,} customers profiled")

        heading(f"4. The audience (jingzhun segment count {SEGMENT})")
        figures["segment"] = ws.segments.count(SEGMENT)
        say(
            f"{figures['segment']:,} debit-card holders with spending in the last 6 months, "
            "a valid mobile, SMS consent and no credit card",
        )

        heading("5. Learn who the SMS moves, from last autumn's randomised pilot")
        pilot = pd.read_csv(root / "data" / "pilot.csv")
        fit, figures["uplift"] = fit_pilot(pilot)
        u = figures["uplift"]
        say(
            f"pilot: {u['rows']:,} customers, {u['treated_rate']:.1%} opened a card with the "
            f"SMS, {u['control_rate']:.1%} without: overall lift {u['overall_lift']:+.2%}",
        )
        say(
            f"uplift@30% over {u['splits']} splits: model {u['uplift_at_30']:+.2%} "
            f"(± {u['uplift_at_30_std']:.2%}), rule 'most payments first' "
            f"{u['rule_uplift_at_30']:+.2%}; Qini {u['qini']:.3f}",
        )
        record = ws.models.registry.save(
            fit.model,
            kind="uplift",
            name="cc-uplift",
            params=fit.params(),
            features=fit.features,
            training_window={"table": "pilot.csv", "rows_train": fit.rows_train},
            data_fingerprint=frame_fingerprint(pilot),
            metrics={k: v for k, v in u.items() if k != "features"},
        )
        say(f"registered as {record.model_id}")

        heading(f"6. Score today's customers and store the scores as '{SCORE_NAME}'")
        features = pd.read_csv(root / "data" / "features.csv")
        features["score"] = fit.model.predict(features[fit.features])  # the predicted uplift
        figures["scored"] = store_scores(ws, features, model_id=record.model_id)
        say(
            f"{figures['scored']:,} customers scored; predicted uplift: median "
            f"{features.score.median():+.2%}, top decile from {features.score.quantile(0.9):+.2%}",
        )

        heading(f"7. Plan the campaign (jingzhun campaign plan {CAMPAIGN}) by {ANALYST}")
        plan = ws.campaigns.plan(CAMPAIGN, by=ANALYST)
        figures["plan"] = plan.to_dict()
        for step in plan.waterfall:
            dropped = f"  (−{step['dropped']:,})" if step["dropped"] else ""
            say(f"{step['step']:<15}{step['customers']:>7,}{dropped}")
        f = plan.figures
        say(
            f"{f['contacts']:,} SMS for {f['cost']:,.2f} CNY of a {f['budget']:,.0f} CNY budget; "
            f"{f['holdout']:,} held out",
        )
        say(
            f"expected: {f['expected_incremental_conversions']:.1f} more credit cards, worth "
            f"{f['expected_incremental_value']:,.0f} CNY; ROI {f['expected_roi']:.2f}",
        )

        heading("8. Four eyes: the plan goes out only once someone else approves it")
        refusals = {}
        for what, attempt in (
            ("launch_unapproved", lambda: ws.campaigns.launch(CAMPAIGN, by=ANALYST)),
            ("approve_by_author", lambda: ws.campaigns.approve(CAMPAIGN, by=ANALYST)),
        ):
            try:
                attempt()
            except RefusedError as exc:
                refusals[what] = str(exc)
                say(f"refused: {exc}")
            else:
                raise AssertionError(f"{what} should have been refused")
        figures["refusals"] = refusals
        approved = ws.campaigns.approve(CAMPAIGN, by=MANAGER)
        say(f"approved by {approved.approved_by}")

        heading(f"9. Launch (jingzhun campaign launch {CAMPAIGN}) by {MANAGER}")
        launched, queued = ws.campaigns.launch(CAMPAIGN, by=MANAGER)
        figures["launched"] = {
            "plan_id": launched.plan_id,
            "status": launched.status,
            "created_by": launched.created_by,
            "approved_by": launched.approved_by,
            "launched_by": launched.launched_by,
            "queued": queued,
        }
        say(f"{queued:,} messages queued for delivery; plan {launched.plan_id} launched")
    return figures


if __name__ == "__main__":
    main(Path(__file__).resolve().parent)
