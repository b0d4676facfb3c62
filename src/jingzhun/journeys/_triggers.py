"""Who a journey's trigger fires for in a time window, read from the warehouse.

``trigger_candidates`` gives one row per customer (their first trigger in the window):
``customer_key, trigger_id, triggered_at, context``. The trigger id names the occurrence
(an event id, a segment build, an anniversary's year, a scheduled time), so the same
occurrence never enrols a customer twice, whoever evaluates it and however often.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from jingzhun.core import SpecError, SpecProblem
from jingzhun.engine import Engine
from jingzhun.journeys._events import EventReader
from jingzhun.journeys._schedule import zone
from jingzhun.journeys._spec import (
    AnniversaryTrigger,
    EventMatch,
    EventTrigger,
    JourneySpec,
    LocationTrigger,
    ScheduleTrigger,
    SegmentTrigger,
)
from jingzhun.profile import PROFILES
from jingzhun.segments import SEGMENT_CHANGES, SEGMENT_MEMBERS, anniversary_days

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG), metres
CANDIDATES_SCHEMA = pa.schema(
    [
        ("customer_key", pa.string()),
        ("trigger_id", pa.string()),
        ("triggered_at", pa.timestamp("us", tz="UTC")),
        ("context", pa.string()),
    ]
)


@dataclass(frozen=True)
class Window:
    """A trigger window ``(start, end]``; ``loaded_after`` also admits events loaded after it
    (late arrivals) that happened inside ``(end - lookback, end]``.
    """

    start: dt.datetime
    end: dt.datetime
    loaded_after: dt.datetime | None = None
    lookback: dt.timedelta | None = None
    backtest: bool = False


def trigger_candidates(
    engine: Engine,
    spec: JourneySpec,
    window: Window,
    *,
    timezone: str,
    events: EventReader | None = None,
    first_only: bool = True,
) -> pa.Table:
    """The customers the journey's trigger fires for in ``window``: their first occurrence,
    or every occurrence (``first_only=False``, for the backtest's re-entries).
    """
    trigger = spec.trigger
    reader = events or EventReader(engine, until=window.end.date())
    if isinstance(trigger, LocationTrigger):
        table = _location(engine, spec, trigger, window, reader)
    elif isinstance(trigger, EventTrigger):
        table = _event(engine, trigger, window, reader)
    elif isinstance(trigger, SegmentTrigger):
        table = _segment(engine, trigger, window)
    elif isinstance(trigger, AnniversaryTrigger):
        table = _anniversary(engine, spec, trigger, window, timezone)
    else:
        assert isinstance(trigger, ScheduleTrigger)
        table = _schedule(engine, spec, trigger, window, timezone)
    if table is None:
        return CANDIDATES_SCHEMA.empty_table()
    if not first_only:
        return _as_candidates(engine.execute(table.order_by(["triggered_at", "customer_key"])))
    first = ibis.row_number().over(
        group_by=table.customer_key, order_by=[table.triggered_at, table.trigger_id]
    )
    ranked = table.mutate(_jz_n=first)
    chosen = ranked.filter(ranked._jz_n == 0).drop("_jz_n").order_by("triggered_at")
    data = engine.execute(chosen)
    return _as_candidates(data)


def _as_candidates(data: pa.Table) -> pa.Table:
    """The fixed columns, and every other column as the JSON ``context`` of the trigger."""
    extra = [
        c for c in data.column_names if c not in ("customer_key", "trigger_id", "triggered_at")
    ]
    rows = data.select(extra).to_pylist()
    return pa.table(
        {
            "customer_key": data.column("customer_key").cast(pa.string()),
            "trigger_id": data.column("trigger_id").cast(pa.string()),
            "triggered_at": data.column("triggered_at").cast(pa.timestamp("us", tz="UTC")),
            "context": pa.array([json.dumps(r, default=str) for r in rows], pa.string()),
        }
    )


def _ts(moment: dt.datetime) -> ir.TimestampScalar:
    # the warehouse keeps naive UTC instants
    return ibis.literal(moment.astimezone(dt.UTC).replace(tzinfo=None), type="timestamp")


def _new_events(engine: Engine, rows: ir.Table, window: Window) -> ir.Table:
    """Events in the window, plus late arrivals (loaded after the watermark) in the lookback."""
    in_window = rows.filter(
        (rows.occurred_at > _ts(window.start)) & (rows.occurred_at <= _ts(window.end))
    )
    if window.loaded_after is None or window.lookback is None:
        return in_window
    raw = engine.read("raw_events")
    late = raw.filter(raw._loaded_at > _ts(window.loaded_after)).select(
        late_id=raw.event_id, late_source=raw._source
    )
    earliest = window.end - window.lookback
    recent = rows.filter(
        (rows.occurred_at > _ts(earliest))
        & (rows.occurred_at <= _ts(window.start))
        & (rows.occurred_at <= _ts(window.end))
    )
    late_rows = recent.semi_join(
        late, [recent.event_id == late.late_id, recent.source == late.late_source]
    )
    return in_window.union(late_rows)


def _event(
    engine: Engine, trigger: EventTrigger, window: Window, reader: EventReader
) -> ir.Table | None:
    rows = reader.rows(trigger)
    if rows is None:
        return None
    rows = _new_events(engine, rows, window)
    return rows.select(
        customer_key=rows.customer_key,
        trigger_id=rows.event_id,
        triggered_at=rows.occurred_at,
        event=ibis.literal(trigger.event),
        event_id=rows.event_id,
        sku=rows.sku,
    )


def _segment(engine: Engine, trigger: SegmentTrigger, window: Window) -> ir.Table | None:
    if not engine.exists(SEGMENT_CHANGES):
        return None
    changes = engine.read(SEGMENT_CHANGES)
    changes = changes.filter(
        (changes.segment == trigger.segment) & (changes.change == trigger.change.value)
    )
    if window.backtest:
        # history: the builds made as of a day in the window, at the end of that day
        changes = changes.filter(
            (changes.as_of >= ibis.literal(window.start.date(), type="date"))
            & (changes.as_of <= ibis.literal(window.end.date(), type="date"))
        )
        at = (changes.as_of.cast("timestamp") + ibis.interval(days=1)).cast("timestamp")
    else:
        changes = changes.filter(
            (changes.changed_at > _ts(window.start)) & (changes.changed_at <= _ts(window.end))
        )
        at = changes.changed_at.cast("timestamp")
    return changes.select(
        customer_key=changes.customer_key,
        trigger_id=ibis.literal(f"segment:{trigger.change.value}:") + changes.build_id,
        triggered_at=at,
        segment=ibis.literal(trigger.segment),
        change=ibis.literal(trigger.change.value),
        build_id=changes.build_id,
    )


def _days(window: Window, tz: Any) -> list[dt.date]:
    """Local days whose midnight falls in the window."""
    first = window.start.astimezone(tz).date()
    last = window.end.astimezone(tz).date()
    out = []
    day = first
    while day <= last:
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)
        if window.start < midnight <= window.end:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def _anniversary(
    engine: Engine,
    spec: JourneySpec,
    trigger: AnniversaryTrigger,
    window: Window,
    timezone: str,
) -> ir.Table | None:
    if not engine.exists(PROFILES):
        return None
    profiles = engine.read(PROFILES)
    column = trigger.anniversary
    if column not in profiles.columns or not profiles[column].type().is_temporal():
        dates = [c for c, t in profiles.schema().items() if t.is_temporal()]
        raise SpecError(
            [
                SpecProblem(
                    spec.source_file,
                    None,
                    "trigger.anniversary",
                    f"'{column}' is not a date column of the profiles; date columns: "
                    + ", ".join(dates),
                )
            ]
        )
    tz = zone(None, timezone)
    rows: dict[str, list[Any]] = {"md": [], "at": [], "year": []}
    for day in _days(window, tz):
        target = day + dt.timedelta(days=trigger.days_before)
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)
        for md in anniversary_days(target, 1):
            rows["md"].append(md)
            rows["at"].append(midnight)
            rows["year"].append(str(target.year))
    if not rows["md"]:
        return None
    data = pa.table(
        {
            "a_md": pa.array(rows["md"], pa.int64()),
            "a_at": pa.array(rows["at"], pa.timestamp("us", tz="UTC")),
            "a_year": pa.array(rows["year"], pa.string()),
        }
    )
    days = engine.register(f"_jz_anniversary_{spec.name}", data)
    date = profiles[column].cast("date")
    keyed = profiles.filter(date.notnull()).select(
        customer_key=profiles.customer_key, md=date.month() * 100 + date.day()
    )
    joined = keyed.join(days, keyed.md == days.a_md)
    return joined.select(
        customer_key=joined.customer_key,
        trigger_id=ibis.literal(f"{column}:") + joined.a_year,
        triggered_at=joined.a_at.cast("timestamp"),
        anniversary=ibis.literal(column),
        year=joined.a_year,
    )


def _audience(engine: Engine, segment: str | None) -> ir.Table | None:
    if segment is None:
        if not engine.exists(PROFILES):
            return None
        return engine.read(PROFILES).select("customer_key")
    if not engine.exists(SEGMENT_MEMBERS):
        return None
    members = engine.read(SEGMENT_MEMBERS)
    return members.filter(members.segment == segment).select("customer_key")


def _schedule(
    engine: Engine,
    spec: JourneySpec,
    trigger: ScheduleTrigger,
    window: Window,
    timezone: str,
) -> ir.Table | None:
    times = trigger.schedule.to_cron().times(window.start, window.end, zone(None, timezone))
    if not times:
        return None
    audience = _audience(engine, trigger.audience)
    if audience is None:
        return None
    # Missed runs are not made up one by one: every scheduled time in a backtest counts, in a
    # run only the latest one does.
    chosen = times if window.backtest else times[-1:]
    data = pa.table(
        {
            "s_at": pa.array(chosen, pa.timestamp("us", tz="UTC")),
            "s_id": pa.array([f"schedule:{t.isoformat()}" for t in chosen], pa.string()),
        }
    )
    slots = engine.register(f"_jz_schedule_{spec.name}", data)
    joined = audience.cross_join(slots)
    return joined.select(
        customer_key=joined.customer_key,
        trigger_id=joined.s_id,
        triggered_at=joined.s_at.cast("timestamp"),
        schedule=joined.s_id,
    )


def haversine_m(
    lat1: ir.FloatingValue, lon1: ir.FloatingValue, lat2: ir.FloatingValue, lon2: ir.FloatingValue
) -> ir.FloatingValue:
    """Great-circle distance in metres between two points given in degrees (haversine)."""
    p1, p2 = lat1.radians(), lat2.radians()
    dlat = (lat2 - lat1).radians()
    dlon = (lon2 - lon1).radians()
    a = (dlat / 2).sin() ** 2 + p1.cos() * p2.cos() * (dlon / 2).sin() ** 2
    # min(1, a): rounding may push a hair above 1 for antipodal points
    return 2 * EARTH_RADIUS_M * ibis.least(a, 1.0).sqrt().asin()


def haversine_m_py(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The same distance in plain Python (for explanations and tests)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin(math.radians(lat2 - lat1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(a, 1.0)))


def _location(
    engine: Engine,
    spec: JourneySpec,
    trigger: LocationTrigger,
    window: Window,
    reader: EventReader,
) -> ir.Table | None:
    rows = reader.rows(EventMatch(event=trigger.location.event))
    if rows is None:
        return None
    rows = _new_events(engine, rows, window)
    lat = engine.json_text(rows.properties, "lat").try_cast("float64")
    lon = engine.json_text(rows.properties, "lon").try_cast("float64")
    points = rows.select(
        customer_key=rows.customer_key,
        event_id=rows.event_id,
        occurred_at=rows.occurred_at,
        p_lat=lat,
        p_lon=lon,
    )
    points = points.filter(points.p_lat.notnull() & points.p_lon.notnull())
    stores = pa.table(
        {
            "st_id": pa.array([s.id for s in spec.stores], pa.string()),
            "st_lat": pa.array([s.lat for s in spec.stores], pa.float64()),
            "st_lon": pa.array([s.lon for s in spec.stores], pa.float64()),
        }
    )
    shops = engine.register(f"_jz_stores_{spec.name}", stores)
    pairs = points.cross_join(shops)
    pairs = pairs.mutate(distance=haversine_m(pairs.p_lat, pairs.p_lon, pairs.st_lat, pairs.st_lon))
    near = pairs.filter(pairs.distance <= trigger.location.radius_m)
    nearest = ibis.row_number().over(group_by=near.event_id, order_by=[near.distance, near.st_id])
    near = near.mutate(_jz_s=nearest)
    near = near.filter(near._jz_s == 0)
    return near.select(
        customer_key=near.customer_key,
        trigger_id=near.event_id,
        triggered_at=near.occurred_at,
        event_id=near.event_id,
        store=near.st_id,
        distance_m=near.distance.round(1),
    )
