"""Probabilistic record matching with splink: which records without a shared key are one person.

The model is Fellegi and Sunter's (1969, "A theory for record linkage", JASA 64): a pair of
records is compared field by field, each level of agreement carries a weight log2(m/u) — m its
chance among true matches, u among non-matches — and the weights add up to a match weight and
a match probability. splink (Linacre et al., UK Ministry of Justice) estimates u on random pairs
and m by expectation maximisation on blocked pairs, and scales the weight of an exact name match
by how common the name is (term-frequency adjustment): two 王伟 or two Smiths need more evidence
than two 诸葛亮.

Rules sit on top of the probabilities, because merging two people is worse than missing a link
(issue 3) and the evidence that looks strongest — a shared phone or mailbox — is exactly what
families and namesakes produce:

- household: without an agreeing birth date, records merge only with the same name (or a shared
  *mobile* number, a person's own, with the family name): spouses, parents and children share a
  fixed line or a mailbox, and siblings' names can be one character apart (子涵, 子轩);
- birth dates present on both that differ (neither a one-digit slip nor day and month swapped),
  or genders that differ, never merge;
- namesake: no merge without an exactly agreeing e-mail, phone or birth date — name and city alone
  are shared by many people (30 different 王伟 live in 北京).

A pair those rules hold back goes to review at most. Three thresholds on the match probability
route every scored pair: ``merge``, ``review`` or ``no``; clusters are the connected components
of the merge pairs.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from jingzhun.core import IngestError, JingzhunError, SpecError, SpecProblem
from jingzhun.identity._columns import ColumnMap, recognise_columns, split_full_names
from jingzhun.identity._identifiers import (
    DEFAULT_BLOCKED_EMAIL_DOMAINS,
    DEFAULT_BLOCKED_EMAIL_LOCAL_PARTS,
    DEFAULT_BLOCKED_EMAILS,
    DEFAULT_BLOCKED_PHONES,
)
from jingzhun.identity._normalize import normalize_emails, normalize_phones

DEFAULT_SEED = 20240611
# Below this many records EM has too few pairs to learn from: the prior m and u below are used
# as they are (the match share and the name frequencies still come from the data).
MIN_RECORDS_TO_TRAIN = 500
# Random pairs for u. splink suggests 1e7 or more for a final model; u of the levels that
# decide here (names, dates, city) is stable at 1e6, which takes about 3 s on two cores. The
# shared-identifier levels are set rather than sampled (see PHONE), the other rare levels are
# corrected for the matches in the sample (``_corrected``).
U_SAMPLE_PAIRS = 1e6
# The deterministic rules (same full name and e-mail, phone or birth date) find about this share
# of true pairs in messy data (measured on benchmarks/identity_data.py); it scales their count up
# to the share of pairs that match.
DETERMINISTIC_RECALL = 0.6
# Bounds on trained parameters: no level impossible for a true match (EM gives m = 0 to "city
# differs" when no training match moved), no u below one pair in ten million.
M_FLOOR = 0.01
U_FLOOR = 1e-7
# An e-mail or phone on more records than this is a placeholder or a shop's own address: it says
# nothing about who a record is (the deterministic graph's max_nodes_per_identifier, with room
# for a family of four with two records each).
MAX_RECORDS_PER_IDENTIFIER = 10
# Placeholders (13800138000, noemail@..., example.com) are the deterministic graph's lists, so
# that both halves of identity resolution ignore the same values.
# Year-last slash dates read month first here, else day first; the day/month-swap level of the
# birth-date comparison catches a wrong guess either way.
_MONTH_FIRST_REGIONS = frozenset({"US", "PH", "FM", "MH", "PW"})


class Decision(StrEnum):
    """What happens to a scored pair of records."""

    MERGE = "merge"
    REVIEW = "review"
    NO = "no"


class MatchError(JingzhunError, ValueError):
    """Matching cannot run on this input; raised before any work is done."""


@dataclass(frozen=True)
class MatchThresholds:
    """Match-probability thresholds: at or above ``merge`` merge, at or above ``review`` review."""

    merge: float = 0.99
    review: float = 0.90

    def __post_init__(self) -> None:
        if not 0.0 < self.review <= self.merge <= 1.0:
            raise ValueError(
                f"thresholds need 0 < review <= merge <= 1, got review={self.review}, "
                f"merge={self.merge}"
            )


@dataclass(frozen=True)
class MatchResult:
    """Scored pairs with their decisions, clusters of merged records, the model that scored them.

    ``pairs``: ``id_l``, ``id_r``, ``match_weight``, ``match_probability``, ``decision``,
    ``reason`` (the rule that keeps a likely pair from merging, else null) and ``evidence`` (the
    agreement level of each field, for a reviewer). ``clusters``: ``id``, ``cluster_id`` (the
    smallest id among the records merged with it; its own id when alone), in input order.
    ``settings``: splink's model JSON; ``match_records(..., settings=...)`` scores with it again
    without training. ``trained`` is False when the input was too small to train on.
    """

    pairs: pa.Table
    clusters: pa.Table
    settings: dict[str, Any]
    seed: int
    trained: bool
    columns: ColumnMap
    thresholds: MatchThresholds


@dataclass(frozen=True)
class MatchSummary:
    """What ``match_file`` did, for the command line and ``--json``."""

    input_path: Path
    output_path: Path
    records: int
    clusters: int
    merged_records: int  # records in a cluster of two or more
    merge_pairs: int
    review_pairs: int
    columns: dict[str, str]
    seed: int
    trained: bool
    seconds: float
    thresholds: MatchThresholds = field(default_factory=MatchThresholds)

    def to_dict(self) -> dict[str, object]:
        """Plain values for ``--json``."""
        return {
            "input": str(self.input_path),
            "output": str(self.output_path),
            "records": self.records,
            "clusters": self.clusters,
            "merged_records": self.merged_records,
            "merge_pairs": self.merge_pairs,
            "review_pairs": self.review_pairs,
            "columns": self.columns,
            "seed": self.seed,
            "trained": self.trained,
            "thresholds": {"merge": self.thresholds.merge, "review": self.thresholds.review},
            "seconds": round(self.seconds, 3),
        }


# -- features ------------------------------------------------------------------------------

_STRING = pa.string()


def _map_distinct(
    values: pa.Array, fn: Callable[[str], Any], type: pa.DataType = _STRING
) -> pa.Array:
    """Apply ``fn`` once per distinct non-null text (customer tables repeat values a lot)."""
    distinct = pc.unique(values).drop_null()
    mapped = pa.array([fn(v) for v in distinct.to_pylist()], type)
    return pc.take(mapped, pc.index_in(values, value_set=distinct))


def _text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values.cast(_STRING)


@lru_cache(maxsize=200_000)
def _name_text(value: str) -> str | None:
    # Compatibility folding (full-width letters), accents off (Zoë = Zoe, Müller = Muller), no
    # spaces or punctuation ("O'Brien" = "OBrien", "王 伟" = "王伟"). Hanzi and pinyin stay as
    # written: 王伟 and "Wang Wei" are two spellings the model does not connect.
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", value))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = unicodedata.normalize("NFC", text).lower()
    return "".join(ch for ch in text if ch.isalnum()) or None


@lru_cache(maxsize=100_000)
def _city_text(value: str) -> str | None:
    text = "".join(unicodedata.normalize("NFKC", value).lower().split())
    if len(text) > 2 and text.endswith("市"):
        text = text[:-1]  # 北京市 is 北京
    return text or None


def _postcode_text(value: str) -> str | None:
    return "".join(unicodedata.normalize("NFKC", value).upper().split()) or None


def _address_text(value: str) -> str | None:
    text = unicodedata.normalize("NFKC", value).lower()
    return "".join(ch for ch in text if ch.isalnum()) or None


_GENDERS = {
    "m": "M", "male": "M", "man": "M", "男": "M", "男性": "M", "先生": "M",
    "f": "F", "female": "F", "woman": "F", "女": "F", "女性": "F", "女士": "F",
}  # fmt: skip


def _gender_text(value: str) -> str | None:
    return _GENDERS.get(unicodedata.normalize("NFKC", value).strip().lower())


_ISO_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T].*)?$")
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_YEAR_LAST_DATE = re.compile(r"^(\d{1,2})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{4})$")


@lru_cache(maxsize=200_000)
def parse_birth_date(value: str, month_first: bool = False) -> str | None:
    """ISO date from ISO, ``1990/3/5``, ``1990年3月5日``, ``19900305``, d/m/Y or m/d/Y text.

    A year-last date reads day first, unless its second part cannot be a month (``12/25/1990``),
    or both parts could be months and ``month_first`` (the US habit) is set. None when the text
    is no real date between 1900 and 2100.
    """
    text = unicodedata.normalize("NFKC", value).strip()
    found = _ISO_DATE.match(text) or _COMPACT_DATE.match(text)
    if found:
        year, month, day = (int(g) for g in found.groups())
    elif found := _YEAR_LAST_DATE.match(text):
        a, b, year = (int(g) for g in found.groups())
        month_first = (month_first and a <= 12) or b > 12
        month, day = (a, b) if month_first else (b, a)
    else:
        return None
    try:
        date = dt.date(year, month, day)
    except ValueError:
        return None
    return date.isoformat() if 1900 <= year <= 2100 else None


def _swapped_date(iso: str) -> str | None:
    year, month, day = iso.split("-")
    return None if int(day) > 12 or day == month else f"{year}-{day}-{month}"


def _is_mobile(e164: str) -> bool:
    # A mobile number is one person's (Chinese SIM cards are registered to an ID card since
    # 2013); a fixed line is a household's or a shop's. North American numbers cannot tell
    # (FIXED_LINE_OR_MOBILE): they count as not known to be mobile.
    number = phonenumbers.parse(e164, None)
    return bool(phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE)


def _is_hanzi(text: str) -> bool:
    return all("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)


def _sorted_characters(text: str) -> str:
    return "".join(sorted(text))


def _unusable_to_null(values: pa.Array, limit: int, blocked: pa.Array) -> pa.Array:
    """Null out placeholders: listed values and values on more than ``limit`` records."""
    counts = pc.value_counts(values.drop_null())
    frequent = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), limit))
    unusable = pa.concat_arrays([frequent.cast(_STRING), blocked.cast(_STRING)])
    if len(unusable) == 0:
        return values
    drop = pc.fill_null(pc.is_in(values, value_set=unusable), False)
    return pc.if_else(drop, pa.scalar(None, _STRING), values)


def prepare_features(
    records: pa.Table,
    *,
    id_column: str,
    columns: ColumnMap,
    region: str,
    max_records_per_identifier: int = MAX_RECORDS_PER_IDENTIFIER,
    blocklist: Iterable[str] = (),
) -> pa.Table:
    """One row per record with the normalised fields the model compares.

    Columns: ``unique_id``; ``first_name``, ``surname``, ``name_key`` (the two sorted, so "Wei
    Wang" and "Wang Wei" agree), ``first_name_chars``, ``surname_chars`` (characters sorted:
    静婷 and 婷静 agree), ``hanzi`` (the name is written in Hanzi); ``email``, ``email_local``,
    ``email_domain``; ``phone`` (E.164), ``phone_key`` (E.164, else the digits typed),
    ``phone_last8``, ``phone_mobile``; ``birth_date`` (ISO) and ``birth_date_swapped`` (day and
    month exchanged); ``city``, ``postcode``, ``address``, ``gender``. Null where the export
    has no value. Placeholder e-mails and phones (the graph's ``DEFAULT_BLOCKED_*`` lists,
    ``blocklist``, or on more than ``max_records_per_identifier`` records) are null too.
    """
    n = records.num_rows
    nulls = pa.nulls(n, _STRING)

    def column(name: str | None) -> pa.Array:
        return nulls if name is None else _text(records[name])

    first, last = column(columns.first_name), column(columns.last_name)
    if columns.full_name is not None:
        given, family = split_full_names(column(columns.full_name).to_pylist())
        neither = pc.and_(pc.is_null(first), pc.is_null(last))
        first = pc.if_else(neither, pa.array(given, _STRING), first)
        last = pc.if_else(neither, pa.array(family, _STRING), last)
    first, last = _map_distinct(first, _name_text), _map_distinct(last, _name_text)
    name_key = pc.binary_join_element_wise(  # null unless both names are there
        pc.min_element_wise(first, last, skip_nulls=False),
        pc.max_element_wise(first, last, skip_nulls=False),
        " ",
    )
    hanzi = pc.and_(
        _map_distinct(first, _is_hanzi, pa.bool_()), _map_distinct(last, _is_hanzi, pa.bool_())
    )

    listed_emails = pa.array([*DEFAULT_BLOCKED_EMAILS, *blocklist], _STRING)
    email = _unusable_to_null(
        normalize_emails(column(columns.email)).values,
        max_records_per_identifier,
        normalize_emails(listed_emails).values.drop_null(),
    )
    parts = pc.split_pattern(email, "@", max_splits=1)
    placeholder = pc.or_(
        pc.is_in(pc.list_element(parts, 0), value_set=pa.array(DEFAULT_BLOCKED_EMAIL_LOCAL_PARTS)),
        pc.is_in(pc.list_element(parts, 1), value_set=pa.array(DEFAULT_BLOCKED_EMAIL_DOMAINS)),
    )
    email = pc.if_else(pc.fill_null(placeholder, False), nulls, email)
    parts = pc.split_pattern(email, "@", max_splits=1)

    raw_phone = column(columns.phone)
    e164 = normalize_phones(raw_phone, region).values
    digits = pc.replace_substring_regex(raw_phone, r"\D", "")
    digits = pc.if_else(pc.greater_equal(pc.utf8_length(digits), 7), digits, nulls)
    listed_phones = pa.array([*DEFAULT_BLOCKED_PHONES, *blocklist], _STRING)
    blocked_phones = pa.concat_arrays(
        [
            normalize_phones(listed_phones, region).values.drop_null(),
            pc.replace_substring_regex(listed_phones, r"\D", ""),
        ]
    )
    # A number libphonenumber refuses (a digit dropped or doubled) still compares by its digits.
    phone_key = _unusable_to_null(
        pc.coalesce(e164, digits), max_records_per_identifier, blocked_phones
    )
    phone = pc.if_else(pc.is_null(phone_key), nulls, e164)
    long_enough = pc.greater_equal(pc.utf8_length(phone_key), 8)
    phone_last8 = pc.if_else(long_enough, pc.utf8_slice_codeunits(phone_key, -8), nulls)

    month_first = region.upper() in _MONTH_FIRST_REGIONS
    birth_date = _map_distinct(
        column(columns.birth_date), lambda v: parse_birth_date(v, month_first)
    )
    return pa.table(
        {
            "unique_id": column(id_column),
            "first_name": first,
            "surname": last,
            "name_key": name_key,
            "first_name_chars": _map_distinct(first, _sorted_characters),
            "surname_chars": _map_distinct(last, _sorted_characters),
            "hanzi": pc.fill_null(hanzi, False),
            "email": email,
            "email_local": pc.list_element(parts, 0),
            "email_domain": pc.list_element(parts, 1),
            "phone": phone,
            "phone_key": phone_key,
            "phone_last8": phone_last8,
            "phone_mobile": _map_distinct(phone, _is_mobile, pa.bool_()),
            "birth_date": birth_date,
            "birth_date_swapped": _map_distinct(birth_date, _swapped_date),
            "city": _map_distinct(column(columns.city), _city_text),
            "postcode": _map_distinct(column(columns.postcode), _postcode_text),
            "address": _map_distinct(column(columns.address), _address_text),
            "gender": _map_distinct(column(columns.gender), _gender_text),
        }
    )


# -- the model -----------------------------------------------------------------------------
# Conditions are splink SQL over our own feature columns (``<feature>_l``, ``<feature>_r``);
# no name or value from the user's file ever enters them.


@dataclass(frozen=True)
class _Level:
    label: str
    sql: str
    m: float  # prior m and u: used untrained, and where the data cannot estimate them
    u: float
    tf: str | None = None  # term-frequency adjustment by this column's value frequency
    fixed: bool = False  # m and u as given, never trained
    # u = shared / (records - 1), never trained: see PHONE and EMAIL
    shared: float | None = None


@dataclass(frozen=True)
class _Comparison:
    name: str
    column: str
    levels: tuple[_Level, ...]

    def gamma(self, label: str) -> int:
        """Comparison-vector value splink gives a level: the first counts highest, null -1."""
        return len(self.levels) - 1 - [lv.label for lv in self.levels].index(label)

    def to_dict(self, records: int) -> dict[str, Any]:
        """The comparison in splink's settings format, for an input of ``records`` records."""
        levels: list[dict[str, Any]] = [
            {
                "sql_condition": f"{self.column}_l IS NULL OR {self.column}_r IS NULL",
                "label_for_charts": "missing",
                "is_null_level": True,
            }
        ]
        for level in self.levels:
            entry: dict[str, Any] = {
                "sql_condition": level.sql,
                "label_for_charts": level.label,
                "m_probability": level.m,
                "u_probability": level.u,
            }
            if level.tf:
                entry["tf_adjustment_column"] = level.tf
                entry["tf_adjustment_weight"] = 1.0
            if level.fixed:
                entry["fix_m_probability"] = entry["fix_u_probability"] = True
            if level.shared is not None:
                entry["u_probability"] = min(level.shared / max(records - 1, 1), 0.5)
                entry["fix_u_probability"] = True
            levels.append(entry)
        return {
            "output_column_name": self.name,
            "comparison_description": self.name,
            "comparison_levels": levels,
        }


