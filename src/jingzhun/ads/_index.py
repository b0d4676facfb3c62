"""The audience index: every campaign's targeting evaluated once, at load or refresh time, into
in-memory sets, so a decision is a dict look-up and never a warehouse query.

Targeting compiles to a segment rule (``targeting_rule``) and runs through the segments
compiler on the warehouse (``profiles`` on their ``as_of``). The index keeps, per customer,
the campaigns they are eligible for (plus every untargeted campaign), the person's features the
CTR model reads, and the identity look-ups: a source customer id or an anonymous device id
(``identity_map``) to its ``customer_key``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from jingzhun.ads._spec import LoadedCampaign, targeting_rule
from jingzhun.core import NotFoundError, SpecError, SpecProblem
from jingzhun.engine import Engine
from jingzhun.profile import PROFILES, identity_snapshot
from jingzhun.segments import SegmentSpec, compile_segment

PERSON_COLUMNS = ("customer_key", "age_band", "gender", "interest_1", "interest_2", "interest_3")


@dataclass(frozen=True, slots=True)
class Person:
    """What the decision needs to know about a customer."""

    customer_key: str
    age_band: str | None
    gender: str | None
    interests: frozenset[str]


@dataclass
class AudienceIndex:
    """Campaigns and who is eligible for each, materialised in memory."""

    campaigns: list[LoadedCampaign]
    eligible: dict[str, tuple[int, ...]]  # customer_key -> campaign indices, sorted
    everyone: tuple[int, ...]  # untargeted campaigns: every visitor, anonymous included
    people: dict[str, Person]
    devices: dict[str, str]  # anonymous id -> customer_key
    customer_ids: dict[str, str]  # source customer id -> customer_key
    as_of: dt.date | None
    audience_sizes: dict[str, int] = field(default_factory=dict)  # None: everyone
    seconds: float = 0.0

    def campaigns_for(self, customer_key: str | None) -> tuple[int, ...]:
        """Indices of the campaigns a visitor may see (before dates, caps and budgets)."""
        if customer_key is None:
            return self.everyone
        return self.eligible.get(customer_key, self.everyone)

    def resolve(
        self, customer_key: str | None, customer_id: str | None, anonymous_id: str | None
    ) -> str | None:
        """The ``customer_key`` of a request, from whichever id it carries (or None)."""
        if customer_key:
            return customer_key if customer_key in self.people else None
        if customer_id:
            found = self.customer_ids.get(customer_id)
            if found is not None:
                return found
        if anonymous_id:
            return self.devices.get(anonymous_id)
        return None


def build_index(
    engine: Engine,
    campaigns: Mapping[str, LoadedCampaign] | list[LoadedCampaign],
    *,
    segments: Mapping[str, SegmentSpec] | None = None,
    include_late_loads: bool = False,
) -> AudienceIndex:
    """Evaluate every campaign's targeting on the warehouse and index the result.

    ``segments`` are the project's segments (for ``targeting: {segment: NAME}``). Every
    problem of every campaign (unknown fields, wrong types) is raised together as one
    ``SpecError`` naming the campaign file and line.
    """
    started = time.perf_counter()
    loaded = list(campaigns.values()) if isinstance(campaigns, Mapping) else list(campaigns)
    if not engine.exists(PROFILES) or engine.count(PROFILES) == 0:
        raise NotFoundError("no profiles yet: run 'jingzhun build' before serving ads")
    profiles = engine.read(PROFILES)
    as_of: dt.date = engine.scalar(profiles.as_of.max())
    rows = engine.execute(profiles.select(*PERSON_COLUMNS)).to_pylist()
    people = {
        str(r["customer_key"]): Person(
            str(r["customer_key"]),
            r["age_band"],
            r["gender"],
            frozenset(str(r[c]) for c in ("interest_1", "interest_2", "interest_3") if r[c]),
        )
        for r in rows
    }
    members: dict[str, list[int]] = {}
    everyone: list[int] = []
    sizes: dict[str, int] = {}
    problems: list[SpecProblem] = []
    for i, campaign in enumerate(loaded):
        try:
            rule = targeting_rule(campaign)
            if rule is None:
                everyone.append(i)
                continue
            compiled = compile_segment(
                engine,
                rule,
                as_of=as_of,
                specs=segments or {},
                include_late_loads=include_late_loads,
            )
        except SpecError as exc:
            problems.extend(
                SpecProblem(
                    campaign.path, p.line, p.field.replace("rule.all", "targeting"), p.message
                )
                for p in exc.problems
            )
            continue
        keys = engine.execute(compiled.members).column(0).to_pylist()
        sizes[campaign.spec.name] = len(keys)
        for key in keys:
            members.setdefault(str(key), []).append(i)
    if problems:
        raise SpecError(problems)
    everyone_t = tuple(everyone)
    eligible = {key: tuple(sorted([*found, *everyone_t])) for key, found in members.items()}
    snapshot = identity_snapshot(engine, as_of)
    nodes = engine.execute(snapshot.nodes).to_pylist()
    devices: dict[str, str] = {}
    customer_ids: dict[str, str] = {}
    for node in nodes:
        key, node_id = node["customer_key"], node["node_id"]
        if key is None or node_id is None:
            continue
        if node["node_kind"] == "anonymous":
            devices[str(node_id)] = str(key)
        else:
            customer_ids[str(node_id)] = str(key)
    return AudienceIndex(
        campaigns=loaded,
        eligible=eligible,
        everyone=everyone_t,
        people=people,
        devices=devices,
        customer_ids=customer_ids,
        as_of=as_of,
        audience_sizes=sizes,
        seconds=time.perf_counter() - started,
    )
