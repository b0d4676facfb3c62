"""What a marketer writes in ``journeys/NAME.yml``: ``JourneySpec`` (pydantic; every problem
reported with file, line and field).

```yaml
name: abandoned_cart
priority: 80                          # higher wins when journeys want the same customer
trigger: {event: added_to_cart}
re_entry: {after_days: 7}             # never | always | {after_days: N}
goal: {event: order_completed}        # the journey ends when it happens
quiet_hours: {start: "21:00", end: "08:00"}
steps:
  - id: bought_in_the_hour
    wait_for: {event: order_completed, within: 1h}
    on_event: end
  - id: reminder
    send: {channel: email, template: cart_reminder}
```
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from jingzhun.campaigns import Channel, OfferSpec, Purpose
from jingzhun.core import SpecError, SpecProblem, parse_model
from jingzhun.core._yaml import LocatedYaml, load_yaml
from jingzhun.journeys._schedule import Cron
from jingzhun.segments import SegmentSpec, parse_segment

# Journey and step names stay short: they are part of every message's idempotency key.
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
END = "end"  # the step target that leaves the journey
SETTINGS_FILE = "_settings.yml"


def parse_duration(value: Any) -> dt.timedelta:
    """``30m``, ``1h``, ``2d``, ``1w`` (or seconds as a number) as a ``timedelta``."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return dt.timedelta(seconds=value)
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"'{value}' is not a duration such as 30m, 1h, 2d or 1w")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _hhmm(value: str) -> str:
    if not isinstance(value, str) or not _TIME.match(value):
        raise ValueError(f"'{value}' is not a time like 09:00")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Timed(_Model):
    @field_validator("*", mode="before")
    @classmethod
    def _durations(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields.get(info.field_name)
        if field is not None and field.annotation in (dt.timedelta, dt.timedelta | None):
            return None if value is None else parse_duration(value)
        return value


# -- property filters --------------------------------------------------------------------------

Scalar = str | int | float | bool
_OPS = ("=", "!=", "<", "<=", ">", ">=")


def check_where(where: dict[str, Any]) -> dict[str, Any]:
    """Property filters: ``{name: value}``, ``{name: [a, b]}`` or ``{name: {">=": 10}}``."""
    for name, value in where.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(name)):
            raise ValueError(f"'{name}' is not a property name (letters, digits, _)")
        if isinstance(value, dict):
            for op, operand in value.items():
                if op not in _OPS:
                    raise ValueError(
                        f"'{op}' (property '{name}') is not an operator; use {', '.join(_OPS)}"
                    )
                if isinstance(operand, dict | list) or operand is None:
                    raise ValueError(f"property '{name}' {op} needs one value")
        elif isinstance(value, list):
            if not value or any(isinstance(v, dict | list) or v is None for v in value):
                raise ValueError(f"property '{name}' takes a non-empty list of values")
        elif value is None:
            raise ValueError(f"property '{name}' needs a value (or a list, or {{op: value}})")
    return where


class EventMatch(_Timed):
    """An event type with property filters (on ``sku``, ``channel`` or JSON properties)."""

    event: str = Field(min_length=1, max_length=80)
    where: dict[str, Any] = Field(default_factory=dict)

    _where = field_validator("where")(classmethod(lambda cls, v: check_where(v)))


# -- triggers ----------------------------------------------------------------------------------


class TriggerKind(StrEnum):
    """What puts a customer into a journey (the key that introduces it in YAML)."""

    EVENT = "event"
    SEGMENT = "segment"
    ANNIVERSARY = "anniversary"
    SCHEDULE = "schedule"
    LOCATION = "location"


class SegmentChange(StrEnum):
    """Entering or leaving a segment (a row of ``segment_changes``)."""

    ENTERED = "entered"
    EXITED = "exited"


class EventTrigger(EventMatch):
    """An event happened: ``{event: added_to_cart, where: {category: toys}}``."""

    lookback: dt.timedelta = Field(default=dt.timedelta(days=1))

    @property
    def kind(self) -> TriggerKind:
        """The trigger's kind."""
        return TriggerKind.EVENT