def _eq(left: str, right: str | None = None) -> str:
    return f"{left}_l = {right or left}_r"


def _jw(column: str, at_least: float) -> str:
    return f"jaro_winkler_similarity({column}_l, {column}_r) >= {at_least}"


# DuckDB's damerau_levenshtein costs about 5 us on a phone number and u is estimated on a
# million random pairs: edit levels run cheap tests first (equal length and one differing
# character) and the full distance only on the few pairs that pass them.
def _one_character(column: str) -> str:
    """One character replaced, or two neighbours swapped, in text of fixed length."""
    # hamming fails on texts of different lengths; only CASE promises not to evaluate it there.
    hamming = (
        f"CASE WHEN length({column}_l) = length({column}_r) "
        f"THEN hamming({column}_l, {column}_r) ELSE 99 END"
    )
    swap = f"damerau_levenshtein({column}_l, {column}_r) <= 1"
    return f"{hamming} <= 1 OR ({hamming} = 2 AND {swap})"


def _one_edit(column: str) -> str:
    """One character replaced, added or dropped, or the same characters in another order.

    One name must have two characters or more: two one-character Hanzi names (伟, 强) are
    always one edit apart.
    """
    longer = f"greatest(length({column}_l), length({column}_r)) >= 2"
    edit = f"levenshtein({column}_l, {column}_r) <= 1"
    anagram = f"{column}_chars_l = {column}_chars_r"
    return f"{longer} AND ({edit} OR {anagram})"


