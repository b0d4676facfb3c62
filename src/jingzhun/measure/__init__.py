"""Measurement: the overview figures of the warehouse and the HTML report that shows them.

``overview(engine, currency=...)`` computes customers, orders, revenue, returns and their
breakdowns from the raw tables as Ibis expressions (the same on DuckDB and Spark);
``write_overview_report`` turns them into one self-contained, offline HTML page.
"""

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
    "ORDER_COUNT_BUCKETS",
    "TOP_N",
    "UNCATEGORISED",
    "UNKNOWN_COUNTRY",
    "CountFigure",
    "MonthFigures",
    "Overview",
    "RankedBy",
    "RankedFigure",
    "overview",
    "write_overview_report",
]
