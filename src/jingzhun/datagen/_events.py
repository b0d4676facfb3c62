"""Behaviour on web, app and e-mail: sessions around orders, browsing, logins, e-mail opens.

Every web or app order comes with its session (a landing page or app open, product views,
add-to-cart, checkout, ``order_completed`` at the order's own time). Other sessions browse and
sometimes abandon a cart. Each device (an ``anonymous_id``) is linked to its customer by an
``identify`` event; visitors who log in only at checkout send anonymous events first. E-mail
campaigns go out fortnightly to consenting customers, who open fewer of them after they stop
buying.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jingzhun.datagen._calendar import US_PER_DAY, US_PER_SECOND, Calendar
from jingzhun.datagen._catalog import (
    ADDED_TO_CART,
    ALIAS,
    APP,
    APP_OPENED,
    CATEGORIES,
    CHECKOUT_STARTED,
    EMAIL_CLICKED,
    EMAIL_OPENED,
    EVENT_CHANNELS,
    EVENT_TYPES,
    IDENTIFY,
    ORDER_COMPLETED,
    PAGE,
    PRODUCT_VIEWED,
    WEB,
)
from jingzhun.datagen._columns import (
    categorical,
    compact_json,
    fixed_width,
    hex_matrix,
    id_strings,
    join,
    mix64,
    money,
    pick,
    timestamps,
    uuid_strings,
)
from jingzhun.datagen._orders import Orders
from jingzhun.datagen._people import People, weighted_choice
from jingzhun.datagen._products import Products

EMAIL_CHANNEL = 2
_PAGES = ("/", "/search", "/promotions", "/account", *(f"/category/{c.name}" for c in CATEGORIES))
_CATEGORY_PAGES = 4  # index of the first category page in _PAGES
_APP_VERSIONS = ("5.2.0", "5.3.1", "5.4.0", "6.0.2")
_SEND_EVERY_DAYS = 14


@dataclass
class _Block:
    """Events of one kind of activity, as parallel arrays (``-1`` = none)."""

    kind: np.ndarray
    at: np.ndarray
    record: np.ndarray
    device: np.ndarray
    session: np.ndarray
    channel: np.ndarray
    sku: np.ndarray
    props: np.ndarray  # index into the fixed property texts, -1 for none or built per row
    ref: np.ndarray  # order index (order_completed) or previous device (alias)


def _block(size: int, **columns: np.ndarray | int) -> _Block:
    """A block with every column given or filled with -1."""
    full = {}
    for name in _Block.__dataclass_fields__:
        value = columns.get(name, -1)
        dtype: type[np.signedinteger[Any]] = np.int32
        if name in ("at", "ref"):
            dtype = np.int64
        elif name in ("kind", "channel"):
            dtype = np.int8
        full[name] = np.broadcast_to(np.asarray(value, dtype=dtype), (size,)).copy()
    return _Block(**full)


def _concat(blocks: list[_Block]) -> _Block:
    return _Block(
        **{
            name: np.concatenate([getattr(b, name) for b in blocks])
            for name in _Block.__dataclass_fields__
        }
    )


@dataclass(frozen=True)
class _Texts:
    """Property JSON texts that repeat, laid out in one array: pages, app versions, products,
    identify methods, e-mail campaigns.
    """

    values: pa.Array
    page: int
    version: int
    product: int
    method: int
    campaign: int


def _texts(products: Products, campaigns: list[str]) -> _Texts:
    categories = pa.array([c.name for c in CATEGORIES])
    product_json = join(
        '{"price":',
        pc.cast(money(products.price), pa.string()),
        ',"category":"',
        pick(categories, products.category),
        '"}',
    )
    pages = [compact_json({"path": p}) for p in _PAGES]
    versions = [compact_json({"app_version": v}) for v in _APP_VERSIONS]
    methods = [compact_json({"method": m}) for m in ("login", "signup")]
    mails = [compact_json({"campaign_id": c}) for c in campaigns]
    text = pa.string()
    values = pa.concat_arrays(
        [
            pa.array(pages, text),
            pa.array(versions, text),
            product_json,
            pa.array(methods, text),
            pa.array(mails, text),
        ]
    )
    page = 0
    version = page + len(pages)
    product = version + len(versions)
    method = product + len(products)
    return _Texts(values, page, version, product, method, method + len(methods))


@dataclass(frozen=True)
class _Devices:
    """Browsers and app installs; each is one ``anonymous_id``.

    Devices of person ``p`` are ``first[p] .. first[p] + web[p] + app[p] - 1``, browsers
    first; visitors who never log in own the last ``anonymous`` devices.
    """

    person: np.ndarray
    first: np.ndarray
    web: np.ndarray
    app: np.ndarray
    anonymous: int

    @property
    def pool_start(self) -> int:
        """Index of the first device no person owns."""
        return len(self.person) - self.anonymous

    def is_app(self, device: np.ndarray) -> np.ndarray:
        """Whether each (owned) device is an app install."""
        owner = np.maximum(self.person[device], 0)
        return (self.person[device] >= 0) & (device >= self.first[owner] + self.web[owner])


def _devices(rng: np.random.Generator, people: People) -> _Devices:
    # A third of web users browse from two browsers; app users have one install. Half as many
    # visitors as customers never log in at all.
    n = people.persons
    web = people.has_web * (1 + (rng.random(n) < 0.35))
    app = people.has_app.astype(np.int64)
    count = web + app
    anonymous = max(1, round(0.5 * n))
    person = np.concatenate([np.repeat(np.arange(n), count), np.full(anonymous, -1)])
    return _Devices(person, np.cumsum(count) - count, web, app, anonymous)


def _sends(calendar: Calendar) -> tuple[np.ndarray, list[str]]:
    """Fortnightly campaign sends at 10:00 in the company's time zone, and their ids."""
    days = np.arange(3, calendar.days, _SEND_EVERY_DAYS)
    send_us = calendar.local_us(days, 10 * 3600.0, zone=0)
    names = ["EM-" + (calendar.start + dt.timedelta(days=int(d))).strftime("%Y%m%d") for d in days]
    return send_us, names