class SegmentTrigger(_Timed):
    """A customer entered (or left) a segment at a segment build."""

    segment: str
    change: SegmentChange = SegmentChange.ENTERED
    lookback: dt.timedelta = Field(default=dt.timedelta(days=1))

    @property
    def kind(self) -> TriggerKind:
        """The trigger's kind."""
        return TriggerKind.SEGMENT


class AnniversaryTrigger(_Timed):
    """A date column of the profile comes round again (``birth_date``: a birthday);
    ``days_before`` enrols that many days ahead. 29 February counts on 28 February.
    """

    anniversary: str = "birth_date"
    days_before: int = Field(default=0, ge=0, le=60)
    lookback: dt.timedelta = Field(default=dt.timedelta(days=1))

    @property
    def kind(self) -> TriggerKind:
        """The trigger's kind."""
        return TriggerKind.ANNIVERSARY


class Schedule(_Model):
    """``{daily_at: "09:00"}`` or ``{cron: "0 9 * * MON"}`` in the project's time zone."""

    daily_at: str | None = None
    cron: str | None = None

    @field_validator("daily_at")
    @classmethod
    def _at(cls, value: str | None) -> str | None:
        return None if value is None else _hhmm(value)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            Cron.parse(value)
        return value

    @model_validator(mode="after")
    def _one(self) -> Schedule:
        if (self.daily_at is None) == (self.cron is None):
            raise ValueError("give one of daily_at (09:00) or cron (0 9 * * MON)")
        return self

    def to_cron(self) -> Cron:
        """The schedule as a cron expression."""
        if self.cron is not None:
            return Cron.parse(self.cron)
        hour, minute = (int(x) for x in str(self.daily_at).split(":"))
        return Cron.parse(f"{minute} {hour} * * *")


class ScheduleTrigger(_Timed):
    """At scheduled times, everyone in ``audience`` (a segment; everyone when omitted)."""

    schedule: Schedule
    audience: str | None = None
    lookback: dt.timedelta = Field(default=dt.timedelta(days=1))

    @property
    def kind(self) -> TriggerKind:
        """The trigger's kind."""
        return TriggerKind.SCHEDULE


class Store(_Model):
    """A shop: id, name and position (WGS 84 degrees)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    name: str = ""
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Location(_Model):
    """Which event carries the position (``lat`` and ``lon`` properties) and how near counts."""

    event: str = "location"
    radius_m: float = Field(default=200, gt=0, le=50_000)


class LocationTrigger(_Timed):
    """An event with ``lat``/``lon`` within ``radius_m`` metres (haversine) of a store."""

    location: Location
    lookback: dt.timedelta = Field(default=dt.timedelta(hours=1))

    @property
    def kind(self) -> TriggerKind:
        """The trigger's kind."""
        return TriggerKind.LOCATION


def _kind_of(value: Any, kinds: tuple[str, ...]) -> str | None:
    if isinstance(value, dict):
        for kind in kinds:
            if kind in value:
                return kind
        if "birthday" in value:
            return "anniversary"
    if isinstance(value, BaseModel):
        return str(getattr(value, "kind", None) or "") or None
    return None


def _trigger_kind(value: Any) -> str | None:
    # "location" first: a location trigger names its event inside, an event trigger at the top
    return _kind_of(value, ("location", "event", "segment", "anniversary", "schedule"))


def _birthday(value: Any) -> Any:
    if isinstance(value, dict) and "birthday" in value:
        rest = {k: v for k, v in value.items() if k != "birthday"}
        if value["birthday"] is not True:
            raise ValueError("write 'birthday: true' (or anniversary: birth_date)")
        return {"anniversary": "birth_date", **rest}
    return value


Trigger = Annotated[
    Annotated[EventTrigger, Tag("event")]
    | Annotated[SegmentTrigger, Tag("segment")]
    | Annotated[AnniversaryTrigger, Tag("anniversary")]
    | Annotated[ScheduleTrigger, Tag("schedule")]
    | Annotated[LocationTrigger, Tag("location")],
    Discriminator(
        _trigger_kind,
        custom_error_type="trigger_kind",
        custom_error_message="a trigger starts with one of event, segment, anniversary "
        "(or birthday: true), schedule, location",
    ),
]


# -- steps -------------------------------------------------------------------------------------


