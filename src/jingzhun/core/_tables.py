"""The canonical tables every source is mapped onto (DESIGN.md: customers, events, orders,
order_items, products), with their fields, natural keys and the raw table each lands in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa


class FieldType(StrEnum):
    """Logical column types a source column can be converted to."""

    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"  # money: decimal(18, 4), exact
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"  # stored in UTC
    JSON = "json"  # stored as JSON text


# How each logical type is stored: the one map the engine, ingest and the generator share.
ARROW_TYPES: dict[FieldType, pa.DataType] = {
    FieldType.STRING: pa.string(),
    FieldType.INTEGER: pa.int64(),
    FieldType.DECIMAL: pa.decimal128(18, 4),
    FieldType.FLOAT: pa.float64(),
    FieldType.BOOLEAN: pa.bool_(),
    FieldType.DATE: pa.date32(),
    FieldType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    FieldType.JSON: pa.string(),
}


class Target(StrEnum):
    """Where a source's rows go. ``order_lines`` is one row per line with the order's header
    repeated (the shape of most till and invoice exports); it fills orders, order_items and,
    where mapped, customers and products.
    """

    CUSTOMERS = "customers"
    EVENTS = "events"
    ORDERS = "orders"
    ORDER_ITEMS = "order_items"
    ORDER_LINES = "order_lines"
    PRODUCTS = "products"


@dataclass(frozen=True)
class Field:
    """One canonical column."""

    name: str
    type: FieldType
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class TableContract:
    """A canonical table: its fields, the natural key that makes loads idempotent, and whether
    changed records are kept as new versions (customers, products) or are immutable facts.
    """

    name: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    versioned: bool = False

    @property
    def raw_table(self) -> str:
        """Name of the warehouse table the ingest stage writes."""
        return f"raw_{self.name}"

    def field(self, name: str) -> Field:
        """Look up a field by name."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> tuple[str, ...]:
        """Names of every canonical field, in order."""
        return tuple(f.name for f in self.fields)


S, INT, D, F, B, DT, TS, J = (
    FieldType.STRING,
    FieldType.INTEGER,
    FieldType.DECIMAL,
    FieldType.FLOAT,
    FieldType.BOOLEAN,
    FieldType.DATE,
    FieldType.TIMESTAMP,
    FieldType.JSON,
)

CUSTOMERS = TableContract(
    "customers",
    (
        Field("customer_id", S, True, "the source system's id for the customer"),
        Field("email", S),
        Field("phone", S),
        Field("first_name", S),
        Field("last_name", S),
        Field("birth_date", DT),
        Field("gender", S),
        Field("city", S),
        Field("country", S),
        Field("timezone", S, description="IANA time zone of the customer"),
        Field("signup_at", TS),
        Field("email_consent", B),
        Field("sms_consent", B),
        Field("push_consent", B),
        Field("attributes", J, description="any further attributes, as a JSON object"),
    ),
    key=("customer_id",),
    versioned=True,
)

EVENTS = TableContract(
    "events",
    (
        Field("event_id", S, description="unique id; derived from the row's content when absent"),
        Field("event_type", S, True, "track/identify/page/alias or a named action"),
        Field("occurred_at", TS, True),
        Field("customer_id", S, description="known customer id, when the visitor is known"),
        Field("anonymous_id", S, description="cookie or device id"),
        Field("session_id", S),
        Field("channel", S, description="web, app, store, email, ..."),
        Field("sku", S, description="product the event is about, if any"),
        Field("properties", J),
    ),
    key=("event_id",),
)

ORDERS = TableContract(
    "orders",
    (
        Field("order_id", S, True),
        Field("customer_id", S, description="empty for anonymous (guest) orders"),
        Field("ordered_at", TS, True),
        Field("is_return", B, description="a return or cancellation, with negative quantities"),
        Field("total_amount", D),
        Field("currency", S),
        Field("channel", S),
        Field("store_id", S),
        Field("country", S),
    ),
    key=("order_id",),
)

ORDER_ITEMS = TableContract(
    "order_items",
    (
        Field("order_id", S, True),
        Field("line_number", INT, description="position in the order; from file order if absent"),
        Field("sku", S, True),
        Field("product_name", S),
        Field("quantity", INT, True),
        Field("unit_price", D, True),
        Field("amount", D, description="quantity x unit_price unless mapped"),
        Field("currency", S),
        Field("is_return", B),
    ),
    key=("order_id", "line_number"),
)

PRODUCTS = TableContract(
    "products",
    (
        Field("sku", S, True),
        Field("name", S),
        Field("category", S),
        Field("brand", S),
        Field("price", D),
        Field("currency", S),
    ),
    key=("sku",),
    versioned=True,
)

# order_lines: the union of an order's header and its items, plus optional customer and
# product attributes that travel on every line.
ORDER_LINES = TableContract(
    "order_lines",
    (
        *ORDERS.fields,
        *(f for f in ORDER_ITEMS.fields if f.name not in {"order_id", "currency", "is_return"}),
        Field("category", S),
        Field("brand", S),
        Field("email", S),
        Field("phone", S),
    ),
    key=("order_id", "line_number"),
)

CONTRACTS: dict[Target, TableContract] = {
    Target.CUSTOMERS: CUSTOMERS,
    Target.EVENTS: EVENTS,
    Target.ORDERS: ORDERS,
    Target.ORDER_ITEMS: ORDER_ITEMS,
    Target.ORDER_LINES: ORDER_LINES,
    Target.PRODUCTS: PRODUCTS,
}

# Tables that exist in the warehouse (order_lines is a source shape, not a table).
STORED_TABLES: tuple[TableContract, ...] = (CUSTOMERS, EVENTS, ORDERS, ORDER_ITEMS, PRODUCTS)

# Columns the ingest stage adds to every raw row: where it came from and when.
LINEAGE_FIELDS: tuple[Field, ...] = (
    Field("_source", S, True, "source spec name"),
    Field("_file", S, True, "file path as given in the source spec"),
    Field("_row", INT, True, "1-based data row in the file (first row after a CSV header is 1)"),
    Field("_batch_id", S, True, "one id per loaded file"),
    Field("_loaded_at", TS, True),
    Field(
        "_row_hash", S, False, "hash of the mapped values (versioned tables); versions differ in it"
    ),
)
