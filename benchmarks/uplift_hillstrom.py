"""Uplift on Hillstrom against the one-line rule: the final evaluation of the models README.

Womens E-Mail against No E-Mail, target ``visit``, 25 random halves stratified on arm and
visit (``fit_uplift_table``'s split): seeds 1000–1019, never used while choosing the learner,
and 0–4, the splits of the README's first table. On each split, measured on the same test half:

- ``model``: class transformation on LightGBM stumps (the defaults) with
  ``rank_first="womens"`` — women's-merchandise buyers first, the model orders within;
- ``rule``: "womens == 1 first, ties random" (``rule_ranking(womens, seed)``);
- ``plain``: the default class transformation without ``rank_first``, for context.

Written to ``results/uplift_hillstrom.json``: uplift@10/20/30 % per seed, visits, conversions
and spend per arm in the top 30 %, means, standard deviations, and the paired difference
model − rule with its standard error. The README's protocol calls the model better than the
rule only when that difference is at least two standard errors. About a minute on one thread.
"""

from __future__ import annotations

import json
import math
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from jingzhun.models import (
    ClassTransformation,
    evaluate_uplift,
    fit_uplift_table,
    rule_ranking,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SOURCE = REPO.parent / "shared" / "data" / "hillstrom" / "hillstrom.csv.gz"
SEEDS = [*range(1000, 1020), *range(5)]
FEATURES = ["recency", "history", "mens", "womens", "zip_code", "newbie", "channel"]
OUTCOMES = ("visit", "conversion", "spend")


def _top30(evaluation: Any) -> dict[str, dict[str, float]]:
    return {name: evaluation.top_outcomes[name]["30%"] for name in OUTCOMES}


def _stats(values: list[float]) -> dict[str, float]:
    array = np.asarray(values)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1))}


def main() -> None:
    """Run the 25 splits and write the figures."""
    if not SOURCE.exists():
        raise SystemExit(f"{SOURCE} is missing: the benchmark needs ../shared/data")
    frame = pd.read_csv(SOURCE)
    two_arms = frame[frame["segment"].isin(["Womens E-Mail", "No E-Mail"])].reset_index(drop=True)
    treatment = (two_arms["segment"] == "Womens E-Mail").to_numpy().astype(np.int64)
    visit = two_arms["visit"].to_numpy(dtype=np.float64)
    outcomes = {name: two_arms[name].to_numpy(dtype=np.float64) for name in OUTCOMES[1:]}
    features = two_arms[FEATURES]
    strata = treatment * 2 + visit.astype(np.int64)  # as fit_uplift_table stratifies

    per_seed: list[dict[str, Any]] = []
    for seed in SEEDS:
        train, test = train_test_split(
            np.arange(len(two_arms)), test_size=0.5, random_state=seed, stratify=strata
        )
        rankings = {
            "model": ClassTransformation(n_jobs=1, rank_first="womens"),
            "plain": ClassTransformation(n_jobs=1),
        }
        scores = {
            name: learner.fit(features.iloc[train], visit[train], treatment[train]).predict(
                features.iloc[test]
            )
            for name, learner in rankings.items()
        }
        scores["rule"] = rule_ranking(two_arms["womens"].iloc[test], seed)
        row: dict[str, Any] = {"seed": seed}
        for name, score in scores.items():
            evaluation = evaluate_uplift(
                visit[test],
                score,
                treatment[test],
                outcomes={k: v[test] for k, v in outcomes.items()},
                target_name="visit",
            )
            row[name] = {"uplift_at": evaluation.uplift_at, "top_30%": _top30(evaluation)}
            if name != "rule":
                top = np.argsort(-score, kind="stable")[: int(len(test) * 0.3)]
                womens = two_arms["womens"].iloc[test].to_numpy()
                row[name]["womens_share_of_top_30%"] = float(womens[top].mean())
        per_seed.append(row)
        print(
            f"seed {seed:4d}: model {row['model']['uplift_at']['30%']:.4f}  "
            f"rule {row['rule']['uplift_at']['30%']:.4f}  "
            f"plain {row['plain']['uplift_at']['30%']:.4f}",
            flush=True,
        )

    # The benchmark's split is fit_uplift_table's: check one seed end to end.
    check = fit_uplift_table(
        frame,
        treatment_column="segment",
        treatment_value="Womens E-Mail",
        control_value="No E-Mail",
        target="visit",
        exclude=["history_segment"],
        outcomes=["conversion", "spend"],
        baseline_column="womens",
        seed=SEEDS[0],
        params={"n_jobs": 1, "rank_first": "womens"},
    )
    assert math.isclose(
        check.evaluation.uplift_at["30%"], per_seed[0]["model"]["uplift_at"]["30%"]
    ), "the benchmark's split or learner drifted from fit_uplift_table's"

    summary: dict[str, Any] = {}
    for name in ("model", "rule", "plain"):
        summary[name] = {
            "uplift_at_30%": _stats([r[name]["uplift_at"]["30%"] for r in per_seed]),
            "top_30%": {
                outcome: {
                    side: float(np.mean([r[name]["top_30%"][outcome][side] for r in per_seed]))
                    for side in ("treated", "control", "difference")
                }
                for outcome in OUTCOMES
            },
        }
    for other in ("rule", "plain"):
        diff = np.array(
            [r["model"]["uplift_at"]["30%"] - r[other]["uplift_at"]["30%"] for r in per_seed]
        )
        standard_error = float(diff.std(ddof=1) / math.sqrt(len(diff)))
        summary[f"model_minus_{other}"] = {
            "mean": float(diff.mean()),
            "standard_error": standard_error,
            "t": float(diff.mean() / standard_error),
            "positive_splits": int((diff > 0).sum()),
        }
    verdict = summary["model_minus_rule"]
    summary["verdict"] = (
        "model beats the rule (difference at least two standard errors)"
        if verdict["mean"] >= 2 * verdict["standard_error"]
        else "not distinguishable from the rule (difference under two standard errors)"
        if verdict["mean"] > 0
        else "the rule is at least as good"
    )
    for seeds, label in ((SEEDS[:20], "seeds_1000_1019"), (SEEDS[20:], "seeds_0_4")):
        rows = [r for r in per_seed if r["seed"] in seeds]
        summary[label] = {
            name: float(np.mean([r[name]["uplift_at"]["30%"] for r in rows]))
            for name in ("model", "rule", "plain")
        }

    result = {
        "benchmark": "uplift_hillstrom",
        "data": "Hillstrom e-mail, Womens E-Mail vs No E-Mail, target visit",
        "seeds": SEEDS,
        "model": "ClassTransformation(rank_first='womens'), default stumps",
        "summary": summary,
        "per_seed": per_seed,
        "machine": {"python": platform.python_version(), "when": datetime.now(UTC).isoformat()},
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "uplift_hillstrom.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items()}, indent=2))


if __name__ == "__main__":
    main()
