"""jingzhun (精准): self-hosted precision marketing.

Sources → ingest → identity → profiles & tags → segments → models → campaigns → delivery →
measurement, on an embedded DuckDB file or on Spark. Start with ``jingzhun.Workspace.open``.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Workspace", "__version__"]

if TYPE_CHECKING:
    from jingzhun.workspace import Workspace


def __getattr__(name: str) -> Any:
    # Lazy, so that importing jingzhun.core does not pull in every stage (and Spark).
    if name == "Workspace":
        from jingzhun.workspace import Workspace

        return Workspace
    raise AttributeError(name)
