"""Replay a journey over history: who would have entered, what they would have been sent and
when. Nothing is written: the walkers live in memory and the machine asks the warehouse.

The trigger is evaluated over the whole window (every occurrence, so re-entries count);
waits, goals and ``wait_for`` read the events that followed; branches read the profiles and
segments as they are stored now, consent and suppressions as they stand now, and frequency
caps count the replayed journey's own messages only.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jingzhun.engine import Engine
from jingzhun.journeys._events import EventReader
from jingzhun.journeys._machine import (
    CapCounter,
    Lookups,
    Machine,
    PlannedMessage,
    Walker,
    context_json,
)
from jingzhun.journeys._schedule import zone
from jingzhun.journeys._spec import JourneySettings, JourneySpec, ReEntry, SendStep, WebhookStep
from jingzhun.journeys._triggers import Window, trigger_candidates
from jingzhun.segments import SEGMENT_MEMBERS, SegmentSpec
from jingzhun.store import OperationalStore

MAX_ROUNDS = 50  # entries per customer a backtest replays


@dataclass
class BacktestResult:
    """What a journey would have done between two dates."""

    journey: str
    start: dt.date
    end: dt.date
    entered: int = 0
    customers: int = 0
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    exits: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)
    messages_by_day: dict[str, int] = field(default_factory=dict)
    sample: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "journey": self.journey,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "entered": self.entered,
            "customers": self.customers,
            "steps": self.steps,
            "exits": self.exits,
            "messages": self.messages,
            "messages_by_day": self.messages_by_day,
            "sample": self.sample,
            "notes": self.notes,
        }


def backtest_journey(
    engine: Engine,
    store: OperationalStore,
    spec: JourneySpec,
    *,
    start: dt.date,
    end: dt.date,
    timezone: str = "UTC",
    settings: JourneySettings | None = None,
    segments: Mapping[str, SegmentSpec] | None = None,
    include_late_loads: bool = False,
    sample: int = 10,
) -> BacktestResult:
    """Replay ``spec`` for triggers from ``start`` to ``end`` (local days, both included)."""
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    tz = zone(None, timezone)
    window = Window(
        dt.datetime.combine(start, dt.time(), tzinfo=tz).astimezone(dt.UTC),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.UTC),
        backtest=True,
    )
    events = EventReader(engine)
    candidates = trigger_candidates(
        engine, spec, window, timezone=timezone, events=events, first_only=False
    ).to_pylist()
    if spec.audience is not None and candidates and engine.exists(SEGMENT_MEMBERS):
        members = engine.read(SEGMENT_MEMBERS)
        inside = set(
            engine.execute(members.filter(members.segment == spec.audience).select("customer_key"))
            .column("customer_key")
            .to_pylist()
        )
        candidates = [c for c in candidates if c["customer_key"] in inside]
    elif spec.audience is not None:
        candidates = []
    lookups = Lookups(
        engine,
        store,
        timezone=timezone,
        segments=segments,
        include_late_loads=include_late_loads,
        events=events,
    )
    sent: list[tuple[PlannedMessage, str]] = []

    def accept(
        accepted: list[tuple[Walker, PlannedMessage]],
        journey: JourneySpec,
        step: SendStep | WebhookStep,
    ) -> None:
        what = (
            step.send.template or "inline content"
            if isinstance(step, SendStep)
            else f"webhook {step.webhook.event}"
        )
        for w, m in accepted:
            w.messages.append(m)
            w.note("queued", m.send_at, channel=m.channel)
            sent.append((m, what))

    machine = Machine(lookups, settings or JourneySettings(), CapCounter(None), accept)
    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in candidates:
        by_customer[c["customer_key"]].append(c)
    walkers: list[Walker] = []
    ends: dict[str, dt.datetime] = {}
    entries: dict[str, list[dt.datetime]] = defaultdict(list)
    first = spec.steps[0].id
    for _ in range(MAX_ROUNDS):
        fresh: list[Walker] = []
        for key, occurrences in by_customer.items():
            chosen = _next_entry(spec, occurrences, entries[key], ends.get(key))
            if chosen is None:
                continue
            at = chosen["triggered_at"]
            entries[key].append(at)
            fresh.append(
                Walker(
                    ref=len(walkers) + len(fresh) + 1,
                    spec=spec,
                    customer_key=key,
                    entry=len(entries[key]),
                    step=first,
                    arrived=at,
                    entered_at=at,
                    due=at,
                    context=context_json(chosen["context"]),
                )
            )
        if not fresh:
            break
        machine.advance(fresh, None)
        for w in fresh:
            ends[w.customer_key] = w.exited_at or w.arrived
        walkers.extend(fresh)
    return _summarise(spec, start, end, walkers, sent, sample)


def _next_entry(
    spec: JourneySpec,
    occurrences: list[dict[str, Any]],
    entered: list[dt.datetime],
    ended: dt.datetime | None,
) -> dict[str, Any] | None:
    """The customer's next trigger that the re-entry rule lets in."""
    if not entered:
        return occurrences[0]
    if spec.re_entry is ReEntry.NEVER or ended is None:
        return None
    for occurrence in occurrences:
        at = occurrence["triggered_at"]
        if at <= entered[-1] or at < ended:
            continue
        if spec.re_entry is ReEntry.AFTER and at - entered[-1] < dt.timedelta(
            days=spec.re_entry_days or 0
        ):
            continue
        return occurrence
    return None


def _summarise(
    spec: JourneySpec,
    start: dt.date,
    end: dt.date,
    walkers: list[Walker],
    sent: list[tuple[PlannedMessage, str]],
    sample: int,
) -> BacktestResult:
    result = BacktestResult(spec.name, start, end)
    result.entered = len(walkers)
    result.customers = len({w.customer_key for w in walkers})
    steps: dict[str, dict[str, Any]] = {
        s.id: {"kind": s.kind.value, "reached": 0, "queued": 0, "skipped": Counter()}
        for s in spec.steps
    }
    first = spec.steps[0].id
    for w in walkers:
        steps[first]["reached"] += 1
        for kind, step, _, detail in w.history:
            if kind == "step" and step in steps:
                steps[step]["reached"] += 1
            elif kind == "queued" and step in steps:
                steps[step]["queued"] += 1
            elif kind == "skipped" and step in steps:
                steps[step]["skipped"][str(detail.get("reason"))] += 1
        reason = w.exit_reason or "still in the journey"
        result.exits[reason] = result.exits.get(reason, 0) + 1
    result.steps = {k: {**v, "skipped": dict(v["skipped"])} for k, v in steps.items()}
    by_channel: Counter[str] = Counter()
    by_day: Counter[str] = Counter()
    for m, _ in sent:
        by_channel[m.channel] += 1
        by_day[m.send_at.date().isoformat()] += 1
    result.messages = dict(by_channel)
    result.messages_by_day = dict(sorted(by_day.items()))
    ordered = sorted(sent, key=lambda item: (item[0].send_at, item[0].customer_key))
    result.sample = [
        {
            "customer_key": m.customer_key,
            "entry": m.entry,
            "step": m.step,
            "channel": m.channel,
            "send_at": m.send_at.isoformat(),
            "content": what,
        }
        for m, what in ordered[:sample]
    ]
    result.notes = [
        "branches read the profiles and segments as stored now; consent and suppressions "
        "as they stand now; frequency caps count this journey's replayed messages only",
    ]
    return result
