"""``make demo``: a project built from the bundled Online Retail sample plus generated data,
loaded end to end and summarised in an HTML report. Each later stage adds its step here.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jingzhun.ads import (
    SIMULATED_DATA_CENTRES,
    FraudSettings,
    ad_report,
    evaluate_fraud,
    open_ad_server,
    write_ad_report,
)
from jingzhun.core import PROJECT_FILE, init_project
from jingzhun.datagen import generate, source_specs
from jingzhun.demo._smtp_sink import SmtpSink
from jingzhun.ingest import FileStatus, LoadReport
from jingzhun.journeys import template_files
from jingzhun.measure import analyze_experiment, write_experiment_report
from jingzhun.models import fit_uplift_table
from jingzhun.workspace import Workspace

SAMPLE = "online_retail_sample.csv.gz"
HILLSTROM = "hillstrom/hillstrom.csv.gz"
# Written once the models have scored the customers (a rule may only name existing scores).
VALUABLE_AT_RISK = """\
name: valuable_at_risk
description: Likely to churn in the next 90 days, yet worth more than 50 over the next year
rule: churn_score > 0.6 AND clv_12m > 50
"""
# The generated shop is British and trades over the same dates as the real sample
# (2010-12-01 to 2011-12-09), so both sit on one time axis and in one currency.
DEMO_START = date(2010, 12, 1)
DEMO_DAYS = 374
DEMO_AS_OF = date(2011, 12, 10)  # the day after the sample's last invoice
# The win-back e-mails go out on 12–14 December and each customer's window is 14 days: the
# campaign is measured once every window has closed.
MEASURED_ON = date(2011, 12, 31)
# Simulated responses (the demo's data ends before its campaign is sent): the chance that a
# planned customer orders within the window, with and without the e-mail.
RESPONSE_RATES = {"treatment": 0.12, "holdout": 0.04}
RESPONSES_FILE = "order_lines_responses.parquet"
ATTRIBUTION = (
    "Online Retail sample: UCI Machine Learning Repository data set 352, donated by "
    "Dr Daqing Chen (London South Bank University), CC BY 4.0, doi:10.24432/C5BW33. "
    "Every line of customers whose id is divisible by 12 and of every 40th anonymous invoice."
)

DEMO_IDENTITY = """
identity:
  # The generator writes a person's web (W-) and till (S-) records into one source file;
  # in a real project they arrive from two systems and this stays false.
  allow_same_source_merge: true
"""

DEMO_PROFILE_SETTINGS = """\
# The demo's history (2010-2011) is loaded today: count it as a backfill when building
# profiles as of 2011-12-10.
include_late_loads: true
"""

SAMPLE_SPEC = """\
# Bundled sample of UCI Online Retail (CC BY 4.0, donor Dr Daqing Chen, doi:10.24432/C5BW33).
# Invoices starting with "C" are returns; lines without CustomerID are anonymous orders;
# zero or negative prices go to quarantine with the reason.
name: online_retail_sample
description: Sample of UCI Online Retail invoice lines
path: data/online_retail_sample.csv.gz
target: order_lines
timezone: Europe/London
currency: GBP
max_bad_fraction: 0.02
columns:
  order_id: InvoiceNo
  is_return: {from: InvoiceNo, starts_with: "C"}
  sku: StockCode
  product_name: Description
  quantity: {from: Quantity, type: integer}
  ordered_at: {from: InvoiceDate, format: "%Y-%m-%d %H:%M:%S"}
  unit_price: {from: UnitPrice, greater_than: 0}
  customer_id: CustomerID
  country: Country
"""


@dataclass
class DemoResult:
    """Where the demo project and its report are, and how the load went."""

    project: Path
    report: Path
    load: LoadReport
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every file loaded."""
        return self.load.ok

    def to_dict(self) -> dict[str, object]:
        """Plain values for ``--json``."""
        return {
            "ok": self.ok,
            "project": str(self.project),
            "report": str(self.report),
            "load": self.load.to_dict(),
            "tables": self.tables,
        }


