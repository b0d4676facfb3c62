"""Feed the latest customer records to the splink matcher and hand its pairs to the build."""

from __future__ import annotations

from datetime import date

import ibis
import pyarrow as pa
import pyarrow.compute as pc

from jingzhun.engine import Engine
from jingzhun.identity._columns import ColumnMap
from jingzhun.identity._identifiers import IdentitySettings
from jingzhun.identity._match import MatchThresholds, match_records

# The person fields of raw_customers the matcher compares.
_FIELDS = ColumnMap(
    first_name="first_name",
    last_name="last_name",
    email="email",
    phone="phone",
    birth_date="birth_date",
    city="city",
    gender="gender",
)
_MIN_RECORDS = 2


def probabilistic_pairs(
    engine: Engine, settings: IdentitySettings, as_of: date | None = None
) -> pa.Table | None:
    """Match the latest version of every customer record; None when there is nothing to match.

    Returns node pairs (node_a_source, node_a_id, node_b_source, node_b_id, match_weight,
    match_probability, decision) for ``IdentityResolver.build``.
    """
    if not engine.exists("raw_customers"):
        return None
    customers = engine.read("raw_customers")
    cutoff = settings.cutoff(as_of)
    if cutoff is not None:
        customers = customers.filter(customers._loaded_at < cutoff)
    latest = ibis.window(
        group_by=[customers._source, customers.customer_id],
        order_by=[customers._loaded_at.desc(), customers._row.desc()],
    )
    ranked = customers.mutate(_version=ibis.row_number().over(latest))
    fields = [f for f in _FIELDS.mapped().values()]
    current = ranked.filter(ranked._version == 0).select("_source", "customer_id", *fields)
    records = engine.execute(current)
    if records.num_rows < _MIN_RECORDS:
        return None
    # One id per record across sources: the node key the graph uses.
    ids = pc.binary_join_element_wise(
        "c", records["_source"], records["customer_id"].cast(pa.string()), ":"
    )
    table = pa.table({"record_id": ids, **{f: records[f].cast(pa.string()) for f in fields}})
    result = match_records(
        table,
        id_column="record_id",
        columns=_FIELDS,
        region=settings.region,
        thresholds=MatchThresholds(
            merge=settings.merge_threshold, review=settings.review_threshold
        ),
        max_records_per_identifier=settings.max_nodes_per_identifier,
        blocklist=settings.blocklist,
    )
    pairs = result.pairs.filter(pc.not_equal(result.pairs["decision"], "no"))
    if pairs.num_rows == 0:
        return None
    left = _split(pairs["id_l"])
    right = _split(pairs["id_r"])
    return pa.table(
        {
            "node_a_source": left[0],
            "node_a_id": left[1],
            "node_b_source": right[0],
            "node_b_id": right[1],
            "match_weight": pairs["match_weight"],
            "match_probability": pairs["match_probability"],
            "decision": pairs["decision"].cast(pa.string()),
        }
    )


def _split(keys: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, pa.Array]:
    """``c:<source>:<id>`` → (source, id); source names never contain ':' (core checks)."""
    parts = pc.split_pattern(keys, ":", max_splits=2)
    return pc.list_element(parts, 1), pc.list_element(parts, 2)
