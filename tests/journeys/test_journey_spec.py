"""Journey specs: the YAML language, its errors (file, line, field), schedules, quiet hours,
distances and splits — no warehouse needed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from jingzhun.campaigns import load_templates
from jingzhun.core import SpecError
from jingzhun.journeys import (
    TEMPLATES,
    Cron,
    ReEntry,
    StepKind,
    TriggerKind,
    check_journeys,
    idempotency_key,
    load_journey,
    load_journeys,
    parse_duration,
    split_arm,
    template_files,
)
from jingzhun.journeys._schedule import next_local_time, out_of_quiet_hours
from jingzhun.journeys._spec import SplitStep
from jingzhun.journeys._triggers import haversine_m_py

LONDON = ZoneInfo("Europe/London")


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yml"
    path.write_text(text)
    return path


def test_ready_journeys_load_and_name_templates_that_exist(tmp_path: Path) -> None:
    files = template_files()
    assert {f"journeys/{n}.yml" for n in TEMPLATES} <= set(files)
    specs = load_journeys(files["journeys/abandoned_cart.yml"].parent)
    templates = load_templates(files["journeys/abandoned_cart.yml"].parent / "messages")
    check_journeys(specs, templates, ["slipping_away"])
    cart = specs["abandoned_cart"]
    assert cart.trigger.kind is TriggerKind.EVENT
    assert cart.re_entry is ReEntry.AFTER and cart.re_entry_days == 7
    first = cart.steps[0]
    assert first.kind is StepKind.WAIT_FOR and first.wait_for.within == dt.timedelta(hours=1)
    assert specs["birthday"].trigger.kind is TriggerKind.ANNIVERSARY
    assert specs["dormant_comeback"].trigger.kind is TriggerKind.SEGMENT
    # a journey that names a segment the project lacks is caught across files
    with pytest.raises(SpecError, match="no segment named 'slipping_away'"):
        check_journeys(specs, templates, [])


def test_every_problem_is_reported_with_file_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad",
        """\
name: Bad
trigger: {event: added_to_cart, where: {price: {"~": 3}}}
re_entry: sometimes
steps:
  - id: one
    wait: 3 days
  - id: two
    sned: {channel: email}
""",
    )
    with pytest.raises(SpecError) as caught:
        load_journey(path)
    found = {(p.line, p.field) for p in caught.value.problems}
    assert (1, "name") in found
    assert (2, "trigger.where") in found
    assert (3, "re_entry") in found
    assert (6, "steps.0.wait") in found
    assert (7, "steps.1") in found
    assert all(p.file == path for p in caught.value.problems)
    text = str(caught.value)
    assert "bad.yml:6: field 'steps.0.wait' '3 days' is not a duration" in text


def test_graph_errors_name_the_step(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "graph",
        """\
trigger: {event: x}
steps:
  - id: a
    branch:
      - if: "frequency >= 2"
        goto: nowhere
""",
    )
    with pytest.raises(SpecError, match="step 'a' goes to 'nowhere', which is no step"):
        load_journey(path)
    loop = write(
        tmp_path,
        "loop",
        """\
trigger: {event: x}
steps:
  - id: a
    tag: {name: t}
    next: b
  - id: b
    tag: {name: u}
    next: a
""",
    )
    with pytest.raises(SpecError, match="steps loop without a wait: a → b → a"):
        load_journey(loop)


def test_a_bad_branch_rule_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rule",
        """\
trigger: {event: x}
steps:
  - id: a
    branch:
      - if:
          all:
            - frequency >>= 2
        goto: b
  - id: b
    exit: done