class StepKind(StrEnum):
    """What a step does (the key that introduces it in YAML)."""

    WAIT = "wait"
    WAIT_UNTIL = "wait_until"
    WAIT_FOR = "wait_for"
    BRANCH = "branch"
    SPLIT = "split"
    SEND = "send"
    TAG = "tag"
    WEBHOOK = "webhook"
    EXIT = "exit"


class _Step(_Timed):
    id: str
    next: str | None = None  # the step after this one (default: the next in the list)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not NAME.match(value) or value == END:
            raise ValueError(
                f"step id '{value}' must be lower-case letters, digits and _ (up to 40), "
                f"not '{END}'"
            )
        return value

    @property
    def kind(self) -> StepKind:
        """The step's kind."""
        raise NotImplementedError

    def targets(self) -> list[str]:
        """Step ids this step may go to explicitly."""
        return [self.next] if self.next else []


class WaitStep(_Step):
    """Wait a while: ``wait: 2d``."""

    wait: dt.timedelta

    @property
    def kind(self) -> StepKind:
        """The step's kind."""
        return StepKind.WAIT


class WaitUntilStep(_Step):
    """Wait until a local time of day in the customer's time zone: ``wait_until: "09:00"``."""

    wait_until: str

    _at = field_validator("wait_until")(classmethod(lambda cls, v: _hhmm(v)))

    @property
    def kind(self) -> StepKind:
        """The step's kind."""
        return StepKind.WAIT_UNTIL

    def time(self) -> dt.time:
        """The time of day."""
        return dt.time.fromisoformat(self.wait_until)


class WaitFor(EventMatch):
    """An event to wait for, and for how long."""

    within: dt.timedelta


class WaitForStep(_Step):
    """Wait for an event for at most ``within``; go to ``on_event`` when it happens (the
    step after this one by default), else to ``on_timeout`` (also the next by default).
    """

    wait_for: WaitFor
    on_event: str | None = None
    on_timeout: str | None = None

    @property
    def kind(self) -> StepKind:
        """The step's kind."""
        return StepKind.WAIT_FOR

    def targets(self) -> list[str]:
        """Step ids this step may go to explicitly."""
        return [t for t in (self.next, self.on_event, self.on_timeout) if t]


class Case(_Model):
    """One branch: a rule in the segment language (a condition text, ``{segment: NAME}``,
    an event in a window, ...) and where to go when it holds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    condition: Any = Field(alias="if")
    goto: str


class BranchStep(_Step):
    """The first case whose rule the customer meets; ``else`` otherwise (default: next)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    branch: list[Case] = Field(min_length=1)
    otherwise: str | None = Field(default=None, alias="else")

    @property
    def kind(self) -> StepKind:
        """The step's kind."""
        return StepKind.BRANCH

    def targets(self) -> list[str]:
        """Step ids this step may go to explicitly."""
        return [c.goto for c in self.branch] + [t for t in (self.next, self.otherwise) if t]


class Arm(_Model):
    """One arm of a random split."""

    share: float = Field(gt=0, le=1)
    goto: str


class SplitStep(_Step):
    """A seeded random split: the same customer always takes the same arm."""

    split: list[Arm] = Field(min_length=2)
    seed: int = 0

    @model_validator(mode="after")
    def _shares(self) -> SplitStep:
        total = sum(a.share for a in self.split)
        if abs(total - 1) > 1e-9:
            raise ValueError(f"split shares add up to {total:g}, not 1")
        return self

    @property
    def kind(self) -> StepKind:
        """The step's kind."""
        return StepKind.SPLIT

    def targets(self) -> list[str]:
        """Step ids this step may go to explicitly."""
        return [a.goto for a in self.split] + ([self.next] if self.next else [])


class Content(_Model):
    """Message content written in the journey: Jinja2 parts as in ``templates/*.yml``."""

    subject: str | None = None
    html: str | None = None
    text: str | None = None
    sms: str | None = None
    defaults: dict[str, str] = Field(default_factory=dict)


class ConsentFor(_Model):
    """Whose consent a send needs: the purpose and channel (default: the send's channel)."""

    purpose: Purpose = Purpose.MARKETING
    channel: Channel | None = None


