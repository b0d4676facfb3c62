"""Attribution: every model on touch logs small enough to compute by hand, Markov on Bryl's
worked example, Shapley against a brute-force Shapley value, and on simulated journeys with
known channel effects, Markov and Shapley closer to the truth than last touch."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from helpers import REPO
from jingzhun.core import IngestError, SpecError
from jingzhun.measure import (
    MAX_SHAPLEY_CHANNELS,
    attribute,
    first_touch,
    journeys_from_touches,
    last_touch,
    linear,
    markov_removal_effect,
    position_based,
    shapley,
    share_errors,
    simulate_journeys,
    time_decay,
)


def touch_log(rows: list[tuple[str, str, str, int, float]]) -> pd.DataFrame:
    """(journey, time, channel, converted, value) rows as a touch log."""
    return pd.DataFrame(rows, columns=["journey_id", "timestamp", "channel", "converted", "value"])


# j1: email, search, display, converted (100); j2: search, converted (20);
# j3: email, display, no conversion; j4: display, email, email, converted (40).
SMALL = touch_log(
    [
        ("j1", "2024-01-01 00:00", "email", 1, 100.0),
        ("j1", "2024-01-02 00:00", "search", 1, 100.0),
        ("j1", "2024-01-03 00:00", "display", 1, 100.0),
        ("j2", "2024-01-01 00:00", "search", 1, 20.0),
        ("j3", "2024-01-01 00:00", "email", 0, 0.0),
        ("j3", "2024-01-02 00:00", "display", 0, 0.0),
        # written out of time order: the log is sorted by time within each journey
        ("j4", "2024-01-02 00:00", "email", 1, 40.0),
        ("j4", "2024-01-01 00:00", "display", 1, 40.0),
        ("j4", "2024-01-01 12:00", "email", 1, 40.0),
    ]
)


@pytest.fixture(scope="module")
def small():
    return journeys_from_touches(SMALL, value_col="value")


def test_paths_of_a_flag_log(small) -> None:
    assert small.channels == ("display", "email", "search")
    assert small.paths["journey"].tolist() == ["j1", "j2", "j3", "j4"]
    assert small.paths["conversions"].tolist() == [1, 1, 0, 1]
    assert small.conversions == 3 and small.value == 160
    j4 = small.touches[small.touches["path"] == 3]
    assert j4["channel"].tolist() == ["display", "email", "email"]
    assert j4["position"].tolist() == [0, 1, 2] and set(j4["length"]) == {3}


def test_first_and_last_touch_by_hand(small) -> None:
    first = first_touch(small)
    assert first.conversions == {"display": 1.0, "email": 1.0, "search": 1.0}
    assert first.value == {"display": 40.0, "email": 100.0, "search": 20.0}
    last = last_touch(small)
    assert last.conversions == {"display": 1.0, "email": 1.0, "search": 1.0}
    assert last.value == {"display": 100.0, "email": 40.0, "search": 20.0}


def test_linear_by_hand(small) -> None:
    credit = linear(small)
    # j1 a third to each; j2 all to search; j4 a third to display, two thirds to email
    assert credit.conversions == pytest.approx({"display": 2 / 3, "email": 1.0, "search": 4 / 3})
    assert credit.value == pytest.approx(
        {"display": 140 / 3, "email": 60.0, "search": 100 / 3 + 20}
    )


def test_time_decay_by_hand(small) -> None:
    credit = time_decay(small, dt.timedelta(days=1))
    # j1 converts at its last touch: ages 2, 1, 0 days -> weights 1/4, 1/2, 1 (sum 7/4)
    # j4 converts on Jan 2: display 1 day old (1/2), email half a day (2^-0.5) and 0 (1)
    j4_total = 0.5 + 2**-0.5 + 1
    assert credit.conversions == pytest.approx(
        {
            "display": 4 / 7 + 0.5 / j4_total,
            "email": 1 / 7 + (2**-0.5 + 1) / j4_total,
            "search": 2 / 7 + 1,
        },
        rel=1e-12,
    )
    # a long half-life tends to linear, a short one to last touch
    assert time_decay(small, dt.timedelta(days=10_000)).conversions == pytest.approx(
        linear(small).conversions, rel=1e-3
    )
    assert time_decay(small, dt.timedelta(seconds=1)).conversions == pytest.approx(
        last_touch(small).conversions, abs=1e-9
    )
    with pytest.raises(ValueError, match="positive"):
        time_decay(small, dt.timedelta(0))


def test_position_based_by_hand(small) -> None:
    credit = position_based(small)
    # j1: 0.4 / 0.2 / 0.4; j2: one touch gets all; j4: display 0.4, email 0.2 + 0.4
    assert credit.conversions == pytest.approx({"display": 0.8, "email": 1.0, "search": 1.2})
    two = journeys_from_touches(
        touch_log([("a", "2024-01-01", "search", 1, 0.0), ("a", "2024-01-03", "display", 1, 0.0)])
    )
    # two touches split first : last
    assert position_based(two, first=0.3, last=0.5).conversions == pytest.approx(
        {"display": 0.625, "search": 0.375}
    )
    with pytest.raises(ValueError, match="at most 1"):
        position_based(two, first=0.7, last=0.5)


# Bryl' 2016, "Marketing Multi-Channel Attribution model with R" (analyzecore.com): paths
# C1 > C2 > C3 (converts), C1 (null), C2 > C3 (null). P(conversion) = 1/3; removal effects
# C1 0.5, C2 1, C3 1; credit 0.2 / 0.4 / 0.4 of the one conversion.
BRYL = pd.DataFrame(
    {
        "journey_id": ["a", "a", "a", "b", "c", "c"],
        "timestamp": pd.to_datetime(
            ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-01", "2024-01-01", "2024-01-02"]
        ),
        "channel": ["C1", "C2", "C3", "C1", "C2", "C3"],
        "converted": [1, 1, 1, 0, 0, 0],
    }
)


@pytest.mark.parametrize("order", [1, 2])
def test_markov_on_the_textbook_example(order: int) -> None:
    credit = markov_removal_effect(journeys_from_touches(BRYL), order=order)
    assert credit.conversion_probability == pytest.approx(1 / 3, rel=1e-12)
    # Second order: states (C1), (C1,C2), (C2,C3), (C2); removing C1 leaves start -> (C2)
    # -> (C2,C3) -> conversion, 1/3 * 1/2 = 1/6, the same effects as the first order.
    assert credit.removal_effects == pytest.approx({"C1": 0.5, "C2": 1.0, "C3": 1.0}, rel=1e-12)
    assert credit.conversions == pytest.approx({"C1": 0.2, "C2": 0.4, "C3": 0.4}, rel=1e-12)


def test_markov_second_order_differs_when_history_matters() -> None:
    # A > B converts, B > B does not (twice), B alone converts. The first order mixes every
    # B; the second tells (A,B) [always converts] from (B,B) [never].
    log = touch_log(
        [
            ("p", "2024-01-01", "A", 1, 0.0),
            ("p", "2024-01-02", "B", 1, 0.0),
            ("q", "2024-01-01", "B", 0, 0.0),
            ("q", "2024-01-02", "B", 0, 0.0),
            ("r", "2024-01-01", "B", 0, 0.0),
            ("r", "2024-01-02", "B", 0, 0.0),
            ("s", "2024-01-01", "B", 1, 0.0),
        ]
    )
    journeys = journeys_from_touches(log)
    first = markov_removal_effect(journeys, 1)
    # order 1: start -> A 1/4, -> B 3/4; A -> B 1; B -> B, conversion, null 2/6 each:
    # P(conversion from B) = (1/3) / (1 - 1/3) = 1/2, P = 1/2; without A: 3/4 * 1/2 = 3/8
    assert first.conversion_probability == pytest.approx(0.5, rel=1e-12)
    assert first.removal_effects == pytest.approx({"A": 0.25, "B": 1.0}, rel=1e-12)
    assert first.conversions == pytest.approx({"A": 0.4, "B": 1.6}, rel=1e-12)
    second = markov_removal_effect(journeys, 2)
    # order 2: start -> (A) 1/4 -> (A,B) -> conversion; start -> (B) 3/4: (B) -> (B,B) 2/3,
    # -> conversion 1/3; (B,B) -> null. P = 1/4 + 3/4 * 1/3 = 1/2; without A: 1/4
    assert second.conversion_probability == pytest.approx(0.5, rel=1e-12)
    assert second.removal_effects == pytest.approx({"A": 0.5, "B": 1.0}, rel=1e-12)
    assert second.conversions == pytest.approx({"A": 2 / 3, "B": 4 / 3}, rel=1e-12)


def _brute_force_shapley(worth: dict[frozenset[str], float], players: list[str]) -> dict:
    """Shapley values by averaging marginal contributions over every order of the players."""
    totals = dict.fromkeys(players, 0.0)
    orders = list(itertools.permutations(players))
    for order in orders:
        so_far: frozenset[str] = frozenset()
        for player in order:
            with_player = so_far | {player}
            totals[player] += worth.get(with_player, 0.0) - worth.get(so_far, 0.0)
            so_far = with_player
    return {p: v / len(orders) for p, v in totals.items()}


def test_shapley_by_hand() -> None:
    rows = []
    # {A}: 2 paths, 1 converts; {B}: 4 paths, 1 converts; {A,B}: 2 paths, both convert;
    # {A,B,C}: 1 path, converts. No path touched C alone, {A,C} or {B,C}: worth 0.
    sets = [("A",)] * 2 + [("B",)] * 4 + [("A", "B")] * 2 + [("A", "B", "C")]
    converted = [1, 0, 1, 0, 0, 0, 1, 1, 1]
    for index, (channels, flag) in enumerate(zip(sets, converted, strict=True)):
        for position, channel in enumerate(channels):
            rows.append((f"j{index}", f"2024-01-0{position + 1}", channel, flag, 0.0))
    journeys = journeys_from_touches(touch_log(rows))
    credit = shapley(journeys)
    # game {A,B}: v(A) = 1/2, v(B) = 1/4, v(AB) = 1 -> A 5/8, B 3/8 per path (2 paths)
    # game {A,B,C}: dividends A 1/2, B 1/4, AB 1/4, AC -1/2, BC -1/4, ABC 3/4
    #   -> A 5/8, B 1/2, C -1/8 (C only ever lowers the rate of the sets it joins)
    expected = {"A": 1 + 2 * 5 / 8 + 5 / 8, "B": 1 + 2 * 3 / 8 + 1 / 2, "C": -1 / 8}
    assert credit.conversions == pytest.approx(expected, rel=1e-12)
    assert sum(credit.conversions.values()) == pytest.approx(5.0, rel=1e-12)  # efficiency

    worth = {
        frozenset("A"): 0.5,
        frozenset("B"): 0.25,
        frozenset("AB"): 1.0,
        frozenset("ABC"): 1.0,
    }
    brute = _brute_force_shapley(worth, ["A", "B", "C"])
    assert brute == pytest.approx({"A": 5 / 8, "B": 1 / 2, "C": -1 / 8}, rel=1e-12)
    pair = _brute_force_shapley(worth, ["A", "B"])
    assert pair == pytest.approx({"A": 5 / 8, "B": 3 / 8}, rel=1e-12)


def test_shapley_matches_brute_force_on_random_paths() -> None:
    sim = simulate_journeys(400, {"a": 0.1, "b": 0.2, "c": 0.05, "d": 0.15}, 0.1, seed=3)
    journeys = journeys_from_touches(sim.touches)
    credit = shapley(journeys)
    # brute force: per distinct set, the game over its subsets with worth = conversion rate
    per_path = sim.touches.groupby("journey_id").agg(
        channels=("channel", lambda c: frozenset(c)), converted=("converted", "first")
    )
    rates = per_path.groupby("channels")["converted"].mean().to_dict()
    sizes = per_path.groupby("channels").size().to_dict()
    expected = dict.fromkeys(journeys.channels, 0.0)
    for channel_set, n in sizes.items():
        worth = {s: r for s, r in rates.items() if s <= channel_set}
        for channel, value in _brute_force_shapley(worth, sorted(channel_set)).items():
            expected[channel] += n * value
    assert credit.conversions == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_every_model_hands_out_every_conversion() -> None:
    sim = simulate_journeys(3_000, {"a": 0.1, "b": 0.2, "c": 0.05}, 0.1, seed=11)
    report = attribute(sim.touches)
    total = float(sim.touches.groupby("journey_id")["converted"].first().sum())
    assert report.conversions == total
    for credit in report.credits.values():
        assert math.fsum(credit.conversions.values()) == pytest.approx(total, rel=1e-9)
        assert math.fsum(credit.shares.values()) == pytest.approx(1.0, rel=1e-12)
    payload = json.loads(json.dumps(report.to_dict()))
    assert set(payload["models"]) == {
        "first_touch",
        "last_touch",
        "linear",
        "time_decay",
        "position_based",
        "markov",
        "shapley",
    }
    assert payload["models"]["markov"]["removal_effects"].keys() == {"a", "b", "c"}


def test_conversion_events_close_paths() -> None:
    log = pd.DataFrame(
        {
            "customer": ["a", "a", "a", "a", "a", "b", "b", "c"],
            "at": [
                "2024-01-01",
                "2024-01-02",
                "2024-01-03",
                "2024-01-05",
                "2024-01-06",
                "2024-01-01",
                "2024-01-01",  # an order at the same time as the touch: the touch is first
                "2024-01-04",
            ],
            "channel": ["email", "search", "order", "order", "display", "order", "search", "order"],
            "revenue": [None, None, 30, 20, None, 10, None, 5],
        }
    )
    journeys = journeys_from_touches(
        log,
        journey_col="customer",
        time_col="at",
        conversion_col=None,
        conversion_event="order",
        value_col="revenue",
    )
    # a: (email, search) -> order 30; then an order with no touch since; then display, open
    # b: search -> order 10; c: an order with no touch at all
    assert journeys.paths["journey"].tolist() == ["a", "a", "b"]
    assert journeys.paths["conversions"].tolist() == [1, 0, 1]
    assert journeys.paths["value"].tolist() == [30, 0, 10]
    assert (journeys.unattributed_conversions, journeys.unattributed_value) == (2, 25)
    report = attribute(journeys, models=["last_touch", "linear"])
    assert report.credits["last_touch"].value == {"display": 0.0, "email": 0.0, "search": 40.0}
    assert report.credits["linear"].conversions == {"display": 0.0, "email": 0.5, "search": 1.5}
    assert (report.journeys, report.paths, report.converting_paths) == (2, 3, 2)
    assert report.to_dict()["unattributed_conversions"] == 2


# Four channels; display works hardest and comes early, search works least, comes last and
# is touched twice as often: the pattern that makes last-touch credit the harvester.
EFFECTS = {"display": 0.06, "social": 0.03, "email": 0.04, "search": 0.01}
STAGES = {"display": 0.1, "social": 0.3, "email": 0.6, "search": 0.9}


@pytest.fixture(scope="module")
def simulated():
    sim = simulate_journeys(
        20_000, EFFECTS, 0.02, seed=7, channel_weights={"search": 2.0}, channel_stages=STAGES
    )
    return sim, attribute(sim.touches)


def test_simulated_journeys_know_their_truth(simulated) -> None:
    sim, _ = simulated
    again = simulate_journeys(
        20_000, EFFECTS, 0.02, seed=7, channel_weights={"search": 2.0}, channel_stages=STAGES
    )
    pd.testing.assert_frame_equal(sim.touches, again.touches)  # seeded
    assert sim.true_conversions == {c: EFFECTS[c] * sim.exposed[c] for c in EFFECTS}
    converted = sim.touches.groupby("journey_id")["converted"].first()
    expected = sim.baseline_conversions + sum(sim.true_conversions.values())
    # the realised conversions lie within 4 standard errors of the expected ones
    assert abs(converted.sum() - expected) < 4 * math.sqrt(expected)
    assert sum(sim.true_shares.values()) == pytest.approx(1.0)
    order = sim.touches.assign(pos=sim.touches.groupby("journey_id").cumcount())
    mean_position = order.groupby("channel")["pos"].mean()
    assert mean_position["display"] < mean_position["search"]  # stages order the touches


def test_markov_and_shapley_beat_last_touch_on_simulated_journeys(simulated) -> None:
    sim, report = simulated
    errors = share_errors(report, sim.true_conversions)
    # mean absolute error of the credit shares against the true shares (seed 7):
    # shapley 0.036, first_touch 0.095, linear 0.111, markov 0.119, position_based 0.119,
    # time_decay 0.123, last_touch 0.278
    assert errors["markov"] < errors["last_touch"]
    assert errors["shapley"] < errors["last_touch"]
    assert errors["shapley"] == min(errors.values())
    assert errors == pytest.approx(
        {
            "shapley": 0.036,
            "first_touch": 0.095,
            "linear": 0.111,
            "markov": 0.119,
            "position_based": 0.119,
            "time_decay": 0.123,
            "last_touch": 0.278,
        },
        abs=0.0005,
    )
    # last touch hands the late, weak channel most of the credit
    assert report.shares("last_touch")["search"] > 0.6 > sim.true_shares["search"] * 5


def test_share_errors_by_hand() -> None:
    report = attribute(BRYL, models=["markov", "last_touch"])
    errors = share_errors(report, {"C1": 1.0, "C2": 1.0, "C3": 2.0})
    # truth 0.25 / 0.25 / 0.5; markov 0.2 / 0.4 / 0.4; last touch 0 / 0 / 1
    assert errors["markov"] == pytest.approx((0.05 + 0.15 + 0.1) / 3)
    assert errors["last_touch"] == pytest.approx((0.25 + 0.25 + 0.5) / 3)
    with pytest.raises(ValueError, match="add up to 0"):
        share_errors(report, {"C1": 0.0})


def test_simulation_rejects_impossible_effects() -> None:
    with pytest.raises(ValueError, match="above 1"):
        simulate_journeys(10, {"a": 0.6, "b": 0.5}, 0.1, seed=1)
    with pytest.raises(ValueError, match="non-negative"):
        simulate_journeys(10, {"a": -0.1}, 0.1, seed=1)


def test_errors_name_file_row_and_column() -> None:
    with pytest.raises(IngestError) as missing:
        attribute(SMALL.drop(columns="channel"), source="touches.csv")
    assert missing.value.column == "channel" and "touches.csv" in str(missing.value)

    bad_time = SMALL.copy()
    bad_time.loc[4, "timestamp"] = "yesterday"
    with pytest.raises(IngestError) as when:
        attribute(bad_time, source="touches.csv")
    assert (when.value.row, when.value.column) == (6, "timestamp")  # header is line 1
    assert "'yesterday' is not a date" in str(when.value)

    no_channel = SMALL.copy()
    no_channel.loc[2, "channel"] = None
    with pytest.raises(IngestError) as empty:
        attribute(no_channel, row_offset=1)
    assert (empty.value.row, empty.value.column) == (3, "channel")

    negative = SMALL.copy()
    negative.loc[1, "converted"] = -1
    with pytest.raises(IngestError, match="negative") as neg:
        attribute(negative)
    assert neg.value.row == 3

    text = SMALL.copy()
    text["converted"] = text["converted"].astype(str)
    text.loc[0, "converted"] = "yes"
    with pytest.raises(IngestError, match="'yes' is not a number"):
        attribute(text)

    with pytest.raises(SpecError, match="'lastclick' is not one of"):
        attribute(SMALL, models=["lastclick"])
    with pytest.raises(SpecError, match="not both or neither"):
        attribute(SMALL, conversion_event="order")
    with pytest.raises(SpecError, match="markov_order"):
        attribute(SMALL, markov_order=0)
    with pytest.raises(IngestError, match="no rows"):
        attribute(SMALL.iloc[0:0])


def test_shapley_is_capped_at_twelve_channels() -> None:
    channels = [f"ch{i:02d}" for i in range(MAX_SHAPLEY_CHANNELS + 1)]
    log = touch_log([(f"j{i}", "2024-01-01", ch, i % 2, 0.0) for i, ch in enumerate(channels)])
    with pytest.raises(IngestError, match="limited to 12 channels") as error:
        attribute(log)
    assert error.value.column == "channel" and "leave shapley" in error.value.hint
    report = attribute(log, models=["linear", "markov"])  # the others still run
    assert len(report.channels) == 13
    twelve = attribute(log[log["channel"] != "ch12"], models=["shapley"])
    assert np.isclose(sum(twelve.credits["shapley"].conversions.values()), 6.0)


def test_the_readme_quotes_these_figures(simulated) -> None:
    sim, report = simulated
    errors = share_errors(report, sim.true_conversions)
    readme = REPO / "src" / "jingzhun" / "measure" / "README.md"
    quoted = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip(" *%") for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in {*report.credits, "truth"}:
            quoted[cells[0]] = [float(c) for c in cells[1:] if c]
    assert set(quoted) == {*report.credits, "truth"}
    channels = ["display", "social", "email", "search"]
    assert quoted["truth"] == [round(sim.true_shares[c] * 100, 1) for c in channels]
    for model, numbers in quoted.items():
        if model == "truth":
            continue
        shares = report.shares(model)
        assert numbers[:4] == [round(shares[c] * 100, 1) for c in channels], model
        assert numbers[4] == round(errors[model], 3), model
