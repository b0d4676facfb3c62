"""Delivery: channels, the delivery log, exactly-once sends, journeys."""

__all__: list[str] = []
