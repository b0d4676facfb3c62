"""Campaign plans on the demo shop: consent is never bypassed, caps hold across campaigns, the
holdout is exact and stable, profit-maximising selection beats top-K by propensity, launch is
refused when the data changed and queues each message once.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from jingzhun.campaigns import SEND_PLAN, Channel, ConsentRecord, Purpose, Status
from jingzhun.cli import app
from jingzhun.core import RefusedError, SpecError
from jingzhun.demo import run_demo
from jingzhun.models import SCORES_SCHEMA, write_scores
from jingzhun.workspace import Workspace

CAMPAIGN = """\
name: {name}
audience: {audience}
channel: email
cost_per_contact: 0.5
value_per_conversion: 40
expected_uplift: 0.02
holdout: {{fraction: {fraction}, seed: 11, stratify_by: rfm_segment}}
{extra}
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("campaigns") / "demo"
    run_demo(root, customers=1_500, seed=5)
    return root


@pytest.fixture
def project(shop: Path, tmp_path: Path) -> Path:
    root = tmp_path / "demo"
    shutil.copytree(shop, root)
    (root / "campaigns").mkdir(exist_ok=True)
    return root


def write_campaign(
    root: Path, name: str, audience: str, fraction: float = 0.1, extra: str = ""
) -> None:
    (root / "campaigns" / f"{name}.yml").write_text(
        CAMPAIGN.format(name=name, audience=audience, fraction=fraction, extra=extra)
    )


def plan_rows(ws: Workspace, plan_id: str) -> list[dict[str, object]]:
    t = ws.engine.read(SEND_PLAN)
    return ws.engine.execute(t.filter(t.plan_id == plan_id)).to_pylist()


def test_nobody_without_consent_is_ever_planned(project: Path) -> None:
    write_campaign(project, "news", "best_customers")
    with Workspace.open(project) as ws:
        profiles = ws.engine.execute(ws.engine.read("profiles")).to_pandas()
        members = set(ws.segments.members("best_customers"))
        people = profiles[
            profiles.customer_key.isin(members) & profiles.has_valid_email.fillna(False)
        ]
        flagged = people[people.email_consent.fillna(False).astype(bool)]
        unflagged = people[~people.email_consent.fillna(False).astype(bool)]
        assert len(flagged) > 20 and len(unflagged) > 5
        withdrawn = list(flagged.email.head(10))  # opted in at source, withdrawn in the ledger
        granted = list(unflagged.customer_key.head(5))  # no source flag, granted in the ledger
        now = dt.datetime.now(dt.UTC)
        records = [
            ConsentRecord(
                "email", e.upper(), Purpose.MARKETING, Channel.EMAIL, Status.WITHDRAWN, now
            )
            for e in withdrawn
        ] + [
            ConsentRecord("customer_key", k, Purpose.MARKETING, Channel.EMAIL, Status.GRANTED, now)
            for k in granted
        ]
        # a grant for another purpose or channel does not count
        records.append(
            ConsentRecord(
                "customer_key",
                unflagged.customer_key.iloc[6],
                Purpose.ANALYTICS,
                Channel.EMAIL,
                Status.GRANTED,
                now,
            )
        )
        ws.campaigns.consents.record(records)
        plan = ws.campaigns.plan("news", by="alice")
        planned = {r["customer_key"] for r in plan_rows(ws, plan.plan_id)}
    expected = (
        set(flagged.customer_key) - set(flagged[flagged.email.isin(withdrawn)].customer_key)
    ) | set(granted)
    assert planned == expected
    assert plan.count("consent") == len(expected)
    steps = [row["step"] for row in plan.waterfall]
    assert steps == [
        "segment",
        "consent",
        "reachable",
        "not_suppressed",
        "under_caps",
        "selected",
        "treatment",
        "holdout",
    ]


