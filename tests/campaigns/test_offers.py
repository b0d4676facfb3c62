"""Offers by segment, coupon codes (unique, unguessable, checked) and single-use redemption."""

from __future__ import annotations

import datetime as dt
import doctest
import re
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import yaml
from pydantic import ValidationError

from helpers import REPO
from jingzhun.campaigns import _content, _offers
from jingzhun.campaigns._offers import (
    CODE_ALPHABET,
    COUPON_SCHEMA,
    REDEMPTION_SCHEMA,
    Offer,
    OfferKind,
    OfferSpec,
    coupon_rows,
    issue_codes,
    normalize_code,
    offer_for,
    redemption_conversions,
    verify_code,
)

SECRET = b"0123456789abcdef0123456789abcdef"
SPEC: dict[str, Any] = {
    "name": "ten_off",
    "kind": "discount_percent",
    "value": 10,
    "valid_days": 14,
    "coupon_prefix": "WB",
    "variants": [
        {
            "segment": "price_sensitive",
            "offer": {"name": "twenty_off", "kind": "discount_percent", "value": 20},
        },
        {
            "segment": "service_sensitive",
            "offer": {"name": "priority_line", "kind": "priority_service", "valid_days": 60},
        },
    ],
}


def test_docstring_examples_run() -> None:
    for module in (_offers, _content):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


# -- offers ---------------------------------------------------------------------------------------


def test_offer_for_takes_the_first_matching_variant() -> None:
    spec = OfferSpec.model_validate(SPEC)
    assert spec.segments == ["price_sensitive", "service_sensitive"]
    both = offer_for(spec, {"service_sensitive", "price_sensitive", "champions"})
    assert (both.name, both.kind, both.value, both.segment) == (
        "twenty_off",
        OfferKind.DISCOUNT_PERCENT,
        Decimal(20),
        "price_sensitive",
    )
    assert both.valid_days == 14  # a variant without valid_days takes the campaign's
    service = offer_for(spec, ["service_sensitive"], issued_on=dt.date(2026, 1, 1))
    assert (service.name, service.value, service.valid_days) == ("priority_line", None, 60)
    assert service.valid_until == dt.date(2026, 3, 2)
    base = offer_for(spec, set())
    assert (base.name, base.segment, base.valid_until) == ("ten_off", None, None)
    assert base.to_context("CODE")["code"] == "CODE"
    assert base.to_context()["kind"] == "discount_percent"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value": None}, "needs a value"),
        ({"value": 120}, "at most 100"),
        ({"value": 0}, "above 0"),
        ({"kind": "free_shipping"}, "takes no value"),
        ({"kind": "voucher"}, "Input should be"),
        ({"valid_days": 0}, "greater than or equal to 1"),
        ({"name": "Ten Off"}, "should match pattern"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
        ({"coupon_prefix": "win-back"}, "should match pattern"),
        (
            {"variants": [{"segment": "a", "offer": {"name": "ten_off", "kind": "gift"}}]},
            "used twice",
        ),
        (
            {
                "variants": [
                    {"segment": "a", "offer": {"name": "g1", "kind": "gift"}},
                    {"segment": "a", "offer": {"name": "g2", "kind": "gift"}},
                ]
            },
            "has two variants",
        ),
    ],
)
def test_offer_spec_refuses(change: dict[str, Any], message: str) -> None:
    data = {**SPEC, "variants": [], **change}
    with pytest.raises(ValidationError, match=message):
        OfferSpec.model_validate(data)


def test_other_kinds() -> None:
    gift = OfferSpec.model_validate({"name": "mug", "kind": "gift", "value": "4.50"})
    amount = OfferSpec.model_validate({"name": "fiver", "kind": "discount_amount", "value": 5})
    assert offer_for(gift, []).value == Decimal("4.50")
    assert offer_for(amount, []).valid_days == 30  # the default


# -- coupon codes ---------------------------------------------------------------------------------


def test_codes_are_unique_checked_and_deterministic_over_100k_customers() -> None:
    keys = [f"ck_{i:06d}" for i in range(100_000)]
    codes = issue_codes("spring_sale", keys, prefix="SPRING", secret=SECRET)
    assert len(codes) == 100_000
    assert len(set(codes.values())) == 100_000
    assert all(code.startswith("SPRING-") and len(code) == 7 + 10 + 1 for code in codes.values())
    assert all(set(code[7:]) <= set(CODE_ALPHABET) for code in codes.values())
    assert all(verify_code(code) for code in codes.values())
    # a re-plan, in another order and with duplicates, gives the same codes
    again = issue_codes("spring_sale", [*reversed(keys), keys[0]], prefix="SPRING", secret=SECRET)
    assert again == codes


