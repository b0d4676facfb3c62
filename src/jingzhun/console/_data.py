"""What the console's pages show, read through the workspace and masked for the principal.

Every function takes the open ``Workspace`` and the logged-in ``Principal`` and returns plain
values for a template. Personal data is masked for principals without ``pii:read`` and every
count of customers, orders or events in a breakdown goes through ``small_count``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from jingzhun.campaigns import SEND_PLAN, CampaignSpec
from jingzhun.console import _charts as charts
from jingzhun.core import (
    JingzhunError,
    NotFoundError,
    Principal,
    RefusedError,
    SpecError,
    SpecProblem,
    small_count,
)
from jingzhun.measure import Overview, campaign_kpis, plot_variant_lift
from jingzhun.models import SCORES, evaluation_from_metrics, write_model_report
from jingzhun.profile import PROFILES, find_customer_key, mask_attribute
from jingzhun.segments import (
    SEGMENT_MEMBERS,
    SEGMENT_SNAPSHOTS,
    SegmentSpec,
    count_members,
    preview,
)
from jingzhun.store import CampaignPlan, Delivery, QueuedMessage
from jingzhun.workspace import Workspace

SEARCH_LIMIT = 50
PREVIEW_LIMIT = 20
DRAFT_NAME = "console_draft"  # the name a rule is counted under before it is saved
# what a search result shows, in this order
SEARCH_COLUMNS = (
    "customer_key",
    "first_name",
    "last_name",
    "email",
    "phone",
    "city",
    "country",
    "rfm_segment",
    "lifecycle_stage",
    "orders",
    "revenue",
)


def shown(value: int, principal: Principal) -> str:
    """A count as the principal may see it: ``1,234``, ``0`` or ``<5``."""
    count = small_count(int(value), principal)
    return f"{count:,}" if isinstance(count, int) else count


def money(value: Decimal | float | None, currency: str) -> str:
    """``GBP 1,234.50``; an en dash for no value."""
    if value is None:
        return "–"
    return f"{currency} {float(value):,.2f}"


def plain(value: Any) -> Any:
    """A value as a table cell prints it: dates as ISO text, decimals as numbers."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


# -- overview -------------------------------------------------------------------------------------


def overview_page(ws: Workspace, principal: Principal) -> dict[str, Any]:
    """KPI tiles and charts of ``ws.measure.overview()``."""
    figures: Overview = ws.measure.overview()
    currency = figures.currency
    aov = figures.average_order_value
    tiles = [
        ("Customers", shown(figures.customers, principal), "customer records loaded"),
        (
            "Orders",
            shown(figures.orders, principal),
            f"{shown(figures.returns, principal)} returns",
        ),
        ("Revenue", money(figures.revenue, currency), "gross of sales lines"),
        ("Net revenue", money(figures.net_revenue, currency), "after returns"),
        ("Average order", money(aov, currency), "gross revenue per order"),
        ("Returned value", money(figures.returns_value, currency), "return lines"),
    ]
    if figures.events is not None:
        tiles.append(("Events", shown(figures.events, principal), "web and app events"))
    period = (
        f"{figures.first_order_date} to {figures.last_order_date}"
        if figures.first_order_date
        else "no orders yet"
    )
    cards: list[dict[str, Any]] = []
    months = figures.by_month
    if months:
        cards.append(
            {
                "id": "chart-revenue-by-month",
                "title": "Revenue and orders by month",
                "figure": charts.money_and_count_by_month(
                    [m.month for m in months],
                    [float(m.revenue) for m in months],
                    [m.orders for m in months],
                    principal,
                    money_name=f"Revenue ({currency})",
                    count_name="Orders",
                ),
            }
        )
    if any(b.count for b in figures.customers_by_orders):
        cards.append(
            {
                "id": "chart-customers-by-orders",
                "title": "Customers by number of orders",
                "figure": charts.count_bars(
                    [b.name for b in figures.customers_by_orders],
                    [b.count for b in figures.customers_by_orders],
                    principal,
                    value_name="Customers",
                    axis_name="Orders per customer",
                ),
            }
        )
    if figures.rfm_segments:
        cards.append(
            {
                "id": "chart-rfm-segments",
                "title": "Customers by RFM segment",
                "figure": charts.count_bars(
                    [s.name for s in figures.rfm_segments],
                    [s.count for s in figures.rfm_segments],
                    principal,
                    value_name="Customers",
                    axis_name="RFM segment",
                    horizontal=True,
                ),
            }
        )
    rankings = []
    for title, entries in (
        (f"Top {figures.top_ranked_by.value} by revenue", figures.top_categories),
        ("Top countries by revenue", figures.top_countries),
    ):
        if not entries:
            continue
        rankings.append(
            {
                "id": "chart-" + re.sub(r"[^a-z]+", "-", title.lower()).strip("-"),
                "title": title,
                "figure": charts.ranking(
                    [e.name for e in entries],
                    [float(e.revenue) for e in entries],
                    money_name=f"Revenue ({currency})",
                ),
                "rows": [
                    (e.name, money(e.revenue, currency), shown(e.orders, principal))
                    for e in entries
                ],
            }
        )
    if figures.events_by_type:
        top = figures.events_by_type[:10]
        cards.append(
            {
                "id": "chart-events-by-type",
                "title": "Events by type",
                "figure": charts.count_bars(
                    [e.name for e in top],
                    [e.count for e in top],
                    principal,
                    value_name="Events",
                    axis_name="Event type",
                    horizontal=True,
                ),
            }
        )
    return {"tiles": tiles, "period": period, "cards": cards, "rankings": rankings}


