"""Quiet hours hold in each customer's own time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from jingzhun.campaigns import CampaignSpec
from jingzhun.campaigns._plan import _send_times

SPEC = CampaignSpec.model_validate(
    {
        "name": "c",
        "audience": "a",
        "channel": "sms",
        "quiet_hours": {"start": "21:00", "end": "08:00"},
        "send_window": {"start": "2024-07-01T07:00:00", "end": "2024-07-02T20:00:00"},
    }
)


def test_each_zone_gets_the_end_of_its_own_quiet_hours() -> None:
    zones = ["Asia/Shanghai", "America/New_York", None, "Not/AZone"]
    table = _send_times(SPEC, dt.date(2024, 6, 30), "Europe/London", zones).to_pylist()
    by_zone = {r["st_zone"]: r["st_send_at"] for r in table}
    for zone in ("Asia/Shanghai", "America/New_York"):
        local = by_zone[zone].astimezone(ZoneInfo(zone))
        assert (local.date(), local.hour, local.minute) == (dt.date(2024, 7, 1), 8, 0)
    london = by_zone["Europe/London"].astimezone(ZoneInfo("Europe/London"))
    assert london.hour == 8  # no zone: the project's
    bad = by_zone["Not/AZone"].astimezone(ZoneInfo("Europe/London"))
    assert bad.hour == 8  # an unknown zone name counts as the project's
    # 08:00 in Shanghai is 01:00 in New York's previous evening: the instants differ by 12 h
    gap = by_zone["America/New_York"] - by_zone["Asia/Shanghai"]
    assert gap == dt.timedelta(hours=12)
