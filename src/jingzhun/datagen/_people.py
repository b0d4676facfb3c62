"""Persons (the truth) and the customer records source systems hold about them.

A person registers in one system, the web shop (``W-`` ids) or a store till (``S-`` ids). A share
of persons also has a second record in the other system, typed again by hand: the same details
with typos, another phone format, a missing field. Records are noisy views of a person; the
identity stage has to find which records are one person, and ``identity_truth.parquet`` tells it
the answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from jingzhun.datagen._calendar import US_PER_DAY, Calendar
from jingzhun.datagen._catalog import CATEGORIES, Region

WEB_SYSTEM, STORE_SYSTEM = 0, 1
# Orders by channel for persons registered on the web and in stores (web, app, store, market).
_CHANNEL_MIX = np.array([[0.38, 0.37, 0.10, 0.15], [0.12, 0.05, 0.73, 0.10]])


def weighted_choice(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    """Indices drawn with probability proportional to ``weights``."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    index = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    return np.minimum(index, len(cdf) - 1)


@dataclass(frozen=True)
class People:
    """Persons and their customer records, as parallel numpy arrays.

    Person arrays have one entry per person; ``record_*`` arrays one per row of
    ``customers.parquet``, in file order (by sign-up time).
    """

    # persons
    system: np.ndarray  # the system the person first registered in
    female: np.ndarray
    family: np.ndarray  # index into the region's family names
    given: np.ndarray  # index into the female or male given names
    birth_day: np.ndarray  # days since 1970-01-01
    city: np.ndarray
    zone: np.ndarray  # index into Calendar.timezones
    has_web: np.ndarray
    has_app: np.ndarray
    rate: np.ndarray  # orders per ordinary day while active; 0 for persons who never buy
    dropout: np.ndarray  # chance to stop buying after each order (BG/NBD's p)
    y_birth: np.ndarray  # demand-clock position from which they can buy
    joined_in_window: np.ndarray
    lapsed: np.ndarray  # stopped buying before the window started
    favourite: np.ndarray  # category index
    open_rate: np.ndarray  # chance to open a marketing e-mail
    channel_cdf: np.ndarray  # (n, 4) cumulative order-channel probabilities
    web_record: np.ndarray  # record used online (web, app, marketplace)
    store_record: np.ndarray  # record used at the till
    # records
    record_person: np.ndarray
    record_system: np.ndarray
    record_number: np.ndarray  # sequence number within its system
    record_duplicate: np.ndarray
    record_signup_us: np.ndarray
    record_has_email: np.ndarray
    record_has_phone: np.ndarray
    record_email_consent: np.ndarray  # 1 yes, 0 no, -1 not recorded
    record_sms_consent: np.ndarray
    record_push_consent: np.ndarray
    record_shared_email: np.ndarray
    record_placeholder_phone: np.ndarray

    @property
    def persons(self) -> int:
        """Number of persons."""
        return len(self.system)

    @property
    def records(self) -> int:
        """Number of customer records (persons plus duplicates)."""
        return len(self.record_person)

    @property
    def emailable(self) -> np.ndarray:
        """Persons whose online record has an e-mail address and e-mail consent."""
        rec = self.web_record
        return (
            self.record_has_email[rec]
            & (self.record_email_consent[rec] == 1)
            & ~self.record_shared_email[rec]
        )


