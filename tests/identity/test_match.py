"""Probabilistic matching on messy records: columns, features, decisions, clusters, files."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from jingzhun.core import IngestError, SpecError
from jingzhun.identity._columns import ColumnMap, recognise_columns, split_full_name
from jingzhun.identity._match import (
    Decision,
    MatchError,
    MatchResult,
    MatchThresholds,
    match_file,
    match_records,
    parse_birth_date,
    prepare_features,
)

REPO = Path(__file__).resolve().parents[2]


def _load_identity_data() -> ModuleType:
    """benchmarks/identity_data.py, shared with the benchmark (benchmarks is not installed)."""
    spec = importlib.util.spec_from_file_location(
        "identity_data", REPO / "benchmarks" / "identity_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


identity_data = _load_identity_data()

# -- column recognition --------------------------------------------------------------------


def test_english_headers_in_any_spelling() -> None:
    header = ["Customer ID", "First Name", "SURNAME", "E-mail", "Mobile", "DOB", "Town",
              "Zip Code", "Street Address", "Sex", "loyalty_tier"]  # fmt: skip
    columns = recognise_columns(header)
    assert columns == ColumnMap(
        first_name="First Name",
        last_name="SURNAME",
        email="E-mail",
        phone="Mobile",
        birth_date="DOB",
        city="Town",
        postcode="Zip Code",
        address="Street Address",
        gender="Sex",
    )
    assert "loyalty_tier" not in columns.mapped().values()  # carried through, not used


def test_chinese_headers() -> None:
    columns = recognise_columns(
        ["客户编号", "姓名", "邮箱", "手机号码", "生日", "城市", "邮编", "地址", "性别"]
    )
    assert columns.mapped() == {
        "full_name": "姓名", "email": "邮箱", "phone": "手机号码", "birth_date": "生日",
        "city": "城市", "postcode": "邮编", "address": "地址", "gender": "性别",
    }  # fmt: skip
    split = recognise_columns(["名", "姓", "电话", "出生日期"])
    assert (split.first_name, split.last_name, split.phone, split.birth_date) == (
        "名", "姓", "电话", "出生日期"
    )  # fmt: skip


def test_explicit_mapping_wins_and_is_checked() -> None:
    header = ["id", "name", "contact_no", "phone", "email"]
    columns = recognise_columns(header, {"phone": "contact_no", "email": None})
    assert columns.phone == "contact_no" and columns.email is None
    assert columns.full_name == "name"
    with pytest.raises(ValueError, match="unknown person field"):
        recognise_columns(header, {"telephone": "phone"})
    with pytest.raises(ValueError, match="not in the header"):
        recognise_columns(header, {"phone": "mobile_no"})


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("王伟", ("伟", "王")),
        ("欧阳娜娜", ("娜娜", "欧阳")),
        ("诸葛亮", ("亮", "诸葛")),
        ("司马 懿", ("懿", "司马")),
        ("王", (None, "王")),
        ("Mary Ann Smith", ("Mary Ann", "Smith")),
        ("Smith, John", ("John", "Smith")),
        ("约翰·史密斯", ("约翰", "史密斯")),
        ("Wang Wei", ("Wang", "Wei")),  # the model compares sorted names too
        ("  ", (None, None)),
        (None, (None, None)),
    ],
)
def test_split_full_name(name: str | None, expected: tuple[str | None, str | None]) -> None:
    assert split_full_name(name) == expected


# -- features ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "month_first", "iso"),
    [
        ("1990-03-05", False, "1990-03-05"),
        ("1990/3/5", False, "1990-03-05"),
        ("1990年3月5日", False, "1990-03-05"),
        ("19900305", False, "1990-03-05"),
        ("1990-03-05T00:00:00", False, "1990-03-05"),
        ("25/12/1990", False, "1990-12-25"),  # day first: 25 cannot be a month
        ("12/25/1990", False, "1990-12-25"),  # month first: 25 cannot be a month
        ("05/03/1990", False, "1990-03-05"),  # ambiguous: day first outside the US
        ("05/03/1990", True, "1990-05-03"),
        ("31/02/1990", False, None),
        ("1850-01-01", False, None),
        ("unknown", False, None),
    ],
)
def test_birth_dates(text: str, month_first: bool, iso: str | None) -> None:
    assert parse_birth_date(text, month_first) == iso


def test_features_fold_spellings_and_drop_placeholders() -> None:
    table = pa.table(
        {
            "id": ["1", "2", "3", "4", "5", "6"],
            "first": ["Zoë", " ZOE ", "伟", "Wei", "静婷", None],
            "last": ["O'Brien", "obrien", "王", "Wang", "李", None],
            "phone": [
                "13912345678",
                "139-1234-5678",
                "+86 139 1234 5678",
                "13800138000",
                "010-62345678",
                "1391234567",
            ],
            "email": ["Zoe@Mail.COM ", "noemail@example.com", "x@example.org", None, "a@b.cn", ""],
            "dob": ["1990-03-05", "05/03/1990", "1990-05-03", "2/30/1990", None, "1990年3月5日"],
        }
    )
    columns = ColumnMap(
        first_name="first", last_name="last", phone="phone", email="email", birth_date="dob"
    )
    features = prepare_features(table, id_column="id", columns=columns, region="CN")
    row = features.to_pylist()
    assert row[0]["first_name"] == row[1]["first_name"] == "zoe"
    assert row[0]["surname"] == row[1]["surname"] == "obrien"
    assert [r["phone_key"] for r in row[:3]] == ["+8613912345678"] * 3
    assert row[3]["phone_key"] is None  # China Mobile's service line, a placeholder
    assert row[4]["phone_mobile"] is False and row[0]["phone_mobile"] is True  # fixed line
    assert row[5]["phone_key"] == "1391234567"  # a digit short: compared by its digits
    assert row[5]["phone_last8"] == "91234567"
    assert [r["email"] for r in row] == ["zoe@mail.com", None, None, None, "a@b.cn", None]
    assert [r["birth_date"] for r in row] == [
        "1990-03-05", "1990-03-05", "1990-05-03", None, None, "1990-03-05"
    ]  # fmt: skip
    assert row[2]["birth_date_swapped"] == "1990-03-05"
    assert row[2]["name_key"] == "伟 王" and row[2]["hanzi"] is True
    assert row[3]["name_key"] == "wang wei" and row[3]["hanzi"] is False
    assert row[4]["first_name_chars"] == "婷静"  # sorted: 静婷 and 婷静 agree


# -- hand-made cases on top of messy data ---------------------------------------------------

COLUMNS = ["record_id", "first_name", "last_name", "email", "phone", "birth_date", "city", "gender"]

# One person typed three times: three phone spellings, day and month swapped once.
SAME_PERSON = [
    ("T-A1", "伟", "王", "wangwei1990@163.com", "13912345678", "1990-03-05", "北京", "M"),
    ("T-A2", "伟", "王", None, "139-1234-5678", "05/03/1990", "北京市", None),
    ("T-A3", "伟", "王", None, "+86 139 1234 5678", "1990-05-03", "北京", "男"),
    ("T-B1", "Sarah", "Thomas", "sthomas@qq.com", "+86 186 5550 1234", "1984-11-20", "上海", "F"),
    ("T-B2", "Sarha", "Thomas", "sthomas@qq.con", "18655501234", None, "上海", None),
]
# A family sharing a fixed line and a mailbox: different first names and birth dates.
HOUSEHOLD = [
    ("T-H1", "建国", "王", "wangjia88@163.com", "010-62345678", "1958-02-11", "北京", "M"),
    ("T-H2", "秀英", "李", "wangjia88@163.com", "(010) 6234 5678", "1960-07-23", "北京", "F"),
    ("T-H3", "强", "王", "wangjia88@163.com", "+86 10 6234 5678", None, "北京", "M"),
    ("T-H4", "芳", "王", None, "01062345678", "1988-10-02", "北京", "F"),
    ("T-H5", "Joan", "Smith", "smithfamily@gmail.com", "021-55551234", None, "上海", None),
    ("T-H6", "John", "Smith", "smithfamily@gmail.com", "(021) 5555 1234", None, "上海", None),
]


def _namesakes() -> list[tuple[str | None, ...]]:
    """Thirty different 王伟 in 北京, each with a phone and birth date of their own."""
    rows: list[tuple[str | None, ...]] = []
    for i in range(30):
        phone = None if i % 7 == 3 else f"1376{i:03d}{(i * 7919) % 10000:04d}"
        birth = None if i % 5 == 4 else f"19{60 + i}-{1 + i % 12:02d}-{1 + (i * 5) % 28:02d}"
        email = f"wei.wang{i}@sina.com" if i % 3 == 0 else None
        rows.append((f"T-N{i:02d}", "伟", "王", email, phone, birth, "北京", None))
    # Namesake 0 typed twice, the phone spelt another way.
    rows.append(("T-N00b", "伟", "王", None, "137-6000-0000", "1960-01-01", "北京", "M"))
    return rows


def _crafted() -> tuple[pa.Table, pa.Table]:
    rows = SAME_PERSON + HOUSEHOLD + _namesakes()
    records = pa.table(
        {name: pa.array([r[i] for r in rows], pa.string()) for i, name in enumerate(COLUMNS)}
    )

    def person(record_id: str) -> str:
        if record_id.startswith("T-N"):
            return "T-N" + record_id[3:5]
        return record_id[:3] if record_id[2] in "AB" else record_id

    ids = records["record_id"].to_pylist()
    groups = [
        ("namesake", "N-王伟") if i.startswith("T-N") else
        ("household", "H-T") if i.startswith("T-H") else ("single", "")
        for i in ids
    ]  # fmt: skip
    truth = pa.table(
        {
            "record_id": ids,
            "person_id": [person(i) for i in ids],
            "group": [g for g, _ in groups],
            "group_id": [g for _, g in groups],
        }
    )
    return records, truth


@pytest.fixture(scope="module")
def messy() -> Any:
    """About 2,200 records: generated duplicates, messy people, and the hand-made cases."""
    records, truth = _crafted()
    crafted = identity_data.MessyRecords(records, truth, 0)
    return identity_data.combine(
        identity_data.make_messy_records(900, seed=3),
        identity_data.generated_records(700, seed=3),
        crafted,
    )


@pytest.fixture(scope="module")
def result(messy: Any) -> MatchResult:
    columns = recognise_columns(COLUMNS[1:])
    return match_records(messy.records, id_column="record_id", columns=columns, region="CN")


def _cluster_of(result: MatchResult) -> dict[str, str]:
    clusters = result.clusters
    return dict(zip(clusters["id"].to_pylist(), clusters["cluster_id"].to_pylist(), strict=True))


def test_spellings_swapped_dates_and_typos_merge(result: MatchResult) -> None:
    cluster = _cluster_of(result)
    assert result.trained
    assert cluster["T-A1"] == cluster["T-A2"] == cluster["T-A3"] == "T-A1"
    assert cluster["T-B1"] == cluster["T-B2"]
    assert cluster["T-N00"] == cluster["T-N00b"]


def test_household_members_never_merge(result: MatchResult) -> None:
    cluster = _cluster_of(result)
    members = [r[0] for r in HOUSEHOLD]
    assert len({cluster[m] for m in members}) == len(members)
    held = result.pairs.filter(
        pc.and_(
            pc.is_in(result.pairs["id_l"], pa.array(members)),
            pc.is_in(result.pairs["id_r"], pa.array(members)),
        )
    ).to_pylist()
    assert held and all(p["decision"] != Decision.MERGE for p in held)
    # The shared line and mailbox make some pairs likely: a rule holds them back, with its name.
    likely = [p for p in held if p["match_probability"] >= result.thresholds.merge]
    assert likely and all(p["reason"] is not None for p in likely)


def test_namesakes_never_merge(result: MatchResult) -> None:
    cluster = _cluster_of(result)
    namesakes = [f"T-N{i:02d}" for i in range(30)]
    assert len({cluster[n] for n in namesakes}) == 30


def test_precision_and_recall_on_messy_data(messy: Any, result: MatchResult) -> None:
    scores = identity_data.pair_scores(result.clusters, messy.truth)
    # Measured: precision 1.0, recall 0.942 of 744 true pairs. Issue 3 asks for >= 0.98 / 0.93.
    assert scores.precision >= 0.99
    assert scores.recall >= 0.93
    assert scores.false_merges_namesake == 0
    assert scores.false_merges_household == 0


def test_thresholds_route_pairs(messy: Any, result: MatchResult) -> None:
    pairs = result.pairs.to_pylist()
    for p in pairs:
        if p["decision"] == Decision.MERGE:
            assert p["match_probability"] >= 0.99 and p["reason"] is None
        elif p["decision"] == Decision.REVIEW:
            assert p["match_probability"] >= 0.90
            assert p["match_probability"] < 0.99 or p["reason"] is not None
        else:
            assert p["match_probability"] < 0.90
    counts = {d: sum(p["decision"] == d for p in pairs) for d in Decision}
    assert all(counts.values())

    # The same model, stricter merging and a wider review band: no retraining.
    strict = match_records(
        messy.records,
        id_column="record_id",
        columns=result.columns,
        region="CN",
        thresholds=MatchThresholds(merge=0.9999, review=0.5),
        settings=result.settings,
    )
    assert not strict.trained
    strict_counts = {d: sum(p["decision"] == d for p in strict.pairs.to_pylist()) for d in Decision}
    assert strict_counts[Decision.MERGE] < counts[Decision.MERGE]
    assert strict_counts[Decision.REVIEW] > counts[Decision.REVIEW]
    with pytest.raises(ValueError, match="review <= merge"):
        MatchThresholds(merge=0.5, review=0.9)


def test_same_seed_same_model_and_clusters(messy: Any, result: MatchResult) -> None:
    again = match_records(
        messy.records,
        id_column="record_id",
        columns=result.columns,
        region="CN",
        seed=result.seed,
    )
    assert again.settings == result.settings
    assert again.clusters.equals(result.clusters)


def test_bad_input_to_match_records() -> None:
    table = pa.table({"id": ["1", "1"], "phone": ["13912345678", "13912345678"]})
    with pytest.raises(MatchError, match="repeats ids"):
        match_records(table, id_column="id", columns=ColumnMap(phone="phone"), region="CN")
    with pytest.raises(MatchError, match="no id column"):
        match_records(table, id_column="key", columns=ColumnMap(phone="phone"), region="CN")
    with pytest.raises(MatchError, match="no name"):
        match_records(table, id_column="id", columns=ColumnMap(city="phone"), region="CN")


# -- files -----------------------------------------------------------------------------------


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


HEADER = ["客户编号", "姓名", "手机", "邮箱", "生日", "城市", "备注"]
ROWS = [
    ["C001", "王伟", "13912345678", "wangwei1990@163.com", "1990-03-05", "北京", "VIP, 老客户"],
    ["C002", "王伟", "139-1234-5678", "", "05/03/1990", "北京市", ""],
    ["C003", "王 伟", "+86 139 1234 5678", "", "1990-05-03", "北京", 'said "call me"'],
    ["C004", "王伟", "13760001234", "", "1975-08-09", "北京", "another 王伟"],
    ["C005", "李秀英", "010-62345678", "wangjia88@163.com", "1960-07-23", "北京", ""],
    ["C006", "王强", "(010) 6234 5678", "wangjia88@163.com", "", "北京", ""],
    ["C007", "欧阳娜娜", "18655501234", "nana@qq.com", "2000-01-02", "上海", ""],
    ["C008", "欧阳娜娜", "+86 186 5550 1234", "NANA@QQ.COM ", "", "上海", "0012"],
]


def test_match_file_round_trip(tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "crm.csv", HEADER, ROWS)
    summary = match_file(source, tmp_path / "out" / "deduped.csv", id_column="客户编号")
    with (tmp_path / "out" / "deduped.csv").open(encoding="utf-8", newline="") as handle:
        out = list(csv.DictReader(handle))
    assert [[row[h] for h in HEADER] for row in out] == ROWS  # every record, as written
    cluster = {row["客户编号"]: row["cluster_id"] for row in out}
    assert cluster == {
        "C001": "C001", "C002": "C001", "C003": "C001", "C004": "C004",
        "C005": "C005", "C006": "C006", "C007": "C007", "C008": "C007",
    }  # fmt: skip
    by_id = {row["客户编号"]: row for row in out}
    assert by_id["C001"]["cluster_size"] == "3" and by_id["C004"]["cluster_size"] == "1"
    assert by_id["C002"]["match_decision"] == "merge"
    assert by_id["C005"]["match_decision"] in {"review", "no"}
    assert summary.records == 8 and summary.clusters == 5 and summary.merged_records == 5
    assert summary.columns == {
        "full_name": "姓名", "email": "邮箱", "phone": "手机", "birth_date": "生日", "city": "城市"
    }  # fmt: skip
    assert not summary.trained  # eight records: the prior model
    assert summary.to_dict()["thresholds"] == {"merge": 0.99, "review": 0.9}


def test_match_file_errors(tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "crm.csv", HEADER, ROWS)
    out = tmp_path / "out.csv"
    with pytest.raises(IngestError, match="no id column 'id'") as missing:
        match_file(source, out, id_column="id")
    assert "客户编号" in str(missing.value)

    repeated = _write_csv(tmp_path / "dup.csv", HEADER, [*ROWS, ROWS[3]])
    with pytest.raises(IngestError, match="occur more than once") as dup:
        match_file(repeated, out, id_column="客户编号")
    assert dup.value.row == 5 and dup.value.column == "客户编号"

    blank = _write_csv(tmp_path / "blank.csv", HEADER, [*ROWS, ["", "张三", "", "", "", "", ""]])
    with pytest.raises(IngestError, match="id is empty") as empty:
        match_file(blank, out, id_column="客户编号")
    assert empty.value.row == 10

    nobody = _write_csv(tmp_path / "nobody.csv", ["id", "city", "tier"], [["1", "北京", "gold"]])
    with pytest.raises(IngestError, match="no column holds a name"):
        match_file(nobody, out, id_column="id")

    with pytest.raises(SpecError, match="not in the header"):
        match_file(source, out, id_column="客户编号", column_overrides={"phone": "mobile_no"})
    with pytest.raises(IngestError, match="does not exist"):
        match_file(tmp_path / "nowhere.csv", out, id_column="id")
    clash = _write_csv(tmp_path / "clash.csv", [*HEADER, "cluster_id"], [[*ROWS[0], "x"]])
    with pytest.raises(IngestError, match="cluster_id"):
        match_file(clash, out, id_column="客户编号")
    assert not out.exists()
