"""How the recommenders were tuned, and the issue's figures: UCI Online Retail (541,909 invoice
lines, Dec 2010 – Dec 2011, CC BY 4.0) on time splits.

- Validation split: train on purchases up to 2011-07-21, test on 2011-07-22 – 2011-09-30
  (71 days, as long as the test period). Every setting in ``GRIDS`` is scored there, NDCG@10
  in the mode it serves; the package defaults (``make_recommender``) are the best of each grid
  (``Replenishment``: fewer rounds and leaves cost nothing and halve the time). Blend weights
  come from the same split (``BLEND_GRID``).
- Test split (the issue's): train to 2011-09-30, test on 2011-10-01 – 2011-12-09, looked at
  once with the chosen settings.

Online Retail's codes that are not products (postage, fees, manual lines) are neither shown
nor counted. Figures go to ``results/recommend_eval.json``; the warehouse is cached in
``data/online_retail_eval/``. About ten minutes on two cores.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jingzhun.recommend import (
    AssociationRules,
    Blend,
    BusinessRules,
    ContentBased,
    ImplicitALS,
    Interactions,
    ItemCooccurrence,
    Popularity,
    Recommender,
    Replenishment,
    Repurchase,
    evaluate,
    load_interactions,
    make_recommender,
    time_split,
)
from jingzhun.workspace import Workspace

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data" / "online_retail_eval"
RESULTS = HERE / "results"
SOURCE = REPO.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
LAST = dt.date(2011, 12, 9)
VALIDATION = (dt.date(2011, 7, 21), dt.date(2011, 9, 30))
TEST = (dt.date(2011, 9, 30), LAST)
NOT_PRODUCTS = ("POST", "DOT", "C2", "M", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK",
                "PADS")  # fmt: skip
RULES = BusinessRules(never=NOT_PRODUCTS)

Grid = dict[str, Callable[[], Recommender]]
GRIDS: dict[str, tuple[str, Grid]] = {
    "cooccurrence": (
        "discovery",
        {
            f"alpha={a} neighbours={nb} half_life={hl}": (
                lambda a=a, nb=nb, hl=hl: ItemCooccurrence(
                    alpha=a, neighbours=nb, half_life_days=hl
                )
            )
            for a in (0.4, 0.5, 0.7)
            for nb in (100, 300, 1000)
            for hl in (None, 30, 60)
        },
    ),
    "als": (
        "discovery",
        {
            f"factors={f} reg={r} alpha={a} weight={w}": (
                lambda f=f, r=r, a=a, w=w: ImplicitALS(
                    factors=f, regularization=r, alpha=a, weight=w, random_state=0
                )
            )
            for f in (32, 64, 128)
            for r in (0.05, 1.0)
            for a in (2.0, 10.0)
            for w in ("binary", "log")
        },
    ),
    "rules": (
        "discovery",
        {
            f"support={s} confidence={c}": (
                lambda s=s, c=c: AssociationRules(min_support=s, min_confidence=c)
            )
            for s in (0.003, 0.005, 0.01)
            for c in (0.05, 0.1, 0.2)
        },
    ),
    "content": (
        "discovery",
        {
            f"half_life={h} max_word_share={m}": (
                lambda h=h, m=m: ContentBased(half_life_days=h, max_word_share=m)
            )
            for h in (30, 90, 365)
            for m in (0.05, 0.2)
        },
    ),
    "popularity": (
        "discovery",
        {f"window={w}": (lambda w=w: Popularity(window_days=w)) for w in (None, 30, 90)},
    ),
    "repurchase": (
        "repurchase",
        {f"half_life={h}": (lambda h=h: Repurchase(half_life_days=h)) for h in (None, 30, 90)},
    ),
    "replenishment": (
        "repurchase",
        {
            f"rounds={r} windows={w} step={s} leaves={lv}": (
                lambda r=r, w=w, s=s, lv=lv: Replenishment(
                    rounds=r, windows=w, step_days=s, num_leaves=lv, random_state=0
                )
            )
            for r in (100, 300)
            for w, s in ((5, 30), (8, 20))
            for lv in (15, 31)
        },
    ),
}
# Reminder weight of the default blend (its discovery parts fixed at co-occurrence 1, ALS 1,
# content 0.25, the best of a grid over those weights), scored in the "all" mode: the list as
# it is sent, relevant = everything bought after the split.
BLEND_GRID = (0.5, 1.0, 2.0, 4.0, 8.0)


def _data() -> Interactions:
    """Online Retail ingested once into the cache folder, read as of its last day."""
    if not SOURCE.exists():
        raise SystemExit(f"{SOURCE} is missing: the benchmark needs ../shared/data")
    if not (DATA / "jingzhun.yml").exists():
        (DATA / "sources").mkdir(parents=True, exist_ok=True)
        spec = (REPO / "examples/online_retail/sources/online_retail.yml").read_text()
        spec = spec.replace(
            "path: ../../../shared/data/online_retail/online_retail.csv.gz", f"path: {SOURCE}"
        )
        (DATA / "sources" / "online_retail.yml").write_text(spec)
        (DATA / "jingzhun.yml").write_text("name: online_retail_eval\ncurrency: GBP\n")
    with Workspace.open(DATA) as ws:
        if not ws.engine.exists("raw_order_items"):
            assert ws.ingest.run().ok
        return load_interactions(ws.engine, LAST, include_late_loads=True)


def _grid(split: Any, mode: str, grid: Grid) -> dict[str, dict[str, float]]:
    baseline = "popularity" if mode == "discovery" else "repurchase"
    recommenders = {"baseline": make_recommender(baseline)}
    recommenders.update({name: build() for name, build in grid.items()})
    result = evaluate(split, mode, recommenders=recommenders, rules=RULES)
    base = result.score("baseline").ndcg
    return {
        s.method: {"ndcg": round(s.ndcg, 4), "ratio": round(s.ndcg / base, 3)}
        for s in result.scores
    }


def write_results(name: str, figures: dict[str, Any], started: float) -> None:
    """Write ``results/{name}.json``: the figures, then the seconds since ``started``, the
    machine and the time of measuring.
    """
    out = {
        **figures,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"{name}.json"
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {target}")


def main() -> None:
    started = time.perf_counter()
    data = _data()
    validation = time_split(data, VALIDATION[0], test_until=VALIDATION[1], rules=RULES)
    tuning: dict[str, Any] = {}
    for method, (mode, grid) in GRIDS.items():
        scores = _grid(validation, mode, grid)
        best = max((k for k in scores if k != "baseline"), key=lambda k: scores[k]["ndcg"])
        tuning[method] = {"mode": mode, "best": best, "scores": scores}
        print(f"{method}: best {best} {scores[best]}", flush=True)

    fitted = {
        name: make_recommender(name, random_state=0).fit(validation.train)
        for name in ("repurchase", "cooccurrence", "als", "content", "replenishment")
    }
    blends: dict[str, Recommender] = {"repurchase": fitted["repurchase"]}
    for weight in BLEND_GRID:
        blends[f"reminders={weight}"] = Blend(
            [
                (fitted["replenishment"], weight, "history"),
                (fitted["cooccurrence"], 1.0, "new"),
                (fitted["als"], 1.0, "new"),
                (fitted["content"], 0.25, "new"),
            ]
        )
    result = evaluate(validation, "all", recommenders=blends, rules=RULES)
    tuning["blend"] = {"mode": "all", "scores": result.to_dict()["methods"]}
    print("blend:", [(m["method"], m["ndcg"]) for m in tuning["blend"]["scores"]], flush=True)

    test = time_split(data, TEST[0], test_until=TEST[1], rules=RULES)
    methods = ("popularity", "repurchase", "cooccurrence", "als", "rules", "content",
               "replenishment")  # fmt: skip
    chosen = {name: make_recommender(name, random_state=0).fit(test.train) for name in methods}
    blend = make_recommender("blend", random_state=0)
    assert isinstance(blend, Blend)
    blend.parts = [(chosen[p.recommender.method], p.weight, p.scope) for p in blend.blend_parts()]
    chosen["blend"] = blend
    figures = {
        mode: evaluate(test, mode, recommenders=chosen, rules=RULES).to_dict()
        for mode in ("discovery", "repurchase", "all")
    }
    for mode, figure in figures.items():
        print(mode, {m["method"]: m["ndcg_vs_baseline"] for m in figure["methods"]}, flush=True)
    out = {
        "benchmark": "recommend_eval",
        "data": "UCI Online Retail, 541,909 lines (CC BY 4.0, doi:10.24432/C5BW33)",
        "validation": {
            "train_until": VALIDATION[0].isoformat(),
            "test_until": VALIDATION[1].isoformat(),
        },
        "test": {"train_until": TEST[0].isoformat(), "test_until": TEST[1].isoformat()},
        "not_products": list(NOT_PRODUCTS),
        "tuning_on_validation": tuning,
        "test_figures": figures,
        "goal": {
            "discovery": "NDCG@10 >= 1.5 x popularity among items not bought before",
            "repurchase": "NDCG@10 >= 1.2 x each customer's own most frequently bought items",
        },
    }
    write_results("recommend_eval", out, started)


if __name__ == "__main__":
    main()