class Send(_Model):
    """A message on a channel with a template (``templates/NAME.yml``) or inline content,
    and optionally an offer with a personal coupon code.
    """

    channel: Channel
    template: str | None = None
    content: Content | None = None
    offer: OfferSpec | None = None
    consent: ConsentFor = ConsentFor()

    @model_validator(mode="after")
    def _content(self) -> Send:
        if (self.template is None) == (self.content is None):
            raise ValueError("give one of template (a templates/ name) or content")
        return self


class SendStep(_Step):
    """Queue a message for delivery (once per journey step, customer and channel)."""

    send: Send

    @property
    def kind(self) -> StepKind:
        """The step's kind."""
        return StepKind.SEND


class TagValue(_Model):
    """A tag set on the customer (``journey_tags`` in the operational store)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,79}$")
    value: str = "true"


class TagStep(_Step):
    """Set a tag: ``tag: {name: cart_reminded, value: "yes"}``."""

    tag: TagValue

    @property
    def kind(self) -> StepKind:
        """The step's kind."""
        return StepKind.TAG


class Webhook(_Model):
    """A signed POST to the project's webhook (``delivery.yml``): an event name, a text
    (Jinja2, e.g. talking points for sales) and fixed data.
    """

    event: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,79}$")
    text: str = ""
    data: dict[str, Scalar] = Field(default_factory=dict)
    consent: ConsentFor = ConsentFor(channel=Channel.WEBHOOK)


class WebhookStep(_Step):
    """Call the webhook (a send on the ``webhook`` channel, delivered by the worker)."""

    webhook: Webhook

    @property
    def kind(self) -> StepKind:
        """The step's kind."""
        return StepKind.WEBHOOK


class ExitStep(_Step):
    """Leave the journey with a reason: ``exit: converted``."""

    exit: str = Field(pattern=r"^[a-z][a-z0-9_ ]{0,39}$")

    @property
    def kind(self) -> StepKind:
        """The step's kind."""
        return StepKind.EXIT


def _step_kind(value: Any) -> str | None:
    return _kind_of(value, tuple(k.value for k in StepKind))


Step = Annotated[
    Annotated[WaitStep, Tag("wait")]
    | Annotated[WaitUntilStep, Tag("wait_until")]
    | Annotated[WaitForStep, Tag("wait_for")]
    | Annotated[BranchStep, Tag("branch")]
    | Annotated[SplitStep, Tag("split")]
    | Annotated[SendStep, Tag("send")]
    | Annotated[TagStep, Tag("tag")]
    | Annotated[WebhookStep, Tag("webhook")]
    | Annotated[ExitStep, Tag("exit")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step has an id and one of " + ", ".join(k.value for k in StepKind),
    ),
]


# -- the journey -------------------------------------------------------------------------------


class ReEntry(StrEnum):
    """Whether a customer may enter again after leaving."""

    NEVER = "never"
    ALWAYS = "always"  # whenever they are not in the journey already
    AFTER = "after"  # ``{after_days: N}``: N days after they last entered


class FrequencyCaps(_Model):
    """Messages per customer in a day / in 7 days across every journey and campaign
    (per channel unless ``per_channel: false``), counted in the delivery queue.
    """

    per_day: int | None = Field(default=None, ge=1)
    per_week: int | None = Field(default=None, ge=1)
    per_channel: bool = True


class QuietHours(_Model):
    """No message between ``start`` and ``end`` in the customer's local time."""

    start: str = "21:00"
    end: str = "08:00"

    _t = field_validator("start", "end")(classmethod(lambda cls, v: _hhmm(v)))

    def times(self) -> tuple[dt.time, dt.time]:
        """Start and end as times."""
        return dt.time.fromisoformat(self.start), dt.time.fromisoformat(self.end)


class JourneySettings(_Model):
    """``journeys/_settings.yml``: rules for every journey (a journey may set its own)."""

    frequency_caps: FrequencyCaps = FrequencyCaps()
    quiet_hours: QuietHours | None = None
    batch_size: int = Field(default=5_000, ge=1, le=100_000)


