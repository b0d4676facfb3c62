"""Identifier normalisation, the way identifiers arrive in real exports."""

from __future__ import annotations

import pyarrow as pa

from jingzhun.identity import keyed_hash, normalize_emails, normalize_phones


def test_emails() -> None:
    out = normalize_emails(pa.array([" Li.Wei@Example.COM ", "no-at-sign", "", None, "a@b"]))
    assert out.values.to_pylist() == ["li.wei@example.com", None, None, None, None]
    assert out.reasons.to_pylist() == [None, "not an e-mail address", None, None,
                                       "not an e-mail address"]  # fmt: skip


def test_chinese_phones_in_every_spelling() -> None:
    spellings = ["13800138000", "138-0013-8000", "+86 138 0013 8000", "0086 138 0013 8000"]
    out = normalize_phones(pa.array(spellings), "CN")
    assert set(out.values.to_pylist()) == {"+8613800138000"}
    assert out.reasons.null_count == len(spellings)


def test_uk_phones_and_refusals() -> None:
    raw = ["07911 123457", "+44 (0)7911 123456", "12", "call me", None, "07700 900123"]
    out = normalize_phones(pa.array(raw), "GB")
    assert out.values.to_pylist()[:2] == ["+447911123457", "+447911123456"]
    reasons = out.reasons.to_pylist()
    assert reasons[0] is None and reasons[1] is None
    assert reasons[2].startswith("not a")
    assert reasons[3].startswith("not a phone number")
    assert reasons[4] is None  # empty is not an error
    # Ofcom's drama range (07700 900xxx) is reserved for fiction: never a real customer
    assert reasons[5] == "not a valid phone number for region GB"


def test_keyed_hash_hides_id_numbers() -> None:
    ids = pa.array(["11010519491231002x", "11010519491231002X ", None])
    first = keyed_hash(ids, b"key-1").to_pylist()
    assert first[0] == first[1]  # case and spaces do not matter
    assert first[2] is None
    assert "1101" not in first[0]
    assert keyed_hash(ids, b"key-2").to_pylist()[0] != first[0]
