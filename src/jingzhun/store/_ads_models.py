"""Precision ads: impressions, clicks, conversions, the billing ledger and daily budgets.

Declared on the store's one ``Base``, so ``Base.metadata`` stays the whole schema; migration
``0008`` creates the tables. Written by ``jingzhun.ads`` only.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from jingzhun.store._models import Base, UTCDateTime


class AdImpression(Base):
    """One ad served to one person (or anonymous device) on one placement."""

    __tablename__ = "ad_impressions"
    __table_args__ = (
        Index("ix_ad_impressions_campaign", "campaign", "served_at"),
        Index("ix_ad_impressions_served_at", "served_at"),
    )

    impression_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    served_at: Mapped[datetime] = mapped_column(UTCDateTime())
    campaign: Mapped[str] = mapped_column(String(80))
    creative: Mapped[str] = mapped_column(String(80))
    placement: Mapped[str] = mapped_column(String(80))
    customer_key: Mapped[str | None] = mapped_column(String(80))
    anonymous_id: Mapped[str | None] = mapped_column(String(120))
    device_id: Mapped[str | None] = mapped_column(String(120))
    ip: Mapped[str | None] = mapped_column(String(45))
    price: Mapped[float] = mapped_column(Float)  # the CPC charged if clicked (<= max CPC)
    pctr: Mapped[float] = mapped_column(Float)
    ecpm: Mapped[float] = mapped_column(Float)  # winning bid x pCTR x 1000
    runner_up_ecpm: Mapped[float] = mapped_column(Float)
    candidates: Mapped[int] = mapped_column(Integer)
    rendered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AdClick(Base):
    """One click, valid or not; ``reason`` says why an invalid one was refused."""

    __tablename__ = "ad_clicks"
    __table_args__ = (
        Index("ix_ad_clicks_campaign", "campaign", "clicked_at"),
        Index("ix_ad_clicks_impression", "impression_id"),
    )

    click_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    impression_id: Mapped[str | None] = mapped_column(String(40))
    campaign: Mapped[str | None] = mapped_column(String(80))
    creative: Mapped[str | None] = mapped_column(String(80))
    placement: Mapped[str | None] = mapped_column(String(80))
    customer_key: Mapped[str | None] = mapped_column(String(80))
    device_id: Mapped[str | None] = mapped_column(String(120))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    price: Mapped[float] = mapped_column(Float)
    valid: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(40))
    charged: Mapped[float] = mapped_column(Float)  # 0 when not billed


class AdConversion(Base):
    """A conversion reported for a click (order, sign-up), with its value."""

    __tablename__ = "ad_conversions"
    __table_args__ = (Index("ix_ad_conversions_campaign", "campaign"),)

    conversion_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    click_id: Mapped[str] = mapped_column(String(40))
    campaign: Mapped[str] = mapped_column(String(80))
    creative: Mapped[str] = mapped_column(String(80))
    customer_key: Mapped[str | None] = mapped_column(String(80))
    converted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    value: Mapped[float] = mapped_column(Float)


class AdLedgerEntry(Base):
    """The billing ledger: a charge per billed valid click, a credit when one is found invalid
    later. One charge and at most one credit per click.
    """

    __tablename__ = "ad_ledger"
    __table_args__ = (
        CheckConstraint("kind IN ('charge', 'credit')", name="kind"),
        Index("ix_ad_ledger_click", "click_id", "kind", unique=True),
        Index("ix_ad_ledger_campaign", "campaign", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    click_id: Mapped[str] = mapped_column(String(40))
    campaign: Mapped[str] = mapped_column(String(80))
    day: Mapped[date] = mapped_column(Date)  # the campaign's budget day (project time zone)
    kind: Mapped[str] = mapped_column(String(8))
    amount: Mapped[float] = mapped_column(Float)  # charges positive, credits negative
    reason: Mapped[str | None] = mapped_column(String(40))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AdBudgetDay(Base):
    """A campaign's spend on one day against its daily budget (the reservation row)."""

    __tablename__ = "ad_budget_days"

    campaign: Mapped[str] = mapped_column(String(80), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    budget: Mapped[float] = mapped_column(Float)
    spent: Mapped[float] = mapped_column(Float)
    clicks: Mapped[int] = mapped_column(Integer)
