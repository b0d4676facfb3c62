"""Who buys what when: BG/NBD purchase processes, baskets, discounts and returns.

Each person buys as a Poisson process at their own rate, bent by the calendar's demand, and
drops out after each purchase with their own probability (BG/NBD). Given the number of purchases
in the window, the purchase times are ordered uniform draws on the demand clock, made directly in
order from exponential spacings, so no sort per customer is needed to find where one stopped.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa

from jingzhun.datagen._calendar import US_PER_DAY, Calendar
from jingzhun.datagen._catalog import APP, CATEGORIES, CHANNELS, STORE, WEB, Region
from jingzhun.datagen._columns import (
    MONEY_SCALE,
    categorical,
    id_strings,
    money,
    pick,
    timestamps,
)
from jingzhun.datagen._people import People, weighted_choice
from jingzhun.datagen._products import Products

_GUEST_CHANNELS = np.array([0.45, 0.0, 0.40, 0.15])  # web, app, store, marketplace
_DISCOUNTS = np.array([10, 15, 20, 25, 30])


@dataclass(frozen=True)
class Orders:
    """Orders sorted by time (the file order), and their lines.

    ``line_start``/``line_count`` point into the line arrays; ``churn_us`` is per person: when
    they made their last purchase before dropping out (``end`` when still active, the window
    start when they had stopped before it).
    """

    ordered_us: np.ndarray
    person: np.ndarray  # -1 for guests
    record: np.ndarray  # customer record, -1 for guests
    channel: np.ndarray
    store: np.ndarray  # -1 off the tills
    country: np.ndarray  # index into ``countries``
    is_return: np.ndarray
    line_start: np.ndarray
    line_count: np.ndarray
    total: np.ndarray  # order amount in 1/10 000
    sku: np.ndarray
    quantity: np.ndarray
    unit_price: np.ndarray
    churn_us: np.ndarray
    countries: tuple[str, ...]
    stores: tuple[str, ...]
    id_width: int

    def __len__(self) -> int:
        return len(self.ordered_us)

    @property
    def lines(self) -> int:
        """Number of order lines."""
        return int(self.line_count.sum())

    def order_ids(self, index: np.ndarray) -> pa.Array:
        """``ORD-00000001``: order numbers follow time."""
        return id_strings("ORD-", np.asarray(index, dtype=np.int64) + 1, self.id_width)


def expand(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ranges ``starts[i] .. starts[i] + counts[i] - 1``, without a loop."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    offsets = np.cumsum(counts) - counts
    return np.repeat(np.asarray(starts, dtype=np.int64) - offsets, counts) + np.arange(total)


def simulate_orders(
    rng: np.random.Generator,
    people: People,
    products: Products,
    calendar: Calendar,
    area: Region,
    guest_share: float,
) -> Orders:
    """Draw every order and order line of the window."""
    n = people.persons
    total = calendar.total

    # Purchases in the window: Poisson(rate x remaining demand) for those still active; those
    # who join in the window often buy on the spot. Of the m purchases a person would make,
    # they make the first K ~ Geometric(p) before dropping out (BG/NBD).
    exposure = total - people.y_birth
    purchases = rng.poisson(people.rate * exposure * ~people.lapsed)
    on_signup = people.joined_in_window & (people.rate > 0) & (rng.random(n) < 0.55)
    wanted = purchases + on_signup
    lifetime = rng.geometric(people.dropout)
    made = np.minimum(wanted, lifetime)
    dropped = (lifetime <= wanted) & (made > 0)

    # The first `made` of `wanted` ordered uniforms: partial sums of exponentials divided by
    # the sum of all wanted + 1 of them, whose unseen rest is one Gamma draw.
    person = np.repeat(np.arange(n), made)
    first = np.cumsum(made) - made
    running = np.concatenate([[0.0], np.cumsum(rng.exponential(1.0, len(person)))])
    base = running[first]
    partial = running[1:] - np.repeat(base, made)
    rest = rng.gamma((wanted + 1 - made).astype(np.float64), 1.0)
    last = running[first + made] - base
    u = partial / np.repeat(last + rest, made)
    rank = np.arange(len(person)) - np.repeat(first, made)
    u = np.where((rank == 0) & on_signup[person], 0.0, u)
    y = people.y_birth[person] + u * exposure[person]
    member_us = calendar.to_utc(y, people.zone[person])

    churn_us = np.full(n, calendar.end_us, dtype=np.int64)
    ends = first + made - 1
    churn_us[dropped] = member_us[ends[dropped]]
    churn_us[people.lapsed] = calendar.start_us

    # Guests: orders without a customer, spread over the window like everyone else's.
    guests = round(len(person) * guest_share / (1.0 - guest_share))
    guest_us = calendar.to_utc(rng.random(guests) * total, 0)
    ordered_us = np.concatenate([member_us, guest_us])
    person = np.concatenate([person, np.full(guests, -1)])
    member = person >= 0
    p = np.where(member, person, 0)

    cdf = people.channel_cdf[p]
    channel = (rng.random(len(person))[:, None] > cdf[:, :-1]).sum(axis=1)
    channel = np.where(member, channel, weighted_choice(rng, _GUEST_CHANNELS, len(person)))
    record = np.where(
        member, np.where(channel == STORE, people.store_record[p], people.web_record[p]), -1
    )

    cities = area.cities
    store_count = np.array([c.stores for c in cities])
    store_first = np.cumsum(store_count) - store_count
    city = np.where(member, people.city[p], weighted_choice(rng, store_count, len(person)))
    store = store_first[city] + (rng.random(len(person)) * store_count[city]).astype(np.int64)
    store = np.where(channel == STORE, store, -1)
    countries = tuple(sorted({c.country for c in cities}))
    city_country = np.array([countries.index(c.country) for c in cities])
    home = countries.index(area.code) if area.code in countries else 0
    country = np.where(member | (channel == STORE), city_country[city], home)

    # Baskets: 1 + Poisson(1.9) lines; half of a member's lines come from their favourite
    # category. Groceries, pet food and baby goods come several to a line.
    line_count = 1 + np.minimum(rng.poisson(1.9, len(person)), 24)
    line_order = np.repeat(np.arange(len(person)), line_count)
    favourite = np.where(member, people.favourite[p], -1)[line_order]
    from_favourite = rng.random(len(line_order)) < 0.5
    sku = products.sample(rng, np.where(from_favourite, favourite, -1))
    category = products.category[sku]
    extra = np.array([c.quantity_mean for c in CATEGORIES])[category]
    quantity = 1 + rng.poisson(extra)
    day = calendar.day_of_us(ordered_us)[line_order]
    discounted = rng.random(len(sku)) < calendar.promo[day]
    percent = np.where(discounted, _DISCOUNTS[rng.integers(0, len(_DISCOUNTS), len(sku))], 0)
    cent = MONEY_SCALE // 100
    unit_price = np.round(products.price[sku] * (100 - percent) / 100 / cent).astype(np.int64)
    unit_price = np.maximum(unit_price, 1) * cent

    # Returns: a bought line goes back with its category's rate (more often when bought
    # online), days later, as a separate order with negative quantities.
    online = np.isin(channel, (WEB, APP))[line_order]
    rate = np.array([c.return_rate for c in CATEGORIES])[category] * np.where(online, 1.5, 0.6)
    returned = np.flatnonzero(rng.random(len(sku)) < rate)
    source, back_count = np.unique(line_order[returned], return_counts=True)
    delay = ((2.0 + rng.exponential(8.0, len(source))) * US_PER_DAY).astype(np.int64)
    back_us = ordered_us[source] + delay
    inside = back_us < calendar.end_us
    keep_line = np.repeat(inside, back_count)
    source, back_us, back_count = source[inside], back_us[inside], back_count[inside]
    returned = returned[keep_line]

    all_us = np.concatenate([ordered_us, back_us])
    is_return = np.concatenate([np.zeros(len(person), bool), np.ones(len(source), bool)])
    starts = np.concatenate(
        [np.cumsum(line_count) - line_count, len(sku) + np.cumsum(back_count) - back_count]
    )
    counts = np.concatenate([line_count, back_count])
    sku = np.concatenate([sku, sku[returned]])
    quantity = np.concatenate([quantity, -quantity[returned]])
    unit_price = np.concatenate([unit_price, unit_price[returned]])
    amount = quantity * unit_price
    totals = np.add.reduceat(amount, starts) if len(starts) else np.zeros(0, np.int64)

    order = np.argsort(all_us, kind="stable")

    def sorted_(values: np.ndarray) -> np.ndarray:
        return np.concatenate([values, values[source]])[order]

    return Orders(
        ordered_us=all_us[order],
        person=sorted_(person),
        record=sorted_(record),
        channel=sorted_(channel).astype(np.int8),
        store=sorted_(store),
        country=sorted_(country),
        is_return=is_return[order],
        line_start=starts[order],
        line_count=counts[order],
        total=totals[order],
        sku=sku,
        quantity=quantity,
        unit_price=unit_price,
        churn_us=churn_us,
        countries=countries,
        stores=tuple(f"ST-{i + 1:04d}" for i in range(int(store_count.sum()))),
        id_width=max(8, len(str(len(all_us)))),
    )


def order_line_chunks(
    orders: Orders, products: Products, customer_ids: pa.Array, chunk_rows: int
) -> Iterator[Callable[[], pa.Table]]:
    """Builders of ``order_lines`` tables of whole orders, about ``chunk_rows`` lines each."""
    ends = np.cumsum(orders.line_count)
    cuts = np.searchsorted(ends, np.arange(chunk_rows, orders.lines, chunk_rows), side="left")
    edges = np.unique(np.concatenate([[0], cuts + 1, [len(orders)]]))
    for lo, hi in itertools.pairwise(edges.tolist()):
        yield partial(order_lines_table, orders, products, customer_ids, lo, hi)


def order_lines_table(
    orders: Orders, products: Products, customer_ids: pa.Array, start: int, stop: int
) -> pa.Table:
    """Rows of ``order_lines`` for orders ``start:stop`` (in file order)."""
    counts = orders.line_count[start:stop]
    lines = expand(orders.line_start[start:stop], counts)
    of = np.repeat(np.arange(start, stop), counts)
    within = np.arange(len(lines)) - np.repeat(np.cumsum(counts) - counts, counts)
    record = orders.record[of]
    store = orders.store[of]
    sku = orders.sku[lines]
    quantity = orders.quantity[lines]
    unit_price = orders.unit_price[lines]
    category_names = pa.array([c.name for c in CATEGORIES])
    return pa.table(
        {
            "order_id": orders.order_ids(of),
            "customer_id": pick(customer_ids, record, null=record < 0),
            "ordered_at": timestamps(orders.ordered_us[of]),
            "is_return": pa.array(orders.is_return[of]),
            "currency": categorical(np.zeros(len(lines)), pa.array([products.currency])),
            "channel": categorical(orders.channel[of], pa.array(CHANNELS)),
            "store_id": categorical(store, pa.array(orders.stores), null=store < 0),
            "country": categorical(orders.country[of], pa.array(orders.countries)),
            "line_number": pa.array(within + 1, type=pa.int64()),
            "sku": categorical(sku, products.skus),
            "product_name": categorical(products.name_code[sku], products.distinct_names),
            "quantity": pa.array(quantity, type=pa.int64()),
            "unit_price": money(unit_price),
            "amount": money(quantity * unit_price),
            "category": categorical(products.category[sku], category_names),
            "brand": categorical(products.brand[sku], products.brands),
        }
    )