def test_caps_hold_across_overlapping_campaigns(project: Path) -> None:
    caps = (
        "frequency_caps: {per_week: 1}\n"
        "send_window: {start: 2011-12-12T10:00:00, end: 2011-12-12T18:00:00}"
    )
    write_campaign(project, "first", "best_customers", extra=caps)
    write_campaign(project, "second", "best_customers", extra=caps)
    with Workspace.open(project) as ws:
        first = ws.campaigns.plan("first", by="alice")
        _, queued = ws.campaigns.launch("first", by="alice")
        assert queued == first.figures["contacts"] > 0
        second = ws.campaigns.plan("second", by="alice")
        treated_first = {
            r["customer_key"] for r in plan_rows(ws, first.plan_id) if r["group"] == "treatment"
        }
        planned_second = {r["customer_key"] for r in plan_rows(ws, second.plan_id)}
        from sqlalchemy import select

        from jingzhun.store import QueuedMessage

        with ws.store.session() as session:
            queued = set(
                session.scalars(
                    select(QueuedMessage.customer_key).where(QueuedMessage.campaign != "second")
                )
            )
    assert treated_first <= queued  # the demo's own win-back campaign is queued too
    assert not queued & planned_second
    assert second.count("under_caps") <= second.count("not_suppressed") - len(treated_first)


def test_holdout_is_exact_and_stable_when_replanned(project: Path) -> None:
    write_campaign(project, "big", "behaviour_1", fraction=0.2)
    with Workspace.open(project) as ws:
        one = ws.campaigns.plan("big", by="alice")
        two = ws.campaigns.plan("big", by="alice")
        rows_one = plan_rows(ws, one.plan_id)
        rows_two = plan_rows(ws, two.plan_id)
    held = {r["customer_key"] for r in rows_one if r["group"] == "holdout"}
    assert len(rows_one) > 300
    assert abs(len(held) / len(rows_one) - 0.2) <= 0.01
    assert held == {r["customer_key"] for r in rows_two if r["group"] == "holdout"}
    assert one.count("treatment") + one.count("holdout") == one.count("selected")


def test_max_profit_beats_top_k_by_propensity(project: Path) -> None:
    """Half the audience buys anyway (high propensity, no uplift); the other half is moved by
    the message. Top-K by propensity spends the budget on the first half.
    """
    with Workspace.open(project) as ws:
        keys = sorted(ws.segments.members("behaviour_1"))
        now = dt.datetime.now(dt.UTC)
        anyway = set(keys[::2])
        propensity = [0.6 if k in anyway else 0.1 for k in keys]
        uplift = [0.0 if k in anyway else 0.08 for k in keys]
        for name, values in (("buy_propensity", propensity), ("offer_uplift", uplift)):
            rows = pa.table(
                {
                    "customer_key": keys,
                    "model_id": ["test"] * len(keys),
                    "score_name": [name] * len(keys),
                    "score": values,
                    "scored_at": [now] * len(keys),
                    "as_of": [dt.date(2011, 12, 10)] * len(keys),
                },
                schema=SCORES_SCHEMA,
            )
            write_scores(ws.engine, rows, score_name=name)
        budget = "budget: 100\n"
        write_campaign(
            project,
            "by_propensity",
            "behaviour_1",
            extra=budget + "selection: {policy: top_k, score: buy_propensity}",
        )
        write_campaign(
            project,
            "by_profit",
            "behaviour_1",
            extra=budget + "selection: {policy: max_profit, uplift_score: offer_uplift, "
            "baseline_score: buy_propensity}",
        )
        top_k = ws.campaigns.plan("by_propensity", by="alice")
        profit = ws.campaigns.plan("by_profit", by="alice")
        truth = dict(zip(keys, uplift, strict=True))

        def true_profit(plan_id: str) -> float:
            treated = [
                r["customer_key"] for r in plan_rows(ws, plan_id) if r["group"] == "treatment"
            ]
            return sum(truth[k] * 40 - 0.5 for k in treated)

        assert top_k.figures["cost"] <= 100 and profit.figures["cost"] <= 100
        assert true_profit(profit.plan_id) > true_profit(top_k.plan_id)
        assert true_profit(profit.plan_id) > 0 > true_profit(top_k.plan_id)