def test_codes_depend_on_campaign_customer_and_secret() -> None:
    one = issue_codes("a", ["ck_1", "ck_2"], secret=SECRET)
    assert one["ck_1"] != one["ck_2"]
    assert issue_codes("b", ["ck_1"], secret=SECRET)["ck_1"] != one["ck_1"]
    assert issue_codes("a", ["ck_1"], secret=SECRET[::-1])["ck_1"] != one["ck_1"]
    # adding customers does not change anyone's code (no collision here)
    assert issue_codes("a", ["ck_0", "ck_1", "ck_2", "ck_3"], secret=SECRET)["ck_1"] == one["ck_1"]
    # no prefix: body and check character only
    assert len(one["ck_1"]) == 11 and "-" not in one["ck_1"]


def test_colliding_codes_are_derived_again(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _offers._body

    def clumsy(secret: bytes, message: str, length: int) -> str:
        # every first derivation collides; later ones are the real HMAC
        return "A" * length if message.count(":") == 1 else real(secret, message, length)

    monkeypatch.setattr(_offers, "_body", clumsy)
    keys = [f"ck_{i}" for i in range(50)]
    codes = issue_codes("c", keys, secret=SECRET)
    assert len(set(codes.values())) == 50
    assert codes["ck_0"] == "AAAAAAAAAA" + _offers._check_character("AAAAAAAAAA")
    assert codes["ck_1"][:10] == real(SECRET, "c:ck_1:1", 10)
    assert issue_codes("c", list(reversed(keys)), secret=SECRET) == codes


def test_issue_codes_refuses_weak_settings() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        issue_codes("c", ["ck_1"], secret=b"short")
    with pytest.raises(ValueError, match="prefix"):
        issue_codes("c", ["ck_1"], prefix="win-back", secret=SECRET)
    with pytest.raises(ValueError, match="between 6 and 40"):
        issue_codes("c", ["ck_1"], length=4, secret=SECRET)
    # 32**6 ≈ 1.07e9 codes: 2,000 issued would be guessed once in ~540 tries
    with pytest.raises(ValueError, match="use length >= 7"):
        issue_codes("c", [f"ck_{i}" for i in range(2_000)], length=6, secret=SECRET)
    assert len(issue_codes("c", [f"ck_{i}" for i in range(1_000)], length=6, secret=SECRET)) == 1000


def test_verify_code_catches_every_single_typo_and_reads_lookalikes() -> None:
    code = issue_codes("c", ["ck_1"], prefix="WB", secret=SECRET)["ck_1"]
    body = code[3:]
    for position in range(len(body)):
        for symbol in CODE_ALPHABET:
            if symbol != body[position]:
                typo = body[:position] + symbol + body[position + 1 :]
                assert not verify_code(f"WB-{typo}"), typo
    swaps = [body[:i] + body[i + 1] + body[i] + body[i + 2 :] for i in range(len(body) - 1)]
    caught = [not verify_code(f"WB-{s}") for s in swaps if s != body]
    assert sum(caught) >= len(caught) - 1  # Luhn mod N misses only rare swaps
    assert verify_code(f"  wb-{body.lower()} ")
    assert not verify_code("") and not verify_code("WB-") and not verify_code("WB-U#")
    # O is read as 0, I and L as 1
    zero_one = "0" * 4 + "1" * 5
    typed = f"WB-{'O' * 4}{'I' * 3}l{'L'}{_offers._check_character(zero_one)}"
    assert normalize_code(typed) == f"WB-{zero_one}{_offers._check_character(zero_one)}"
    assert verify_code(typed)


# -- coupons and redemptions ----------------------------------------------------------------------

ISSUED = dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC)


def _coupons() -> tuple[dict[str, str], pa.Table]:
    codes = issue_codes("winback", ["ck_1", "ck_2", "ck_3"], prefix="WB", secret=SECRET)
    spec = OfferSpec.model_validate(SPEC)
    offers: dict[str, Offer] = {
        "ck_1": offer_for(spec, []),
        "ck_2": offer_for(spec, ["price_sensitive"]),
    }
    return codes, coupon_rows("winback", codes, offers=offers, issued_at=ISSUED)


