"""Write the bank offer example's data (seeded: the same seed gives the same files).

Files under ``data/``:

- ``customers.csv`` — the core-banking customer master: Chinese names, +86 mobiles (a share
  missing or invalid), e-mail, city, birth date, account opening date, SMS and e-mail
  marketing opt-in (yes/no);
- ``events.csv`` — ``product_opened`` ({product: debit_card | credit_card}) and
  ``card_payment`` ({card_type: debit | credit, amount}) over the year before 2024-06-30;
- ``features.csv`` — the uplift model's features for every customer as of 2024-06-30,
  computed from the events;
- ``pilot.csv`` — last autumn's randomised pilot of the credit-card SMS on other debit-card
  holders: the same features on the pilot date, ``treated`` (0/1, half and half) and
  ``opened_credit_card`` within 30 days;
- ``truth.csv`` — each customer's true uplift and baseline rate (known because the data is
  simulated): for checking the example, never for fitting.

The true effect of the SMS (``true_uplift``): young frequent card users respond; older and
low-activity customers do not; big spenders often open a card anyway (high baseline) and the
SMS adds nothing for them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
AS_OF = dt.date(2024, 6, 30)
PILOT_DATE = dt.date(2023, 10, 31)  # features as of this day; outcome within the next 30 days
FEATURES = ["age", "monthly_debit_spend", "payments_90d", "tenure_years", "city_tier"]
CITIES = {  # city → tier (the usual commercial tiers)
    "北京": 1,
    "上海": 1,
    "广州": 1,
    "深圳": 1,
    "杭州": 2,
    "成都": 2,
    "武汉": 2,
    "南京": 2,
    "西安": 2,
    "重庆": 2,
    "洛阳": 3,
    "株洲": 3,
    "绵阳": 3,
    "赣州": 3,
    "宜昌": 3,
}
CITY_WEIGHTS = np.array([8, 8, 6, 6, 6, 6, 5, 5, 5, 5, 4, 3, 3, 3, 3], dtype=float)
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余")
GIVEN = list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉玲建国文红云飞宇浩然欣怡子涵梓轩"
)
HIGH_SPEND = 4_000.0  # CNY a month: above it customers open a credit card anyway


def true_effect(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The baseline 30-day rate of opening a credit card and the SMS's true uplift on it.

    Parameters
    ----------
    features
        Columns ``age``, ``monthly_debit_spend``, ``payments_90d``, ``city_tier``.

    Returns
    -------
    baseline, uplift
        Probabilities per row: without the SMS, and what the SMS adds.
    """
    age = features["age"].to_numpy(dtype=float)
    spend = features["monthly_debit_spend"].to_numpy(dtype=float)
    payments = features["payments_90d"].to_numpy(dtype=float)
    tier = features["city_tier"].to_numpy(dtype=int)
    big_spender = 1 / (1 + np.exp(-(spend - HIGH_SPEND) / 500))
    baseline = 0.02 + 0.30 * big_spender
    youth = np.clip((52 - age) / 25, 0, 1)
    frequency = np.clip(payments / 12, 0, 1)
    by_tier = np.select([tier == 1, tier == 2], [1.0, 0.85], 0.7)
    uplift = 0.24 * youth * frequency * (1 - big_spender) * by_tier
    return baseline, uplift


def _people(rng: np.random.Generator, n: int, as_of: dt.date) -> pd.DataFrame:
    """Latent traits of ``n`` customers: age, city, card habits, products held."""
    age = np.clip(rng.normal(40, 12, n), 20, 75)
    birth = [as_of - dt.timedelta(days=int(a * 365.25)) for a in age]
    city = rng.choice(list(CITIES), n, p=CITY_WEIGHTS / CITY_WEIGHTS.sum())
    tier = np.array([CITIES[c] for c in city])
    # payments a month: the young pay by card more often; per-payment amount: big cities more
    rate = np.exp(rng.normal(np.log(2.5) - 0.02 * (age - 40), 0.7))
    ticket = np.exp(rng.normal(np.log(400) + 0.25 * (tier == 1) + 0.004 * (age - 40), 0.6, n))
    tenure_days = rng.integers(90, 20 * 365, n)
    opened = [as_of - dt.timedelta(days=int(d)) for d in tenure_days]
    has_debit = rng.random(n) < 0.9
    # a dormant card: payments stop at some day of the last year
    stop = np.where(rng.random(n) < 0.15, rng.integers(1, 365, n), 0)
    spend_level = rate * ticket
    has_credit = rng.random(n) < 0.12 + 0.5 * (spend_level > HIGH_SPEND)
    return pd.DataFrame(
        {
            "age": age,
            "birth_date": birth,
            "city": city,
            "city_tier": tier,
            "rate": rate,
            "ticket": ticket,
            "opened_at": opened,
            "has_debit": has_debit,
            "stop_days_before": stop,
            "has_credit": has_credit,
        }
    )


