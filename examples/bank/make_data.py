"""Write the bank example's data files (seeded; run again to get the same files)."""

import csv
import datetime as dt
import json
import random
from pathlib import Path

HERE = Path(__file__).parent
rng = random.Random(2024)
AS_OF = dt.date(2024, 6, 30)
cities = ["Shanghai", "Beijing", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan"]
customers, events = [], []
for i in range(1, 61):
    cid = f"B{i:04d}"
    phone = rng.choice(
        [f"+86 138{rng.randrange(10**8):08d}", f"138{rng.randrange(10**8):08d}", "", "12345"]
    )
    customers.append(
        {
            "customer_id": cid,
            "name": f"客户{i}",
            "mobile": phone,
            "email": f"c{i}@example.cn" if rng.random() < 0.7 else "",
            "city": rng.choice(cities),
            "birth_date": (
                dt.date(1960, 1, 1) + dt.timedelta(days=rng.randrange(365 * 40))
            ).isoformat(),
            "marketing_sms": rng.choice(["yes", "no"]),
            "marketing_email": rng.choice(["yes", "no"]),
        }
    )
    if rng.random() < 0.8:  # holds a debit card
        events.append(
            {
                "event_id": f"{cid}-open-debit",
                "customer_id": cid,
                "event_type": "product_opened",
                "occurred_at": "2020-03-01T10:00:00Z",
                "properties": json.dumps({"product": "debit_card"}),
            }
        )
        for n in range(rng.randrange(0, 8)):
            day = AS_OF - dt.timedelta(days=rng.randrange(0, 400))
            events.append(
                {
                    "event_id": f"{cid}-pay-{n}",
                    "customer_id": cid,
                    "event_type": "card_payment",
                    "occurred_at": f"{day.isoformat()}T12:00:00Z",
                    "properties": json.dumps(
                        {"card_type": "debit", "amount": round(rng.uniform(5, 900), 2)}
                    ),
                }
            )
    if rng.random() < 0.3:  # holds a credit card
        events.append(
            {
                "event_id": f"{cid}-open-credit",
                "customer_id": cid,
                "event_type": "product_opened",
                "occurred_at": "2022-05-01T10:00:00Z",
                "properties": json.dumps({"product": "credit_card"}),
            }
        )
for name, rows in (("customers.csv", customers), ("events.csv", events)):
    with open(HERE / "data" / name, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
