"""Audience sync: hashed lists in Google's and Meta's formats, consent respected, look-alike
seeds by value, suppression lists of existing customers.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from pathlib import Path

from jingzhun.ads import AudienceKind, audience_of, export_ad_audience, project_index
from jingzhun.campaigns import Channel, ConsentLedger, ConsentRecord, Purpose, Status
from jingzhun.workspace import Workspace


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_customer_lists_are_hashed_and_consented(project: Path, tmp_path: Path) -> None:
    with Workspace.open(project) as ws:
        index = project_index(ws.project, ws.engine)
        audience = audience_of(index, "beauty_women")
        assert audience
        profiles = ws.engine.execute(ws.engine.read("profiles")).to_pandas()
        members = profiles[profiles.customer_key.isin(audience)]
        opted = members[
            members.email_consent.fillna(False).astype(bool) & members.has_valid_email.fillna(False)
        ]
        withdrawn = opted.iloc[0]
        ConsentLedger(ws.store).record(
            [ConsentRecord("customer_key", withdrawn.customer_key, Purpose.MARKETING, Channel.ADS,
                           Status.WITHDRAWN, dt.datetime.now(dt.UTC))]
        )  # fmt: skip
        google = export_ad_audience(
            ws.engine, ws.store, "beauty_women", "customers", "google", tmp_path / "g.csv",
            audience=audience, region="GB",
        )  # fmt: skip
        meta = export_ad_audience(
            ws.engine, ws.store, "beauty_women", "customers", "meta", tmp_path / "m.csv",
            audience=audience, region="GB",
        )  # fmt: skip
    g, m = _rows(tmp_path / "g.csv"), _rows(tmp_path / "m.csv")
    assert list(g[0]) == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
    assert list(m[0]) == ["email", "phone", "fn", "ln", "country", "zip"]
    expected = {
        hashlib.sha256(e.strip().lower().encode()).hexdigest()
        for e in opted.email
        if e != withdrawn.email
    }
    assert {r["Email"] for r in g} == expected == {r["email"] for r in m}
    assert google["rows"] == meta["rows"] == len(g) == len(expected)
    assert all(len(r["Phone"]) in (0, 64) for r in g)


def test_lookalike_seed_and_suppression(project: Path, tmp_path: Path) -> None:
    with Workspace.open(project) as ws:
        seed = export_ad_audience(
            ws.engine, ws.store, "spring_sale", AudienceKind.LOOKALIKE_SEED, "meta",
            tmp_path / "seed.csv", region="GB", seed_share=0.2,
        )  # fmt: skip
        suppression = export_ad_audience(
            ws.engine, ws.store, "spring_sale", AudienceKind.SUPPRESSION, "google",
            tmp_path / "suppress.csv", region="GB",
        )  # fmt: skip
        profiles = ws.engine.execute(ws.engine.read("profiles")).to_pandas()
    buyers = profiles[profiles.orders.fillna(0) > 0]
    assert suppression["people"] == len(buyers)
    contactable = buyers[
        buyers.has_valid_email.fillna(False) | buyers.has_valid_phone.fillna(False)
    ]
    assert suppression["rows"] >= 0.9 * len(contactable)
    consenting = buyers[buyers.email_consent.fillna(False).astype(bool)]
    assert seed["people"] == min(len(consenting), max(100, round(0.2 * len(consenting))))
    top = consenting.sort_values("monetary", ascending=False).head(seed["people"])
    threshold = float(top.monetary.min())
    rest = consenting[~consenting.customer_key.isin(top.customer_key)]
    assert rest.empty or float(rest.monetary.max()) <= threshold