def _copy_sample(data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    target = data / SAMPLE
    source = resources.files("jingzhun.demo").joinpath("data", SAMPLE)
    with resources.as_file(source) as path:
        if not target.exists() or target.read_bytes() != path.read_bytes():
            shutil.copyfile(path, target)


def _generate_once(
    folder: Path, *, customers: int, days: int, seed: int, say: Callable[[str], None]
) -> None:
    """Generate the synthetic data unless the same parameters produced it already."""
    params = {
        "customers": customers,
        "days": days,
        "seed": seed,
        "start": DEMO_START.isoformat(),
        "region": "GB",
    }
    marker = folder / "params.json"
    if marker.exists() and json.loads(marker.read_text()) == params:
        say(f"generated data already there ({customers:,} customers, seed {seed})")
        return
    shutil.rmtree(folder, ignore_errors=True)
    say(f"generating {customers:,} customers × {days} days (seed {seed})…")
    generate(folder, customers=customers, days=days, seed=seed, start=DEMO_START, region="GB")
    marker.write_text(json.dumps(params))


DELIVERY_SETTINGS = """\
# The demo's delivery settings: e-mail goes to a local SMTP sink the demo starts itself.
email:
  host: 127.0.0.1
  port: {port}
  security: none
  from_address: "Demo Shop <news@shop.example>"
tracking:
  secret_env: JINGZHUN_DEMO_TRACKING_SECRET
  base_url: https://t.shop.example
  unsubscribe_url: https://t.shop.example/unsubscribe
  unsubscribe_mailto: unsubscribe@shop.example
"""


def _deliver(ws: Workspace, root: Path, tell: Callable[[str], None]) -> None:
    """Send the queued e-mails to a local SMTP server and show what it received."""
    # the tracking-link key comes from the environment; the demo uses its project's own key
    os.environ.setdefault("JINGZHUN_DEMO_TRACKING_SECRET", ws.project.secret("tracking").hex())
    # The demo's data ends in December 2011: the worker runs on the campaign's own clock,
    # starting when the last message is due, so that the delivery log's send times and the
    # windows measured from them fall where the campaign's send window put them.
    plan = ws.engine.read("send_plan")
    due = ws.engine.execute(plan.select(last=plan.send_at.max())).column("last")[0].as_py()
    started = datetime.now(UTC)
    start = due if due.tzinfo else due.replace(tzinfo=UTC)

    def clock() -> datetime:
        return start + (datetime.now(UTC) - started)

    with SmtpSink() as sink:
        (root / "delivery.yml").write_text(DELIVERY_SETTINGS.format(port=sink.port), "utf-8")
        with ws.delivery.worker(worker_id="demo", clock=clock) as worker:
            report = worker.run_once()
        received = list(sink.messages)
    figures = report.to_dict()
    tell(
        f"  delivered to a local SMTP server on 127.0.0.1:{sink.port}: {figures['sent']:,} "
        f"sent, {len(received):,} received"
    )
    if received:
        first = received[0]
        unsubscribe = first["List-Unsubscribe"]
        tell(f"  first received: {first['Subject']!r}; List-Unsubscribe: {unsubscribe}")
        path = root / "reports" / "smtp_received.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "\n".join(f"{m['Message-ID']}\t{m['Subject']}" for m in received) + "\n", "utf-8"
        )
        tell(f"  every received message: {path}")


def _campaign(ws: Workspace, root: Path, tell: Callable[[str], None]) -> str:
    """Plan the win-back campaign, approve it as someone else, launch it to the queue, deliver
    it; returns the plan's id.
    """
    tell("planning the win-back campaign (campaigns/winback.yml)…")
    plan = ws.campaigns.plan("winback", by="analyst")
    for row in plan.waterfall:
        tell(f"  {row['step']:<15}{row['customers']:>7,}")
    figures = plan.figures
    tell(
        f"  {figures['contacts']:,} e-mails, {figures['holdout']:,} held out; expected "
        f"{figures['expected_incremental_conversions']:.1f} extra orders for "
        f"{figures['cost']:.2f} GBP, expected ROI {figures['expected_roi']}"
    )
    ws.campaigns.approve("winback", by="manager")
    launched, queued = ws.campaigns.launch("winback", by="manager")
    tell(f"  approved by manager, launched: {queued:,} message(s) queued ({launched.plan_id})")
    _deliver(ws, root, tell)
    rows = ws.engine.read("send_plan")
    first = ws.engine.execute(
        rows.filter((rows.plan_id == plan.plan_id) & (rows.group == "treatment"))
        .order_by("customer_key")
        .limit(1)
    ).to_pylist()
    if first:
        message = ws.campaigns.preview("winback", str(first[0]["customer_key"]))
        path = root / "reports" / "winback_preview.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(message.to_dict(), indent=2, default=str), encoding="utf-8")
        tell(f"  one recipient's e-mail: {path}")
    return launched.plan_id


