"""What a user writes in a project folder: ``jingzhun.yml`` and ``sources/*.yml``.

These are dialect-free specs validated by pydantic; later stages compile them for an engine.
"""

from __future__ import annotations

import re
import zoneinfo
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from jingzhun.core._tables import CONTRACTS, FieldType, Target

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# ISO 4217 codes are three upper-case letters; we check the shape, not a list that ages.
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_REGION = re.compile(r"^[A-Z]{2}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("must be lower-case letters, digits and _ , starting with a letter")
    return value


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"'{value}' is not an IANA time zone (examples: UTC, Europe/London, Asia/Shanghai)"
        ) from None
    return value


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EngineKind(StrEnum):
    """Warehouse engines the seam can drive."""

    DUCKDB = "duckdb"
    SPARK = "spark"


class EngineSettings(_Spec):
    """Where the warehouse lives. ``path`` is relative to the project folder."""

    kind: EngineKind = EngineKind.DUCKDB
    path: str | None = None
    master: str = "local[2]"
    options: dict[str, str] = Field(default_factory=dict)

    @property
    def resolved_path(self) -> str:
        """Path of the warehouse inside the project, with the engine's default."""
        if self.path:
            return self.path
        return "warehouse/warehouse.duckdb" if self.kind is EngineKind.DUCKDB else "warehouse/spark"


class StoreSettings(_Spec):
    """The operational store: a SQLAlchemy URL. Relative SQLite paths are project-relative."""

    operational: str = "sqlite:///state/operational.db"


class IdentityConfig(_Spec):
    """``identity:`` in jingzhun.yml — how carefully records are merged into one customer."""

    max_nodes_per_identifier: int = Field(
        default=5, ge=2, description="an e-mail or phone shared by more customer records links none"
    )
    blocklist: list[str] = Field(
        default_factory=list, description="placeholder values that never link (added to defaults)"
    )
    allow_same_source_merge: bool = Field(
        default=False,
        description="may two different customer ids of one source become one customer",
    )
    merge_threshold: float = Field(default=0.99, gt=0.0, le=1.0)
    review_threshold: float = Field(default=0.90, gt=0.0, le=1.0)


class ProfilesConfig(_Spec):
    """``profiles:`` in jingzhun.yml — which source wins an attribute, tag windows."""

    source_priority: list[str] = Field(
        default_factory=list, description="source names, most trusted first"
    )


class ProjectSettings(_Spec):
    """``jingzhun.yml``: the whole project's settings."""

    name: str
    timezone: str = "UTC"
    currency: str = "USD"
    region: str = Field("US", description="default country for phone numbers, ISO 3166 alpha-2")
    engine: EngineSettings = Field(default_factory=EngineSettings)
    stores: StoreSettings = Field(default_factory=StoreSettings)
    sources: list[str] = Field(default_factory=lambda: ["sources/*.yml"])
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    profiles: ProfilesConfig = Field(default_factory=ProfilesConfig)

    _name = field_validator("name")(classmethod(lambda cls, value: _check_name(value)))

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError(f"'{value}' is not an ISO 4217 code such as GBP, EUR, CNY, USD")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"'{value}' is not an ISO 3166 alpha-2 code such as GB, CN, US")
        return value


class SourceFormat(StrEnum):
    """File formats a source can read; ``.gz`` compression is detected from the name."""

    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


class CsvOptions(_Spec):
    """How to read a CSV file."""

    delimiter: str = ","
    quote: str = '"'
    header: bool = True
    encoding: str = "utf-8"
    null_values: list[str] = Field(default_factory=lambda: [""])


class ColumnSpec(_Spec):
    """How one canonical field is read from the source.

    ``from`` names the source column; ``type`` overrides the canonical type; the checks
    (``greater_than``, ``at_least``, ...) send failing rows to quarantine with the reason.
    ``starts_with`` derives a boolean (for example returns: invoice numbers starting "C").
    """

    source: str = Field(alias="from")
    type: FieldType | None = None
    format: str | None = Field(None, description="strptime format for dates and timestamps")
    timezone: str | None = None
    required: bool | None = None
    greater_than: float | None = None
    at_least: float | None = None
    less_than: float | None = None
    at_most: float | None = None
    one_of: list[str] | None = None
    pattern: str | None = None
    starts_with: str | None = None
    true_values: list[str] = Field(
        default_factory=lambda: ["true", "t", "yes", "y", "1"],
    )
    false_values: list[str] = Field(default_factory=lambda: ["false", "f", "no", "n", "0"])

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


def _column_from_string(value: Any) -> Any:
    return {"from": value} if isinstance(value, str) else value


class SourceSpec(_Spec):
    """``sources/NAME.yml``: which files to read and how they map onto a canonical table."""

    name: str
    description: str = ""
    path: str = Field(description="file path or glob, relative to the project folder")
    format: SourceFormat | None = None
    target: Target
    timezone: str | None = None
    currency: str | None = None
    csv: CsvOptions = Field(default_factory=CsvOptions)
    columns: dict[str, ColumnSpec]
    max_bad_fraction: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="share of a file's rows that may be quarantined before the file is rejected",
    )

    _name = field_validator("name")(classmethod(lambda cls, value: _check_name(value)))

    @field_validator("columns", mode="before")
    @classmethod
    def _short_columns(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _column_from_string(v) for k, v in value.items()}
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)

    @field_validator("columns")
    @classmethod
    def _columns_belong_to_target(
        cls, value: dict[str, ColumnSpec], info: ValidationInfo
    ) -> dict[str, ColumnSpec]:
        target = info.data.get("target")
        if target is None:
            return value
        contract = CONTRACTS[target]
        for name in value:
            if name not in contract.field_names:
                allowed = ", ".join(contract.field_names)
                raise ValueError(
                    f"column '{name}' is not a field of {target.value}; allowed: {allowed}"
                )
        missing = [
            f.name
            for f in contract.fields
            if f.required and f.name not in value and f.name != "line_number"
        ]
        if missing:
            raise ValueError(
                f"required fields of {target.value} are not mapped: {', '.join(missing)}"
            )
        return value

    def file_format(self, filename: str) -> SourceFormat:
        """The declared format, or the one the file name tells."""
        if self.format is not None:
            return self.format
        name = filename.lower().removesuffix(".gz")
        for fmt, suffixes in {
            SourceFormat.CSV: (".csv", ".tsv", ".txt"),
            SourceFormat.PARQUET: (".parquet", ".pq"),
            SourceFormat.JSONL: (".jsonl", ".ndjson", ".json"),
        }.items():
            if name.endswith(suffixes):
                return fmt
        return SourceFormat.CSV
