"""Segments: a rule language compiled to SQL, counts, explanations, snapshots, clusters."""

__all__: list[str] = []
