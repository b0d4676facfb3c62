"""The step machine both the runner and the backtest drive: enrolments ("walkers") advance
through a journey's steps in bulk, with every warehouse question asked once per group.

A walker sits at a step it reached at ``arrived``. Steps that take no time (branch, split,
send, tag, webhook) lead straight on; ``wait`` and ``wait_until`` park it until a time,
``wait_for`` until its event or its timeout. ``horizon`` is "now" for the runner (nothing
after it is decided) and None for the backtest (history decides everything). A goal event
after entry ends the journey at the time it happened, before any later step.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from jingzhun.campaigns import (
    PHONE_DIGITS,
    Channel,
    ConsentLedger,
    Purpose,
    SuppressionList,
    consented,
    suppression_address,
)
from jingzhun.engine import Engine
from jingzhun.journeys._events import EventReader, registered
from jingzhun.journeys._schedule import next_local_time, out_of_quiet_hours, zone
from jingzhun.journeys._spec import (
    END,
    BranchStep,
    EventMatch,
    ExitStep,
    FrequencyCaps,
    JourneySettings,
    JourneySpec,
    QuietHours,
    SendStep,
    SplitStep,
    TagStep,
    WaitForStep,
    WaitStep,
    WaitUntilStep,
    WebhookStep,
    branch_rules,
)
from jingzhun.profile import PROFILES
from jingzhun.segments import SegmentSpec, compile_segment
from jingzhun.store import EnrollmentState, OperationalStore, QueuedMessage

ACTIVE, WAITING = EnrollmentState.ACTIVE.value, EnrollmentState.WAITING.value
COMPLETED, EXITED = EnrollmentState.COMPLETED.value, EnrollmentState.EXITED.value
PROFILE_FIELDS = (
    "timezone",
    "email",
    "phone",
    "has_valid_email",
    "has_valid_phone",
    "has_push",
    "city",
    "country",
)


def idempotency_key(journey: str, step: str, entry: int, customer_key: str, channel: str) -> str:
    """``journey:NAME:STEP:customer_key:channel``; a second entry into the journey adds
    ``#N`` to the step, so a customer who comes back gets the series again, each once.
    """
    stage = step if entry <= 1 else f"{step}#{entry}"
    return f"journey:{journey}:{stage}:{customer_key}:{channel}"


@dataclass
class PlannedMessage:
    """A message a send or webhook step wants queued."""

    journey: str
    step: str
    entry: int
    customer_key: str
    channel: str
    address: str
    send_at: dt.datetime
    purpose: str
    priority: int

    @property
    def idempotency_key(self) -> str:
        """The message's key in the delivery queue."""
        return idempotency_key(self.journey, self.step, self.entry, self.customer_key, self.channel)


@dataclass(eq=False)
class Walker:
    """One enrolment on its way through a journey."""

    ref: int  # enrolment id (runner) or a number (backtest)
    spec: JourneySpec
    customer_key: str
    entry: int
    step: str | None
    arrived: dt.datetime
    entered_at: dt.datetime
    state: str = ACTIVE
    due: dt.datetime | None = None
    context: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    exit_reason: str | None = None
    exited_at: dt.datetime | None = None
    history: list[tuple[str, str | None, dt.datetime, dict[str, Any]]] = field(default_factory=list)
    messages: list[PlannedMessage] = field(default_factory=list)
    tags: list[tuple[str, str, str, dt.datetime]] = field(default_factory=list)

    def snapshot(self) -> tuple[Any, ...]:
        """What the store keeps of it, to tell whether a run changed it."""
        return (self.step, self.state, self.due, self.arrived, self.exit_reason)

    def note(self, kind: str, at: dt.datetime, **detail: Any) -> None:
        """Add a history entry."""
        self.history.append((kind, self.step, at, detail))

    def move(self, target: str, at: dt.datetime) -> None:
        """Go to a step (or the end) at ``at``."""
        if target == END:
            self.state, self.step, self.due = COMPLETED, None, None
            self.exit_reason, self.exited_at = "completed", at
            self.note("completed", at)
            return
        self.step, self.arrived, self.due, self.state = target, at, at, ACTIVE
        self.note("step", at)

    def leave(self, reason: str, at: dt.datetime) -> None:
        """Exit the journey early."""
        self.note("exited", at, reason=reason)
        self.state, self.due, self.exit_reason, self.exited_at = EXITED, None, reason, at