class JourneySpec(_Timed):
    """One journey as written."""

    name: str
    description: str = ""
    enabled: bool = True
    priority: int = Field(default=50, ge=0, le=1000)
    trigger: Trigger
    audience: str | None = None  # only members of this segment may enter
    re_entry: ReEntry = ReEntry.NEVER
    re_entry_days: int | None = Field(default=None, ge=1, le=3650)
    goal: EventMatch | None = None
    frequency_caps: FrequencyCaps | None = None
    quiet_hours: QuietHours | None = None
    stores: list[Store] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    file: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "trigger" in data:
            data["trigger"] = _birthday(data["trigger"])
        entry = data.get("re_entry")
        if isinstance(entry, dict):
            unknown = set(entry) - {"after_days"}
            if unknown or "after_days" not in entry:
                raise ValueError("re_entry is never, always or {after_days: N}")
            data["re_entry"] = "after"
            data["re_entry_days"] = entry["after_days"]
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"'{value}' must be lower-case letters, digits and _ (up to 40)")
        return value

    @model_validator(mode="after")
    def _graph(self) -> JourneySpec:
        ids = [s.id for s in self.steps]
        seen: set[str] = set()
        for step_id in ids:
            if step_id in seen:
                raise ValueError(f"step id '{step_id}' is used twice")
            seen.add(step_id)
        for step in self.steps:
            for target in step.targets():
                if target != END and target not in seen:
                    raise ValueError(
                        f"step '{step.id}' goes to '{target}', which is no step; steps: "
                        f"{', '.join(ids)} (or '{END}')"
                    )
        if self.re_entry is ReEntry.AFTER and self.re_entry_days is None:
            raise ValueError("re_entry after needs {after_days: N}")
        if isinstance(self.trigger, LocationTrigger) and not self.stores:
            raise ValueError("a location trigger needs stores: [{id, lat, lon}]")
        _no_instant_loop(self)
        return self

    def step(self, step_id: str) -> Any:
        """A step by id."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def after(self, step_id: str) -> str:
        """The step after ``step_id`` in the list (``end`` after the last)."""
        ids = [s.id for s in self.steps]
        i = ids.index(step_id)
        return ids[i + 1] if i + 1 < len(ids) else END

    def fingerprint(self) -> str:
        """A hash of the spec as validated (an enrolment records the version it entered)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    @property
    def source_file(self) -> Path:
        """Where the journey was read (``journeys/NAME.yml`` when made in Python)."""
        return self.file or Path("journeys") / f"{self.name}.yml"


_WAITS = (StepKind.WAIT, StepKind.WAIT_UNTIL, StepKind.WAIT_FOR)


def _no_instant_loop(spec: JourneySpec) -> None:
    """A cycle of steps without a wait would spin forever within one run."""
    nexts: dict[str, list[str]] = {}
    for step in spec.steps:
        if step.kind in _WAITS or step.kind is StepKind.EXIT:
            nexts[step.id] = []
            continue
        targets = step.targets()
        implicit = spec.after(step.id)
        if step.kind in (StepKind.BRANCH, StepKind.SPLIT):
            targets = [*targets, implicit] if step.kind is StepKind.BRANCH else targets
        elif not step.next:
            targets = [implicit]
        nexts[step.id] = [t for t in targets if t != END]
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in nexts.get(node, []):
            if state.get(target) == 1:
                cycle = " → ".join([*path[path.index(target) :], target])
                raise ValueError(f"steps loop without a wait: {cycle}")
            if state.get(target) is None:
                visit(target, [*path, target])
        state[node] = 2

    for step in spec.steps:
        if step.id not in state:
            visit(step.id, [step.id])


# -- loading -----------------------------------------------------------------------------------


def _branch_rules(
    spec: JourneySpec, doc: LocatedYaml | None
) -> tuple[dict[tuple[str, int], SegmentSpec], list[SpecProblem]]:
    """Every branch condition parsed by the segment rule language (lines from the file)."""
    rules: dict[tuple[str, int], SegmentSpec] = {}
    problems: list[SpecProblem] = []
    if doc is not None:
        # the segment parser names a rule's place "rule"; in a journey it is a case's "if"
        lines = dict(doc.lines)
        for loc, line in doc.lines.items():
            if len(loc) >= 5 and loc[0] == "steps" and loc[2] == "branch" and loc[4] == "if":
                lines[(*loc[:4], "rule", *loc[5:])] = line
        doc = LocatedYaml(doc.path, doc.data, lines)
    for i, step in enumerate(spec.steps):
        if not isinstance(step, BranchStep):
            continue
        for j, case in enumerate(step.branch):
            base = ("steps", i, "branch", j, "if")
            rule, found = parse_segment(
                {"name": f"{spec.name}__{step.id}_{j}", "rule": case.condition},
                file=spec.source_file,
                located=doc,
                base=base[:-1],
            )
            # parse_segment names the rule's location "...rule"; the journey calls it "if"
            for p in found:
                name = re.sub(r"\[(\d+)\]", r".\1", p.field).replace(".rule", ".if", 1)
                problems.append(SpecProblem(p.file, p.line, name, p.message))
            if rule is not None:
                rules[(step.id, j)] = rule
    return rules, problems


