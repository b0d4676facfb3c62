"""Identity: normalise identifiers and resolve records into one ``customer_key`` per person."""

from jingzhun.identity._build import (
    IDENTITY_MAP_SCHEMA,
    IDENTITY_MAP_TABLE,
    MERGE_LOG_TABLE,
    REVIEW_QUEUE_TABLE,
    IdentityReport,
    IdentityResolver,
)
from jingzhun.identity._columns import ColumnMap, recognise_columns
from jingzhun.identity._graph import connected_components
from jingzhun.identity._identifiers import (
    IdentifierKind,
    IdentifierTables,
    IdentitySettings,
    NodeKind,
    Reason,
    extract_identifiers,
    node_key,
    parse_node_key,
)
from jingzhun.identity._match import (
    Decision,
    MatchError,
    MatchResult,
    MatchSummary,
    MatchThresholds,
    match_file,
    match_records,
)
from jingzhun.identity._normalize import Normalised, keyed_hash, normalize_emails, normalize_phones
from jingzhun.identity._probabilistic import probabilistic_pairs

__all__ = [
    "IDENTITY_MAP_SCHEMA",
    "IDENTITY_MAP_TABLE",
    "MERGE_LOG_TABLE",
    "REVIEW_QUEUE_TABLE",
    "ColumnMap",
    "Decision",
    "IdentifierKind",
    "IdentifierTables",
    "IdentityReport",
    "IdentityResolver",
    "IdentitySettings",
    "MatchError",
    "MatchResult",
    "MatchSummary",
    "MatchThresholds",
    "NodeKind",
    "Normalised",
    "Reason",
    "connected_components",
    "extract_identifiers",
    "keyed_hash",
    "match_file",
    "match_records",
    "node_key",
    "normalize_emails",
    "normalize_phones",
    "parse_node_key",
    "probabilistic_pairs",
    "recognise_columns",
]
