"""Offers and coupons: what each recipient is offered, and codes they can redeem once.

An ``OfferSpec`` is what the marketer writes in a campaign (one offer, plus variants for
segments: a bigger discount for the price-sensitive, priority service for the service-minded);
``offer_for`` picks the one a customer gets from their segment memberships.

Coupon codes are keyed hashes (HMAC-SHA256 of ``campaign:customer_key`` with a project secret)
written in Crockford's base32, which has no I, L, O or U, plus a Luhn mod 32 check character.
They are unguessable without the secret and deterministic: re-planning the same audience gives
the same codes. A code is single-use: ``redemption_conversions`` accepts the first valid
redemption of each code and refuses the rest, which measurement counts as conversions.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Self

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

# Crockford's base32: digits and letters without I, L, O (read as 1, 1, 0) and U.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {symbol: i for i, symbol in enumerate(CODE_ALPHABET)}
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_PREFIX = re.compile(r"^[A-Z0-9]{0,12}$")
# A guess at random must hit a live code less than once in a million tries.
GUESS_ODDS = 1_000_000
MIN_SECRET_BYTES = 16

COUPON_SCHEMA = pa.schema(
    [
        pa.field("campaign", pa.string(), nullable=False),
        pa.field("customer_key", pa.string(), nullable=False),
        pa.field("code", pa.string(), nullable=False),
        pa.field("offer", pa.string()),
        pa.field("issued_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("expires_at", pa.timestamp("us", tz="UTC")),
    ]
)

REDEMPTION_SCHEMA = pa.schema(
    [
        pa.field("code", pa.string(), nullable=False),
        pa.field("order_id", pa.string()),
        pa.field("redeemed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("campaign", pa.string()),
        pa.field("customer_key", pa.string()),
        pa.field("offer", pa.string()),
        pa.field("accepted", pa.bool_(), nullable=False),
        pa.field("refusal", pa.string()),
    ]
)


class OfferKind(StrEnum):
    """What an offer gives; ``value`` means a percentage, an amount, or nothing."""

    DISCOUNT_PERCENT = "discount_percent"
    DISCOUNT_AMOUNT = "discount_amount"
    FREE_SHIPPING = "free_shipping"
    PRIORITY_SERVICE = "priority_service"
    GIFT = "gift"


class OfferTerms(BaseModel):
    """One offer as written in a spec: name, kind, value, how long it is valid.

    Parameters
    ----------
    value
        Percent off (``0 < value <= 100``) for ``discount_percent``, an amount in the
        project's currency for ``discount_amount`` (required for both), the gift's worth for
        ``gift`` (optional); none for ``free_shipping`` and ``priority_service``.
    valid_days
        Days a coupon for this offer can be redeemed after it is issued.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    kind: OfferKind
    value: Decimal | None = None
    valid_days: int | None = Field(default=None, ge=1, le=366)
    description: str = ""

    @model_validator(mode="after")
    def _value_fits_kind(self) -> Self:
        if self.kind in (OfferKind.DISCOUNT_PERCENT, OfferKind.DISCOUNT_AMOUNT):
            if self.value is None:
                raise ValueError(f"a {self.kind} offer needs a value")
            if self.value <= 0:
                raise ValueError(f"the value of a {self.kind} offer must be above 0")
            if self.kind is OfferKind.DISCOUNT_PERCENT and self.value > 100:
                raise ValueError("a discount_percent value is a percentage: at most 100")
        elif self.kind in (OfferKind.FREE_SHIPPING, OfferKind.PRIORITY_SERVICE):
            if self.value is not None:
                raise ValueError(f"a {self.kind} offer takes no value")
        elif self.value is not None and self.value < 0:
            raise ValueError("a gift's value cannot be negative")
        return self