def build_people(
    rng: np.random.Generator,
    persons: int,
    calendar: Calendar,
    area: Region,
    duplicate_share: float,
    orders_per_year: float,
) -> People:
    """Draw persons, their purchase behaviour and their customer records.

    ``orders_per_year`` is the mean purchase rate of those who buy, while they are active.
    """
    n = persons
    system = (rng.random(n) < 0.25).astype(np.int8)
    female = rng.random(n) < 0.53
    names = area.names
    family = weighted_choice(rng, np.array([w for _, _, w in names.family]), n)
    given = np.where(
        female,
        weighted_choice(rng, np.array([w for _, _, w in names.female]), n),
        weighted_choice(rng, np.array([w for _, _, w in names.male]), n),
    )
    start_day = (calendar.start - dt.date(1970, 1, 1)).days
    # Adults, roughly normal around the region's mean age; those drawn under 16 are redrawn
    # evenly over 16-24 rather than clipped, which would pile them onto one birthday.
    age_years = rng.normal(area.mean_age, area.sd_age, n)
    age_years = np.where(age_years < 16.0, 16.0 + 8.0 * rng.random(n), np.minimum(age_years, 90.0))
    birth_day = (start_day - age_years * 365.25).astype(np.int64)
    city = weighted_choice(rng, np.array([c.weight for c in area.cities]), n)
    city_zone = np.array([calendar.timezones.index(c.timezone) for c in area.cities])
    zone = city_zone[city]

    web = system == WEB_SYSTEM
    has_app = rng.random(n) < np.where(web, 0.55, 0.15)
    has_web = (rng.random(n) < np.where(web, 0.92, 0.35)) | (web & ~has_app)

    # BG/NBD (Fader, Hardie & Lee 2005): purchase rates vary across customers as a Gamma,
    # and after each purchase a customer drops out with a Beta-distributed probability p.
    # A Gamma shape below 1 gives the long tail: many one-time buyers, a few heavy ones.
    buyer = rng.random(n) < np.where(web, 0.80, 0.92)
    shape = 0.45
    rate = rng.gamma(shape, orders_per_year / 365.0 / shape, n) * buyer
    dropout = rng.beta(1.2, 14.0, n)

    # Sign-ups: a growing share joins inside the window (30 % of a year's window); the rest
    # joined in the five years before, more of them recently. Those made purchases before the
    # window too, and each purchase was a chance to drop out: who is still active at the start
    # follows the same BG/NBD process, so long-standing heavy buyers are often gone.
    in_window = rng.random(n) < 1.0 - 0.7 ** (calendar.days / 365.0)
    y_join = rng.random(n) * calendar.total
    tenure_days = 1.0 + 5 * 365.0 * rng.random(n) ** 1.6
    signup_before = calendar.start_us - (tenure_days * US_PER_DAY).astype(np.int64)
    signup_before -= rng.integers(0, US_PER_DAY // 2, n)
    signup_us = np.where(in_window, calendar.to_utc(y_join, zone), signup_before)
    y_birth = np.where(in_window, y_join, 0.0)
    bought_before = rng.poisson(rate * tenure_days)
    lapsed = ~in_window & (rng.random(n) >= (1.0 - dropout) ** bought_before)

    favourite = weighted_choice(rng, np.array([c.weight for c in CATEGORIES]), n)
    open_rate = rng.beta(1.2, 5.0, n)
    mix = _CHANNEL_MIX[system] * np.stack(
        [has_web, has_app, np.ones(n, bool), np.ones(n, bool)], axis=1
    )
    channel_cdf = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)

    records = _records(rng, system, signup_us, calendar, area, duplicate_share, has_app)
    return People(
        system=system,
        female=female,
        family=family,
        given=given,
        birth_day=birth_day,
        city=city,
        zone=zone,
        has_web=has_web,
        has_app=has_app,
        rate=rate,
        dropout=dropout,
        y_birth=y_birth,
        joined_in_window=in_window,
        lapsed=lapsed,
        favourite=favourite,
        open_rate=open_rate,
        channel_cdf=channel_cdf,
        **records,
    )


