"""Helpers shared by the API tests (headers, settings, constants)."""

from __future__ import annotations

import base64
from datetime import date
from pathlib import Path

from jingzhun.api import ApiSettings

REPO = Path(__file__).resolve().parents[2]
SECRET = "tracking-secret-for-tests-0123456789"
BANK_AS_OF = date(2024, 6, 30)


def basic(key: str) -> dict[str, str]:
    """Segment's header: the write key as Basic user name, empty password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def settings_for(project: Path, **overrides: object) -> ApiSettings:
    values: dict[str, object] = {
        "project": project,
        "load_interval_seconds": 0,
        "tracking_secret": SECRET,
        "refresh_as_of": BANK_AS_OF,
        "refresh_probabilistic": False,
        "key_cache_seconds": 0,
    }
    values.update(overrides)
    return ApiSettings.model_validate(values)
