"""Behavioural features of every customer, read from ``profiles``, for clustering and look-alike.

Both statistical tools see a customer the same way: the numeric behaviour columns of the
profile with nulls filled by what the null means, heavy-tailed counts and money on a log
scale, and every column standardised (mean 0, standard deviation 1) so that no unit (pounds
against days) outweighs another. The module also holds the one write both tools share:
replacing their own rows of a result table and nobody else's.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.preprocessing import StandardScaler

from jingzhun.core import NotFoundError, SpecError, SpecProblem
from jingzhun.engine import Engine
from jingzhun.profile import PROFILES

DEFAULT_BEHAVIOUR_COLUMNS = (
    "recency_days",
    "frequency",
    "monetary",
    "return_rate",
    "events",
    "activity_score",
    "lead_score",
    "age",
)
DESCRIPTION_TAGS = ("lifecycle_stage", "value_tier", "rfm_segment", "interest_1", "country")
# Counts and money: a few customers hold most of them, so a log scale keeps one big spender
# from pulling a cluster centre (signed log1p: net revenue can be negative after returns).
HEAVY_TAILED = frozenset(
    {
        "frequency",
        "orders",
        "returns",
        "monetary",
        "revenue",
        "gross_revenue",
        "returns_value",
        "events",
        "lead_score",
        "identifiers",
    }
)
# Figures of a customer's orders: zero for a non-buyer by definition rather than by behaviour.
ORDER_FIGURES = frozenset(
    {"frequency", "orders", "returns", "monetary", "revenue", "gross_revenue", "returns_value"}
)
# What a null means decides how it is filled. A non-buyer's last order is longer ago than
# anybody's (the largest recency plus one day); without sales nothing was returned (0); an
# unknown age is the median age. Each filled column also gets a 0/1 indicator, named for what
# the null means; columns null for the same reason share one indicator.
_FILL_LONGEST = frozenset({"recency_days"})
_FILL_ZERO = frozenset({"return_rate"})
_INDICATOR_NAMES = {"recency_days": "no_orders", "return_rate": "no_orders", "age": "age_unknown"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
SEGMENT_NAME_LENGTH = 63  # the segment spec's limit on names


@dataclass(frozen=True)
class BehaviourFeatures:
    """Every customer's behaviour as stored, as standardised for models, and their tags.

    All three frames are indexed by ``customer_key``, sorted, so row order (and with it every
    seeded result) does not depend on the order the warehouse returns rows in.

    Attributes
    ----------
    raw
        The numeric columns as stored (nulls kept) plus the 0/1 indicators: the units a
        marketer reads.
    standardised
        The model input: nulls filled, heavy-tailed columns on a signed ``log1p`` scale, every
        column scaled to mean 0 and standard deviation 1.
    tags
        Text tags used to describe groups (``lifecycle_stage``, ``value_tier``, ...), nulls
        kept.
    as_of
        The date the profiles describe.
    transforms
        Per standardised column, how it was made (``"log1p"``, ``"as is"``, ``"indicator"``,
        with the fill used for nulls).
    """

    raw: pd.DataFrame
    standardised: pd.DataFrame
    tags: pd.DataFrame
    as_of: dt.date
    transforms: dict[str, str] = field(default_factory=dict)

    @property
    def customers(self) -> int:
        """How many customers the features cover."""
        return len(self.standardised)

    def described(self) -> pd.DataFrame:
        """The raw columns as a marketer compares them: order figures (frequency, monetary,
        ...) of non-buyers are left out, so "monetary 428 vs 453 average" compares a group's
        buyers with all buyers; whether a group buys at all is the ``no_orders`` indicator.
        """
        out = self.raw.copy()
        if "no_orders" in out.columns:
            non_buyers = out["no_orders"] == 1.0
            for name in ORDER_FIGURES.intersection(out.columns):
                out.loc[non_buyers, name] = np.nan
        return out

    def comparable(self) -> pd.DataFrame:
        """``described`` on the model's scale, standardised over the customers who have a
        value: a group's mean here compares it with everybody else who has that value, not
        with fill values (a non-buyer's recency is not a recency).
        """
        described = self.described()
        out = pd.DataFrame(index=described.index)
        for name in self.standardised.columns:
            values = described[name]
            if self.transforms[name].startswith("log1p"):
                values = _signed_log1p(values)
            spread = float(values.std(ddof=0))
            centred = values - float(values.mean())
            out[name] = centred / spread if spread > 0 else centred * 0.0
        return out


def parameter_problem(where: str, name: str, message: str) -> SpecError:
    """A ``SpecError`` about one argument of a call (``where`` names the call or the set)."""
    return SpecError([SpecProblem(Path(where), None, name, message)])


def check_name(
    where: str, parameter: str, value: str, *, longest: int = SEGMENT_NAME_LENGTH
) -> None:
    """Refuse a name that cannot be a segment name or a file name: a lower-case identifier of
    at most ``longest`` characters.
    """
    if not _NAME.match(value) or len(value) > longest:
        raise parameter_problem(
            where,
            parameter,
            f"{value!r} is not a valid name; use up to {longest} lower-case letters, digits "
            "and '_', starting with a letter (e.g. 'behaviour')",
        )


def _numeric_columns(profiles: ir.Table) -> list[str]:
    schema = profiles.schema()
    return [
        name
        for name, dtype in schema.items()
        if (dtype.is_integer() or dtype.is_floating() or dtype.is_decimal())
        and name != "customer_key"
    ]


def _chosen_columns(profiles: ir.Table, columns: Sequence[str] | None) -> list[str]:
    numeric = _numeric_columns(profiles)
    if columns is None:
        chosen = [c for c in DEFAULT_BEHAVIOUR_COLUMNS if c in numeric]
        if not chosen:
            raise parameter_problem(
                "profiles",
                "columns",
                "none of the default behaviour columns "
                f"({', '.join(DEFAULT_BEHAVIOUR_COLUMNS)}) is in profiles; name numeric "
                f"columns instead (numeric columns: {', '.join(numeric) or 'none'})",
            )
        return chosen
    names = list(dict.fromkeys(columns))
    wrong = [c for c in names if c not in numeric]
    if wrong or not names:
        raise parameter_problem(
            "profiles",
            "columns",
            (f"not numeric profile columns: {', '.join(wrong)}; " if wrong else "no columns; ")
            + f"numeric columns: {', '.join(numeric)}",
        )
    return names


def _signed_log1p(values: pd.Series) -> pd.Series:
    return np.sign(values) * np.log1p(values.abs())


def load_behaviour(
    engine: Engine,
    *,
    columns: Sequence[str] | None = None,
    tag_columns: Sequence[str] = DESCRIPTION_TAGS,
) -> BehaviourFeatures:
    """Read ``profiles`` once and return raw, standardised and tag views of every customer.

    Parameters
    ----------
    engine
        The warehouse holding ``profiles``.
    columns
        Numeric profile columns to use (custom numeric tags included); by default those of
        ``DEFAULT_BEHAVIOUR_COLUMNS`` that the table has.
    tag_columns
        Text columns kept for descriptions; those the table lacks are left out.

    Raises
    ------
    NotFoundError
        When there are no profiles to read.
    SpecError
        When a named column is not a numeric column of ``profiles``.
    """
    if not engine.exists(PROFILES):
        raise NotFoundError("no profiles yet: build them first (`jingzhun build`)")
    profiles = engine.read(PROFILES)
    chosen = _chosen_columns(profiles, columns)
    schema = profiles.schema()
    tags = [c for c in dict.fromkeys(tag_columns) if c in schema and schema[c].is_string()]
    selected = profiles.select(
        customer_key=profiles.customer_key,
        as_of=profiles.as_of,
        **{c: profiles[c].cast("float64") for c in chosen},
        **{f"_tag_{c}": profiles[c] for c in tags},
    )
    frame = engine.execute(selected).to_pandas()
    if frame.empty:
        raise NotFoundError("the profiles table is empty: build it first (`jingzhun build`)")
    frame = frame.sort_values("customer_key").set_index("customer_key")
    as_of = pd.Timestamp(frame["as_of"].max()).date()

    raw = frame[chosen].astype("float64")
    raw = raw.loc[:, raw.notna().any()]  # a column null for everybody says nothing
    model = pd.DataFrame(index=raw.index)
    transforms: dict[str, str] = {}
    indicators: dict[str, pd.Series] = {}
    for name in raw.columns:
        values = raw[name]
        missing = values.isna()
        if missing.any():
            if name in _FILL_LONGEST:
                fill, how = float(values.max()) + 1.0, "nulls = largest + 1"
            elif name in _FILL_ZERO:
                fill, how = 0.0, "nulls = 0"
            else:
                fill, how = float(values.median()), "nulls = median"
            values = values.fillna(fill)
            indicator = _INDICATOR_NAMES.get(name, f"{name}_unknown")
            if indicator not in indicators:
                indicators[indicator] = missing.astype("float64")
        else:
            how = "no nulls"
        if name in HEAVY_TAILED:
            model[name] = _signed_log1p(values)
            transforms[name] = f"log1p, {how}"
        else:
            model[name] = values
            transforms[name] = f"as is, {how}"
    for name, indicator in indicators.items():
        model[name] = indicator
        raw[name] = indicator
        transforms[name] = "indicator (1 = null)"
    scaled = StandardScaler().fit_transform(model.to_numpy(dtype="float64"))
    standardised = pd.DataFrame(scaled, index=model.index, columns=model.columns)
    tag_frame = frame[[f"_tag_{c}" for c in tags]].rename(columns=lambda c: c[len("_tag_") :])
    return BehaviourFeatures(raw, standardised, tag_frame, as_of, transforms)


def behaviour_features(engine: Engine, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Standardised behavioural features of every customer, indexed by ``customer_key``.

    Nulls are filled by what they mean (a non-buyer's recency is the largest recency plus one
    day; indicators such as ``no_orders`` say who was filled), money and counts go on a signed
    ``log1p`` scale, then each column is scaled to mean 0 and standard deviation 1.

    Parameters
    ----------
    engine
        The warehouse holding ``profiles``.
    columns
        Numeric profile columns to use; by default those of ``DEFAULT_BEHAVIOUR_COLUMNS`` the
        table has.
    """
    return load_behaviour(engine, columns=columns).standardised


def check_as_of(features: BehaviourFeatures, as_of: dt.date | None) -> dt.date:
    """The profiles' date; refuse an ``as_of`` the stored profiles were not built for."""
    if as_of is not None and as_of != features.as_of:
        raise NotFoundError(
            f"profiles are built as of {features.as_of.isoformat()}, not "
            f"{as_of.isoformat()}: build them as of {as_of.isoformat()} first "
            "(`jingzhun build --as-of`) or leave as_of out"
        )
    return features.as_of


def replace_rows(
    engine: Engine, table: str, schema: pa.Schema, column: str, value: str, rows: pa.Table
) -> None:
    """Replace the rows of ``table`` whose ``column`` equals ``value`` with ``rows``.

    The engine has no DELETE, so the rows to keep and the new ones are written in full to a
    staging table first; the swap (drop, create, copy) then runs in one transaction, so a
    reader sees the old table or the new one, and a failure before the swap changes nothing.
    """
    staging = f"_{table}_next"
    engine.drop(staging)
    engine.create(staging, schema)
    if engine.exists(table):
        stored = engine.read(table)
        kept = stored.filter((stored[column] != value) | stored[column].isnull())
        engine.write(staging, kept.select(*schema.names))
    engine.write(staging, rows.select(schema.names).cast(schema))
    with engine.transaction():
        engine.drop(table)
        engine.create(table, schema)
        engine.write(table, engine.read(staging))
    engine.drop(staging)


def utc_now() -> dt.datetime:
    """The build time recorded with results, UTC, to the microsecond."""
    return dt.datetime.now(dt.UTC)
