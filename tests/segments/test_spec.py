"""The rule language's shape: parsing, text conditions, and errors with file and line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from jingzhun.core import SpecError
from jingzhun.segments import Op, dependency_order, load_segment_specs, parse_segment
from jingzhun.segments._spec import (
    AllOf,
    AnniversaryPredicate,
    AnyOf,
    EventPredicate,
    FieldPredicate,
    NotOf,
    SamplePredicate,
    SegmentPredicate,
    Window,
)


def parse(rule: object, name: str = "s") -> object:
    spec, problems = parse_segment({"name": name, "rule": rule}, file=Path("x.yml"))
    assert not problems, problems
    assert spec is not None
    return spec.rule


def problems_of(rule: object) -> list[str]:
    _, problems = parse_segment({"name": "s", "rule": rule}, file=Path("x.yml"))
    return [p.message for p in problems]


def test_condition_text_becomes_a_tree() -> None:
    rule = parse("frequency >= 2 AND (city != 'Shanghai' OR city IS NULL) AND NOT vip")
    assert isinstance(rule, AllOf)
    first, second, third = rule.rules
    assert isinstance(first, FieldPredicate)
    assert (first.condition.field, first.condition.op, first.condition.value) == (
        "frequency",
        Op.GE,
        2,
    )
    assert isinstance(second, AnyOf) and len(second.rules) == 2
    assert isinstance(third, NotOf)


@pytest.mark.parametrize(
    ("text", "op", "value"),
    [
        ("city IN ('Shanghai', 'Beijing')", Op.IN, ("Shanghai", "Beijing")),
        ("city NOT IN ('Shanghai')", Op.NOT_IN, ("Shanghai",)),
        ("age BETWEEN 18 AND 35", Op.BETWEEN, (18, 35)),
        ("email IS NOT NULL", Op.NOT_NULL, None),
        ("churn_score > 0.7", Op.GT, 0.7),
        ("recency_days <= -1", Op.LE, -1),
        ("CONTAINS(interest_1, 'tea')", Op.CONTAINS, "tea"),
        ("last_order_at < DATE '2011-06-01'", Op.LT, dt.date(2011, 6, 1)),
        ("has_valid_phone", Op.EQ, True),
    ],
)
def test_every_operator_reads_from_text(text: str, op: Op, value: object) -> None:
    rule = parse(text)
    assert isinstance(rule, FieldPredicate)
    assert rule.condition.op is op
    assert rule.condition.value == value


def test_structured_forms() -> None:
    rule = parse(
        {
            "all": [
                {"field": "city", "op": "not in", "value": ["Shanghai"]},
                {"event": "order", "within": "30d", "count": {"at_least": 2}},
                {
                    "event": "card_payment",
                    "where": {"card_type": "debit"},
                    "within": "6m",
                    "sum": {"of": "amount", "at_least": 1},
                },
                {"event": "order", "within": "90d", "did_not": True},
                {"event": "order", "last": {"not_within": "90d"}},
                {"segment": "vip"},
                {"sample": "10%", "seed": 3},
                {"birthday": {"within": "7d"}},
            ]
        }
    )
    assert isinstance(rule, AllOf)
    kinds = [type(r) for r in rule.rules]
    assert kinds == [
        FieldPredicate,
        EventPredicate,
        EventPredicate,
        EventPredicate,
        EventPredicate,
        SegmentPredicate,
        SamplePredicate,
        AnniversaryPredicate,
    ]
    spend = rule.rules[2]
    assert isinstance(spend, EventPredicate)
    assert spend.window == Window(months=6)
    assert spend.of == "amount"
    assert spend.window.bounds(dt.date(2024, 6, 30)) == (
        dt.date(2023, 12, 31),
        dt.date(2024, 6, 30),
    )
    did_not = rule.rules[3]
    assert isinstance(did_not, EventPredicate) and did_not.compare is not None
    assert (did_not.compare.op, did_not.compare.value) == (Op.EQ, 0)
    sample = rule.rules[6]
    assert isinstance(sample, SamplePredicate) and (sample.percent, sample.seed) == (10.0, 3)


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"event": "order", "within": "0d"}, "covers no day"),
        ({"event": "order", "within": "soon"}, "not a duration"),
        ({"event": "order", "between": ["2024-03-01", "2024-01-01"]}, "impossible window"),
        ({"event": "order", "between": ["2024-02-30", "2024-03-01"]}, "not a date"),
        ({"field": "age", "op": "~", "value": 3}, "unknown operator"),
        ({"field": "age", "op": "between", "value": [40, 18]}, "is above high"),
        ({"event": "order", "count": {"at_least": "two"}}, "compared with a number"),
        ({"event": "order", "sum": {"at_least": 2}}, "needs 'of: <property>'"),
        ({"sample": "150%"}, "not a share"),
        ({"wat": 1}, "unknown rule"),
        ("frequency + 2", "not a condition on one field"),
        ("$", "cannot read the condition '$': it holds characters"),  # a tokenizer error
        ("frequency >= $1 AND", "cannot read the condition"),
        ({"all": []}, "non-empty list"),
    ],
)
def test_shape_errors_say_what_is_allowed(rule: object, fragment: str) -> None:
    messages = problems_of(rule)
    assert any(fragment in m for m in messages), messages


def test_files_errors_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(
        "name: a\nrule:\n  all:\n    - frequency >= 2\n    - event: order\n      within: 0d\n"
    )
    (tmp_path / "b.yml").write_text("name: a\nrule: orders > 1\n")
    with pytest.raises(SpecError) as info:
        load_segment_specs(tmp_path)
    text = str(info.value)
    assert f"{tmp_path / 'a.yml'}:6" in text and "covers no day" in text
    problems = info.value.problems
    assert len(problems) == 1  # a.yml fails to parse, so no duplicate is reported yet


def test_duplicate_names_and_cycles(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("name: a\nrule: {segment: b}\n")
    (tmp_path / "b.yml").write_text("name: b\nrule: {all: [{segment: c}, orders > 1]}\n")
    (tmp_path / "c.yml").write_text("name: c\nrule: {not: {segment: a}}\n")
    specs = load_segment_specs(tmp_path)
    with pytest.raises(SpecError, match="cycle: a → b → c → a"):
        dependency_order(specs)
    (tmp_path / "c.yml").write_text("name: c\nrule: orders > 3\n")
    order = [s.name for s in dependency_order(load_segment_specs(tmp_path))]
    assert order == ["c", "b", "a"]
    (tmp_path / "d.yml").write_text("name: c\nrule: orders > 3\n")
    with pytest.raises(SpecError, match="already defined"):
        load_segment_specs(tmp_path)


def test_unknown_segment_reference(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("name: a\nrule: {segment: nope}\n")
    with pytest.raises(SpecError, match="unknown segment 'nope'"):
        dependency_order(load_segment_specs(tmp_path))
