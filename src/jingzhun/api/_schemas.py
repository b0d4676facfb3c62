"""Request and response bodies of the resource API: ``XCreate`` in, ``XPublic`` and
``XsPublic(data, count)`` out (STYLE.md).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jingzhun.campaigns import Channel, Purpose, Status
from jingzhun.core import Role, Scope

_NAME = r"^[a-z][a-z0-9_]{0,79}$"


class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginCreate(_Public):
    """A console login."""

    name: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=200)


class PrincipalPublic(_Public):
    """Who is calling and what they may do."""

    name: str
    kind: str
    role: str | None
    scopes: list[str]
    permissions: list[str]
    sees_pii: bool


class UserCreate(_Public):
    """A new console user (the password is stored as a scrypt hash, never returned)."""

    name: str = Field(min_length=1, max_length=80, description="letters, digits, _ . @ -")
    role: Role
    password: str = Field(min_length=8, max_length=200)


class UserUpdate(_Public):
    """Changes to a user; fields left out stay as they are."""

    role: Role | None = None
    disabled: bool | None = Field(None, description="true ends every session of the user")
    password: str | None = Field(
        None, min_length=8, max_length=200, description="ends every session of the user"
    )


class UserPublic(_Public):
    """A console user (no password hash)."""

    name: str
    role: str
    created_at: str
    disabled: bool


class UsersPublic(_Public):
    """Every console user."""

    data: list[UserPublic]
    count: int


class ApiKeyCreate(_Public):
    """A new API key."""

    name: str = Field(min_length=1, max_length=80, description="letters, digits, _ . @ -")
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))


class ApiKeyPublic(_Public):
    """An API key without its secret: the prefix (``jz_<prefix>_…``) tells keys apart."""

    name: str
    prefix: str
    scopes: list[str]
    created_by: str
    created_at: str
    revoked: bool


class ApiKeyCreatedPublic(ApiKeyPublic):
    """A key just made, with the key itself: shown this once, never stored or shown again."""

    key: str


class ApiKeysPublic(_Public):
    """Every API key, without secrets."""

    data: list[ApiKeyPublic]
    count: int


class ProfilePublic(_Public):
    """A customer's 360° view (personal data masked unless the caller has ``pii:read``)."""

    customer_key: str
    as_of: str
    masked: bool
    view: dict[str, Any]


class ProfileRowPublic(_Public):
    """One line of the profile list."""

    customer_key: str
    attributes: dict[str, Any]


class ProfilesPublic(_Public):
    """A page of profiles and how many there are."""

    data: list[ProfileRowPublic]
    count: int | str


class SegmentBase(_Public):
    """A segment as written: name, description, rule (the rule language as JSON)."""

    name: str = Field(pattern=_NAME, description="lower-case letters, digits, _")
    description: str = Field("", max_length=2000)
    rule: Any = Field(description="all/any/not over conditions, as in segments/*.yml")


class SegmentCreate(SegmentBase):
    """A new segment; saved as ``segments/<name>.yml``."""


class SegmentPublic(SegmentBase):
    """A segment of the project."""


class SegmentsPublic(_Public):
    """Every segment of the project."""

    data: list[SegmentPublic]
    count: int


class SegmentCountPublic(_Public):
    """How many customers a segment holds (``"<5"`` below the minimum group size)."""

    segment: str
    as_of: str
    count: int | str


class SegmentPreviewPublic(_Public):
    """The first members of a segment."""

    segment: str
    masked: bool
    data: list[dict[str, Any]]
    count: int


class ExplanationPublic(_Public):
    """Why a customer is in or out: every predicate with its value and truth."""

    segment: str
    customer_key: str
    as_of: str
    member: bool
    steps: list[dict[str, Any]]


class CampaignPublic(_Public):
    """A campaign spec in brief, with its latest plan when there is one."""

    name: str
    description: str
    audience: str
    channel: str
    purpose: str
    approval_required: bool
    plan: dict[str, Any] | None


class CampaignsPublic(_Public):
    """Every campaign of the project."""

    data: list[CampaignPublic]
    count: int


class PlanPublic(_Public):
    """A stored plan: waterfall, figures, status."""

    plan_id: str
    campaign: str
    status: str
    as_of: str
    waterfall: list[dict[str, Any]]
    figures: dict[str, Any]
    created_by: str
    approved_by: str | None = None
    launched_by: str | None = None
    queued: int | None = None


class CampaignResultsPublic(_Public):
    """What a launched campaign did so far: deliveries by status, tracked engagement, and
    the measured outcomes (``jingzhun report CAMPAIGN --json``: KPIs per group, variant,
    segment, channel and day, and the holdout's incremental conversions and revenue with
    their intervals) once it has been launched.
    """

    campaign: str
    plan: PlanPublic | None
    deliveries: dict[str, int]
    engagement: dict[str, int]
    outcomes: dict[str, Any] | None = None


class ModelPublic(_Public):
    """One registered model version and its metrics (the report's figures)."""

    model_id: str
    kind: str
    name: str
    version: int
    params: dict[str, Any]
    features: list[str]
    training_window: dict[str, Any]
    metrics: dict[str, Any]
    created_at: str


class ModelsPublic(_Public):
    """Registered models, newest first."""

    data: list[ModelPublic]
    count: int


class ReportPublic(_Public):
    """A report's figures."""

    name: str
    as_of: str | None
    figures: dict[str, Any]


class ConsentCreate(_Public):
    """One consent event for the ledger."""

    subject_kind: Literal["customer_id", "email", "phone", "customer_key"]
    subject: str = Field(min_length=1, max_length=320)
    subject_source: str = Field("", max_length=80)
    purpose: Purpose = Purpose.MARKETING
    channel: Channel
    status: Status
    legal_basis: str = Field("consent", max_length=40)


class ConsentPublic(_Public):
    """One consent event as stored."""

    purpose: str
    channel: str
    status: str
    recorded_at: str
    legal_basis: str
    source: str
    recorded_by: str


class ConsentsPublic(_Public):
    """A subject's consent history, oldest first."""

    subject_kind: str
    subject: str
    data: list[ConsentPublic]
    count: int


class DataSubjectRequestCreate(_Public):
    """A data-subject request: ``export`` (access, PIPL art. 45 / GDPR art. 15) or ``erase``."""

    kind: Literal["export", "erase"]
    subject: str = Field(min_length=1, max_length=320, description="key, id, e-mail or phone")


class DataSubjectRequestPublic(_Public):
    """A data-subject request and its result (the export's data when completed)."""

    id: int
    kind: str
    subject: str
    customer_key: str | None
    status: str
    requested_by: str
    requested_at: str
    completed_at: str | None
    note: str
    data: dict[str, Any] | None = None


class DataSubjectRequestsPublic(_Public):
    """Data-subject requests, newest first."""

    data: list[DataSubjectRequestPublic]
    count: int


class AuditEntryPublic(_Public):
    """One audit log row."""

    id: int
    at: str
    principal: str
    principal_kind: str
    action: str
    resource: str
    detail: dict[str, Any]


class AuditLogPublic(_Public):
    """The newest audit rows."""

    data: list[AuditEntryPublic]
    count: int


class CollectStatusPublic(_Public):
    """The collection log and the loader."""

    stored: int
    last_seq: int
    loaded_seq: int
    waiting: int
    warehouse: dict[str, Any]
    last_load: dict[str, Any] | None
