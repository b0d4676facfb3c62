"""Segments: a rule language compiled to SQL, counts, explanations, snapshots, clusters.

``load_segment_specs(folder)`` reads ``segments/*.yml`` into ``SegmentSpec`` trees;
``compile_segment(engine, spec, as_of=...)`` turns one into Ibis expressions for the engine
(``CompiledSegment``); ``build_segments`` records membership over time.
"""

from jingzhun.segments._audience import (
    ExplainStep,
    Explanation,
    count_members,
    explain,
    export_members,
    preview,
)
from jingzhun.segments._build import (
    SEGMENT_CHANGES,
    SEGMENT_MEMBERS,
    SEGMENT_SNAPSHOTS,
    SegmentsReport,
    build_segments,
    members_at,
)
from jingzhun.segments._cluster import ClusterMethod, ClusterResult, cluster_customers
from jingzhun.segments._compile import (
    CLUSTERS,
    LOOKALIKE_SCORES,
    SCORES,
    Catalog,
    CompiledSegment,
    anniversary_days,
    compile_segment,
    sample_bucket,
)
from jingzhun.segments._features import behaviour_features
from jingzhun.segments._lookalike import (
    LookalikeEvaluation,
    LookalikeMethod,
    LookalikeResult,
    evaluate_lookalike,
    lookalike,
)
from jingzhun.segments._spec import (
    Condition,
    Measure,
    Op,
    PredicateKind,
    SegmentSpec,
    Window,
    dependency_order,
    load_segment_specs,
    parse_segment,
)

__all__ = [
    "CLUSTERS",
    "LOOKALIKE_SCORES",
    "SCORES",
    "SEGMENT_CHANGES",
    "SEGMENT_MEMBERS",
    "SEGMENT_SNAPSHOTS",
    "Catalog",
    "ClusterMethod",
    "ClusterResult",
    "CompiledSegment",
    "Condition",
    "ExplainStep",
    "Explanation",
    "LookalikeEvaluation",
    "LookalikeMethod",
    "LookalikeResult",
    "Measure",
    "Op",
    "PredicateKind",
    "SegmentSpec",
    "SegmentsReport",
    "Window",
    "anniversary_days",
    "behaviour_features",
    "build_segments",
    "cluster_customers",
    "compile_segment",
    "count_members",
    "dependency_order",
    "evaluate_lookalike",
    "explain",
    "export_members",
    "load_segment_specs",
    "lookalike",
    "members_at",
    "parse_segment",
    "preview",
    "sample_bucket",
]