def test_approval_and_launch_rules(project: Path) -> None:
    write_campaign(project, "gated", "best_customers", extra="approval_required: true")
    with Workspace.open(project) as ws:
        ws.campaigns.plan("gated", by="alice")
        with pytest.raises(RefusedError, match="needs approval"):
            ws.campaigns.launch("gated", by="alice")
        with pytest.raises(RefusedError, match="someone else"):
            ws.campaigns.approve("gated", by="alice")
        ws.campaigns.approve("gated", by="bob")
        # the data changes after the plan: a consent is withdrawn
        ws.campaigns.consents.record(
            [
                ConsentRecord(
                    "email",
                    "someone@example.com",
                    Purpose.MARKETING,
                    Channel.EMAIL,
                    Status.WITHDRAWN,
                    dt.datetime.now(dt.UTC),
                )
            ]
        )
        with pytest.raises(RefusedError, match="data changed"):
            ws.campaigns.launch("gated", by="bob")
        plan = ws.campaigns.plan("gated", by="alice")
        ws.campaigns.approve("gated", by="bob")
        launched, queued = ws.campaigns.launch("gated", by="bob")
        assert launched.status == "launched" and queued == plan.figures["contacts"]
        with pytest.raises(RefusedError, match="was launched"):
            ws.campaigns.launch("gated", by="bob")
        ws.campaigns.plan("gated", by="alice")
        ws.campaigns.approve("gated", by="bob")
        _, again = ws.campaigns.launch("gated", by="bob")
        assert again == 0  # every message already queued: one per campaign, customer, channel


def test_cli_plan_json_and_spec_errors(project: Path) -> None:
    write_campaign(project, "news", "best_customers")
    runner = CliRunner()
    result = runner.invoke(
        app, ["campaign", "plan", "news", "-p", str(project), "--json", "--by", "a"]
    )
    assert result.exit_code == 0, result.output
    import json

    payload = json.loads(result.output)
    assert payload["waterfall"][0]["step"] == "segment"
    assert (
        payload["figures"]["contacts"] + payload["figures"]["holdout"]
        == payload["waterfall"][5]["customers"]
    )
    bad = project / "campaigns" / "bad.yml"
    bad.write_text("name: bad\naudience: best_customers\nchannel: pigeon\n")
    result = runner.invoke(app, ["campaign", "plan", "news", "-p", str(project), "--json"])
    assert result.exit_code == 2
    problems = json.loads(result.output)["problems"]
    assert [(p["line"], p["field"]) for p in problems] == [(3, "channel")]
    assert "sms" in problems[0]["message"]  # what is allowed
    bad.write_text(
        "name: bad\naudience: best_customers\nchannel: sms\nvariants:\n  - {name: a, share: 0.7}\n"
    )
    result = runner.invoke(app, ["campaign", "plan", "news", "-p", str(project), "--json"])
    assert result.exit_code == 2 and "add up to 0.7, not 1" in result.output
    with pytest.raises(SpecError):
        Workspace.open(project).campaigns.specs()


