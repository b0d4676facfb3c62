"""Channels that write files: ad-audience uploads, call-centre lists, direct-mail lists.

"Sent" means the row is in the file (flushed to the operating system); a person or a later job
uploads the ad files, hands the call list to the call centre and the mail list to the printer.
One file per campaign and channel in the channel's folder. A file is a set: a row already in
it is not written again, so sending a message twice can never put it in twice, even across
restarts (``resend_is_safe``). A line cut short by a crash is removed when the file is opened.

Ad-audience formats, as the platforms document them:

- Google Ads Customer Match (https://support.google.com/google-ads/answer/7659867): CSV with
  the English headers ``Email``, ``Phone``, ``First Name``, ``Last Name``, ``Country``,
  ``Zip``; hashed values are SHA-256 hex of the e-mail and names trimmed, without spaces and
  lower-cased, and of the phone in E.164 (``+8613800138000``); ``Country`` (ISO 3166 alpha-2)
  and ``Zip`` stay in clear.
- Meta custom audience customer list (https://www.facebook.com/business/help/2082575038703844
  and the Marketing API's "Hashing and Normalizing Data",
  https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences):
  headers ``email``, ``phone``, ``fn``, ``ln``, ``country``, ``zip``; every value is
  normalised and SHA-256 hex hashed: e-mail trimmed and lower-cased, phone as digits with the
  country code and no ``+`` or leading zeros, names lower-cased without punctuation or spaces,
  country as lower-case ISO 3166 alpha-2, zip lower-case without spaces.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import string
from abc import abstractmethod
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path

import phonenumbers

from jingzhun.core import EngineError
from jingzhun.delivery._channels import DeliveryChannel, OutboundMessage, SendResult, SendStatus

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PUNCTUATION = str.maketrans("", "", string.punctuation + " \t\r\n")


class AdFormat(StrEnum):
    """The ad platform whose upload format an audience file follows."""

    GOOGLE = "google"  # Google Ads Customer Match
    META = "meta"  # Meta (Facebook, Instagram) custom audience customer list


AD_COLUMNS = {
    AdFormat.GOOGLE: ("Email", "Phone", "First Name", "Last Name", "Country", "Zip"),
    AdFormat.META: ("email", "phone", "fn", "ln", "country", "zip"),
}


def sha256_hex(value: str) -> str:
    """SHA-256 of the UTF-8 text, as 64 lower-case hex digits."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalise_email(value: str) -> str | None:
    """An e-mail trimmed and lower-cased, or None when it is not one (no ``@``, spaces)."""
    text = value.strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in text):
        return None
    return text


def normalise_phone(value: str, region: str) -> str | None:
    """A phone number in E.164 (``+8613800138000``), read with ``region`` as the default
    country; None when it is not a valid number.
    """
    text = value.strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _safe_cell(value: str) -> str:
    """Free text that a spreadsheet will not run as a formula (OWASP "CSV Injection")."""
    return "'" + value if value.startswith(_FORMULA_START) else value


class _ListFile:
    """One CSV file opened for appending; knows the rows already in it."""

    def __init__(self, path: Path, columns: Sequence[str], dedupe: Callable[[list[str]], str]):
        self.path = path
        self.seen: set[str] = set()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self._repair()
            with path.open(encoding="utf-8", newline="") as handle:
                rows = list(csv.reader(handle))
            if rows and tuple(rows[0]) != tuple(columns):
                raise EngineError(
                    f"{path} has the columns {', '.join(rows[0])}, not {', '.join(columns)}; "
                    "move it away or give the channel another folder"
                )
            self.seen = {dedupe(row) for row in rows[1:]}
            self.rows = max(0, len(rows) - 1)
            new = not rows
        else:
            self.rows = 0
            new = True
        self._handle = path.open("a", encoding="utf-8", newline="")
        if new:
            self._write(list(columns))

    def _repair(self) -> None:
        """Cut a last line that a crash left without its line end."""
        with self.path.open("rb+") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            if size == 0:
                return
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            handle.seek(0)
            data = handle.read()
            handle.truncate(data.rfind(b"\n") + 1)

    def _write(self, row: list[str]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(row)
        self._handle.write(buffer.getvalue())
        self._handle.flush()  # one write to the OS per row: a killed process loses no row

    def append(self, row: list[str], key: str) -> int:
        self._write(row)
        self.seen.add(key)
        self.rows += 1
        return self.rows

    def close(self) -> None:
        os.fsync(self._handle.fileno())
        self._handle.close()


class _FileChannel(DeliveryChannel):
    """A channel whose provider is a CSV file per campaign in ``folder``."""

    resend_is_safe = True
    columns: tuple[str, ...] = ()
    suffix = ""

    def __init__(self, folder: Path | str) -> None:
        super().__init__()
        self.folder = Path(folder)
        self._files: dict[str, _ListFile] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.folder)!r})"

    def path_for(self, campaign: str) -> Path:
        """The file a campaign's rows go to."""
        stem = _SAFE_NAME.sub("_", campaign).strip("._") or "messages"
        return self.folder / f"{stem}.{self.suffix}.csv"

    def _dedupe(self, row: list[str]) -> str:
        return row[0] if row else ""

    @abstractmethod
    def _row(self, message: OutboundMessage) -> list[str] | SendResult:
        """The row for a message, or the reason it cannot have one."""

    def _deliver(self, message: OutboundMessage) -> SendResult:
        row = self._row(message)
        if isinstance(row, SendResult):
            return row
        list_file = self._files.get(message.campaign)
        if list_file is None:
            list_file = _ListFile(self.path_for(message.campaign), self.columns, self._dedupe)
            self._files[message.campaign] = list_file
        path = list_file.path
        key = self._dedupe(row)
        if key in list_file.seen:
            return SendResult(SendStatus.SENT, provider_id=path.name, detail="already in the file")
        line = list_file.append(row, key)
        return SendResult(SendStatus.SENT, provider_id=f"{path.name}:{line}")

    def close(self) -> None:
        """Flush the files to disk and close them."""
        files, self._files = self._files, {}
        for list_file in files.values():
            list_file.close()


