"""Predictive models: CLV, propensity and churn, uplift, retention, and their registry."""

__all__: list[str] = []