# -- customers ------------------------------------------------------------------------------------


def _masked_row(row: dict[str, Any], principal: Principal) -> dict[str, Any]:
    return {
        name: plain(value if principal.sees_pii else mask_attribute(name, value))
        for name, value in row.items()
    }


def search_customers(ws: Workspace, query: str, principal: Principal) -> dict[str, Any]:
    """Customers matching ``query``, masked for the principal.

    Everybody may look a customer up by an exact id: a ``customer_key``, a source customer or
    device id, a whole e-mail address or a phone number (what the 360° view accepts). Only
    principals with ``pii:read`` also search inside names, e-mail addresses and phone numbers:
    a partial search would let others read personal data back one letter at a time.
    """
    text = query.strip()
    if not text:
        return {"query": "", "rows": [], "note": None, "partial": principal.sees_pii}
    engine = ws.engine
    as_of = ws.segments.as_of()
    keys: list[str] = []
    note = None
    try:
        keys.append(find_customer_key(engine, text, as_of))
    except NotFoundError as exc:
        note = str(exc)
    profiles = engine.read(PROFILES)
    if principal.sees_pii and len(text) >= 2:
        needle = text.lower()
        full_name = profiles.first_name.fill_null("").concat(" ", profiles.last_name.fill_null(""))
        found = (
            profiles.email.lower().contains(needle).fill_null(False)
            | full_name.lower().contains(needle)
            | profiles.customer_key.contains(text)
        )
        digits = re.sub(r"[^0-9]", "", text)
        if len(digits) >= 4 and not re.search(r"[A-Za-z@]", text):
            found = found | profiles.phone.re_replace(r"[^0-9]", "").contains(digits).fill_null(
                False
            )
        matches = engine.execute(
            profiles.filter(found)
            .select("customer_key")
            .order_by("customer_key")
            .limit(SEARCH_LIMIT + 1)  # one more than shown says the list was cut
        )
        keys += [k for k in matches.column("customer_key").to_pylist() if k not in keys]
        if keys:
            note = None
    rows: list[dict[str, Any]] = []
    if keys:
        table = engine.execute(
            profiles.filter(profiles.customer_key.isin(keys[:SEARCH_LIMIT])).select(*SEARCH_COLUMNS)
        ).to_pylist()
        order = {k: i for i, k in enumerate(keys)}
        table.sort(key=lambda r: order[r["customer_key"]])
        rows = [_masked_row(r, principal) for r in table]
    return {
        "query": text,
        "rows": rows,
        "note": note,
        "partial": principal.sees_pii,
        "truncated": len(keys) > SEARCH_LIMIT,
    }


