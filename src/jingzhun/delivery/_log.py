"""The delivery log (``deliveries`` in the operational store): claims, outcomes, feedback.

A message moves ``(queued) → sending → sent | retry | failed | bounced | complained |
suppressed | in_doubt``. ``claim`` takes due messages in one write transaction and marks them
``sending`` with the claiming worker's id before any network call; ``record`` writes the
outcomes of a batch in one transaction, fenced on the claim (a row another worker has taken
over after the lease is left alone). The ``delivery_queue`` row follows: ``sent``, ``failed``
or ``suppressed`` once the delivery is final.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Table, and_, bindparam, func, insert, or_, select, update

from jingzhun.campaigns import Channel, SuppressionList
from jingzhun.delivery._channels import SendStatus
from jingzhun.store import OperationalStore, QueuedMessage
from jingzhun.store._delivery_models import Delivery, DeliveryStatus

FINAL_QUEUE_STATUS = {
    DeliveryStatus.SENT: "sent",
    DeliveryStatus.FAILED: "failed",
    DeliveryStatus.BOUNCED: "suppressed",
    DeliveryStatus.COMPLAINED: "suppressed",
    DeliveryStatus.SUPPRESSED: "suppressed",
}
_DELIVERIES = cast(Table, Delivery.__table__)
_QUEUE = cast(Table, QueuedMessage.__table__)
SUPPRESSION_REASON = {
    DeliveryStatus.BOUNCED: "hard_bounce",
    DeliveryStatus.COMPLAINED: "complaint",
}


@dataclass(frozen=True)
class Claim:
    """A message a worker holds: its queue row, its delivery row and the claim."""

    delivery_id: int
    queue: QueuedMessage
    message_id: str
    attempts: int
    owner: str
    claimed_at: dt.datetime

    @property
    def idempotency_key(self) -> str:
        """The message's key."""
        return self.queue.idempotency_key


@dataclass(frozen=True)
class Outcome:
    """What became of a claimed message, to be written by ``DeliveryLog.record``."""

    claim: Claim
    status: DeliveryStatus
    attempted: bool = True
    provider_id: str | None = None
    error: str | None = None
    next_attempt_at: dt.datetime | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    """One row of the delivery log, as read back."""

    idempotency_key: str
    campaign: str | None
    customer_key: str
    channel: str
    message_id: str
    status: str
    attempts: int
    last_error: str | None
    provider_id: str | None
    sent_at: dt.datetime | None
    next_attempt_at: dt.datetime | None


