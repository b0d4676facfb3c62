"""The United Kingdom market (``region="GB"``): pounds, London time, British names and
mobile numbers, Black Friday and the Boxing Day sales, and the same identity traps."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from jingzhun.core import SourceSpec, init_project
from jingzhun.datagen import GenerateReport, generate, source_specs
from jingzhun.datagen._catalog import REGIONS, region_data
from jingzhun.ingest import FileStatus
from jingzhun.workspace import Workspace

CUSTOMERS = 3000
DAYS = 365
E164_MOBILE = re.compile(r"\+447\d{9}")
# Mobile ranges 071-075 and 077-079 (076 is pagers, 070 personal numbers).
MOBILE_RANGE = re.compile(r"\+447[1-57-9]\d{8}")
PLACEHOLDERS = {"+447700900000", "+447123456789"}
RETYPED_FORMATS = {
    "national": re.compile(r"07\d{9}"),
    "national spaced": re.compile(r"07\d{3} \d{6}"),
    "international spaced": re.compile(r"\+44 7\d{3} \d{6}"),
    "international with (0)": re.compile(r"\+44 \(0\)7\d{3} \d{6}"),
}


@pytest.fixture(scope="module")
def gb(tmp_path_factory: pytest.TempPathFactory) -> GenerateReport:
    """A year of a small British shop, generated once for the module."""
    out = tmp_path_factory.mktemp("gb")
    return generate(out, customers=CUSTOMERS, days=DAYS, seed=23, region="GB")


def read(report: GenerateReport, stem: str) -> pd.DataFrame:
    return pq.read_table(report.paths[stem]).to_pandas()


def with_persons(report: GenerateReport) -> pd.DataFrame:
    return read(report, "customers").merge(read(report, "identity_truth"), on="customer_id")


def uk_number(value: str) -> str:
    """A UK phone number in any of the generated forms as its national digits (07…)."""
    digits = re.sub(r"\D", "", value)
    if digits.startswith("440"):
        return digits[2:]
    if digits.startswith("44"):
        return "0" + digits[2:]
    return digits


def test_gb_is_a_supported_region(gb: GenerateReport, tmp_path: Path) -> None:
    assert "GB" in REGIONS
    assert gb.region == "GB"
    assert generate(tmp_path, customers=5, days=2, seed=1, region="gb").region == "GB"


def test_money_is_in_pounds_everywhere(gb: GenerateReport) -> None:
    assert set(read(gb, "products")["currency"]) == {"GBP"}
    assert set(read(gb, "order_lines")["currency"]) == {"GBP"}
    events = read(gb, "events")
    done = events.loc[events["event_type"] == "order_completed", "properties"].map(json.loads)
    assert len(done) > 0
    assert {p["currency"] for p in done} == {"GBP"}


def test_prices_are_at_british_levels(gb: GenerateReport) -> None:
    products = read(gb, "products")
    median = products.groupby("category")["price"].median().map(float)
    # The catalogue's US dollar medians at 0.8 pounds to the dollar, with lognormal spread.
    assert 2.5 < median["grocery"] < 8
    assert 35 < median["electronics"] < 110
    assert median["grocery"] < median["books"] < median["apparel"] < median["electronics"]
    pence = products["price"].map(lambda p: int(p * 100) % 100)
    assert pence.isin([99, 0, 50]).all()  # £9.99, £20.00, £12.50


def test_customers_live_in_british_cities_on_london_time(gb: GenerateReport) -> None:
    customers = read(gb, "customers")
    assert set(customers["timezone"].dropna()) == {"Europe/London"}
    assert set(customers["country"].dropna()) == {"GB"}
    cities = customers["city"].value_counts(normalize=True)
    assert cities.index[0] == "London" and 0.15 < cities["London"] < 0.4
    assert {"Birmingham", "Manchester", "Glasgow", "Edinburgh", "Cardiff", "Belfast"} <= set(
        cities.index
    )
    assert cities["Manchester"] > cities["Oxford"]
    lines = read(gb, "order_lines")
    assert set(lines["country"].dropna()) == {"GB"}


def test_names_and_email_addresses_are_british(gb: GenerateReport) -> None:
    customers = read(gb, "customers")
    area = region_data("GB")
    assert set(customers["last_name"].value_counts().index[:3]) & {"Smith", "Jones", "Williams"}
    family = {name for name, _, _ in area.names.family}
    assert {"Patel", "Khan", "Singh", "MacDonald", "O'Neill"} <= set(customers["last_name"])
    assert customers["last_name"].isin(family).mean() > 0.97  # typos only on second records
    domains = customers["email"].dropna().str.strip().str.lower().str.split("@").str[1]
    known = {d for d, _, _ in area.email_domains} | {t for _, _, t in area.email_domains}
    assert set(domains) <= known | {"example.com"}
    for domain in ("gmail.com", "hotmail.co.uk", "btinternet.com", "yahoo.co.uk", "sky.com"):
        assert domain in set(domains), domain


def test_primary_phones_are_e164_uk_mobiles(gb: GenerateReport) -> None:
    # Persons with one record; of those with two, exactly one record shows the E.164 form
    # (see the next test).
    merged = with_persons(gb)
    singles = merged[~merged.duplicated("person_id", keep=False)]
    phones = singles["phone"].dropna()
    assert len(phones) > 0.5 * len(singles)
    assert phones.map(lambda p: E164_MOBILE.fullmatch(p) is not None).all()
    real = phones[~phones.isin(PLACEHOLDERS)]
    assert real.map(lambda p: MOBILE_RANGE.fullmatch(p) is not None).all()
    assert not real.str.startswith("+4477009").any()  # the drama range is kept for placeholders


def test_duplicates_are_retyped_with_typos(gb: GenerateReport) -> None:
    merged = with_persons(gb)
    pairs = list(merged[merged.duplicated("person_id", keep=False)].groupby("person_id"))
    assert len(pairs) == round(0.03 * CUSTOMERS)
    seen_formats: set[str] = set()
    name_typos = compared_phones = 0
    emails_recoverable = emails_compared = 0
    for _, pair in pairs:
        assert sorted(c[0] for c in pair["customer_id"]) == ["S", "W"]
        a, b = pair.iloc[0], pair.iloc[1]
        name_typos += a["first_name"] != b["first_name"] or a["last_name"] != b["last_name"]
        if pd.notna(a["email"]) and pd.notna(b["email"]):
            emails_compared += 1
            emails_recoverable += a["email"].strip().lower() == b["email"].strip().lower()
        if pd.notna(a["phone"]) and pd.notna(b["phone"]):
            compared_phones += 1
            assert a["phone"] != b["phone"]  # never written the same way twice
            assert uk_number(a["phone"]) == uk_number(b["phone"])
            # One of the two is the stored E.164 number, the other typed in by hand.
            stored = [p for p in (a["phone"], b["phone"]) if E164_MOBILE.fullmatch(p)]
            assert len(stored) == 1
            typed = b["phone"] if stored[0] == a["phone"] else a["phone"]
            seen_formats |= {k for k, rx in RETYPED_FORMATS.items() if rx.fullmatch(typed)}
    assert compared_phones > 20
    assert seen_formats == set(RETYPED_FORMATS)
    assert 0.25 < name_typos / len(pairs) < 0.7  # 45 % of second records
    assert 0.4 < emails_recoverable / emails_compared < 0.95


def test_placeholders_are_shared_and_real_details_unique(gb: GenerateReport) -> None:
    merged = with_persons(gb)
    merged["email_key"] = merged["email"].str.strip().str.lower()
    merged["phone_key"] = merged["phone"].map(uk_number, na_action="ignore")
    placeholders = {uk_number(p) for p in PLACEHOLDERS}
    assert placeholders == {"07700900000", "07123456789"}
    shared_emails = {"store@example.com", "noemail@example.com"}
    for key, junk in (("phone_key", placeholders), ("email_key", shared_emails)):
        persons = merged.dropna(subset=[key]).groupby(key)["person_id"].nunique()
        assert set(persons[persons > 1].index) <= junk, key
        assert persons[persons.index.isin(junk)].max() >= 2, key
    on_tills = merged.loc[merged["phone"].isin(PLACEHOLDERS), "customer_id"]
    assert on_tills.str.startswith("S-").all()


def test_british_retail_calendar(gb: GenerateReport) -> None:
    lines = read(gb, "order_lines")
    orders = lines[(lines["line_number"] == 1) & ~lines["is_return"]]
    local = orders["ordered_at"].dt.tz_convert("Europe/London").dt.date
    per_day = local.value_counts()
    median = per_day.median()
    assert per_day[dt.date(2024, 11, 29)] > 2.5 * median  # Black Friday
    assert per_day[dt.date(2024, 12, 2)] > 1.8 * median  # Cyber Monday
    assert per_day[dt.date(2024, 12, 26)] > 1.8 * median  # Boxing Day sales
    assert per_day[dt.date(2024, 12, 25)] < median  # Christmas Day: shops shut
    assert per_day[dt.date(2024, 11, 11)] < 1.6 * median  # no Singles' Day
    assert per_day[dt.date(2024, 11, 28)] > 0.8 * median  # no Thanksgiving lull


def test_spikes_follow_the_dates_each_year() -> None:
    area = region_data("GB")
    for year, black_friday in ((2023, 24), (2024, 29), (2025, 28), (2026, 27)):
        assert area.spikes(dt.date(year, 11, black_friday)) > 3
        assert area.spikes(dt.date(year, 12, 26)) > 2
        assert area.spikes(dt.date(year, 11, 11)) == 1.0
    assert area.spikes(dt.date(2024, 12, 25)) < 0.5


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    one = generate(tmp_path / "one", customers=400, days=60, seed=5, region="GB")
    two = generate(tmp_path / "two", customers=400, days=60, seed=5, region="GB")
    for stem in one.paths:
        assert one.paths[stem].read_bytes() == two.paths[stem].read_bytes(), stem


def test_specs_validate_and_load_into_a_british_project(gb: GenerateReport, tmp_path: Path) -> None:
    root = tmp_path / "project"
    init_project(root, name="uk", timezone="Europe/London", currency="GBP", region="GB")
    (root / "data" / "generated").mkdir(parents=True)
    for path in gb.paths.values():
        shutil.copyfile(path, root / "data" / "generated" / path.name)
    for stem, text in source_specs("data/generated").items():
        spec = SourceSpec.model_validate(yaml.safe_load(text))
        assert spec.path == f"data/generated/{stem}.parquet"
        columns = pq.read_schema(gb.paths[stem]).names
        assert {k: v.source for k, v in spec.columns.items()} == {c: c for c in columns}
        (root / "sources" / f"gen_{stem}.yml").write_text(text, encoding="utf-8")
    with Workspace.open(root) as ws:
        load = ws.ingest.run()
        tables = ws.tables()
    assert load.ok, load.to_dict()
    by_source = {f.source: f for f in load.files}
    for stem in ("customers", "products", "order_lines", "events"):
        report = by_source[f"gen_{stem}"]
        assert report.status is FileStatus.LOADED, stem
        assert report.rows_quarantined == 0, stem
        assert report.rows_read == gb.rows[stem], stem
    assert tables["raw_customers"] >= gb.rows["customers"]  # plus versions seen on orders
