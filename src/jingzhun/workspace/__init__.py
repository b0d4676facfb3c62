"""The Python facade: ``Workspace.open(path)`` with ``.ingest``, ``.measure`` and the rest."""

from jingzhun.workspace._workspace import (
    IdentityPart,
    IngestPart,
    MeasurePart,
    ProfilesPart,
    Workspace,
)

__all__ = ["IdentityPart", "IngestPart", "MeasurePart", "ProfilesPart", "Workspace"]
