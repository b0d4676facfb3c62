"""Recommendations: what to offer each customer, evaluated offline.

``fit_recommendations(engine, as_of=...)`` learns from the purchases up to a date and writes
every customer's top N (``recommendations``) and every item's similar items
(``similar_items``). The recommenders follow scikit-learn (``fit(interactions)``, then
``recommend`` / ``similar_items``): ``Popularity``, ``ItemCooccurrence``, ``ImplicitALS``,
``AssociationRules``, ``ContentBased``, ``Repurchase``, ``Replenishment`` and ``Blend``.
``BusinessRules`` keep out what was just bought or returned, what is out of stock, and too
many items of one category. ``time_split`` + ``evaluate`` measure HR@10, NDCG@10, coverage
and novelty on purchases after a date.
"""

from jingzhun.recommend._build import (
    POPULAR_DAYS,
    RecommendReport,
    explain_customer,
    fit_recommendations,
    resolve_customer,
    stored_recommendations,
)
from jingzhun.recommend._data import (
    DEFAULT_STOCK_DAYS,
    Interactions,
    interactions_from_frame,
    latest_order_date,
    load_interactions,
)
from jingzhun.recommend._evaluate import (
    BASELINES,
    DEFAULT_METHODS,
    Evaluation,
    EvaluationMode,
    MethodScores,
    TimeSplit,
    evaluate,
    ndcg_at_k,
    time_split,
)
from jingzhun.recommend._recommenders import (
    FEATURES,
    SCOPES,
    AssociationRules,
    Blend,
    Candidates,
    ContentBased,
    ImplicitALS,
    ItemCooccurrence,
    Method,
    Popularity,
    Recommender,
    Replenishment,
    Repurchase,
    make_recommender,
    replenishment_features,
)
from jingzhun.recommend._rules import (
    SETTINGS_FILE,
    BusinessRules,
    RecommendSettings,
    allowed_items,
    cap_per_category,
    excluded_pairs,
    load_recommend_settings,
    recommend_with_rules,
)
from jingzhun.recommend._store import (
    EXPORT_COLUMNS,
    RECOMMENDATIONS,
    RECOMMENDATIONS_SCHEMA,
    SIMILAR_ITEMS,
    SIMILAR_ITEMS_SCHEMA,
    export_recommendations,
    model_info,
    read_recommendations,
    read_similar_items,
)

__all__ = [
    "BASELINES",
    "DEFAULT_METHODS",
    "DEFAULT_STOCK_DAYS",
    "EXPORT_COLUMNS",
    "FEATURES",
    "POPULAR_DAYS",
    "RECOMMENDATIONS",
    "RECOMMENDATIONS_SCHEMA",
    "SCOPES",
    "SETTINGS_FILE",
    "SIMILAR_ITEMS",
    "SIMILAR_ITEMS_SCHEMA",
    "AssociationRules",
    "Blend",
    "BusinessRules",
    "Candidates",
    "ContentBased",
    "Evaluation",
    "EvaluationMode",
    "ImplicitALS",
    "Interactions",
    "ItemCooccurrence",
    "Method",
    "MethodScores",
    "Popularity",
    "RecommendReport",
    "RecommendSettings",
    "Recommender",
    "Replenishment",
    "Repurchase",
    "TimeSplit",
    "allowed_items",
    "cap_per_category",
    "evaluate",
    "excluded_pairs",
    "explain_customer",
    "export_recommendations",
    "fit_recommendations",
    "interactions_from_frame",
    "latest_order_date",
    "load_interactions",
    "load_recommend_settings",
    "make_recommender",
    "model_info",
    "ndcg_at_k",
    "read_recommendations",
    "read_similar_items",
    "recommend_with_rules",
    "replenishment_features",
    "resolve_customer",
    "stored_recommendations",
    "time_split",
]
