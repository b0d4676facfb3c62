"""The Python facade: ``Workspace.open(path)`` with ``.ingest``, ``.measure`` and the rest."""

from jingzhun.workspace._workspace import IngestPart, MeasurePart, Workspace

__all__ = ["IngestPart", "MeasurePart", "Workspace"]