def branch_rules(spec: JourneySpec) -> dict[tuple[str, int], SegmentSpec]:
    """The segment rules of a journey's branches, by (step id, case index)."""
    rules, problems = _branch_rules(spec, None)
    if problems:
        raise SpecError(problems)
    return rules


_TRIGGER_TAGS = frozenset(k.value for k in TriggerKind)
_STEP_TAGS = frozenset(k.value for k in StepKind)


def _without_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A pydantic location without the union tags it inserts (``trigger.event.where`` is
    ``trigger.where`` in the file; ``steps.0.wait.wait`` is ``steps.0.wait``).
    """
    if len(loc) >= 2 and loc[0] == "trigger" and loc[1] in _TRIGGER_TAGS:
        return (loc[0], *loc[2:])
    if len(loc) >= 3 and loc[0] == "steps" and loc[2] in _STEP_TAGS:
        return (*loc[:2], *loc[3:])
    return loc


def _validate(doc: LocatedYaml) -> tuple[JourneySpec | None, list[SpecProblem]]:
    if not isinstance(doc.data, dict):
        return None, [SpecProblem(doc.path, 1, "", "must be a YAML mapping of field: value")]
    try:
        return JourneySpec.model_validate(doc.data), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _without_tags(tuple(err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "is not a known field here"
            name = ".".join(str(p) for p in loc)
            problems.append(SpecProblem(doc.path, doc.line_of(loc), name, message))
        return None, problems


def parse_journey(
    data: Any, *, file: Path, doc: LocatedYaml | None = None
) -> tuple[JourneySpec | None, list[SpecProblem]]:
    """A ``JourneySpec`` from its YAML/JSON structure, with every problem found."""
    located = doc or LocatedYaml(file, data, {})
    if isinstance(data, dict) and "name" not in data:
        data = {"name": file.stem, **data}
        located = LocatedYaml(file, data, located.lines)
    spec, problems = _validate(located)
    if spec is None:
        return None, problems
    spec = spec.model_copy(update={"file": file})
    _, rule_problems = _branch_rules(spec, doc)
    return (None, rule_problems) if rule_problems else (spec, [])


def load_journey(path: Path) -> JourneySpec:
    """One journey file; every problem at once as a ``SpecError`` with file and line."""
    doc = load_yaml(path)
    spec, problems = parse_journey(doc.data, file=path, doc=doc)
    if problems or spec is None:
        raise SpecError(problems or [SpecProblem(path, 1, "", "not a journey")])
    return spec


def load_journeys(folder: Path) -> dict[str, JourneySpec]:
    """Every ``journeys/*.yml`` (files starting with ``_`` are skipped); names are unique."""
    specs: dict[str, JourneySpec] = {}
    problems: list[SpecProblem] = []
    if not folder.is_dir():
        return specs
    files = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    for path in files:
        if path.name.startswith("_"):
            continue
        try:
            spec = load_journey(path)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        if spec.name in specs:
            other = specs[spec.name].source_file
            problems.append(SpecProblem(path, 1, "name", f"'{spec.name}' is also {other}"))
            continue
        specs[spec.name] = spec
    if problems:
        raise SpecError(problems)
    return specs


def load_journey_settings(folder: Path) -> JourneySettings:
    """``journeys/_settings.yml``, or the defaults when there is none."""
    path = folder / SETTINGS_FILE
    if not path.is_file():
        return JourneySettings()
    doc = load_yaml(path)
    settings, problems = parse_model(JourneySettings, doc)
    if settings is None:
        raise SpecError(problems)
    return settings