def _simulate_responses(ws: Workspace, plan_id: str, data: Path, seed: int) -> int:
    """Write simulated orders of the win-back's planned customers in the two weeks after the
    send (``RESPONSE_RATES``: treated customers order more often than the holdout) into the
    generated order lines' folder, so that the campaign report has an effect to measure.

    Written once (a second demo run keeps the file, so its load is "unchanged"); only
    customers known to the generated shop respond, in both groups alike. Returns the number
    of simulated orders.
    """
    target = data / "generated" / RESPONSES_FILE
    if target.exists():
        return len(pq.read_table(target, columns=["order_id"])["order_id"].unique())
    plan = ws.engine.read("send_plan")
    planned = ws.engine.execute(
        plan.filter(plan.plan_id == plan_id).select("customer_key", "group", "send_at")
    ).to_pandas()
    nodes = ws.engine.read("identity_map")
    ids = ws.engine.execute(
        nodes.filter((nodes.node_source == "gen_order_lines") & (nodes.node_kind == "customer"))
        .select("customer_key", "node_id")
        .distinct()
    ).to_pandas()
    ids = ids.sort_values(["customer_key", "node_id"]).drop_duplicates("customer_key")
    people = planned.merge(ids, on="customer_key").sort_values("customer_key")
    products = pq.read_table(data / "generated" / "products.parquet").to_pandas()
    products = products.sort_values("sku").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    rates = people["group"].map(RESPONSE_RATES).fillna(0.0).to_numpy()
    responders = people[rng.random(len(people)) < rates]
    rows: list[dict[str, object]] = []
    for n, person in enumerate(responders.itertuples(index=False), start=1):
        sent = pd.Timestamp(person.send_at)
        sent = sent.tz_localize(UTC) if sent.tzinfo is None else sent.tz_convert(UTC)
        at = sent + timedelta(days=float(rng.uniform(0.2, 12.0)))
        picks = rng.choice(len(products), size=int(rng.integers(1, 4)), replace=False)
        for line, index in enumerate(picks, start=1):
            product = products.iloc[int(index)]
            quantity = int(rng.integers(1, 3))
            price = Decimal(str(product["price"])).quantize(Decimal("0.0001"))
            rows.append(
                {
                    "order_id": f"RESP-{n:06d}",
                    "customer_id": person.node_id,
                    "ordered_at": at.to_pydatetime(),
                    "is_return": False,
                    "currency": "GBP",
                    "channel": "web",
                    "store_id": None,
                    "country": "GB",
                    "line_number": line,
                    "sku": product["sku"],
                    "product_name": product["name"],
                    "quantity": quantity,
                    "unit_price": price,
                    "amount": price * quantity,
                    "category": product["category"],
                    "brand": product["brand"],
                }
            )
    schema = pq.read_schema(data / "generated" / "order_lines.parquet")
    table = pa.Table.from_pylist(rows, schema=schema.remove_metadata())
    pq.write_table(table, target)
    return len(responders)


def _measure_campaign(
    ws: Workspace, plan_id: str, data: Path, seed: int, tell: Callable[[str], None]
) -> None:
    """Load the simulated responses and report what the win-back changed over its holdout."""
    orders = _simulate_responses(ws, plan_id, data, seed)
    tell(
        f"simulating responses to the win-back (the data ends before the send): {orders} "
        f"order(s), treated customers ordering with probability {RESPONSE_RATES['treatment']:.0%}"
        f", the holdout {RESPONSE_RATES['holdout']:.0%}"
    )
    ws.ingest.run()
    kpis, files = ws.measure.campaign_report("winback", as_of=MEASURED_ON)
    lift = kpis.incrementality
    treated = kpis.totals["treatment"]
    tell(
        f"  win-back as of {MEASURED_ON}: {treated['customers']:,} treated, "
        f"{treated['conversions']:,} converted; ROI {treated['roi']}"
    )
    if lift is not None:
        figures = lift.to_dict()
        tell(
            f"  incremental conversions {figures['incremental_conversions']:.1f} "
            f"[{figures['incremental_conversions_ci'][0]:.1f}, "
            f"{figures['incremental_conversions_ci'][1]:.1f}] (95%), incremental ROI "
            f"{figures['incremental_roi']}"
        )
    tell(f"  campaign report: {files.html}")