""",
    )
    with pytest.raises(SpecError) as caught:
        load_journey(path)
    problem = caught.value.problems[0]
    assert problem.file == path and problem.line == 7
    assert problem.field.startswith("steps.0.branch.0.if")


def test_triggers_of_every_kind_parse(tmp_path: Path) -> None:
    body = "steps:\n  - {id: a, exit: done}\n"
    kinds = {
        "e": ("trigger: {event: page, where: {path: [/a, /b]}}", TriggerKind.EVENT),
        "s": ("trigger: {segment: vip, change: exited}", TriggerKind.SEGMENT),
        "b": ("trigger: {birthday: true, days_before: 3}", TriggerKind.ANNIVERSARY),
        "c": ("trigger: {schedule: {cron: '0 9 * * MON'}, audience: vip}", TriggerKind.SCHEDULE),
        "l": (
            "trigger: {location: {radius_m: 150}}\nstores: [{id: s1, lat: 51.5, lon: -0.12}]",
            TriggerKind.LOCATION,
        ),
    }
    for name, (trigger, kind) in kinds.items():
        spec = load_journey(write(tmp_path, name, trigger + "\n" + body))
        assert spec.trigger.kind is kind, name
    with pytest.raises(SpecError, match="needs stores"):
        load_journey(write(tmp_path, "nostore", "trigger: {location: {}}\n" + body))
    with pytest.raises(SpecError, match="a trigger starts with one of"):
        load_journey(write(tmp_path, "what", "trigger: {when: now}\n" + body))


def test_durations() -> None:
    assert parse_duration("90s") == dt.timedelta(seconds=90)
    assert parse_duration("1h") == dt.timedelta(hours=1)
    assert parse_duration("2w") == dt.timedelta(days=14)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_cron_follows_posix_day_rules_and_local_time() -> None:
    cron = Cron.parse("30 9 * * MON-FRI")
    start = dt.datetime(2024, 3, 29, 0, 0, tzinfo=dt.UTC)  # a Friday; clocks change on Sunday
    end = start + dt.timedelta(days=5)
    times = cron.times(start, end, LONDON)
    assert [t.astimezone(LONDON).strftime("%a %H:%M") for t in times] == [
        "Fri 09:30",
        "Mon 09:30",
        "Tue 09:30",
    ]
    assert times[0].hour == 9 and times[1].hour == 8  # GMT, then BST
    # day of month OR weekday when both are restricted (POSIX)
    both = Cron.parse("0 0 1 * SUN")
    assert both.matches(dt.datetime(2024, 9, 1))  # the 1st (a Sunday)
    assert both.matches(dt.datetime(2024, 9, 8))  # a Sunday
    assert both.matches(dt.datetime(2024, 10, 1))  # the 1st, a Tuesday
    assert not both.matches(dt.datetime(2024, 10, 2))
    for bad in ("* * *", "61 * * * *", "0 9 * * XYZ", "*/0 * * * *"):
        with pytest.raises(ValueError):
            Cron.parse(bad)


def test_quiet_hours_and_local_times_in_the_customers_zone() -> None:
    quiet = (dt.time(21), dt.time(8))
    shanghai = ZoneInfo("Asia/Shanghai")
    late = dt.datetime(2024, 5, 1, 14, 30, tzinfo=dt.UTC)  # 22:30 in Shanghai, 15:30 in London
    assert out_of_quiet_hours(late, quiet, LONDON) == late
    moved = out_of_quiet_hours(late, quiet, shanghai)
    assert moved.astimezone(shanghai) == dt.datetime(2024, 5, 2, 8, 0, tzinfo=shanghai)
    early = dt.datetime(2024, 5, 1, 5, 0, tzinfo=dt.UTC)  # 06:00 in London
    assert out_of_quiet_hours(early, quiet, LONDON).astimezone(LONDON).hour == 8
    nine = next_local_time(late, dt.time(9), shanghai)
    assert nine.astimezone(shanghai) == dt.datetime(2024, 5, 2, 9, 0, tzinfo=shanghai)


def test_haversine_distance_london_to_paris() -> None:
    # Charing Cross to Notre-Dame: about 343.5 km on the sphere of mean radius
    d = haversine_m_py(51.5074, -0.1278, 48.8530, 2.3499)
    assert 342_000 < d < 345_000
    assert haversine_m_py(51.5, -0.12, 51.5, -0.12) == 0


def test_split_is_stable_per_customer_and_close_to_its_shares() -> None:
    step = SplitStep.model_validate(
        {"id": "ab", "seed": 7, "split": [{"share": 0.3, "goto": "a"}, {"share": 0.7, "goto": "b"}]}
    )
    arms = [split_arm(step, "j", f"ck_{i}") for i in range(20_000)]
    assert arms == [split_arm(step, "j", f"ck_{i}") for i in range(20_000)]
    share = arms.count("a") / len(arms)
    assert 0.28 < share < 0.32
    other = SplitStep.model_validate({**step.model_dump(), "seed": 8})
    assert [split_arm(other, "j", f"ck_{i}") for i in range(200)] != arms[:200]


def test_idempotency_keys_fit_the_queue_and_repeat_entries_differ() -> None:
    key = idempotency_key("abandoned_cart", "reminder", 1, "ck_gen_customers:W-00000001", "email")
    assert key == "journey:abandoned_cart:reminder:ck_gen_customers:W-00000001:email"
    again = idempotency_key("abandoned_cart", "reminder", 2, "ck_1", "email")
    assert again == "journey:abandoned_cart:reminder#2:ck_1:email"
    longest = idempotency_key("j" * 40, "s" * 40, 99, "k" * 80, "call_centre")
    assert len(longest) <= 200
