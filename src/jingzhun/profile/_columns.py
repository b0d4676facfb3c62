"""The columns of ``profiles`` and ``tag_history``: names, stored types and meaning."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

PROFILES = "profiles"
TAG_HISTORY = "tag_history"


class Kind(StrEnum):
    """What a profile column holds, as custom tag expressions see it."""

    BOOLEAN = "boolean"
    NUMBER = "number"
    STRING = "string"
    DATE = "date"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class ProfileColumn:
    """One column of ``profiles``."""

    name: str
    type: pa.DataType
    description: str

    @property
    def kind(self) -> Kind:
        """The expression kind of the stored type."""
        t = self.type
        if pa.types.is_boolean(t):
            return Kind.BOOLEAN
        if pa.types.is_string(t):
            return Kind.STRING
        if pa.types.is_date(t):
            return Kind.DATE
        if pa.types.is_timestamp(t):
            return Kind.TIMESTAMP
        return Kind.NUMBER


_S, _B, _I, _F, _D = pa.string(), pa.bool_(), pa.int64(), pa.float64(), pa.date32()
_TS = pa.timestamp("us", tz="UTC")
_MONEY = pa.decimal128(18, 4)

PROFILE_COLUMNS: tuple[ProfileColumn, ...] = (
    ProfileColumn("customer_key", _S, "the customer (from identity_map)"),
    ProfileColumn("as_of", _D, "the date the profile describes"),
    ProfileColumn("email", _S, "by source priority, then the most recently loaded record"),
    ProfileColumn("phone", _S, "as above"),
    ProfileColumn("first_name", _S, "as above"),
    ProfileColumn("last_name", _S, "as above"),
    ProfileColumn("birth_date", _D, "as above"),
    ProfileColumn("gender", _S, "as above"),
    ProfileColumn("city", _S, "as above"),
    ProfileColumn("country", _S, "as above"),
    ProfileColumn("timezone", _S, "as above: the customer's IANA time zone"),
    ProfileColumn("email_consent", _B, "as above"),
    ProfileColumn("sms_consent", _B, "as above"),
    ProfileColumn("push_consent", _B, "as above"),
    ProfileColumn("identifiers", _I, "customer records and devices identity links"),
    ProfileColumn("first_seen", _TS, "first order or event"),
    ProfileColumn("last_seen", _TS, "last order or event"),
    ProfileColumn("first_order_at", _TS, "first order that is not a return"),
    ProfileColumn("last_order_at", _TS, "last order that is not a return"),
    ProfileColumn("orders", _I, "orders that are not returns"),
    ProfileColumn("revenue", _MONEY, "net revenue: gross sales minus returns"),
    ProfileColumn("gross_revenue", _MONEY, "sales before returns"),
    ProfileColumn("returns", _I, "return orders"),
    ProfileColumn("returns_value", _MONEY, "value returned"),
    ProfileColumn("return_rate", _F, "returns_value / gross_revenue (null without sales)"),
    ProfileColumn("recency_days", _I, "days from the last order that is not a return"),
    ProfileColumn("frequency", _I, "orders that are not returns"),
    ProfileColumn("monetary", _MONEY, "net revenue"),
    ProfileColumn("r_score", _I, "recency quintile, 5 = most recent"),
    ProfileColumn("f_score", _I, "frequency quintile, 5 = most orders"),
    ProfileColumn("m_score", _I, "monetary quintile, 5 = most revenue"),
    ProfileColumn("fm_score", _F, "(f_score + m_score) / 2"),
    ProfileColumn("rfm_segment", _S, "named segment from r_score and fm_score"),
    ProfileColumn("value_tier", _S, "high value / potential / general / dormant"),
    ProfileColumn(
        "lifecycle_stage", _S, "prospect / new / reactivated / active / at risk / dormant / churned"
    ),
    ProfileColumn("events", _I, "events up to as_of"),
    ProfileColumn("activity_score", _F, "0-100 from recency-weighted events"),
    ProfileColumn("interest_1", _S, "category with the highest recency-weighted affinity"),
    ProfileColumn("interest_2", _S, "second category"),
    ProfileColumn("interest_3", _S, "third category"),
    ProfileColumn("has_valid_email", _B, "an e-mail address of a valid shape"),
    ProfileColumn("has_valid_phone", _B, "a phone number with 7-15 digits"),
    ProfileColumn("has_push", _B, "push consent given"),
    ProfileColumn("age", _I, "whole years on as_of, from birth_date"),
    ProfileColumn("age_band", _S, "age band (ProfileSettings.age_bands)"),
    ProfileColumn("lead_score", _F, "decaying points from the lead score rules"),
)

COLUMN_BY_NAME: dict[str, ProfileColumn] = {c.name: c for c in PROFILE_COLUMNS}

TAG_HISTORY_SCHEMA = pa.schema(
    [
        ("customer_key", _S),
        ("tag", _S),
        ("value", _S),
        ("valid_from", _D),
        ("valid_to", _D),
    ]
)
