"""The resource API under ``/api/v1``: profiles, segments, campaigns, models, reports, consent,
data-subject requests, the audit log — thin over ``Workspace``.

Reads come from the warehouse snapshot (``_warehouse``), so they answer while a build runs;
campaign plans and launches open the live warehouse for their moment. Personal data is masked
unless the caller has ``pii:read``; every unmasked read and every export is audited.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlglot.errors import SqlglotError

from jingzhun.api._context import Context, CurrentPrincipal, Reader, require
from jingzhun.api._schemas import (
    AuditLogPublic,
    CampaignPublic,
    CampaignResultsPublic,
    CampaignsPublic,
    CollectStatusPublic,
    ConsentCreate,
    ConsentPublic,
    ConsentsPublic,
    DataSubjectRequestCreate,
    DataSubjectRequestPublic,
    DataSubjectRequestsPublic,
    ExplanationPublic,
    ModelPublic,
    ModelsPublic,
    PlanPublic,
    PrincipalPublic,
    ProfilePublic,
    ProfileRowPublic,
    ProfilesPublic,
    ReportPublic,
    SegmentCountPublic,
    SegmentCreate,
    SegmentPreviewPublic,
    SegmentPublic,
    SegmentsPublic,
)
from jingzhun.campaigns import ConsentLedger, ConsentRecord
from jingzhun.core import (
    JingzhunError,
    NotFoundError,
    Permission,
    Principal,
    SpecError,
    SpecProblem,
    small_count,
)
from jingzhun.delivery import DeliveryLog
from jingzhun.measure import TRACKING_EVENTS, launched_plan
from jingzhun.profile import PROFILES, find_customer_key, mask_attribute
from jingzhun.segments import SegmentSpec
from jingzhun.store import CampaignPlan, DataSubjectRequest
from jingzhun.workspace import Workspace

router = APIRouter(prefix="/api/v1")

SegmentsWriter = Annotated[Principal, Depends(require(Permission.SEGMENTS_WRITE))]
CampaignsWriter = Annotated[Principal, Depends(require(Permission.CAMPAIGNS_WRITE))]
CampaignsApprover = Annotated[Principal, Depends(require(Permission.CAMPAIGNS_APPROVE))]
ConsentWriter = Annotated[Principal, Depends(require(Permission.CONSENT_WRITE))]
PrivacyAdmin = Annotated[Principal, Depends(require(Permission.PRIVACY_ADMIN))]
UsersAdmin = Annotated[Principal, Depends(require(Permission.USERS_ADMIN))]
PII_COLUMNS = ("email", "phone", "first_name", "last_name", "birth_date")
_PII_IN_RULE = re.compile(r"\b(" + "|".join(PII_COLUMNS) + r")\b")


def plain(value: Any) -> Any:
    """JSON-able values: decimals as floats, dates as ISO text, containers walked."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def _mask_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: mask_attribute(k, v) if k in PII_COLUMNS else v for k, v in row.items()}


# -- who am I, status ----------------------------------------------------------------------


@router.get("/me", tags=["auth"], operation_id="auth-me", response_model=PrincipalPublic)
def me(principal: CurrentPrincipal) -> PrincipalPublic:
    """The caller and its permissions."""
    return PrincipalPublic(
        name=principal.name,
        kind=principal.kind,
        role=principal.role.value if principal.role else None,
        scopes=sorted(s.value for s in principal.scopes),
        permissions=sorted(p.value for p in principal.permissions),
        sees_pii=principal.sees_pii,
    )


@router.get(
    "/collect/status",
    tags=["collect"],
    operation_id="collect-status",
    response_model=CollectStatusPublic,
)
def collect_status(context: Context, principal: Reader) -> CollectStatusPublic:
    """Messages stored, loaded into the warehouse and waiting; where reads come from."""
    last = context.loader.last_result
    return CollectStatusPublic(
        **context.log.stats(),
        warehouse=context.warehouse.describe(),
        last_load=last.to_dict() if last is not None else None,
    )


