"""``JourneyRunner``: enrol customers whose trigger fired, advance every enrolment whose step
is due, queue their messages for the delivery worker — safe to run again after a crash.

Crash safety, step by step:

- **enrol**: per journey, the new enrolments, their "entered" history and the advanced
  watermark are written in one transaction. ``(journey, customer_key, trigger_id)`` is
  unique, so evaluating the same window again (a crash before the commit, two runners)
  enrols nobody twice.
- **advance**: per batch, every enrolment's new state (fenced on its ``version``), its
  history, its tags and its queued messages are written in one transaction. A batch that
  stops changes nothing; the next run recomputes the same messages, whose idempotency keys
  (unique in ``delivery_queue``) keep each one queued once, and the worker sends each key
  once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pyarrow as pa
from sqlalchemy import CursorResult, Table, and_, func, insert, or_, select, update

from jingzhun.campaigns import (
    COUPON_SCHEMA,
    COUPONS,
    MessageTemplate,
    coupon_rows,
    issue_codes,
    load_templates,
    message_contexts,
    offer_for,
    render_message,
)
from jingzhun.core import EngineError, NotFoundError, Project
from jingzhun.engine import Engine
from jingzhun.journeys._events import EventReader
from jingzhun.journeys._machine import (
    ACTIVE,
    WAITING,
    CapCounter,
    Lookups,
    Machine,
    PlannedMessage,
    Walker,
    context_json,
)
from jingzhun.journeys._spec import (
    Content,
    EventTrigger,
    JourneySettings,
    JourneySpec,
    LocationTrigger,
    ReEntry,
    SendStep,
    WebhookStep,
    load_journey_settings,
    load_journeys,
)
from jingzhun.journeys._triggers import Window, trigger_candidates
from jingzhun.profile import SETTINGS_FILE as PROFILE_SETTINGS_FILE
from jingzhun.profile import load_profile_settings
from jingzhun.segments import SEGMENT_MEMBERS, SegmentSpec, load_segment_specs
from jingzhun.store import (
    EnrollmentState,
    JourneyEnrollment,
    JourneyEvent,
    JourneyTag,
    JourneyWatermark,
    OperationalStore,
    QueuedMessage,
)

_CHUNK = 500
_ENROLLMENTS = cast(Table, JourneyEnrollment.__table__)
_EVENTS = cast(Table, JourneyEvent.__table__)
_QUEUE = cast(Table, QueuedMessage.__table__)


@dataclass
class RunReport:
    """What one run did, per journey: enrolled, steps advanced, messages queued, exits."""

    journeys: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, journey: str, counter: str, n: int = 1) -> None:
        """Count something for a journey."""
        row = self.journeys.setdefault(
            journey, {"enrolled": 0, "advanced": 0, "queued": 0, "completed": 0, "exited": 0}
        )
        row[counter] = row.get(counter, 0) + n

    def total(self, counter: str) -> int:
        """A counter summed over the journeys."""
        return sum(row.get(counter, 0) for row in self.journeys.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        keys = ("enrolled", "advanced", "queued", "completed", "exited")
        return {"journeys": self.journeys, "totals": {k: self.total(k) for k in keys}}


def inline_template(spec: JourneySpec, step_id: str, content: Content) -> MessageTemplate:
    """A send step's inline content as a message template (compiled now: errors name the
    journey file).
    """
    return MessageTemplate(
        name=f"{spec.name}.{step_id}",
        subject=content.subject,
        html=content.html,
        text=content.text,
        sms=content.sms,
        defaults=content.defaults,
        file=spec.source_file,
    )


class Renderer:
    """Renders accepted messages into their queue payloads (so ``render_from_payload``, and
    the workspace's renderer for non-campaign messages, send them as they are).
    """

    def __init__(
        self,
        engine: Engine,
        templates: Mapping[str, MessageTemplate],
        *,
        currency: str | None,
        coupon_secret: bytes | None,
    ) -> None:
        self.engine = engine
        self.templates = dict(templates)
        self.currency = currency
        self.coupon_secret = coupon_secret
        self._inline: dict[tuple[str, str], MessageTemplate] = {}
        self.coupons: list[pa.Table] = []

    def template(self, spec: JourneySpec, step: SendStep | WebhookStep) -> MessageTemplate:
        """The step's template (project template, inline content or webhook text)."""
        if isinstance(step, WebhookStep):
            content = Content(sms=step.webhook.text or step.webhook.event)
        elif step.send.template is not None:
            found = self.templates.get(step.send.template)
            if found is None:
                known = ", ".join(sorted(self.templates)) or "none"
                raise NotFoundError(
                    f"{spec.source_file}: step '{step.id}' names template "
                    f"'{step.send.template}', which templates/ does not have; templates: {known}"
                )
            return found
        else:
            assert step.send.content is not None
            content = step.send.content
        cache = (spec.name, step.id)
        if cache not in self._inline:
            self._inline[cache] = inline_template(spec, step.id, content)
        return self._inline[cache]

    def payloads(
        self,
        spec: JourneySpec,
        step: SendStep | WebhookStep,
        messages: list[PlannedMessage],
        memberships: Mapping[str, set[str]],
    ) -> dict[str, dict[str, Any] | str]:
        """Per idempotency key: the payload, or the reason it could not be rendered."""
        from jingzhun.campaigns import ContentError

        template = self.template(spec, step)
        keys = [m.customer_key for m in messages]
        offers: dict[str, Any] = {}
        codes: dict[str, str] = {}
        offer_spec = step.send.offer if isinstance(step, SendStep) else None
        campaign = f"journey:{spec.name}:{step.id}"
        if offer_spec is not None:
            for m in messages:
                offers[m.customer_key] = offer_for(
                    offer_spec, memberships.get(m.customer_key, set()), issued_on=m.send_at.date()
                )
            if offer_spec.coupon_prefix is not None:
                if self.coupon_secret is None:
                    raise EngineError(
                        f"{spec.source_file}: step '{step.id}' issues coupons; the runner needs "
                        "the project's coupon secret"
                    )
                codes = issue_codes(
                    campaign, keys, prefix=offer_spec.coupon_prefix, secret=self.coupon_secret
                )
        contexts = message_contexts(
            self.engine,
            keys,
            offers=offers,
            coupons=codes,
            campaign={"name": spec.name, "description": spec.description, "step": step.id},
            currency=self.currency,
        )
        out: dict[str, dict[str, Any] | str] = {}
        for m in messages:
            context = contexts[m.customer_key]
            base: dict[str, Any] = {
                "journey": spec.name,
                "step": step.id,
                "entry": m.entry,
                "purpose": m.purpose,
                "metadata": {"journey": spec.name, "step": step.id, "variant": step.id},
            }
            try:
                if isinstance(step, WebhookStep):
                    body = render_message(template, context, "sms").sms or ""
                    base.update(subject=step.webhook.event, body=body)
                    base["metadata"].update(step.webhook.data, event=step.webhook.event)
                elif m.channel == "email":
                    rendered = render_message(template, context, "email")
                    base.update(
                        subject=rendered.subject or "",
                        html=rendered.html or "",
                        text=rendered.text or "",
                    )
                else:
                    rendered = render_message(template, context, "sms")
                    base.update(body=rendered.sms or "")
                    if template.subject is not None:
                        base["subject"] = " ".join(template.render_part("subject", context).split())
            except ContentError as exc:
                out[m.idempotency_key] = f"content error: {exc}"
                continue
            if m.customer_key in offers:
                offer = offers[m.customer_key].to_context(codes.get(m.customer_key))
                base["offer"] = json.loads(json.dumps(offer, default=str))
            out[m.idempotency_key] = base
        if codes:
            by_key = {k: offers[k] for k in codes}
            self.coupons.append(coupon_rows(f"journey:{spec.name}", codes, offers=by_key))
        return out


class JourneyRunner:
    """Enrols and advances the journeys of a project.

    Parameters
    ----------
    engine, store
        The warehouse (read; coupons are appended to ``coupons``) and the migrated store.
    specs
        The journeys by name (``load_journeys``).
    timezone
        The project's time zone (schedules, anniversaries, customers without a zone).
    settings
        ``journeys/_settings.yml``: caps, quiet hours, batch size.
    templates
        ``templates/*.yml`` by name.
    segments
        The project's segments (branch rules may name them).
    include_late_loads
        As the profile settings say (rules read history loaded later than it happened).
    currency, coupon_secret
        For message content and coupon codes.
    """

    def __init__(
        self,
        engine: Engine,
        store: OperationalStore,
        specs: Mapping[str, JourneySpec],
        *,
        timezone: str = "UTC",
        settings: JourneySettings | None = None,
        templates: Mapping[str, MessageTemplate] | None = None,
        segments: Mapping[str, SegmentSpec] | None = None,
        include_late_loads: bool = False,
        currency: str | None = None,
        coupon_secret: bytes | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.specs = dict(specs)
        self.timezone = timezone
        self.settings = settings or JourneySettings()
        self.templates = dict(templates or {})
        self.segments = dict(segments or {})
        self.include_late_loads = include_late_loads
        self.currency = currency
        self.coupon_secret = coupon_secret

    def _ordered(self, names: Iterable[str] | None = None) -> list[JourneySpec]:
        chosen = list(self.specs.values())
        if names is not None:
            wanted = set(names)
            unknown = wanted - set(self.specs)
            if unknown:
                known = ", ".join(sorted(self.specs)) or "none"
                raise NotFoundError(f"no journey named {sorted(unknown)}; journeys: {known}")
            chosen = [s for s in chosen if s.name in wanted]
        return sorted((s for s in chosen if s.enabled), key=lambda s: (-s.priority, s.name))

    # -- enrolment ---------------------------------------------------------------------------

    def enroll(self, now: dt.datetime, *, journeys: Iterable[str] | None = None) -> RunReport:
        """Evaluate each journey's trigger since its watermark and enrol who it fired for."""
        _aware(now)
        report = RunReport()
        reader = EventReader(self.engine, until=now.date())
        for spec in self._ordered(journeys):
            report.add(spec.name, "enrolled", self._enroll(spec, now, reader))
        return report

    def _window(
        self, spec: JourneySpec, now: dt.datetime
    ) -> tuple[Window, JourneyWatermark | None]:
        with self.store.session() as session:
            mark = session.scalar(
                select(JourneyWatermark).where(JourneyWatermark.journey == spec.name)
            )
        lookback = spec.trigger.lookback
        start = mark.position if mark is not None and mark.position is not None else None
        if start is None:
            start = now - lookback  # the first evaluation looks back this far, no further
        loaded = mark.loaded_position if mark is not None else None
        return Window(min(start, now), now, loaded_after=loaded, lookback=lookback), mark

    def _loaded_position(self, spec: JourneySpec) -> dt.datetime | None:
        if not isinstance(spec.trigger, EventTrigger | LocationTrigger):
            return None
        if not self.engine.exists("raw_events"):
            return None
        raw = self.engine.read("raw_events")
        value = self.engine.scalar(raw._loaded_at.max())
        return value if isinstance(value, dt.datetime) else None

    def _enroll(self, spec: JourneySpec, now: dt.datetime, reader: EventReader) -> int:
        window, _ = self._window(spec, now)
        candidates = trigger_candidates(
            self.engine, spec, window, timezone=self.timezone, events=reader
        )
        rows = candidates.to_pylist()
        if spec.audience is not None and rows:
            inside = self._members(spec.audience, {r["customer_key"] for r in rows})
            rows = [r for r in rows if r["customer_key"] in inside]
        loaded = self._loaded_position(spec)
        first = spec.steps[0].id
        fingerprint = spec.fingerprint()
        enrolled = 0
        with self.store.session(write=True) as session:
            history = _histories(session, spec.name, [r["customer_key"] for r in rows])
            fresh: list[dict[str, Any]] = []
            for r in rows:
                key, at = r["customer_key"], r["triggered_at"]
                past = history.get(key, [])
                if not _may_enter(spec, past, r["trigger_id"], at):
                    continue
                entry = max((p[2] for p in past), default=0) + 1
                past.append((r["trigger_id"], ACTIVE, entry, at))
                history[key] = past
                fresh.append(
                    {
                        "journey": spec.name,
                        "customer_key": key,
                        "trigger_id": r["trigger_id"],
                        "entry": entry,
                        "state": ACTIVE,
                        "current_step": first,
                        "step_started_at": at,
                        "next_due_at": at,
                        "triggered_at": at,
                        "entered_at": at,
                        "exited_at": None,
                        "exit_reason": None,
                        "spec_fingerprint": fingerprint,
                        "context": context_json(r["context"]),
                        "version": 1,
                        "updated_at": now,
                    }
                )
            table = _ENROLLMENTS
            for i in range(0, len(fresh), 2_000):
                part = fresh[i : i + 2_000]
                ids = session.execute(
                    insert(table).returning(table.c.id, sort_by_parameter_order=True),
                    part,
                ).all()
                session.execute(
                    insert(_EVENTS),
                    [
                        {
                            "enrollment_id": row_id,
                            "journey": spec.name,
                            "customer_key": f["customer_key"],
                            "step": None,
                            "kind": "entered",
                            "at": f["entered_at"],
                            "detail": {"trigger_id": f["trigger_id"], "entry": f["entry"]},
                            "recorded_at": now,
                        }
                        for (row_id,), f in zip(ids, part, strict=True)
                    ],
                )
            enrolled = len(fresh)
            mark = session.scalar(
                select(JourneyWatermark).where(JourneyWatermark.journey == spec.name)
            )
            if mark is None:
                mark = JourneyWatermark(journey=spec.name, trigger=spec.trigger.kind.value)
                session.add(mark)
            mark.trigger = spec.trigger.kind.value
            mark.position = max(now, mark.position) if mark.position else now
            mark.loaded_position = loaded or mark.loaded_position
            mark.updated_at = now
        return enrolled

    def _members(self, segment: str, keys: set[str]) -> set[str]:
        if not self.engine.exists(SEGMENT_MEMBERS):
            return set()
        members = self.engine.read(SEGMENT_MEMBERS)
        found = self.engine.execute(
            members.filter(
                (members.segment == segment) & members.customer_key.isin(sorted(keys))
            ).select("customer_key")
        )
        return set(found.column("customer_key").to_pylist())

    # -- advancing ---------------------------------------------------------------------------

    def run_due(self, now: dt.datetime, *, journeys: Iterable[str] | None = None) -> RunReport:
        """Advance every enrolment whose step is due at ``now`` (and every one waiting for an
        event or able to reach its goal), batch by batch, each batch in one transaction.
        """
        _aware(now)
        report = RunReport()
        lookups = Lookups(
            self.engine,
            self.store,
            timezone=self.timezone,
            segments=self.segments,
            include_late_loads=self.include_late_loads,
            events=EventReader(self.engine, until=now.date()),
        )
        caps = CapCounter(self.store)
        for spec in self._ordered(journeys):
            last_id = 0
            while True:
                batch = self._due(spec, now, last_id)
                if not batch:
                    break
                last_id = batch[-1].ref
                self._advance(spec, batch, now, lookups, caps, report)
        return report

    def run(self, now: dt.datetime, *, journeys: Iterable[str] | None = None) -> RunReport:
        """Enrol, then advance what is due: one ``jingzhun journey run``."""
        enrolled = self.enroll(now, journeys=journeys)
        advanced = self.run_due(now, journeys=journeys)
        for name, row in enrolled.journeys.items():
            advanced.add(name, "enrolled", row["enrolled"])
        return advanced

    def _due(self, spec: JourneySpec, now: dt.datetime, after_id: int) -> list[Walker]:
        E = JourneyEnrollment
        due = or_(
            E.state == WAITING,
            and_(E.state == ACTIVE, E.next_due_at <= now),
        )
        if spec.goal is not None:
            due = E.state.in_((ACTIVE, WAITING))
        with self.store.session() as session:
            rows = session.scalars(
                select(E)
                .where(E.journey == spec.name, E.id > after_id, due)
                .order_by(E.id)
                .limit(self.settings.batch_size)
            ).all()
            return [
                Walker(
                    ref=r.id,
                    spec=spec,
                    customer_key=r.customer_key,
                    entry=r.entry,
                    step=r.current_step,
                    arrived=r.step_started_at,
                    entered_at=r.entered_at,
                    state=r.state,
                    due=r.next_due_at,
                    context=dict(r.context or {}),
                    version=r.version,
                )
                for r in rows
            ]

    def _advance(
        self,
        spec: JourneySpec,
        batch: list[Walker],
        now: dt.datetime,
        lookups: Lookups,
        caps: CapCounter,
        report: RunReport,
    ) -> None:
        before = {w.ref: w.snapshot() for w in batch}
        renderer = Renderer(
            self.engine, self.templates, currency=self.currency, coupon_secret=self.coupon_secret
        )
        queued: dict[str, tuple[PlannedMessage, dict[str, Any]]] = {}

        def accept(
            accepted: list[tuple[Walker, PlannedMessage]],
            journey: JourneySpec,
            step: SendStep | WebhookStep,
        ) -> None:
            memberships = self._memberships({m.customer_key for _, m in accepted})
            payloads = renderer.payloads(journey, step, [m for _, m in accepted], memberships)
            for w, m in accepted:
                payload = payloads[m.idempotency_key]
                if isinstance(payload, str):
                    w.note("skipped", w.arrived, reason=payload[:300], channel=m.channel)
                    continue
                w.messages.append(m)
                queued[m.idempotency_key] = (m, payload)
                w.note("queued", m.send_at, channel=m.channel, key=m.idempotency_key)

        machine = Machine(lookups, self.settings, caps, accept, floor=now)
        machine.advance(batch, now)
        changed = [w for w in batch if w.snapshot() != before[w.ref] or w.history]
        if not changed:
            return
        fresh_coupons: set[str] = set()
        with self.store.session(write=True) as session:
            kept: list[Walker] = []
            for w in changed:
                result = cast(
                    "CursorResult[Any]",
                    session.execute(
                        update(JourneyEnrollment)
                        .where(
                            JourneyEnrollment.id == w.ref, JourneyEnrollment.version == w.version
                        )
                        .values(
                            state=w.state,
                            current_step=w.step,
                            step_started_at=w.arrived,
                            next_due_at=w.due,
                            exited_at=w.exited_at,
                            exit_reason=w.exit_reason,
                            version=w.version + 1,
                            updated_at=now,
                        )
                        .execution_options(synchronize_session=False)
                    ),
                )
                if result.rowcount == 1:  # another runner advanced it first: leave it to them
                    kept.append(w)
            messages = [m for w in kept for m in w.messages]
            keys = [m.idempotency_key for m in messages]
            existing: set[str] = set()
            for i in range(0, len(keys), _CHUNK):
                existing.update(
                    session.scalars(
                        select(QueuedMessage.idempotency_key).where(
                            QueuedMessage.idempotency_key.in_(keys[i : i + _CHUNK])
                        )
                    ).all()
                )
            rows = []
            for m in messages:
                if m.idempotency_key in existing:
                    continue
                existing.add(m.idempotency_key)
                payload = queued[m.idempotency_key][1]
                rows.append(
                    {
                        "idempotency_key": m.idempotency_key,
                        "plan_id": f"journey:{m.journey}",
                        "campaign": f"journey:{m.journey}",
                        "customer_key": m.customer_key,
                        "channel": m.channel,
                        "address": m.address,
                        "variant": m.step,
                        "send_at": m.send_at,
                        "payload": payload,
                        "status": "queued",
                        "created_at": now,
                    }
                )
                if "offer" in payload:
                    fresh_coupons.add(m.customer_key)
            if rows:
                session.execute(insert(_QUEUE), rows)
            events = [
                {
                    "enrollment_id": w.ref,
                    "journey": spec.name,
                    "customer_key": w.customer_key,
                    "step": step,
                    "kind": kind,
                    "at": at,
                    "detail": json.loads(json.dumps(detail, default=str)),
                    "recorded_at": now,
                }
                for w in kept
                for kind, step, at, detail in w.history
            ]
            if events:
                session.execute(insert(_EVENTS), events)
            for w in kept:
                for tag, value, step_id, at in w.tags:
                    found = session.scalar(
                        select(JourneyTag).where(
                            JourneyTag.customer_key == w.customer_key, JourneyTag.tag == tag
                        )
                    )
                    if found is None:
                        found = JourneyTag(customer_key=w.customer_key, tag=tag)
                        session.add(found)
                    found.value, found.journey, found.step, found.set_at = (
                        value,
                        spec.name,
                        step_id,
                        at,
                    )
        for w in kept:
            report.add(spec.name, "advanced", sum(1 for h in w.history if h[0] == "step"))
            if w.state == EnrollmentState.COMPLETED.value:
                report.add(spec.name, "completed")
            elif w.state == EnrollmentState.EXITED.value:
                report.add(spec.name, "exited")
        report.add(spec.name, "queued", len(rows))
        self._store_coupons(renderer, fresh_coupons)

    def _memberships(self, keys: set[str]) -> dict[str, set[str]]:
        if not keys or not self.engine.exists(SEGMENT_MEMBERS):
            return {}
        members = self.engine.read(SEGMENT_MEMBERS)
        rows = self.engine.execute(
            members.filter(members.customer_key.isin(sorted(keys))).select(
                "customer_key", "segment"
            )
        ).to_pylist()
        out: dict[str, set[str]] = {}
        for r in rows:
            out.setdefault(r["customer_key"], set()).add(r["segment"])
        return out

    def _store_coupons(self, renderer: Renderer, queued: set[str]) -> None:
        """The coupons of messages queued now, for redemption tracking (after the commit: a
        crash in between leaves a queued code without its row, never a row without a code).
        """
        if not renderer.coupons or not queued:
            return
        rows = pa.concat_tables(renderer.coupons)
        mask = pa.array([k in queued for k in rows.column("customer_key").to_pylist()])
        self.engine.create(COUPONS, COUPON_SCHEMA)
        with self.engine.transaction():
            self.engine.write(COUPONS, rows.filter(mask).cast(COUPON_SCHEMA))

    # -- reading -----------------------------------------------------------------------------

    def status(self, name: str, *, recent: int = 10) -> dict[str, Any]:
        """A journey's enrolments by state and step, exits by reason, messages by status,
        its watermark and the latest history.
        """
        if name not in self.specs:
            known = ", ".join(sorted(self.specs)) or "none"
            raise NotFoundError(f"no journey named '{name}'; journeys: {known}")
        return journey_status(self.store, name, recent=recent)


def journey_status(store: OperationalStore, name: str, *, recent: int = 10) -> dict[str, Any]:
    """What the store holds about one journey (see ``JourneyRunner.status``)."""
    E = JourneyEnrollment
    with store.session() as session:
        states = dict(
            session.execute(
                select(E.state, func.count(E.id)).where(E.journey == name).group_by(E.state)
            ).all()
        )
        steps = dict(
            session.execute(
                select(E.current_step, func.count(E.id))
                .where(E.journey == name, E.state.in_((ACTIVE, WAITING)))
                .group_by(E.current_step)
            ).all()
        )
        exits = dict(
            session.execute(
                select(E.exit_reason, func.count(E.id))
                .where(E.journey == name, E.exit_reason.is_not(None))
                .group_by(E.exit_reason)
            ).all()
        )
        messages = dict(
            session.execute(
                select(QueuedMessage.status, func.count(QueuedMessage.id))
                .where(QueuedMessage.campaign == f"journey:{name}")
                .group_by(QueuedMessage.status)
            ).all()
        )
        reasons: dict[str, int] = {}
        for (detail,) in session.execute(
            select(JourneyEvent.detail).where(
                JourneyEvent.journey == name, JourneyEvent.kind == "skipped"
            )
        ).all():
            reason = str((detail or {}).get("reason", "unknown")).split(":")[0]
            reasons[reason] = reasons.get(reason, 0) + 1
        mark = session.scalar(select(JourneyWatermark).where(JourneyWatermark.journey == name))
        history = session.execute(
            select(
                JourneyEvent.customer_key,
                JourneyEvent.step,
                JourneyEvent.kind,
                JourneyEvent.at,
                JourneyEvent.detail,
            )
            .where(JourneyEvent.journey == name)
            .order_by(JourneyEvent.id.desc())
            .limit(recent)
        ).all()
    return {
        "journey": name,
        "enrollments": {str(k): int(v) for k, v in states.items()},
        "at_step": {str(k): int(v) for k, v in steps.items()},
        "exits": {str(k): int(v) for k, v in exits.items()},
        "messages": {str(k): int(v) for k, v in messages.items()},
        "skipped": reasons,
        "watermark": mark.position.isoformat() if mark and mark.position else None,
        "recent": [
            {
                "customer_key": r[0],
                "step": r[1],
                "kind": r[2],
                "at": r[3].isoformat(),
                "detail": r[4],
            }
            for r in history
        ],
    }


def _aware(now: dt.datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now ({now.isoformat()}) needs a time zone")


def _histories(
    session: Any, journey: str, keys: list[str]
) -> dict[str, list[tuple[str, str, int, dt.datetime]]]:
    """Each customer's earlier enrolments: (trigger id, state, entry, entered at)."""
    E = JourneyEnrollment
    out: dict[str, list[tuple[str, str, int, dt.datetime]]] = {}
    unique = sorted(set(keys))
    for i in range(0, len(unique), _CHUNK):
        for key, trigger_id, state, entry, entered in session.execute(
            select(E.customer_key, E.trigger_id, E.state, E.entry, E.entered_at).where(
                E.journey == journey, E.customer_key.in_(unique[i : i + _CHUNK])
            )
        ).all():
            out.setdefault(key, []).append((trigger_id, state, entry, entered))
    return out


def _may_enter(
    spec: JourneySpec,
    past: list[tuple[str, str, int, dt.datetime]],
    trigger_id: str,
    at: dt.datetime,
) -> bool:
    """The re-entry rule: never twice for one trigger, never while in the journey, and after
    leaving only as ``re_entry`` allows.
    """
    if any(p[0] == trigger_id for p in past):
        return False
    if any(p[1] in (ACTIVE, WAITING) for p in past):
        return False
    if not past:
        return True
    if spec.re_entry is ReEntry.NEVER:
        return False
    if spec.re_entry is ReEntry.AFTER:
        latest = max(p[3] for p in past)
        return at - latest >= dt.timedelta(days=spec.re_entry_days or 0)
    return True


def runner_for(
    project: Project,
    engine: Engine,
    store: OperationalStore,
    *,
    coupon_secret: bytes | None = None,
) -> JourneyRunner:
    """The runner of a project's ``journeys/`` with its templates, segments and settings."""
    root = project.root
    folder = root / "journeys"
    specs = load_journeys(folder)
    segments = {s.name: s for s in load_segment_specs(root / "segments")}
    late = load_profile_settings(root / "tags" / PROFILE_SETTINGS_FILE).include_late_loads
    return JourneyRunner(
        engine,
        store,
        specs,
        timezone=project.settings.timezone,
        settings=load_journey_settings(folder),
        templates=load_templates(root / "templates"),
        segments=segments,
        include_late_loads=late,
        currency=project.settings.currency,
        coupon_secret=coupon_secret if coupon_secret is not None else project.secret("coupons"),
    )