def _journeys(ws: Workspace, tell: Callable[[str], None]) -> None:
    """Replay the ready journeys over the demo's last four weeks: who would have entered and
    what they would have been sent, before anyone switches them on.
    """
    start, end = DEMO_AS_OF - timedelta(days=28), DEMO_AS_OF - timedelta(days=1)
    tell(f"backtesting the ready journeys (journeys/*.yml) over {start} – {end}…")
    for name in sorted(ws.journeys.specs()):
        result = ws.journeys.backtest(name, start, end, sample=0).to_dict()
        messages = ", ".join(f"{k} {v:,}" for k, v in sorted(result["messages"].items()))
        tell(
            f"  {name}: {result['entered']:,} entries by {result['customers']:,} customers; "
            f"messages: {messages or 'none'}"
        )


# Two ad campaigns on the shop's own site and app during the demo's last week.
DEMO_ADS = {
    "beauty_for_her": """\
name: beauty_for_her
description: Beauty products for women who like them
category: beauty
targeting:
  gender: [F]
  interests: [beauty]
max_cpc: 0.80
daily_budget: 30
flight: {start: 2011-12-01, end: 2011-12-31}
frequency_cap: {impressions: 3, per_hours: 24}
creatives:
  - {name: glow, title: Winter glow, landing_url: https://shop.example/glow}
  - {name: shine, title: Shine on, landing_url: https://shop.example/shine}
""",
    "christmas_sale": """\
name: christmas_sale
description: Everyone, everything 20% off
max_cpc: 0.50
daily_budget: 50
flight: {start: 2011-12-01, end: 2011-12-31}
creatives:
  - {name: sale, title: Christmas sale, landing_url: https://shop.example/sale}
""",
}


def _ads(ws: Workspace, root: Path, seed: int, tell: Callable[[str], None]) -> None:
    """Serve the demo's ad campaigns to a simulated day of visitors with injected bots, score
    the clicks for fraud against the simulation's answer key, and report the ads.
    """
    folder = root / "ads"
    folder.mkdir(exist_ok=True)
    for name, text in DEMO_ADS.items():
        (folder / f"{name}.yml").write_text(text, encoding="utf-8")
    tell("serving ads (ads/*.yml) to a simulated day of visitors with bots…")
    fraud = FraudSettings(data_centre_ranges=list(SIMULATED_DATA_CENTRES))
    server = open_ad_server(ws.project, ws.engine, ws.store, fraud=fraud)
    try:
        found = evaluate_fraud(server, DEMO_AS_OF - timedelta(days=1), visitors=2000, seed=seed)
    finally:
        server.close()
    scores = found.to_dict()["scores"]
    tell(
        f"  click fraud: precision {scores['precision']:.2f}, recall {scores['recall']:.2f} "
        "against the simulation's answer key"
    )
    report = ad_report(
        ws.store,
        ws.engine,
        timezone=ws.project.settings.timezone,
        currency=ws.project.settings.currency,
    )
    totals = report.totals
    path = write_ad_report(report, root / "reports" / "ads.html", title="Demo ads")
    tell(
        f"  {int(totals['impressions']):,} impressions, {int(totals['clicks']):,} valid "
        f"clicks, spend {totals['spend']:.2f} GBP; ads report: {path}"
    )


