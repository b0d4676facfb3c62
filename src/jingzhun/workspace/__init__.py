"""The Python facade: ``Workspace.open(path)`` with ``.ingest``, ``.measure`` and the rest."""

from jingzhun.workspace._workspace import (
    BuildReport,
    CampaignsPart,
    DeliveryPart,
    IdentityPart,
    IngestPart,
    MeasurePart,
    ModelsPart,
    PrivacyPart,
    ProfilesPart,
    SegmentsPart,
    Workspace,
)

__all__ = [
    "BuildReport",
    "CampaignsPart",
    "DeliveryPart",
    "IdentityPart",
    "IngestPart",
    "MeasurePart",
    "ModelsPart",
    "PrivacyPart",
    "ProfilesPart",
    "SegmentsPart",
    "Workspace",
]