# Hanzi and Latin names fail differently, so their fuzzy levels are apart and EM learns m and u
# for each: a wrong character from the input method changes a Hanzi name completely (洁 for 杰),
# while pinyin syllables are so short that many are one letter apart (xu, wu, hu; han, hang).
_HANZI = "hanzi_l AND hanzi_r"


def _one_edit_latin(column: str) -> str:
    return f"{_one_edit(column)} AND greatest(length({column}_l), length({column}_r)) >= 4"


def _similar_latin(column: str) -> str:
    return f"{_jw(column, 0.9)} AND greatest(length({column}_l), length({column}_r)) >= 5"


# Priors: rounded from the model trained on 42k messy records (benchmarks/identity_match.py,
# data seed 2024); m of levels EM never saw there is M_FLOOR.
FIRST_NAME = _Comparison(
    "first_name",
    "first_name",
    (
        _Level("exact", _eq("first_name"), 0.78, 0.012, tf="first_name"),
        # Given and family name the other way round ("Wei Wang", "Wang Wei"): the whole name
        # agrees, weighed by how common the whole name is.
        _Level("swapped with surname", _eq("name_key"), 0.028, 0.00001, tf="name_key"),
        _Level("one edit, Hanzi", f"{_HANZI} AND {_one_edit('first_name')}", 0.01, 0.00005),
        _Level("one edit", _one_edit_latin("first_name"), 0.03, 0.0003),
        _Level("similar", _similar_latin("first_name"), 0.01, 0.000004),
        _Level("different Hanzi", _HANZI, 0.15, 0.58),
        _Level("else", "ELSE", 0.024, 0.41),
    ),
)
SURNAME = _Comparison(
    "surname",
    "surname",
    (
        _Level("exact", _eq("surname"), 0.82, 0.04, tf="surname"),
        # Already counted as the first name's "swapped" level: no weight of its own.
        _Level("swapped with first name", _eq("name_key"), 0.0001, 0.0001, fixed=True),
        _Level("one edit, Hanzi", f"{_HANZI} AND {_one_edit('surname')}", 0.02, 0.0005),
        _Level("one edit", _one_edit_latin("surname"), 0.03, 0.0006),
        _Level("similar", _similar_latin("surname"), 0.01, 0.00001),
        _Level("different Hanzi", _HANZI, 0.11, 0.55),
        _Level("else", "ELSE", 0.014, 0.41),
    ),
)
BIRTH_DATE = _Comparison(
    "birth_date",
    "birth_date",
    (
        _Level("exact", _eq("birth_date"), 0.8, 0.000065),
        _Level("day and month swapped", _eq("birth_date", "birth_date_swapped"), 0.089, 0.00003),
        _Level("one digit", _one_character("birth_date"), 0.01, 0.0018),
        _Level("else", "ELSE", 0.1, 0.998),
    ),
)
EMAIL = _Comparison(
    "email",
    "email",
    (
        # As for phones (below), u is set, not sampled: one customer in twenty shares a mailbox
        # with another (a family's address).
        _Level("exact", _eq("email"), 0.85, 0.0, shared=0.05),
        # One slip in the domain (gmial.com, qq.con, 163.cm). 163.com and 126.com are two real
        # providers two edits apart, and a name-like mailbox can exist at both: not this level.
        _Level(
            "same mailbox, domain typo",
            f"{_eq('email_local')} AND damerau_levenshtein(email_domain_l, email_domain_r) <= 1",
            0.085,
            0.000001,
        ),
        _Level(
            "one edit",
            f"{_eq('email_domain')} AND levenshtein(email_local_l, email_local_r) <= 1",
            0.03,
            0.000002,
        ),
        _Level("else", "ELSE", 0.062, 0.99999),
    ),
)
PHONE = _Comparison(
    "phone",
    "phone_key",
    (
        # A shared mobile is a person's, a shared fixed line may be a family's. How often two
        # different people share a number cannot be learnt from random pairs: a million of
        # them hold about twenty that share one, nearly all the same person, and u is their
        # small difference from the matches expected, lost in the sampling noise (seen: weights
        # from +16 to +23 bits between data seeds). So u is set: one customer in fifty gives a
        # mobile that another customer in the file gives too (a parent's number for a child),
        # and one in three a fixed line (a family's).
        _Level("exact, mobile", f"{_eq('phone_key')} AND phone_mobile_l", 0.88, 0.0, shared=0.02),
        _Level("exact", _eq("phone_key"), 0.055, 0.0, shared=0.3),
        _Level("same last 8 digits", _eq("phone_last8"), 0.048, 0.0000001),
        _Level("one digit", _one_character("phone_key"), 0.036, 0.00002),
        _Level("else", "ELSE", 0.028, 0.99997),
    ),
)
CITY = _Comparison(
    "city",
    "city",
    (
        _Level("exact", _eq("city"), 0.99, 0.063, tf="city"),
        _Level("else", "ELSE", 0.01, 0.937),
    ),
)
POSTCODE = _Comparison(
    "postcode",
    "postcode",
    (
        _Level("exact", _eq("postcode"), 0.80, 0.005),
        _Level("one edit", _one_character("postcode"), 0.08, 0.02),
        _Level("else", "ELSE", 0.12, 0.975),
    ),
)
ADDRESS = _Comparison(
    "address",
    "address",
    (
        _Level("exact", _eq("address"), 0.60, 0.0005),
        _Level("similar", _jw("address", 0.90), 0.25, 0.003),
        _Level("else", "ELSE", 0.15, 0.9965),
    ),
)
GENDER = _Comparison(
    "gender",
    "gender",
    (
        _Level("exact", _eq("gender"), 0.98, 0.5),
        _Level("else", "ELSE", 0.02, 0.5),
    ),
)
COMPARISONS = (FIRST_NAME, SURNAME, BIRTH_DATE, EMAIL, PHONE, CITY, POSTCODE, ADDRESS, GENDER)
_NEEDS: dict[str, tuple[str, ...]] = {  # comparison -> ColumnMap fields, any of which feeds it
    "first_name": ("first_name", "full_name"),
    "surname": ("last_name", "full_name"),
    "birth_date": ("birth_date",),
    "email": ("email",),
    "phone": ("phone",),
    "city": ("city",),
    "postcode": ("postcode",),
    "address": ("address",),
    "gender": ("gender",),
}
PRIOR_MATCH_SHARE = 1e-4  # probability that two random records match, when nothing estimates it


