"""cluster_customers on the demo warehouse: k by silhouette, seeded labels, words, segment files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from jingzhun.core import EngineSettings, NotFoundError, SpecError
from jingzhun.demo import run_demo
from jingzhun.demo._demo import DEMO_AS_OF
from jingzhun.engine import Engine, connect
from jingzhun.segments._cluster import (
    CLUSTERS,
    ClusterMethod,
    ClusterResult,
    ClusterSummary,
    _by_size,
    _summaries,
    cluster_customers,
)
from jingzhun.segments._features import BehaviourFeatures, behaviour_features


def _demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project (Online Retail sample + 5,000 generated customers, seed 42), built
    once per test process and shared by the segment modules that need a real warehouse.
    """
    root = tmp_path_factory.getbasetemp() / "segments_demo"
    done = root / ".built"
    if not done.exists():
        result = run_demo(root)
        assert result.ok, result.to_dict()
        done.touch()
    return root


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _demo_project(tmp_path_factory)


@pytest.fixture(scope="module")
def engine(demo: Path) -> Iterator[Engine]:
    with connect(EngineSettings(), demo) as eng:
        yield eng


@pytest.fixture(scope="module")
def chosen(engine: Engine, demo: Path) -> ClusterResult:
    """k-means, k chosen by silhouette over 2…8 (the defaults), segment files written."""
    return cluster_customers(engine, cluster_set="behaviour", project_root=demo)


def _stored(engine: Engine, cluster_set: str) -> pd.DataFrame:
    clusters = engine.read(CLUSTERS)
    rows = clusters.filter(clusters.cluster_set == cluster_set)
    return engine.execute(rows).to_pandas().set_index("customer_key").sort_index()


def test_silhouette_chooses_k(chosen: ClusterResult) -> None:
    assert sorted(chosen.silhouettes) == list(range(2, 9))
    scored = {k: s for k, s in chosen.silhouettes.items() if s is not None}
    assert chosen.k == max(scored, key=lambda k: scored[k])
    # Measured on the demo (7,236 profiles): k = 3 at 0.451, ahead of k = 2 at 0.446.
    assert chosen.k == 3
    assert chosen.silhouette == pytest.approx(chosen.silhouettes[3])
    assert chosen.customers == 7_236
    assert chosen.sample_size == 7_236  # fewer customers than the sample: all of them
    assert sum(chosen.sizes.values()) == chosen.customers
    sizes = list(chosen.sizes.values())
    assert sizes == sorted(sizes, reverse=True)  # id 1 is the largest cluster
    assert chosen.as_of == DEMO_AS_OF


def test_clusters_table_holds_every_customer(engine: Engine, chosen: ClusterResult) -> None:
    stored = _stored(engine, "behaviour")
    assert len(stored) == chosen.customers
    assert stored.index.is_unique
    pd.testing.assert_series_equal(
        stored["cluster"], chosen.labels.rename("cluster"), check_index_type=False
    )
    assert set(stored["method"]) == {"kmeans"}
    assert set(stored["seed"]) == {0}
    assert set(stored["as_of"]) == {DEMO_AS_OF}
    labels = {c.id: c.label for c in chosen.clusters}
    assert (stored["label"] == stored["cluster"].map(labels)).all()
    assert str(stored["built_at"].dt.tz) == "UTC"


def test_largest_cluster_is_the_non_buyers(engine: Engine, chosen: ClusterResult) -> None:
    profiles = engine.read("profiles")
    prospects = engine.execute(
        profiles.filter(profiles.lifecycle_stage == "prospect").select("customer_key")
    ).column("customer_key")
    largest = chosen.clusters[0]
    members = set(chosen.labels.index[chosen.labels == largest.id])
    # Measured on the demo: the clustering, told nothing about lifecycles, puts 4,564 of the
    # 4,567 prospects (no order) in its largest cluster, which holds 4,567 customers; the
    # other three are prospects very active online, grouped with the active buyers.
    assert len(prospects) == 4_567
    assert len(members) == 4_567
    assert len(members & set(prospects.to_pylist())) == 4_564
    assert largest.description.startswith("Non-buyers")
    assert "no orders 100% vs 63% overall" in largest.description
    assert "lifecycle 'prospect' 100% vs 63% overall" in largest.description


