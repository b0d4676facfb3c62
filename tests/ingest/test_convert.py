"""Column conversion without an engine: time zones, DST, dates, numbers, checks."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from jingzhun.core import ColumnSpec, Field, FieldType
from jingzhun.ingest._convert import convert_column


def _spec(**options: object) -> ColumnSpec:
    return ColumnSpec.model_validate({"from": "x", **options})


def _convert(values: list[object], kind: FieldType, tz: str = "UTC", **options: object):
    return convert_column(pa.array(values), Field("f", kind), _spec(**options), tz)


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        ("2011-03-27 00:59:00", datetime(2011, 3, 27, 0, 59, tzinfo=UTC)),  # last GMT minute
        ("2011-03-27 02:00:00", datetime(2011, 3, 27, 1, 0, tzinfo=UTC)),  # BST
        ("2011-03-27 01:30:00", datetime(2011, 3, 27, 1, 0, tzinfo=UTC)),  # in the gap: forward
        ("2011-10-30 01:30:00", datetime(2011, 10, 30, 0, 30, tzinfo=UTC)),  # ambiguous: first
        ("2011-10-30 02:30:00", datetime(2011, 10, 30, 2, 30, tzinfo=UTC)),  # GMT again
    ],
)
def test_london_daylight_saving(local: str, utc: datetime) -> None:
    out = _convert([local], FieldType.TIMESTAMP, "Europe/London", format="%Y-%m-%d %H:%M:%S")
    assert out.problems == []
    assert out.values.to_pylist() == [utc]


def test_timestamps_from_arrow_types() -> None:
    naive = pa.array([datetime(2024, 1, 1, 20, 0)], pa.timestamp("us"))
    aware = pa.array([datetime(2024, 1, 1, 20, 0, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
    field = Field("f", FieldType.TIMESTAMP)
    shanghai = convert_column(naive, field, _spec(), "Asia/Shanghai").values.to_pylist()
    assert shanghai == [datetime(2024, 1, 1, 12, 0, tzinfo=UTC)]
    # a date is the calendar day where the source is: 20:00 UTC is the 2nd in Shanghai
    day = convert_column(aware, Field("d", FieldType.DATE), _spec(), "Asia/Shanghai")
    assert day.values.to_pylist() == [date(2024, 1, 2)]


def test_impossible_dates_are_refused_not_rolled_over() -> None:
    out = _convert(["29/02/2024", "29/02/2023", "31/04/2024", "1/5/2024"], FieldType.DATE,
                   format="%d/%m/%Y")  # fmt: skip
    assert out.values.to_pylist() == [date(2024, 2, 29), None, None, date(2024, 5, 1)]
    (problem,) = out.problems
    assert problem.rows.tolist() == [1, 2]


def test_numbers_and_checks() -> None:
    out = _convert(["3", " 4 ", "x", "2.5", "-1", None], FieldType.INTEGER, at_least=0)
    assert out.values.to_pylist()[:2] == [3, 4]
    reasons = {p.reason: p.rows.tolist() for p in out.problems}
    assert reasons == {"is not an integer": [2, 3], "must be at least 0": [4]}


def test_required_and_one_of() -> None:
    out = _convert(["web", "", "fax"], FieldType.STRING, required=True, one_of=["web", "app"])
    reasons = {p.reason: p.rows.tolist() for p in out.problems}
    assert reasons == {"is empty but required": [1], "must be one of web, app": [2]}


def test_booleans() -> None:
    out = _convert(["Yes", "n", "1", "perhaps", None], FieldType.BOOLEAN)
    assert out.values.to_pylist() == [True, False, True, None, None]
    assert [p.rows.tolist() for p in out.problems] == [[3]]
