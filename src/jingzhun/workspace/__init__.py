"""The Python facade: ``Workspace.open(path)`` with ``.ingest``, ``.measure`` and the rest."""

from jingzhun.workspace._workspace import IdentityPart, IngestPart, MeasurePart, Workspace

__all__ = ["IdentityPart", "IngestPart", "MeasurePart", "Workspace"]
