"""``ApiSettings``: what ``create_app`` and ``jingzhun serve`` are given (built at the entry)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from jingzhun.core import NotFoundError, SpecError
from jingzhun.delivery import load_delivery_settings

DEFAULT_TRACKING_SECRET_ENV = "JINGZHUN_TRACKING_SECRET"


class ApiSettings(BaseModel):
    """Settings of one API server process over one project.

    Parameters
    ----------
    project
        The project folder (``jingzhun.yml``); collection log, snapshot and locks live in its
        ``state/``.
    tracking_secret
        HMAC key of open, click and unsubscribe tokens. None: the variable named by
        ``delivery.yml``'s ``tracking.secret_env``, else ``$JINGZHUN_TRACKING_SECRET``; without
        one the tracking endpoints answer 503.
    load_interval_seconds
        How often the background loader moves collected events into the warehouse and
        refreshes profiles and segments; 0 turns it off (``jingzhun collect flush`` by hand).
    refresh_as_of
        The date profiles and segments are rebuilt for after a load; None: today in the
        project's time zone (live collection).
    refresh_probabilistic
        Whether the refresh runs splink matching too, as ``jingzhun build`` does by default;
        turning it off makes refreshes faster but drops probabilistic merges until the next
        full build.
    """

    model_config = ConfigDict(frozen=True)

    project: Path
    tracking_secret: str | None = None
    load_interval_seconds: float = Field(default=10.0, ge=0)
    refresh_as_of: date | None = None
    refresh_probabilistic: bool = True
    max_event_bytes: int = Field(default=32 * 1024, gt=0)
    max_batch_bytes: int = Field(default=500 * 1024, gt=0)
    session_hours: float = Field(default=12.0, gt=0)
    secure_cookies: bool = False
    key_cache_seconds: float = Field(default=30.0, ge=0)
    busy_retry_seconds: int = Field(default=30, gt=0)

    @property
    def root(self) -> Path:
        """The project folder, absolute."""
        return self.project.resolve()

    @property
    def state_dir(self) -> Path:
        """``state/api`` of the project: the snapshot, locks."""
        return self.root / "state" / "api"

    @property
    def collect_dir(self) -> Path:
        """``state/collect`` of the project: the collection log and batch files."""
        return self.root / "state" / "collect"

    def resolved_tracking_secret(self) -> str | None:
        """The tracking secret: given, else from the environment variable delivery names."""
        if self.tracking_secret:
            return self.tracking_secret
        env = DEFAULT_TRACKING_SECRET_ENV
        try:
            delivery = load_delivery_settings(self.root)
        except (NotFoundError, SpecError):
            delivery = None
        if delivery is not None and delivery.tracking is not None:
            env = delivery.tracking.secret_env
        value = os.environ.get(env, "")
        return value or None
