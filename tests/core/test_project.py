from datetime import date
from pathlib import Path

import pytest

from jingzhun.core import SPEC_FOLDERS, NotFoundError, SpecError, init_project, load_project


def test_init_writes_a_valid_project(tmp_path: Path) -> None:
    root = init_project(tmp_path / "shop-eu", timezone="Europe/Paris", currency="EUR")
    project = load_project(root)
    assert project.name == "shop_eu"
    assert project.settings.timezone == "Europe/Paris"
    assert project.settings.currency == "EUR"
    for folder in SPEC_FOLDERS:
        assert (root / folder).is_dir()


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    init_project(tmp_path)
    with pytest.raises(SpecError, match="already exists"):
        init_project(tmp_path)


def test_missing_project_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"jingzhun\.yml not found"):
        load_project(tmp_path)


def test_errors_name_file_line_field_and_allowed_values(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "jingzhun.yml").write_text(
        "name: shop\ntimezone: Mars/Olympus\nengine:\n  kind: oracle\n"
    )
    with pytest.raises(SpecError) as caught:
        load_project(tmp_path)
    problems = {(p.file.name, p.line, p.field) for p in caught.value.problems}
    assert ("jingzhun.yml", 2, "timezone") in problems
    assert ("jingzhun.yml", 4, "engine.kind") in problems
    text = str(caught.value)
    assert "'duckdb' or 'spark'" in text
    assert "IANA time zone" in text


def test_source_errors_point_at_the_line(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "sources" / "web.yml").write_text(
        "name: web\n"
        "path: data/*.csv\n"
        "target: orders\n"
        "columns:\n"
        "  order_id: id\n"
        "  ordered_at: {from: t, type: timestmp}\n"
        "  colour: c\n"
    )
    with pytest.raises(SpecError) as caught:
        load_project(tmp_path)
    by_field = {p.field: p for p in caught.value.problems}
    assert by_field["columns.ordered_at.type"].line == 6
    assert "'timestamp'" in by_field["columns.ordered_at.type"].message
    # An unknown column is reported at its own line with the allowed names.
    unknown = by_field.get("columns.colour")
    assert unknown is None or unknown.line == 7


def test_unknown_column_lists_allowed_fields(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "sources" / "web.yml").write_text(
        "name: web\npath: data/*.csv\ntarget: orders\ncolumns:\n"
        "  order_id: id\n  ordered_at: t\n  colour: c\n"
    )
    with pytest.raises(SpecError) as caught:
        load_project(tmp_path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (7, "columns.colour")
    assert "allowed: order_id, customer_id, ordered_at" in problem.message


def test_required_fields_must_be_mapped(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "sources" / "web.yml").write_text(
        "name: web\npath: data/*.csv\ntarget: orders\ncolumns:\n  order_id: id\n"
    )
    with pytest.raises(SpecError, match="required fields of orders are not mapped: ordered_at"):
        load_project(tmp_path)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "sources" / "bad.yml").write_text("name: x\ncolumns: [a, b\n")
    with pytest.raises(SpecError) as caught:
        load_project(tmp_path)
    assert caught.value.problems[0].line is not None
    assert "invalid YAML" in caught.value.problems[0].message


def test_duplicate_source_names(tmp_path: Path) -> None:
    init_project(tmp_path)
    body = "name: web\npath: data/*.csv\ntarget: orders\ncolumns:\n  order_id: a\n  ordered_at: b\n"
    (tmp_path / "sources" / "a.yml").write_text(body)
    (tmp_path / "sources" / "b.yml").write_text(body)
    with pytest.raises(SpecError, match="already defined"):
        load_project(tmp_path)


def test_unknown_source_lists_known_ones(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "sources" / "web.yml").write_text(
        "name: web\npath: data/*.csv\ntarget: orders\ncolumns:\n  order_id: a\n  ordered_at: b\n"
    )
    project = load_project(tmp_path)
    with pytest.raises(NotFoundError, match="unknown source 'shop'; sources in this project: web"):
        project.source("shop")
    assert any("matches no file" in w for w in project.warnings)


def test_identity_settings_and_secret(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "jingzhun.yml").write_text("name: shop\nidentity:\n  max_nodes_per_identifier: 1\n")
    with pytest.raises(SpecError) as caught:
        load_project(tmp_path)
    assert caught.value.problems[0].line == 3
    (tmp_path / "jingzhun.yml").write_text(
        "name: shop\nidentity:\n  blocklist: ['4000000000']\n  merge_threshold: 0.995\n"
    )
    project = load_project(tmp_path)
    assert project.settings.identity.blocklist == ["4000000000"]
    key = project.secret("identity")
    assert len(key) == 32
    assert project.secret("identity") == key  # stable across calls
    assert (tmp_path / "state" / "keys" / "identity.key").stat().st_mode & 0o077 == 0


def test_yaml_with_an_empty_value_reads_as_null(tmp_path: Path) -> None:
    from jingzhun.core._yaml import load_yaml

    path = tmp_path / "a.yml"
    path.write_text("a:\nb: 1\nc: [x, 2024-01-01, true]\n")
    doc = load_yaml(path)
    assert doc.data == {"a": None, "b": 1, "c": ["x", date(2024, 1, 1), True]}
    assert doc.line_of(("b",)) == 2