class OfferVariant(BaseModel):
    """The offer members of one segment get instead of the campaign's offer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment: str = Field(min_length=1)
    offer: OfferTerms


class OfferSpec(OfferTerms):
    """A campaign's offer with per-segment variants; the first variant that matches wins.

    Parameters
    ----------
    valid_days
        Defaults to 30; a variant without its own ``valid_days`` takes this one.
    variants
        ``[{segment, offer}]`` in priority order. Every offer name must be unique so that
        measurement can tell the offers apart.
    coupon_prefix
        When set, every recipient gets their own code (``issue_codes(prefix=...)``); up to
        12 upper-case letters or digits.

    Examples
    --------
    >>> spec = OfferSpec.model_validate({
    ...     "name": "ten_off", "kind": "discount_percent", "value": 10,
    ...     "variants": [{"segment": "price_sensitive",
    ...                   "offer": {"name": "twenty_off", "kind": "discount_percent",
    ...                             "value": 20}}]})
    >>> offer_for(spec, {"price_sensitive", "champions"}).name
    'twenty_off'
    """

    valid_days: int | None = Field(default=30, ge=1, le=366)
    variants: list[OfferVariant] = Field(default_factory=list)
    coupon_prefix: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,12}$")

    @model_validator(mode="after")
    def _variants_distinct(self) -> Self:
        names = {self.name}
        segments: set[str] = set()
        for variant in self.variants:
            if variant.offer.name in names:
                raise ValueError(f"offer name '{variant.offer.name}' is used twice")
            if variant.segment in segments:
                raise ValueError(
                    f"segment '{variant.segment}' has two variants; only the first could apply"
                )
            names.add(variant.offer.name)
            segments.add(variant.segment)
        return self

    @property
    def segments(self) -> list[str]:
        """The segments the variants name, in priority order (for the planner to check)."""
        return [variant.segment for variant in self.variants]


@dataclass(frozen=True)
class Offer:
    """The offer one customer gets: the campaign's offer or a segment's variant."""

    name: str
    kind: OfferKind
    value: Decimal | None
    valid_days: int
    description: str = ""
    segment: str | None = None  # the segment whose variant this is; None for the base offer
    valid_until: date | None = None

    def to_context(self, code: str | None = None) -> dict[str, Any]:
        """The ``offer`` a message template sees, with the recipient's coupon code."""
        return {
            "name": self.name,
            "kind": str(self.kind),
            "value": self.value,
            "valid_days": self.valid_days,
            "valid_until": self.valid_until,
            "description": self.description or None,
            "segment": self.segment,
            "code": code,
        }


def offer_for(
    offer_spec: OfferSpec, memberships: Iterable[str], *, issued_on: date | None = None
) -> Offer:
    """The offer for a customer in ``memberships`` (segment names): first matching variant.

    Parameters
    ----------
    issued_on
        The day the offer is sent; gives ``valid_until = issued_on + valid_days``.
    """
    member_of = set(memberships)
    terms: OfferTerms = offer_spec
    segment = None
    for variant in offer_spec.variants:
        if variant.segment in member_of:
            terms, segment = variant.offer, variant.segment
            break
    valid_days = terms.valid_days or offer_spec.valid_days or 30
    return Offer(
        name=terms.name,
        kind=terms.kind,
        value=terms.value,
        valid_days=valid_days,
        description=terms.description,
        segment=segment,
        valid_until=None if issued_on is None else issued_on + timedelta(days=valid_days),
    )


def _check_character(body: str) -> str:
    """Luhn mod 32 check character: catches every single wrong character and most swaps."""
    total, factor = 0, 2
    for symbol in reversed(body):
        addend = factor * _VALUE[symbol]
        total += addend // 32 + addend % 32
        factor = 1 if factor == 2 else 2
    return CODE_ALPHABET[(32 - total % 32) % 32]


def _body(secret: bytes, message: str, length: int) -> str:
    """``length`` base32 symbols from HMAC-SHA256(secret, message)."""
    number = int.from_bytes(hmac.new(secret, message.encode(), hashlib.sha256).digest(), "big")
    symbols = []
    for _ in range(length):
        symbols.append(CODE_ALPHABET[number & 31])
        number >>= 5
    return "".join(symbols)


def normalize_code(code: str) -> str:
    """A code as typed made canonical: upper case, no spaces, O read as 0, I and L as 1.

    The prefix (before the last ``-``) is only upper-cased.
    """
    text = "".join(str(code).split()).upper()
    prefix, dash, body = text.rpartition("-")
    return f"{prefix}{dash}{body.translate(_READ_AS).replace('-', '')}"