def test_pilot_then_rollout_of_the_winner(project: Path) -> None:
    extra = "variants:\n  - {name: a, share: 0.5}\n  - {name: b, share: 0.5}\npilot: {share: 0.2}"
    write_campaign(project, "piloted", "best_customers", extra=extra)
    with Workspace.open(project) as ws:
        plan = ws.campaigns.plan("piloted", by="alice")
        rows = [r for r in plan_rows(ws, plan.plan_id) if r["group"] == "treatment"]
        pilot = [r for r in rows if r["phase"] == "pilot"]
        assert abs(len(pilot) / len(rows) - 0.2) <= 0.02
        with pytest.raises(RefusedError, match="launch the pilot first"):
            ws.campaigns.rollout("piloted", winner="b", by="alice")
        _, queued = ws.campaigns.launch("piloted", by="alice")
        assert queued == len(pilot)  # only the pilot goes out at launch
        with pytest.raises(RefusedError, match="not a variant"):
            ws.campaigns.rollout("piloted", winner="c", by="alice")
        _, rest = ws.campaigns.rollout("piloted", winner="b", by="alice")
        assert rest == len(rows) - len(pilot)
        _, again = ws.campaigns.rollout("piloted", winner="b", by="alice")
        assert again == 0
        from sqlalchemy import select

        from jingzhun.store import QueuedMessage

        with ws.store.session() as session:
            variants = (
                session.execute(
                    select(QueuedMessage.variant).where(
                        QueuedMessage.campaign == "piloted",
                        QueuedMessage.payload["phase"].as_string() == "rollout",
                    )
                )
                .scalars()
                .all()
            )
        assert set(variants) == {"b"} and len(variants) == rest


TEMPLATE = """\
subject: "{{ customer | first_name_or('Hello') }}, {{ offer.value }}% off to come back"
text: |
  Hi {{ customer.first_name }}, use {{ offer.code }} by {{ offer.valid_until | date }}.
defaults:
  customer.first_name: there
"""


def test_offers_coupons_and_preview(project: Path) -> None:
    (project / "templates").mkdir(exist_ok=True)
    (project / "templates" / "winback.yml").write_text(TEMPLATE)
    extra = (
        "variants:\n  - {name: a, template: winback, share: 1.0}\n"
        "offer:\n  name: ten_off\n  kind: discount_percent\n  value: 10\n"
        "  coupon_prefix: WB\n"
        "  variants:\n    - segment: behaviour_3\n"
        "      offer: {name: twenty_off, kind: discount_percent, value: 20}\n"
    )
    write_campaign(project, "coupons", "best_customers", extra=extra)
    with Workspace.open(project) as ws:
        plan = ws.campaigns.plan("coupons", by="alice")
        _, queued = ws.campaigns.launch("coupons", by="alice")
        table = ws.engine.read("coupons")
        coupons = ws.engine.execute(table.filter(table.campaign == "coupons")).to_pylist()
        from sqlalchemy import select

        from jingzhun.campaigns import verify_code
        from jingzhun.store import QueuedMessage

        with ws.store.session() as session:
            payloads = {
                m.customer_key: m.payload
                for m in session.scalars(
                    select(QueuedMessage).where(QueuedMessage.campaign == "coupons")
                )
            }
        segment_3 = set(ws.segments.members("behaviour_3"))
        someone = sorted(payloads)[0]
        message = ws.campaigns.preview("coupons", someone)
    assert queued == plan.figures["contacts"] == len(coupons) == len(payloads)
    codes = [c["code"] for c in coupons]
    assert len(set(codes)) == len(codes) and all(verify_code(c) for c in codes)
    by_key = {c["customer_key"]: c["code"] for c in coupons}
    for key, payload in payloads.items():
        assert payload["offer"]["code"] == by_key[key]
        assert payload["offer"]["name"] == ("twenty_off" if key in segment_3 else "ten_off")
    assert by_key[someone] in (message.text or "")
    assert "None" not in (message.text or "") + (message.subject or "")


def test_the_budget_is_never_exceeded_after_the_holdout_rounds(project: Path) -> None:
    # 45 / 2.0 affords 22 contacts; a 10% holdout rounded per stratum could leave 23 treated
    extra = "budget: 45\nselection: {policy: everyone}"
    text = CAMPAIGN.format(name="tight", audience="best_customers", fraction=0.1, extra=extra)
    (project / "campaigns" / "tight.yml").write_text(
        text.replace("cost_per_contact: 0.5", "cost_per_contact: 2.0")
    )
    with Workspace.open(project) as ws:
        plan = ws.campaigns.plan("tight", by="alice")
    assert plan.figures["cost"] <= 45
    assert plan.figures["contacts"] == 22
    assert plan.count("selected") == plan.count("treatment") + plan.count("holdout")
