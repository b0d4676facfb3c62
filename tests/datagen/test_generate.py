"""The seeded generator: contracts, determinism, and the realism later stages rely on."""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from jingzhun.core import CONTRACTS, SourceSpec, Target
from jingzhun.datagen import OUTPUT_FILES, GenerateReport, generate, source_specs
from jingzhun.engine import ARROW_TYPES

START = dt.date(2024, 1, 1)
DAYS = 365
CUSTOMERS = 4000


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> GenerateReport:
    """A year of a small CN shop, generated once for the module."""
    out = tmp_path_factory.mktemp("world")
    return generate(out, customers=CUSTOMERS, days=DAYS, seed=11, start=START)


def read(report: GenerateReport, stem: str) -> pa.Table:
    return pq.read_table(report.paths[stem])


def orders_of(report: GenerateReport) -> pa.Table:
    """One row per order: header fields of its first line."""
    lines = read(report, "order_lines")
    first = pc.equal(lines["line_number"], 1)
    return lines.filter(first).select(["order_id", "customer_id", "ordered_at", "is_return"])


def phone_digits(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits


# --- files and contracts ---------------------------------------------------------------------


def test_report_matches_files(world: GenerateReport) -> None:
    assert set(world.rows) == {f.stem for f in OUTPUT_FILES}
    for stem, path in world.paths.items():
        assert path.exists()
        assert pq.ParquetFile(path).metadata.num_rows == world.rows[stem]
    assert world.rows["customers"] == world.rows["identity_truth"]
    assert world.rows["customers"] == CUSTOMERS + round(0.03 * CUSTOMERS)
    # Roughly ten order lines per customer and year, and events of the same order.
    assert 6 * CUSTOMERS < world.rows["order_lines"] < 14 * CUSTOMERS
    assert world.rows["order_lines"] < world.rows["events"] < 5 * world.rows["order_lines"]
    as_json = json.loads(json.dumps(world.to_dict()))
    assert as_json["rows"]["products"] == world.rows["products"]
    assert as_json["start"] == "2024-01-01"
    assert not list(world.out_dir.glob("*.partial"))


@pytest.mark.parametrize("output", [f for f in OUTPUT_FILES if f.target], ids=lambda f: f.stem)
def test_columns_are_canonical_fields_with_engine_types(world: GenerateReport, output) -> None:
    contract = CONTRACTS[output.target]
    schema = pq.read_schema(world.paths[output.stem])
    assert schema.names == [f for f in contract.field_names if f in schema.names]
    for name in schema.names:
        assert schema.field(name).type == ARROW_TYPES[contract.field(name).type], name
    required = {f.name for f in contract.fields if f.required}
    assert required <= set(schema.names)


def test_identity_truth_covers_every_customer_record(world: GenerateReport) -> None:
    customers = read(world, "customers")
    truth = read(world, "identity_truth")
    assert truth.schema.names == ["customer_id", "person_id"]
    assert sorted(truth["customer_id"].to_pylist()) == sorted(customers["customer_id"].to_pylist())
    assert pc.count_distinct(customers["customer_id"]).as_py() == customers.num_rows
    assert pc.count_distinct(truth["person_id"]).as_py() == CUSTOMERS


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    one = generate(tmp_path / "one", customers=500, days=90, seed=5)
    two = generate(tmp_path / "two", customers=500, days=90, seed=5)
    for stem in one.paths:
        assert read(one, stem).equals(read(two, stem)), stem
        assert one.paths[stem].read_bytes() == two.paths[stem].read_bytes(), stem


def test_different_seeds_give_different_data(tmp_path: Path) -> None:
    one = generate(tmp_path / "one", customers=500, days=90, seed=5)
    two = generate(tmp_path / "two", customers=500, days=90, seed=6)
    for stem in ("customers", "order_lines", "events"):
        assert not read(one, stem).equals(read(two, stem)), stem


# --- purchases -------------------------------------------------------------------------------


def test_purchase_frequency_is_long_tailed(world: GenerateReport) -> None:
    orders = orders_of(world).filter(pc.invert(orders_of(world)["is_return"]))
    per_customer = orders.group_by("customer_id").aggregate([("order_id", "count")])
    counts = np.sort(
        [c for k, c in zip(*per_customer.to_pydict().values(), strict=True) if k is not None]
    )[::-1]
    everyone = np.concatenate([counts, np.zeros(world.rows["customers"] - len(counts))])
    top = everyone[: len(everyone) // 5].sum()
    assert top / everyone.sum() > 0.5  # Pareto: a fifth of the customers, most of the orders
    buyers = counts[counts > 0]
    assert (buyers == 1).mean() > 0.2  # many one-time buyers
    assert buyers.max() > 10 * np.median(buyers)  # and a few very heavy ones


def test_customers_stop_buying(world: GenerateReport) -> None:
    orders = orders_of(world).filter(pc.invert(orders_of(world)["is_return"]))
    frame = orders.to_pandas()
    frame = frame[frame["customer_id"].notna()]
    cutoff = pd_timestamp(START + dt.timedelta(days=DAYS // 2))
    late = pd_timestamp(START + dt.timedelta(days=DAYS - 120))
    early = frame[frame["ordered_at"] < cutoff].groupby("customer_id").size()
    regulars = early[early >= 6].index  # a purchase a month or more
    last = frame[frame["customer_id"].isin(regulars)].groupby("customer_id")["ordered_at"].max()
    gone = (last < late).mean()
    # Without drop-out, hardly any of them would go four months without buying (Poisson:
    # below 2 %); BG/NBD drop-out takes a good share of them.
    assert len(regulars) > 50
    assert 0.15 < gone < 0.7


def pd_timestamp(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def test_lines_reference_real_products_and_customers(world: GenerateReport) -> None:
    skus = set(read(world, "products")["sku"].to_pylist())
    lines = read(world, "order_lines")
    assert set(lines["sku"].to_pylist()) <= skus
    events = read(world, "events")
    assert set(events["sku"].drop_null().to_pylist()) <= skus
    ids = set(read(world, "customers")["customer_id"].to_pylist())
    assert set(lines["customer_id"].drop_null().to_pylist()) <= ids
    assert set(events["customer_id"].drop_null().to_pylist()) <= ids
    assert lines["customer_id"].null_count > 0  # guest orders


def test_money_is_exact_and_returns_are_negative(world: GenerateReport) -> None:
    lines = read(world, "order_lines").to_pandas()
    assert (lines["amount"] == lines["quantity"] * lines["unit_price"]).all()
    assert all(isinstance(v, Decimal) for v in lines["unit_price"].head())
    returns = lines[lines["is_return"]]
    sales = lines[~lines["is_return"]]
    assert len(returns) > 0
    assert (returns["quantity"] < 0).all() and (returns["amount"] < 0).all()
    assert (sales["quantity"] > 0).all() and (sales["unit_price"] > 0).all()
    share = returns["order_id"].nunique() / lines["order_id"].nunique()
    assert 0.01 < share < 0.15
    # A return gives back something the same customer bought earlier, at the price paid.
    bought = sales.groupby(["customer_id", "sku", "unit_price"])["ordered_at"].min()
    known = returns[returns["customer_id"].notna()]
    keys = list(zip(known["customer_id"], known["sku"], known["unit_price"], strict=True))
    assert all(key in bought.index for key in keys)
    first_bought = bought.loc[keys].to_numpy()
    assert (first_bought < known["ordered_at"].to_numpy()).all()


def test_every_timestamp_is_inside_the_window(world: GenerateReport) -> None:
    begin = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    end = begin + dt.timedelta(days=DAYS)
    for stem, column in (("order_lines", "ordered_at"), ("events", "occurred_at")):
        values = read(world, stem)[column]
        assert values.null_count == 0
        assert pc.min(values).as_py() >= begin, stem
        assert pc.max(values).as_py() < end, stem
    assert pc.max(read(world, "customers")["signup_at"]).as_py() < end


def test_seasonality_shows(world: GenerateReport) -> None:
    frame = orders_of(world).to_pandas()
    local = frame["ordered_at"].dt.tz_convert("Asia/Shanghai")
    per_month = local.dt.month.value_counts()
    assert per_month[12] > per_month.mean() * 1.1
    per_day = local.dt.date.value_counts()
    assert per_day[dt.date(2024, 11, 11)] > 2.5 * per_day.median()  # Singles' Day
    weekday = local.dt.day_of_week
    per_weekday = weekday.value_counts() / weekday.groupby(local.dt.date).first().value_counts()
    assert per_weekday[[5, 6]].mean() > per_weekday[[0, 1, 2, 3]].mean()


# --- identities ------------------------------------------------------------------------------


def test_duplicate_records_are_the_same_person_with_typos(world: GenerateReport) -> None:
    customers = read(world, "customers").to_pandas()
    truth = read(world, "identity_truth").to_pandas()
    merged = customers.merge(truth, on="customer_id")
    twins = merged[merged.duplicated("person_id", keep=False)].sort_values("customer_id")
    pairs = list(twins.groupby("person_id"))
    assert len(pairs) == round(0.03 * CUSTOMERS)
    differ = 0
    emails_recoverable = emails_compared = 0
    for _, pair in pairs:
        assert sorted(c[0] for c in pair["customer_id"]) == ["S", "W"]  # one per system
        a, b = pair.iloc[0], pair.iloc[1]
        fields = ["email", "phone", "first_name", "last_name"]
        if any(a[f] != b[f] for f in fields if pd.notna(a[f]) and pd.notna(b[f])):
            differ += 1
        if pd.notna(a["email"]) and pd.notna(b["email"]):
            emails_compared += 1
            emails_recoverable += a["email"].strip().lower() == b["email"].strip().lower()
        if pd.notna(a["phone"]) and pd.notna(b["phone"]):
            assert a["phone"] != b["phone"]  # never written the same way twice
            assert phone_digits(a["phone"]) == phone_digits(b["phone"])
        if pd.notna(a["birth_date"]) and pd.notna(b["birth_date"]):
            assert a["birth_date"] == b["birth_date"]
    assert differ > 0.8 * len(pairs)
    # Case and spaces can be normalised away; mistyped domains cannot.
    assert 0.4 < emails_recoverable / emails_compared < 0.95


def test_real_contact_details_are_unique_but_placeholders_are_shared(
    world: GenerateReport,
) -> None:
    customers = read(world, "customers").to_pandas()
    truth = read(world, "identity_truth").to_pandas()
    merged = customers.merge(truth, on="customer_id")
    merged["email_key"] = merged["email"].str.strip().str.lower()
    merged["phone_key"] = merged["phone"].map(phone_digits, na_action="ignore")
    placeholders = {"13800000000", "13800138000"}
    shared_emails = {"store@example.com", "noemail@example.com"}
    for key, junk in (("phone_key", placeholders), ("email_key", shared_emails)):
        persons = merged.dropna(subset=[key]).groupby(key)["person_id"].nunique()
        assert set(persons[persons > 1].index) <= junk, key  # only junk is shared
        assert persons[persons.index.isin(junk)].max() >= 2, key


def test_customer_fields_look_real(world: GenerateReport) -> None:
    customers = read(world, "customers").to_pandas()
    for zone in customers["timezone"].dropna().unique():
        zoneinfo.ZoneInfo(zone)
    assert customers["timezone"].nunique() >= 3
    with_email = customers[customers["email"].notna()]
    assert 0.4 < with_email["email_consent"].mean() < 0.8
    assert not customers.loc[customers["email"].isna(), "email_consent"].fillna(False).any()
    store = customers["customer_id"].str.startswith("S-")
    assert not customers.loc[store, "push_consent"].any()
    assert customers["birth_date"].notna().mean() > 0.4
    ages = (pd_timestamp(START) - customers["birth_date"].dropna().map(pd_timestamp)).dt.days
    assert ages.between(16 * 365, 91 * 366).all()
    assert customers["birth_date"].value_counts().max() < 10  # no pile-up on one day
    tiers = customers["attributes"].map(lambda text: json.loads(text)["loyalty_tier"])
    assert set(tiers) == {"bronze", "silver", "gold", "platinum"}


# --- events ----------------------------------------------------------------------------------


def test_identify_links_every_known_device(world: GenerateReport) -> None:
    events = read(world, "events").to_pandas()
    identify = events[events["event_type"] == "identify"]
    assert identify["customer_id"].notna().all() and identify["anonymous_id"].notna().all()
    seen_known = events.dropna(subset=["customer_id", "anonymous_id"])["anonymous_id"]
    assert set(seen_known) <= set(identify["anonymous_id"])
    web = events[events["channel"].isin(["web", "app"])]
    assert web["customer_id"].isna().mean() > 0.1  # anonymous browsing
    assert (events["event_type"] == "alias").any()
    assert set(events["event_type"]) == {
        "page",
        "app_opened",
        "product_viewed",
        "added_to_cart",
        "checkout_started",
        "order_completed",
        "identify",
        "alias",
        "email_opened",
        "email_clicked",
    }
    assert events["event_id"].is_unique
    assert events["occurred_at"].is_monotonic_increasing


def test_order_completed_events_match_orders(world: GenerateReport) -> None:
    events = read(world, "events").to_pandas()
    done = events[events["event_type"] == "order_completed"]
    props = done["properties"].map(json.loads)
    orders = orders_of(world).to_pandas().set_index("order_id")
    matched = orders.loc[props.map(lambda p: p["order_id"])]
    assert (matched["ordered_at"].to_numpy() == done["occurred_at"].to_numpy()).all()
    assert set(done["channel"]) <= {"web", "app"}
    for text in events["properties"].dropna().sample(500, random_state=1):
        assert isinstance(json.loads(text), dict)


def test_emails_go_to_consenting_customers(world: GenerateReport) -> None:
    events = read(world, "events").to_pandas()
    customers = read(world, "customers").to_pandas().set_index("customer_id")
    mail = events[events["event_type"].isin(["email_opened", "email_clicked"])]
    assert len(mail) > 0
    assert customers.loc[mail["customer_id"], "email_consent"].all()
    clicks = (mail["event_type"] == "email_clicked").sum()
    assert 0.05 < clicks / len(mail) < 0.3


# --- other regions, arguments, specs ---------------------------------------------------------


def test_us_region(tmp_path: Path) -> None:
    report = generate(tmp_path, customers=600, days=60, seed=3, region="US")
    products = read(report, "products")
    assert set(products["currency"].to_pylist()) == {"USD"}
    customers = read(report, "customers")
    zones = set(customers["timezone"].drop_null().to_pylist())
    assert {"America/New_York", "America/Los_Angeles"} <= zones
    phones = customers["phone"].drop_null().to_pylist()
    assert all(len(re.sub(r"\D", "", p)) in (10, 11) for p in phones)


def test_tiny_world_still_writes_every_file(tmp_path: Path) -> None:
    report = generate(tmp_path, customers=1, days=1, seed=0)
    for stem, path in report.paths.items():
        schema = pq.read_schema(path)
        assert schema.names, stem


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"customers": 0}, "customers"),
        ({"days": 0}, "days"),
        ({"seed": -1}, "seed"),
        ({"region": "XX"}, "region"),
        ({"duplicate_share": 0.9}, "duplicate_share"),
        ({"products": 0}, "products"),
    ],
)
def test_bad_arguments_are_explained(tmp_path: Path, arguments: dict, message: str) -> None:
    given = {"customers": 10, "days": 10, "seed": 1} | arguments
    with pytest.raises(ValueError, match=message):
        generate(tmp_path, **given)


def test_source_specs_validate_and_map_every_column(world: GenerateReport) -> None:
    specs = source_specs("data/generated")
    assert set(specs) == {"customers", "products", "order_lines", "events"}
    for stem, text in specs.items():
        spec = SourceSpec.model_validate(yaml.safe_load(text))
        assert spec.name == f"gen_{stem}"
        assert spec.path == f"data/generated/{stem}.parquet"
        assert spec.target is Target(stem)
        columns = pq.read_schema(world.paths[stem]).names
        assert {k: v.source for k, v in spec.columns.items()} == {c: c for c in columns}