def _compared(columns: ColumnMap) -> set[str]:
    """Names of the comparisons the export's columns allow."""
    mapped = columns.mapped()
    return {name for name, fields in _NEEDS.items() if any(f in mapped for f in fields)}


def _blocking_rules(has: set[str]) -> list[str]:
    """Pairs worth scoring: sharing an identifier, or a name with a birth date or city."""
    names = "first_name" in has or "surname" in has
    rules: list[str] = []
    if "email" in has:
        rules += ["l.email = r.email", "l.email_local = r.email_local"]
    if "phone" in has:
        rules.append("l.phone_last8 = r.phone_last8")
    if names and "birth_date" in has:
        rules += [
            "l.surname = r.surname AND l.birth_date = r.birth_date",
            "l.first_name = r.first_name AND l.birth_date = r.birth_date",
            "l.surname = r.surname AND l.birth_date = r.birth_date_swapped",
            "l.first_name = r.first_name AND l.birth_date = r.birth_date_swapped",
        ]
    if "birth_date" in has and "city" in has:
        rules.append("l.birth_date = r.birth_date AND l.city = r.city")  # both names mistyped
    if names and "city" in has:
        rules.append("l.name_key = r.name_key AND l.city = r.city")
    if names and "postcode" in has:
        rules.append("l.surname = r.surname AND l.postcode = r.postcode")
    return rules


