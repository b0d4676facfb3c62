"""Audience sync for outside ad platforms: hashed customer lists in Google's Customer Match or
Meta's custom-audience upload format (written by ``jingzhun.delivery.AdAudienceExport``, so
normalisation and hashing are the delivery stage's, not a copy).

Three lists:

- ``customers``: the people a campaign targets (everyone with a contact when untargeted);
- ``lookalike_seed``: the campaign audience's most valuable buyers (top ``seed_share`` by net
  revenue; at least 100 when there are that many) — the seed a platform grows a look-alike
  audience from;
- ``suppression``: every existing customer (at least one order), for acquisition campaigns
  to exclude.

Consent: ``customers`` and ``lookalike_seed`` share personal data with a platform for
marketing, so a person is on them only with consent for ``marketing`` on the ``ads`` channel
in the ledger, or — with no ads record at all — their source system's e-mail marketing opt-in
(``email_consent``; the lists match on e-mail first). A withdrawal or denial for ads always
wins. The suppression list exists so people are *not* targeted and goes out without that check.
"""

from __future__ import annotations

import shutil
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from jingzhun.campaigns import Channel, ConsentLedger, Purpose, consented
from jingzhun.delivery import AdAudienceExport, AdFormat, OutboundMessage, SendStatus
from jingzhun.engine import Engine
from jingzhun.profile import PROFILES
from jingzhun.store import OperationalStore

CONTACT_COLUMNS = ("customer_key", "email", "phone", "first_name", "last_name", "country")
MIN_SEED = 100


class AudienceKind(StrEnum):
    """Which list to write."""

    CUSTOMERS = "customers"
    LOOKALIKE_SEED = "lookalike_seed"
    SUPPRESSION = "suppression"


def _consenting(engine: Engine, store: OperationalStore) -> set[str]:
    latest = ConsentLedger(store).latest(Purpose.MARKETING, Channel.ADS)
    granted = consented(engine, latest, Channel.ADS, Purpose.MARKETING, use_source_flags=False)
    yes = {str(k) for k in engine.execute(granted).column(0).to_pylist()}
    refused_latest = latest.set_column(
        latest.schema.get_field_index("granted"), "granted", pc.invert(latest["granted"])
    )
    refused = consented(
        engine, refused_latest, Channel.ADS, Purpose.MARKETING, use_source_flags=False
    )
    no = {str(k) for k in engine.execute(refused).column(0).to_pylist()}
    profiles = engine.read(PROFILES)
    flagged = (
        engine.execute(
            profiles.filter(profiles.email_consent.fill_null(False)).select("customer_key")
        )
        .column(0)
        .to_pylist()
    )
    return yes | ({str(k) for k in flagged} - no)


def audience_rows(
    engine: Engine,
    store: OperationalStore,
    kind: AudienceKind | str,
    *,
    audience: set[str] | None = None,
    seed_share: float = 0.2,
) -> list[dict[str, Any]]:
    """The profile rows of a list (contacts and ``monetary``), before hashing."""
    kind = AudienceKind(kind)
    profiles = engine.read(PROFILES)
    table: pa.Table = engine.execute(profiles.select(*CONTACT_COLUMNS, "orders", "monetary"))
    rows = table.to_pylist()
    if audience is not None and kind is not AudienceKind.SUPPRESSION:
        rows = [r for r in rows if r["customer_key"] in audience]
    if kind is AudienceKind.SUPPRESSION:
        return [r for r in rows if (r["orders"] or 0) > 0]
    allowed = _consenting(engine, store)
    rows = [r for r in rows if r["customer_key"] in allowed]
    if kind is AudienceKind.LOOKALIKE_SEED:
        buyers = sorted(
            (r for r in rows if (r["orders"] or 0) > 0),
            key=lambda r: (-float(r["monetary"] or 0), str(r["customer_key"])),
        )
        size = min(len(buyers), max(MIN_SEED, round(seed_share * len(buyers))))
        return buyers[:size]
    return rows


def export_ad_audience(
    engine: Engine,
    store: OperationalStore,
    name: str,
    kind: AudienceKind | str,
    platform: AdFormat | str,
    out: Path,
    *,
    audience: set[str] | None = None,
    region: str = "US",
    seed_share: float = 0.2,
) -> dict[str, Any]:
    """Write one list for a platform to ``out`` (replaced: a sync uploads the whole list).

    Returns the rows written and the people left out for want of a valid e-mail or phone.
    """
    rows = audience_rows(engine, store, kind, audience=audience, seed_share=seed_share)
    kind = AudienceKind(kind)
    platform = AdFormat(platform)
    written = skipped = 0
    with tempfile.TemporaryDirectory(prefix="jingzhun-ads-") as folder:
        channel = AdAudienceExport(folder, format=platform, region=region)
        list_name = f"{name}_{kind.value}"
        try:
            for row in rows:
                recipient = row["email"] or row["phone"] or ""
                message = OutboundMessage(
                    idempotency_key=f"{list_name}:{row['customer_key']}:ads",
                    recipient=str(recipient),
                    customer_key=str(row["customer_key"]),
                    campaign=list_name,
                    metadata={
                        "email": row["email"] or "",
                        "phone": row["phone"] or "",
                        "first_name": row["first_name"] or "",
                        "last_name": row["last_name"] or "",
                        "country": row["country"] or "",
                    },
                )
                result = channel.send(message)
                if result.status is SendStatus.SENT:
                    written += 1
                else:
                    skipped += 1
            path = channel.path_for(list_name)
        finally:
            channel.close()
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            shutil.move(str(path), out)
        else:  # nobody on the list: the header only
            from jingzhun.delivery import AD_COLUMNS

            out.write_text(",".join(AD_COLUMNS[platform]) + "\n", encoding="utf-8")
    return {
        "campaign": name,
        "list": kind.value,
        "platform": platform.value,
        "path": str(out),
        "people": len(rows),
        "rows": written,
        "skipped_no_contact": skipped,
    }