def verify_code(code: str) -> bool:
    """Whether a code's check character fits (a typo is caught before any lookup).

    A valid check does not mean the code was issued: look it up in the coupon rows.
    """
    body = normalize_code(code).rpartition("-")[2]
    if len(body) < 2 or any(symbol not in _VALUE for symbol in body):
        return False
    return _check_character(body[:-1]) == body[-1]


def issue_codes(
    campaign: str,
    customer_keys: Iterable[str],
    *,
    prefix: str = "",
    length: int = 10,
    secret: bytes,
) -> dict[str, str]:
    """One unique, unguessable, single-use coupon code per recipient.

    A code is ``PREFIX-`` (when a prefix is given), ``length`` symbols of
    HMAC-SHA256(secret, ``campaign:customer_key``) in Crockford base32, and a check
    character. The same campaign, customers and secret always give the same codes; when two
    customers' codes collide, the one later in key order takes the next derivation
    (``campaign:customer_key:1``, …), so every code is unique.

    Parameters
    ----------
    prefix
        Up to 12 upper-case letters or digits shown before the code (``WINBACK``).
    length
        Symbols before the check character. It must make random guessing hopeless: the code
        space (32 ** length) has to be at least a million times the number of codes.
    secret
        A project secret of at least 16 bytes (``project.secret("coupons")``); anyone holding
        it can compute every code.
    """
    if not _PREFIX.match(prefix):
        raise ValueError(f"coupon prefix '{prefix}' must be up to 12 upper-case letters or digits")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the coupon secret has {len(secret)} bytes; use at least {MIN_SECRET_BYTES} "
            "random bytes (project.secret('coupons') makes 32)"
        )
    if not 6 <= length <= 40:
        raise ValueError(f"coupon length {length} must be between 6 and 40 symbols")
    keys = sorted(set(customer_keys))
    if 32**length < GUESS_ODDS * max(len(keys), 1):
        needed = next(n for n in range(length, 41) if 32**n >= GUESS_ODDS * len(keys))
        raise ValueError(
            f"{len(keys):,} codes of {length} symbols could be guessed more often than once in "
            f"a million tries; use length >= {needed}"
        )
    head = f"{prefix}-" if prefix else ""
    codes: dict[str, str] = {}
    taken: set[str] = set()
    for key in keys:
        message = f"{campaign}:{key}"
        attempt = 0
        body = _body(secret, message, length)
        while body in taken:
            attempt += 1
            body = _body(secret, f"{message}:{attempt}", length)
        taken.add(body)
        codes[key] = f"{head}{body}{_check_character(body)}"
    return codes


def coupon_rows(
    campaign: str,
    codes: Mapping[str, str],
    *,
    offers: Mapping[str, Offer] | None = None,
    issued_at: datetime | None = None,
) -> pa.Table:
    """The coupons to store: ``campaign, customer_key, code, offer, issued_at, expires_at``.

    Parameters
    ----------
    offers
        Each customer's offer; gives the ``offer`` name and ``expires_at = issued_at +
        valid_days`` (both null without it).
    issued_at
        When the codes were issued (UTC); now when not given.
    """
    when = (issued_at or datetime.now(UTC)).astimezone(UTC)
    keys = sorted(codes)
    chosen = [offers.get(key) if offers else None for key in keys]
    return pa.Table.from_pylist(
        [
            {
                "campaign": campaign,
                "customer_key": key,
                "code": codes[key],
                "offer": offer.name if offer else None,
                "issued_at": when,
                "expires_at": when + timedelta(days=offer.valid_days) if offer else None,
            }
            for key, offer in zip(keys, chosen, strict=True)
        ],
        schema=COUPON_SCHEMA,
    )


def _utc(column: pd.Series) -> pd.Series:
    """Timestamps as UTC instants (naive ones are taken to be UTC already)."""
    return pd.to_datetime(column, utc=True)


