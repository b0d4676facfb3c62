"""Identity: normalise identifiers and resolve records into one ``customer_key`` per person."""

from jingzhun.identity._build import (
    IDENTITY_MAP_TABLE,
    MERGE_LOG_TABLE,
    REVIEW_QUEUE_TABLE,
    IdentityReport,
    IdentityResolver,
)
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
from jingzhun.identity._normalize import Normalised, keyed_hash, normalize_emails, normalize_phones

__all__ = [
    "IDENTITY_MAP_TABLE",
    "MERGE_LOG_TABLE",
    "REVIEW_QUEUE_TABLE",
    "IdentifierKind",
    "IdentifierTables",
    "IdentityReport",
    "IdentityResolver",
    "IdentitySettings",
    "NodeKind",
    "Normalised",
    "Reason",
    "connected_components",
    "extract_identifiers",
    "keyed_hash",
    "node_key",
    "normalize_emails",
    "normalize_phones",
    "parse_node_key",
]