def _records(
    rng: np.random.Generator,
    system: np.ndarray,
    signup_us: np.ndarray,
    calendar: Calendar,
    area: Region,
    duplicate_share: float,
    has_app: np.ndarray,
) -> dict[str, np.ndarray]:
    """The customer records of persons: which fields each shows and its consents.

    Returns the ``record_*`` arrays of ``People`` and each person's online and till record.
    """
    n = len(system)
    # Records: the primary one per person, then a second one in the other system for a share
    # of persons. Placeholder contact details go on store records of persons without a twin.
    twins = rng.permutation(n)[: round(duplicate_share * n)]
    twinned = np.zeros(n, bool)
    twinned[twins] = True
    store_only = np.flatnonzero((system == STORE_SYSTEM) & ~twinned)
    junk = rng.permutation(store_only)[: max(1, round(0.008 * len(store_only)))]
    junk_phone = np.zeros(n, bool)
    junk_email = np.zeros(n, bool)
    half = (len(junk) + 1) // 2
    junk_phone[junk[:half]] = True
    junk_email[junk[half:]] = True

    d = len(twins)
    person = np.concatenate([np.arange(n), twins])
    rec_system = np.concatenate([system, 1 - system[twins]]).astype(np.int8)
    duplicate = np.concatenate([np.zeros(n, bool), np.ones(d, bool)])
    shift = rng.uniform(-300, 30, d) * US_PER_DAY
    twin_signup = np.minimum(signup_us[twins] + shift.astype(np.int64), calendar.end_us - 1)
    rec_signup = np.concatenate([signup_us, twin_signup])

    # customers.parquet lists records by sign-up time, numbered per system in that order.
    order = np.argsort(rec_signup, kind="stable")
    person, rec_system, duplicate, rec_signup = (
        person[order],
        rec_system[order],
        duplicate[order],
        rec_signup[order],
    )
    number = np.empty(n + d, dtype=np.int64)
    for s in (WEB_SYSTEM, STORE_SYSTEM):
        mask = rec_system == s
        number[mask] = np.arange(1, mask.sum() + 1)
    position = np.arange(n + d)
    primary = np.empty(n, dtype=np.int64)
    primary[person[~duplicate]] = position[~duplicate]
    second = primary.copy()
    second[person[duplicate]] = position[duplicate]
    # For a twinned person, the web-system record is used online and the store one at tills.
    second_is_web = rec_system[second] == WEB_SYSTEM
    web_record = np.where(second_is_web, second, primary)
    store_record = np.where(second_is_web, primary, second)

    r = n + d
    on_web = rec_system == WEB_SYSTEM
    has_email = rng.random(r) < np.where(
        duplicate, np.where(on_web, 0.90, 0.50), np.where(on_web, 0.97, 0.55)
    )
    has_phone = rng.random(r) < np.where(duplicate, 0.85, np.where(on_web, *area.phones.shares))
    shared_email = ~duplicate & junk_email[person]
    placeholder_phone = ~duplicate & junk_phone[person]
    has_email |= shared_email
    has_phone |= placeholder_phone

    def consent(p_web: float, p_store: float, allowed: np.ndarray) -> np.ndarray:
        # Tills leave one in 25 consent questions unrecorded.
        agreed = (rng.random(r) < np.where(on_web, p_web, p_store)) & allowed
        unknown = ~on_web & (rng.random(r) < 0.04)
        return np.where(unknown, -1, agreed).astype(np.int8)

    real_email = has_email & ~shared_email
    real_phone = has_phone & ~placeholder_phone
    email_consent = consent(0.62, 0.45, real_email)
    sms_consent = consent(0.48, 0.55, real_phone)
    push_consent = np.where(on_web & has_app[person] & (rng.random(r) < 0.6), 1, 0).astype(np.int8)

    return {
        "web_record": web_record,
        "store_record": store_record,
        "record_person": person,
        "record_system": rec_system,
        "record_number": number,
        "record_duplicate": duplicate,
        "record_signup_us": rec_signup,
        "record_has_email": has_email,
        "record_has_phone": has_phone,
        "record_email_consent": email_consent,
        "record_sms_consent": sms_consent,
        "record_push_consent": push_consent,
        "record_shared_email": shared_email,
        "record_placeholder_phone": placeholder_phone,
    }
