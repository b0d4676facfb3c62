"""What the recommenders learn from: purchases per customer and item as of a date, and the
item catalogue with categories, names and the in-stock rule.

Definitions:

- A *purchase* is a sales line (not a return) of an order of a known customer, ordered as of
  ``as_of`` (``jingzhun.profile.AsOf``: before midnight UTC after the date; rows loaded after
  it count only with ``include_late_loads``). Lines of one order and SKU are added up: one
  purchase per (order, item), its quantity the sum.
- A *return* is a return line (its own flag, its order's flag or a negative quantity).
- An *item* is a SKU (``item_id`` = the source's product id); the same SKU in two sources is
  one item, as ``jingzhun.profile.product_categories`` has it.
- *In stock on* ``as_of``: the products contract has no stock field, so an item counts as in
  stock when it sold (to anybody, guests included) in the ``stock_days`` days up to
  ``as_of``, or when its first product record was loaded in those days (a new listing not
  sold yet; not with ``include_late_loads``, where load times say nothing about listings).
- A customer's *source id* is the (source, customer id) of their latest order; customers
  without orders get their first customer record's id (identity's nodes).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from functools import cached_property

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import scipy.sparse as sp

from jingzhun.core import CONTRACTS, NotFoundError, Target
from jingzhun.engine import Engine
from jingzhun.profile import AsOf, customer_orders, identity_snapshot, product_categories

DEFAULT_STOCK_DAYS = 90
_ORDER_ITEMS = CONTRACTS[Target.ORDER_ITEMS].raw_table
_ORDERS = CONTRACTS[Target.ORDERS].raw_table
_PRODUCTS = CONTRACTS[Target.PRODUCTS].raw_table


@dataclass(frozen=True)
class Interactions:
    """Purchases and returns of every customer as of a date, coded for sparse matrices.

    ``customers`` (``customer_key, customer_id, source``) and ``catalogue`` (``item_id,
    name, category, brand, price, last_sold_days, buyers, in_stock``) are indexed by code:
    row ``c`` of a customer x item matrix is ``customers.iloc[c]``. ``purchases`` has one row
    per (order, item) of a sales line: ``customer, item, order`` (codes), ``age_days`` (0 =
    bought on ``as_of``) and ``quantity``; ``returns`` one row per returned (customer, item,
    day). ``sales_days`` holds the distinct (item, age_days) of every sale, guests included,
    for the in-stock rule.
    """

    as_of: dt.date
    customers: pd.DataFrame
    catalogue: pd.DataFrame
    purchases: pd.DataFrame
    returns: pd.DataFrame
    sales_days: pd.DataFrame
    stock_days: int = DEFAULT_STOCK_DAYS
    listed_days: pd.Series = field(default_factory=lambda: pd.Series(dtype="float64"))

    @property
    def n_customers(self) -> int:
        """Customers known (with or without purchases)."""
        return len(self.customers)

    @property
    def n_items(self) -> int:
        """Items in the catalogue (sold or listed)."""
        return len(self.catalogue)

    @cached_property
    def customer_codes(self) -> pd.Series:
        """``customer_key`` -> row code."""
        keys = self.customers["customer_key"].to_numpy(dtype=object)
        return pd.Series(np.arange(len(keys)), index=pd.Index(keys, dtype=object))

    @cached_property
    def item_codes(self) -> pd.Series:
        """``item_id`` -> column code."""
        ids = self.catalogue["item_id"].to_numpy(dtype=object)
        return pd.Series(np.arange(len(ids)), index=pd.Index(ids, dtype=object))

    @cached_property
    def item_ids(self) -> np.ndarray:
        """Item ids as a plain object array, by code."""
        return self.catalogue["item_id"].to_numpy(dtype=object)

    @cached_property
    def customer_keys(self) -> np.ndarray:
        """Customer keys as a plain object array, by code."""
        return self.customers["customer_key"].to_numpy(dtype=object)

    @cached_property
    def buyers(self) -> np.ndarray:
        """Codes of the customers with at least one purchase, sorted."""
        return np.unique(self.purchases["customer"].to_numpy())

    def matrix(self, weight: str = "orders", half_life_days: float | None = None) -> sp.csr_matrix:
        """Customer x item matrix (float32) of the purchases.

        ``weight``: ``orders`` (orders holding the item), ``binary`` (1 when ever bought),
        ``quantity`` (units). ``half_life_days`` weighs each order by ``0.5 ** (age /
        half-life)`` first (``orders`` and ``quantity`` only).
        """
        p = self.purchases
        shape = (self.n_customers, self.n_items)
        if weight == "binary":
            pairs = p[["customer", "item"]].drop_duplicates()
            data = np.ones(len(pairs), dtype=np.float32)
            m = sp.csr_matrix((data, (pairs["customer"], pairs["item"])), shape=shape)
            return m
        if weight == "orders":
            values = np.ones(len(p), dtype=np.float64)
        elif weight == "quantity":
            values = p["quantity"].to_numpy(dtype=np.float64)
        else:
            raise ValueError(f"weight must be orders, binary or quantity, not {weight!r}")
        if half_life_days is not None:
            values = values * np.power(0.5, p["age_days"].to_numpy() / half_life_days)
        m = sp.csr_matrix((values, (p["customer"].to_numpy(), p["item"].to_numpy())), shape=shape)
        m.sum_duplicates()
        return m.astype(np.float32)

    @cached_property
    def bought(self) -> sp.csr_matrix:
        """Binary customer x item matrix of everything each customer bought."""
        return self.matrix("binary")

    @cached_property
    def item_buyers(self) -> np.ndarray:
        """Distinct customers who bought each item."""
        return np.asarray(self.bought.sum(axis=0)).ravel()

    def until(self, day: dt.date) -> Interactions:
        """The same data as it stood on an earlier ``day``: later purchases and returns
        dropped, ages counted from ``day``, sales figures and the in-stock rule redone.
        """
        shift = (self.as_of - day).days
        if shift < 0:
            raise ValueError(f"{day} is after the data's date {self.as_of}")

        def older(frame: pd.DataFrame) -> pd.DataFrame:
            kept = frame[frame["age_days"] >= shift].copy()
            kept["age_days"] = kept["age_days"] - shift
            return kept.reset_index(drop=True)

        listed = self.listed_days - shift
        listed = listed[listed >= 0]
        earlier = replace(
            self,
            as_of=day,
            purchases=older(self.purchases),
            returns=older(self.returns),
            sales_days=older(self.sales_days),
            listed_days=listed,
        )
        return earlier.with_sales_figures()

    def after(self, day: dt.date) -> pd.DataFrame:
        """Purchases made after ``day`` (the test side of a time split): customer and item
        codes with the day they were bought on.
        """
        shift = (self.as_of - day).days
        later = self.purchases[self.purchases["age_days"] < shift]
        return later[["customer", "item", "age_days"]].reset_index(drop=True)

    def with_sales_figures(self) -> Interactions:
        """A copy whose catalogue has ``last_sold_days``, ``buyers`` and ``in_stock`` as of
        ``as_of``.
        """
        catalogue = self.catalogue.copy()
        n = len(catalogue)
        last = np.full(n, np.nan)
        if len(self.sales_days):
            per_item = self.sales_days.groupby("item")["age_days"].min()
            last[per_item.index.to_numpy()] = per_item.to_numpy()
        catalogue["last_sold_days"] = last
        pairs = self.purchases[["customer", "item"]].drop_duplicates()
        catalogue["buyers"] = np.bincount(pairs["item"].to_numpy(), minlength=n)
        sold_recently = np.nan_to_num(last, nan=np.inf) < self.stock_days
        listed = np.zeros(n, dtype=bool)
        if len(self.listed_days):
            codes = self.listed_days.index.to_numpy()
            listed[codes] = self.listed_days.to_numpy() < self.stock_days
        catalogue["in_stock"] = sold_recently | listed
        fresh = replace(self, catalogue=catalogue)
        return fresh


def _orders_of_customers(engine: Engine, day: AsOf) -> ir.Table:
    identity = identity_snapshot(engine, day.day)
    orders = customer_orders(engine, day, identity)
    if orders is None:
        raise NotFoundError("no orders in the warehouse: load an orders source first")
    return orders


def _order_items(engine: Engine, day: AsOf) -> ir.Table:
    if not engine.exists(_ORDER_ITEMS):
        raise NotFoundError(
            "no order lines in the warehouse (raw_order_items): recommendations learn from "
            "what customers bought; load an order_lines or order_items source"
        )
    return day.loaded(engine.read(_ORDER_ITEMS))


def _purchase_lines(engine: Engine, day: AsOf, orders: ir.Table) -> pd.DataFrame:
    items = _order_items(engine, day)
    items = items.select(
        li_source=items._source,
        li_order_id=items.order_id,
        sku=items.sku,
        quantity=items.quantity,
        li_return=items.is_return.fill_null(False) | (items.quantity < 0),
    )
    joined = orders.join(
        items, [orders._source == items.li_source, orders.order_id == items.li_order_id]
    )
    joined = joined.filter(joined.sku.notnull())
    joined = joined.mutate(line_return=joined.is_return | joined.li_return)
    lines = joined.group_by(
        ["customer_key", "_source", "order_id", "age_days", "sku", "line_return"]
    ).aggregate(quantity=joined.quantity.abs().sum())
    lines = lines.rename(is_return="line_return")
    return engine.execute(lines).to_pandas()


def _sale_days(engine: Engine, day: AsOf) -> pd.DataFrame:
    """Distinct (sku, age_days) of every sales line as of the date, guests included."""
    items = _order_items(engine, day)
    raw_orders = day.loaded(engine.read(_ORDERS))
    raw_orders = raw_orders.filter(raw_orders.ordered_at < day.end)
    sales = items.filter(~(items.is_return.fill_null(False) | (items.quantity < 0)))
    joined = sales.join(
        raw_orders,
        [sales._source == raw_orders._source, sales.order_id == raw_orders.order_id],
    )
    joined = joined.filter(~joined.is_return.fill_null(False) & joined.sku.notnull())
    days = joined.select(sku=joined.sku, age_days=day.age_days(joined.ordered_at)).distinct()
    return engine.execute(days).to_pandas()


def _products(engine: Engine, day: AsOf) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Latest product record per SKU (name, brand, price; category from the latest record
    naming one) and the day each SKU was first listed (load time of its first record).
    """
    empty = pd.DataFrame({"sku": [], "name": [], "brand": [], "price": [], "category": []})
    if not engine.exists(_PRODUCTS):
        return empty, pd.DataFrame({"sku": [], "listed_days": []})
    products = day.loaded(engine.read(_PRODUCTS))
    newest_first = ibis.row_number().over(
        group_by=products.sku,
        order_by=[
            products._loaded_at.desc(),
            products._batch_id.desc(),
            products._row.desc(),
            products._source,
        ],
    )
    ranked = products.mutate(_jz_version=newest_first)
    latest = ranked.filter(ranked._jz_version == 0).select(
        "sku", "name", "brand", price=ranked.price.cast("float64")
    )
    categories = product_categories(engine, day)
    if categories is not None:
        latest = latest.left_join(categories, latest.sku == categories.cat_sku).drop("cat_sku")
    else:
        latest = latest.mutate(category=ibis.null("string"))
    first_loaded = products.group_by("sku").aggregate(first_loaded=products._loaded_at.min())
    listed = first_loaded.select(
        "sku", listed_days=day.age_days(first_loaded.first_loaded).cast("float64")
    )
    return engine.execute(latest).to_pandas(), engine.execute(listed).to_pandas()


