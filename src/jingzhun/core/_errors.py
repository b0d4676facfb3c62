"""Errors that speak to the user: what was wrong, where, what was expected."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Process exit codes of the ``jingzhun`` command; each means one thing."""

    OK = 0
    DATA_ERROR = 1  # input data broke its contract; nothing of that input was stored
    SPEC_ERROR = 2  # the project folder (jingzhun.yml, a spec file) is invalid
    NOT_FOUND = 3  # a named thing (source, file, project) does not exist
    ENGINE_ERROR = 4  # the warehouse or the operational store failed
    REFUSED = 5  # a rule refused the action (approval missing, data changed since the plan)


class JingzhunError(Exception):
    """Base of every error jingzhun raises on purpose; carries an exit code."""

    exit_code: ExitCode = ExitCode.DATA_ERROR

    def to_dict(self) -> dict[str, object]:
        """Describe the error for ``--json`` output."""
        return {"error": type(self).__name__, "message": str(self)}


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong in a spec file: where it is and what is allowed."""

    file: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else f"{self.file}"
        name = f" field '{self.field}'" if self.field else ""
        return f"{where}:{name} {self.message}"


class SpecError(JingzhunError):
    """A project or spec file is invalid; lists every problem found, not just the first."""

    exit_code = ExitCode.SPEC_ERROR

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the project:\n{lines}")

    def to_dict(self) -> dict[str, object]:
        """Describe every problem for ``--json`` output."""
        return {
            "error": type(self).__name__,
            "message": str(self),
            "problems": [
                {"file": str(p.file), "line": p.line, "field": p.field, "message": p.message}
                for p in self.problems
            ],
        }


class NotFoundError(JingzhunError):
    """A named source, file or project does not exist."""

    exit_code = ExitCode.NOT_FOUND


class RefusedError(JingzhunError):
    """A rule refused the action: it needs approval, a re-plan, or someone else to do it."""

    exit_code = ExitCode.REFUSED


class EngineError(JingzhunError):
    """The warehouse or operational store could not do what was asked."""

    exit_code = ExitCode.ENGINE_ERROR


@dataclass
class IngestError(JingzhunError):
    """A file could not be loaded; nothing from it was stored."""

    file: Path
    message: str
    row: int | None = None
    column: str | None = None
    hint: str = ""
    details: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = str(self.file)
        if self.row is not None:
            where += f", row {self.row}"
        if self.column:
            where += f", column '{self.column}'"
        text = f"{where}: {self.message}"
        if self.details:
            text += "\n" + "\n".join(f"  {d}" for d in self.details)
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        """Describe the error for ``--json`` output."""
        return {
            "error": type(self).__name__,
            "message": str(self),
            "file": str(self.file),
            "row": self.row,
            "column": self.column,
        }
