"""jingzhun (精准): self-hosted precision marketing.

Sources → ingest → identity → profiles & tags → segments → models → campaigns → delivery →
measurement, on an embedded DuckDB file or on Spark. Start with ``jingzhun.Workspace.open``.
"""

__version__ = "0.1.0"