def _customer_ids(engine: Engine, day: AsOf, orders: ir.Table) -> pd.DataFrame:
    """(customer_key, customer_id, source): the id of the latest order, else the first
    customer record identity links to the key.
    """
    raw_orders = engine.read(_ORDERS)
    ids = raw_orders.select(
        ro_source=raw_orders._source,
        ro_order_id=raw_orders.order_id,
        customer_id=raw_orders.customer_id,
    )
    keyed = orders.join(ids, [orders._source == ids.ro_source, orders.order_id == ids.ro_order_id])
    latest_first = ibis.row_number().over(
        group_by=keyed.customer_key,
        order_by=[keyed.ordered_at.desc(), keyed._source.desc(), keyed.order_id.desc()],
    )
    ranked = keyed.mutate(_jz_latest=latest_first)
    buyers = ranked.filter(ranked._jz_latest == 0).select(
        "customer_key", "customer_id", source=ranked._source
    )
    identity = identity_snapshot(engine, day.day)
    nodes = identity.nodes.filter(identity.nodes.node_kind == "customer")
    first_node = ibis.row_number().over(
        group_by=nodes.customer_key, order_by=[nodes.node_source, nodes.node_id]
    )
    nodes = nodes.mutate(_jz_first=first_node)
    known = nodes.filter(nodes._jz_first == 0).select(
        "customer_key", customer_id=nodes.node_id, source=nodes.node_source
    )
    from_orders = engine.execute(buyers).to_pandas()
    from_nodes = engine.execute(known).to_pandas()
    both = pd.concat([from_orders, from_nodes], ignore_index=True)
    both = both.drop_duplicates("customer_key", keep="first")
    return both.sort_values("customer_key", ignore_index=True)


