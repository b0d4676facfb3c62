"""Write what the source systems hold about persons: ``customers`` and ``identity_truth``.

Each person has one true e-mail address and phone number, unique to them; records show them as
people type them: another phone format, upper case and stray spaces, a mistyped domain, a
swapped or dropped letter in a name. Placeholder contact details (China Mobile's service number,
a shop's own address) are shared by unrelated persons on purpose.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jingzhun.datagen._catalog import Region
from jingzhun.datagen._columns import (
    categorical,
    compact_json,
    dates,
    digit_matrix,
    fixed_width,
    join,
    pick,
    timestamps,
)
from jingzhun.datagen._people import WEB_SYSTEM, People, weighted_choice

LOYALTY_TIERS = ("bronze", "silver", "gold", "platinum")
_ACQUISITION = ("organic", "paid_search", "social", "referral")
_QQ_BASE, _QQ_SPAN = 100_000_000, 900_000_000  # QQ numbers of nine digits
_US_LINE_BASE, _US_LINE_SPAN = 2_000_000, 8_000_000


def _distinct(rng: np.random.Generator, span: int, n: int) -> np.ndarray:
    """``n`` different numbers below ``span`` (repeating only beyond ``span`` people).

    They make a person's e-mail address and phone number theirs alone.
    """
    return rng.choice(span, n, replace=n > span)


def customer_ids(people: People) -> pa.StringArray:
    """``W-00000001`` / ``S-00000001``: the source system's letter and its sequence number."""
    width = max(8, len(str(people.records)))
    matrix = np.empty((people.records, 2 + width), dtype=np.uint8)
    matrix[:, 0] = np.where(people.record_system == WEB_SYSTEM, ord("W"), ord("S"))
    matrix[:, 1] = ord("-")
    matrix[:, 2:] = digit_matrix(people.record_number, width)
    return fixed_width(matrix)


def identity_truth_table(people: People, ids: pa.StringArray) -> pa.Table:
    """Which person each customer record belongs to: the answer key for identity resolution."""
    width = max(8, len(str(people.persons)))
    person_ids = fixed_width(
        np.concatenate(
            [
                np.tile(np.frombuffer(b"P-", dtype=np.uint8), (people.records, 1)),
                digit_matrix(people.record_person + 1, width),
            ],
            axis=1,
        )
    )
    return pa.table({"customer_id": ids, "person_id": person_ids})


def customers_table(
    rng: np.random.Generator, people: People, area: Region, ids: pa.StringArray
) -> pa.Table:
    """The ``customers`` source: one row per record, canonical column names and types."""
    r = people.records
    person = people.record_person
    duplicate = people.record_duplicate
    on_web = people.record_system == WEB_SYSTEM
    first, last = _record_names(rng, people, area)
    email = _record_emails(rng, people, area)
    phone = _record_phones(rng, people, area)

    birth_known = rng.random(r) < np.where(duplicate, 0.6, np.where(on_web, 0.75, 0.5))
    gender_known = rng.random(r) < np.where(on_web, 0.97, 0.90)
    city_known = rng.random(r) < 0.97
    city = people.city[person]
    countries = sorted({c.country for c in area.cities})
    country_of_city = np.array([countries.index(c.country) for c in area.cities])
    zones = sorted({c.timezone for c in area.cities})
    zone_of_city = np.array([zones.index(c.timezone) for c in area.cities])

    return pa.table(
        {
            "customer_id": ids,
            "email": email,
            "phone": phone,
            "first_name": first,
            "last_name": last,
            "birth_date": dates(people.birth_day[person], null=~birth_known),
            "gender": categorical(
                np.where(people.female[person], 0, 1), pa.array(["F", "M"]), null=~gender_known
            ),
            "city": categorical(city, pa.array([c.name for c in area.cities]), null=~city_known),
            "country": categorical(country_of_city[city], pa.array(countries), null=~city_known),
            "timezone": categorical(zone_of_city[city], pa.array(zones), null=~city_known),
            "signup_at": timestamps(people.record_signup_us),
            "email_consent": _flags(people.record_email_consent),
            "sms_consent": _flags(people.record_sms_consent),
            "push_consent": _flags(people.record_push_consent),
            "attributes": _attributes(rng, people),
        }
    )


def _flags(values: np.ndarray) -> pa.Array:
    return pa.array(values == 1, mask=values < 0)