def event_chunks(
    rng: np.random.Generator,
    people: People,
    orders: Orders,
    products: Products,
    calendar: Calendar,
    customer_ids: pa.Array,
    chunk_rows: int,
    key: int,
) -> Iterator[Callable[[], pa.Table]]:
    """The ``events`` source in time order, as builders of tables of whole days, about
    ``chunk_rows`` rows each; builders are independent, so they can run side by side.

    Drawing every event happens when the first builder is asked for.
    """
    devices = _devices(rng, people)
    send_us, campaigns = _sends(calendar)
    texts = _texts(products, campaigns)
    ordered, sessions = _order_sessions(rng, orders, products, devices, calendar, texts)
    browsing = _browse_sessions(
        rng, people, orders, products, calendar, devices, texts, sessions, round(0.9 * sessions)
    )
    events = _concat(
        [
            ordered,
            browsing,
            _identifies(rng, people, calendar, devices, texts),
            _aliases(rng, people, calendar, devices),
            _emails(rng, people, orders, send_us, texts),
        ]
    )
    del ordered, browsing
    keep = (events.at >= calendar.start_us) & (events.at < calendar.end_us)
    if not keep.all():
        events = _Block(**{k: getattr(events, k)[keep] for k in _Block.__dataclass_fields__})

    layout = _Layout(
        customer_ids=customer_ids,
        anonymous_ids=uuid_strings(np.arange(len(devices.person)), key),
        products=products,
        orders=orders,
        texts=texts,
        id_width=max(10, len(str(len(events.at)))),
        key=key,
    )
    # Sort by day with a radix sort (numpy's stable sort on 16-bit integers), then each chunk
    # of whole days by time: global time order without one sort over every event.
    day = ((events.at - calendar.start_us) // US_PER_DAY).astype(
        np.int16 if calendar.days < 32_000 else np.int32
    )
    by_day = np.argsort(day, kind="stable")
    day_end = np.cumsum(np.bincount(day, minlength=calendar.days))
    lo = 0
    while lo < len(by_day):
        last_day = max(int(np.searchsorted(day_end, lo + chunk_rows, side="right")) - 1, 0)
        hi = int(day_end[last_day])
        if hi <= lo:  # one day holds more than chunk_rows events
            hi = int(day_end[np.searchsorted(day_end, lo, side="right")])
        yield partial(_events_table, events, by_day[lo:hi], lo, layout)
        lo = hi


@dataclass(frozen=True)
class _Layout:
    """What turning event arrays into the ``events`` table needs besides the events."""

    customer_ids: pa.Array
    anonymous_ids: pa.Array
    products: Products
    orders: Orders
    texts: _Texts
    id_width: int
    key: int