def test_descriptions_name_the_distinguishing_features(chosen: ClusterResult) -> None:
    keenest = max(chosen.clusters, key=lambda c: c.means["lead_score"] or 0.0)
    assert keenest.distinguishing[0].feature == "lead_score"
    assert keenest.label == "Warm leads, active online"
    assert "lead score 20.5 vs 2.51 average (8.1x)" in keenest.description
    assert "lifecycle 'active' 76% vs 17% overall" in keenest.description
    for cluster in chosen.clusters:
        assert cluster.description.startswith(cluster.label + ": ")
        differences = [abs(d.difference) for d in cluster.distinguishing]
        assert differences == sorted(differences, reverse=True)
    data = chosen.to_dict()
    assert data["k"] == 3 and len(data["clusters"]) == 3
    assert "labels" not in data


def test_finer_clusters_are_told_apart_in_words(engine: Engine) -> None:
    eight = cluster_customers(engine, cluster_set="fine", k=8)
    by = {
        name: max(eight.clusters, key=lambda c, n=name: _mean(c, n))
        for name in ("return_rate", "activity_score", "age")
    }
    # Measured on the demo with k = 8, seed 0: 63 buyers return half of what they buy.
    assert by["return_rate"].label.startswith("Many returns")
    assert by["return_rate"].description.split(": ")[1].startswith("return rate 0.51 vs 0.03")
    assert "RFM segment 'Champions' 77% vs 7% overall" in by["activity_score"].description
    assert "age 52.6 years vs 39.9 average" in by["age"].description
    assert "older" in by["age"].label.lower()
    buyers = [c for c in eight.clusters if (c.means["no_orders"] or 0.0) < 0.05]
    # order figures are compared among buyers: the lowest spenders say so
    thriftiest = min(buyers, key=lambda c: _mean(c, "monetary"))
    assert "monetary" in thriftiest.description and "vs 455 average" in thriftiest.description


def _mean(cluster: ClusterSummary, feature: str) -> float:
    value = cluster.means[feature]
    return float("-inf") if value is None else value


def test_segment_files_are_valid_specs(demo: Path, chosen: ClusterResult) -> None:
    folder = demo / "segments" / "behaviour"
    assert sorted(p.name for p in folder.glob("*.yml")) == [
        "behaviour_1.yml",
        "behaviour_2.yml",
        "behaviour_3.yml",
    ]
    for cluster in chosen.clusters:
        spec = yaml.safe_load((folder / f"behaviour_{cluster.id}.yml").read_text("utf-8"))
        assert spec == {
            "name": f"behaviour_{cluster.id}",
            "description": cluster.description,
            "rule": {"cluster": {"set": "behaviour", "id": cluster.id}},
        }


def test_same_seed_same_labels(engine: Engine) -> None:
    first = cluster_customers(engine, cluster_set="seeded", k=4, seed=11)
    stored_first = _stored(engine, "seeded")
    second = cluster_customers(engine, cluster_set="seeded", k=4, seed=11)
    stored_second = _stored(engine, "seeded")
    assert np.array_equal(first.labels.to_numpy(), second.labels.to_numpy())
    assert [c.description for c in first.clusters] == [c.description for c in second.clusters]
    # the rerun replaced the set's rows instead of adding to them
    assert len(stored_second) == len(stored_first) == first.customers
    assert stored_first["cluster"].equals(stored_second["cluster"])
    assert first.silhouettes == {4: first.silhouette}


def test_rerun_with_fewer_clusters_removes_stale_files(
    engine: Engine, demo: Path, chosen: ClusterResult
) -> None:
    folder = demo / "segments" / "stale"
    folder.mkdir(parents=True, exist_ok=True)
    keep = folder / "hand_written.yml"
    keep.write_text("name: hand_written\nrule:\n  all: [frequency >= 2]\n", encoding="utf-8")
    cluster_customers(engine, cluster_set="stale", k=5, project_root=demo)
    assert len(list(folder.glob("stale_*.yml"))) == 5
    again = cluster_customers(engine, cluster_set="stale", k=2, project_root=demo)
    assert sorted(p.name for p in folder.glob("stale_*.yml")) == ["stale_1.yml", "stale_2.yml"]
    assert sorted(p.name for p in again.removed_files) == [
        "stale_3.yml",
        "stale_4.yml",
        "stale_5.yml",
    ]
    assert keep.exists()  # not a file of the set
    assert set(_stored(engine, "stale")["cluster"]) == {1, 2}
    # other sets keep their rows and files
    assert len(_stored(engine, "behaviour")) == chosen.customers
    assert (demo / "segments" / "behaviour" / "behaviour_3.yml").exists()


