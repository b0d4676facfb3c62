"""`make demo` end to end, small: real sample + generated data → loaded → report."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from jingzhun.cli import app
from jingzhun.demo import run_demo
from jingzhun.ingest import FileStatus
from jingzhun.workspace import Workspace


def test_demo_builds_loads_and_reports(tmp_path: Path) -> None:
    messages: list[str] = []
    result = run_demo(tmp_path / "demo", customers=300, seed=7, say=messages.append)
    assert result.ok, result.to_dict()
    assert result.report.is_file()
    html = result.report.read_text()
    assert "Online Retail" in html  # attribution travels with the data
    by_source = {f.source: f for f in result.load.files}
    sample = by_source["online_retail_sample"]
    # 31,325 real lines; the zero-price ones are quarantined, never dropped silently
    assert sample.rows_read == 31_325
    assert sample.rows_loaded + sample.rows_quarantined == 31_325
    assert sample.rows_quarantined > 0
    assert {"gen_customers", "gen_order_lines", "gen_events", "gen_products"} <= set(by_source)
    assert result.tables["raw_customers"] > 300
    # identities resolved, profiles built, one 360° view written with PII masked
    assert result.tables["identity_map"] > 0
    assert result.tables["profiles"] > 0
    view = json.loads((tmp_path / "demo" / "reports" / "profile_360.json").read_text())
    assert view["tags"]["rfm_segment"] == "Champions"
    assert view["masked"] is True
    assert view["recommendations"] and all(r["reason"] for r in view["recommendations"])
    assert any(m.startswith("  segment best_customers: ") for m in messages)
    assert any(m.startswith("  segment behaviour_1: ") for m in messages)  # a cluster set
    assert any(m.startswith("  CLV: ") for m in messages)
    assert any("launched:" in m and "queued" in m for m in messages)  # the win-back campaign
    assert any(m.startswith("  abandoned_cart: ") for m in messages)  # journeys backtested
    assert any(m.startswith("  click fraud: precision ") for m in messages)  # ads served
    reports = tmp_path / "demo" / "reports"
    assert (reports / "ads.html").is_file()
    assert (reports / "campaign_winback.html").is_file()  # the campaign measured
    assert any(m.startswith("  incremental conversions ") for m in messages)
    import re

    queued = next(m for m in messages if "launched:" in m)
    delivered = next(m for m in messages if "delivered to a local SMTP server" in m)
    n_queued = int(re.search(r"launched: ([\d,]+) message", queued).group(1).replace(",", ""))
    sent, received = (
        int(x.replace(",", "")) for x in re.findall(r"([\d,]+) (?:sent|received)", delivered)
    )
    assert n_queued > 0 and sent == received == n_queued  # every e-mail reached the server
    first_run = len(messages)
    preview = json.loads((tmp_path / "demo" / "reports" / "winback_preview.json").read_text())
    assert preview["subject"] and "None" not in json.dumps(preview)
    assert "Picked for you" in preview["html"]  # the recipient's recommendations
    with Workspace.open(tmp_path / "demo") as ws:
        scores = ws.engine.execute(ws.engine.read("scores")).to_pandas()
        buyers = ws.engine.execute(ws.engine.read("profiles")).to_pandas()
    by_name = {name: rows for name, rows in scores.groupby("score_name")}
    assert set(by_name) >= {"p_alive", "expected_purchases_12m", "clv_12m", "churn_score"}
    assert by_name["p_alive"].score.between(0, 1).all()
    assert (by_name["clv_12m"].score >= 0).all()
    # every customer with a purchase of positive value has a CLV, and nobody else
    paying = set(buyers.loc[buyers.gross_revenue.astype(float) > 0, "customer_key"])
    assert set(by_name["p_alive"].customer_key) <= set(buyers.customer_key)
    assert len(paying - set(by_name["p_alive"].customer_key)) <= len(paying) * 0.01
    assert any(m.startswith("  segment valuable_at_risk: ") for m in messages)  # uses scores

    again = run_demo(tmp_path / "demo", customers=300, seed=7, say=messages.append)
    assert {f.status for f in again.load.files} == {FileStatus.UNCHANGED}
    # a second build of the same date changes nothing but adds snapshot rows per segment
    snapshots = again.tables.pop("segment_snapshots")
    assert snapshots > result.tables.pop("segment_snapshots")
    # every plan keeps its rows; the second launch queues nothing new (one message per person)
    assert again.tables.pop("send_plan") == 2 * result.tables.pop("send_plan")
    assert any(m.startswith("  approved by manager, launched: 0 message(s)") for m in messages)
    assert any(": 0 sent, 0 received" in m for m in messages[first_run:])  # nothing twice
    assert again.tables == result.tables
    assert result.tables["segment_members"] > 0
    assert any("already there" in m for m in messages)


def test_demo_command_json(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["demo", str(tmp_path / "d"), "--customers", "200", "--json"])
    assert done.exit_code == 0, done.output
    payload = json.loads(done.stdout)
    assert payload["ok"] is True
    assert Path(payload["report"]).is_file()