def _order_sessions(
    rng: np.random.Generator,
    orders: Orders,
    products: Products,
    devices: _Devices,
    calendar: Calendar,
    texts: _Texts,
) -> tuple[_Block, int]:
    """The session of each web and app order, ending in ``order_completed`` at its time."""
    online = np.flatnonzero(~orders.is_return & np.isin(orders.channel, (WEB, APP)))
    s = len(online)
    person = orders.person[online]
    member = person >= 0
    p = np.maximum(person, 0)
    app = orders.channel[online] == APP
    browser = devices.first[p] + (rng.random(s) * np.maximum(devices.web[p], 1)).astype(np.int64)
    device = np.where(
        member,
        np.where(app, devices.first[p] + devices.web[p], browser),
        devices.pool_start + rng.integers(0, devices.anonymous, s),
    )
    # Seven in ten are logged in from the start; the rest identify at checkout.
    logged_in = member & (rng.random(s) < 0.7)
    views = np.minimum(orders.line_count[online], 2)
    identify = (member & ~logged_in).astype(np.int64)
    size = 1 + 2 * views + identify + 2
    session = np.repeat(np.arange(s), size)
    k = np.arange(len(session)) - np.repeat(np.cumsum(size) - size, size)
    v, i, m = views[session], identify[session], size[session]
    start_kind = np.where(app, APP_OPENED, PAGE)[session]
    kind = np.select(
        [k == 0, k <= v, k <= 2 * v, (i == 1) & (k == 2 * v + 1), k == m - 2],
        [start_kind, PRODUCT_VIEWED, ADDED_TO_CART, IDENTIFY, CHECKOUT_STARTED],
        default=ORDER_COMPLETED,
    )
    line = np.where(kind == PRODUCT_VIEWED, k - 1, np.where(kind == ADDED_TO_CART, k - v - 1, -1))
    order = online[session]
    sku = np.where(line >= 0, orders.sku[orders.line_start[order] + np.maximum(line, 0)], -1)
    step = (15.0 + rng.exponential(45.0, s)) * US_PER_SECOND
    at = orders.ordered_us[order] - ((m - 1 - k) * step[session]).astype(np.int64)
    at = np.maximum(at, calendar.start_us)
    known = member[session] & (logged_in[session] | (k > 2 * v))
    props = _props(kind, sku, at, rng, calendar, texts)
    # Half the web sessions land on the category page of the first thing they buy.
    first_category = products.category[orders.sku[orders.line_start[order]]]
    on_category = (kind == PAGE) & (rng.random(len(kind)) < 0.5)
    props = np.where(on_category, texts.page + _CATEGORY_PAGES + first_category, props)
    block = _block(
        len(kind),
        kind=kind,
        at=at,
        record=np.where(known, orders.record[order], -1),
        device=device[session],
        session=session,
        channel=np.where(app, 1, 0)[session],
        sku=sku,
        props=props,
        ref=np.where(kind == ORDER_COMPLETED, order, -1),
    )
    return block, s


def _props(
    kind: np.ndarray,
    sku: np.ndarray,
    at: np.ndarray,
    rng: np.random.Generator,
    calendar: Calendar,
    texts: _Texts,
) -> np.ndarray:
    """Index of each event's property text: the home page, the app version of the day, the
    product; -1 for none.
    """
    day = (at - calendar.start_us) // US_PER_DAY
    # App versions roll out over the window; some phones lag one version behind.
    version = day * len(_APP_VERSIONS) // calendar.days - (rng.random(len(kind)) < 0.3)
    version = np.clip(version, 0, len(_APP_VERSIONS) - 1)
    product = (kind == PRODUCT_VIEWED) | (kind == ADDED_TO_CART)
    return np.select(
        [kind == PAGE, kind == APP_OPENED, product, kind == IDENTIFY],
        [texts.page, texts.version + version, texts.product + sku, texts.method],
        default=-1,
    )


