"""``privacy.yml``: what happens when an erased person's identifiers come back, which store
tables keep an anonymised row instead of losing it, the master key's file, and retention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from jingzhun.core import SpecError, SpecProblem, parse_model
from jingzhun.core._yaml import load_yaml

SETTINGS_FILE = "privacy.yml"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetentionRule(_Spec):
    """Rows of one table older than ``days`` (by ``column``) are purged."""

    days: int = Field(ge=1, description="keep rows this many days")
    column: str | None = Field(
        default=None, description="the date or timestamp column (default: _loaded_at)"
    )


class PrivacySettings(_Spec):
    """Settings of the privacy stage (``privacy.yml`` in the project; every field optional)."""

    on_return: Literal["suppress", "new_customer_with_consent"] = Field(
        default="suppress",
        description="an erased person's identifiers arriving again: drop the rows, or let them "
        "start a new customer who is not contacted until a fresh consent is recorded",
    )
    encrypt_at_rest: bool | None = Field(
        default=None,
        description="encrypt the warehouse's personal columns (e-mails, phones, names, "
        "identifiers, quarantined records) with AES-GCM; default: on for DuckDB, off for Spark "
        "(not supported there: true is an error)",
    )
    master_key_file: str = Field(
        default="state/keys/master.key",
        description="the master key (32 bytes) when JINGZHUN_MASTER_KEY is not set",
    )
    anonymise_tables: list[str] = Field(
        default_factory=lambda: ["audit_log", "data_subject_requests", "runs", "privacy_requests"],
        description="operational-store tables whose rows are kept with the identifiers "
        "replaced (accountability records); every other table loses the person's rows",
    )
    scan_exclude: list[str] = Field(
        default_factory=lambda: [".git/**", "state/keys/**", ".venv/**"],
        description="globs (relative to the project) that erase and export do not read",
    )
    retention: dict[str, RetentionRule] = Field(
        default_factory=dict, description="table name: {days, column}"
    )


def load_privacy_settings(root: Path) -> PrivacySettings:
    """``privacy.yml`` of a project, or the defaults when there is none."""
    path = root / SETTINGS_FILE
    if not path.is_file():
        return PrivacySettings()
    settings, problems = parse_model(PrivacySettings, load_yaml(path))
    if settings is None or problems:
        raise SpecError(problems or [SpecProblem(path, None, "", "not a privacy settings file")])
    return settings