def _training_rules(has: set[str]) -> list[str]:
    """EM blocks: each leaves the other fields free to show how matches differ from non-matches."""
    names = "first_name" in has or "surname" in has
    rules: list[str] = []
    if "phone" in has:
        rules.append("l.phone_key = r.phone_key")
    elif "email" in has:
        rules.append("l.email = r.email")
    if names and "birth_date" in has:
        rules.append("l.surname = r.surname AND l.birth_date = r.birth_date")
    elif names and "city" in has:
        rules.append("l.name_key = r.name_key AND l.city = r.city")
    return rules


def _deterministic_rules(has: set[str]) -> list[str]:
    """Rules that admit almost no false matches, to estimate the share of pairs that match."""
    same = "l.first_name = r.first_name AND l.surname = r.surname AND "
    if "first_name" not in has:
        same = ""
    keys = {"email": "l.email = r.email", "phone": "l.phone_key = r.phone_key"}
    if same:
        keys["birth_date"] = "l.birth_date = r.birth_date"
    return [same + rule for key, rule in keys.items() if key in has]


@contextlib.contextmanager
def _quiet_splink() -> Iterator[None]:
    """Keep splink's progress messages (some quote sample values) out of the logs."""
    logger = logging.getLogger("splink")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


_DEFAULT_THRESHOLDS = MatchThresholds()


