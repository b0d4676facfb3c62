"""Customer features at an ``as_of`` date from the warehouse, labels from the window after it,
and the churn and propensity models trained on them, scored back as a ``scores`` table.

No feature can see the future: every aggregate is built from orders, events and customer
records as they stood on ``as_of`` (the profile stage's rules: timestamps before midnight UTC
after ``as_of``, rows loaded by then unless ``include_late_loads``). Labels come only from
the window (``as_of``, ``as_of + window``]. The profile stage's readers are reused, so a
customer is the same ``customer_key`` here as in ``profiles``; the ``profiles`` table itself
is not read, because it holds one date and training needs earlier ones.

Time-based validation: a model is trained on features at ``as_of − 2·window`` with labels
in the next window, and measured on features at ``as_of − window`` with labels in the
window up to ``as_of`` (customers and a period it never saw). The model kept is then
refitted on that latest labelled window and scores everyone at ``as_of``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from jingzhun.engine import Engine
from jingzhun.models._registry import ModelRecord, ModelRegistry
from jingzhun.models._tabular import (
    BinaryEvaluation,
    PropensityModel,
    evaluate_binary,
    frame_fingerprint,
    split_rows,
)
from jingzhun.profile._facts import (
    AsOf,
    bought_lines,
    customer_records,
    events,
    orders,
    product_categories,
)
from jingzhun.profile._identity import IdentitySnapshot, identity_snapshot

WINDOWS = (30, 90, 365)
EVENT_TYPE_WINDOWS = (30, 90)
MAX_EVENT_TYPES = 8
# Identity bookkeeping, not behaviour (the profile stage's activity score skips them too).
IGNORED_EVENT_TYPES = ("identify", "alias")
PURCHASE = "purchase"
LABEL = "label"
KEY = "customer_key"

SCORES = "scores"
SCORES_SCHEMA = pa.schema(
    [
        pa.field(KEY, pa.string()),
        pa.field("model_id", pa.string()),
        pa.field("score_name", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("scored_at", pa.timestamp("us", tz="UTC")),
        pa.field("as_of", pa.date32()),
    ]
)

ModelKind = Literal["churn", "propensity"]
# Columns that count or sum something: a customer without such rows has 0, not "unknown".
_COUNT_PREFIXES = ("orders_", "revenue_", "events_", "ev_", "returns_")
_COUNT_COLUMNS = ("returned_value_total", "order_days_365d", "categories_365d", "channels_90d")


def _column_name(event_type: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", event_type.lower()).strip("_") or "event"


def top_event_types(
    engine: Engine, *, as_of: dt.date, include_late_loads: bool = False
) -> list[str]:
    """The most frequent event types up to ``as_of`` (identity bookkeeping left out)."""
    day = AsOf(as_of, include_late_loads)
    table = events(engine, day, identity_snapshot(engine, as_of))
    if table is None:
        return []
    table = table.filter(~table.event_type.isin(list(IGNORED_EVENT_TYPES)))
    counts = table.group_by("event_type").aggregate(n=table.count())
    counts = counts.order_by([counts.n.desc(), counts.event_type]).limit(MAX_EVENT_TYPES)
    return [str(row["event_type"]) for row in engine.execute(counts).to_pylist()]


def _order_features(order_table: ir.Table) -> ir.Table:
    o = order_table
    sale = ~o.is_return
    aggregates: dict[str, ir.Value] = {}
    for window in WINDOWS:
        inside = o.age_days < window
        aggregates[f"orders_{window}d"] = o.count(where=sale & inside)
        aggregates[f"revenue_{window}d"] = o.net.sum(where=inside).cast("float64")
    aggregates["orders_total"] = o.count(where=sale)
    aggregates["revenue_total"] = o.net.sum().cast("float64")
    aggregates["returns_total"] = o.count(where=o.is_return)
    aggregates["returned_value_total"] = o.returned.sum().cast("float64")
    aggregates["recency_days"] = o.age_days.min(where=sale)
    aggregates["first_order_days"] = o.age_days.max(where=sale)
    aggregates["order_days_365d"] = o.order_date.nunique(where=sale & (o.age_days < 365))
    aggregates["first_seen_order_days"] = o.age_days.max()
    return o.group_by(KEY).aggregate(**aggregates)


def _event_features(event_table: ir.Table, event_types: Sequence[str]) -> ir.Table:
    e = event_table.filter(~event_table.event_type.isin(list(IGNORED_EVENT_TYPES)))
    aggregates: dict[str, ir.Value] = {"events_total": e.count()}
    for window in WINDOWS:
        aggregates[f"events_{window}d"] = e.count(where=e.age_days < window)
    aggregates["days_since_event"] = e.age_days.min()
    aggregates["first_event_days"] = e.age_days.max()
    aggregates["channels_90d"] = e.channel.nunique(where=e.age_days < 90)
    for event_type in event_types:
        name = _column_name(event_type)
        for window in EVENT_TYPE_WINDOWS:
            aggregates[f"ev_{name}_{window}d"] = e.count(
                where=(e.event_type == event_type) & (e.age_days < window)
            )
    return e.group_by(KEY).aggregate(**aggregates)


def _category_features(engine: Engine, day: AsOf, order_table: ir.Table) -> ir.Table | None:
    lines = bought_lines(engine, day, order_table)
    categories = product_categories(engine, day)
    if lines is None or categories is None:
        return None
    recent = lines.filter(lines.age_days < 365)
    joined = recent.join(categories, recent.sku == categories.cat_sku)
    return joined.group_by(KEY).aggregate(categories_365d=joined.category.nunique())


def _customer_features(engine: Engine, day: AsOf, identity: IdentitySnapshot) -> ir.Table | None:
    records = customer_records(engine, day, identity)
    if records is None:
        return None
    signed_up = records.signup_at < day.end
    as_of = ibis.literal(day.day, type="date")
    grouped = records.group_by(KEY).aggregate(
        gender=records.gender.max(),
        country=records.country.max(),
        birth_date=records.birth_date.max(),
        signup_days=as_of.delta(records.signup_at.date(), unit="day").max(where=signed_up),
        any_signed_up=signed_up.fill_null(False).any(),
    )
    born = grouped.birth_date.notnull() & (grouped.birth_date <= as_of)
    age = ibis.cases(
        (born, (as_of.delta(grouped.birth_date, unit="day") / 365.25).floor()), else_=None
    )
    return grouped.select(
        KEY, "gender", "country", "signup_days", "any_signed_up", age_years=age.cast("float64")
    )


def feature_table(
    engine: Engine,
    *,
    as_of: dt.date,
    include_late_loads: bool = False,
    event_types: Sequence[str] | None = None,
    identity: IdentitySnapshot | None = None,
) -> ir.Table:
    """One row per customer known on ``as_of`` with the behaviour features, as an Ibis
    expression (``derive_features`` adds the ratios after it is run).

    A customer is known when an order or event of theirs happened by ``as_of``, or their
    customer record says they signed up by then. ``event_types`` fixes the per-type event
    columns (default: the most frequent types up to ``as_of``), so a model trained at one date
    scores at another with the same columns.
    """
    day = AsOf(as_of, include_late_loads)
    identity = identity or identity_snapshot(engine, as_of)
    if event_types is None:
        event_types = top_event_types(engine, as_of=as_of, include_late_loads=include_late_loads)
    order_table = orders(engine, day, identity)
    event_table = events(engine, day, identity)
    keys: list[ir.Table] = []
    if order_table is not None:
        keys.append(order_table.select(KEY))
    if event_table is not None:
        keys.append(event_table.select(KEY))
    customers = _customer_features(engine, day, identity)
    if customers is not None:
        keys.append(customers.filter(customers.any_signed_up).select(KEY))
    if not keys:
        empty = pa.table({KEY: pa.array([], pa.string())})
        return engine.register("_jz_no_customers", empty)
    population = ibis.union(*keys, distinct=True) if len(keys) > 1 else keys[0].distinct()
    parts: list[ir.Table] = []
    if order_table is not None:
        parts.append(_order_features(order_table))
        categories = _category_features(engine, day, order_table)
        if categories is not None:
            parts.append(categories)
    if event_table is not None:
        parts.append(_event_features(event_table, event_types))
    if customers is not None:
        parts.append(customers.drop("any_signed_up"))
    table = population
    for i, part in enumerate(parts):
        renamed = part.rename({f"_k{i}": KEY})
        joined = table.left_join(renamed, table[KEY] == renamed[f"_k{i}"])
        table = joined.drop(f"_k{i}")
    filled = {
        name: table[name].fill_null(0)
        for name in table.columns
        if name.startswith(_COUNT_PREFIXES) or name in _COUNT_COLUMNS
    }
    for event_type in event_types:  # a type absent up to as_of still gets its columns
        name = _column_name(event_type)
        for window in EVENT_TYPE_WINDOWS:
            column = f"ev_{name}_{window}d"
            if column not in table.columns:
                filled[column] = ibis.literal(0, type="int64")
    return table.mutate(**filled) if filled else table


def derive_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Ratios and spans computed from the aggregated columns (null where undefined)."""
    out = frame.copy()
    if "orders_total" in out and "revenue_total" in out:
        orders_total = out["orders_total"].astype("float64")
        out["average_order_value"] = (out["revenue_total"] / orders_total).where(orders_total > 0)
        out["return_rate"] = (out["returns_total"] / (orders_total + out["returns_total"])).where(
            orders_total + out["returns_total"] > 0
        )
    spans = [c for c in ("first_seen_order_days", "first_event_days", "signup_days") if c in out]
    if spans:
        out["days_since_first_seen"] = out[spans].astype("float64").max(axis=1)
    return out