def load_interactions(
    engine: Engine,
    as_of: dt.date,
    *,
    include_late_loads: bool = False,
    stock_days: int = DEFAULT_STOCK_DAYS,
) -> Interactions:
    """Purchases, returns, customers and the catalogue as they stood on ``as_of``.

    Parameters
    ----------
    engine
        The warehouse (raw tables loaded; ``identity_map`` is used when it exists, else one
        customer per source customer id).
    as_of
        Orders before midnight UTC after this date count.
    include_late_loads
        Count rows loaded after ``as_of`` (a backfill of history, as with Online Retail).
    stock_days
        An item sold (or first listed) within this many days is in stock.
    """
    day = AsOf(as_of, include_late_loads)
    orders = _orders_of_customers(engine, day)
    lines = _purchase_lines(engine, day, orders)
    if lines.empty:
        hint = (
            ""
            if include_late_loads
            else "; if the history was loaded after it happened (a backfill), set "
            "include_late_loads: true in models/recommend.yml"
        )
        raise NotFoundError(
            f"no order lines of known customers up to {as_of.isoformat()}: pick a later "
            f"date, or check that orders name customers and have lines{hint}"
        )
    products, listed = _products(engine, day)
    if include_late_loads:
        listed = listed.iloc[0:0]
    return _assemble(
        as_of,
        lines,
        products=products,
        listed=listed,
        sales_days=_sale_days(engine, day),
        customers=_customer_ids(engine, day, orders),
        stock_days=stock_days,
    )