def test_coupon_rows() -> None:
    codes, rows = _coupons()
    assert rows.schema == COUPON_SCHEMA
    assert rows.to_pylist()[:2] == [
        {
            "campaign": "winback",
            "customer_key": "ck_1",
            "code": codes["ck_1"],
            "offer": "ten_off",
            "issued_at": ISSUED,
            "expires_at": ISSUED + dt.timedelta(days=14),
        },
        {
            "campaign": "winback",
            "customer_key": "ck_2",
            "code": codes["ck_2"],
            "offer": "twenty_off",
            "issued_at": ISSUED,
            "expires_at": ISSUED + dt.timedelta(days=14),
        },
    ]
    assert rows.column("offer")[2].as_py() is None  # no offer given: no expiry
    assert rows.column("expires_at")[2].as_py() is None


def test_a_code_is_redeemed_once() -> None:
    codes, coupons = _coupons()
    day = dt.timedelta(days=1)
    events = [
        (codes["ck_1"], "o1", ISSUED + 2 * day),
        (codes["ck_1"].lower(), "o2", ISSUED + 3 * day),  # typed again for another order
        (codes["ck_1"], "o1", ISSUED + 4 * day),  # the first order's event sent twice
        (codes["ck_2"], "o3", ISSUED - day),  # before it was issued
        (codes["ck_2"], "o4", ISSUED + 20 * day),  # after 14 days
        (codes["ck_3"], "o5", ISSUED + 400 * day),  # no offer, so no expiry
        ("WB-NOTACODE0", "o6", ISSUED + day),
    ]
    redemptions = pa.table(
        {
            "code": [e[0] for e in events],
            "order_id": [e[1] for e in events],
            "redeemed_at": pa.array([e[2] for e in events], pa.timestamp("us", tz="UTC")),
        }
    )
    result = redemption_conversions(coupons, redemptions)
    assert result.schema == REDEMPTION_SCHEMA
    got = [
        (r["order_id"], r["customer_key"], r["accepted"], r["refusal"]) for r in result.to_pylist()
    ]
    by_order = {g[0]: g[1:] for g in got}
    assert len(got) == 6  # the repeated event of o1 counts once
    assert by_order == {
        "o1": ("ck_1", True, None),
        "o2": ("ck_1", False, "already redeemed"),
        "o3": ("ck_2", False, "not yet issued"),
        "o4": ("ck_2", False, "expired"),
        "o5": ("ck_3", True, None),
        "o6": (None, False, "unknown code"),
    }
    accepted = result.filter(result.column("accepted"))
    assert {r["customer_key"]: r["offer"] for r in accepted.to_pylist()} == {
        "ck_1": "ten_off",
        "ck_3": None,
    }


def test_a_refused_try_does_not_use_the_code_up() -> None:
    codes, coupons = _coupons()
    redemptions = pa.table(
        {
            "code": [codes["ck_2"], codes["ck_2"], codes["ck_2"]],
            "order_id": ["early", "ok", "again"],
            "redeemed_at": [
                dt.datetime(2025, 12, 31),  # naive: read as UTC
                dt.datetime(2026, 1, 2),
                dt.datetime(2026, 1, 3),
            ],
        }
    )
    rows = redemption_conversions(coupons, redemptions).to_pylist()
    assert [(r["order_id"], r["refusal"]) for r in rows] == [
        ("early", "not yet issued"),
        ("ok", None),
        ("again", "already redeemed"),
    ]


def test_redemption_conversions_refuses_ambiguous_input() -> None:
    codes, coupons = _coupons()
    twice = pa.concat_tables([coupons, coupons.slice(0, 1)])
    events = pa.table({"code": [codes["ck_1"]], "redeemed_at": [ISSUED]})
    with pytest.raises(ValueError, match="issued more than once"):
        redemption_conversions(twice, events)
    with pytest.raises(ValueError, match="lack column"):
        redemption_conversions(coupons, pa.table({"code": [codes["ck_1"]]}))
    # without order ids every event is a separate try
    rows = redemption_conversions(coupons, pa.concat_tables([events, events])).to_pylist()
    assert [r["accepted"] for r in rows] == [True, False]


def test_the_readme_offer_example_is_valid() -> None:
    folder = REPO / "src" / "jingzhun" / "campaigns"
    blocks = [
        block
        for name in ("README_content.md", "README.md")
        if (folder / name).exists()
        for block in re.findall(
            r"```yaml\n(offer:\n.*?)```", (folder / name).read_text("utf-8"), re.S
        )
    ]
    assert blocks, "the campaigns README lost its offer example"
    spec = OfferSpec.model_validate(yaml.safe_load(blocks[0])["offer"])
    assert offer_for(spec, {"service_sensitive"}).kind is OfferKind.PRIORITY_SERVICE
    assert offer_for(spec, {"price_sensitive", "service_sensitive"}).value == 20
    assert spec.coupon_prefix == "WINBACK"
