"""Business rules on top of any recommender, and the settings file that names them.

- Items the customer **bought in the last** ``exclude_bought_days`` or **returned in the
  last** ``exclude_returned_days`` are not shown (the coffee machine bought yesterday is not
  offered again today; a returned item is not pushed back).
- Only items **in stock** (sold, or first listed, in the last ``in_stock_days``; see
  ``_data.py``) and not on the ``never`` list (postage, fees, gift cards) are shown.
- At most ``max_per_category`` items of one category per customer; items without a category
  are not capped (a catalogue without categories, like Online Retail's, is not cut to K).

The recommender is asked for more than ``n`` items (``n * oversample``) so that the cap can
drop some and still leave ``n``.

Settings live in ``models/recommend.yml`` of a project (every field optional)::

    method: blend            # blend | als | cooccurrence | rules | content | popularity | ...
    top: 10
    include_late_loads: true # history loaded after it happened (a backfill)
    rules:
      exclude_bought_days: 14
      exclude_returned_days: 180
      in_stock_days: 90
      max_per_category: 3
      never: [POST, DOT, M]  # Online Retail's postage and manual lines
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jingzhun.core import SpecError, SpecProblem
from jingzhun.core._yaml import LocatedYaml, load_yaml
from jingzhun.recommend._data import DEFAULT_STOCK_DAYS, Interactions
from jingzhun.recommend._recommenders import SCOPES, Method, Recommender

SETTINGS_FILE = Path("models") / "recommend.yml"


class BusinessRules(BaseModel):
    """What may be shown to whom, whatever the recommender thinks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exclude_bought_days: int | None = Field(default=14, ge=1)
    exclude_returned_days: int | None = Field(default=180, ge=1)
    in_stock_only: bool = True
    in_stock_days: int = Field(default=DEFAULT_STOCK_DAYS, ge=1)
    max_per_category: int | None = Field(default=3, ge=1)
    never: tuple[str, ...] = ()
    oversample: int = Field(default=3, ge=1)

    @field_validator("never", mode="before")
    @classmethod
    def _text_ids(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(str(v) for v in value)
        return value

    def for_ranking(self) -> BusinessRules:
        """The rules an offline evaluation keeps: the ``never`` list and the in-stock rule.

        Recent-purchase exclusions and category caps shape what a message shows; left out,
        the evaluation measures how well each method ranks.
        """
        return self.model_copy(
            update={
                "exclude_bought_days": None,
                "exclude_returned_days": None,
                "max_per_category": None,
            }
        )


class RecommendSettings(BaseModel):
    """``models/recommend.yml``: the default method, list length, data rule and rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Method.BLEND
    top: int = Field(default=10, ge=1, le=1000)
    similar: int = Field(default=10, ge=0, le=1000)
    include_late_loads: bool | None = None
    rules: BusinessRules = BusinessRules()


def _problems(doc: LocatedYaml, exc: ValidationError) -> list[SpecProblem]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        field = ".".join(str(p) for p in loc)
        allowed = ""
        if loc == ("method",):
            allowed = "; methods: " + ", ".join(m.value for m in Method)
        problems.append(SpecProblem(doc.path, doc.line_of(loc), field, f"{error['msg']}{allowed}"))
    return problems


def load_recommend_settings(path: Path) -> RecommendSettings:
    """Read ``models/recommend.yml``; a missing file gives the defaults.

    Every problem is reported at once as a ``SpecError`` naming file, line and setting.
    """
    if not path.exists():
        return RecommendSettings()
    doc = load_yaml(path)
    data: Any = doc.data
    if data in ({}, None):
        return RecommendSettings()
    if not isinstance(data, dict):
        raise SpecError([SpecProblem(path, 1, "", "must be a YAML mapping of setting: value")])
    try:
        return RecommendSettings.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_problems(doc, exc)) from None


def allowed_items(interactions: Interactions, rules: BusinessRules) -> np.ndarray:
    """Boolean mask over item codes: in stock (when the rule is on) and not on ``never``."""
    catalogue = interactions.catalogue
    allowed = np.ones(len(catalogue), dtype=bool)
    if rules.in_stock_only:
        allowed &= catalogue["in_stock"].to_numpy(dtype=bool)
    if rules.never:
        allowed &= ~catalogue["item_id"].isin(list(rules.never)).to_numpy()
    return allowed


def excluded_pairs(interactions: Interactions, rules: BusinessRules) -> sp.csr_matrix | None:
    """Customer x item matrix of what was bought or returned too recently to show."""
    parts = []
    for frame, days in (
        (interactions.purchases, rules.exclude_bought_days),
        (interactions.returns, rules.exclude_returned_days),
    ):
        if days is None or frame.empty:
            continue
        recent = frame[frame["age_days"] < days]
        parts.append(recent[["customer", "item"]])
    if not parts:
        return None
    pairs = pd.concat(parts, ignore_index=True).drop_duplicates()
    shape = (interactions.n_customers, interactions.n_items)
    data = np.ones(len(pairs), dtype=np.float32)
    return sp.csr_matrix((data, (pairs["customer"], pairs["item"])), shape=shape)


def _cap_codes(frame: pd.DataFrame, interactions: Interactions, k: int | None) -> pd.DataFrame:
    """``cap_per_category`` on a frame of customer and item codes."""
    if frame.empty:
        return frame
    ordered = frame.sort_values(["customer", "rank"], kind="stable")
    if k is not None:
        category = interactions.catalogue["category"].to_numpy(dtype=object)[
            ordered["item"].to_numpy(dtype=np.int64)
        ]
        has_category = pd.notna(category)
        codes = pd.factorize(np.where(has_category, category, ""))[0]
        nth = ordered.groupby([ordered["customer"].to_numpy(), codes], sort=False).cumcount()
        ordered = ordered[~has_category | (nth.to_numpy() < k)]
    ordered = ordered.copy()
    ordered["rank"] = ordered.groupby("customer", sort=False).cumcount() + 1
    return ordered.reset_index(drop=True)


def cap_per_category(
    recommendations: pd.DataFrame, interactions: Interactions, max_per_category: int | None
) -> pd.DataFrame:
    """Keep at most ``max_per_category`` items of each category per customer, in rank order,
    and number the ranks again from 1 (``customer_key, item_id, rank`` and any columns).
    """
    if recommendations.empty:
        return recommendations
    frame = recommendations.assign(
        customer=pd.factorize(recommendations["customer_key"])[0],
        item=interactions.item_codes.reindex(
            recommendations["item_id"].to_numpy(dtype=object)
        ).to_numpy(),
    )
    capped = _cap_codes(frame, interactions, max_per_category)
    return capped.drop(columns=["customer", "item"])


def recommend_with_rules(
    recommender: Recommender,
    rules: BusinessRules,
    n: int = 10,
    *,
    customers: list[str] | None = None,
    scope: str = "all",
    reasons: bool = True,
) -> pd.DataFrame:
    """The recommender's top ``n`` per customer under the business rules.

    Parameters
    ----------
    recommender
        A fitted recommender.
    rules
        What may be shown.
    n
        Items per customer.
    customers
        ``customer_key`` values (every customer with purchases when None).
    scope
        ``all``, ``new`` or ``history`` (see ``Recommender.recommend``).
    reasons
        Work out the reason texts.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    interactions = recommender.interactions_
    depth = n if rules.max_per_category is None else n * rules.oversample
    found = recommender.top_frame(
        customers,
        depth,
        scope=scope,
        exclude=excluded_pairs(interactions, rules),
        items=allowed_items(interactions, rules),
    )
    capped = _cap_codes(found, interactions, rules.max_per_category)
    kept = capped[capped["rank"] <= n].reset_index(drop=True)
    if reasons:
        kept["reason"] = recommender.reasons_for(kept)
    return recommender.with_ids(kept)