def _attributes(rng: np.random.Generator, people: People) -> pa.Array:
    """JSON objects with a loyalty tier (following how much a person buys) and the system
    and channel the record came from; few distinct values, so a dictionary column.
    """
    person = people.record_person
    noisy = people.rate * np.exp(rng.normal(0.0, 0.5, people.persons))
    buys = noisy > 0
    cuts = np.quantile(noisy[buys], [0.50, 0.80, 0.95]) if buys.any() else np.zeros(3)
    tier = np.where(buys, np.searchsorted(cuts, noisy, side="right"), 0)[person]
    texts: list[str] = []
    for t in LOYALTY_TIERS:
        for source in ("web", "app"):
            for via in _ACQUISITION:
                texts.append(
                    compact_json({"loyalty_tier": t, "source_system": source, "acquired_via": via})
                )
        texts.append(compact_json({"loyalty_tier": t, "source_system": "store"}))
    per_tier = 2 * len(_ACQUISITION) + 1
    on_web = people.record_system == WEB_SYSTEM
    app = on_web & people.has_app[person] & (rng.random(people.records) < 0.5)
    channel = rng.integers(0, len(_ACQUISITION), people.records)
    code = np.where(
        on_web,
        tier * per_tier + app * len(_ACQUISITION) + channel,
        tier * per_tier + per_tier - 1,
    )
    return categorical(code, pa.array(texts))


def _record_names(
    rng: np.random.Generator, people: People, area: Region
) -> tuple[pa.Array, pa.Array]:
    """First and last names per record, misspelt on some second records."""
    names = area.names
    given_pool = [w for w, _, _ in names.female] + [w for w, _, _ in names.male]
    family_pool = [w for w, _, _ in names.family]
    person = people.record_person
    given = people.given + np.where(people.female, 0, len(names.female))
    r = people.records

    typo = people.record_duplicate & (rng.random(r) < 0.45)
    on_first = rng.random(r) < (1.0 if names.combine_given else 0.6)
    first_typo = np.flatnonzero(typo & on_first)
    last_typo = np.flatnonzero(typo & ~on_first)
    if names.combine_given:
        letters = np.array(sorted({ch for w in given_pool for ch in w}))
    else:
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    codes = letters.view(np.uint32)
    # Hanzi names are one to three characters, all of which can be mistyped (a wrong
    # character from the input method); Latin names keep their first letter.
    latin = not names.combine_given

    def spelled(pool: list[str], index: np.ndarray, rows: np.ndarray) -> pa.Array:
        words = np.array(pool)[index[person[rows]]]
        wrong = _misspell(rng, words, codes, keep_first=latin)
        table = pa.concat_arrays([pa.array(pool), pa.array(wrong)])
        chosen = index[person]
        chosen[rows] = len(pool) + np.arange(len(rows))
        return pick(table, chosen)

    return spelled(given_pool, given, first_typo), spelled(family_pool, people.family, last_typo)