def split_arm(step: SplitStep, journey: str, customer_key: str) -> str:
    """The arm of a seeded split: MD5 of ``seed:journey:step:customer_key`` as a number in
    [0, 1); the same customer always takes the same arm.
    """
    digest = hashlib.md5(
        f"{step.seed}:{journey}:{step.id}:{customer_key}".encode(), usedforsecurity=False
    ).hexdigest()
    point = int(digest[:13], 16) / 16**13
    edge = 0.0
    for arm in step.split:
        edge += arm.share
        if point < edge:
            return arm.goto
    return step.split[-1].goto


class Lookups:
    """The warehouse and store questions the steps ask, answered for many customers at once."""

    def __init__(
        self,
        engine: Engine,
        store: OperationalStore,
        *,
        timezone: str,
        segments: Mapping[str, SegmentSpec] | None = None,
        include_late_loads: bool = False,
        events: EventReader | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.timezone = timezone
        self.segments = dict(segments or {})
        self.include_late_loads = include_late_loads
        self.events = events or EventReader(engine)
        self._ledger: dict[tuple[str, str], pa.Table] = {}
        self._suppressed: dict[str, set[str]] = {}
        self._as_of: dt.date | None = None

    def profiles(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Time zone and addresses of each customer with a profile."""
        wanted = sorted(set(keys))
        if not wanted or not self.engine.exists(PROFILES):
            return {}
        profiles = self.engine.read(PROFILES)
        columns = [c for c in ("customer_key", *PROFILE_FIELDS) if c in profiles.columns]
        data = pa.table({"w_key": pa.array(wanted, pa.string())})
        with registered(self.engine, data) as chosen:
            rows = self.engine.execute(
                profiles.semi_join(chosen, profiles.customer_key == chosen.w_key).select(*columns)
            ).to_pylist()
        return {r["customer_key"]: r for r in rows}

    def profiles_as_of(self) -> dt.date:
        """The date the stored profiles describe (rules are evaluated on it)."""
        if self._as_of is None:
            profiles = self.engine.read(PROFILES)
            self._as_of = self.engine.scalar(profiles.as_of.max()) or dt.date.today()
        return self._as_of

    def members(self, rule: SegmentSpec, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` meet a rule of the segment language."""
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        compiled = compile_segment(
            self.engine,
            rule,
            as_of=self.profiles_as_of(),
            specs=self.segments,
            include_late_loads=self.include_late_loads,
        )
        members = compiled.members
        data = pa.table({"w_key": pa.array(wanted, pa.string())})
        with registered(self.engine, data) as chosen:
            found = self.engine.execute(
                members.semi_join(chosen, members.customer_key == chosen.w_key).select(
                    "customer_key"
                )
            )
        return set(found.column("customer_key").to_pylist())

    def consented(self, purpose: Purpose, channel: Channel, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` may be contacted for the purpose on the channel
        (``jingzhun.campaigns.consented``: the ledger, then source opt-ins for marketing).
        """
        wanted = sorted(set(keys))
        if not wanted or not self.engine.exists(PROFILES):
            return set()
        cache = (purpose.value, channel.value)
        if cache not in self._ledger:
            self._ledger[cache] = ConsentLedger(self.store).latest(purpose, channel)
        allowed = consented(self.engine, self._ledger[cache], channel, purpose)
        data = pa.table({"w_key": pa.array(wanted, pa.string())})
        with registered(self.engine, data) as chosen:
            found = self.engine.execute(
                allowed.semi_join(chosen, allowed.customer_key == chosen.w_key)
            )
        return set(found.column("customer_key").to_pylist())

    def suppressed(self, channel: Channel) -> set[str]:
        """Suppressed addresses of a channel, in their matching form."""
        if channel.value not in self._suppressed:
            found = SuppressionList(self.store).addresses(channel)
            self._suppressed[channel.value] = {_match_form(channel, a) for a in found}
        return self._suppressed[channel.value]

    def first_event(
        self,
        match: EventMatch,
        windows: list[tuple[int, str, dt.datetime, dt.datetime | None]],
    ) -> dict[int, dt.datetime]:
        """The first matching event in each window."""
        return self.events.first_after(match, windows)


def _match_form(channel: Channel, address: str) -> str:
    stored = suppression_address(channel, address)
    if channel in (Channel.SMS, Channel.CALL_CENTRE):
        return stored[-PHONE_DIGITS:]
    return stored


def address_for(channel: Channel, profile: Mapping[str, Any], customer_key: str) -> str | None:
    """Where a message on the channel goes, or None when the customer has no such address
    (the campaigns' reachability rules).
    """
    if channel is Channel.EMAIL:
        ok, value = profile.get("has_valid_email"), profile.get("email")
        return str(value).strip().lower() if ok and value else None
    if channel in (Channel.SMS, Channel.CALL_CENTRE):
        ok, value = profile.get("has_valid_phone"), profile.get("phone")
        return str(value) if ok and value else None
    if channel is Channel.PUSH:
        return customer_key if profile.get("has_push") else None
    if channel is Channel.DIRECT_MAIL:
        city, country = profile.get("city"), profile.get("country")
        return f"{city}, {country}" if city and country else None
    return customer_key  # webhook: the customer is the address


class CapCounter:
    """Messages per customer already queued or sent, plus those this run adds: the
    campaigns' frequency-cap rule (a day and a week up to the send time, per channel unless
    ``per_channel: false``), across every campaign and journey.
    """

    def __init__(self, store: OperationalStore | None) -> None:
        self.store = store
        self._seen: dict[str, list[tuple[str, dt.datetime]]] = defaultdict(list)
        self._loaded: set[str] = set()

    def load(self, keys: Iterable[str]) -> None:
        """Read the queue for customers not read yet."""
        fresh = sorted(set(keys) - self._loaded)
        self._loaded.update(fresh)
        if self.store is None or not fresh:
            return
        from sqlalchemy import select

        with self.store.session() as session:
            for i in range(0, len(fresh), 500):
                rows = session.execute(
                    select(
                        QueuedMessage.customer_key, QueuedMessage.channel, QueuedMessage.send_at
                    ).where(
                        QueuedMessage.customer_key.in_(fresh[i : i + 500]),
                        QueuedMessage.status.in_(("queued", "sent")),
                    )
                ).all()
                for key, channel, at in rows:
                    self._seen[key].append((channel, at))

    def allows(self, caps: FrequencyCaps, key: str, channel: str, at: dt.datetime) -> bool:
        """Whether one more message at ``at`` stays under the caps."""
        if caps.per_day is None and caps.per_week is None:
            return True
        day = week = 0
        for seen_channel, seen_at in self._seen.get(key, ()):
            if caps.per_channel and seen_channel != channel:
                continue
            if at - dt.timedelta(days=7) < seen_at <= at + dt.timedelta(days=1):
                week += 1
                if seen_at > at - dt.timedelta(days=1):
                    day += 1
        if caps.per_day is not None and day >= caps.per_day:
            return False
        return not (caps.per_week is not None and week >= caps.per_week)

    def add(self, key: str, channel: str, at: dt.datetime) -> None:
        """Count a message this run queues."""
        self._seen[key].append((channel, at))


Accept = Callable[[list[tuple[Walker, PlannedMessage]], JourneySpec, Any], None]


class Machine:
    """Advances walkers through their journeys.

    Parameters
    ----------
    lookups
        Answers from the warehouse and the store.
    settings
        Project-wide caps and quiet hours (a journey's own override them).
    caps
        The frequency-cap counter (the runner's reads the queue; the backtest's starts empty).
    accept
        Called with each send step's messages that passed every check, to render and queue
        them (runner) or to count them (backtest).
    floor
        Sends never go before this (the runner's now: a step that fell due while it was not
        running sends now, still outside quiet hours).
    """

    def __init__(
        self,
        lookups: Lookups,
        settings: JourneySettings,
        caps: CapCounter,
        accept: Accept,
        *,
        floor: dt.datetime | None = None,
    ) -> None:
        self.lookups = lookups
        self.settings = settings
        self.caps = caps
        self.accept = accept
        self.floor = floor
        self._rules: dict[str, dict[tuple[str, int], SegmentSpec]] = {}
        self._profiles: dict[str, dict[str, Any]] = {}

    def _tz(self, key: str) -> Any:
        return zone(self._profiles.get(key, {}).get("timezone"), self.lookups.timezone)

    def advance(self, walkers: list[Walker], horizon: dt.datetime | None) -> None:
        """Take every walker as far as ``horizon`` allows (to the end when None)."""
        live = [w for w in walkers if w.state in (ACTIVE, WAITING)]
        if not live:
            return
        self._profiles.update(self.lookups.profiles({w.customer_key for w in live}))
        self.caps.load({w.customer_key for w in live})
        goals = self._goals(live, horizon)
        pending = live
        hops = 0
        limit = max(len(w.spec.steps) for w in live) * 4 + 4
        while pending:
            hops += 1
            if hops > limit:  # spec validation refuses loops without a wait; a safety net
                for w in pending:
                    w.leave("too many steps without a wait", w.arrived)
                return
            groups: dict[tuple[str, str], list[Walker]] = defaultdict(list)
            for w in pending:
                groups[(w.spec.name, str(w.step))].append(w)
            ordered = sorted(groups.items(), key=lambda kv: (-kv[1][0].spec.priority, kv[0]))
            pending = []
            for (_, step_id), group in ordered:
                spec = group[0].spec
                going = []
                for w in group:
                    goal = goals.get(w.ref)
                    if goal is not None and goal <= w.arrived:
                        w.leave("goal", goal)
                    else:
                        going.append(w)
                if not going:
                    continue
                try:
                    step = spec.step(step_id)
                except KeyError:  # the journey changed and lost this step
                    for w in going:
                        w.leave(f"step {step_id} no longer in the journey", w.arrived)
                    continue
                moved = self._step(spec, step, going, horizon)
                for w in going:
                    if w in moved:
                        if w.state in (ACTIVE, WAITING):
                            pending.append(w)
                        continue
                    goal = goals.get(w.ref)
                    if goal is not None and (horizon is None or goal <= horizon):
                        w.leave("goal", goal)

    def _goals(self, walkers: list[Walker], horizon: dt.datetime | None) -> dict[int, dt.datetime]:
        out: dict[int, dt.datetime] = {}
        by_goal: dict[str, list[Walker]] = defaultdict(list)
        for w in walkers:
            if w.spec.goal is not None:
                by_goal[w.spec.name].append(w)
        for group in by_goal.values():
            goal = group[0].spec.goal
            assert goal is not None
            windows = [(w.ref, w.customer_key, w.entered_at, horizon) for w in group]
            out.update(self.lookups.first_event(goal, windows))
        return out

    def _next(self, spec: JourneySpec, step: Any) -> str:
        return step.next or spec.after(step.id)

    def _step(
        self, spec: JourneySpec, step: Any, group: list[Walker], horizon: dt.datetime | None
    ) -> set[Walker]:
        """Run one step for a group; returns the walkers that moved on (or left)."""
        moved: set[Walker] = set()
        if isinstance(step, WaitStep | WaitUntilStep):
            for w in group:
                if isinstance(step, WaitStep):
                    due = w.arrived + step.wait
                else:
                    due = next_local_time(w.arrived, step.time(), self._tz(w.customer_key))
                if horizon is None or due <= horizon:
                    w.move(self._next(spec, step), due)
                    moved.add(w)
                else:
                    w.state, w.due = ACTIVE, due
        elif isinstance(step, WaitForStep):
            within = step.wait_for.within
            windows: list[tuple[int, str, dt.datetime, dt.datetime | None]] = []
            for w in group:
                deadline = w.arrived + within
                until = deadline if horizon is None else min(deadline, horizon)
                windows.append((w.ref, w.customer_key, w.arrived, until))
            found = self.lookups.first_event(step.wait_for, windows)
            for w in group:
                deadline = w.arrived + within
                if w.ref in found:
                    w.note("event", found[w.ref], event=step.wait_for.event)
                    w.move(step.on_event or self._next(spec, step), found[w.ref])
                    moved.add(w)
                elif horizon is None or deadline <= horizon:
                    w.note("timeout", deadline, event=step.wait_for.event)
                    w.move(step.on_timeout or self._next(spec, step), deadline)
                    moved.add(w)
                else:
                    w.state, w.due = WAITING, deadline
        elif isinstance(step, BranchStep):
            rules = self._rules.setdefault(spec.name, branch_rules(spec))
            left = list(group)
            for j, case in enumerate(step.branch):
                if not left:
                    break
                inside = self.lookups.members(rules[(step.id, j)], {w.customer_key for w in left})
                for w in [w for w in left if w.customer_key in inside]:
                    w.note("branch", w.arrived, case=j, goto=case.goto)
                    w.move(case.goto, w.arrived)
                    moved.add(w)
                left = [w for w in left if w not in moved]
            for w in left:
                target = step.otherwise or self._next(spec, step)
                w.note("branch", w.arrived, case="else", goto=target)
                w.move(target, w.arrived)
                moved.add(w)
        elif isinstance(step, SplitStep):
            for w in group:
                arm = split_arm(step, spec.name, w.customer_key)
                w.note("split", w.arrived, goto=arm)
                w.move(arm, w.arrived)
                moved.add(w)
        elif isinstance(step, TagStep):
            for w in group:
                w.tags.append((step.tag.name, step.tag.value, step.id, w.arrived))
                w.note("tag", w.arrived, tag=step.tag.name, value=step.tag.value)
                w.move(self._next(spec, step), w.arrived)
                moved.add(w)
        elif isinstance(step, SendStep | WebhookStep):
            self._send(spec, step, group)
            for w in group:
                w.move(self._next(spec, step), w.arrived)
                moved.add(w)
        elif isinstance(step, ExitStep):
            for w in group:
                w.leave(step.exit, w.arrived)
                moved.add(w)
        return moved

    def _send(self, spec: JourneySpec, step: SendStep | WebhookStep, group: list[Walker]) -> None:
        if isinstance(step, SendStep):
            channel, consent = step.send.channel, step.send.consent
        else:
            channel, consent = Channel.WEBHOOK, step.webhook.consent
        consent_channel = consent.channel or channel
        keys = {w.customer_key for w in group}
        allowed = self.lookups.consented(consent.purpose, consent_channel, keys)
        suppressed = self.lookups.suppressed(channel)
        caps = spec.frequency_caps or self.settings.frequency_caps
        quiet = spec.quiet_hours or self.settings.quiet_hours
        times = quiet.times() if isinstance(quiet, QuietHours) else None
        accepted: list[tuple[Walker, PlannedMessage]] = []
        for w in group:
            key = w.customer_key
            profile = self._profiles.get(key)
            if profile is None:
                w.note("skipped", w.arrived, reason="no profile", channel=channel.value)
                continue
            if key not in allowed:
                w.note("skipped", w.arrived, reason="no consent", channel=channel.value)
                continue
            address = address_for(channel, profile, key)
            if address is None:
                w.note("skipped", w.arrived, reason="unreachable", channel=channel.value)
                continue
            if _match_form(channel, address) in suppressed:
                w.note("skipped", w.arrived, reason="suppressed", channel=channel.value)
                continue
            start = w.arrived if self.floor is None else max(w.arrived, self.floor)
            send_at = out_of_quiet_hours(start, times, self._tz(key))
            if not self.caps.allows(caps, key, channel.value, send_at):
                w.note("skipped", w.arrived, reason="frequency cap", channel=channel.value)
                continue
            message = PlannedMessage(
                spec.name,
                step.id,
                w.entry,
                key,
                channel.value,
                address,
                send_at,
                consent.purpose.value,
                spec.priority,
            )
            self.caps.add(key, channel.value, send_at)
            accepted.append((w, message))
        if accepted:
            self.accept(accepted, spec, step)


def context_json(value: str | None) -> dict[str, Any]:
    """A trigger's context column as a dict."""
    if not value:
        return {}
    try:
        loaded = json.loads(value)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}