def _hillstrom(path: Path, reports: Path, tell: Callable[[str], None]) -> None:
    """The Hillstrom experiment: each e-mail arm against no e-mail, and who to e-mail."""
    frame = pd.read_csv(path)
    tell("analysing the Hillstrom e-mail experiment (../shared/data/hillstrom)…")
    experiment = analyze_experiment(
        frame, "segment", "No E-Mail", ["visit", "conversion", "spend"], source=path
    )
    result = experiment.to_dict()
    for row in result["comparisons"]:
        tell(
            f"  {row['arm']} vs No E-Mail, {row['metric']}: {row['absolute_lift']:+.4f} "
            f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}], p {row['p_value']:.2g}"
        )
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "hillstrom_experiment.json").write_text(
        json.dumps(result, indent=2, default=str), encoding="utf-8"
    )
    files = write_experiment_report(
        experiment,
        reports / "hillstrom_experiment.html",
        title="Hillstrom e-mail experiment: each e-mail against no e-mail",
        notes=[
            "Data: Kevin Hillstrom, MineThatData E-Mail Analytics challenge (2008), 64,000 "
            "customers randomised to a Mens e-mail, a Womens e-mail or none."
        ],
    )
    tell(f"  experiment report: {files.html}")
    uplift = fit_uplift_table(
        frame,
        treatment_column="segment",
        treatment_value="Womens E-Mail",
        control_value="No E-Mail",
        target="visit",
        exclude=["history_segment"],
        outcomes=["conversion", "spend"],
        baseline_column="womens",
        splits=5,
        params={"rank_first": "womens"},  # women's buyers first, the model orders within
    )
    summary = uplift.summary()
    (reports / "hillstrom_uplift.json").write_text(
        json.dumps(summary, indent=2, default=str), encoding="utf-8"
    )
    tell(
        "  uplift (Womens E-Mail vs none, visit, 5 random halves; women's buyers first, the "
        "model orders within): uplift@30% "
        f"{summary['uplift_at_30%_mean']:.4f} ± {summary['uplift_at_30%_std']:.4f}; "
        f"rule 'womens first' {summary['baseline_uplift_at_30%_mean']:.4f}"
    )