def _misspell(
    rng: np.random.Generator, words: np.ndarray, letters: np.ndarray, *, keep_first: bool
) -> np.ndarray:
    """Each word with one typo: two neighbouring letters swapped, one dropped or one replaced
    by one of ``letters`` (code points).

    With ``keep_first`` the first letter stays, as people rarely mistype it; words too short
    for a swap or a drop get a replaced letter.
    """
    n = len(words)
    if n == 0:
        return words
    width = max(words.dtype.itemsize // 4, 1) + 1
    words = words.astype(f"<U{width}")
    matrix = words.view(np.uint32).reshape(n, width).copy()
    length = np.char.str_len(words)
    first = int(keep_first)
    op = rng.integers(0, 3, n)
    op = np.where(length >= first + 2, op, 2)
    pos = first + (rng.random(n) * np.maximum(length - first - 1, 1)).astype(np.int64)
    rows = np.arange(n)

    swap = op == 0
    a = matrix[rows[swap], pos[swap]].copy()
    matrix[rows[swap], pos[swap]] = matrix[rows[swap], pos[swap] + 1]
    matrix[rows[swap], pos[swap] + 1] = a

    drop = np.flatnonzero(op == 1)
    cols = np.arange(width)[None, :]
    source = np.minimum(cols + (cols >= pos[drop, None]), width - 1)
    matrix[drop] = np.take_along_axis(matrix[drop], source, axis=1)
    matrix[drop, width - 1] = 0

    replace = np.flatnonzero(op == 2)
    at = np.minimum(
        first
        + (rng.random(len(replace)) * np.maximum(length[replace] - first, 1)).astype(np.int64),
        np.maximum(length[replace] - 1, 0),
    )
    matrix[replace, at] = letters[rng.integers(0, len(letters), len(replace))]
    return matrix.view(f"<U{width}").reshape(n)


def _record_emails(rng: np.random.Generator, people: People, area: Region) -> pa.Array:
    """E-mail addresses per record: the person's own, retyped on second records."""
    n, r = people.persons, people.records
    names = area.names
    domains = [d for d, _, _ in area.email_domains]
    typos = [t for _, _, t in area.email_domains]
    domain = weighted_choice(rng, np.array([w for _, w, _ in area.email_domains]), n)

    family = pick(pa.array([latin for _, latin, _ in names.family]), people.family)
    given_latin = [latin for _, latin, _ in names.female] + [latin for _, latin, _ in names.male]
    given = pick(
        pa.array(given_latin), people.given + np.where(people.female, 0, len(names.female))
    )
    modulus = 10 ** max(6, len(str(n)) + 1)
    number = pc.cast(pa.array(_distinct(rng, modulus, n)), pa.string())
    style = rng.integers(0, 4, n)
    family_first = pa.array(style == 0)
    head = pc.if_else(family_first, family, given)
    if not names.combine_given:
        head = pc.if_else(pa.array(style == 3), pc.utf8_slice_codeunits(given, 0, 1), head)
    tail = pc.if_else(family_first, given, family)
    sep = pick(pa.array(["", ".", "_", ""]), style)
    local = join(head, sep, tail, number)
    if area.numeric_email_domain is not None:
        qq = _distinct(rng, _QQ_SPAN, n) + _QQ_BASE
        numeric = pa.array(domain == domains.index(area.numeric_email_domain))
        local = pc.if_else(numeric, pc.cast(pa.array(qq), pa.string()), local)

    person = people.record_person
    duplicate = people.record_duplicate
    # How a record shows the address: 0 as is, 1 upper case, 2 capitalised with a trailing
    # space, 3 a leading space, 4 a mistyped domain. Second records are retyped by hand.
    variant = np.where(
        duplicate,
        weighted_choice(rng, np.array([0.35, 0.15, 0.15, 0.10, 0.25]), r),
        weighted_choice(rng, np.array([0.97, 0.02, 0.0, 0.01, 0.0]), r),
    )
    domain_text = pick(pa.array(domains + typos), domain[person] + (variant == 4) * len(domains))
    email = join(pick(local, person), "@", domain_text)
    email = pc.if_else(pa.array(variant == 1), pc.utf8_upper(email), email)
    email = pc.if_else(pa.array(variant == 2), join(pc.utf8_capitalize(email), " "), email)
    email = pc.if_else(pa.array(variant == 3), join(" ", email), email)
    shared = pick(pa.array(list(area.shared_emails)), rng.integers(0, len(area.shared_emails), r))
    email = pc.if_else(pa.array(people.record_shared_email), shared, email)
    return pc.if_else(pa.array(people.record_has_email), email, pa.scalar(None, pa.string()))


def _record_phones(rng: np.random.Generator, people: People, area: Region) -> pa.Array:
    """Phone numbers per record: the person's own number in the record's format."""
    n, r = people.persons, people.records
    plan = area.phones
    if plan.prefixes:
        prefix = np.array(plan.prefixes)[rng.integers(0, len(plan.prefixes), n)]
        national = prefix * 10 ** (plan.digits - 3) + _distinct(rng, 10 ** (plan.digits - 3), n)
    else:
        codes = [c.area_codes for c in area.cities]
        pick_code = (rng.random(n) * np.array([len(c) for c in codes])[people.city]).astype(int)
        flat = np.array([code for c in codes for code in c])
        starts = np.cumsum([0] + [len(c) for c in codes[:-1]])
        area_code = flat[starts[people.city] + pick_code]
        # Exchanges start at 2: the seven digits after the area code run from 200-0000.
        line = _distinct(rng, _US_LINE_SPAN, n) + _US_LINE_BASE
        national = area_code * 10**7 + line

    person = people.record_person
    weights = np.array([w for _, w in plan.formats])
    own_format = weighted_choice(rng, weights, n)
    # A second record never uses the same format as the person's first one.
    other = (own_format[person] + 1 + rng.integers(0, len(weights) - 1, r)) % len(weights)
    fmt = np.where(people.record_duplicate, other, own_format[person])
    number = national[person]
    junk = np.array(plan.placeholders)[rng.integers(0, len(plan.placeholders), r)]
    number = np.where(people.record_placeholder_phone, junk, number)
    text = _format_phones(number, fmt, [f for f, _ in plan.formats], plan.digits)
    return pc.if_else(pa.array(people.record_has_phone), text, pa.scalar(None, pa.string()))


def _format_phones(
    number: np.ndarray, fmt: np.ndarray, formats: list[str], digits: int
) -> pa.Array:
    """National numbers written with per-row templates (``d`` = next digit)."""
    all_digits = digit_matrix(number, digits)
    parts, rows = [], []
    for f, template in enumerate(formats):
        chosen = np.flatnonzero(fmt == f)
        bytes_ = np.frombuffer(template.encode(), dtype=np.uint8)
        matrix = np.tile(bytes_, (len(chosen), 1))
        matrix[:, bytes_ == ord("d")] = all_digits[chosen]
        parts.append(fixed_width(matrix))
        rows.append(chosen)
    inverse = np.empty(len(number), dtype=np.int64)
    inverse[np.concatenate(rows)] = np.arange(len(number))
    return pick(pa.concat_arrays(parts), inverse)