def customer_page(ws: Workspace, customer: str, principal: Principal) -> dict[str, Any]:
    """The 360° view with the customer's segments and scores."""
    view = ws.profiles.show(customer, mask_pii=not principal.sees_pii)
    key = str(view["customer_key"])
    engine = ws.engine
    segments: list[dict[str, Any]] = []
    if engine.exists(SEGMENT_MEMBERS):
        members = engine.read(SEGMENT_MEMBERS)
        segments = [
            {k: plain(v) for k, v in r.items()}
            for r in engine.execute(
                members.filter(members.customer_key == key)
                .select("segment", "since")
                .order_by("segment")
            ).to_pylist()
        ]
    scores: list[dict[str, Any]] = []
    if engine.exists(SCORES):
        table = engine.read(SCORES)
        scores = [
            {k: plain(v) for k, v in r.items()}
            for r in engine.execute(
                table.filter(table.customer_key == key)
                .select("score_name", "score", "model_id", "as_of")
                .order_by("score_name")
            ).to_pylist()
        ]
    return {"view": view, "segments": segments, "scores": scores}


# -- segments -------------------------------------------------------------------------------------


def _problem(field: str, message: str) -> SpecError:
    return SpecError([SpecProblem(Path("<console rule>"), None, field, message)])


def parse_rule_text(text: str) -> Any:
    """The rule a builder's text holds: YAML or JSON for a rule tree, else a text condition.

    A whole segment file pasted in (``name``, ``description``, ``rule``) gives its rule.
    """
    stripped = text.strip()
    if not stripped:
        raise _problem("rule", "write a rule: a condition such as frequency >= 2, or YAML/JSON")
    try:
        data = yaml.safe_load(stripped)
    except yaml.YAMLError:
        return stripped  # not YAML: a text condition, which the rule parser checks
    if isinstance(data, dict) and "rule" in data and set(data) <= {"name", "description", "rule"}:
        return data["rule"]
    if isinstance(data, dict | list):
        return data
    return data if isinstance(data, str) else stripped