def _browse_sessions(
    rng: np.random.Generator,
    people: People,
    orders: Orders,
    products: Products,
    calendar: Calendar,
    devices: _Devices,
    texts: _Texts,
    first_session: int,
    count: int,
) -> _Block:
    """Sessions without an order: product views, some carts and checkouts left behind."""
    # Two in three come from customers' devices, more from those who buy more; a customer who
    # has stopped buying browses far less. The rest are visitors who never log in.
    known = rng.random(count) < 0.65
    weight = (people.rate + 0.3 * people.rate.mean() + 1e-12) * (devices.web + devices.app > 0)
    weight = weight * np.where(people.lapsed, 0.3, 1.0)
    p = weighted_choice(rng, weight, count)
    owned = devices.first[p] + (rng.random(count) * (devices.web + devices.app)[p]).astype(np.int64)
    device = np.where(known, owned, devices.pool_start + rng.integers(0, devices.anonymous, count))
    birth = np.where(known, people.y_birth[p], 0.0)
    y = birth + rng.random(count) * (calendar.total - birth)
    start = calendar.to_utc(y, np.where(known, people.zone[p], 0))
    gone = known & (start > orders.churn_us[p]) & (rng.random(count) < 0.6)
    keep = np.flatnonzero(~gone)
    known, p, device, start = known[keep], p[keep], device[keep], start[keep]
    s = len(keep)

    views = 1 + np.minimum(rng.poisson(1.2, s), 8)
    cart = rng.random(s) < 0.3
    checkout = cart & (rng.random(s) < 0.35)
    size = 1 + views + cart + checkout
    session = np.repeat(np.arange(s), size)
    k = np.arange(len(session)) - np.repeat(np.cumsum(size) - size, size)
    v = views[session]
    app = devices.is_app(device)
    kind = np.select(
        [k == 0, k <= v, k == v + 1],
        [np.where(app, APP_OPENED, PAGE)[session], PRODUCT_VIEWED, ADDED_TO_CART],
        default=CHECKOUT_STARTED,
    )
    viewed = kind == PRODUCT_VIEWED
    favourite = np.where(known & (rng.random(s) < 0.5), people.favourite[p], -1)[session]
    sku = np.full(len(kind), -1, dtype=np.int64)
    sku[viewed] = products.sample(rng, favourite[viewed])
    in_cart = np.flatnonzero(kind == ADDED_TO_CART)
    sku[in_cart] = sku[in_cart - 1]  # the last product viewed
    step = (10.0 + rng.exponential(50.0, s)) * US_PER_SECOND
    at = start[session] + (k * step[session]).astype(np.int64)
    logged_in = known & (rng.random(s) < 0.5)
    props = _props(kind, sku, at, rng, calendar, texts)
    page = rng.integers(0, len(_PAGES), len(kind))
    props = np.where(kind == PAGE, texts.page + page, props)
    return _block(
        len(kind),
        kind=kind,
        at=at,
        record=np.where(logged_in, people.web_record[p], -1)[session],
        device=device[session],
        session=first_session + session,
        channel=app[session].astype(np.int8),
        sku=sku,
        props=props,
    )


def _identifies(
    rng: np.random.Generator,
    people: People,
    calendar: Calendar,
    devices: _Devices,
    texts: _Texts,
) -> _Block:
    """One ``identify`` per owned device, linking its ``anonymous_id`` to the customer: at
    sign-up on the first device of those who join in the window, at a login otherwise.
    """
    device = np.arange(devices.pool_start)
    p = devices.person[device]
    signup = people.joined_in_window[p] & (device == devices.first[p])
    birth = people.y_birth[p]
    y = np.where(signup, birth, birth + rng.random(len(device)) * (calendar.total - birth))
    app = devices.is_app(device)
    return _block(
        len(device),
        kind=IDENTIFY,
        at=calendar.to_utc(y, people.zone[p]),
        record=people.web_record[p],
        device=device,
        channel=app.astype(np.int8),
        props=texts.method + signup,
    )


def _aliases(
    rng: np.random.Generator, people: People, calendar: Calendar, devices: _Devices
) -> _Block:
    """``alias`` events merging a customer's second device into their first."""
    p = np.flatnonzero((devices.web + devices.app >= 2) & (rng.random(people.persons) < 0.3))
    birth = people.y_birth[p]
    y = birth + rng.random(len(p)) * (calendar.total - birth)
    device = devices.first[p] + 1
    return _block(
        len(p),
        kind=ALIAS,
        at=calendar.to_utc(y, people.zone[p]),
        record=people.web_record[p],
        device=device,
        channel=devices.is_app(device).astype(np.int8),
        ref=devices.first[p],
    )


