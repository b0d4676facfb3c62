"""Operational store: the small transactional database beside the warehouse.

It keeps what many processes write a little at a time (the run log, identity review decisions
and the model registry now; later the consent ledger, journey state, delivery log, API keys,
audit log) in SQLite (WAL) inside the project folder, or in PostgreSQL when several processes
or machines share it.
Its schema is migrated with Alembic scripts that ship inside this package.
"""

from jingzhun.store._ads_models import (
    AdBudgetDay,
    AdClick,
    AdConversion,
    AdImpression,
    AdLedgerEntry,
)
from jingzhun.store._api_models import ApiKey, ApiSession, ApiUser, AuditEntry, DataSubjectRequest
from jingzhun.store._delivery_models import Delivery, DeliveryStatus
from jingzhun.store._journey_models import (
    EnrollmentState,
    JourneyEnrollment,
    JourneyEvent,
    JourneyTag,
    JourneyWatermark,
)
from jingzhun.store._models import (
    CampaignPlan,
    Consent,
    IdentityDecision,
    IdentityDecisionKind,
    IdentitySplit,
    ModelVersion,
    QueuedMessage,
    RunStatus,
    Suppression,
)
from jingzhun.store._privacy_models import PrivacyKey, PrivacyRequest
from jingzhun.store._sealed import SealedString, StoreCipher
from jingzhun.store._store import OperationalStore, RunRecord

__all__ = [
    "AdBudgetDay",
    "AdClick",
    "AdConversion",
    "AdImpression",
    "AdLedgerEntry",
    "ApiKey",
    "ApiSession",
    "ApiUser",
    "AuditEntry",
    "CampaignPlan",
    "Consent",
    "DataSubjectRequest",
    "Delivery",
    "DeliveryStatus",
    "EnrollmentState",
    "IdentityDecision",
    "IdentityDecisionKind",
    "IdentitySplit",
    "JourneyEnrollment",
    "JourneyEvent",
    "JourneyTag",
    "JourneyWatermark",
    "ModelVersion",
    "OperationalStore",
    "PrivacyKey",
    "PrivacyRequest",
    "QueuedMessage",
    "RunRecord",
    "RunStatus",
    "SealedString",
    "StoreCipher",
    "Suppression",
]