def rule_text(spec: SegmentSpec) -> str:
    """The rule of a stored segment as YAML, read back from its file."""
    if spec.file is not None and spec.file.is_file():
        data = yaml.safe_load(spec.file.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "rule" in data:
            rule = data["rule"]
            if isinstance(rule, str):
                return rule
            return yaml.safe_dump(rule, sort_keys=False, allow_unicode=True).strip()
    return str(spec.rule)


def draft_count(ws: Workspace, text: str, principal: Principal) -> dict[str, Any]:
    """The live count of a rule typed in the builder (never an exact small count)."""
    spec = ws.segments.from_rule(DRAFT_NAME, parse_rule_text(text))
    compiled = ws.segments.compile(spec)
    count = count_members(ws.engine, compiled)
    visible = small_count(count, principal)
    return {
        "ok": True,
        "count": visible if isinstance(visible, int) else None,
        "display": f"{visible:,}" if isinstance(visible, int) else visible,
        "as_of": ws.segments.as_of().isoformat(),
        "sql": compiled.sql(),
    }


def draft_explain(ws: Workspace, text: str, customer: str) -> dict[str, Any]:
    """Why a customer is in or out of the rule typed in the builder (values masked)."""
    spec = ws.segments.from_rule(DRAFT_NAME, parse_rule_text(text))
    explanation = ws.segments.explain(spec, customer.strip())
    return {"ok": True, **explanation.to_dict()}


def _last_builds(ws: Workspace) -> dict[str, dict[str, Any]]:
    """Each segment's newest snapshot: members, entries and exits at the last build."""
    engine = ws.engine
    if not engine.exists(SEGMENT_SNAPSHOTS):
        return {}
    t = engine.read(SEGMENT_SNAPSHOTS)
    rows = engine.execute(
        t.select("segment", "as_of", "built_at", "members", "entered", "exited").order_by(
            ["segment", "built_at"]
        )
    ).to_pylist()
    return {str(r["segment"]): r for r in rows}  # the newest of each segment comes last


def segment_list(ws: Workspace, principal: Principal) -> list[dict[str, Any]]:
    """Every segment with its description and its members at the last build.

    Counting every rule live takes a second or more per segment, so the list shows the last
    build's counts (``segment_snapshots``) and counts live only the segments no build has
    seen yet (saved since); a segment's own page always counts live.
    """
    rows = []
    root = ws.project.root
    builds = _last_builds(ws)
    for name, spec in ws.segments.specs().items():
        build = builds.get(name)
        if build is not None:
            count, counted = int(build["members"]), f"build of {plain(build['as_of'])}"
            changes = (
                f"+{shown(int(build['entered']), principal)} / "
                f"−{shown(int(build['exited']), principal)}"
            )
        else:
            count = count_members(ws.engine, ws.segments.compile(spec))
            counted, changes = "now (not built yet)", ""
        rows.append(
            {
                "name": name,
                "description": spec.description,
                "count": shown(count, principal),
                "counted": counted,
                "changes": changes,
                "file": str(spec.file.relative_to(root)) if spec.file else "",
            }
        )
    return rows


def segment_page(ws: Workspace, name: str, principal: Principal) -> dict[str, Any]:
    """One segment: rule, count, first members (masked; hidden when fewer than k) and SQL."""
    spec = ws.segments.spec(name)
    compiled = ws.segments.compile(spec)
    count = count_members(ws.engine, compiled)
    visible = small_count(count, principal)
    members: list[dict[str, Any]] = []
    if isinstance(visible, int) and visible:
        table = preview(ws.engine, compiled, limit=PREVIEW_LIMIT, mask_pii=not principal.sees_pii)
        members = [{k: plain(v) for k, v in r.items()} for r in table.to_pylist()]
    return {
        "spec": spec,
        "rule": rule_text(spec),
        "count": shown(count, principal),
        "hidden": not isinstance(visible, int),
        "members": members,
        "columns": list(members[0]) if members else [],
        "sql": compiled.sql(),
        "as_of": ws.segments.as_of().isoformat(),
        "file": str(spec.file.relative_to(ws.project.root)) if spec.file else "",
    }


def save_segment(ws: Workspace, name: str, description: str, text: str) -> Path:
    """Write ``segments/<name>.yml`` from the builder's rule; never overwrites a segment.

    The rule is checked (shape, fields, events, references) before the file is written; the
    new file is then loaded with every other segment and removed again if that fails, so the
    folder always loads.
    """
    rule = parse_rule_text(text)
    spec = ws.segments.from_rule(name.strip(), rule, description.strip())
    existing = ws.segments.specs()
    if spec.name in existing:
        where = existing[spec.name].file
        raise RefusedError(
            f"a segment named '{spec.name}' exists already ({where}); pick another name"
        )
    ws.segments.compile(spec)
    folder = ws.segments.folder
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{spec.name}.yml"
    document = {"name": spec.name, "description": spec.description, "rule": rule}
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(body)
        try:
            os.link(temporary, target)  # fails when the file exists: nothing is overwritten
        except FileExistsError:
            raise RefusedError(
                f"{target} exists already; pick another name or remove the file"
            ) from None
    finally:
        os.unlink(temporary)
    try:
        ws.segments.compile(spec.name)
    except JingzhunError:
        target.unlink()
        raise
    return target


# -- campaigns ------------------------------------------------------------------------------------


def _latest(ws: Workspace, name: str) -> CampaignPlan | None:
    try:
        return ws.campaigns.latest_plan(name)
    except NotFoundError:
        return None


def campaign_list(ws: Workspace, principal: Principal) -> list[dict[str, Any]]:
    """Every campaign with its latest plan's status and size."""
    rows = []
    for name, spec in sorted(ws.campaigns.specs().items()):
        plan = _latest(ws, name)
        figures = plan.figures if plan is not None else {}
        rows.append(
            {
                "name": name,
                "description": spec.description,
                "audience": spec.audience,
                "channel": spec.channel.value,
                "status": plan.status if plan is not None else "not planned",
                "contacts": shown(figures["contacts"], principal) if "contacts" in figures else "–",
                "created_at": plain(plan.created_at) if plan is not None else "",
            }
        )
    return rows


def _counts_by_status(ws: Workspace, plan: CampaignPlan) -> tuple[dict[str, int], dict[str, int]]:
    with ws.store.session() as session:
        queued = dict(
            session.execute(
                select(QueuedMessage.status, func.count())
                .where(QueuedMessage.plan_id == plan.plan_id)
                .group_by(QueuedMessage.status)
            ).all()
        )
        keys = select(QueuedMessage.id).where(QueuedMessage.plan_id == plan.plan_id)
        delivered = dict(
            session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.queue_id.in_(keys))
                .group_by(Delivery.status)
            ).all()
        )
    return {str(k): int(v) for k, v in queued.items()}, {
        str(k): int(v) for k, v in delivered.items()
    }


def _plan_groups(ws: Workspace, plan: CampaignPlan) -> Counter[str]:
    engine = ws.engine
    if not engine.exists(SEND_PLAN):
        return Counter()
    rows = engine.read(SEND_PLAN)
    mine = rows.filter(rows.plan_id == plan.plan_id)
    counted = engine.execute(mine.group_by("group").agg(n=mine.count())).to_pylist()
    return Counter({str(r["group"]): int(r["n"]) for r in counted})


