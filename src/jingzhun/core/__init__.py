"""Core: project and spec models, canonical table contracts, errors. Imports no other stage."""

from jingzhun.core._errors import (
    EngineError,
    ExitCode,
    IngestError,
    JingzhunError,
    NotFoundError,
    SpecError,
    SpecProblem,
)
from jingzhun.core._project import PROJECT_FILE, SPEC_FOLDERS, Project, init_project, load_project
from jingzhun.core._specs import (
    ColumnSpec,
    CsvOptions,
    EngineKind,
    EngineSettings,
    ProjectSettings,
    SourceFormat,
    SourceSpec,
    StoreSettings,
)
from jingzhun.core._tables import (
    ARROW_TYPES,
    CONTRACTS,
    LINEAGE_FIELDS,
    STORED_TABLES,
    Field,
    FieldType,
    TableContract,
    Target,
)

__all__ = [
    "ARROW_TYPES",
    "CONTRACTS",
    "LINEAGE_FIELDS",
    "PROJECT_FILE",
    "SPEC_FOLDERS",
    "STORED_TABLES",
    "ColumnSpec",
    "CsvOptions",
    "EngineError",
    "EngineKind",
    "EngineSettings",
    "ExitCode",
    "Field",
    "FieldType",
    "IngestError",
    "JingzhunError",
    "NotFoundError",
    "Project",
    "ProjectSettings",
    "SourceFormat",
    "SourceSpec",
    "SpecError",
    "SpecProblem",
    "StoreSettings",
    "TableContract",
    "Target",
    "init_project",
    "load_project",
]
