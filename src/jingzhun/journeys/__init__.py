"""Journeys: triggered, multi-step customer journeys on top of campaigns and delivery.

``load_journeys(folder)`` reads ``journeys/*.yml`` into ``JourneySpec``; ``JourneyRunner``
enrols customers whose trigger fired (an event, a segment change, an anniversary, a
schedule, a visit near a store) and advances their steps, queueing messages for the
delivery worker each exactly once; ``backtest_journey`` replays a journey over history
without writing anything. ``runner_for(project, engine, store)`` builds the runner of a
project folder.
"""

from jingzhun.journeys._backtest import BacktestResult, backtest_journey
from jingzhun.journeys._check import SEND_CHANNELS, check_journeys
from jingzhun.journeys._machine import idempotency_key, split_arm
from jingzhun.journeys._runner import JourneyRunner, RunReport, journey_status, runner_for
from jingzhun.journeys._schedule import Cron
from jingzhun.journeys._spec import (
    END,
    SETTINGS_FILE,
    JourneySettings,
    JourneySpec,
    ReEntry,
    StepKind,
    TriggerKind,
    load_journey,
    load_journey_settings,
    load_journeys,
    parse_duration,
    parse_journey,
)
from jingzhun.journeys._templates import TEMPLATES, template_files
from jingzhun.journeys._triggers import CANDIDATES_SCHEMA, Window, haversine_m, trigger_candidates

__all__ = [
    "CANDIDATES_SCHEMA",
    "END",
    "SEND_CHANNELS",
    "SETTINGS_FILE",
    "TEMPLATES",
    "BacktestResult",
    "Cron",
    "JourneyRunner",
    "JourneySettings",
    "JourneySpec",
    "ReEntry",
    "RunReport",
    "StepKind",
    "TriggerKind",
    "Window",
    "backtest_journey",
    "check_journeys",
    "haversine_m",
    "idempotency_key",
    "journey_status",
    "load_journey",
    "load_journey_settings",
    "load_journeys",
    "parse_duration",
    "parse_journey",
    "runner_for",
    "split_arm",
    "template_files",
    "trigger_candidates",
]