class DeliveryLog:
    """Claims, outcomes and feedback in the store's ``deliveries`` table.

    Parameters
    ----------
    store
        The operational store, migrated.
    """

    def __init__(self, store: OperationalStore) -> None:
        self.store = store

    def claim(
        self,
        *,
        channels: Collection[str],
        owner: str,
        now: dt.datetime,
        limit: int,
        message_id_for: Callable[[str, str], str],
    ) -> list[Claim]:
        """Mark up to ``limit`` due messages ``sending`` for ``owner``, oldest first.

        Due: the queue row is ``queued`` with ``send_at <= now`` on one of ``channels``, and it
        has no delivery yet or one waiting to be retried whose time has come. On PostgreSQL
        rows locked by another claimer are skipped; on SQLite the write lock serialises claims.

        Parameters
        ----------
        message_id_for
            ``(channel, idempotency_key) -> id the provider sees``.
        """
        if limit < 1 or not channels:
            return []
        query = (
            # the queue rows as objects (render takes them), of the delivery only what is needed
            select(QueuedMessage, Delivery.id, Delivery.message_id, Delivery.attempts)
            .outerjoin(Delivery, Delivery.idempotency_key == QueuedMessage.idempotency_key)
            .where(
                QueuedMessage.status == "queued",
                QueuedMessage.send_at <= now,
                QueuedMessage.channel.in_(sorted(channels)),
                or_(
                    Delivery.id.is_(None),
                    and_(
                        Delivery.status == DeliveryStatus.RETRY.value,
                        Delivery.next_attempt_at <= now,
                    ),
                ),
            )
            .order_by(QueuedMessage.send_at, QueuedMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=QueuedMessage)
        )
        claims: list[Claim] = []
        with self.store.session(write=True) as session:
            rows = session.execute(query).all()
            session.expunge_all()  # the rows outlive the session, read-only
            fresh: list[dict[str, object]] = []
            retried: list[int] = []
            for queued, delivery_id, _, _ in rows:
                if delivery_id is None:
                    fresh.append(
                        {
                            "idempotency_key": queued.idempotency_key,
                            "queue_id": queued.id,
                            "campaign": queued.campaign,
                            # journey messages are queued as campaign "journey:NAME" with
                            # the step in the variant
                            "journey_step": (
                                queued.variant if queued.campaign.startswith("journey:") else None
                            ),
                            "customer_key": queued.customer_key,
                            "channel": queued.channel,
                            "address": queued.address,
                            "message_id": message_id_for(queued.channel, queued.idempotency_key),
                            "status": DeliveryStatus.SENDING.value,
                            "attempts": 0,
                            "claimed_by": owner,
                            "claimed_at": now,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                else:
                    retried.append(delivery_id)
            ids: dict[str, tuple[int, str]] = {}
            if fresh:
                # Core, not the ORM's bulk insert: a third of the claim's time at 200 rows
                inserted = session.execute(
                    insert(_DELIVERIES).returning(
                        _DELIVERIES.c.id,
                        _DELIVERIES.c.idempotency_key,
                        _DELIVERIES.c.message_id,
                        sort_by_parameter_order=True,
                    ),
                    fresh,
                ).all()
                ids = {key: (delivery_id, mid) for delivery_id, key, mid in inserted}
            if retried:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(retried))
                    .values(
                        status=DeliveryStatus.SENDING.value,
                        claimed_by=owner,
                        claimed_at=now,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
            for queued, delivery_id, mid, attempts in rows:
                if delivery_id is None:
                    delivery_id, mid = ids[queued.idempotency_key]
                    attempts = 0
                claims.append(Claim(delivery_id, queued, mid, attempts, owner, now))
        return claims

    def record(self, outcomes: Sequence[Outcome], *, now: dt.datetime) -> int:
        """Write a batch of outcomes in one transaction; returns how many were written.

        An outcome is written only while its row is still ``sending`` under the same claim: a
        row that another worker took over after the lease (a very slow batch) keeps that
        worker's result. Hard bounces and complaints also put the address on the suppression
        list (done first, so a crash in between never leaves a bounced address unsuppressed).
        """
        if not outcomes:
            return 0
        for outcome in outcomes:
            reason = SUPPRESSION_REASON.get(outcome.status)
            if reason is not None:
                queued = outcome.claim.queue
                SuppressionList(self.store).add(
                    Channel(queued.channel),
                    queued.address,
                    reason,
                    source=f"delivery:{outcome.claim.message_id}",
                )
        with self.store.session(write=True) as session:
            current = {
                (row_id, claimed_by)
                for row_id, claimed_by in session.execute(
                    select(Delivery.id, Delivery.claimed_by).where(
                        Delivery.id.in_([o.claim.delivery_id for o in outcomes]),
                        Delivery.status == DeliveryStatus.SENDING.value,
                    )
                ).all()
            }
            kept = [o for o in outcomes if (o.claim.delivery_id, o.claim.owner) in current]
            if not kept:
                return 0
            session.execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id == bindparam("b_id"))
                .values(
                    status=bindparam("b_status"),
                    attempts=bindparam("b_attempts"),
                    last_error=bindparam("b_error"),
                    provider_id=bindparam("b_provider_id"),
                    sent_at=bindparam("b_sent_at"),
                    next_attempt_at=bindparam("b_next"),
                    claimed_by=None,
                    claimed_at=None,
                    updated_at=now,
                ),
                [
                    {
                        "b_id": o.claim.delivery_id,
                        "b_status": o.status.value,
                        "b_attempts": o.claim.attempts + (1 if o.attempted else 0),
                        "b_error": o.error,
                        "b_provider_id": o.provider_id,
                        "b_sent_at": now if o.status is DeliveryStatus.SENT else None,
                        "b_next": o.next_attempt_at,
                    }
                    for o in kept
                ],
            )
            final = [
                {"q_id": o.claim.queue.id, "q_status": FINAL_QUEUE_STATUS[o.status]}
                for o in kept
                if o.status in FINAL_QUEUE_STATUS
            ]
            if final:
                session.execute(
                    update(_QUEUE)
                    .where(_QUEUE.c.id == bindparam("q_id"))
                    .values(status=bindparam("q_status")),
                    final,
                )
        return len(kept)

    def stale(
        self, *, now: dt.datetime, lease: dt.timedelta, owner_prefix: str | None = None
    ) -> list[Claim]:
        """Claims whose worker is gone: ``sending`` rows older than the lease, or claimed by an
        earlier run of this worker (``owner_prefix``, only when that run is known to be dead).
        """
        condition = Delivery.claimed_at < now - lease
        if owner_prefix is not None:
            condition = or_(
                condition, Delivery.claimed_by.startswith(owner_prefix, autoescape=True)
            )
        query = (
            select(Delivery, QueuedMessage)
            .join(QueuedMessage, QueuedMessage.idempotency_key == Delivery.idempotency_key)
            .where(Delivery.status == DeliveryStatus.SENDING.value, condition)
            .order_by(Delivery.id)
        )
        with self.store.session() as session:
            rows = session.execute(query).all()
            for _, queued in rows:
                session.expunge(queued)
            return [
                Claim(
                    d.id,
                    queued,
                    d.message_id,
                    d.attempts,
                    d.claimed_by or "",
                    d.claimed_at or now,
                )
                for d, queued in rows
            ]

    def get(self, idempotency_key: str) -> DeliveryRecord | None:
        """The delivery of one message, or None when it was never claimed."""
        with self.store.session() as session:
            row = session.scalar(
                select(Delivery).where(Delivery.idempotency_key == idempotency_key)
            )
            return None if row is None else _record(row)

    def records(self, *, campaign: str | None = None) -> list[DeliveryRecord]:
        """Every delivery (of one campaign), oldest first."""
        query = select(Delivery).order_by(Delivery.id)
        if campaign is not None:
            query = query.where(Delivery.campaign == campaign)
        with self.store.session() as session:
            return [_record(row) for row in session.scalars(query)]

    def counts(self, *, campaign: str | None = None) -> dict[str, int]:
        """Deliveries per status (of one campaign)."""
        query = select(Delivery.status, func.count(Delivery.id)).group_by(Delivery.status)
        if campaign is not None:
            query = query.where(Delivery.campaign == campaign)
        with self.store.session() as session:
            return {status: int(n) for status, n in session.execute(query).all()}

    def record_feedback(
        self, idempotency_key: str, status: SendStatus, *, detail: str = "", source: str = ""
    ) -> bool:
        """A bounce or complaint that arrived after the send (a DSN, a feedback loop, a
        provider's webhook): the delivery is marked and the address suppressed.

        Returns False when no delivery has that key.

        Parameters
        ----------
        status
            ``hard_bounce`` or ``complaint``.
        source
            Where the feedback came from, kept with the suppression.
        """
        mapped = {
            SendStatus.HARD_BOUNCE: DeliveryStatus.BOUNCED,
            SendStatus.COMPLAINT: DeliveryStatus.COMPLAINED,
        }.get(status)
        if mapped is None:
            raise ValueError(f"feedback is a hard_bounce or a complaint, not {status.value}")
        with self.store.session() as session:
            row = session.scalar(
                select(Delivery).where(Delivery.idempotency_key == idempotency_key)
            )
            if row is None:
                return False
            channel, address, mid = row.channel, row.address, row.message_id
        SuppressionList(self.store).add(
            Channel(channel),
            address,
            SUPPRESSION_REASON[mapped],
            source=source or f"feedback:{mid}",
        )
        with self.store.session(write=True) as session:
            session.execute(
                update(Delivery)
                .where(Delivery.idempotency_key == idempotency_key)
                .values(status=mapped.value, last_error=detail or None, updated_at=_now())
                .execution_options(synchronize_session=False)
            )
        return True

    def resend_in_doubt(
        self, keys: Iterable[str] | None = None, *, now: dt.datetime | None = None
    ) -> int:
        """Let held ``in_doubt`` messages be sent again (all of them, or those keys): someone
        checked that they did not arrive, or accepts a possible duplicate. Returns how many.

        Parameters
        ----------
        now
            When they become due (default: now).
        """
        due = now or _now()
        query = (
            update(Delivery)
            .where(Delivery.status == DeliveryStatus.IN_DOUBT.value)
            .values(status=DeliveryStatus.RETRY.value, next_attempt_at=due, updated_at=_now())
            .execution_options(synchronize_session=False)
        )
        if keys is not None:
            query = query.where(Delivery.idempotency_key.in_(list(keys)))
        with self.store.session(write=True) as session:
            result = cast("CursorResult[Any]", session.execute(query))
            return int(result.rowcount or 0)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _record(row: Delivery) -> DeliveryRecord:
    return DeliveryRecord(
        idempotency_key=row.idempotency_key,
        campaign=row.campaign,
        customer_key=row.customer_key,
        channel=row.channel,
        message_id=row.message_id,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        provider_id=row.provider_id,
        sent_at=row.sent_at,
        next_attempt_at=row.next_attempt_at,
    )
