"""YAML loading that remembers the line of every key, so errors can point at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from jingzhun.core._errors import SpecError, SpecProblem

Location = tuple[str | int, ...]


class LocatedYaml:
    """A parsed YAML document plus the line number of each key path."""

    def __init__(self, path: Path, data: Any, lines: dict[Location, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line_of(self, loc: Location) -> int | None:
        """Line of the deepest known key on ``loc`` (1-based), or None."""
        for cut in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:cut]))
            if line is not None:
                return line
        return None


def _walk(node: yaml.Node, loc: Location, lines: dict[Location, int]) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, (*loc, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*loc, i), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    """A scalar node's value, typed as the safe loader types it (an empty value is None)."""
    return yaml.SafeLoader("").construct_object(node, deep=True)


def load_yaml(path: Path) -> LocatedYaml:
    """Parse one YAML file; a syntax error becomes a SpecError with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecProblem(path, None, "", "file does not exist")]) from None
    except UnicodeDecodeError as exc:
        raise SpecError([SpecProblem(path, None, "", f"not UTF-8 text ({exc.reason})")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise SpecError([SpecProblem(path, line, "", f"invalid YAML: {exc.problem}")]) from None
    lines: dict[Location, int] = {}
    data = {} if node is None else _walk(node, (), lines)
    return LocatedYaml(path, data, lines)