def campaign_page(ws: Workspace, name: str, principal: Principal) -> dict[str, Any]:
    """A campaign: its spec, the latest plan's waterfall and figures, and its results."""
    spec: CampaignSpec = ws.campaigns.spec(name)
    plan = _latest(ws, name)
    out: dict[str, Any] = {"spec": spec, "plan": plan, "currency": ws.project.settings.currency}
    if plan is None:
        return out
    steps = [str(row["step"]) for row in plan.waterfall]
    counts = [int(row["customers"]) for row in plan.waterfall]
    out["waterfall"] = [
        {
            "step": step.replace("_", " "),
            "customers": shown(count, principal),
            "dropped": shown(int(row.get("dropped", 0)), principal),
        }
        for step, count, row in zip(steps, counts, plan.waterfall, strict=True)
    ]
    out["waterfall_chart"] = charts.waterfall(steps, counts, principal)
    figures = dict(plan.figures)
    currency = out["currency"]
    out["figures"] = [
        ("Contacts", shown(int(figures.get("contacts", 0)), principal)),
        ("Holdout", shown(int(figures.get("holdout", 0)), principal)),
        ("Holdout fraction", f"{float(figures.get('holdout_fraction', 0)):.0%}"),
        ("Send at", str(figures.get("send_at", "–"))),
        ("Expected conversions", f"{float(figures.get('expected_conversions', 0)):,.2f}"),
        (
            "Expected incremental conversions",
            f"{float(figures.get('expected_incremental_conversions', 0)):,.2f}",
        ),
        ("Cost", money(figures.get("cost"), currency)),
        ("Expected incremental value", money(figures.get("expected_incremental_value"), currency)),
        ("Expected ROI", str(figures.get("expected_roi", "–"))),
        ("Budget", money(figures.get("budget"), currency)),
        ("Selection", str(figures.get("policy", spec.selection.policy.value))),
    ]
    out["holdout"] = shown(int(figures.get("holdout", 0)), principal)
    out["variants"] = [
        (variant, shown(int(n), principal))
        for variant, n in (figures.get("variants") or {}).items()
    ]
    queued, delivered = _counts_by_status(ws, plan)
    out["queued"] = [(status, shown(n, principal)) for status, n in sorted(queued.items())]
    out["delivered"] = [(status, shown(n, principal)) for status, n in sorted(delivered.items())]
    groups = _plan_groups(ws, plan)
    contacts = int(figures.get("contacts", 0))
    expected = float(figures.get("expected_conversions", 0.0))
    incremental = float(figures.get("expected_incremental_conversions", 0.0))
    if contacts > 0:
        # what the plan expects: the treated group's rate, and the rate it would have
        # without the message (expected minus incremental conversions)
        treated_rate = expected / contacts
        baseline_rate = (expected - incremental) / contacts
        out["expected_lift_chart"] = charts.lift(
            ["without the message (expected)", "with the message (expected)"],
            [baseline_rate, treated_rate],
            axis_name="Expected conversion rate",
        )
        out["expected_rates"] = (baseline_rate, treated_rate)
    out["groups"] = [(g, shown(n, principal)) for g, n in sorted(groups.items())]
    out["results"] = campaign_results(ws, spec, principal)
    return out