def _assemble(
    as_of: dt.date,
    lines: pd.DataFrame,
    *,
    products: pd.DataFrame,
    listed: pd.DataFrame,
    sales_days: pd.DataFrame,
    customers: pd.DataFrame,
    stock_days: int,
) -> Interactions:
    """Code the lines (``customer_key, _source, order_id, age_days, sku, is_return,
    quantity``) and the catalogue into an ``Interactions``.

    The lines are put in one order first and orders are coded in the order of their ids: the
    warehouse hands grouped rows back in any order, and the codes break ties between orders of
    one day, so without this two loads of the same data fitted different models.
    """
    lines = lines.sort_values(
        ["customer_key", "_source", "order_id", "sku", "is_return"], ignore_index=True
    )
    item_ids = np.unique(
        np.concatenate(
            [
                lines["sku"].to_numpy(dtype=object),
                products["sku"].to_numpy(dtype=object),
                sales_days["sku"].to_numpy(dtype=object),
            ]
        ).astype(str)
    ).astype(object)
    catalogue = pd.DataFrame({"item_id": item_ids})
    catalogue = catalogue.merge(
        products.rename(columns={"sku": "item_id"}), on="item_id", how="left"
    )
    for column in ("name", "category", "brand", "price"):
        if column not in catalogue:
            catalogue[column] = None
    catalogue["name"] = catalogue["name"].fillna(catalogue["item_id"])
    item_codes = pd.Series(np.arange(len(item_ids)), index=pd.Index(item_ids, dtype=object))

    keys = np.unique(
        np.concatenate(
            [
                customers["customer_key"].to_numpy(dtype=object),
                lines["customer_key"].to_numpy(dtype=object),
            ]
        ).astype(str)
    ).astype(object)
    customers = pd.DataFrame({"customer_key": keys}).merge(customers, on="customer_key", how="left")
    customer_codes = pd.Series(np.arange(len(keys)), index=pd.Index(keys, dtype=object))

    customer = customer_codes.reindex(lines["customer_key"].to_numpy(dtype=object)).to_numpy()
    item = item_codes.reindex(lines["sku"].to_numpy(dtype=object)).to_numpy()
    order_key = lines["_source"].astype(str) + "\x1f" + lines["order_id"].astype(str)
    order = pd.factorize(order_key, sort=True)[0]
    coded = pd.DataFrame(
        {
            "customer": customer.astype(np.int64),
            "item": item.astype(np.int64),
            "order": order.astype(np.int64),
            "age_days": lines["age_days"].to_numpy(dtype=np.int64),
            "quantity": lines["quantity"].to_numpy(dtype=np.float64),
            "is_return": lines["is_return"].to_numpy(dtype=bool),
        }
    )
    purchases = coded[~coded["is_return"]].drop(columns="is_return").reset_index(drop=True)
    returns = (
        coded.loc[coded["is_return"], ["customer", "item", "age_days"]]
        .drop_duplicates()
        .reset_index(drop=True)
    )
    sales = pd.DataFrame(
        {
            "item": item_codes.reindex(sales_days["sku"].to_numpy(dtype=object)).to_numpy(
                dtype=np.int64
            ),
            "age_days": sales_days["age_days"].to_numpy(dtype=np.int64),
        }
    )
    listed_days = pd.Series(dtype="float64")
    if len(listed):
        listed_days = pd.Series(
            listed["listed_days"].to_numpy(dtype=np.float64),
            index=item_codes.reindex(listed["sku"].to_numpy(dtype=object)).to_numpy(),
        )
    interactions = Interactions(
        as_of=as_of,
        customers=customers,
        catalogue=catalogue,
        purchases=purchases,
        returns=returns,
        sales_days=sales,
        stock_days=stock_days,
        listed_days=listed_days,
    )
    return interactions.with_sales_figures()


