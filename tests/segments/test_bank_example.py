"""The documented bank example (examples/bank): the seeds' credit-card offer audience, checked
against the same rule computed independently with pandas from the example's CSV files.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from helpers import REPO
from jingzhun.cli import app
from jingzhun.workspace import Workspace

AS_OF = dt.date(2024, 6, 30)
runner = CliRunner()


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bank") / "bank"
    shutil.copytree(REPO / "examples" / "bank", root)
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
        ws.build(AS_OF)
    return root


def keys_by_customer_id(ws: Workspace) -> dict[str, str]:
    nodes = ws.engine.execute(ws.engine.read("identity_map")).to_pylist()
    return {r["node_id"]: r["customer_key"] for r in nodes if r["node_kind"] == "customer"}


def valid_phone(phone: object) -> bool:
    text = "" if phone is None or (isinstance(phone, float) and pd.isna(phone)) else str(phone)
    digits = re.sub(r"\D", "", text)
    return bool(re.fullmatch(r"[0-9 +().-]+", text)) and 7 <= len(digits) <= 15


def expected_offer(root: Path) -> set[str]:
    """The bank case by hand: debit card, debit spending in the 6 months to as_of, a valid
    mobile, SMS marketing consent, no credit card.
    """
    customers = pd.read_csv(root / "data" / "customers.csv", dtype=str, keep_default_na=False)
    events = pd.read_csv(root / "data" / "events.csv", dtype=str)
    events["props"] = events.properties.map(json.loads)
    events["day"] = pd.to_datetime(events.occurred_at).dt.date
    opened = events[events.event_type == "product_opened"]
    debit = set(opened[opened.props.map(lambda p: p.get("product") == "debit_card")].customer_id)
    credit = set(opened[opened.props.map(lambda p: p.get("product") == "credit_card")].customer_id)
    pay = events[(events.event_type == "card_payment")]
    pay = pay[pay.props.map(lambda p: p.get("card_type") == "debit")]
    start = dt.date(2023, 12, 31)  # six calendar months back, the day after
    recent = pay[(pay.day >= start) & (pay.day <= AS_OF)]
    spent = recent.groupby("customer_id").props.apply(lambda s: sum(p["amount"] for p in s))
    spenders = set(spent[spent >= 1].index)
    reachable = set(
        customers[
            customers.mobile.map(valid_phone) & (customers.marketing_sms == "yes")
        ].customer_id
    )
    return (debit & spenders & reachable) - credit


def test_credit_card_offer_matches_the_rule_computed_by_hand(bank: Path) -> None:
    with Workspace.open(bank) as ws:
        keys = keys_by_customer_id(ws)
        members = set(
            ws.engine.execute(ws.segments.compile("credit_card_offer").members)
            .column("customer_key")
            .to_pylist()
        )
    expected = {keys[c] for c in expected_offer(bank)}
    assert len(expected) >= 5  # the example data has a real audience
    assert members == expected


def test_nested_sample_is_a_stable_subset(bank: Path) -> None:
    with Workspace.open(bank) as ws:
        offer = set(
            ws.engine.execute(ws.segments.compile("credit_card_offer").members)
            .column(0)
            .to_pylist()
        )
        cell = set(
            ws.engine.execute(ws.segments.compile("offer_test_cell").members).column(0).to_pylist()
        )
        again = set(
            ws.engine.execute(ws.segments.compile("offer_test_cell").members).column(0).to_pylist()
        )
    assert cell <= offer and cell == again


def test_explain_shows_values_and_truths(bank: Path) -> None:
    with Workspace.open(bank) as ws:
        keys = keys_by_customer_id(ws)
        inside = sorted(expected_offer(bank))[0]
        outside = next(c for c in sorted(keys) if c not in expected_offer(bank))
        yes = ws.segments.explain("credit_card_offer", inside)
        no = ws.segments.explain("credit_card_offer", outside)
    assert yes.member and yes.customer_key == keys[inside]
    spend = next(s for s in yes.steps if "card_payment" in s.rule)
    assert spend.result and spend.value >= 1
    assert not no.member
    # the top-level rule is false because at least one of its parts is
    assert any(not s.result for s in no.steps if s.depth == 1)


def test_cli_count_preview_explain_export(bank: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["segment", "count", "credit_card_offer", "-p", str(bank), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload == {"segment": "credit_card_offer", "count": len(expected_offer(bank))}

    result = runner.invoke(
        app, ["segment", "preview", "credit_card_offer", "-p", str(bank), "--json"]
    )
    rows = json.loads(result.output)["rows"]
    assert rows and all("*" in r["phone"] for r in rows if r["phone"])  # PII masked

    out = tmp_path / "offer.parquet"
    result = runner.invoke(
        app, ["segment", "export", "credit_card_offer", "--out", str(out), "-p", str(bank)]
    )
    assert result.exit_code == 0, result.output
    exported = pq.read_table(out)
    assert exported.num_rows == payload["count"]
    assert "phone" in exported.column_names

    csv_out = tmp_path / "offer.csv"
    runner.invoke(
        app, ["segment", "export", "credit_card_offer", "--out", str(csv_out), "-p", str(bank)]
    )
    assert len(csv_out.read_text().splitlines()) == payload["count"] + 1

    result = runner.invoke(app, ["segment", "list", "-p", str(bank), "--json"])
    names = [s["segment"] for s in json.loads(result.output)["segments"]]
    assert names.index("credit_card_offer") < names.index("offer_test_cell")  # dependency order


def test_build_records_entries_and_exits(bank: Path, tmp_path: Path) -> None:
    root = tmp_path / "bank"
    shutil.copytree(bank, root)
    with Workspace.open(root) as ws:
        first = ws.segments.build(AS_OF)  # same date as the fixture's build: nothing changes
        assert all(v["entered"] == 0 and v["exited"] == 0 for v in first.segments.values())
        before = set(
            ws.engine.execute(ws.segments.compile("big_spenders").members).column(0).to_pylist()
        )
    (root / "segments" / "big_spenders.yml").write_text(
        "name: big_spenders\nrule:\n  event: card_payment\n  within: 90d\n  count: {at_least: 2}\n"
    )
    with Workspace.open(root) as ws:
        report = ws.segments.build(AS_OF)
        after = set(
            ws.engine.execute(ws.segments.compile("big_spenders").members).column(0).to_pylist()
        )
        changes = ws.segments.changes("big_spenders", limit=1000).to_pylist()
    figures = report.segments["big_spenders"]
    assert figures["members"] == len(after)
    assert figures["entered"] == len(after - before)
    assert figures["exited"] == len(before - after)
    latest = {(c["customer_key"], c["change"]) for c in changes if c["build_id"] == report.build_id}
    assert latest == {(k, "entered") for k in after - before} | {
        (k, "exited") for k in before - after
    }


def test_validation_errors_name_file_and_line(bank: Path, tmp_path: Path) -> None:
    root = tmp_path / "bank"
    shutil.copytree(bank, root)
    bad = root / "segments" / "bad.yml"
    bad.write_text("name: bad\nrule:\n  all:\n    - frequencyy >= 2\n    - event: card_paymnt\n")
    result = runner.invoke(app, ["segment", "count", "bad", "-p", str(root), "--json"])
    assert result.exit_code == 2
    problems = json.loads(result.output)["problems"]
    messages = " | ".join(p["message"] for p in problems)
    assert "unknown field 'frequencyy' — did you mean 'frequency'?" in messages
    assert "unknown event 'card_paymnt' — did you mean 'card_payment'?" in messages
    assert {p["line"] for p in problems} == {4, 5}
    bad.write_text('name: bad\nrule: "city > 3"\n')
    result = runner.invoke(app, ["segment", "count", "bad", "-p", str(root)])
    assert result.exit_code == 2 and "wrong type" in result.output
    bad.write_text("name: bad\nrule: {birthday: {within: 7d}, x: 1}\n")
    result = runner.invoke(app, ["segment", "count", "bad", "-p", str(root)])
    assert result.exit_code == 2 and "unexpected key 'x'" in result.output
    bad.unlink()
    result = runner.invoke(app, ["segment", "count", "nope", "-p", str(root)])
    assert result.exit_code == 3 and "credit_card_offer" in result.output