class AdAudienceExport(_FileChannel):
    """Ad-audience upload files: normalised, SHA-256 hashed e-mails and phones (and names,
    country, zip when the message's metadata has them) in Google's or Meta's CSV format.

    Parameters
    ----------
    folder
        Where ``{campaign}.google_customer_match.csv`` / ``.meta_custom_audience.csv`` go.
    format
        ``google`` or ``meta``.
    region
        Default country for phone numbers without a country code (ISO 3166 alpha-2).
    """

    kind = "ads"

    def __init__(self, folder: Path | str, *, format: AdFormat | str, region: str = "US"):
        super().__init__(folder)
        self.format = AdFormat(format)
        self.region = region
        self.columns = AD_COLUMNS[self.format]
        self.suffix = (
            "google_customer_match" if self.format is AdFormat.GOOGLE else "meta_custom_audience"
        )

    def _dedupe(self, row: list[str]) -> str:
        return "|".join(row)

    def _row(self, message: OutboundMessage) -> list[str] | SendResult:
        meta = message.metadata
        recipient = message.recipient
        email = normalise_email(str(meta.get("email") or (recipient if "@" in recipient else "")))
        phone = normalise_phone(
            str(meta.get("phone") or ("" if "@" in recipient else recipient)), self.region
        )
        if email is None and phone is None:
            return SendResult(
                SendStatus.FAILED, detail="no valid e-mail or phone for the platforms to match"
            )
        first = str(meta.get("first_name") or "")
        last = str(meta.get("last_name") or "")
        country = str(meta.get("country") or "").strip()
        zip_code = str(meta.get("zip") or meta.get("postcode") or "").strip()
        if self.format is AdFormat.GOOGLE:
            return [
                sha256_hex(email) if email else "",
                sha256_hex(phone) if phone else "",
                _hashed_name(first, keep_punctuation=True),
                _hashed_name(last, keep_punctuation=True),
                country.lower() if len(country) == 2 else "",
                zip_code,
            ]
        return [
            sha256_hex(email) if email else "",
            sha256_hex(phone.lstrip("+")) if phone else "",
            _hashed_name(first, keep_punctuation=False),
            _hashed_name(last, keep_punctuation=False),
            sha256_hex(country.lower()) if len(country) == 2 else "",
            sha256_hex(zip_code.lower().replace(" ", "").replace("-", "")) if zip_code else "",
        ]


def _hashed_name(name: str, *, keep_punctuation: bool) -> str:
    text = name.strip().lower()
    text = "".join(text.split()) if keep_punctuation else text.translate(_PUNCTUATION)
    return sha256_hex(text) if text else ""


class CallCentreList(_FileChannel):
    """Who the call centre should call, with the talking points: ``{campaign}.call_centre.csv``.

    Columns: ``message_id, campaign, customer_key, name, phone, talking_points, variant``; the
    phone in E.164 when it parses, the talking points from the message's body (or text), the
    name from its metadata. Free-text cells that a spreadsheet would run as a formula get a
    leading ``'``.
    """

    kind = "call_centre"
    columns = (
        "message_id",
        "campaign",
        "customer_key",
        "name",
        "phone",
        "talking_points",
        "variant",
    )
    suffix = "call_centre"

    def __init__(self, folder: Path | str, *, region: str = "US") -> None:
        super().__init__(folder)
        self.region = region

    def _row(self, message: OutboundMessage) -> list[str] | SendResult:
        phone = normalise_phone(message.recipient, self.region) or message.recipient.strip()
        if not phone:
            return SendResult(SendStatus.FAILED, detail="no phone number to call")
        talking_points = message.short_text
        if not talking_points:
            return SendResult(SendStatus.FAILED, detail="the message has no talking points")
        return [
            self.message_id_for(message.idempotency_key),
            message.campaign,
            message.customer_key,
            _safe_cell(str(message.metadata.get("name") or "")),
            phone,
            _safe_cell(talking_points),
            str(message.metadata.get("variant") or ""),
        ]


class DirectMailList(_FileChannel):
    """Who gets a letter and what it says: ``{campaign}.direct_mail.csv``.

    Columns: ``message_id, campaign, customer_key, name, address, postcode, city, country,
    message, variant``. ``address`` is the metadata's ``address`` or else the recipient line
    of the queue; the other parts come from the metadata.
    """

    kind = "direct_mail"
    columns = (
        "message_id",
        "campaign",
        "customer_key",
        "name",
        "address",
        "postcode",
        "city",
        "country",
        "message",
        "variant",
    )
    suffix = "direct_mail"

    def _row(self, message: OutboundMessage) -> list[str] | SendResult:
        meta = message.metadata
        address = str(meta.get("address") or message.recipient).strip()
        if not address:
            return SendResult(SendStatus.FAILED, detail="no postal address")
        return [
            self.message_id_for(message.idempotency_key),
            message.campaign,
            message.customer_key,
            _safe_cell(str(meta.get("name") or "")),
            _safe_cell(address),
            str(meta.get("postcode") or meta.get("zip") or ""),
            _safe_cell(str(meta.get("city") or "")),
            str(meta.get("country") or ""),
            _safe_cell(message.short_text),
            str(meta.get("variant") or ""),
        ]