# the measured figures of a launched plan, in the order the results table shows them
RESULT_COUNTS = ("customers", "sent", "delivered", "opened", "clicked", "conversions", "orders")
RESULT_RATES = ("delivery_rate", "open_rate", "ctr", "conversion_rate")
RESULT_MONEY = ("revenue", "net_revenue", "cost")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def campaign_results(
    ws: Workspace, spec: CampaignSpec, principal: Principal
) -> dict[str, Any] | None:
    """What the newest launched plan achieved (``jingzhun.measure.campaign_kpis``): delivery,
    conversions and revenue of the treated and the holdout, and the lift with its interval.

    ``None`` when the campaign was never launched. A group smaller than k shows its counts as
    ``<k`` and hides its rates and money to principals without ``pii:read``.
    """
    currency = ws.project.settings.currency
    try:
        kpis = campaign_kpis(ws.engine, ws.store, spec, currency=currency)
    except NotFoundError:
        return None
    rows = []
    for group, figures in (
        ("treated", kpis.totals["treatment"]),
        ("holdout", kpis.totals["holdout"]),
        *((f"variant {name}", figures) for name, figures in kpis.variants.items()),
    ):
        hidden = small_count(int(figures["customers"]), principal) != int(figures["customers"])
        cells = [shown(int(figures[name]), principal) for name in RESULT_COUNTS]
        if hidden:
            cells += ["hidden"] * (len(RESULT_RATES) + len(RESULT_MONEY) + 1)
        else:
            cells += [_percent(figures[name]) for name in RESULT_RATES]
            cells += [money(figures[name], currency) for name in RESULT_MONEY]
            cells.append(_percent(figures["roi"]))
        rows.append((group, cells))
    lift_charts = []
    for metric, title in (
        ("conversions", "Lift in conversion rate over the holdout"),
        ("revenue", "Lift in net revenue per customer over the holdout"),
    ):
        figure = plot_variant_lift(kpis, metric)
        if figure is not None:
            lift_charts.append(
                {"id": f"chart-lift-{metric}", "title": title, "figure": charts.figure_json(figure)}
            )
    overall = kpis.incrementality
    incrementality: list[tuple[str, str]] = []
    if overall is not None:
        result = overall.result
        low, high = result["incremental_conversions_ci"]
        conversions = result["conversions"]
        incrementality = [
            (
                "Incremental conversions",
                f"{result['incremental_conversions']:,.2f} [{low:,.2f}, {high:,.2f}]",
            ),
            (
                "Incremental net revenue",
                f"{money(result['incremental_revenue'], currency)} "
                f"[{result['incremental_revenue_ci'][0]:,.2f}, "
                f"{result['incremental_revenue_ci'][1]:,.2f}]",
            ),
            ("Incremental ROI", _percent(overall.incremental_roi)),
            ("Conversion lift p-value", f"{conversions['p_value']:.3g}"),
            ("Significant", "yes" if conversions["significant"] else "no"),
        ]
    funnel = [str(step["step"]) for step in kpis.funnel]
    return {
        "plan_id": kpis.plan_id,
        "as_of": kpis.as_of.isoformat(),
        "window_days": kpis.attribution_window_days,
        "goal": kpis.goal_event,
        "complete": kpis.window_complete,
        "header": [*RESULT_COUNTS, *RESULT_RATES, *RESULT_MONEY, "roi"],
        "rows": rows,
        "funnel_chart": charts.count_bars(
            funnel,
            [int(step["customers"]) for step in kpis.funnel],
            principal,
            value_name="Treated customers",
            axis_name="Step",
        ),
        "lift_charts": lift_charts,
        "incrementality": incrementality,
        "level": f"{(1 - kpis.alpha):.0%}",
        "notes": kpis.notes,
    }


# -- models ---------------------------------------------------------------------------------------


def model_list(ws: Workspace) -> list[dict[str, Any]]:
    """Registered models, newest first, with their headline metrics."""
    rows = []
    for record in ws.models.list():
        headline = {
            k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.headline().items()
        }
        rows.append(
            {
                "model_id": record.model_id,
                "kind": record.kind,
                "name": record.name,
                "version": record.version,
                "created_at": plain(record.created_at),
                "metrics": headline,
                "validation": record.training_window.get("validation", ""),
                "has_evaluation": evaluation_from_metrics(record.metrics) is not None,
            }
        )
    return rows


def model_report(ws: Workspace, model_id: str) -> str:
    """A registered model's HTML report (``models``' own page, plotly.js inlined)."""
    records = {r.model_id: r for r in ws.models.list()}
    if model_id not in records:
        known = ", ".join(sorted(records)) or "none yet"
        raise NotFoundError(f"no model '{model_id}' in the registry; models: {known}")
    record = records[model_id]
    evaluation = evaluation_from_metrics(record.metrics)
    notes = []
    validation = record.training_window.get("validation") or record.training_window
    if evaluation is not None:
        notes.append(f"Measured on the rows held out when the model was fitted: {validation}")
    else:
        notes.append("The registry holds no held-out evaluation of this model: metadata only.")
    with tempfile.TemporaryDirectory(prefix="jingzhun-console-") as folder:
        path = write_model_report(record, evaluation, Path(folder) / "report.html", notes=notes)
        return path.read_text(encoding="utf-8")
