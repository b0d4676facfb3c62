"""``cluster_customers``: k-means or a Gaussian mixture over behaviour, saved as segments.

Customers are grouped on their standardised behaviour (``_features.py``); the number of
groups is the one with the best silhouette unless the user names it. Each group is described
in plain words by the features that set it apart most (largest standardised mean difference)
and by the tags over-represented in it, stored in ``clusters`` and written as one segment file
per group, whose rule (``cluster: {set, id}``) the segment compiler reads back from the table.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from jingzhun.engine import Engine
from jingzhun.segments._features import (
    SEGMENT_NAME_LENGTH,
    BehaviourFeatures,
    check_as_of,
    check_name,
    load_behaviour,
    parameter_problem,
    replace_rows,
    utc_now,
)

CLUSTERS = "clusters"
CLUSTERS_SCHEMA = pa.schema(
    [
        ("cluster_set", pa.string()),
        ("customer_key", pa.string()),
        ("cluster", pa.int64()),
        ("label", pa.string()),
        ("method", pa.string()),
        ("seed", pa.int64()),
        ("built_at", pa.timestamp("us", tz="UTC")),
        ("as_of", pa.date32()),
    ]
)
SEGMENTS_FOLDER = "segments"
DEFAULT_K_RANGE = range(2, 9)
# Each candidate k is fitted and scored on a seeded sample of this many customers: the
# silhouette is quadratic in rows, and 20,000 keeps a choice over 1M customers to seconds.
DEFAULT_SAMPLE_SIZE = 20_000
_KMEANS_STARTS = 4  # k-means++ restarts; the best inertia wins
_GMM_STARTS = 2
# Indicator columns have zero variance inside a group of, say, non-buyers; a variance floor
# larger than scikit-learn's 1e-6 keeps EM from collapsing a component onto such a column.
_GMM_VARIANCE_FLOOR = 1e-3
# A feature describes a group when its standardised mean difference reaches this size
# (Cohen's "small" effect is 0.2, "medium" 0.5); at most this many features are named.
_MIN_DIFFERENCE = 0.3
_MAX_FEATURES = 5
_LABEL_FEATURES = 2
# A tag value is over-represented when it covers at least this share of the group and
# this many percentage points more than overall.
_MIN_TAG_SHARE = 0.25
_MIN_TAG_GAIN = 0.15
_MAX_TAGS = 2

_FEATURE_NAMES = {
    "recency_days": "recency",
    "return_rate": "return rate",
    "activity_score": "activity score",
    "lead_score": "lead score",
    "no_orders": "no orders",
    "age_unknown": "age unknown",
}
_UNITS = {"recency_days": " days", "age": " years"}
# Words for a group whose mean is above / below average on the feature.
_FEATURE_WORDS = {
    "recency_days": ("lapsed", "recent"),
    "frequency": ("frequent", "infrequent"),
    "orders": ("frequent", "infrequent"),
    "monetary": ("high spenders", "low spenders"),
    "revenue": ("high spenders", "low spenders"),
    "gross_revenue": ("high spenders", "low spenders"),
    "return_rate": ("many returns", "few returns"),
    "events": ("many site events", "few site events"),
    "activity_score": ("active online", "quiet online"),
    "lead_score": ("warm leads", "cold leads"),
    "age": ("older", "younger"),
    "no_orders": ("non-buyers", "buyers"),
    "age_unknown": ("age unknown", "age known"),
}
# Indicators are read as the share of a group holding the more telling side.
_INDICATOR_SIDES = {
    "no_orders": ("no orders", "ordered"),
    "age_unknown": ("age unknown", "age known"),
}
# A feature null for most of a group (recency of non-buyers) does not describe it.
_MIN_SUPPORT = 0.05
_TAG_NAMES = {
    "lifecycle_stage": "lifecycle",
    "value_tier": "value tier",
    "rfm_segment": "RFM segment",
    "interest_1": "top interest",
    "country": "country",
}


class ClusterMethod(StrEnum):
    """How customers are grouped."""

    KMEANS = "kmeans"
    GMM = "gmm"


@dataclass(frozen=True)
class FeatureDifference:
    """How one feature sets a group apart: its mean in the group and overall, raw units."""

    feature: str
    difference: float  # standardised mean difference: group mean of the standardised column
    mean: float | None
    overall: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return {
            "feature": self.feature,
            "difference": round(self.difference, 3),
            "mean": _rounded(self.mean),
            "overall": _rounded(self.overall),
        }


@dataclass(frozen=True)
class TagShare:
    """A tag value over-represented in a group: its share there and overall."""

    tag: str
    value: str
    share: float
    overall: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return {
            "tag": self.tag,
            "value": self.value,
            "share": round(self.share, 4),
            "overall": round(self.overall, 4),
        }


@dataclass(frozen=True)
class ClusterSummary:
    """One group: its id, size, words and what sets it apart."""

    id: int
    segment: str
    size: int
    share: float
    label: str
    description: str
    means: dict[str, float | None]
    distinguishing: list[FeatureDifference]
    tags: list[TagShare]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return {
            "id": self.id,
            "segment": self.segment,
            "size": self.size,
            "share": round(self.share, 4),
            "label": self.label,
            "description": self.description,
            "means": {k: _rounded(v) for k, v in self.means.items()},
            "distinguishing": [d.to_dict() for d in self.distinguishing],
            "tags": [t.to_dict() for t in self.tags],
        }


@dataclass
class ClusterResult:
    """What a clustering run chose, found and wrote.

    ``labels`` holds every customer's cluster id (1 = the largest cluster), indexed by
    ``customer_key``; ``to_dict`` leaves it out (it has a row per customer).
    """

    cluster_set: str
    method: ClusterMethod
    k: int
    seed: int
    as_of: dt.date
    built_at: dt.datetime
    customers: int
    features: list[str]
    silhouettes: dict[int, float | None]
    silhouette: float | None
    sample_size: int
    overall_means: dict[str, float | None]
    clusters: list[ClusterSummary]
    labels: pd.Series
    segment_files: list[Path] = field(default_factory=list)
    removed_files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def sizes(self) -> dict[int, int]:
        """Customers per cluster id."""
        return {c.id: c.size for c in self.clusters}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (labels left out)."""
        return {
            "cluster_set": self.cluster_set,
            "method": self.method.value,
            "k": self.k,
            "seed": self.seed,
            "as_of": self.as_of.isoformat(),
            "built_at": self.built_at.isoformat(),
            "customers": self.customers,
            "features": self.features,
            "silhouettes": {str(k): _rounded(v) for k, v in self.silhouettes.items()},
            "silhouette": _rounded(self.silhouette),
            "sample_size": self.sample_size,
            "sizes": {str(k): v for k, v in self.sizes.items()},
            "overall_means": {k: _rounded(v) for k, v in self.overall_means.items()},
            "clusters": [c.to_dict() for c in self.clusters],
            "segment_files": [str(p) for p in self.segment_files],
            "removed_files": [str(p) for p in self.removed_files],
            "warnings": self.warnings,
        }


