"""The model registry: versions in the operational store, artifacts checked and loaded safely."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sqlalchemy import update

from jingzhun.core import EngineError, NotFoundError, init_project
from jingzhun.models import (
    ModelRegistry,
    PropensityModel,
    make_uplift_learner,
    open_registry,
)
from jingzhun.store import ModelVersion, OperationalStore


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ModelRegistry]:
    with open_registry(tmp_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def customers() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 1_500
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "city": rng.choice(["London", "Leeds", "York"], n),
            "visits": rng.poisson(3, n),
        }
    )
    frame.loc[::17, "age"] = np.nan
    treated = rng.integers(0, 2, n)
    logit = -1 + 0.03 * (frame["age"].fillna(40) - 40) + 0.8 * treated * (frame["city"] == "York")
    bought = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, bought, treated


def _save(registry: ModelRegistry, model: object, name: str = "buyers") -> str:
    record = registry.save(
        model,
        kind="propensity",
        name=name,
        params={"estimator": "lightgbm"},
        features=["age", "city", "visits"],
        training_window={"table": "customers.csv"},
        data_fingerprint="f" * 64,
        metrics={"auc": 0.7},
    )
    return record.model_id


@pytest.mark.parametrize("estimator", ["lightgbm", "logistic"])
def test_a_saved_propensity_model_loads_and_predicts_the_same(
    registry: ModelRegistry,
    customers: tuple[pd.DataFrame, np.ndarray, np.ndarray],
    estimator: str,
) -> None:
    frame, bought, _ = customers
    model = PropensityModel(estimator, n_jobs=1).fit(frame, bought)  # type: ignore[arg-type]
    model_id = _save(registry, model)
    loaded = registry.load(model_id)
    assert type(loaded) is PropensityModel
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    assert list(loaded.feature_names_in_) == ["age", "city", "visits"]


@pytest.mark.parametrize("method", ["class_transformation", "t_learner", "x_learner"])
def test_a_saved_uplift_model_loads_and_predicts_the_same(
    registry: ModelRegistry, customers: tuple[pd.DataFrame, np.ndarray, np.ndarray], method: str
) -> None:
    frame, bought, treated = customers
    model = make_uplift_learner(method, n_jobs=1).fit(frame, bought, treated)
    loaded = registry.load(_save(registry, model, name="offer"))
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_ids_versions_and_the_record(registry: ModelRegistry) -> None:
    model = PropensityModel()
    first = registry.save(
        model,
        kind="propensity",
        name="buyers",
        params={"C": 1.0},
        features=["a"],
        training_window={"as_of": "2011-12-10"},
        data_fingerprint="abc",
        metrics={"auc": 0.71, "evaluation": {"kind": "binary"}},
    )
    second = registry.save(
        model,
        kind="propensity",
        name="buyers",
        params={},
        features=[],
        training_window={},
        data_fingerprint="",
        metrics={},
    )
    other = registry.save(
        model,
        kind="churn",
        name="churn",
        params={},
        features=[],
        training_window={},
        data_fingerprint="",
        metrics={},
    )
    assert re.fullmatch(r"buyers-\d{8}-[0-9a-f]{6}", first.model_id)
    assert (first.version, second.version, other.version) == (1, 2, 1)
    artifact = registry.artifact_root / first.model_id / "model.skops"
    assert artifact.is_file()
    assert first.artifact == f"{first.model_id}/model.skops"
    assert len(first.sha256) == 64
    got = registry.get(first.model_id)
    assert got == first
    assert got.training_window == {"as_of": "2011-12-10"}
    assert got.headline() == {"auc": 0.71}  # tables (dicts, lists) stay out of the headline
    assert [r.model_id for r in registry.list()] == [
        other.model_id,
        second.model_id,
        first.model_id,
    ]
    assert [r.model_id for r in registry.list("churn")] == [other.model_id]


def test_a_changed_artifact_is_refused(
    registry: ModelRegistry, customers: tuple[pd.DataFrame, np.ndarray, np.ndarray]
) -> None:
    frame, bought, _ = customers
    model_id = _save(registry, PropensityModel(n_jobs=1).fit(frame, bought))
    path = registry.artifact_path(registry.get(model_id))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EngineError, match=r"refusing to load .* SHA-256 .* changed or replaced"):
        registry.load(model_id)


def test_an_artifact_swapped_for_an_untrusted_object_is_refused(
    registry: ModelRegistry, customers: tuple[pd.DataFrame, np.ndarray, np.ndarray]
) -> None:
    frame, bought, _ = customers
    model_id = _save(registry, PropensityModel(n_jobs=1).fit(frame, bought))
    path = registry.artifact_path(registry.get(model_id))
    # Someone who can write both the file and the store: the hash matches, the types do not.
    foreign = lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(frame[["visits"]], bought)
    sio.dump(foreign, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with registry.store.session(write=True) as session:
        session.execute(
            update(ModelVersion).where(ModelVersion.model_id == model_id).values(sha256=digest)
        )
    with pytest.raises(EngineError, match="not trusted"):
        registry.load(model_id)


def test_a_model_that_could_not_be_loaded_is_not_saved(
    registry: ModelRegistry, customers: tuple[pd.DataFrame, np.ndarray, np.ndarray]
) -> None:
    frame, bought, _ = customers
    foreign = lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(frame[["visits"]], bought)
    with pytest.raises(ValueError, match="lightgbm"):
        _save(registry, foreign)
    assert registry.list() == []
    assert list(registry.artifact_root.iterdir()) == []


def test_unknown_ids_missing_files_and_bad_names(registry: ModelRegistry) -> None:
    with pytest.raises(NotFoundError, match="the registry is empty"):
        registry.get("nope-20260101-000000")
    model_id = _save(registry, PropensityModel())
    registry.artifact_path(registry.get(model_id)).unlink()
    with pytest.raises(NotFoundError, match=r"artifact .* is missing"):
        registry.load(model_id)
    with pytest.raises(ValueError, match="lower-case"):
        _save(registry, PropensityModel(), name="Bad Name")
    with pytest.raises(ValueError, match="kind must be one of"):
        registry.save(
            PropensityModel(),
            kind="magic",
            name="x",
            params={},
            features=[],
            training_window={},
            data_fingerprint="",
            metrics={},
        )


def test_a_plain_folder_gets_a_standalone_registry(tmp_path: Path) -> None:
    with open_registry(tmp_path) as registry:
        model_id = _save(registry, PropensityModel())
        assert registry.store.current_revision() == registry.store.head_revision()
    assert (tmp_path / ".jingzhun" / "operational.db").is_file()
    assert (tmp_path / ".jingzhun" / "models" / model_id / "model.skops").is_file()
    with open_registry(tmp_path) as again:  # a second process finds it
        assert [r.model_id for r in again.list()] == [model_id]


def test_a_project_keeps_models_in_its_store_and_state(tmp_path: Path) -> None:
    root = init_project(tmp_path / "shop", name="shop")
    with open_registry(root) as registry:
        model_id = _save(registry, PropensityModel())
    assert (root / "state" / "models" / model_id / "model.skops").is_file()
    assert not (root / ".jingzhun").exists()
    with OperationalStore.open("sqlite:///state/operational.db", root) as store:
        assert ModelRegistry(store, root / "state" / "models").get(model_id).name == "buyers"
