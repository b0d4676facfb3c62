"""The resource API under ``/api/v1``: profiles, segments, campaigns, models, reports, consent,
data-subject requests, the audit log — thin over ``Workspace``.

Reads come from the warehouse snapshot (``_warehouse``), so they answer while a build runs;
campaign plans and launches, and data-subject requests (``jingzhun.privacy``), open the live
warehouse for their moment. Personal data is masked
unless the caller has ``pii:read``; every unmasked read and every export is audited.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi import Path as FastApiPath
from sqlglot.errors import SqlglotError

from jingzhun.api._context import ApiContext, Context, CurrentPrincipal, Reader, require
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
    RefusedError,
    SpecError,
    SpecProblem,
    small_count,
)
from jingzhun.delivery import DeliveryLog
from jingzhun.measure import TRACKING_EVENTS, launched_plan
from jingzhun.privacy import ErasureReport, PrivacyService, load_privacy_settings
from jingzhun.profile import PROFILES, find_customer_key, mask_attribute
from jingzhun.segments import SegmentSpec
from jingzhun.store import CampaignPlan, DataSubjectRequest
from jingzhun.workspace import Workspace

router = APIRouter(prefix="/api/v1")
log = logging.getLogger("jingzhun.api.privacy")

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


def _new_request(
    context: ApiContext,
    principal: Principal,
    kind: str,
    subject: str,
    customer_key: str | None,
    note: str = "",
) -> int:
    """Record a request as ``pending``; its id."""
    with context.store.session(write=True) as session:
        row = DataSubjectRequest(
            kind=kind,
            subject=subject,
            customer_key=customer_key,
            status="pending",
            requested_by=principal.name,
            requested_at=dt.datetime.now(dt.UTC),
            completed_at=None,
            note=note,
        )
        session.add(row)
        session.flush()
        return int(row.id)


def _finish_request(
    context: ApiContext,
    request_id: int,
    state: str,
    note: str,
    data: dict[str, Any] | None = None,
) -> Any:
    """Set a request's outcome (``completed`` or ``failed``); the request as answered."""
    with context.store.session(write=True) as session:
        row = session.get(DataSubjectRequest, request_id)
        if row is None:
            raise NotFoundError(f"no data-subject request {request_id}")
        row.status = state
        row.completed_at = dt.datetime.now(dt.UTC)
        row.note = note[:4000]
        session.flush()
        return _request_public(row, data)


def _privacy_service(context: ApiContext) -> PrivacyService:
    """The privacy service over the server's store; its file scan leaves out the read
    snapshot (a copy of the warehouse, which is read or erased directly).
    """
    project = context.warehouse.project
    settings = load_privacy_settings(project.root)
    try:
        snapshot = context.warehouse.snapshot_path.relative_to(project.root).as_posix()
    except ValueError:  # a state folder outside the project is not scanned anyway
        return PrivacyService(project, context.store, settings=settings)
    exclude = [*settings.scan_exclude, snapshot]
    return PrivacyService(
        project, context.store, settings=settings.model_copy(update={"scan_exclude": exclude})
    )


def _failure(exc: Exception) -> str:
    if isinstance(exc, JingzhunError):
        return str(exc)
    log.exception("data-subject request failed")
    return f"{type(exc).__name__}: {exc}"


def _snapshot_key(context: ApiContext, subject: str) -> tuple[str | None, str]:
    """The subject's customer_key in the read snapshot (None and why when not found)."""
    ws = context.warehouse.workspace()
    try:
        if not ws.engine.exists(PROFILES):
            return None, "no profiles yet: run 'jingzhun build' first"
        return find_customer_key(ws.engine, subject, ws.segments.as_of()), ""
    except NotFoundError as exc:  # nobody, or no snapshot yet
        return None, str(exc)


def _run_export(
    context: ApiContext, principal: Principal, subject: str, request_id: int | None
) -> Any:
    """Answer an export: the profile, consent and deliveries (from the read snapshot and the
    store) and the privacy stage's full export (every warehouse table, store table and file
    under the project, from the live warehouse); recorded ``completed`` or ``failed``.
    """
    key, _ = _snapshot_key(context, subject)
    data: dict[str, Any] = {}
    if key is not None:
        ws = context.warehouse.workspace()
        data = {
            "profile": plain(ws.profiles.show(key, mask_pii=False)),
            "consent": ConsentLedger(context.store).history("customer_key", key),
            "deliveries": [
                plain(r.__dict__)
                for r in DeliveryLog(context.store).records()
                if r.customer_key == key
            ],
        }
    with context.warehouse.live(snapshot=False) as live:
        live.engine.close()  # the service opens the warehouse itself
        try:
            export = _privacy_service(context).export(
                subject, by=principal.name, principal=principal
            )
        except Exception as exc:  # the live warehouse decides: recorded, the caller sees why
            failure: str | None = _failure(exc)
        else:
            failure = None
    # recorded after the export, so that the export does not find its own request
    if request_id is None:
        request_id = _new_request(context, principal, "export", subject, key)
    if failure is not None:
        return _finish_request(context, request_id, "failed", failure)
    data["export"] = export.to_dict()
    held = export.customer_keys or export.warehouse or export.store or export.files
    note = f"privacy request {export.request_id}" + ("" if held else "; nothing is held")
    context.access.audit(principal, "export", f"data-subject export {key or request_id}")
    return _finish_request(context, request_id, "completed", note, data)