def _rounded(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _method(method: str) -> ClusterMethod:
    try:
        return ClusterMethod(method)
    except ValueError:
        allowed = ", ".join(m.value for m in ClusterMethod)
        raise parameter_problem(
            "cluster", "method", f"unknown method {method!r}; allowed: {allowed}"
        ) from None


def _candidates(k: int | None, k_range: Iterable[int], customers: int) -> list[int]:
    """The numbers of clusters to try, each checked: at least 2, fewer than the customers."""
    ks = [k] if k is not None else sorted(dict.fromkeys(k_range))
    field_name = "k" if k is not None else "k_range"
    if not ks:
        raise parameter_problem("cluster", field_name, "no number of clusters to try")
    for value in ks:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 2:
            raise parameter_problem(
                "cluster",
                field_name,
                f"{value!r} clusters: a number of clusters is a whole number of at least 2",
            )
        if value >= customers:
            raise parameter_problem(
                "cluster",
                field_name,
                f"{value} clusters for {customers} customers: use fewer clusters than customers",
            )
    return [int(v) for v in ks]


def _fit(method: ClusterMethod, k: int, data: np.ndarray, seed: int) -> np.ndarray:
    """Hard cluster labels (0 … k-1) of ``data``; the same seed gives the same labels."""
    if method is ClusterMethod.KMEANS:
        model = KMeans(n_clusters=k, n_init=_KMEANS_STARTS, random_state=seed)
        return np.asarray(model.fit_predict(data))
    mixture = GaussianMixture(
        n_components=k,
        covariance_type="full",
        n_init=_GMM_STARTS,
        reg_covar=_GMM_VARIANCE_FLOOR,
        random_state=seed,
    )
    return np.asarray(mixture.fit(data).predict(data))


def _choose_and_fit(
    method: ClusterMethod,
    ks: list[int],
    data: np.ndarray,
    sample: np.ndarray,
    seed: int,
    *,
    chosen: bool,
) -> tuple[dict[int, float | None], int, np.ndarray, float | None]:
    """Silhouette per candidate k (fitted on the sample), the best k, its labels for
    everybody, and their silhouette on the sample. With ``chosen`` the one k is fitted.
    """
    sampled = data[sample]
    silhouettes: dict[int, float | None] = {}
    if chosen:
        best = ks[0]
    else:
        for candidate in ks:
            silhouettes[candidate] = _silhouette(sampled, _fit(method, candidate, sampled, seed))
        scored = {c: s for c, s in silhouettes.items() if s is not None}
        if not scored:
            raise parameter_problem(
                "cluster",
                "k_range",
                f"no k in {ks} split the customers into two groups or more; name k instead",
            )
        best = max(scored, key=lambda c: (scored[c], -c))  # ties: fewer clusters
    fitted = _fit(method, best, data, seed)
    silhouette = _silhouette(sampled, fitted[sample])
    if chosen:
        silhouettes[best] = silhouette
    return silhouettes, best, fitted, silhouette


def _silhouette(data: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean silhouette, or None when the labels hold a single group (undefined)."""
    if len(np.unique(labels)) < 2:
        return None
    return float(silhouette_score(data, labels))


def _number(value: float) -> str:
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _feature_words(difference: FeatureDifference, nonnegative: bool, indicator: bool) -> str:
    """``frequency 7.40 vs 2.39 average (3.1x)``; ``ordered 100% vs 37% overall``."""
    mean, overall = difference.mean or 0.0, difference.overall or 0.0
    if indicator:
        high, low = _INDICATOR_SIDES.get(
            difference.feature, (difference.feature.replace("_", " "), "not " + difference.feature)
        )
        if difference.difference < 0:
            high, mean, overall = low, 1.0 - mean, 1.0 - overall
        return f"{high} {mean:.0%} vs {overall:.0%} overall"
    name = _FEATURE_NAMES.get(difference.feature, difference.feature.replace("_", " "))
    unit = _UNITS.get(difference.feature, "")
    text = f"{name} {_number(mean)}{unit} vs {_number(overall)} average"
    if nonnegative and overall > 0:
        text += f" ({mean / overall:.1f}x)"
    return text


def _label(distinguishing: list[FeatureDifference]) -> str:
    """A short name from the most distinguishing features, e.g. ``Recent, frequent``."""
    words: list[str] = []
    for difference in distinguishing[:_LABEL_FEATURES]:
        if abs(difference.difference) < _MIN_DIFFERENCE:
            continue
        name = _FEATURE_NAMES.get(difference.feature, difference.feature.replace("_", " "))
        high, low = _FEATURE_WORDS.get(difference.feature, (f"high {name}", f"low {name}"))
        word = high if difference.difference > 0 else low
        if word not in words:
            words.append(word)
    text = ", ".join(words) or "near average"
    return text[0].upper() + text[1:]


def _over_represented(tags: pd.DataFrame, members: np.ndarray) -> list[TagShare]:
    found: list[TagShare] = []
    for column in tags.columns:
        values = tags[column]
        overall = values.value_counts(normalize=False, dropna=True) / len(values)
        inside = values[members].value_counts(normalize=False, dropna=True) / int(members.sum())
        for value, share in inside.items():
            before = float(overall.get(value, 0.0))
            if share >= _MIN_TAG_SHARE and share - before >= _MIN_TAG_GAIN:
                found.append(TagShare(str(column), str(value), float(share), before))
    found.sort(key=lambda t: (-(t.share - t.overall), t.tag, t.value))
    return found[:_MAX_TAGS]


def _summaries(
    features: BehaviourFeatures, labels: np.ndarray, cluster_set: str
) -> tuple[list[ClusterSummary], dict[str, float | None]]:
    """Describe each cluster by its largest standardised mean differences and tag shares.

    Differences are taken over the customers who have a value (``comparable``), so a group
    of non-buyers is described by ``no orders``, not by the fill value of its recency.
    """
    raw, comparable = features.described(), features.comparable()
    columns = list(features.standardised.columns)
    indicators = {c for c in columns if features.transforms[c].startswith("indicator")}
    nonnegative = {c for c in columns if not raw[c].dropna().lt(0).any()}
    overall_means = {c: _finite(raw[c].mean()) for c in columns}
    summaries = []
    for cluster_id in sorted(np.unique(labels)):
        members = labels == cluster_id
        size = int(members.sum())
        inside = comparable[members]
        supported = inside.notna().sum() >= max(1.0, _MIN_SUPPORT * size)
        differences = inside.mean().where(supported).dropna()
        means = {c: _finite(raw.loc[members, c].mean()) for c in columns}
        ranked = differences.abs().sort_values(ascending=False, kind="stable")
        chosen = [c for c in ranked.index if ranked[c] >= _MIN_DIFFERENCE][:_MAX_FEATURES]
        if not chosen and len(ranked):  # a group close to average: name its largest difference
            chosen = [ranked.index[0]]
        distinguishing = [
            FeatureDifference(str(c), float(differences[c]), means[c], overall_means[c])
            for c in chosen
        ]
        label = _label(distinguishing)
        shares = _over_represented(features.tags, members)
        details = ", ".join(
            _feature_words(d, d.feature in nonnegative, d.feature in indicators)
            for d in distinguishing
        )
        tag_words = ", ".join(
            f"{_TAG_NAMES.get(t.tag, t.tag)} '{t.value}' {t.share:.0%} vs {t.overall:.0%} overall"
            for t in shares
        )
        if tag_words:
            details = f"{details}; {tag_words}" if details else tag_words
        summaries.append(
            ClusterSummary(
                id=int(cluster_id),
                segment=f"{cluster_set}_{int(cluster_id)}",
                size=size,
                share=size / len(labels),
                label=label,
                description=f"{label}: {details}" if details else label,
                means=means,
                distinguishing=distinguishing,
                tags=shares,
            )
        )
    return summaries, overall_means


def _finite(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 1 … k, largest first (ties by the fitted number), so ids are stable."""
    fitted, counts = np.unique(labels, return_counts=True)
    order = sorted(zip(fitted, counts, strict=True), key=lambda fc: (-fc[1], fc[0]))
    mapping = {int(f): i + 1 for i, (f, _) in enumerate(order)}
    return np.array([mapping[int(v)] for v in labels], dtype="int64")


def _segment_files(project_root: Path, result: ClusterResult) -> tuple[list[Path], list[Path]]:
    """Write one segment file per cluster; remove this set's files of clusters now gone."""
    folder = project_root / SEGMENTS_FOLDER / result.cluster_set
    folder.mkdir(parents=True, exist_ok=True)
    own = re.compile(rf"^{re.escape(result.cluster_set)}_\d+\.yml$")
    written = []
    for summary in result.clusters:
        path = folder / f"{summary.segment}.yml"
        spec = {
            "name": summary.segment,
            "description": summary.description,
            "rule": {"cluster": {"set": result.cluster_set, "id": summary.id}},
        }
        header = (
            f"# Written by clustering ({result.method.value}, k={result.k}, seed {result.seed}, "
            f"profiles as of {result.as_of.isoformat()}); the next run of set "
            f"'{result.cluster_set}' replaces this file.\n"
        )
        body = yaml.safe_dump(
            spec, sort_keys=False, allow_unicode=True, default_flow_style=None, width=1000
        )
        path.write_text(header + body, encoding="utf-8")
        written.append(path)
    keep = {p.name for p in written}
    removed = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and own.match(path.name) and path.name not in keep:
            path.unlink()
            removed.append(path)
    return written, removed


def cluster_customers(
    engine: Engine,
    *,
    cluster_set: str,
    method: str = "kmeans",
    k: int | None = None,
    k_range: Iterable[int] = DEFAULT_K_RANGE,
    seed: int = 0,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    columns: Sequence[str] | None = None,
    project_root: Path | None = None,
    as_of: dt.date | None = None,
    threads: int = 1,
) -> ClusterResult:
    """Group customers by behaviour, describe each group, store them and save them as segments.

    Parameters
    ----------
    engine
        The warehouse: reads ``profiles``, replaces this set's rows of ``clusters``.
    cluster_set
        Name of the set of clusters (lower-case identifier); segments are named
        ``<cluster_set>_<id>`` with ids 1 … k, largest cluster first.
    method
        ``"kmeans"`` (k-means, k-means++ starts) or ``"gmm"`` (Gaussian mixture, full
        covariances; customers go to their most likely component).
    k
        Number of clusters; when None the best silhouette over ``k_range`` chooses.
    k_range
        Numbers of clusters to try when ``k`` is None.
    seed
        Seeds the sample, the starts and EM: the same seed on the same profiles gives the same
        labels. Recorded in ``clusters``.
    sample_size
        Candidates are fitted and scored on a seeded sample of this many customers (all of
        them when fewer); the chosen k is then fitted on everybody.
    columns
        Numeric profile columns to cluster on (default ``DEFAULT_BEHAVIOUR_COLUMNS``).
    project_root
        The project folder; when given, ``segments/<cluster_set>/<cluster_set>_<id>.yml`` is
        written per cluster and this set's files of clusters that no longer exist are removed.
    as_of
        The date the profiles must describe (default: whatever they describe); a mismatch is
        an error rather than clusters labelled with the wrong date.
    threads
        Threads for fitting and scoring. One by default: on a shared machine, threads
        waiting for busy cores made the demo's fits 2–5 times slower (measured), and one
        thread sums in the same order on every machine.

    Raises
    ------
    SpecError
        An unknown method, k below 2 or not below the number of customers, a bad name or
        column, a sample size below 2 or not above k, fewer than 1 thread.
    NotFoundError
        No profiles, or profiles of another date than ``as_of``.
    """
    # room for "_<id>": the segment names <cluster_set>_<id> stay valid segment names
    check_name("cluster", "cluster_set", cluster_set, longest=SEGMENT_NAME_LENGTH - 4)
    chosen_method = _method(method)
    if threads < 1:
        raise parameter_problem("cluster", "threads", f"{threads}: use at least 1 thread")
    if sample_size < 2:
        raise parameter_problem(
            "cluster", "sample_size", f"{sample_size}: the silhouette needs at least 2 customers"
        )
    features = load_behaviour(engine, columns=columns)
    profiles_as_of = check_as_of(features, as_of)
    data = features.standardised.to_numpy(dtype="float64")
    customers = len(data)
    ks = _candidates(k, k_range, customers)

    rng = np.random.default_rng(seed)
    if customers > sample_size:
        sample = np.sort(rng.choice(customers, size=sample_size, replace=False))
    else:
        sample = np.arange(customers)
    if len(sample) <= max(ks):
        raise parameter_problem(
            "cluster",
            "sample_size",
            f"{sample_size}: the silhouette of {max(ks)} clusters needs more customers than that",
        )
    with threadpool_limits(limits=threads):
        silhouettes, best, fitted, silhouette = _choose_and_fit(
            chosen_method, ks, data, sample, seed, chosen=k is not None
        )
    warnings: list[str] = []
    labels = _by_size(fitted)
    found = int(labels.max())
    if found < best:
        warnings.append(
            f"{best} components were fitted but only {found} hold customers; "
            f"the set has {found} clusters"
        )

    summaries, overall = _summaries(features, labels, cluster_set)
    result = ClusterResult(
        cluster_set=cluster_set,
        method=chosen_method,
        k=found,
        seed=seed,
        as_of=profiles_as_of,
        built_at=utc_now(),
        customers=customers,
        features=list(features.standardised.columns),
        silhouettes=silhouettes,
        silhouette=silhouette,
        sample_size=len(sample),
        overall_means=overall,
        clusters=summaries,
        labels=pd.Series(labels, index=features.standardised.index, name="cluster"),
        warnings=warnings,
    )
    label_of = {s.id: s.label for s in summaries}
    rows = pa.table(
        {
            "cluster_set": pa.array([cluster_set] * customers, pa.string()),
            "customer_key": pa.array(features.standardised.index.to_numpy(), pa.string()),
            "cluster": pa.array(labels, pa.int64()),
            "label": pa.array([label_of[int(v)] for v in labels], pa.string()),
            "method": pa.array([chosen_method.value] * customers, pa.string()),
            "seed": pa.array([seed] * customers, pa.int64()),
            "built_at": pa.array([result.built_at] * customers, pa.timestamp("us", tz="UTC")),
            "as_of": pa.array([profiles_as_of] * customers, pa.date32()),
        }
    )
    replace_rows(engine, CLUSTERS, CLUSTERS_SCHEMA, "cluster_set", cluster_set, rows)
    if project_root is not None:
        result.segment_files, result.removed_files = _segment_files(Path(project_root), result)
    return result
