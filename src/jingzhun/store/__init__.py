"""Operational store: the small transactional database beside the warehouse.

It keeps what many processes write a little at a time (the run log, identity review decisions
and the model registry now; later the consent ledger, journey state, delivery log, API keys,
audit log) in SQLite (WAL) inside the project folder, or in PostgreSQL when several processes
or machines share it.
Its schema is migrated with Alembic scripts that ship inside this package.
"""

from jingzhun.store._delivery_models import Delivery, DeliveryStatus
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
from jingzhun.store._store import OperationalStore, RunRecord

__all__ = [
    "CampaignPlan",
    "Consent",
    "Delivery",
    "DeliveryStatus",
    "IdentityDecision",
    "IdentityDecisionKind",
    "IdentitySplit",
    "ModelVersion",
    "OperationalStore",
    "QueuedMessage",
    "RunRecord",
    "RunStatus",
    "Suppression",
]
