"""The Python facade: ``Workspace.open(path)`` with ``.ingest``, ``.measure`` and the rest."""

from jingzhun.workspace._workspace import (
    BuildReport,
    CampaignsPart,
    IdentityPart,
    IngestPart,
    MeasurePart,
    ModelsPart,
    ProfilesPart,
    SegmentsPart,
    Workspace,
)

__all__ = [
    "BuildReport",
    "CampaignsPart",
    "IdentityPart",
    "IngestPart",
    "MeasurePart",
    "ModelsPart",
    "ProfilesPart",
    "SegmentsPart",
    "Workspace",
]
