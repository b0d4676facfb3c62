"""``Worker``: sends due messages from the delivery queue, exactly once per idempotency key.

One run (``run_once``):

1. **Recover** claims whose worker died: ``sending`` rows older than the lease, or claimed by
   an earlier run of this worker id (known dead: this run holds its journal's lock). The
   journal says, per message, whether it was never attempted (send it), answered (record the
   answer) or in flight; a message in flight is looked up at the provider by its
   ``Message-ID`` once ``settle_seconds`` have passed since the attempt. When the provider
   cannot be asked, the channel's ``in_doubt`` policy decides: ``hold`` (mark it
   ``in_doubt`` for a person: never twice, maybe never) or ``resend`` (maybe twice).
2. **Claim** a batch of due messages (one transaction: ``sending`` + worker id), then for each:
   check the suppression list and consent again, render it, wait for the channel's rate
   limit, write "attempt" to the journal, send, write the answer to the journal.
3. **Record** the batch's outcomes in one transaction; hard bounces and complaints suppress
   the address; soft failures wait ``Backoff.delay`` (or the provider's ``Retry-After``);
   then the journal is cleared. Repeat until nothing is due.

A message is never sent on a claim older than half the lease: a batch that is slowed down
(rate limits, a slow provider) gives its remaining claims back instead.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from jingzhun.core import EngineError
from jingzhun.delivery._channels import (
    DeliveryChannel,
    OutboundMessage,
    SendResult,
    SendStatus,
    scrub,
)
from jingzhun.delivery._guards import SendGuard
from jingzhun.delivery._journal import JournalEntry, SendJournal
from jingzhun.delivery._limits import Backoff, RateLimit, TokenBucket
from jingzhun.delivery._log import Claim, DeliveryLog, Outcome
from jingzhun.store import OperationalStore, QueuedMessage
from jingzhun.store._delivery_models import DeliveryStatus

logger = logging.getLogger("jingzhun.delivery")

Render = Callable[[QueuedMessage], OutboundMessage]


class InDoubt(StrEnum):
    """What to do with a message that was in flight when its worker died, when the provider
    cannot be asked whether it has it.
    """

    HOLD = "hold"  # mark it in_doubt: never sent twice, possibly not at all
    RESEND = "resend"  # send it again: always arrives, possibly twice


@dataclass
class DeliveryReport:
    """What one or more runs did, in messages."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    bounced: int = 0
    complained: int = 0
    suppressed: int = 0
    in_doubt: int = 0
    recovered: int = 0
    released: int = 0
    seconds: float = 0.0

    def add(self, other: DeliveryReport) -> None:
        """Add another report's counts to this one."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


_COUNTER = {
    DeliveryStatus.SENT: "sent",
    DeliveryStatus.RETRY: "retried",
    DeliveryStatus.FAILED: "failed",
    DeliveryStatus.BOUNCED: "bounced",
    DeliveryStatus.COMPLAINED: "complained",
    DeliveryStatus.SUPPRESSED: "suppressed",
    DeliveryStatus.IN_DOUBT: "in_doubt",
}


def render_from_payload(queued: QueuedMessage) -> OutboundMessage:
    """A message whose content was rendered at launch into the queue payload.

    Reads ``subject``, ``html``, ``text``, ``body`` (SMS, push, talking points), ``headers``
    and ``metadata`` from ``payload``; the variant goes into the metadata.

    Raises
    ------
    ValueError
        The payload holds no content (the worker then fails that message).
    """
    payload = dict(queued.payload or {})
    parts = {name: str(payload.get(name) or "") for name in ("subject", "html", "text", "body")}
    if not any(parts.values()):
        raise ValueError(
            f"message {queued.idempotency_key} has no subject, html, text or body in its "
            "payload; launch the campaign with its content, or give the worker a renderer"
        )
    metadata = dict(payload.get("metadata") or {})
    metadata.setdefault("variant", queued.variant)
    return OutboundMessage(
        idempotency_key=queued.idempotency_key,
        recipient=queued.address,
        customer_key=queued.customer_key,
        campaign=queued.campaign,
        headers=dict(payload.get("headers") or {}),
        metadata=metadata,
        **parts,
    )


class Worker:
    """Sends the delivery queue's due messages through the channels, recording every step.

    Parameters
    ----------
    store
        The operational store (migrated).
    channels
        Channel name (``email``, ``sms``, ...) → channel; messages of other channels wait.
    render
        Queue row → rendered message (``render_from_payload``, or the template renderer).
    batch_size
        Messages claimed, sent and recorded together. Larger is faster; it is also how many
        messages a crash can leave to the journal and the lookup.
    rate_limits
        Channel name → ``RateLimit``.
    backoff
        Retry delays and the number of attempts.
    lease_seconds
        After this long a ``sending`` claim of another worker counts as abandoned. Keep it
        well above a batch's sending time plus ``settle_seconds``.
    settle_seconds
        How long after an attempt a provider's answer to "do you have it?" can be trusted.
    in_doubt
        ``hold`` or ``resend``, for every channel or per channel name.
    worker_id
        Unique among running workers (default: the host name); names the claims.
    journal
        The journal file; None runs without one (recovery then waits for the lease and asks
        the provider about every claim of the batch).
    clock
        Aware UTC now; rate limits and backoff use it too, so a test can run time forward.
    sleep
        Waits for rate limits and settling (tests pass one that moves their clock).

    A worker is used from one thread at a time; run several workers (threads, processes or
    machines) with different ids to send in parallel.
    """

    def __init__(
        self,
        store: OperationalStore,
        channels: Mapping[str, DeliveryChannel],
        render: Render = render_from_payload,
        *,
        batch_size: int = 100,
        rate_limits: Mapping[str, RateLimit] | None = None,
        backoff: Backoff | None = None,
        lease_seconds: float = 300.0,
        settle_seconds: float = 10.0,
        in_doubt: InDoubt | str | Mapping[str, InDoubt | str] = InDoubt.HOLD,
        worker_id: str | None = None,
        journal: Path | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if lease_seconds <= 0 or settle_seconds < 0:
            raise ValueError("lease_seconds must be above 0 and settle_seconds at least 0")
        self.store = store
        self.channels = dict(channels)
        self.render = render
        self.batch_size = batch_size
        self.rate_limits = dict(rate_limits or {})
        self.backoff = backoff or Backoff()
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.settle_seconds = settle_seconds
        if isinstance(in_doubt, Mapping):
            self.in_doubt = {name: InDoubt(policy) for name, policy in in_doubt.items()}
            self._in_doubt_default = InDoubt.HOLD
        else:
            self.in_doubt = {}
            self._in_doubt_default = InDoubt(in_doubt)
        self.worker_id = worker_id or socket.gethostname()
        if "/" in self.worker_id or len(self.worker_id) > 100:
            raise ValueError(f"worker id '{self.worker_id}' must be under 100 characters, no '/'")
        self.owner = f"{self.worker_id}/{uuid.uuid4().hex[:12]}"
        self.log = DeliveryLog(store)
        self.guard = SendGuard(store)
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._sleep = sleep
        self._journal_path = journal
        self._journal: SendJournal | None = None
        self._buckets = {
            name: TokenBucket(limit, self._seconds) for name, limit in self.rate_limits.items()
        }
        self._down: set[str] = set()
        self._stop = threading.Event()

    def _seconds(self) -> float:
        return self._clock().timestamp()

    def _policy(self, channel: str) -> InDoubt:
        return self.in_doubt.get(channel, self._in_doubt_default)

    def _claim_limit(self, channel: str) -> int:
        """A batch, or for a rate-limited channel what it can send in a quarter of the lease
        (so claims are sent long before the lease ends).
        """
        limit = self.rate_limits.get(channel)
        if limit is None:
            return self.batch_size
        quarter = self.lease.total_seconds() / 4
        return max(1, min(self.batch_size, int(limit.per_second * quarter) + limit.burst))

    def _message_id(self, channel: str, key: str) -> str:
        return self.channels[channel].message_id_for(key)

    def _open(self) -> None:
        if self._journal is None and self._journal_path is not None:
            self._journal = SendJournal(self._journal_path)

    # -- one run -----------------------------------------------------------------------------

    def run_once(self, stop_event: threading.Event | None = None) -> DeliveryReport:
        """Recover abandoned claims, then send everything due now, batch by batch.

        Parameters
        ----------
        stop_event
            Set it (e.g. on SIGTERM) to stop after the current batch.

        Raises
        ------
        jingzhun.core.EngineError
            A channel cannot work at all (refused login, ...); the batch's unsent messages
            were given back first.
        """
        started = time.perf_counter()
        stop = stop_event or self._stop
        self._open()
        self._down = set()
        report = self._recover()
        try:
            progressed = True
            while progressed and not stop.is_set():
                progressed = False
                # one batch per channel in turn: an e-mail batch is one SMTP session, and a
                # slow, rate-limited channel does not hold up the others' claims
                for name in sorted(self.channels):
                    if name in self._down or stop.is_set():
                        continue
                    claims = self.log.claim(
                        channels={name},
                        owner=self.owner,
                        now=self._clock(),
                        limit=self._claim_limit(name),
                        message_id_for=self._message_id,
                    )
                    if claims:
                        progressed = True
                        report.add(self._send_batch(claims))
        finally:
            for channel in self.channels.values():
                channel.close()
        report.seconds = time.perf_counter() - started
        if report.claimed or report.recovered:
            logger.info("delivery run: %s", report.to_dict())
        return report

    def run_forever(
        self, poll_seconds: float = 5.0, stop_event: threading.Event | None = None
    ) -> DeliveryReport:
        """Run again and again, ``poll_seconds`` apart, until ``stop_event`` is set."""
        stop = stop_event or self._stop
        total = DeliveryReport()
        while not stop.is_set():
            total.add(self.run_once(stop))
            if stop.wait(poll_seconds):
                break
        return total

    def stop(self) -> None:
        """Ask ``run_forever`` (without its own stop event) to end after the current batch."""
        self._stop.set()

    def close(self) -> None:
        """Close the channels and release the journal."""
        for channel in self.channels.values():
            channel.close()
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending -----------------------------------------------------------------------------

    def _send_batch(self, claims: list[Claim]) -> DeliveryReport:
        report = DeliveryReport(claimed=len(claims))
        self.guard.refresh(min(c.queue.created_at for c in claims))
        outcomes: list[Outcome] = []
        failure: EngineError | None = None
        for claim in claims:
            queued = claim.queue
            name = queued.channel
            if failure is not None or name in self._down:
                outcomes.append(self._release(claim))
                continue
            if self._clock() - claim.claimed_at > self.lease / 2:
                outcomes.append(self._release(claim))
                continue
            reason = self.guard.blocked(queued)
            if reason is not None:
                outcomes.append(Outcome(claim, DeliveryStatus.SUPPRESSED, False, error=reason))
                continue
            try:
                message = self.render(queued)
            except Exception as exc:  # a broken template fails its message, not the run
                error = scrub(f"could not render: {type(exc).__name__}: {exc}", queued.address)
                outcomes.append(Outcome(claim, DeliveryStatus.FAILED, False, error=error))
                continue
            bucket = self._buckets.get(name)
            if bucket is not None:
                wait = bucket.take()
                if wait > 0:
                    self._sleep(wait)
            if self._journal is not None:
                self._journal.attempt(claim.idempotency_key, self._seconds())
            try:
                result = self.channels[name].send(message)
            except EngineError as exc:
                failure = exc  # nothing went out: the channel refused to start a send
                outcomes.append(self._release(claim))
                continue
            if self._journal is not None:
                self._journal.result(
                    claim.idempotency_key,
                    self._seconds(),
                    result.status.value,
                    result.provider_id,
                    result.detail,
                )
            outcomes.append(self._outcome(claim, result))
            if result.provider_down:
                self._down.add(name)
                logger.warning("channel %s unreachable; its messages wait: %s", name, result.detail)
        self._record(outcomes, report)
        if failure is not None:
            raise failure
        return report

    def _record(self, outcomes: list[Outcome], report: DeliveryReport) -> None:
        self.log.record(outcomes, now=self._clock())
        if self._journal is not None:
            self._journal.clear()
        for outcome in outcomes:
            if outcome.status in (DeliveryStatus.BOUNCED, DeliveryStatus.COMPLAINED):
                queued = outcome.claim.queue
                self.guard.suppress(queued.channel, queued.address)
            if not outcome.attempted and outcome.status is DeliveryStatus.RETRY:
                report.released += 1
            else:
                counter = _COUNTER[outcome.status]
                setattr(report, counter, getattr(report, counter) + 1)

    def _release(self, claim: Claim) -> Outcome:
        """Give a claim back untouched: it is due again at once, no attempt counted."""
        return Outcome(claim, DeliveryStatus.RETRY, False, next_attempt_at=self._clock())

    def _outcome(self, claim: Claim, result: SendResult) -> Outcome:
        status = result.status
        if status is SendStatus.SENT:
            return Outcome(claim, DeliveryStatus.SENT, provider_id=result.provider_id)
        if status is SendStatus.HARD_BOUNCE:
            return Outcome(claim, DeliveryStatus.BOUNCED, error=result.detail)
        if status is SendStatus.COMPLAINT:
            return Outcome(claim, DeliveryStatus.COMPLAINED, error=result.detail)
        if status is SendStatus.FAILED:
            return Outcome(claim, DeliveryStatus.FAILED, error=result.detail)
        attempts = claim.attempts + 1
        if attempts >= self.backoff.max_attempts:
            return Outcome(
                claim,
                DeliveryStatus.FAILED,
                error=f"gave up after {attempts} attempts: {result.detail}",
            )
        delay = self.backoff.delay(claim.idempotency_key, attempts)
        if result.retry_after is not None:
            delay = max(delay, result.retry_after)
        return Outcome(
            claim,
            DeliveryStatus.RETRY,
            error=result.detail,
            next_attempt_at=self._clock() + dt.timedelta(seconds=delay),
        )

    # -- recovery ----------------------------------------------------------------------------

    def _recover(self) -> DeliveryReport:
        report = DeliveryReport()
        # With a journal (locked by this process), every claim of this worker id is settled
        # now: an earlier run's are orphans, and this run has none in flight between batches
        # (a batch that raised leaves its own behind, also described by the journal).
        prefix = f"{self.worker_id}/" if self._journal is not None else None
        entries = self._journal.read() if self._journal is not None else {}
        stale = [
            c
            for c in self.log.stale(now=self._clock(), lease=self.lease, owner_prefix=prefix)
            # claims on channels this worker lacks are left to a worker that has them
            if c.queue.channel in self.channels
        ]
        outcomes = [self._resolve(claim, prefix, entries) for claim in stale]
        self._record(outcomes, report)
        report.recovered = len(outcomes)
        for outcome in outcomes:
            if outcome.status is DeliveryStatus.IN_DOUBT:
                logger.warning(
                    "message %s was in flight when worker %s stopped and its provider cannot "
                    "be asked; held as in_doubt",
                    outcome.claim.message_id,
                    outcome.claim.owner,
                )
        return report

    def _resolve(
        self, claim: Claim, prefix: str | None, entries: dict[str, JournalEntry]
    ) -> Outcome:
        """What became of a claim whose worker died."""
        own = prefix is not None and claim.owner.startswith(prefix)
        entry = entries.get(claim.idempotency_key) if own else None
        if own and entry is None:
            return self._release(claim)  # the journal says it never went out
        if entry is not None and entry.status is not None:
            return self._outcome(
                claim, SendResult(SendStatus(entry.status), entry.provider_id, entry.detail)
            )
        channel = self.channels[claim.queue.channel]
        if entry is not None:
            wait = entry.attempted_at + self.settle_seconds - self._seconds()
            if wait > 0:
                self._sleep(wait)
        answer = channel.already_sent(claim.idempotency_key)
        if answer is True:
            return Outcome(
                claim, DeliveryStatus.SENT, provider_id="confirmed by the provider's lookup"
            )
        resend = channel.resend_is_safe or self._policy(claim.queue.channel) is InDoubt.RESEND
        if answer is False or resend:
            return Outcome(
                claim,
                DeliveryStatus.RETRY,
                error="in flight when its worker stopped; sent again",
                next_attempt_at=self._clock(),
            )
        return Outcome(
            claim,
            DeliveryStatus.IN_DOUBT,
            error="in flight when its worker stopped; the provider cannot be asked whether it "
            "arrived (jingzhun worker --resend-in-doubt sends it again)",
        )