def match_records(
    records: pa.Table,
    *,
    id_column: str,
    columns: ColumnMap,
    region: str,
    thresholds: MatchThresholds = _DEFAULT_THRESHOLDS,
    seed: int = DEFAULT_SEED,
    settings: Mapping[str, Any] | None = None,
    max_records_per_identifier: int = MAX_RECORDS_PER_IDENTIFIER,
    blocklist: Iterable[str] = (),
) -> MatchResult:
    """Score candidate pairs of records, decide merge / review / no, cluster the merges.

    Parameters
    ----------
    records
        One row per customer record; ``id_column`` holds unique ids.
    columns
        Which columns hold the person fields (see ``recognise_columns``).
    region
        ISO 3166 country for phone numbers written without a country code, and for reading
        year-last dates (month first in the US).
    seed
        Seeds splink's random pair sample for u; recorded in the result.
    settings
        A model from an earlier ``MatchResult.settings``: scores with it, without training.
    max_records_per_identifier, blocklist
        An e-mail or phone on more records, or listed here (as typed), links nothing.

    Raises
    ------
    MatchError
        The id column is missing, empty or repeats an id, or no column says who a record is.
    """
    # late: splink is slow to import
    from splink import DuckDBAPI, Linker, SettingsCreator
    from splink.blocking_rule_library import CustomRule

    if id_column not in records.column_names:
        raise MatchError(f"no id column '{id_column}' among {records.column_names}")
    if not columns.has_person_columns:
        raise MatchError("no name, e-mail, phone or birth date column to match on")
    features = prepare_features(
        records,
        id_column=id_column,
        columns=columns,
        region=region,
        max_records_per_identifier=max_records_per_identifier,
        blocklist=blocklist,
    )
    ids = features["unique_id"]
    if ids.null_count:
        raise MatchError(f"the id column '{id_column}' is empty on {ids.null_count} record(s)")
    if pc.count_distinct(ids).as_py() != len(ids):
        raise MatchError(f"the id column '{id_column}' repeats ids")

    if settings is None:
        has = _compared(columns)
        model: dict[str, Any] = SettingsCreator(
            link_type="dedupe_only",
            unique_id_column_name="unique_id",
            comparisons=[c.to_dict(records.num_rows) for c in COMPARISONS if c.name in has],
            blocking_rules_to_generate_predictions=[CustomRule(r) for r in _blocking_rules(has)],
            probability_two_random_records_match=PRIOR_MATCH_SHARE,
            retain_matching_columns=True,  # splink returns the gamma_* levels only with these
            retain_intermediate_calculation_columns=False,
            max_iterations=50,
        ).create_settings_dict("duckdb")
    else:
        model = dict(settings)
        has = {c["output_column_name"] for c in model["comparisons"]}
    trained = settings is None and records.num_rows >= MIN_RECORDS_TO_TRAIN
    comparisons = [c for c in COMPARISONS if c.name in has]

    # splink runs in a DuckDB of its own, in memory: its blocking, training and scoring tables
    # are scratch work, never the warehouse; only the Arrow results leave this function.
    db_api = DuckDBAPI(":memory:")
    try:
        with _quiet_splink():
            table = db_api.register(features, table_name="records")
            linker = Linker(table, model, log_level=None)
            if settings is None:
                model = _with_match_share(linker, has, model)
                linker = Linker(table, model, log_level=None)
            if trained:
                _train(linker, has, seed)
                model = _corrected(linker.misc.save_model_to_json())
                linker = Linker(table, model, log_level=None)
            predictions = linker.inference.predict(warning_mode="never").as_pyarrow_table()
            pairs = _decide(predictions, comparisons, thresholds)
            clusters = _clusters(pairs, ids, db_api, linker)
            model = linker.misc.save_model_to_json()
            # splink names each linker at random; named by the seed, one seed gives one JSON.
            model["linker_uid"] = f"jingzhun{seed}"
    finally:
        db_api.duckdb_con.close()
    return MatchResult(pairs, clusters, model, seed, trained, columns, thresholds)


def _with_match_share(linker: Any, has: set[str], model: dict[str, Any]) -> dict[str, Any]:
    """The model with the share of pairs that match, from the pairs deterministic rules find.

    splink counts the pairs the rules admit and divides by their assumed recall; when they find
    none (or more than the recall allows) the prior share stays.
    """
    rules = _deterministic_rules(has)
    if not rules:
        return model
    try:
        linker.training.estimate_probability_two_random_records_match(
            rules, recall=DETERMINISTIC_RECALL
        )
    except ValueError:
        return model
    estimated: dict[str, Any] = linker.misc.save_model_to_json()
    share = float(estimated["probability_two_random_records_match"])
    return estimated if 0.0 < share < 1.0 else model


def _train(linker: Any, has: set[str], seed: int) -> None:
    """Estimate u on random pairs (seeded) and m by EM on blocked pairs."""
    linker.training.estimate_u_using_random_sampling(max_pairs=U_SAMPLE_PAIRS, seed=seed)
    for rule in _training_rules(has):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)


def _corrected(model: dict[str, Any]) -> dict[str, Any]:
    """The trained model with u corrected for the matches in the random sample, m kept above 0.

    u sampling assumes random pairs are non-matches, but a sample of a deduplication input holds
    matches at the rate lambda (the match share): a level's share among random pairs is
    lambda * m + (1 - lambda) * u, so u = (share - lambda * m) / (1 - lambda). On a few thousand
    records with many duplicates, most random pairs that share a phone are the same person and
    the uncorrected phone weight falls by a third.
    """
    lam = float(model["probability_two_random_records_match"])
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m = float(level["m_probability"])
            u = float(level["u_probability"])
            if not level.get("fix_m_probability"):
                m = max(m, M_FLOOR)
            if not level.get("fix_u_probability"):
                u = max((u - lam * m) / (1.0 - lam), U_FLOOR)
            # Rounded: DuckDB sums in parallel, so the last digits vary from run to run.
            level["m_probability"] = float(f"{m:.10g}")
            level["u_probability"] = float(f"{u:.10g}")
    return model


# -- decisions and clusters ----------------------------------------------------------------

GUARD_HOUSEHOLD = "household: first names not the same and birth dates do not agree"
GUARD_BIRTH_DATES = "birth dates differ"
GUARD_GENDERS = "genders differ"
GUARD_NAMESAKE = "namesake: no e-mail, phone or birth date agrees exactly"