def test_gaussian_mixture_on_a_sample(engine: Engine) -> None:
    result = cluster_customers(
        engine, cluster_set="mixture", method="gmm", k_range=range(2, 4), sample_size=3_000
    )
    assert result.method is ClusterMethod.GMM
    assert result.sample_size == 3_000
    assert sorted(result.silhouettes) == [2, 3]
    scored = {k: s for k, s in result.silhouettes.items() if s is not None}
    assert result.k == max(scored, key=lambda k: scored[k])
    assert len(result.labels) == result.customers == 7_236
    assert set(_stored(engine, "mixture")["method"]) == {"gmm"}
    again = cluster_customers(
        engine, cluster_set="mixture", method="gmm", k_range=range(2, 4), sample_size=3_000
    )
    assert np.array_equal(result.labels.to_numpy(), again.labels.to_numpy())


def test_features_are_standardised(engine: Engine) -> None:
    features = behaviour_features(engine)
    assert features.index.is_monotonic_increasing
    assert {"recency_days", "monetary", "no_orders", "age_unknown"} <= set(features.columns)
    assert not features.isna().any().any()
    assert np.allclose(features.mean(), 0.0, atol=1e-9)
    assert np.allclose(features.std(ddof=0), 1.0)
    chosen = behaviour_features(engine, columns=["monetary", "frequency"])
    assert list(chosen.columns) == ["monetary", "frequency"]


def test_errors_say_what_is_allowed(engine: Engine) -> None:
    with pytest.raises(SpecError, match="unknown method 'dbscan'; allowed: kmeans, gmm"):
        cluster_customers(engine, cluster_set="x", method="dbscan")
    with pytest.raises(SpecError, match=r"field 'k'.*at least 2"):
        cluster_customers(engine, cluster_set="x", k=1)
    with pytest.raises(SpecError, match=r"field 'k_range'.*at least 2"):
        cluster_customers(engine, cluster_set="x", k_range=[1, 2])
    with pytest.raises(SpecError, match=r"field 'cluster_set'.*lower-case letters"):
        cluster_customers(engine, cluster_set="../Behaviour", k=2)
    with pytest.raises(SpecError, match="field 'threads' 0: use at least 1 thread"):
        cluster_customers(engine, cluster_set="x", k=2, threads=0)
    with pytest.raises(SpecError, match="use up to 59 lower-case letters"):
        cluster_customers(engine, cluster_set="b" * 60, k=2)
    with pytest.raises(SpecError, match="not numeric profile columns: email; numeric columns:"):
        cluster_customers(engine, cluster_set="x", k=2, columns=["email"])
    with pytest.raises(NotFoundError, match="profiles are built as of 2011-12-10, not 2012-01-01"):
        cluster_customers(engine, cluster_set="x", k=2, as_of=dt.date(2012, 1, 1))


def test_no_profiles_is_a_clear_error(tmp_path: Path) -> None:
    with (
        connect(EngineSettings(), tmp_path) as empty,
        pytest.raises(NotFoundError, match="no profiles yet"),
    ):
        cluster_customers(empty, cluster_set="x", k=2)


def test_words_from_a_small_example() -> None:
    keys = pd.Index([f"c{i}" for i in range(8)], name="customer_key")
    raw = pd.DataFrame(
        {
            "monetary": [10.0, 12, 11, 9, 400, 500, 450, 420],
            "age": [30.0, 31, 29, 30, 32, 30, 31, 29],
        },
        index=keys,
    )
    standardised = (raw - raw.mean()) / raw.std(ddof=0)
    tags = pd.DataFrame(
        {"lifecycle_stage": ["new"] * 4 + ["active"] * 3 + ["new"]}, index=keys, dtype="str"
    )
    features = BehaviourFeatures(
        raw, standardised, tags, DEMO_AS_OF, {"monetary": "as is, no nulls", "age": "as is"}
    )
    labels = _by_size(np.array([5, 5, 5, 5, 2, 2, 2, 2]))
    assert labels.tolist() == [2, 2, 2, 2, 1, 1, 1, 1]  # same size: lower fitted number first
    summaries, overall = _summaries(features, labels, "toy")
    spenders = summaries[0]
    assert spenders.segment == "toy_1"
    assert spenders.label == "High spenders"
    assert spenders.description == (
        "High spenders: monetary 442 vs 226 average (2.0x); lifecycle 'active' 75% vs 38% overall"
    )
    assert overall["monetary"] == pytest.approx(226.5)
    assert summaries[1].label == "Low spenders"
