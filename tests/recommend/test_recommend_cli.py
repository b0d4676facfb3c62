"""``jingzhun recommend`` end to end on the bundled Online Retail sample (31,325 real invoice
lines of 380 customers, CC BY 4.0): fit, show, export, evaluate, and the errors users see.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from jingzhun.cli import app
from jingzhun.core import ExitCode
from jingzhun.demo._demo import SAMPLE_SPEC
from jingzhun.recommend import RECOMMENDATIONS, SIMILAR_ITEMS
from jingzhun.workspace import Workspace

SOURCE = "online_retail_sample"
SETTINGS = """\
include_late_loads: true    # the sample is 2011 history loaded today
top: 10
rules:
  exclude_bought_days: 14
  max_per_category: 3
  never: [POST, DOT, C2, M, D, S, B, BANK CHARGES, AMAZONFEE, CRUK, PADS]
"""
runner = CliRunner()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shop")
    (root / "sources").mkdir()
    (root / "data").mkdir()
    (root / "models").mkdir()
    with resources.as_file(
        resources.files("jingzhun.demo").joinpath("data", f"{SOURCE}.csv.gz")
    ) as sample:
        shutil.copyfile(sample, root / "data" / f"{SOURCE}.csv.gz")
    (root / "jingzhun.yml").write_text("name: shop\ncurrency: GBP\nregion: GB\n")
    (root / "sources" / f"{SOURCE}.yml").write_text(SAMPLE_SPEC)
    (root / "models" / "recommend.yml").write_text(SETTINGS)
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
    done = runner.invoke(app, ["recommend", "fit", "-p", str(root), "--json"])
    assert done.exit_code == 0, done.output
    (root / "fit.json").write_text(done.stdout)
    return root


def test_fit_stores_a_full_list_for_everyone(project: Path) -> None:
    report = json.loads((project / "fit.json").read_text())
    assert report["as_of"] == "2011-12-09"  # the latest order of the sample
    assert report["method"] == "blend" and report["top"] == 10
    # 380 customers, 377 with a sales line (pandas on the CSV: 3 only returned things)
    assert report["customers"] == 380 and report["buyers"] == 377
    assert report["rows"] == 3800
    assert set(report["rows_by_method"]) <= {"blend", "popularity"}
    with Workspace.open(project) as ws:
        stored = ws.engine.execute(ws.engine.read(RECOMMENDATIONS)).to_pandas()
        similar = ws.engine.execute(ws.engine.read(SIMILAR_ITEMS)).to_pandas()
    assert (
        stored.groupby("customer_key")["rank"]
        .apply(sorted)
        .map(lambda r: r == list(range(1, 11)))
        .all()
    )
    assert not stored.item_id.isin(["POST", "M", "DOT"]).any()
    assert (stored.model_as_of == dt.date(2011, 12, 9)).all()
    assert stored.customer_id.notna().all() and (stored.source == SOURCE).all()
    assert similar.groupby("item_id").size().max() == 10
    assert (similar.item_id != similar.similar_item_id).all()


def test_show_explains_each_item(project: Path) -> None:
    done = runner.invoke(app, ["recommend", "show", "12720", "-p", str(project), "--json"])
    assert done.exit_code == 0, done.output
    view = json.loads(done.stdout)
    assert view["customer_key"] == f"ck_{SOURCE}:12720" and view["customer_id"] == "12720"
    recs = view["recommendations"]
    assert [r["rank"] for r in recs] == list(range(1, 11))
    # 12720, the sample's most frequent buyer (25 orders): its list opens with reminders
    assert recs[0]["reason"].startswith("time to buy again? you bought it ")
    assert all(r["reason"] for r in recs)
    lines = pd.read_csv(project / "data" / f"{SOURCE}.csv.gz", dtype=str)
    recent = lines[(lines.CustomerID == "12720") & (lines.InvoiceDate >= "2011-11-26")]
    assert not {r["item_id"] for r in recs} & set(recent.StockCode)  # 14-day rule

    human = runner.invoke(app, ["recommend", "show", f"ck_{SOURCE}:12720", "-p", str(project)])
    assert human.exit_code == 0, human.output
    assert "recommendations for ck_online_retail_sample:12720" in human.output


def test_export_csv_and_parquet(project: Path, tmp_path: Path) -> None:
    done = runner.invoke(
        app,
        ["recommend", "export", "--out", str(tmp_path / "r.csv"), "--top", "3", "-p",
         str(project), "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["rows"] == 380 * 3
    csv = pd.read_csv(tmp_path / "r.csv", dtype={"customer_id": str, "item_id": str})
    assert list(csv.columns) == ["customer_id", "item_id", "rank", "score", "method"]
    assert csv["rank"].max() == 3 and csv.customer_id.nunique() == 380
    done = runner.invoke(
        app, ["recommend", "export", "--out", str(tmp_path / "r.parquet"), "-p", str(project)]
    )
    assert done.exit_code == 0, done.output
    assert len(pd.read_parquet(tmp_path / "r.parquet")) == 3800


def test_evaluate_on_the_sample(project: Path) -> None:
    done = runner.invoke(
        app,
        ["recommend", "evaluate", "--split", "2011-09-30", "--mode", "discovery",
         "--methods", "popularity,cooccurrence,als", "-p", str(project), "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["split"] == "2011-09-30" and result["test_until"] == "2011-12-09"
    assert result["baseline"] == "popularity" and result["customers"] > 100
    by_method = {m["method"]: m for m in result["methods"]}
    assert by_method["popularity"]["ndcg_vs_baseline"] == 1.0
    assert by_method["cooccurrence"]["ndcg_vs_baseline"] > 1.0
    table = runner.invoke(
        app,
        ["recommend", "evaluate", "--split", "2011-09-30", "--mode", "repurchase",
         "--methods", "repurchase", "-p", str(project)],
    )  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "repurchase: trained to 2011-09-30" in table.output


def test_fit_until_an_earlier_date(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "shop"
    shutil.copytree(project, copy)
    done = runner.invoke(
        app,
        ["recommend", "fit", "--until", "2011-06-30", "--method", "cooccurrence", "--top", "5",
         "-p", str(copy), "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["as_of"] == "2011-06-30" and report["method"] == "cooccurrence"
    assert report["buyers"] < 377 and report["rows"] == 5 * report["customers"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["fit", "--until", "2011-13-01"], ExitCode.SPEC_ERROR, "--until '2011-13-01'"),
        (["fit", "--until", "2009-01-01"], ExitCode.NOT_FOUND, "up to 2009-01-01"),
        (["fit", "--method", "knn"], ExitCode.SPEC_ERROR, "unknown method 'knn'; methods:"),
        (["show", "nobody"], ExitCode.NOT_FOUND, "no customer 'nobody'"),
        (["export", "--out", "r.txt"], ExitCode.SPEC_ERROR, "write .csv or .parquet"),
        (["evaluate", "--split", "2012-01-31"], ExitCode.SPEC_ERROR, "must come before"),
        (["evaluate", "--split", "2010-11-30"], ExitCode.NOT_FOUND, "no purchases up to"),
        (["evaluate", "--split", "2011-09-30", "--mode", "new"], 2, "'new' is not one of"),
    ],
)
def test_errors_name_what_is_wrong(project: Path, args: list[str], code: int, message: str) -> None:
    done = runner.invoke(app, ["recommend", *args, "-p", str(project)])
    assert done.exit_code == int(code), done.output
    assert message in " ".join(done.output.split())


def test_show_before_any_fit(tmp_path: Path) -> None:
    (tmp_path / "jingzhun.yml").write_text("name: empty\n")
    done = runner.invoke(app, ["recommend", "show", "x", "-p", str(tmp_path), "--json"])
    assert done.exit_code == int(ExitCode.NOT_FOUND)
    assert "run 'jingzhun recommend fit' first" in json.loads(done.stdout)["message"]


def test_a_backfill_without_late_loads_is_explained(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "shop"
    shutil.copytree(project, copy)
    (copy / "models" / "recommend.yml").unlink()  # loaded today, so nothing stood in 2011
    done = runner.invoke(app, ["recommend", "fit", "-p", str(copy), "--json"])
    assert done.exit_code == int(ExitCode.NOT_FOUND), done.output
    message = json.loads(done.stdout)["message"]
    assert "no order lines of known customers up to 2011-12-09" in message
    assert "set include_late_loads: true in models/recommend.yml" in message