def run_demo(
    directory: Path | str,
    *,
    customers: int = 5_000,
    days: int = DEMO_DAYS,
    seed: int = 42,
    shared_data: Path | None = None,
    say: Callable[[str], None] | None = None,
) -> DemoResult:
    """Build (or update) the demo project, ingest everything, write the overview report."""
    tell: Callable[[str], None] = say or (lambda _message: None)
    root = Path(directory).resolve()
    if not (root / PROJECT_FILE).exists():
        tell(f"creating demo project in {root}")
        init_project(root, name="demo", timezone="Europe/London", currency="GBP", region="GB")
        with (root / PROJECT_FILE).open("a", encoding="utf-8") as handle:
            handle.write(DEMO_IDENTITY)
        (root / "tags" / "_settings.yml").write_text(DEMO_PROFILE_SETTINGS, encoding="utf-8")
    data = root / "data"
    _copy_sample(data)
    (root / "sources" / "online_retail_sample.yml").write_text(SAMPLE_SPEC, encoding="utf-8")
    _generate_once(data / "generated", customers=customers, days=days, seed=seed, say=tell)
    for stem, text in source_specs("data/generated").items():
        if stem == "order_lines":  # the simulated responses to the campaign join them later
            text = text.replace("order_lines.parquet", "order_lines*.parquet")
        (root / "sources" / f"gen_{stem}.yml").write_text(text, encoding="utf-8")
    for folder in ("segments", "campaigns", "templates"):
        (root / folder).mkdir(exist_ok=True)
        for spec in sorted((Path(__file__).parent / folder).glob("*.yml")):
            shutil.copyfile(spec, root / folder / spec.name)
    for relative, shipped in template_files().items():  # the ready journeys and their messages
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped, root / relative)

    with Workspace.open(root) as ws:
        tell("ingesting sources…")

        def on_file(report: object) -> None:
            from jingzhun.ingest import FileReport

            assert isinstance(report, FileReport)
            if report.status is FileStatus.LOADED:
                tell(
                    f"  {report.source}: {report.rows_read:,} read, {report.rows_loaded:,} "
                    f"loaded, {report.rows_duplicate:,} duplicate, "
                    f"{report.rows_quarantined:,} quarantined"
                )
            elif report.status is FileStatus.UNCHANGED:
                tell(f"  {report.source}: unchanged since the last load")
            else:
                tell(f"  {report.source}: REJECTED — {report.error}")

        load = ws.ingest.run(on_file=on_file)
        tell("resolving identities, building profiles and tags as of 2011-12-10…")
        built = ws.build(DEMO_AS_OF)
        identity = built.identity.to_dict()
        profiles = built.profiles.to_dict()
        tell(
            f"  {identity.get('nodes', 0):,} records → {identity.get('customers', 0):,} "
            f"customers; merges by reason: {identity.get('merges', {})}"
        )
        tell(f"  RFM segments: {profiles.get('segments', {})}")
        tell("fitting CLV (BG/NBD + Gamma-Gamma) and a churn model; scores go to `scores`…")
        clv = ws.models.fit_clv(DEMO_AS_OF)
        params = clv.result.to_dict()["bgnbd"]
        tell(
            f"  CLV: {clv.scored:,} buyers scored (p_alive, expected_purchases_12m, clv_12m); "
            f"BG/NBD r {params['r']:.3f}, alpha {params['alpha']:.3f}, a {params['a']:.3f}, "
            f"b {params['b']:.3f}"
        )
        churn = ws.models.fit_churn(DEMO_AS_OF)
        tell(
            f"  churn: AUC {churn.evaluation.auc:.3f}, {churn.validation}; "
            f"{churn.scored:,} churn_score rows; model {churn.record.model_id}"
        )
        (root / "segments" / "valuable_at_risk.yml").write_text(VALUABLE_AT_RISK, "utf-8")
        tell("clustering customers by behaviour (k by silhouette, seed 42)…")
        clusters = ws.segments.cluster("behaviour", seed=42)
        for summary in clusters.clusters:
            tell(f"  {summary.segment}: {summary.size:,} — {summary.label}")
        segments = ws.segments.build(DEMO_AS_OF)
        for name, figures in segments.segments.items():
            tell(f"  segment {name}: {figures['members']:,} customers")
        tell("recommending products (models/recommend.yml: the blend) as of 2011-12-10…")
        recommended = ws.recommend.fit(DEMO_AS_OF)
        tell(
            f"  {recommended.method}: {recommended.rows:,} recommendations for "
            f"{recommended.customers:,} customers, {recommended.items_recommended:,} distinct "
            f"items ({recommended.seconds:.1f} s)"
        )
        champion = _a_champion(ws)
        view_path = None
        if champion is not None:
            view_path = root / "reports" / "profile_360.json"
            view_path.parent.mkdir(parents=True, exist_ok=True)
            view = ws.profiles.show(champion)
            view_path.write_text(json.dumps(view, indent=2, default=str, ensure_ascii=False))
            tell(f"  one Champion's 360° view (PII masked): {view_path}")
        counts = ws.ingest.quarantine_counts().to_pylist()
        notes = [ATTRIBUTION]
        notes += [
            f"Quarantined in {row['_source']}: {row['rows']:,} value(s) of column "
            f"{row['column']} — {row['reason']}."
            for row in counts
        ]
        notes.append(
            "Generated data: jingzhun's seeded generator "
            f"({customers:,} customers, {days} days, seed {seed}); synthetic, not real people."
        )
        _journeys(ws, tell)
        _ads(ws, root, seed, tell)
        plan_id = _campaign(ws, root, tell)
        _measure_campaign(ws, plan_id, data, seed, tell)
        _at_rest(ws, tell)
        hillstrom = (shared_data / HILLSTROM) if shared_data is not None else None
        if hillstrom is not None and hillstrom.is_file():
            _hillstrom(hillstrom, root / "reports", tell)
        else:
            tell(f"Hillstrom experiment skipped: {HILLSTROM} not found under {shared_data}")
        tell("writing the overview report…")
        report = ws.measure.report(notes=notes)
        tables = ws.tables()
    return DemoResult(root, report, load, tables)


def _at_rest(ws: Workspace, tell: Callable[[str], None]) -> None:
    """Check that no personal value is stored in clear (a demo made by an older jingzhun gets
    its values sealed here).
    """
    clear = ws.privacy.encrypt(check=True)["unsealed"]
    if clear:
        ws.privacy.encrypt(by="demo")
        tell(f"personal data at rest: sealed {sum(clear.values()):,} value(s) stored in clear")
    tell(
        "personal data at rest: e-mails, phones, names, addresses encrypted in the warehouse "
        "(AES-GCM) and the store (AES-SIV); none in clear "
        "(jingzhun privacy encrypt --check -p demo)"
    )


def _a_champion(ws: Workspace) -> str | None:
    """The highest-spending Champion (ties by key), whose 360° view the demo shows."""
    if not ws.engine.exists("profiles"):
        return None
    p = ws.engine.read("profiles")
    best = p.filter(p.rfm_segment == "Champions").order_by([p.monetary.desc(), p.customer_key])
    rows = ws.engine.execute(best.select("customer_key").limit(1)).to_pylist()
    return str(rows[0]["customer_key"]) if rows else None