def redemption_conversions(coupons: pa.Table, redemptions: pa.Table) -> pa.Table:
    """Redemption events matched to coupons; each code is accepted once.

    A redemption (``code, redeemed_at, order_id``) is accepted when its code was issued
    (``coupons``: ``campaign, customer_key, code`` and optionally ``offer, issued_at,
    expires_at``), it came after the code was issued and before it expired, and no earlier
    redemption of that code was accepted. Others are refused with the reason: ``unknown
    code``, ``not yet issued``, ``expired``, ``already redeemed``. Codes are compared as
    typed by people (``normalize_code``); the same order sending the same code twice counts
    once (its earliest event). Rows come back ordered by code, time and order.

    Returns
    -------
    pyarrow.Table
        ``code, order_id, redeemed_at, campaign, customer_key, offer, accepted, refusal``.
        Measurement counts the accepted rows as conversions of the campaign.
    """
    for needed, table, label in (
        ({"campaign", "customer_key", "code"}, coupons, "coupons"),
        ({"code", "redeemed_at"}, redemptions, "redemptions"),
    ):
        missing = needed - set(table.column_names)
        if missing:
            raise ValueError(
                f"{label} lack column(s) {sorted(missing)}; they need {sorted(needed)}"
            )
    issued = coupons.to_pandas()
    issued["code"] = issued["code"].map(normalize_code)
    twice = issued.loc[issued["code"].duplicated(keep=False)]
    if len(twice):
        first = twice.iloc[0]["code"]
        campaigns = sorted(set(twice.loc[twice["code"] == first, "campaign"]))
        raise ValueError(
            f"{twice['code'].nunique()} code(s) were issued more than once (e.g. {first} in "
            f"{campaigns}); a redemption could not be attributed — keep one row per code"
        )
    for column in ("offer", "issued_at", "expires_at"):
        if column not in issued:
            issued[column] = None
    issued = issued[["code", "campaign", "customer_key", "offer", "issued_at", "expires_at"]]
    issued["issued_at"] = _utc(issued["issued_at"])
    issued["expires_at"] = _utc(issued["expires_at"])

    events = redemptions.to_pandas()
    if "order_id" not in events:
        events["order_id"] = None
    events = events[["code", "order_id", "redeemed_at"]].copy()
    if events["redeemed_at"].isna().any():
        raise ValueError("every redemption needs a redeemed_at time")
    events["code"] = events["code"].astype(str).map(normalize_code)
    events["order_id"] = events["order_id"].astype("object").where(events["order_id"].notna())
    events["redeemed_at"] = _utc(events["redeemed_at"])
    events = events.sort_values(["code", "redeemed_at", "order_id"], na_position="last")
    # The same order naming the same code twice is one redemption sent twice.
    repeated = events["order_id"].notna() & events.duplicated(["code", "order_id"])
    events = events.loc[~repeated]

    rows = events.merge(issued, on="code", how="left", validate="many_to_one")
    refusal = pd.Series(pd.NA, index=rows.index, dtype="object")
    refusal = refusal.mask(rows["campaign"].isna(), "unknown code")
    early = rows["issued_at"].notna() & (rows["redeemed_at"] < rows["issued_at"])
    refusal = refusal.mask(refusal.isna() & early, "not yet issued")
    late = rows["expires_at"].notna() & (rows["redeemed_at"] > rows["expires_at"])
    refusal = refusal.mask(refusal.isna() & late, "expired")
    valid = refusal.isna()
    # Rows are in time order within a code, so the first valid one is the redemption.
    earlier_valid = valid.astype(int).groupby(rows["code"]).cumsum() - valid.astype(int)
    refusal = refusal.mask(valid & (earlier_valid > 0), "already redeemed")
    rows["accepted"] = refusal.isna()
    rows["refusal"] = refusal.where(refusal.notna(), None)
    out = rows[[field.name for field in REDEMPTION_SCHEMA]]
    out = out.astype({"order_id": "object", "campaign": "object", "customer_key": "object"})
    out = out.astype({"offer": "object", "refusal": "object"})
    out = out.where(out.notna(), None)
    return pa.Table.from_pandas(out, schema=REDEMPTION_SCHEMA, preserve_index=False)
