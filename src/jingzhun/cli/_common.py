"""What every ``jingzhun`` sub-command shares: consoles, options, JSON output, error handling."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pyarrow as pa
import typer
from rich.console import Console
from rich.table import Table

from jingzhun.core import ExitCode, JingzhunError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ProjectOption = Annotated[
    Path,
    typer.Option("--project", "-p", help="Project folder (default: the current folder)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
AsOfOption = Annotated[str | None, typer.Option(help="As it stood on this date (YYYY-MM-DD).")]

F = TypeVar("F", bound=Callable[..., Any])


def json_default(value: Any) -> Any:
    """JSON for values ``json`` does not know: decimals, dates, paths."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def print_json(payload: Any) -> None:
    """Write ``payload`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(payload, indent=2, default=json_default, ensure_ascii=False) + "\n")


def handles_errors(func: F) -> F:
    """Turn JingzhunError into a clear message (or JSON) and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            return func(*args, **kwargs)
        except JingzhunError as exc:
            if as_json:
                print_json(exc.to_dict())
            else:
                err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            raise typer.Exit(int(exc.exit_code)) from None

    return wrapper  # type: ignore[return-value]


def arrow_table(title: str, data: pa.Table) -> Table:
    """A Rich table of an Arrow table, for people."""
    table = Table(title=title, title_justify="left")
    for name in data.column_names:
        table.add_column(name, overflow="fold")
    for row in data.to_pylist():
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    return table


def parse_date(value: str | None, option: str = "--as-of") -> date | None:
    """A YYYY-MM-DD option value, or exit 2 naming the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        err.print(f"[bold red]error:[/] {option} '{value}' is not a date like 2011-12-31")
        raise typer.Exit(int(ExitCode.SPEC_ERROR)) from None
