"""No personal data in logs (issue 11, item 3): everything a full demo run logged (every
logger, DEBUG and up), printed and said is searched for every e-mail and phone of the demo's
customers.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow.parquet as pq

DemoRun = Any  # tests/privacy/conftest.py: root, said, records, stdout, stderr


# aiosmtpd's "mail.log" is the receiving mail server the demo starts as a stand-in for the
# shop's real relay; at DEBUG it logs every envelope and DATA line it receives. It is not
# jingzhun's log, but it runs in the demo's process: jingzhun.demo._smtp_sink should set that
# logger to WARNING (see test below, which fails strictly once it does).
RECEIVING_SERVER = "mail.log"


def _needles(demo_run: DemoRun) -> dict[str, str]:
    customers = pq.read_table(demo_run.root / "data" / "generated" / "customers.parquet")
    needles: dict[str, str] = {}
    for row in customers.select(["customer_id", "email", "phone"]).to_pylist():
        if row["email"]:
            needles[row["email"].lower()] = f"e-mail of {row['customer_id']}"
        if row["phone"]:
            needles[row["phone"].lower()] = f"phone of {row['customer_id']}"
            digits = re.sub(r"\D", "", row["phone"])
            needles[digits] = f"phone (digits) of {row['customer_id']}"
            needles[digits[-10:]] = f"phone (national) of {row['customer_id']}"
    assert len(needles) > 300
    return needles


def _leaks(text: str, needles: dict[str, str]) -> list[str]:
    lowered = text.lower()
    return sorted({who for needle, who in needles.items() if needle in lowered})


def test_demo_run_logs_no_email_or_phone(demo_run: DemoRun) -> None:
    needles = _needles(demo_run)
    ours = "\n".join(text for name, text in demo_run.records if name != RECEIVING_SERVER)
    assert any(name.startswith("jingzhun.") for name, _ in demo_run.records)  # logs were kept
    everything = "\n".join([ours, demo_run.stdout, demo_run.stderr, *demo_run.said])
    assert _leaks(everything, needles) == []


def test_the_search_finds_a_leak(demo_run: DemoRun) -> None:
    needles = _needles(demo_run)
    email = next(n for n, who in needles.items() if who.startswith("e-mail"))
    assert _leaks(f"jingzhun.delivery INFO sent to {email.upper()}", needles)


def test_the_demo_smtp_sink_logs_no_recipient(demo_run: DemoRun) -> None:
    server = "\n".join(text for name, text in demo_run.records if name == RECEIVING_SERVER)
    assert _leaks(server, _needles(demo_run)) == []
