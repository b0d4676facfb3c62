"""Custom tag YAML: parsing, type checks and errors with file and line (no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jingzhun.core import SpecError
from jingzhun.profile import (
    DEFAULT_RFM_SEGMENTS,
    ProfileSettings,
    TagSpec,
    compile_tag,
    load_profile_settings,
    load_tag_specs,
)


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _problem(exc: pytest.ExceptionInfo[SpecError]) -> tuple[int | None, str, str]:
    (problem,) = exc.value.problems
    return problem.line, problem.field, problem.message


def test_tags_load_from_files_and_lists(tmp_path: Path) -> None:
    tags = tmp_path / "tags"
    _write(
        tags,
        "vip.yml",
        "name: vip\n"
        "description: big recent spenders\n"
        "type: boolean\n"
        "expression: revenue > 500 AND orders >= 3 AND recency_days <= 90\n",
    )
    _write(
        tags,
        "more.yaml",
        "- name: engagement\n"
        "  type: string\n"
        "  expression: |\n"
        "    CASE WHEN count_events('email_clicked', 30) >= 2 THEN 'hot'\n"
        "         WHEN days_since_event('page') BETWEEN 0 AND 30 THEN 'warm'\n"
        "         ELSE 'cold' END\n"
        "- name: basket\n"
        "  type: number\n"
        "  expression: ROUND(COALESCE(revenue / NULLIF_NOT_USED, 0), 2)\n",
    )
    _write(tags, "_settings.yml", "source_priority: [crm]\n")  # settings, not a tag
    with pytest.raises(SpecError) as exc:
        load_tag_specs(tags)
    line, field, message = _problem(exc)
    assert (line, field) == (9, "expression")
    assert "unknown column 'NULLIF_NOT_USED'" in message

    _write(
        tags,
        "more.yaml",
        "- name: engagement\n"
        "  type: string\n"
        "  expression: |\n"
        "    CASE WHEN count_events('email_clicked', 30) >= 2 THEN 'hot'\n"
        "         WHEN days_since_event('page') BETWEEN 0 AND 30 THEN 'warm'\n"
        "         ELSE 'cold' END\n"
        "- name: basket\n"
        "  type: number\n"
        "  expression: ROUND(COALESCE(revenue / NULLIF(orders, 0), 0), 2)\n",
    )
    with pytest.raises(SpecError) as exc:
        load_tag_specs(tags)
    line, field, message = _problem(exc)
    assert (line, field) == (9, "expression")
    assert "unsupported function 'NULLIF'" in message

    _write(
        tags,
        "more.yaml",
        "- name: engagement\n"
        "  type: string\n"
        "  expression: |\n"
        "    CASE WHEN count_events('email_clicked', 30) >= 2 THEN 'hot'\n"
        "         WHEN days_since_event('page') BETWEEN 0 AND 30 THEN 'warm'\n"
        "         ELSE 'cold' END\n"
        "- name: basket\n"
        "  type: number\n"
        "  expression: ROUND(revenue / GREATEST(orders, 1), 2)\n",
    )
    specs = load_tag_specs(tags)
    assert [s.name for s in specs] == ["engagement", "basket", "vip"]
    assert specs[2].description == "big recent spenders"
    assert specs[0].line == 3 and specs[0].file == tags / "more.yaml"
    compiled = compile_tag(specs[0])
    assert sorted((a.function.value, a.event_type, a.days) for a in compiled.aggregates) == [
        ("count_events", "email_clicked", 30),
        ("days_since_event", "page", None),
    ]


@pytest.mark.parametrize(
    ("expression", "declared", "field", "expected"),
    [
        (
            "reveneu > 500",
            "boolean",
            "expression",
            "unknown column 'reveneu' — did you mean 'revenue'?",
        ),
        ("sum(revenue) > 5", "boolean", "expression", "unsupported function 'SUM'"),
        ("count_event('page') > 1", "boolean", "expression", "did you mean 'count_events'?"),
        ("revenue > 'a lot'", "boolean", "expression", "type mismatch"),
        ("revenue AND orders > 1", "boolean", "expression", "AND operand 'revenue' is number"),
        ("revenue > 500", "number", "type", "declared number but the expression gives a boolean"),
        ("rfm_segment IN ('Champions', 3)", "boolean", "expression", "type mismatch"),
        ("CASE WHEN orders > 1 THEN 'a' ELSE 2 END", "string", "expression", "CASE results"),
        ("revenue = NULL", "boolean", "expression", "use IS NULL"),
        ("count_events(page, 30) > 1", "boolean", "expression", "quoted text"),
        ("count_events('page', 0) > 1", "boolean", "expression", "at least 1"),
        ("count_events('page', 3, 4) > 1", "boolean", "expression", "call it as"),
        ("p.revenue > 1", "boolean", "expression", "without a table prefix"),
        ("revenue >", "boolean", "expression", "cannot parse the expression"),
        ("(SELECT 1) = 1", "boolean", "expression", "not a statement or query"),
        ("email LIKE '%@qq.com'", "boolean", "expression", "unsupported syntax"),
        ("first_seen < DATE '2024-13-01'", "boolean", "expression", "not an ISO date"),
        ("has_push > true", "boolean", "expression", "booleans can only be compared"),
    ],
)
def test_wrong_definitions_name_line_and_problem(
    tmp_path: Path, expression: str, declared: str, field: str, expected: str
) -> None:
    tags = tmp_path / "tags"
    _write(
        tags,
        "t.yml",
        f'# a tag\nname: t\ndescription: d\ntype: {declared}\nexpression: "{expression}"\n',
    )
    with pytest.raises(SpecError) as exc:
        load_tag_specs(tags)
    (problem,) = exc.value.problems
    assert problem.file == tags / "t.yml"
    assert problem.line == 5
    assert problem.field == field
    assert expected in problem.message, problem.message
    assert "tag 't'" in problem.message
    assert f"{tags / 't.yml'}:5" in str(exc.value)


def test_field_problems_are_all_reported(tmp_path: Path) -> None:
    tags = tmp_path / "tags"
    _write(tags, "a.yml", "name: Revenue Tag\ntype: money\nexpresion: orders > 1\n")
    _write(tags, "b.yml", "name: orders\ntype: number\nexpression: 1\n")
    _write(tags, "c.yml", "name: twice\ntype: number\nexpression: orders\n")
    _write(tags, "d.yml", "name: twice\ntype: number\nexpression: revenue\n")
    _write(tags, "e.yml", "name: [broken\n")
    with pytest.raises(SpecError) as exc:
        load_tag_specs(tags)
    found = {(p.file.name, p.line, p.field, p.message.split(";")[0]) for p in exc.value.problems}
    assert ("a.yml", 3, "expresion", "is not a tag field — did you mean 'expression'?") in found
    assert ("a.yml", 1, "expression", "is required") in found
    assert (
        "a.yml",
        1,
        "name",
        "must be lower-case letters, digits and _ , starting with a letter",
    ) in found
    assert ("a.yml", 2, "type", "'money' is not a tag type") in found
    assert ("b.yml", 1, "name", "'orders' is a profile column already") in found
    assert (
        "b.yml",
        3,
        "expression",
        "must be a SQL expression written as text (quote it in YAML)",
    ) in found
    assert any(f == "d.yml" and "already defined in" in m for f, _, _, m in found)
    assert any(f == "e.yml" and "invalid YAML" in m for f, _, _, m in found)


def test_python_tag_specs_compile_without_files() -> None:
    spec = TagSpec(
        "loyal_app_user", "boolean", "has_push AND rfm_segment IN ('Loyal', 'Champions')"
    )
    assert compile_tag(spec).kind.value == "boolean"
    with pytest.raises(SpecError, match="unknown column 'segment' — did you mean 'rfm_segment'"):
        compile_tag(TagSpec("x", "boolean", "segment = 'Loyal'"))


def test_settings_file_errors_name_the_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "_settings.yml",
        "source_priority: [crm, shop]\n"
        "lifecycle:\n"
        "  active_days: 90\n"
        "  at_risk_days: 60\n"
        "lead_score:\n"
        "  - {event: pricing_viewed, points: 10, half_life_days: 30}\n"
        "  - {event: demo_booked, points: 25, half_life: 30}\n",
    )
    with pytest.raises(SpecError) as exc:
        load_profile_settings(path)
    found = {(p.line, p.field) for p in exc.value.problems}
    assert (2, "lifecycle") in found  # windows must grow
    assert (7, "lead_score.1.half_life") in found
    path.write_text(
        "source_priority: [crm, shop]\n"
        "lead_score:\n"
        "  - {event: pricing_viewed, points: 10, half_life_days: 30}\n"
    )
    settings = load_profile_settings(path)
    assert settings.source_priority == ["crm", "shop"]
    assert [(r.event, r.points, r.half_life_days) for r in settings.lead_score] == [
        ("pricing_viewed", 10, 30)
    ]
    assert load_profile_settings(tmp_path / "missing.yml") == ProfileSettings()


def test_segment_map_must_cover_the_grid() -> None:
    dropped = {"Lost", "Hibernating"}
    with pytest.raises(ValueError, match=r"no segment covers R 1 / FM 1, R 1 / FM 1\.5 \["):
        ProfileSettings(rfm_segments=[s for s in DEFAULT_RFM_SEGMENTS if s.name not in dropped])


def test_default_segment_grid() -> None:
    """Every name reachable; spot cells from the grid drawn in _settings.py."""
    s = ProfileSettings()
    grid = {(r, fm / 2): s.segment_of(r, fm / 2) for r in range(1, 6) for fm in range(2, 11)}
    assert set(grid.values()) == {
        "Champions", "Loyal", "Potential loyalist", "New", "Promising", "Need attention",
        "About to sleep", "At risk", "Can't lose", "Hibernating", "Lost",
    }  # fmt: skip
    assert grid[(5, 5.0)] == grid[(4, 4.0)] == "Champions"
    assert grid[(1, 5.0)] == grid[(1, 4.0)] == "Can't lose"
    assert grid[(1, 3.5)] == grid[(1, 2.0)] == "At risk"
    assert grid[(1, 1.5)] == "Hibernating"
    assert grid[(1, 1.0)] == "Lost"
    assert grid[(2, 1.5)] == "About to sleep"
    assert grid[(2, 2.5)] == "Need attention"
    assert grid[(2, 3.0)] == grid[(3, 5.0)] == grid[(5, 3.5)] == "Loyal"
    assert grid[(3, 2.5)] == grid[(5, 1.5)] == "Potential loyalist"
    assert grid[(3, 1.0)] == "Promising"
    assert grid[(4, 1.0)] == grid[(5, 1.0)] == "New"
