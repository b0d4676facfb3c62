"""The ``jingzhun`` command: exit codes, --json, --project, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from helpers import LINES, make_project, write_csv
from jingzhun.cli import app
from jingzhun.core import ExitCode

runner = CliRunner()


def _json(args: list[str]) -> tuple[int, dict]:
    result = runner.invoke(app, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_init_then_validate(tmp_path: Path) -> None:
    code, payload = _json(
        [
            "init",
            str(tmp_path / "p"),
            "--timezone",
            "Asia/Shanghai",
            "--currency",
            "CNY",
            "--region",
            "CN",
        ]
    )
    assert code == 0
    code, payload = _json(["validate", "--project", str(tmp_path / "p")])
    assert code == 0
    assert payload["timezone"] == "Asia/Shanghai"
    assert payload["currency"] == "CNY"


def test_validate_reports_problems_with_lines(tmp_path: Path) -> None:
    make_project(tmp_path)
    (tmp_path / "jingzhun.yml").write_text("name: shop\ncurrency: pounds\n")
    result = runner.invoke(app, ["validate", "--project", str(tmp_path)])
    assert result.exit_code == ExitCode.SPEC_ERROR
    assert "jingzhun.yml:2: field 'currency'" in result.stderr
    assert "ISO 4217" in result.stderr
    code, payload = _json(["validate", "--project", str(tmp_path)])
    assert code == ExitCode.SPEC_ERROR
    assert payload["problems"][0]["line"] == 2
    assert payload["problems"][0]["field"] == "currency"


def test_ingest_json_report_and_exit_codes(tmp_path: Path) -> None:
    make_project(tmp_path)
    write_csv(tmp_path, "a.csv", LINES)
    code, payload = _json(["ingest", "--project", str(tmp_path)])
    assert code == 0
    assert payload["totals"] == {
        "rows_read": 8,
        "rows_loaded": 7,
        "rows_duplicate": 0,
        "rows_quarantined": 1,
        "rows_suppressed": 0,  # rows of erased people (privacy tombstones)
    }
    (tmp_path / "data" / "b.csv").write_bytes(b"")
    code, payload = _json(["ingest", "--project", str(tmp_path)])
    assert code == ExitCode.DATA_ERROR
    assert "the file is empty" in payload["files"][1]["error"]

    code, payload = _json(["ingest", "nope", "--project", str(tmp_path)])
    assert code == ExitCode.NOT_FOUND
    assert "unknown source 'nope'" in payload["message"]

    code, payload = _json(["quarantine", "--project", str(tmp_path)])
    assert payload["counts"] == [
        {"_source": "shop", "column": "UnitPrice", "reason": "must be greater than 0", "rows": 1}
    ]
    code, payload = _json(["tables", "--project", str(tmp_path)])
    assert payload["raw_order_items"] == 7
    code, payload = _json(["runs", "--project", str(tmp_path)])
    # newest first; the unknown source failed before any run started
    assert [r["status"] for r in payload] == ["failed", "ok"]


def test_human_output_of_ingest(tmp_path: Path) -> None:
    make_project(tmp_path)
    write_csv(tmp_path, "a.csv", LINES)
    result = runner.invoke(app, ["ingest", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "8 read, 7 loaded, 0 duplicate, 1 quarantined" in result.stdout
    assert "row 6, column 'UnitPrice': '0' must be greater than 0" in result.stdout


def test_missing_project(tmp_path: Path) -> None:
    result = runner.invoke(app, ["tables", "--project", str(tmp_path)])
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "is not a jingzhun project" in result.stderr


def test_console_script_runs(tmp_path: Path) -> None:
    """The installed entry point, as a user runs it."""
    make_project(tmp_path)
    write_csv(tmp_path, "a.csv", LINES)
    done = subprocess.run(
        [sys.executable, "-m", "jingzhun.cli", "ingest", "--json", "--project", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True


def test_generate(tmp_path: Path) -> None:
    code, payload = _json(["generate", str(tmp_path / "g"), "--customers", "50", "--days", "7"])
    assert code == 0
    assert payload["rows"]["customers"] >= 50
    assert (tmp_path / "g" / "order_lines.parquet").is_file()
    result = runner.invoke(app, ["generate", str(tmp_path / "h"), "--region", "mars"])
    assert result.exit_code == ExitCode.SPEC_ERROR
    assert "region 'MARS' is not supported" in result.stderr


def test_identity_match_command(tmp_path: Path) -> None:
    crm = tmp_path / "crm.csv"
    crm.write_text(
        "id,姓名,手机,生日,城市\n"
        "1,王伟,13800138001,1990-03-04,北京\n"
        "2,王伟,138-0013-8001,1990-04-03,北京\n"  # same person: phone spelling, day/month swap
        "3,王伟,13912345678,1985-01-01,北京\n"  # a namesake
        "4,李娜,+86 139 1111 2222,1992-05-06,上海\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.csv"
    code, payload = _json(
        ["identity", "match", str(crm), "--id-column", "id", "--out", str(out),
         "--project", str(tmp_path)]
    )  # fmt: skip
    assert code == 0, payload
    assert payload["records"] == 4
    rows = out.read_text(encoding="utf-8").splitlines()
    clusters = {line.split(",")[0].strip('"'): line.split(",")[5].strip('"') for line in rows[1:]}
    assert clusters == {"1": "1", "2": "1", "3": "3", "4": "4"}
    result = runner.invoke(app, ["identity", "match", str(crm), "--id-column", "nope",
                                 "--out", str(out), "--project", str(tmp_path)])  # fmt: skip
    assert result.exit_code != 0
    assert "nope" in result.stderr


def test_identity_build_and_review_commands(tmp_path: Path) -> None:
    make_project(tmp_path)
    write_csv(tmp_path, "a.csv", LINES)
    assert _json(["ingest", "--project", str(tmp_path)])[0] == 0
    code, payload = _json(["identity", "build", "--project", str(tmp_path)])
    assert code == 0, payload
    assert payload["customers"] == 4  # 17850, 13047, 14527, 12583
    code, pending = _json(["identity", "review", "--project", str(tmp_path)])
    assert code == 0 and pending == []