def _erasure_note(report: ErasureReport) -> str:
    note = (
        f"erased: {sum(report.warehouse.values())} warehouse rows in {len(report.warehouse)} "
        f"tables, {sum(sum(v.values()) for v in report.store.values())} store rows, "
        f"{len(report.files)} files; {report.tombstones} tombstones; privacy request "
        f"{report.request_id}"
    )
    if report.needs_review:
        note += f"; needs review by hand: {', '.join(report.needs_review)}"
    return note


def _run_erase(
    context: ApiContext, principal: Principal, subject: str, request_id: int | None
) -> Any:
    """Carry out an erasure now (``PrivacyService.erase``) while this server holds the live
    warehouse; recorded ``completed`` (with the report's counts) or ``failed``.

    The erasure rewrites and compacts the warehouse file, so no connection of this process may
    be open on it: the live session's own is closed first (the file lock is kept, so neither
    the loader nor another server process can open it meanwhile). The read snapshot is a copy
    holding the person: it is removed before and taken afresh after (meanwhile reads answer
    503; a reader that had the old copy attached closes it when it finds the new one).
    The request row is written first, so that the erasure anonymises its subject too.
    """
    key, _ = _snapshot_key(context, subject)
    with context.warehouse.live(snapshot=False) as live:
        live.engine.close()
        if request_id is None:
            request_id = _new_request(context, principal, "erase", subject, key)
        if context.warehouse.is_duckdb:
            context.warehouse.snapshot_path.unlink(missing_ok=True)
        try:
            report = _privacy_service(context).erase(
                subject, by=principal.name, principal=principal
            )
        except Exception as exc:  # recorded on the request; the caller sees why
            state, note, data = "failed", _failure(exc), None
        else:
            state, note, data = "completed", _erasure_note(report), {"erasure": report.to_dict()}
    if context.warehouse.cipher is not None:
        context.warehouse.cipher.forget()  # no opened value of the person stays in memory
    context.warehouse.refresh_snapshot(wait_seconds=5.0)
    detail = {"status": state, **({"request_id": data["erasure"]["request_id"]} if data else {})}
    context.access.audit(principal, "erase", f"data-subject request {request_id}", detail)
    return _finish_request(context, request_id, state, note, data)


@router.post(
    "/data-subject-requests",
    tags=["privacy"],
    operation_id="privacy-request",
    response_model=DataSubjectRequestPublic,
    status_code=status.HTTP_201_CREATED,
)
def data_subject_request(
    body: DataSubjectRequestCreate, context: Context, principal: Reader
) -> Any:
    """File a data-subject request. With ``privacy:admin`` it is carried out at once: an
    export answers with everything held on the person, an erasure deletes them everywhere
    (status ``completed`` with the counts, or ``failed`` with the error). Without it, an
    erasure request is recorded ``pending`` for an administrator (``POST
    /data-subject-requests/{id}/run``); an export needs ``privacy:admin``.
    """
    if principal.can(Permission.PRIVACY_ADMIN):
        run = _run_export if body.kind == "export" else _run_erase
        return run(context, principal, body.subject, None)
    if body.kind == "export":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"{principal.kind} '{principal.name}' lacks the permission "
            f"'{Permission.PRIVACY_ADMIN.value}' (an export answers with personal data)",
        )
    waiting = "waiting for a privacy admin: POST /api/v1/data-subject-requests/{id}/run"
    request_id = _new_request(context, principal, "erase", body.subject, None, waiting)
    context.access.audit(principal, "erase_request", f"data-subject request {request_id}")
    with context.store.session() as session:
        row = session.get(DataSubjectRequest, request_id)
        if row is None:  # erased meanwhile by another request
            raise NotFoundError(f"no data-subject request {request_id}")
        return _request_public(row)


@router.post(
    "/data-subject-requests/{request_id}/run",
    tags=["privacy"],
    operation_id="privacy-run_request",
    response_model=DataSubjectRequestPublic,
)
def run_data_subject_request(
    request_id: Annotated[int, FastApiPath(ge=1, le=2**62)],
    context: Context,
    principal: PrivacyAdmin,
) -> Any:
    """Carry out a pending request (filed by someone without ``privacy:admin``)."""
    with context.store.session() as session:
        row = session.get(DataSubjectRequest, request_id)
        if row is None:
            raise NotFoundError(f"no data-subject request {request_id}")
        if row.status != "pending":
            raise RefusedError(f"data-subject request {request_id} is {row.status}, not pending")
        kind, subject = row.kind, row.subject
    run = _run_export if kind == "export" else _run_erase
    return run(context, principal, subject, request_id)


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
