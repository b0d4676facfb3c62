"""Measurement: the overview figures of the warehouse, its HTML report, and experiments.

``overview(engine, currency=...)`` computes customers, orders, revenue, returns and their
breakdowns from the raw tables as Ibis expressions (the same on DuckDB and Spark);
``write_overview_report`` turns them into one self-contained, offline HTML page.
``analyze_experiment`` compares each arm of a randomised experiment with its control (lifts,
intervals, p-values, the sample-ratio check); ``holdout_incrementality`` does the same for a
campaign against its holdout.
"""

from jingzhun.measure._experiments import (
    DEFAULT_TAU,
    SRM_ALPHA,
    ArmComparison,
    ComparisonMethod,
    Correction,
    ExperimentReport,
    HoldoutIncrementality,
    MetricKind,
    SampleSize,
    SequentialResult,
    SrmCheck,
    adjust_p_values,
    analyze_experiment,
    compare_means,
    compare_proportion_counts,
    compare_proportions,
    cuped,
    holdout_incrementality,
    metric_kind,
    sample_size_means,
    sample_size_proportions,
    sequential_test,
    srm_check,
)
from jingzhun.measure._overview import (
    ORDER_COUNT_BUCKETS,
    TOP_N,
    UNCATEGORISED,
    UNKNOWN_COUNTRY,
    CountFigure,
    MonthFigures,
    Overview,
    RankedBy,
    RankedFigure,
    overview,
)
from jingzhun.measure._report import write_overview_report

__all__ = [
    "DEFAULT_TAU",
    "ORDER_COUNT_BUCKETS",
    "SRM_ALPHA",
    "TOP_N",
    "UNCATEGORISED",
    "UNKNOWN_COUNTRY",
    "ArmComparison",
    "ComparisonMethod",
    "Correction",
    "CountFigure",
    "ExperimentReport",
    "HoldoutIncrementality",
    "MetricKind",
    "MonthFigures",
    "Overview",
    "RankedBy",
    "RankedFigure",
    "SampleSize",
    "SequentialResult",
    "SrmCheck",
    "adjust_p_values",
    "analyze_experiment",
    "compare_means",
    "compare_proportion_counts",
    "compare_proportions",
    "cuped",
    "holdout_incrementality",
    "metric_kind",
    "overview",
    "sample_size_means",
    "sample_size_proportions",
    "sequential_test",
    "srm_check",
    "write_overview_report",
]