@router.post(
    "/collect/flush",
    tags=["collect"],
    operation_id="collect-flush",
    response_model=CollectStatusPublic,
)
def collect_flush(context: Context, principal: UsersAdmin) -> CollectStatusPublic:
    """Load every waiting message into the warehouse now and refresh profiles and segments."""
    result = context.loader.run_once()
    context.loader.last_result = result
    return CollectStatusPublic(
        **context.log.stats(), warehouse=context.warehouse.describe(), last_load=result.to_dict()
    )


# -- profiles ------------------------------------------------------------------------------


@router.get(
    "/profiles", tags=["profiles"], operation_id="profiles-list", response_model=ProfilesPublic
)
def list_profiles(
    context: Context,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> ProfilesPublic:
    """A page of profiles (main columns), by ``customer_key``."""
    ws = context.warehouse.workspace()
    engine = ws.engine
    if not engine.exists(PROFILES):
        raise NotFoundError("no profiles yet: run 'jingzhun build' first")
    t = engine.read(PROFILES)
    columns = [
        c
        for c in (
            "customer_key",
            "first_name",
            "last_name",
            "email",
            "city",
            "country",
            "lifecycle_stage",
            "rfm_segment",
            "value_tier",
            "orders",
            "revenue",
        )
        if c in t.columns
    ]
    rows = engine.execute(t.select(*columns).order_by("customer_key").limit(limit, offset=offset))
    data = []
    for row in rows.to_pylist():
        attributes = {k: v for k, v in row.items() if k != "customer_key"}
        if not principal.sees_pii:
            attributes = _mask_row(attributes)
        data.append(
            ProfileRowPublic(customer_key=row["customer_key"], attributes=plain(attributes))
        )
    if principal.sees_pii and data:
        context.access.audit(
            principal, "pii_read", "profiles list", {"limit": limit, "offset": offset}
        )
    return ProfilesPublic(data=data, count=engine.count(PROFILES))


@router.get(
    "/profiles/{customer}",
    tags=["profiles"],
    operation_id="profiles-get",
    response_model=ProfilePublic,
)
def get_profile(customer: str, context: Context, principal: Reader) -> ProfilePublic:
    """The 360° view of a customer (by key, source id, device id, e-mail or phone)."""
    ws = context.warehouse.workspace()
    view = ws.profiles.show(customer, mask_pii=not principal.sees_pii)
    if principal.sees_pii:
        context.access.audit(principal, "pii_read", f"profile {view['customer_key']}")
    return ProfilePublic(
        customer_key=view["customer_key"],
        as_of=str(view["as_of"]),
        masked=bool(view["masked"]),
        view=plain(view),
    )


# -- segments ------------------------------------------------------------------------------


def _rule(ws: Workspace, body: SegmentCreate) -> SegmentSpec:
    """The segment a request describes; a rule the parser chokes on is a 422, not a 500.

    (``parse_segment`` lets some SQLGlot errors through, e.g. ``"$"``: reported upstream.)
    """
    try:
        return ws.segments.from_rule(body.name, body.rule, body.description)
    except JingzhunError:
        raise
    except (SqlglotError, ValueError, TypeError, KeyError, RecursionError) as exc:
        problem = SpecProblem(Path(f"<segment {body.name}>"), None, "rule", f"cannot read: {exc}")
        raise SpecError([problem]) from None


def _segment_public(ws: Workspace, name: str) -> SegmentPublic:
    spec = ws.segments.spec(name)
    rule: Any = None
    if spec.file is not None and spec.file.is_file():
        document = yaml.safe_load(spec.file.read_text(encoding="utf-8")) or {}
        rule = document.get("rule") if isinstance(document, dict) else None
    return SegmentPublic(name=spec.name, description=spec.description, rule=plain(rule))


@router.get(
    "/segments", tags=["segments"], operation_id="segments-list", response_model=SegmentsPublic
)
def list_segments(context: Context, principal: Reader) -> SegmentsPublic:
    """Every segment of the project (``segments/**/*.yml``)."""
    ws = context.warehouse.workspace()
    data = [_segment_public(ws, name) for name in ws.segments.specs()]
    return SegmentsPublic(data=data, count=len(data))


@router.post(
    "/segments",
    tags=["segments"],
    operation_id="segments-create",
    response_model=SegmentPublic,
    status_code=status.HTTP_201_CREATED,
)
def create_segment(
    body: SegmentCreate, context: Context, principal: SegmentsWriter
) -> SegmentPublic:
    """Check a rule, compile it against the profiles and save it as ``segments/<name>.yml``."""
    ws = context.warehouse.workspace()
    spec = _rule(ws, body)
    existing = ws.segments.specs()
    if body.name in existing:
        raise HTTPException(409, detail=f"a segment named '{body.name}' exists already")
    ws.segments.compile(spec)  # unknown fields, events, types: 422 with every problem
    path: Path = ws.segments.folder / f"{body.name}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"name": body.name, "description": body.description, "rule": body.rule}
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return SegmentPublic(name=body.name, description=body.description, rule=body.rule)


@router.post(
    "/segments/count",
    tags=["segments"],
    operation_id="segments-count_rule",
    response_model=SegmentCountPublic,
)
def count_rule(body: SegmentCreate, context: Context, principal: Reader) -> SegmentCountPublic:
    """Count a rule without saving it (the live count of the console's segment builder)."""
    ws = context.warehouse.workspace()
    spec = _rule(ws, body)
    count = ws.segments.count(spec)
    return SegmentCountPublic(
        segment=body.name,
        as_of=ws.segments.as_of().isoformat(),
        count=small_count(count, principal),
    )


@router.get(
    "/segments/{name}",
    tags=["segments"],
    operation_id="segments-get",
    response_model=SegmentPublic,
)
def get_segment(name: str, context: Context, principal: Reader) -> SegmentPublic:
    """One segment as written."""
    return _segment_public(context.warehouse.workspace(), name)


@router.get(
    "/segments/{name}/count",
    tags=["segments"],
    operation_id="segments-count",
    response_model=SegmentCountPublic,
)
def count_segment(name: str, context: Context, principal: Reader) -> SegmentCountPublic:
    """How many customers the segment holds on the profiles' date."""
    ws = context.warehouse.workspace()
    count = ws.segments.count(name)
    return SegmentCountPublic(
        segment=name, as_of=ws.segments.as_of().isoformat(), count=small_count(count, principal)
    )


@router.get(
    "/segments/{name}/preview",
    tags=["segments"],
    operation_id="segments-preview",
    response_model=SegmentPreviewPublic,
)
def preview_segment(
    name: str,
    context: Context,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> SegmentPreviewPublic:
    """The first members with their main columns (masked without ``pii:read``)."""
    ws = context.warehouse.workspace()
    table = ws.segments.preview(name, limit=limit, mask_pii=not principal.sees_pii)
    rows = plain(table.to_pylist())
    if principal.sees_pii and rows:
        context.access.audit(principal, "pii_read", f"segment {name} preview", {"rows": len(rows)})
    return SegmentPreviewPublic(
        segment=name, masked=not principal.sees_pii, data=rows, count=len(rows)
    )


@router.get(
    "/segments/{name}/explain/{customer}",
    tags=["segments"],
    operation_id="segments-explain",
    response_model=ExplanationPublic,
)
def explain_segment(
    name: str, customer: str, context: Context, principal: Reader
) -> ExplanationPublic:
    """Why a customer is in or out: each predicate with the customer's value."""
    ws = context.warehouse.workspace()
    found = ws.segments.explain(name, customer).to_dict()
    steps = plain(found["steps"])
    touches_pii = False
    for step in steps:
        column = _PII_IN_RULE.search(str(step.get("rule", "")))
        if column is not None:
            touches_pii = True
            if not principal.sees_pii:
                step["value"] = mask_attribute(column.group(1), step.get("value"))
    if touches_pii and principal.sees_pii:
        context.access.audit(
            principal, "pii_read", f"segment {name} explain {found['customer_key']}"
        )
    return ExplanationPublic(**{**found, "steps": steps})


# -- campaigns -----------------------------------------------------------------------------


def _plan_public(row: CampaignPlan, queued: int | None = None) -> PlanPublic:
    return PlanPublic(
        plan_id=row.plan_id,
        campaign=row.campaign,
        status=row.status,
        as_of=row.as_of,
        waterfall=plain(row.waterfall),
        figures=plain(row.figures),
        created_by=row.created_by,
        approved_by=row.approved_by,
        launched_by=row.launched_by,
        queued=queued,
    )


def _latest(ws: Workspace, name: str) -> CampaignPlan | None:
    try:
        return ws.campaigns.latest_plan(name)
    except NotFoundError:
        return None


@router.get(
    "/campaigns",
    tags=["campaigns"],
    operation_id="campaigns-list",
    response_model=CampaignsPublic,
)
def list_campaigns(context: Context, principal: Reader) -> CampaignsPublic:
    """Every campaign with its latest plan."""
    ws = context.warehouse.workspace()
    data = []
    for spec in ws.campaigns.specs().values():
        latest = _latest(ws, spec.name)
        data.append(
            CampaignPublic(
                name=spec.name,
                description=spec.description,
                audience=spec.audience,
                channel=spec.channel.value,
                purpose=spec.purpose.value,
                approval_required=spec.approval_required,
                plan=_plan_public(latest).model_dump() if latest else None,
            )
        )
    return CampaignsPublic(data=data, count=len(data))


@router.post(
    "/campaigns/{name}/plan",
    tags=["campaigns"],
    operation_id="campaigns-plan",
    response_model=PlanPublic,
)
def plan_campaign(name: str, context: Context, principal: CampaignsWriter) -> PlanPublic:
    """Compute the eligibility waterfall, selection and holdout; store the plan."""
    context.warehouse.workspace().campaigns.spec(name)  # 404 before taking the warehouse
    with context.warehouse.live() as ws:
        ws.campaigns.plan(name, by=principal.name)
        row = ws.campaigns.latest_plan(name)
    return _plan_public(row)


@router.post(
    "/campaigns/{name}/approve",
    tags=["campaigns"],
    operation_id="campaigns-approve",
    response_model=PlanPublic,
)
def approve_campaign(name: str, context: Context, principal: CampaignsApprover) -> PlanPublic:
    """Approve the latest plan (by someone other than its author when approval is required)."""
    ws = context.warehouse.workspace()
    return _plan_public(ws.campaigns.approve(name, by=principal.name))


@router.post(
    "/campaigns/{name}/launch",
    tags=["campaigns"],
    operation_id="campaigns-launch",
    response_model=PlanPublic,
)
def launch_campaign(name: str, context: Context, principal: CampaignsWriter) -> PlanPublic:
    """Queue the plan's messages for delivery (refused when data or spec changed)."""
    context.warehouse.workspace().campaigns.spec(name)
    with context.warehouse.live() as ws:
        row, queued = ws.campaigns.launch(name, by=principal.name)
    return _plan_public(row, queued)


@router.get(
    "/campaigns/{name}/results",
    tags=["campaigns"],
    operation_id="campaigns-results",
    response_model=CampaignResultsPublic,
)
def campaign_results(name: str, context: Context, principal: Reader) -> CampaignResultsPublic:
    """Deliveries by status and tracked opens, clicks and unsubscribes so far."""
    ws = context.warehouse.workspace()
    ws.campaigns.spec(name)
    latest = _latest(ws, name)
    deliveries = DeliveryLog(context.store).counts(campaign=name)
    engagement = dict.fromkeys(TRACKING_EVENTS, 0)
    engine = context.warehouse.reader()
    if engine is not None and engine.exists("raw_events"):
        events = engine.read("raw_events")
        mine = events.filter(
            events.event_type.isin(list(engagement))
            & (engine.json_text(events.properties, "campaign") == name)
        )
        counts = engine.execute(mine.group_by("event_type").aggregate(n=mine.count()))
        for row in counts.to_pylist():
            engagement[row["event_type"]] = int(row["n"])
    outcomes = None
    try:
        launched_plan(context.store, name)
    except NotFoundError:
        pass  # planned, never launched: nothing to measure yet
    else:
        outcomes = _small_counts(ws.measure.campaign(name).to_dict(), principal)
    return CampaignResultsPublic(
        campaign=name,
        plan=_plan_public(latest) if latest else None,
        deliveries=deliveries,
        engagement=engagement,
        outcomes=outcomes,
    )


def _small_counts(value: Any, principal: Principal) -> Any:
    """Every count (a non-negative int) in a nested result shown as "<k" below the minimum
    group size to principals without ``pii:read``; other values as they are.
    """
    if isinstance(value, dict):
        return {k: _small_counts(v, principal) for k, v in value.items()}
    if isinstance(value, list):
        return [_small_counts(v, principal) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return small_count(value, principal)
    return value


# -- models and reports --------------------------------------------------------------------


def _model_public(record: Any) -> ModelPublic:
    return ModelPublic(
        model_id=record.model_id,
        kind=record.kind,
        name=record.name,
        version=record.version,
        params=plain(record.params),
        features=list(record.features),
        training_window=plain(record.training_window),
        metrics=plain(record.metrics),
        created_at=record.created_at.isoformat(),
    )


@router.get("/models", tags=["models"], operation_id="models-list", response_model=ModelsPublic)
def list_models(
    context: Context, principal: Reader, kind: Annotated[str | None, Query(max_length=40)] = None
) -> ModelsPublic:
    """Registered model versions, newest first."""
    records = context.warehouse.workspace().models.list(kind)
    data = [_model_public(r) for r in records]
    return ModelsPublic(data=data, count=len(data))


@router.get(
    "/models/{model_id}", tags=["models"], operation_id="models-get", response_model=ModelPublic
)
def get_model(model_id: str, context: Context, principal: Reader) -> ModelPublic:
    """One model version with its metrics (what its report shows)."""
    for record in context.warehouse.workspace().models.list():
        if record.model_id == model_id:
            return _model_public(record)
    raise NotFoundError(f"no model with id '{model_id}'")


@router.get(
    "/reports/overview",
    tags=["reports"],
    operation_id="reports-overview",
    response_model=ReportPublic,
)
def overview_report(
    context: Context, principal: Reader, as_of: dt.date | None = None
) -> ReportPublic:
    """Customers, orders, revenue, returns, categories, events by type."""
    figures = context.warehouse.workspace().measure.overview(as_of).to_dict()
    return ReportPublic(
        name="overview", as_of=as_of.isoformat() if as_of else None, figures=plain(figures)
    )


# -- consent and data-subject requests -----------------------------------------------------


@router.get(
    "/consent", tags=["consent"], operation_id="consent-history", response_model=ConsentsPublic
)
def consent_history(
    context: Context,
    principal: Reader,
    subject_kind: Annotated[str, Query(pattern="^(customer_id|email|phone|customer_key)$")],
    subject: Annotated[str, Query(min_length=1, max_length=320)],
) -> ConsentsPublic:
    """A subject's consent history, oldest first (a read of personal data: audited)."""
    if subject_kind in ("email", "phone") and not principal.sees_pii:
        raise HTTPException(
            403, detail=f"looking people up by {subject_kind} needs the pii:read permission"
        )
    rows = ConsentLedger(context.store).history(subject_kind, subject)
    context.access.audit(principal, "pii_read", f"consent {subject_kind}", {"rows": len(rows)})
    return ConsentsPublic(
        subject_kind=subject_kind,
        subject=subject if principal.sees_pii else mask_attribute(subject_kind, subject),
        data=[ConsentPublic(**r) for r in rows],  # type: ignore[arg-type]
        count=len(rows),
    )


@router.post(
    "/consent",
    tags=["consent"],
    operation_id="consent-record",
    response_model=ConsentPublic,
    status_code=status.HTTP_201_CREATED,
)
def record_consent(
    body: ConsentCreate, context: Context, principal: ConsentWriter
) -> ConsentPublic:
    """Append one consent event to the ledger."""
    record = ConsentRecord(
        subject_kind=body.subject_kind,
        subject=body.subject,
        purpose=body.purpose,
        channel=body.channel,
        status=body.status,
        recorded_at=dt.datetime.now(dt.UTC),
        legal_basis=body.legal_basis,
        source="api",
        recorded_by=principal.name,
        subject_source=body.subject_source,
    )
    ConsentLedger(context.store).record([record])
    return ConsentPublic(
        purpose=body.purpose.value,
        channel=body.channel.value,
        status=body.status.value,
        recorded_at=record.recorded_at.isoformat(),
        legal_basis=body.legal_basis,
        source="api",
        recorded_by=principal.name,
    )


def _request_public(row: DataSubjectRequest, data: dict[str, Any] | None = None) -> Any:
    return DataSubjectRequestPublic(
        id=row.id,
        kind=row.kind,
        subject=row.subject,
        customer_key=row.customer_key,
        status=row.status,
        requested_by=row.requested_by,
        requested_at=row.requested_at.isoformat(),
        completed_at=row.completed_at.isoformat() if row.completed_at else None,
        note=row.note,
        data=data,
    )


@router.post(
    "/data-subject-requests",
    tags=["privacy"],
    operation_id="privacy-request",
    response_model=DataSubjectRequestPublic,
    status_code=status.HTTP_201_CREATED,
)
def data_subject_request(
    body: DataSubjectRequestCreate, context: Context, principal: PrivacyAdmin
) -> Any:
    """Record a request; an export is answered at once with everything held on the person,
    an erasure is recorded as pending for the privacy stage.
    """
    ws = context.warehouse.workspace()
    now = dt.datetime.now(dt.UTC)
    key: str | None = None
    data: dict[str, Any] | None = None
    note = ""
    try:
        key = find_customer_key(ws.engine, body.subject, ws.segments.as_of())
    except NotFoundError as exc:
        note = str(exc)
    if body.kind == "export" and key is not None:
        data = {
            "profile": plain(ws.profiles.show(key, mask_pii=False)),
            "consent": ConsentLedger(context.store).history("customer_key", key),
            "deliveries": [
                plain(r.__dict__)
                for r in DeliveryLog(context.store).records()
                if r.customer_key == key
            ],
        }
        context.access.audit(principal, "export", f"data-subject export {key}")
    state = "completed" if data is not None else ("pending" if key else "failed")
    if body.kind == "erase" and key is not None:
        note = "recorded; erasure is carried out by the privacy stage (not in this server)"
    with context.store.session(write=True) as session:
        row = DataSubjectRequest(
            kind=body.kind,
            subject=body.subject,
            customer_key=key,
            status=state,
            requested_by=principal.name,
            requested_at=now,
            completed_at=now if state == "completed" else None,
            note=note,
        )
        session.add(row)
        session.flush()
        public = _request_public(row, data)
    return public


@router.get(
    "/data-subject-requests",
    tags=["privacy"],
    operation_id="privacy-requests",
    response_model=DataSubjectRequestsPublic,
)
def data_subject_requests(context: Context, principal: PrivacyAdmin) -> Any:
    """Data-subject requests, newest first."""
    from sqlalchemy import select

    with context.store.session() as session:
        rows = session.scalars(
            select(DataSubjectRequest).order_by(DataSubjectRequest.id.desc()).limit(500)
        ).all()
        data = [_request_public(r) for r in rows]
    return DataSubjectRequestsPublic(data=data, count=len(data))


@router.get(
    "/audit-log", tags=["privacy"], operation_id="privacy-audit_log", response_model=AuditLogPublic
)
def audit_log(
    context: Context,
    principal: UsersAdmin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditLogPublic:
    """The newest audit rows (reads of personal data, exports)."""
    rows = context.access.audit_log(limit)
    return AuditLogPublic(data=rows, count=len(rows))  # type: ignore[arg-type]