def _decide(
    predictions: pa.Table, comparisons: list[_Comparison], thresholds: MatchThresholds
) -> pa.Table:
    """Route each scored pair to merge / review / no and name the rule that held a merge back."""
    n = predictions.num_rows
    by_name = {c.name: c for c in comparisons}
    false = pa.array(np.zeros(n, dtype=bool))

    def at(name: str, *labels: str) -> pa.Array:
        """True where comparison ``name`` reached one of ``labels``."""
        if name not in by_name:
            return false
        gamma = predictions[f"gamma_{name}"].combine_chunks()
        codes = pa.array([by_name[name].gamma(label) for label in labels], gamma.type)
        return pc.is_in(gamma, value_set=codes)

    birth_agrees = at("birth_date", "exact", "day and month swapped")
    household = false
    if "first_name" in by_name:
        # ... unless they share a mobile number (a person's own) and the family name, and no
        # gender conflicts: then a differing given name is a typo (a wrong character from the
        # input method: 杰 for 洁), not a relative.
        own_mobile = pc.and_(
            pc.and_(
                at("phone", "exact, mobile"),
                at("surname", "exact", "swapped with first name", "one edit, Hanzi", "one edit"),
            ),
            pc.invert(at("gender", "else")),
        )
        # "Zhao Ling" and "Zhao Na" filed given-name-first agree on "first name" zhao: the same
        # name needs the surname not to disagree outright.
        same_first = pc.and_(
            at("first_name", "exact", "swapped with surname"), pc.invert(at("surname", "else"))
        )
        household = pc.and_(
            pc.and_(pc.invert(same_first), pc.invert(birth_agrees)), pc.invert(own_mobile)
        )
    birth_dates_differ = at("birth_date", "else")
    # Spouses, even with one birth date, or two records filed under one pinyin name in swapped
    # order (Zhou Yong, Zhou Xinyi): a different gender is a different person.
    genders_differ = at("gender", "else")
    # A near miss (danwang709@ and danwang7609@, a phone one digit off) is evidence, but with
    # name-like mailboxes near misses are common among namesakes: not enough on its own.
    identifier_agrees = pc.or_(
        pc.or_(
            at("email", "exact", "same mailbox, domain typo"),
            at("phone", "exact, mobile", "exact", "same last 8 digits"),
        ),
        birth_agrees,
    )
    guard = pc.case_when(
        pc.make_struct(household, birth_dates_differ, genders_differ, pc.invert(identifier_agrees)),
        pa.scalar(GUARD_HOUSEHOLD),
        pa.scalar(GUARD_BIRTH_DATES),
        pa.scalar(GUARD_GENDERS),
        pa.scalar(GUARD_NAMESAKE),
    )
    probability = predictions["match_probability"].combine_chunks()
    review = pc.greater_equal(probability, thresholds.review)
    merge = pc.and_(pc.greater_equal(probability, thresholds.merge), pc.is_null(guard))
    decision = pc.if_else(
        merge, Decision.MERGE.value, pc.if_else(review, Decision.REVIEW.value, Decision.NO.value)
    )
    return pa.table(
        {
            "id_l": predictions["unique_id_l"],
            "id_r": predictions["unique_id_r"],
            "match_weight": predictions["match_weight"],
            "match_probability": probability,
            "decision": decision,
            "reason": pc.if_else(review, guard, pa.scalar(None, _STRING)),
            "evidence": _evidence(predictions, comparisons),
        }
    )


def _evidence(predictions: pa.Table, comparisons: list[_Comparison]) -> pa.Array:
    """Per pair, each field's agreement level in words: "first_name=exact, phone=missing"."""
    parts = []
    for comparison in comparisons:
        labels = [""] * len(comparison.levels)
        for level in comparison.levels:
            labels[comparison.gamma(level.label)] = level.label
        gamma = predictions[f"gamma_{comparison.name}"].combine_chunks()
        missing = pc.less(gamma, 0)
        text = pc.take(pa.array(labels), pc.if_else(missing, 0, gamma))
        text = pc.if_else(missing, "missing", text)
        parts.append(pc.binary_join_element_wise(f"{comparison.name}=", text, ""))
    return pc.binary_join_element_wise(*parts, ", ")


def _clusters(pairs: pa.Table, ids: pa.Array, db_api: Any, linker: Any) -> pa.Table:
    """Connected components of the merge pairs (splink's clustering); id = smallest member."""
    merges = pairs.filter(pc.equal(pairs["decision"], Decision.MERGE.value))
    if merges.num_rows == 0:
        return pa.table({"id": ids, "cluster_id": ids})
    edges = pa.table(
        {
            "unique_id_l": merges["id_l"],
            "unique_id_r": merges["id_r"],
            "match_probability": merges["match_probability"],
        }
    )
    components = linker.clustering.cluster_pairwise_predictions_at_threshold(
        db_api.register(edges, table_name="merge_edges")
    ).as_pyarrow_table()
    member = components.select(["unique_id", "cluster_id"]).rename_columns(["id", "component"])
    smallest = member.group_by("component").aggregate([("id", "min")])
    named = member.join(smallest, "component").select(["id", "id_min"])
    at = pc.index_in(ids, value_set=named["id"])
    return pa.table({"id": ids, "cluster_id": pc.take(named["id_min"], at)})


# -- files -----------------------------------------------------------------------------------

OUTPUT_COLUMNS = ("cluster_id", "cluster_size", "match_decision", "match_probability", "review_ids")


def _read_csv(path: Path) -> pa.Table:
    """Every column as text, exactly as written; empty cells are null."""
    if not path.is_file():
        raise IngestError(path, "the file does not exist" if not path.exists() else "not a file")
    with path.open("rb") as handle:
        first = handle.readline()
    if not first.strip():
        raise IngestError(path, "the file is empty: no header line")
    try:
        header = first.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError:
        raise IngestError(
            path, "the header is not UTF-8", hint="re-save the file as UTF-8"
        ) from None
    names = [name.strip() for name in next(csv.reader([header]))]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise IngestError(path, f"the header names columns more than once: {repeated}")
    try:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={name: _STRING for name in names},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        message = str(exc).splitlines()[0]
        utf8 = "UTF8" in message or "UTF-8" in message
        raise IngestError(
            path,
            f"cannot read the CSV: {message}",
            hint="re-save the file as UTF-8" if utf8 else "check the quoting and the commas",
        ) from None