def _emails(
    rng: np.random.Generator,
    people: People,
    orders: Orders,
    send_us: np.ndarray,
    texts: _Texts,
) -> _Block:
    """Opens and clicks of campaign e-mails by customers with e-mail consent.

    Each person opens each e-mail sent after they signed up with their own open rate, a third
    of it once they have stopped buying; one open in seven leads to a click.
    """
    persons = np.flatnonzero(people.emailable)
    signup = people.record_signup_us[people.web_record[persons]]
    first = np.searchsorted(send_us, signup, side="right")
    churn = np.searchsorted(send_us, orders.churn_us[persons], side="right")
    sent = len(send_us) - first
    before = np.clip(churn - first, 0, sent)
    after = sent - before
    rate = people.open_rate[persons]
    opened = [rng.binomial(before, rate), rng.binomial(after, rate / 3.0)]
    lowest = [first, np.maximum(first, churn)]
    span = [before, after]
    who, send = [], []
    for count, low, width in zip(opened, lowest, span, strict=True):
        who.append(np.repeat(persons, count))
        pick_ = (rng.random(int(count.sum())) * np.repeat(width, count)).astype(np.int64)
        send.append(np.repeat(low, count) + pick_)
    person = np.concatenate(who)
    mail = np.concatenate(send)
    opened_at = send_us[mail] + ((300.0 + rng.exponential(6 * 3600.0, len(mail))) * 1e6).astype(
        np.int64
    )
    clicked = np.flatnonzero(rng.random(len(mail)) < 1 / 7)
    clicked_at = opened_at[clicked] + ((20.0 + rng.exponential(90.0, len(clicked))) * 1e6).astype(
        np.int64
    )
    person = np.concatenate([person, person[clicked]])
    mail = np.concatenate([mail, mail[clicked]])
    n_open = len(opened_at)
    return _block(
        len(person),
        kind=np.where(np.arange(len(person)) < n_open, EMAIL_OPENED, EMAIL_CLICKED),
        at=np.concatenate([opened_at, clicked_at]),
        record=people.web_record[person],
        channel=EMAIL_CHANNEL,
        props=texts.campaign + mail,
    )


def _events_table(events: _Block, index: np.ndarray, offset: int, layout: _Layout) -> pa.Table:
    """Rows of ``events`` for events ``index`` (one or more whole days), sorted by time;
    ``offset`` is the number of events before them, which numbers their ids.
    """
    index = index[np.argsort(events.at[index], kind="stable")]
    orders, products, texts = layout.orders, layout.products, layout.texts
    kind = events.kind[index]
    record = events.record[index]
    device = events.device[index]
    session = events.session[index]
    sku = events.sku[index]
    props = events.props[index]
    ref = events.ref[index]

    completed = np.flatnonzero(kind == ORDER_COMPLETED)
    aliased = np.flatnonzero(kind == ALIAS)
    order = ref[completed]
    revenue = pc.cast(money(orders.total[order]), pa.string())
    order_json = join(
        '{"order_id":"',
        orders.order_ids(order),
        '","revenue":',
        revenue,
        ',"currency":"',
        products.currency,
        '","items":',
        pc.cast(pa.array(orders.line_count[order].astype(np.int64)), pa.string()),
        "}",
    )
    alias_json = join('{"previous_id":"', pick(layout.anonymous_ids, ref[aliased]), '"}')
    choice = props.astype(np.int64)
    base = len(texts.values)
    choice[completed] = base + np.arange(len(completed))
    choice[aliased] = base + len(completed) + np.arange(len(aliased))
    all_texts = pa.concat_arrays([texts.values, order_json, alias_json])

    no_session = session < 0
    session_hex = hex_matrix(mix64(np.maximum(session, 0), layout.key ^ 0x9E3779B9))
    return pa.table(
        {
            "event_id": id_strings("evt-", offset + 1 + np.arange(len(index)), layout.id_width),
            "event_type": categorical(kind, pa.array(EVENT_TYPES)),
            "occurred_at": timestamps(events.at[index]),
            "customer_id": pick(layout.customer_ids, record, null=record < 0),
            "anonymous_id": pick(layout.anonymous_ids, device, null=device < 0),
            "session_id": fixed_width(session_hex, null=no_session),
            "channel": categorical(events.channel[index], pa.array(EVENT_CHANNELS)),
            "sku": categorical(sku, products.skus, null=sku < 0),
            "properties": pick(all_texts, choice, null=choice < 0),
        }
    )