def label_table(
    engine: Engine,
    *,
    as_of: dt.date,
    label_window_days: int,
    label_event: str = PURCHASE,
    include_late_loads: bool = False,
    identity: IdentitySnapshot | None = None,
) -> ir.Table:
    """Customers who did the label event in (``as_of``, ``as_of + window``]: ``customer_key``
    and ``label = 1``. ``purchase`` means an order that is not a return; any other name is an
    event type.
    """
    if label_window_days < 1:
        raise ValueError(f"label_window_days must be at least 1, not {label_window_days}")
    later = AsOf(as_of + dt.timedelta(days=label_window_days), include_late_loads)
    identity = identity or identity_snapshot(engine, as_of)
    if label_event == PURCHASE:
        table = orders(engine, later, identity)
        if table is not None:
            table = table.filter(~table.is_return & (table.age_days < label_window_days))
    else:
        table = events(engine, later, identity)
        if table is not None:
            table = table.filter(
                (table.event_type == label_event) & (table.age_days < label_window_days)
            )
    if table is None:
        empty = pa.table({KEY: pa.array([], pa.string()), LABEL: pa.array([], pa.int64())})
        return engine.register("_jz_no_labels", empty)
    return table.select(KEY).distinct().mutate(**{LABEL: ibis.literal(1, type="int64")})


