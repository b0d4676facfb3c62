"""The model registry: every fitted model version with what it learned from, how well it did
and an artifact that is safe to load.

Metadata (id, kind, name, version, parameters, features, training window, data fingerprint,
metrics, the artifact's SHA-256) lives in the operational store's ``model_versions`` table;
the artifact is a skops file, ``<artifact_root>/<model_id>/model.skops``.

Loading is safe by construction: the artifact's SHA-256 must equal the one recorded when it
was saved (a changed or swapped file is refused), and skops rebuilds only the types on an
explicit list (``TRUSTED_TYPES`` plus what skops itself trusts: numpy, scipy and
scikit-learn) — never a bare pickle. LightGBM boosters travel as LightGBM's text model inside
jingzhun's estimators, so no LightGBM object is unpickled.

Where the registry lives (``open_registry``): inside a jingzhun project, the project's
operational store and ``state/models/``; in a plain folder (a campaign list and nothing
else), a registry of its own in ``<folder>/.jingzhun/`` (``operational.db`` and ``models/``),
so ``jingzhun model fit`` works on a single file without ``jingzhun init``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import skops.io as sio
from skops.io.exceptions import UntrustedTypesFoundException
from sqlalchemy import func, select

from jingzhun.core import PROJECT_FILE, EngineError, NotFoundError, load_project
from jingzhun.store import ModelVersion, OperationalStore

ARTIFACT_FILE = "model.skops"
STANDALONE_FOLDER = ".jingzhun"
MODEL_KINDS = ("propensity", "churn", "uplift", "clv", "retention", "recommendation")

# The classes jingzhun writes into artifacts. skops trusts numpy, scipy and scikit-learn types
# by itself; anything else in a file (a LightGBM object, an arbitrary callable) is refused.
TRUSTED_TYPES: tuple[str, ...] = (
    "jingzhun.models._tabular.PropensityModel",
    "jingzhun.models._tabular._TableEncoder",
    "jingzhun.models._tabular._LinearDesign",
    "jingzhun.models._uplift.ClassTransformation",
    "jingzhun.models._uplift.TLearner",
    "jingzhun.models._uplift.XLearner",
)

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")


@dataclass(frozen=True)
class ModelRecord:
    """One registered model version, as read from the store."""

    model_id: str
    kind: str
    name: str
    version: int
    params: dict[str, Any]
    features: list[str]
    training_window: dict[str, Any]
    data_fingerprint: str
    metrics: dict[str, Any]
    artifact: str
    sha256: str
    created_at: datetime

    @classmethod
    def _from_row(cls, row: ModelVersion) -> ModelRecord:
        return cls(
            model_id=row.model_id,
            kind=row.kind,
            name=row.name,
            version=row.version,
            params=dict(row.params or {}),
            features=list(row.features or []),
            training_window=dict(row.training_window or {}),
            data_fingerprint=row.data_fingerprint,
            metrics=dict(row.metrics or {}),
            artifact=row.artifact,
            sha256=row.sha256,
            created_at=row.created_at,
        )

    def headline(self) -> dict[str, Any]:
        """The metrics without their tables (lift, gains, Qini points ...)."""
        return {k: v for k, v in self.metrics.items() if not isinstance(v, dict | list)}

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """Plain values for ``--json``; ``full`` adds parameters, features and all metrics."""
        out: dict[str, Any] = {
            "model_id": self.model_id,
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "training_window": self.training_window,
            "data_fingerprint": self.data_fingerprint,
            "metrics": self.headline(),
        }
        if full:
            out |= {
                "params": self.params,
                "features": self.features,
                "metrics": self.metrics,
                "artifact": self.artifact,
                "sha256": self.sha256,
            }
        return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelRegistry:
    """Saved model versions: metadata in the operational store, artifacts under a folder.

    Parameters
    ----------
    store
        A migrated operational store.
    artifact_root
        Folder of the artifacts, one sub-folder per model id.
    trusted_types
        Further classes (``"package.module.Class"``) a stage's artifacts may hold, beside
        ``TRUSTED_TYPES``.
    """

    def __init__(
        self,
        store: OperationalStore,
        artifact_root: Path,
        *,
        trusted_types: Sequence[str] = (),
        owns_store: bool = False,
    ) -> None:
        self.store = store
        self.artifact_root = Path(artifact_root)
        self.trusted_types = (*TRUSTED_TYPES, *trusted_types)
        self._owns_store = owns_store

    def save(
        self,
        model: object,
        *,
        kind: str,
        name: str,
        params: Mapping[str, Any],
        features: Sequence[str],
        training_window: Mapping[str, Any],
        data_fingerprint: str,
        metrics: Mapping[str, Any],
    ) -> ModelRecord:
        """Write the model's artifact and record a new version of ``name``.

        The id is ``<name>-<YYYYMMDD>-<6 hex>``; the version counts the versions of that name
        (1 for the first). Parameters, training window and metrics must be JSON values.
        """
        if kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MODEL_KINDS)}, not {kind!r}")
        if not _NAME.match(name):
            raise ValueError(
                f"model name {name!r} must be lower-case letters, digits and '-', starting "
                "with a letter or digit, at most 60 characters"
            )
        created = datetime.now(UTC)
        model_id = f"{name}-{created:%Y%m%d}-{secrets.token_hex(3)}"
        folder = self.artifact_root / model_id
        folder.mkdir(parents=True, exist_ok=False)
        path = folder / ARTIFACT_FILE
        try:
            partial = folder / (ARTIFACT_FILE + ".partial")
            sio.dump(model, partial)
            partial.replace(path)
            self._check_trusted(path, model_id)
            digest = _sha256(path)
            with self.store.session(write=True) as session:
                count = session.scalar(
                    select(func.count()).select_from(ModelVersion).where(ModelVersion.name == name)
                )
                row = ModelVersion(
                    model_id=model_id,
                    kind=kind,
                    name=name,
                    version=int(count or 0) + 1,
                    params=dict(params),
                    features=list(features),
                    training_window=dict(training_window),
                    data_fingerprint=data_fingerprint,
                    metrics=dict(metrics),
                    artifact=f"{model_id}/{ARTIFACT_FILE}",
                    sha256=digest,
                    created_at=created,
                )
                session.add(row)
                session.flush()
                record = ModelRecord._from_row(row)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return record

    def _check_trusted(self, path: Path, model_id: str) -> None:
        """Refuse to save what could not be loaded again."""
        unknown = [t for t in sio.get_untrusted_types(file=path) if t not in self.trusted_types]
        if unknown:
            raise ValueError(
                f"model {model_id} holds types the registry does not load: "
                f"{', '.join(unknown)}; add them to the registry's trusted types"
            )

    def get(self, model_id: str) -> ModelRecord:
        """The record of a model id; ``NotFoundError`` names the ids it knows."""
        with self.store.session() as session:
            row = session.scalar(select(ModelVersion).where(ModelVersion.model_id == model_id))
            if row is not None:
                return ModelRecord._from_row(row)
            known = session.scalars(
                select(ModelVersion.model_id).order_by(ModelVersion.id.desc()).limit(5)
            ).all()
        hint = f"; latest: {', '.join(known)}" if known else "; the registry is empty"
        raise NotFoundError(
            f"no model '{model_id}' in the registry {self.store.where}{hint} "
            "(see `jingzhun model list`)"
        )

    def list(self, kind: str | None = None) -> list[ModelRecord]:
        """Every registered version (of one kind), newest first."""
        query = select(ModelVersion).order_by(ModelVersion.id.desc())
        if kind is not None:
            query = query.where(ModelVersion.kind == kind)
        with self.store.session() as session:
            return [ModelRecord._from_row(row) for row in session.scalars(query).all()]

    def artifact_path(self, record: ModelRecord) -> Path:
        """Where a record's artifact is."""
        return self.artifact_root / record.artifact

    def load(self, model_id: str) -> Any:
        """The fitted model of a model id, after checking its artifact's SHA-256.

        Raises ``NotFoundError`` for an unknown id or a missing file and ``EngineError`` for
        an artifact that changed since it was saved or holds types not on the trusted list.
        """
        record = self.get(model_id)
        path = self.artifact_path(record)
        if not path.is_file():
            raise NotFoundError(f"the artifact of model {model_id} is missing: {path}")
        digest = _sha256(path)
        if digest != record.sha256:
            raise EngineError(
                f"refusing to load model {model_id}: its artifact {path} has SHA-256 "
                f"{digest}, but {record.sha256} was recorded when it was saved; the file "
                "was changed or replaced. Fit the model again."
            )
        try:
            return sio.load(path, trusted=list(self.trusted_types))
        except UntrustedTypesFoundException as exc:
            raise EngineError(
                f"refusing to load model {model_id}: {path} holds types that are not trusted "
                f"({exc})"
            ) from None

    def close(self) -> None:
        """Close the store when the registry opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_registry(folder: Path | str = ".") -> ModelRegistry:
    """The registry for a folder: a jingzhun project's (its operational store and
    ``state/models``), else a standalone one in ``<folder>/.jingzhun/``.

    The registry owns the store it opened; close it (or use ``with``).
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise NotFoundError(f"folder {root} not found")
    if (root / PROJECT_FILE).is_file():
        project = load_project(root)
        store = OperationalStore.open(project.settings.stores.operational, project.root)
        artifacts = project.root / "state" / "models"
    else:
        own = root / STANDALONE_FOLDER
        store = OperationalStore.open(f"sqlite:///{STANDALONE_FOLDER}/operational.db", root)
        artifacts = own / "models"
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return ModelRegistry(store, artifacts, owns_store=True)
