"""The time axis of the generated world: demand by day, hour and time zone.

Times are drawn on a "demand clock": position ``y`` runs from 0 to ``total`` and each local day
takes up as much of it as its demand weight, so drawing ``y`` uniformly gives more events on busy
days. Converting ``y`` to a UTC timestamp goes through the local hour profile and the customer's
time zone.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

import numpy as np

from jingzhun.datagen._catalog import HOUR_WEIGHTS, MONTH_FACTORS, WEEKDAY_FACTORS, Region

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class Calendar:
    """Demand weights of each day in the window and the UTC offsets of each time zone.

    ``weights[d]`` is the demand on local day ``d`` (1.0 = an ordinary day), ``promo[d]`` the
    share of order lines sold at a discount that day, ``offsets[z, d]`` the UTC offset in
    seconds of time zone ``timezones[z]`` at noon of day ``d``.
    """

    start: dt.date
    days: int
    weights: np.ndarray
    cumulative: np.ndarray
    promo: np.ndarray
    timezones: tuple[str, ...]
    offsets: np.ndarray
    hour_cdf: np.ndarray

    @property
    def start_us(self) -> int:
        """Window start, 00:00 UTC of ``start``, in microseconds since the epoch."""
        return (self.start - _EPOCH).days * US_PER_DAY

    @property
    def end_us(self) -> int:
        """Window end (exclusive), in microseconds since the epoch."""
        return self.start_us + self.days * US_PER_DAY

    @property
    def total(self) -> float:
        """Length of the window on the demand clock."""
        return float(self.cumulative[-1])

    def day_of(self, y: np.ndarray) -> np.ndarray:
        """Local day index of demand-clock positions."""
        day = np.searchsorted(self.cumulative, y, side="right") - 1
        return np.clip(day, 0, self.days - 1)

    def day_of_us(self, us: np.ndarray, zone: int = 0) -> np.ndarray:
        """Local day index (in time zone ``zone``) of UTC microsecond timestamps."""
        utc_day = np.clip((us - self.start_us) // US_PER_DAY, 0, self.days - 1)
        local = us + (self.offsets[zone, utc_day] * US_PER_SECOND).astype(np.int64)
        return np.clip((local - self.start_us) // US_PER_DAY, 0, self.days - 1)

    def to_utc(self, y: np.ndarray, zone: np.ndarray | int) -> np.ndarray:
        """UTC microseconds of demand-clock positions for people in time zones ``zone``.

        The share of a day's demand already passed picks the local hour through the hourly
        profile. Local times that fall outside the UTC window (the first hours of a window in
        a zone east of UTC) are moved by one day, so every timestamp lies in the window.
        """
        day = self.day_of(y)
        frac = np.clip((y - self.cumulative[day]) / self.weights[day], 0.0, 1.0)
        hours = np.interp(frac, self.hour_cdf, np.arange(25, dtype=np.float64))
        local_s = day * 86_400.0 + np.minimum(hours, 24.0 - 1e-6) * 3600.0
        utc = self.start_us + np.round((local_s - self.offsets[zone, day]) * US_PER_SECOND)
        utc = utc.astype(np.int64)
        utc = np.where(utc < self.start_us, utc + US_PER_DAY, utc)
        utc = np.where(utc >= self.end_us, utc - US_PER_DAY, utc)
        return np.clip(utc, self.start_us, self.end_us - 1)

    def local_us(self, day: np.ndarray, seconds: np.ndarray | float, zone: int) -> np.ndarray:
        """UTC microseconds of a local wall-clock time on given days in one zone."""
        local_s = day * 86_400.0 + seconds
        return (self.start_us + np.round((local_s - self.offsets[zone, day]) * 1e6)).astype(
            np.int64
        )


def build_calendar(start: dt.date, days: int, area: Region) -> Calendar:
    """Demand weights for ``days`` days from ``start``: weekday x month x festival spikes."""
    dates = [start + dt.timedelta(days=d) for d in range(days)]
    spikes = np.array([area.spikes(d) for d in dates])
    month = np.array([MONTH_FACTORS[d.month - 1] for d in dates])
    weekday = np.array([WEEKDAY_FACTORS[d.weekday()] for d in dates])
    weights = month * weekday * spikes
    # Festival days sell much of their extra volume at a discount.
    promo = np.clip(0.12 + 0.12 * (spikes - 1.0), 0.05, 0.65)
    timezones = tuple(dict.fromkeys([area.timezone, *(c.timezone for c in area.cities)]))
    offsets = np.empty((len(timezones), days), dtype=np.float64)
    for z, name in enumerate(timezones):
        zone = zoneinfo.ZoneInfo(name)
        for d, date in enumerate(dates):
            noon = dt.datetime(date.year, date.month, date.day, 12, tzinfo=zone)
            offset = noon.utcoffset()
            offsets[z, d] = 0.0 if offset is None else offset.total_seconds()
    hours = np.asarray(HOUR_WEIGHTS, dtype=np.float64)
    hour_cdf = np.concatenate([[0.0], np.cumsum(hours) / hours.sum()])
    return Calendar(
        start=start,
        days=days,
        weights=weights,
        cumulative=np.concatenate([[0.0], np.cumsum(weights)]),
        promo=promo,
        timezones=timezones,
        offsets=offsets,
        hour_cdf=hour_cdf,
    )