def _payments(rng: np.random.Generator, people: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Debit-card payments in the 365 days to ``as_of``: person, day offset, amount."""
    active_days = np.where(
        people.has_debit,
        np.minimum(365, (as_of - people.opened_at).map(lambda d: d.days)) - people.stop_days_before,
        0,
    ).clip(0)
    counts = rng.poisson(people.rate.to_numpy() * active_days / 30.4)
    person = np.repeat(np.arange(len(people)), counts)
    # days back from as_of: uniform over the active stretch, which ends stop_days_before
    stretch = np.repeat(active_days, counts)
    days_back = np.repeat(people.stop_days_before.to_numpy(), counts) + np.floor(
        rng.random(len(person)) * stretch
    ).astype(int)
    amount = np.round(
        np.repeat(people.ticket.to_numpy(), counts) * rng.lognormal(0, 0.5, len(person)), 2
    )
    return pd.DataFrame({"person": person, "days_back": days_back, "amount": amount})


def _features(people: pd.DataFrame, payments: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """The model's features on ``as_of``, from the payments (never from the latent traits)."""
    n = len(people)
    spend = np.bincount(payments.person, weights=payments.amount, minlength=n) / 12
    recent = payments[payments.days_back < 90]
    tenure = (as_of - people.opened_at).map(lambda d: d.days).to_numpy() / 365.25
    return pd.DataFrame(
        {
            "age": np.floor(people.age).astype(int),
            "monthly_debit_spend": np.round(spend, 2),
            "payments_90d": np.bincount(recent.person, minlength=n),
            "tenure_years": np.round(tenure, 1),
            "city_tier": people.city_tier,
        }
    )


def _mobile(rng: np.random.Generator, n: int) -> list[str]:
    """+86 mobiles in the spellings a core system holds; 6% missing, 6% not a number."""
    numbers = rng.choice(np.arange(10**8), n, replace=False)  # unique: one person, one line
    prefixes = rng.choice(["138", "139", "136", "150", "158", "186", "187", "177", "199"], n)
    kind = rng.random(n)
    out = []
    for i in range(n):
        digits = f"{prefixes[i]}{numbers[i]:08d}"
        if kind[i] < 0.06:
            out.append("")
        elif kind[i] < 0.09:
            out.append(digits[:5])  # cut short
        elif kind[i] < 0.12:
            out.append(f"{digits[:7]}xxxx")  # masked in an old export
        elif kind[i] < 0.45:
            out.append(f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}")
        elif kind[i] < 0.60:
            out.append(f"+86-{digits}")
        else:
            out.append(digits)
    return out


def _customers(rng: np.random.Generator, people: pd.DataFrame) -> pd.DataFrame:
    """The core-banking customer master: ids, names, contact details and marketing opt-ins."""
    n = len(people)
    ids = [f"C{i:05d}" for i in range(1, n + 1)]
    given_len = rng.choice([1, 2], n, p=[0.35, 0.65])
    given = ["".join(rng.choice(GIVEN, k)) for k in given_len]
    return pd.DataFrame(
        {
            "customer_id": ids,
            "surname": rng.choice(SURNAMES, n),
            "given_name": given,
            "mobile": _mobile(rng, n),
            "email": [
                f"{cid.lower()}@mail{rng.integers(1, 4)}.example.cn" if rng.random() < 0.5 else ""
                for cid in ids
            ],
            "city": people.city,
            "birth_date": [d.isoformat() for d in people.birth_date],
            "opened_at": [d.isoformat() for d in people.opened_at],
            "marketing_sms": np.where(rng.random(n) < 0.6, "yes", "no"),
            "marketing_email": np.where(rng.random(n) < 0.4, "yes", "no"),
        }
    )


def _events(
    rng: np.random.Generator,
    customers: pd.DataFrame,
    people: pd.DataFrame,
    payments: pd.DataFrame,
) -> pd.DataFrame:
    """product_opened and card_payment rows, timestamps in UTC between 01:00 and 14:00 (09:00
    to 22:00 in Shanghai, so the UTC day is the local day).
    """
    ids = customers.customer_id.to_numpy()
    rows: list[dict[str, str]] = []

    def stamp(day: dt.date, seconds: int) -> str:
        return f"{day.isoformat()}T{1 + seconds // 3600:02d}:{seconds // 60 % 60:02d}:00Z"

    for i in np.flatnonzero(people.has_debit.to_numpy()):
        rows.append(
            {
                "event_id": f"{ids[i]}-open-debit",
                "customer_id": ids[i],
                "event_type": "product_opened",
                "occurred_at": stamp(people.opened_at.iloc[i], int(rng.integers(0, 13 * 3600))),
                "properties": json.dumps({"product": "debit_card"}),
            }
        )
    seconds = rng.integers(0, 13 * 3600, len(payments))
    for n, (person, back, amount) in enumerate(
        zip(payments.person, payments.days_back, payments.amount, strict=True)
    ):
        rows.append(
            {
                "event_id": f"{ids[person]}-pay-{n}",
                "customer_id": ids[person],
                "event_type": "card_payment",
                "occurred_at": stamp(AS_OF - dt.timedelta(days=int(back)), int(seconds[n])),
                "properties": json.dumps({"card_type": "debit", "amount": float(amount)}),
            }
        )
    for i in np.flatnonzero(people.has_credit.to_numpy()):
        day = AS_OF - dt.timedelta(days=int(rng.integers(30, 5 * 365)))
        rows.append(
            {
                "event_id": f"{ids[i]}-open-credit",
                "customer_id": ids[i],
                "event_type": "product_opened",
                "occurred_at": stamp(day, int(rng.integers(0, 13 * 3600))),
                "properties": json.dumps({"product": "credit_card"}),
            }
        )
        for k in range(int(rng.poisson(6))):  # a few credit-card payments: not debit spending
            back = int(rng.integers(0, 180))
            rows.append(
                {
                    "event_id": f"{ids[i]}-credit-{k}",
                    "customer_id": ids[i],
                    "event_type": "card_payment",
                    "occurred_at": stamp(
                        AS_OF - dt.timedelta(days=back), int(rng.integers(0, 13 * 3600))
                    ),
                    "properties": json.dumps(
                        {"card_type": "credit", "amount": round(float(rng.uniform(20, 3000)), 2)}
                    ),
                }
            )
    return pd.DataFrame(rows)


def _pilot(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """The pilot: ``n`` debit-card holders with card spending in the 6 months before the pilot
    date and no credit card (the offer's audience then), the SMS to a random half.
    """
    people = _people(rng, 2 * n, PILOT_DATE)
    payments = _payments(rng, people, PILOT_DATE)
    features = _features(people, payments, PILOT_DATE)
    recent = np.bincount(
        payments.person[payments.days_back < 183], minlength=len(people)
    )  # six months
    eligible = np.flatnonzero((recent > 0) & people.has_debit & ~people.has_credit)[:n]
    if len(eligible) < n:
        raise RuntimeError(f"only {len(eligible)} eligible pilot customers, {n} wanted")
    table = features.iloc[eligible].reset_index(drop=True)
    baseline, uplift = true_effect(table)
    treated = rng.permutation(np.arange(n) < n // 2).astype(int)  # exactly half
    opened = (rng.random(n) < baseline + treated * uplift).astype(int)
    table.insert(0, "customer_id", [f"P{i:06d}" for i in range(1, n + 1)])
    table["treated"] = treated
    table["opened_credit_card"] = opened
    return table


def write_data(
    folder: Path, *, customers: int = 5_000, pilot: int = 20_000, seed: int = 2024
) -> dict[str, int]:
    """Write the five CSV files to ``folder`` and return their row counts.

    Parameters
    ----------
    folder
        Where to write (created when missing).
    customers
        Current customers of the bank.
    pilot
        Rows of the past randomised pilot.
    seed
        Seed of the one random generator everything is drawn from.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    people = _people(rng, customers, AS_OF)
    payments = _payments(rng, people, AS_OF)
    table = _customers(rng, people)
    events = _events(rng, table, people, payments)
    features = _features(people, payments, AS_OF)
    features.insert(0, "customer_id", table.customer_id)
    baseline, uplift = true_effect(features)
    truth = pd.DataFrame(
        {
            "customer_id": table.customer_id,
            "true_uplift": np.round(uplift, 5),
            "baseline_rate": np.round(baseline, 5),
        }
    )
    trial = _pilot(rng, pilot)
    files = {
        "customers.csv": table,
        "events.csv": events,
        "features.csv": features,
        "pilot.csv": trial,
        "truth.csv": truth,
    }
    for name, frame in files.items():
        frame.to_csv(folder / name, index=False, encoding="utf-8", lineterminator="\n")
    return {name: len(frame) for name, frame in files.items()}


def main() -> None:
    """Command line: ``python make_data.py [--customers N] [--pilot N] [--seed S] [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--pilot", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, default=HERE / "data")
    args = parser.parse_args()
    counts = write_data(args.out, customers=args.customers, pilot=args.pilot, seed=args.seed)
    for name, rows in counts.items():
        print(f"{args.out / name}: {rows:,} rows")


if __name__ == "__main__":
    main()
