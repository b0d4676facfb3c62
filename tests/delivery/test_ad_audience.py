"""Ad-audience files in Google's and Meta's documented upload formats, and the call-centre and
direct-mail lists: headers, normalisation, hashing, one row per person, crash repair.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from jingzhun.core import EngineError
from jingzhun.delivery import (
    AD_COLUMNS,
    AdAudienceExport,
    AdFormat,
    CallCentreList,
    DirectMailList,
    OutboundMessage,
    SendStatus,
    message_id,
    normalise_email,
    normalise_phone,
)

# Published normalised values and their SHA-256 (TikTok Ads Manager help, "List of supported
# IDs and formats for a customer file", 2025): the e-mail "janedoe@gmail.com" and the
# international phone 374-93-828222 normalised to "37493828222".
JANE_SHA256 = "d6117306485ed0e50afab3ac871e98f81699151f30281527d63ff5f233656c69"
ARMENIAN_PHONE_SHA256 = "65b7e6dcf6f4310f8d7cbfbd78289a753062fb054d6664fb9aaac5df66a422d4"


def rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def person(key: str, recipient: str, campaign: str = "winback", **metadata: str) -> OutboundMessage:
    return OutboundMessage(
        f"{campaign}:{key}:ads", recipient, key, campaign, metadata=metadata, body="Call about X"
    )


def test_meta_file_has_documented_headers_and_published_hashes(tmp_path: Path) -> None:
    ads = AdAudienceExport(tmp_path, format="meta", region="US")
    result = ads.send(
        person(
            "ck_1",
            "  JaneDoe@Gmail.com ",
            phone="+374 93-828222",
            first_name="Zoë",
            last_name="O'Brien-Smith",
            country="GB",
            zip="SW1A 1AA",
        )
    )
    assert result.status is SendStatus.SENT
    ads.close()
    header, row = rows(ads.path_for("winback"))
    assert header == ["email", "phone", "fn", "ln", "country", "zip"]
    assert row[0] == JANE_SHA256
    assert row[1] == ARMENIAN_PHONE_SHA256  # digits with the country code, no "+"
    sha = lambda text: hashlib.sha256(text.encode()).hexdigest()  # noqa: E731
    assert row[2:] == [sha("zoë"), sha("obriensmith"), sha("gb"), sha("sw1a1aa")]


def test_google_file_hashes_e164_phones_and_keeps_country_and_zip_clear(tmp_path: Path) -> None:
    ads = AdAudienceExport(tmp_path, format=AdFormat.GOOGLE, region="CN")
    ads.send(person("ck_1", "138 0013 8000", country="CN", zip="200000"))
    ads.send(person("ck_2", "Ann.Lee@Example.org", first_name=" Ann ", last_name="Van Dijk"))
    ads.close()
    header, phone_row, email_row = rows(ads.path_for("winback"))
    assert header == list(AD_COLUMNS[AdFormat.GOOGLE])
    assert header == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
    sha = lambda text: hashlib.sha256(text.encode()).hexdigest()  # noqa: E731
    assert phone_row == ["", sha("+8613800138000"), "", "", "cn", "200000"]
    assert email_row == [sha("ann.lee@example.org"), "", sha("ann"), sha("vandijk"), "", ""]


def test_a_person_is_written_once_even_across_restarts_and_crashes(tmp_path: Path) -> None:
    ads = AdAudienceExport(tmp_path, format="google")
    assert ads.send(person("ck_1", "ann@example.org")).provider_id == (
        "winback.google_customer_match.csv:1"
    )
    ads.close()
    path = ads.path_for("winback")
    with path.open("a", encoding="utf-8") as handle:
        handle.write("deadbeef,")  # a crash in the middle of a line
    again = AdAudienceExport(tmp_path, format="google")
    # another message (a second campaign step) for the same person: the audience is a set
    repeat = again.send(
        OutboundMessage("winback:ck_1:ads#2", "ANN@example.org ", campaign="winback")
    )
    assert repeat.status is SendStatus.SENT and repeat.detail == "already in the file"
    assert again.send(person("ck_2", "bo@example.org")).status is SendStatus.SENT
    again.close()
    assert [r[0][:8] for r in rows(path)[1:]] == [
        hashlib.sha256(b"ann@example.org").hexdigest()[:8],
        hashlib.sha256(b"bo@example.org").hexdigest()[:8],
    ]


def test_unmatchable_people_fail_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    ads = AdAudienceExport(tmp_path, format="meta")
    result = ads.send(person("ck_1", "not a contact"))
    assert result.status is SendStatus.FAILED and "no valid e-mail or phone" in result.detail
    assert not ads.path_for("winback").exists()
    ads.path_for("other").write_text("Email,Phone\nx,y\n", encoding="utf-8")
    with pytest.raises(EngineError, match="has the columns Email, Phone"):
        ads.send(person("ck_2", "bo@example.org", campaign="other"))


def test_normalisers() -> None:
    assert normalise_email("  Ann@Example.ORG ") == "ann@example.org"
    assert normalise_email("ann at example.org") is None
    assert normalise_phone("(657) 777-0000", "US") == "+16577770000"
    assert normalise_phone("020 7946 0000", "GB") == "+442079460000"
    assert normalise_phone("12", "US") is None


def test_call_centre_list_says_who_to_call_and_what_to_say(tmp_path: Path) -> None:
    calls = CallCentreList(tmp_path, region="CN")
    message = OutboundMessage(
        "credit_card_offer:ck_9:call_centre",
        "138 0013 8000",
        "ck_9",
        "credit_card_offer",
        body="=Offer: no annual fee for the first year; ask about monthly spend",
        metadata={"name": "Li Wei", "variant": "script_a"},
    )
    assert calls.send(message).status is SendStatus.SENT
    assert calls.send(
        OutboundMessage("credit_card_offer:ck_8:call_centre", "139 0013 9000", campaign="x")
    ).detail == ("the message has no talking points")
    calls.close()
    header, row = rows(calls.path_for("credit_card_offer"))
    assert header == list(CallCentreList.columns)
    assert row == [
        message_id("credit_card_offer:ck_9:call_centre"),
        "credit_card_offer",
        "ck_9",
        "Li Wei",
        "+8613800138000",
        "'=Offer: no annual fee for the first year; ask about monthly spend",  # not a formula
        "script_a",
    ]


def test_direct_mail_list_has_the_postal_address_and_the_letter(tmp_path: Path) -> None:
    mail = DirectMailList(tmp_path)
    mail.send(
        OutboundMessage(
            "spring:ck_3:direct_mail",
            "London, United Kingdom",
            "ck_3",
            "spring",
            text="Dear Ann, 20% off in store.",
            metadata={"name": "Ann Lee", "address": "1 High St", "postcode": "N1 9GU"},
        )
    )
    mail.send(
        OutboundMessage(
            "spring:ck_4:direct_mail", "Leeds, United Kingdom", campaign="spring", text="Hi"
        )
    )
    mail.close()
    header, first, second = rows(mail.path_for("spring"))
    assert header[:5] == ["message_id", "campaign", "customer_key", "name", "address"]
    assert first[3:6] == ["Ann Lee", "1 High St", "N1 9GU"]
    assert first[8] == "Dear Ann, 20% off in store."
    assert second[4] == "Leeds, United Kingdom"  # the queue's postal line when no address given