def build_features(
    engine: Engine,
    *,
    as_of: dt.date,
    label_window_days: int,
    label_event: str = PURCHASE,
    include_late_loads: bool = False,
    event_types: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per customer known on ``as_of``: features from data up to ``as_of`` and
    ``label`` = 1 when the customer did ``label_event`` in the window after it, else 0.

    Parameters
    ----------
    as_of
        Features use orders and events before midnight UTC after this day.
    label_window_days
        Length of the label window (``as_of``, ``as_of + label_window_days``].
    label_event
        ``"purchase"`` (an order that is not a return) or an event type.
    include_late_loads
        Count rows loaded after ``as_of`` (a backfill of history, as the demo's).
    event_types
        The event types that get per-type columns (default: the most frequent ones).
    """
    identity = identity_snapshot(engine, as_of)
    features = feature_table(
        engine,
        as_of=as_of,
        include_late_loads=include_late_loads,
        event_types=event_types,
        identity=identity,
    )
    labels = label_table(
        engine,
        as_of=as_of,
        label_window_days=label_window_days,
        label_event=label_event,
        include_late_loads=include_late_loads,
        identity=identity,
    ).rename(_label_key=KEY)
    joined = features.left_join(labels, features[KEY] == labels._label_key).drop("_label_key")
    joined = joined.mutate(**{LABEL: joined[LABEL].fill_null(0)}).order_by(KEY)
    frame = derive_features(engine.execute(joined).to_pandas())
    return frame.reset_index(drop=True)


# -- churn and propensity over the warehouse -------------------------------------------------


@dataclass
class CustomerModelFit:
    """A churn or propensity model fitted on the warehouse and written to ``scores``."""

    record: ModelRecord
    evaluation: BinaryEvaluation
    scored: int
    score_name: str
    validation: str
    rows_train: int
    rows_validation: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        return {
            "model_id": self.record.model_id,
            "kind": self.record.kind,
            "version": self.record.version,
            "score_name": self.score_name,
            "scored": self.scored,
            "validation": self.validation,
            "rows_train": self.rows_train,
            "rows_validation": self.rows_validation,
            "metrics": self.evaluation.headline(),
            "notes": self.notes,
        }


def _target(frame: pd.DataFrame, kind: ModelKind) -> np.ndarray:
    label = frame[LABEL].to_numpy(dtype=np.int64)
    return 1 - label if kind == "churn" else label


def _population(frame: pd.DataFrame, kind: ModelKind) -> pd.DataFrame:
    """Churn is asked of buyers (an order by ``as_of``); propensity of everyone known."""
    if kind == "churn":
        return frame[frame["orders_total"] > 0].reset_index(drop=True)
    return frame


def _both_classes(target: np.ndarray, minimum: int = 10) -> bool:
    return int(target.sum()) >= minimum and int(len(target) - target.sum()) >= minimum


def _feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in (KEY, LABEL)]


def iter_feature_batches(
    engine: Engine,
    *,
    as_of: dt.date,
    include_late_loads: bool = False,
    event_types: Sequence[str] | None = None,
    batch_size: int = 250_000,
) -> Iterator[pd.DataFrame]:
    """The features at ``as_of`` streamed from the engine in batches (derived columns added)."""
    table = feature_table(
        engine, as_of=as_of, include_late_loads=include_late_loads, event_types=event_types
    )
    for batch in table.to_pyarrow_batches(chunk_size=batch_size):
        yield derive_features(batch.to_pandas())


def fit_customer_model(
    engine: Engine,
    as_of: dt.date,
    *,
    registry: ModelRegistry,
    kind: ModelKind = "churn",
    window_days: int = 90,
    label_event: str = PURCHASE,
    include_late_loads: bool = False,
    score_name: str | None = None,
    model: PropensityModel | None = None,
    batch_size: int = 250_000,
) -> CustomerModelFit:
    """Train a churn (no ``label_event`` in the next window, among buyers) or propensity
    (``label_event`` in the next window, among everyone) model with time-based validation,
    register it, score every customer at ``as_of`` and write the scores.

    Returns the registered model, its out-of-time evaluation and how many customers were
    scored. The scores replace earlier rows of the same ``score_name`` in ``scores``.
    """
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, not {window_days}")
    name = score_name or ("churn_score" if kind == "churn" else f"{label_event}_propensity")
    window = dt.timedelta(days=window_days)
    latest_day = as_of - window
    earlier_day = as_of - 2 * window
    event_types = top_event_types(engine, as_of=latest_day, include_late_loads=include_late_loads)

    def frame_at(day: dt.date) -> pd.DataFrame:
        built = build_features(
            engine,
            as_of=day,
            label_window_days=window_days,
            label_event=label_event,
            include_late_loads=include_late_loads,
            event_types=event_types,
        )
        return _population(built, kind)

    latest = frame_at(latest_day)
    latest_y = _target(latest, kind)
    if not _both_classes(latest_y):
        raise ValueError(
            f"too few customers of one outcome to learn {kind} as of {latest_day} with a "
            f"{window_days}-day window: {int(latest_y.sum())} of {len(latest_y)} positive; "
            "choose a later as_of or a different window"
        )
    columns = _feature_columns(latest)
    template = model if model is not None else PropensityModel()
    notes: list[str] = []
    earlier = frame_at(earlier_day)
    earlier_y = _target(earlier, kind)
    if _both_classes(earlier_y):
        first = _clone(template).fit(earlier[columns], earlier_y)
        evaluation = evaluate_binary(latest_y, first.predict_proba(latest[columns])[:, 1])
        validation = (
            f"out of time: trained on features at {earlier_day} (labels to {latest_day}), "
            f"measured on features at {latest_day} (labels to {as_of})"
        )
        rows_train, rows_validation = len(earlier), len(latest)
    else:
        train, valid = split_rows(latest_y, random_state=template.random_state)
        first = _clone(template).fit(latest.iloc[train][columns], latest_y[train])
        evaluation = evaluate_binary(
            latest_y[valid], first.predict_proba(latest.iloc[valid][columns])[:, 1]
        )
        validation = f"random 25% of customers at {latest_day}: too little history before it"
        notes.append(
            f"not enough history for out-of-time validation at {earlier_day} "
            f"({int(earlier_y.sum())} of {len(earlier_y)} positive)"
        )
        rows_train, rows_validation = len(train), len(valid)
    final = _clone(template).fit(latest[columns], latest_y)
    record = registry.save(
        final,
        kind=kind,
        name=_registry_name(kind, label_event),
        params={
            **final.get_params(),
            "label_event": label_event,
            "window_days": window_days,
            "score_name": name,
            "event_types": list(event_types),
            "include_late_loads": include_late_loads,
            "population": "buyers" if kind == "churn" else "every customer known",
        },
        features=list(final.feature_names_in_),
        training_window={
            "features_as_of": latest_day.isoformat(),
            "labels_from": (latest_day + dt.timedelta(days=1)).isoformat(),
            "labels_to": as_of.isoformat(),
            "scored_as_of": as_of.isoformat(),
            "validation": validation,
        },
        data_fingerprint=frame_fingerprint(latest),
        metrics={**evaluation.headline(), "evaluation": evaluation.to_dict()},
    )
    scored = score_customers(
        engine,
        final,
        as_of=as_of,
        model_id=record.model_id,
        score_name=name,
        kind=kind,
        include_late_loads=include_late_loads,
        event_types=event_types,
        batch_size=batch_size,
    )
    return CustomerModelFit(
        record, evaluation, scored, name, validation, rows_train, rows_validation, notes
    )


def fit_churn(
    engine: Engine,
    as_of: dt.date,
    *,
    registry: ModelRegistry,
    window_days: int = 90,
    include_late_loads: bool = False,
    model: PropensityModel | None = None,
) -> CustomerModelFit:
    """Churn: the probability that a buyer places no order in the ``window_days`` after
    ``as_of``; written to ``scores`` as ``churn_score``.
    """
    return fit_customer_model(
        engine,
        as_of,
        registry=registry,
        kind="churn",
        window_days=window_days,
        include_late_loads=include_late_loads,
        model=model,
    )


def _registry_name(kind: ModelKind, label_event: str) -> str:
    if kind == "churn":
        return "churn"
    slug = re.sub(r"[^0-9a-z]+", "-", label_event.lower()).strip("-")[:40] or "event"
    return f"{slug}-propensity"


def _clone(model: PropensityModel) -> PropensityModel:
    return PropensityModel(**model.get_params())


def score_customers(
    engine: Engine,
    model: PropensityModel,
    *,
    as_of: dt.date,
    model_id: str,
    score_name: str,
    kind: ModelKind = "propensity",
    include_late_loads: bool = False,
    event_types: Sequence[str] | None = None,
    batch_size: int = 250_000,
) -> int:
    """Score every customer at ``as_of`` (buyers only for churn), streaming the features from
    the engine in batches, and replace ``score_name``'s rows in ``scores``.
    """
    batches = iter_feature_batches(
        engine,
        as_of=as_of,
        include_late_loads=include_late_loads,
        event_types=event_types,
        batch_size=batch_size,
    )
    if kind == "churn":
        batches = (batch[batch["orders_total"] > 0] for batch in batches)
    return _write_batch_scores(engine, model, batches, model_id, score_name, as_of)


def score_warehouse_table(
    engine: Engine,
    model: Any,
    table: str,
    *,
    model_id: str,
    score_name: str,
    as_of: dt.date,
    key: str = KEY,
    batch_size: int = 250_000,
) -> int:
    """Score every row of a stored table of features (one row per ``key``), streaming it
    from the engine in batches, and replace ``score_name``'s rows in ``scores``. The model is
    any fitted jingzhun model (probability, or uplift for uplift models).
    """
    expr = engine.read(table)
    batches = (b.to_pandas() for b in expr.to_pyarrow_batches(chunk_size=batch_size))
    return _write_batch_scores(engine, model, batches, model_id, score_name, as_of, key=key)


def _write_batch_scores(
    engine: Engine,
    model: Any,
    batches: Iterator[pd.DataFrame],
    model_id: str,
    score_name: str,
    as_of: dt.date,
    *,
    key: str = KEY,
) -> int:
    # Every batch is scored before anything is written: the engine's connection is busy
    # streaming until the last batch has been read.
    scored_at = dt.datetime.now(dt.UTC)
    parts: list[pa.Table] = []
    for batch in batches:
        if batch.empty:
            continue
        score = model.score_matrix(model.encoder_.transform(batch))
        parts.append(_score_rows(batch[key], score, model_id, score_name, scored_at, as_of))
    rows = pa.concat_tables(parts) if parts else SCORES_SCHEMA.empty_table()
    write_scores(engine, rows, score_name=score_name)
    return rows.num_rows


def _score_rows(
    keys: pd.Series,
    score: np.ndarray,
    model_id: str,
    score_name: str,
    scored_at: dt.datetime,
    as_of: dt.date,
) -> pa.Table:
    n = len(keys)
    return pa.Table.from_arrays(
        [
            pa.array(keys.astype("str"), pa.string()),
            pa.repeat(pa.scalar(model_id, pa.string()), n),
            pa.repeat(pa.scalar(score_name, pa.string()), n),
            pa.array(score, pa.float64()),
            pa.repeat(pa.scalar(scored_at, pa.timestamp("us", tz="UTC")), n),
            pa.repeat(pa.scalar(as_of, pa.date32()), n),
        ],
        schema=SCORES_SCHEMA,
    )


def write_scores(engine: Engine, rows: pa.Table, *, score_name: str) -> int:
    """Replace the rows of ``score_name`` in the warehouse's ``scores`` table, in one
    transaction (other scores are kept). Returns the rows written.
    """
    if rows.schema != SCORES_SCHEMA:
        rows = rows.select(SCORES_SCHEMA.names).cast(SCORES_SCHEMA)
    kept = SCORES_SCHEMA.empty_table()
    if engine.exists(SCORES):
        stored = engine.read(SCORES)
        kept = engine.execute(stored.filter(stored.score_name != score_name))
        kept = kept.select(SCORES_SCHEMA.names).cast(SCORES_SCHEMA)
    with engine.transaction():
        engine.drop(SCORES)
        engine.create(SCORES, SCORES_SCHEMA)
        engine.write(SCORES, kept)
        written = engine.write(SCORES, rows)
    return written