def _check_ids(path: Path, ids: pa.Array, id_column: str) -> None:
    empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(ids), ""), True)
    if pc.any(empty).as_py():
        row = pc.index(empty, True).as_py() + 2  # the header is line 1, records count from 1
        raise IngestError(path, "the id is empty", row=row, column=id_column)
    counts = pc.value_counts(ids)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(repeated):
        first = repeated[0].as_py()
        raise IngestError(
            path,
            f"{len(repeated)} id(s) occur more than once, the first is '{first}'",
            row=pc.index(ids, first).as_py() + 2,
            column=id_column,
            hint="every record needs an id of its own; remove exact copies first",
        )


def match_file(
    input_path: Path,
    output_path: Path,
    *,
    id_column: str,
    column_overrides: Mapping[str, str | None] | None = None,
    region: str = "CN",
    thresholds: MatchThresholds = _DEFAULT_THRESHOLDS,
    seed: int = DEFAULT_SEED,
    blocklist: Iterable[str] = (),
) -> MatchSummary:
    """Dedupe a CRM export (UTF-8 CSV): every record, as written, plus who it is the same as.

    Added columns: ``cluster_id`` (the smallest id among the records merged with it; its own id
    when alone), ``cluster_size``, ``match_decision`` (the strongest decision among its pairs:
    merge, review or no), ``match_probability`` (of its most likely pair) and ``review_ids`` (the
    records to check by hand, ``;``-separated). ``column_overrides`` maps person fields to
    columns (``{"phone": "contact_no"}``), winning over recognition by header name.

    Raises
    ------
    IngestError
        The file cannot be read, lacks the id column, has empty or repeated ids, or no column
        that says who a record is.
    SpecError
        ``column_overrides`` names an unknown field or a column the file does not have.
    """
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    table = _read_csv(input_path)
    header = table.column_names
    if id_column not in header:
        raise IngestError(
            input_path,
            f"no id column '{id_column}'",
            column=id_column,
            hint=f"the header has: {', '.join(header)}",
        )
    clashes = [name for name in OUTPUT_COLUMNS if name in header]
    if clashes:
        raise IngestError(
            input_path,
            f"the file already has column(s) {clashes}, which the output adds",
            hint="rename them before matching",
        )
    try:
        columns = recognise_columns([c for c in header if c != id_column], column_overrides)
    except ValueError as exc:
        raise SpecError([SpecProblem(input_path, None, "columns", str(exc))]) from None
    if not columns.has_person_columns:
        raise IngestError(
            input_path,
            "no column holds a name, e-mail, phone or birth date",
            hint="name them first_name, last_name, name, email, phone, birth_date (or 名, 姓, "
            "姓名, 邮箱, 手机, 生日), or map them: phone=contact_no",
        )
    _check_ids(input_path, table[id_column].combine_chunks(), id_column)

    result = match_records(
        table,
        id_column=id_column,
        columns=columns,
        region=region,
        thresholds=thresholds,
        seed=seed,
        blocklist=blocklist,
    )
    output = _with_match_columns(table, id_column, result)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    partial = output_path.with_name(output_path.name + ".tmp")
    pacsv.write_csv(output, partial)
    partial.replace(output_path)  # the output appears under its name only when complete

    decisions = result.pairs["decision"]
    return MatchSummary(
        input_path=input_path,
        output_path=output_path,
        records=table.num_rows,
        clusters=pc.count_distinct(result.clusters["cluster_id"]).as_py(),
        merged_records=pc.sum(pc.greater(output["cluster_size"], 1)).as_py() or 0,
        merge_pairs=pc.sum(pc.equal(decisions, Decision.MERGE.value)).as_py() or 0,
        review_pairs=pc.sum(pc.equal(decisions, Decision.REVIEW.value)).as_py() or 0,
        columns=columns.mapped(),
        seed=result.seed,
        trained=result.trained,
        seconds=time.perf_counter() - started,
        thresholds=thresholds,
    )


def _with_match_columns(table: pa.Table, id_column: str, result: MatchResult) -> pa.Table:
    """The input with cluster id and size, strongest decision, best probability, ids to review."""
    ids = table[id_column].combine_chunks()
    cluster = result.clusters["cluster_id"].combine_chunks()
    sizes = pc.value_counts(cluster)
    size = pc.take(sizes.field("counts"), pc.index_in(cluster, value_set=sizes.field("values")))

    pairs = result.pairs
    order = [d.value for d in (Decision.NO, Decision.REVIEW, Decision.MERGE)]  # weakest first
    rank = pc.index_in(pairs["decision"].combine_chunks(), value_set=pa.array(order))
    ends = pa.table(  # each pair seen from both of its records
        {
            "id": pa.concat_arrays(
                [pairs["id_l"].combine_chunks(), pairs["id_r"].combine_chunks()]
            ),
            "other": pa.concat_arrays(
                [pairs["id_r"].combine_chunks(), pairs["id_l"].combine_chunks()]
            ),
            "p": pa.concat_arrays([pairs["match_probability"].combine_chunks()] * 2),
            "rank": pa.concat_arrays([rank] * 2),
        }
    )
    best = ends.group_by("id").aggregate([("p", "max"), ("rank", "max")])
    to_review = (
        ends.filter(pc.equal(ends["rank"], order.index(Decision.REVIEW.value)))
        .sort_by([("id", "ascending"), ("other", "ascending")])
        .group_by("id", use_threads=False)  # keeps the sorted order within each list
        .aggregate([("other", "list")])
    )
    at_best = pc.index_in(ids, value_set=best["id"])
    decision = pc.take(pa.array(order), pc.take(best["rank_max"], at_best))
    review_ids = pc.binary_join(
        pc.take(to_review["other_list"], pc.index_in(ids, value_set=to_review["id"])), ";"
    )
    return (
        table.append_column("cluster_id", cluster)
        .append_column("cluster_size", size)
        .append_column("match_decision", pc.fill_null(decision, Decision.NO.value))
        .append_column("match_probability", pc.take(best["p_max"], at_best))
        .append_column("review_ids", pc.fill_null(review_ids, ""))
    )
