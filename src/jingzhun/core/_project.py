"""A project folder: ``jingzhun.yml`` plus the spec folders, loaded and validated as a whole."""

from __future__ import annotations

import glob
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from jingzhun.core._errors import NotFoundError, SpecError, SpecProblem
from jingzhun.core._specs import ProjectSettings, SourceSpec
from jingzhun.core._yaml import LocatedYaml, load_yaml

PROJECT_FILE = "jingzhun.yml"
SPEC_FOLDERS = ("sources", "tags", "segments", "models", "campaigns", "journeys", "templates")

M = TypeVar("M", bound=BaseModel)

_FOLDER_NOTES = {
    "sources": "One YAML file per source: which files to read and how their columns map onto "
    "customers, events, orders, order_items, order_lines or products. See the ingest README.",
    "tags": "Tag definitions computed for every customer profile (filled by the profile stage).",
    "segments": "Segment rules: who is in an audience and why (filled by the segments stage).",
    "models": "Model specs: CLV, propensity, churn, uplift, recommendations.",
    "campaigns": "Campaign specs: audience, offer, channel, budget, holdout.",
    "journeys": "Journey specs: triggered multi-step customer journeys.",
    "templates": "Message templates (email, SMS, push) used by campaigns and journeys.",
}


def _problems(doc: LocatedYaml, exc: ValidationError) -> list[SpecProblem]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # pydantic puts model-level (after) validator errors at the root of the model
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "is not a known field here"
        named = re.match(r"column '([^']+)'", message)
        if named and loc and loc[-1] == "columns":
            loc = (*loc, named.group(1))
        name = ".".join(str(p) for p in loc)
        out.append(SpecProblem(doc.path, doc.line_of(loc), name, message))
    return out


def parse_model(model: type[M], doc: LocatedYaml) -> tuple[M | None, list[SpecProblem]]:
    """Validate a located YAML document with a pydantic model; problems carry file and line."""
    if not isinstance(doc.data, dict):
        return None, [SpecProblem(doc.path, 1, "", "must be a YAML mapping of field: value")]
    try:
        return model.model_validate(doc.data), []
    except ValidationError as exc:
        return None, _problems(doc, exc)


@dataclass
class Project:
    """A loaded, validated project folder."""

    root: Path
    settings: ProjectSettings
    sources: dict[str, SourceSpec]
    source_files: dict[str, Path]
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The project's name from ``jingzhun.yml``."""
        return self.settings.name

    def resolve(self, relative: str) -> Path:
        """A project-relative path made absolute."""
        path = Path(relative)
        return path if path.is_absolute() else (self.root / path)

    def source(self, name: str) -> SourceSpec:
        """One source spec by name; a clear error lists the known ones."""
        try:
            return self.sources[name]
        except KeyError:
            known = ", ".join(sorted(self.sources)) or "none (add one under sources/)"
            raise NotFoundError(
                f"unknown source '{name}'; sources in this project: {known}"
            ) from None

    def secret(self, name: str) -> bytes:
        """A project secret (for keyed hashes): env ``JINGZHUN_SECRET_<NAME>`` or a key file.

        The key file ``state/keys/<name>.key`` is created with 32 random bytes on first use;
        ``state/`` is never committed. Losing it means ID-number hashes no longer match.
        """
        env = os.environ.get(f"JINGZHUN_SECRET_{name.upper()}")
        if env:
            return env.encode()
        path = self.root / "state" / "keys" / f"{name}.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(secrets.token_bytes(32))
            path.chmod(0o600)
        return path.read_bytes()

    def source_paths(self, name: str) -> list[Path]:
        """Files the source's ``path`` (a glob) matches now, sorted for a stable load order."""
        pattern = str(self.resolve(self.sources[name].path))
        return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())


def load_project(path: Path | str = ".") -> Project:
    """Load and validate ``jingzhun.yml`` and every spec it names; report all problems at once."""
    root = Path(path).resolve()
    project_file = root / PROJECT_FILE
    if not project_file.is_file():
        raise NotFoundError(
            f"{root} is not a jingzhun project: {PROJECT_FILE} not found "
            "(create one with `jingzhun init DIR`, or pass --project DIR)"
        )
    doc = load_yaml(project_file)
    settings, problems = parse_model(ProjectSettings, doc)
    if settings is None:
        raise SpecError(problems)

    sources: dict[str, SourceSpec] = {}
    source_files: dict[str, Path] = {}
    seen: set[Path] = set()
    for pattern in settings.sources:
        for name in sorted(glob.glob(str(root / pattern))):
            file = Path(name)
            if file in seen:
                continue
            seen.add(file)
            source_doc = load_yaml(file) if file.is_file() else None
            if source_doc is None:
                continue
            try:
                spec, found = parse_model(SourceSpec, source_doc)
            except SpecError as exc:
                problems.extend(exc.problems)
                continue
            problems.extend(found)
            if spec is None:
                continue
            if spec.name in sources:
                problems.append(
                    SpecProblem(
                        file,
                        source_doc.line_of(("name",)),
                        "name",
                        f"source '{spec.name}' is already defined in {source_files[spec.name]}",
                    )
                )
                continue
            sources[spec.name] = spec
            source_files[spec.name] = file
    if problems:
        raise SpecError(problems)

    project = Project(root, settings, sources, source_files)
    for name in sources:
        if not project.source_paths(name):
            project.warnings.append(
                f"{source_files[name]}: source '{name}' matches no file at "
                f"'{sources[name].path}' yet"
            )
    return project


def init_project(
    directory: Path | str,
    *,
    name: str | None = None,
    timezone: str = "UTC",
    currency: str = "USD",
    region: str = "US",
) -> Path:
    """Write a new project folder; refuses to overwrite an existing ``jingzhun.yml``."""
    root = Path(directory).resolve()
    project_file = root / PROJECT_FILE
    if project_file.exists():
        raise SpecError([SpecProblem(project_file, None, "", "a project already exists here")])
    project_name = name or root.name.lower().replace("-", "_").replace(" ", "_")
    settings = ProjectSettings(
        name=project_name, timezone=timezone, currency=currency, region=region
    )
    root.mkdir(parents=True, exist_ok=True)
    project_file.write_text(
        f"""# jingzhun project: {settings.name}
name: {settings.name}
timezone: {settings.timezone}     # IANA zone; "now" and dates in reports use it
currency: {settings.currency}          # ISO 4217 reporting currency
region: {settings.region}              # default country for phone numbers (ISO 3166)

engine:
  kind: duckdb          # duckdb (embedded file) or spark
  path: warehouse/warehouse.duckdb
  # kind: spark
  # master: "local[2]"
  # path: warehouse/spark

stores:
  operational: sqlite:///state/operational.db   # or postgresql+psycopg://user@host/db

sources:
  - sources/*.yml
""",
        encoding="utf-8",
    )
    for folder in SPEC_FOLDERS:
        (root / folder).mkdir(exist_ok=True)
        (root / folder / "README.md").write_text(f"# {folder}\n\n{_FOLDER_NOTES[folder]}\n")
    (root / ".gitignore").write_text("warehouse/\nstate/\nreports/\n")
    return root
