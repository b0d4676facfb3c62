"""Rate limits per channel (token buckets) and retry delays (exponential backoff with jitter)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """At most ``per_second`` messages a second on average, ``burst`` at once.

    Providers publish such limits (an SMS gateway's messages per second, an ESP's hourly
    quota); staying under them avoids 429s and greylisting.
    """

    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if self.per_second <= 0:
            raise ValueError(f"rate limit must be above 0 messages a second, not {self.per_second}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst}")


class TokenBucket:
    """A token bucket on an injectable clock: ``take()`` returns how long to wait first.

    Parameters
    ----------
    limit
        Refill rate and bucket size.
    clock
        Seconds on a monotonic clock.
    """

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self.limit = limit
        self._clock = clock
        self._tokens = float(limit.burst)
        self._at = clock()

    def take(self) -> float:
        """Take one token; the seconds to wait before using it (0 when one was there)."""
        now = self._clock()
        self._tokens = min(
            float(self.limit.burst), self._tokens + (now - self._at) * self.limit.per_second
        )
        self._at = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.limit.per_second


@dataclass(frozen=True)
class Backoff:
    """Retry delays: exponential, capped, with "equal jitter" and a seed.

    Attempt ``n`` (1 for the first retry) waits ``d/2 + U(0, d/2)`` seconds with
    ``d = min(max_seconds, base_seconds * 2**(n-1))``: retries of many messages spread out
    instead of hitting a recovering provider together, and never come back at once (Brooker,
    "Exponential Backoff And Jitter", AWS Architecture Blog, 2015). The draw is seeded by the
    seed, the message's key and the attempt, so a run can be replayed exactly.

    Parameters
    ----------
    max_attempts
        Attempts in all (the first included); after the last soft failure the message fails.
    """

    base_seconds: float = 60.0
    max_seconds: float = 3_600.0
    max_attempts: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.max_seconds < self.base_seconds:
            raise ValueError("backoff needs 0 < base_seconds <= max_seconds")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")

    def delay(self, idempotency_key: str, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) of a message."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        draw = random.Random(f"{self.seed}:{idempotency_key}:{attempt}").random()
        return ceiling / 2 + draw * ceiling / 2
