"""RFM on real data: the bundled UCI Online Retail sample (31,325 invoice lines, CC BY 4.0)
through ingest and build_profiles, checked against an independent pandas computation.

The pandas side reads the CSV itself and applies the definitions in plain terms: lines with
a unit price of zero or below are left out (the source spec quarantines them); an invoice
starting with "C" is a return; a line is a return when its invoice is one or its quantity is
negative; monetary = sales lines minus the absolute value of return lines; frequency =
distinct invoices that are not returns; recency = as_of minus the UTC date of the last such
invoice; quintiles by SQL's ntile(5) over (value, customer key), recency most recent = 5.
"""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from jingzhun.demo._demo import SAMPLE_SPEC
from jingzhun.profile import ProfileSettings, build_profiles
from jingzhun.workspace import Workspace

AS_OF = dt.date(2011, 12, 10)  # the day after the last invoice (2011-12-09), as RFM studies use
SOURCE = "online_retail_sample"
SPEC = SAMPLE_SPEC  # the demo's own source spec for the bundled sample


def _sample() -> Path:
    with resources.as_file(
        resources.files("jingzhun.demo").joinpath("data", f"{SOURCE}.csv.gz")
    ) as path:
        return Path(path)


@pytest.fixture(scope="module")
def retail(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("retail")
    (root / "sources").mkdir()
    (root / "data").mkdir()
    shutil.copyfile(_sample(), root / "data" / f"{SOURCE}.csv.gz")
    (root / "jingzhun.yml").write_text("name: retail\ncurrency: GBP\nregion: GB\n")
    (root / "sources" / f"{SOURCE}.yml").write_text(SPEC)
    ws = Workspace.open(root)
    assert ws.ingest.run().ok
    # Loaded today, describing 2011: a backfill, so rows loaded after as_of count.
    settings = ProfileSettings(include_late_loads=True)
    report = build_profiles(ws.engine, as_of=AS_OF, settings=settings)
    assert report.identity.startswith("fallback")
    yield ws
    ws.close()


def _ntile(n: int, buckets: int = 5) -> list[int]:
    """SQL ntile: the first n % buckets groups hold one row more."""
    size, extra = divmod(n, buckets)
    out = []
    for bucket in range(buckets):
        out += [bucket + 1] * (size + (1 if bucket < extra else 0))
    return out


def _pandas_rfm() -> pd.DataFrame:
    lines = pd.read_csv(_sample(), dtype=str, keep_default_na=False)
    lines = lines[lines["UnitPrice"].map(Decimal) > 0]
    lines = lines[lines["CustomerID"] != ""]
    local = pd.to_datetime(lines["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    lines = lines.assign(
        day=local.dt.tz_localize("Europe/London").dt.tz_convert("UTC").dt.date,
        amount=[
            Decimal(q) * Decimal(p) for q, p in zip(lines.Quantity, lines.UnitPrice, strict=True)
        ],
        invoice_return=lines["InvoiceNo"].str.startswith("C"),
    )
    line_return = lines["invoice_return"] | (lines["Quantity"].astype(int) < 0)
    lines = lines.assign(
        value=[(-abs(a) if r else a) for a, r in zip(lines.amount, line_return, strict=True)],
        customer_key="ck_" + SOURCE + ":" + lines["CustomerID"],
    )
    sales = lines[~lines["invoice_return"]]
    per = pd.DataFrame(
        {
            "monetary": lines.groupby("customer_key")["value"].sum(),
            "frequency": sales.groupby("customer_key")["InvoiceNo"].nunique(),
            "last_day": sales.groupby("customer_key")["day"].max(),
        }
    )
    per = per[per["frequency"].notna()].reset_index()
    per["frequency"] = per["frequency"].astype(int)
    per["recency_days"] = [(AS_OF - d).days for d in per["last_day"]]
    n = len(per)
    by_recency = per.sort_values(["recency_days", "customer_key"], ascending=[False, True])
    per.loc[by_recency.index, "r_score"] = _ntile(n)
    by_frequency = per.sort_values(["frequency", "customer_key"])
    per.loc[by_frequency.index, "f_score"] = _ntile(n)
    by_money = per.sort_values(["monetary", "customer_key"])
    per.loc[by_money.index, "m_score"] = _ntile(n)
    return per.astype({"r_score": int, "f_score": int, "m_score": int})


def test_rfm_equals_independent_pandas(retail: Workspace) -> None:
    expected = _pandas_rfm()
    engine = retail.engine
    profiles = engine.read("profiles")
    columns = ["customer_key", "recency_days", "frequency", "monetary", "r_score", "f_score"]
    got = engine.execute(
        profiles.filter(profiles.frequency > 0).select(*columns, "m_score", "rfm_segment")
    ).to_pandas()
    assert len(got) == len(expected) == 377  # buyers among the sample's customers
    merged = expected.merge(got, on="customer_key", suffixes=("_pd", ""), validate="1:1")
    assert len(merged) == len(expected)
    for name in ("recency_days", "frequency", "r_score", "f_score", "m_score"):
        assert (merged[f"{name}_pd"] == merged[name]).all(), name
    assert all(
        Decimal(str(a)).quantize(Decimal("0.0001")) == b
        for a, b in zip(merged["monetary_pd"], merged["monetary"], strict=True)
    )
    settings = ProfileSettings()
    segments = [
        settings.segment_of(r, (f + m) / 2)
        for r, f, m in zip(merged.r_score_pd, merged.f_score_pd, merged.m_score_pd, strict=True)
    ]
    assert segments == merged["rfm_segment"].tolist()
    # Each quintile holds a fifth of the buyers (377 = 76 + 76 + 75 + 75 + 75).
    assert merged["r_score"].value_counts().sort_index().tolist() == [76, 76, 75, 75, 75]


def test_returns_only_customers_have_no_scores(retail: Workspace) -> None:
    engine = retail.engine
    p = engine.read("profiles")
    only_returns = p.filter((p.frequency == 0) & (p.returns > 0))
    rows = engine.execute(only_returns).to_pylist()
    for row in rows:
        assert row["r_score"] is None and row["rfm_segment"] is None
        assert row["lifecycle_stage"] == "prospect" and row["value_tier"] is None
        assert row["monetary"] < 0
    total = engine.scalar(p.count())
    assert total == engine.scalar(engine.read("raw_orders").customer_id.nunique())
