"""Checks made again just before a send: the suppression list and consent withdrawn since launch.

The plan checked consent, suppression and caps when it was made; a send may happen days later.
Someone who unsubscribed, bounced, complained or withdrew consent in between must not get the
message. Both lists are read incrementally (rows with a higher id than the last seen), and
read whole again every ``full_refresh_seconds`` to see deletions.

Consent: a message is stopped when the newest record about its customer key, or its e-mail or
phone on that channel, for the message's purpose (``payload["purpose"]``, default
``marketing``), is not a grant and was recorded after the message was queued. Records that
name a source customer id are not seen here (that needs the warehouse's identity map); they
counted at plan time.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable

from sqlalchemy import select

from jingzhun.campaigns import PHONE_DIGITS, Channel, normalise, suppression_address
from jingzhun.store import Consent, OperationalStore, QueuedMessage, Suppression

_PHONE_CHANNELS = frozenset({Channel.SMS.value, Channel.CALL_CENTRE.value})


def suppression_key(channel: str, address: str) -> str:
    """The form an address is compared in against the suppression list of its channel."""
    stored = suppression_address(Channel(channel), address)
    # phones match on their last nine digits, as the campaign planner does
    return stored[-PHONE_DIGITS:] if channel in _PHONE_CHANNELS else stored


class SendGuard:
    """The suppression list and recent consent records, kept in memory for the worker.

    Parameters
    ----------
    store
        The operational store.
    clock
        Monotonic seconds, for the full refresh.
    full_refresh_seconds
        How often both lists are read whole again.
    """

    def __init__(
        self,
        store: OperationalStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        full_refresh_seconds: float = 300.0,
    ) -> None:
        self.store = store
        self._clock = clock
        self._full_every = full_refresh_seconds
        self._loaded_at: float | None = None
        self._suppressed: dict[str, set[str]] = {}
        self._suppression_id = 0
        # (subject kind, subject, purpose, channel) -> (recorded_at, id, status)
        self._consents: dict[tuple[str, str, str, str], tuple[dt.datetime, int, str]] = {}
        self._consent_id = 0
        self._since: dt.datetime | None = None

    def refresh(self, since: dt.datetime) -> None:
        """Read what changed; ``since`` is the oldest queue time of the messages to check."""
        now = self._clock()
        if (
            self._loaded_at is None
            or now - self._loaded_at > self._full_every
            or (self._since is not None and since < self._since)
        ):
            self._suppressed = {}
            self._suppression_id = 0
            self._consents = {}
            self._consent_id = 0
            self._since = since
            self._loaded_at = now
        with self.store.session() as session:
            rows = session.execute(
                select(Suppression.id, Suppression.channel, Suppression.address).where(
                    Suppression.id > self._suppression_id
                )
            ).all()
            for row_id, channel, address in rows:
                self._suppressed.setdefault(channel, set()).add(suppression_key(channel, address))
                self._suppression_id = max(self._suppression_id, row_id)
            consents = session.execute(
                select(
                    Consent.id,
                    Consent.subject_kind,
                    Consent.subject,
                    Consent.purpose,
                    Consent.channel,
                    Consent.status,
                    Consent.recorded_at,
                ).where(
                    Consent.id > self._consent_id,
                    Consent.recorded_at >= (self._since or since),
                    Consent.subject_kind.in_(("customer_key", "email", "phone")),
                )
            ).all()
        for row_id, kind, subject, purpose, channel, status, at in consents:
            if kind == "phone":
                subject = subject[-PHONE_DIGITS:]
            key = (kind, subject, purpose, channel)
            known = self._consents.get(key)
            if known is None or (at, row_id) > known[:2]:
                self._consents[key] = (at, row_id, status)
            self._consent_id = max(self._consent_id, row_id)

    def suppress(self, channel: str, address: str) -> None:
        """Remember an address suppressed by this worker (a bounce) without reading again."""
        self._suppressed.setdefault(channel, set()).add(suppression_key(channel, address))

    def blocked(self, queued: QueuedMessage) -> str | None:
        """Why the message must not go (``suppressed``, ``consent withdrawn``), or None."""
        channel = queued.channel
        if suppression_key(channel, queued.address) in self._suppressed.get(channel, ()):
            return "the address is on the suppression list"
        purpose = str((queued.payload or {}).get("purpose") or "marketing")
        subjects = [("customer_key", queued.customer_key)]
        if channel == Channel.EMAIL.value:
            subjects.append(("email", normalise("email", queued.address)))
        elif channel in _PHONE_CHANNELS:
            subjects.append(("phone", re.sub(r"\D", "", queued.address)[-PHONE_DIGITS:]))
        newest: tuple[dt.datetime, int, str] | None = None
        for kind, subject in subjects:
            found = self._consents.get((kind, subject, purpose, channel))
            if found is not None and (newest is None or found[:2] > newest[:2]):
                newest = found
        if newest is not None and newest[2] != "granted" and newest[0] > queued.created_at:
            return f"consent {newest[2]} after the message was queued"
        return None
