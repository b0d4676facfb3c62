"""Recommendations: what to offer each customer, evaluated offline."""

__all__: list[str] = []