def interactions_from_frame(
    lines: pd.DataFrame,
    as_of: dt.date,
    *,
    products: pd.DataFrame | None = None,
    customers: list[str] | None = None,
    stock_days: int = DEFAULT_STOCK_DAYS,
) -> Interactions:
    """``Interactions`` from a plain table of order lines, without a warehouse.

    Parameters
    ----------
    lines
        ``customer_key, item_id, order_id, ordered_on`` (a date) and optionally
        ``quantity`` (default 1) and ``is_return`` (default False). Lines after ``as_of``
        are left out.
    as_of
        The date the data stands on.
    products
        ``item_id`` and any of ``name, category, brand, price``.
    customers
        Further customer keys without purchases.
    stock_days
        An item sold within this many days is in stock.
    """
    day = pd.to_datetime(lines["ordered_on"]).dt.date
    age = np.array([(as_of - d).days for d in day], dtype=np.int64)
    kept = lines[age >= 0]
    age = age[age >= 0]
    frame = pd.DataFrame(
        {
            "customer_key": kept["customer_key"].astype(str).to_numpy(dtype=object),
            "_source": "frame",
            "order_id": kept["order_id"].astype(str).to_numpy(dtype=object),
            "age_days": age,
            "sku": kept["item_id"].astype(str).to_numpy(dtype=object),
            "is_return": kept["is_return"].to_numpy(dtype=bool)
            if "is_return" in kept
            else np.zeros(len(kept), dtype=bool),
            "quantity": kept["quantity"].abs().to_numpy(dtype=np.float64)
            if "quantity" in kept
            else np.ones(len(kept)),
        }
    )
    frame = (
        frame.groupby(["customer_key", "_source", "order_id", "age_days", "sku", "is_return"])[
            "quantity"
        ]
        .sum()
        .reset_index()
    )
    catalogue = (
        products.rename(columns={"item_id": "sku"}).assign(sku=lambda t: t["sku"].astype(str))
        if products is not None
        else pd.DataFrame({"sku": []})
    )
    sales = frame.loc[~frame["is_return"], ["sku", "age_days"]].drop_duplicates()
    known = pd.DataFrame({"customer_key": [str(c) for c in (customers or [])]})
    known["customer_id"] = known["customer_key"]
    known["source"] = "frame"
    bought = pd.DataFrame({"customer_key": frame["customer_key"].unique()})
    bought["customer_id"] = bought["customer_key"]
    bought["source"] = "frame"
    return _assemble(
        as_of,
        frame,
        products=catalogue,
        listed=pd.DataFrame({"sku": [], "listed_days": []}),
        sales_days=sales,
        customers=pd.concat([bought, known], ignore_index=True).drop_duplicates("customer_key"),
        stock_days=stock_days,
    )


def latest_order_date(engine: Engine) -> dt.date:
    """The UTC date of the latest order in the warehouse (the default training date)."""
    if not engine.exists(_ORDERS):
        raise NotFoundError("no orders in the warehouse: load an orders source first")
    orders = engine.read(_ORDERS)
    latest = engine.scalar(orders.ordered_at.max())
    if latest is None:
        raise NotFoundError("the orders table is empty: load an orders source first")
    day: dt.date = latest.astimezone(dt.UTC).date()
    return day
