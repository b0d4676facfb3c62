"""Campaigns: consent, audience selection under budget, holdouts, content, plan and approval.

``load_campaigns(folder)`` reads ``campaigns/*.yml`` into ``CampaignSpec``;
``plan_campaign`` computes the eligibility waterfall and stores the plan (rows in the
warehouse table ``send_plan``); ``approve_plan`` and ``launch_plan`` hand it to delivery.
"""

from jingzhun.campaigns._consent import (
    SUBJECT_KINDS,
    ConsentLedger,
    ConsentRecord,
    Status,
    SuppressionList,
    consented,
    normalise,
)
from jingzhun.campaigns._plan import (
    SEND_PLAN,
    SEND_PLAN_SCHEMA,
    WATERFALL_STEPS,
    Plan,
    approve_plan,
    data_fingerprint,
    latest_plan,
    launch_plan,
    plan_campaign,
    rollout_plan,
)
from jingzhun.campaigns._spec import (
    CampaignSpec,
    Channel,
    Policy,
    Purpose,
    load_campaign,
    load_campaigns,
)

__all__ = [
    "SEND_PLAN",
    "SEND_PLAN_SCHEMA",
    "SUBJECT_KINDS",
    "WATERFALL_STEPS",
    "CampaignSpec",
    "Channel",
    "ConsentLedger",
    "ConsentRecord",
    "Plan",
    "Policy",
    "Purpose",
    "Status",
    "SuppressionList",
    "approve_plan",
    "consented",
    "data_fingerprint",
    "latest_plan",
    "launch_plan",
    "load_campaign",
    "load_campaigns",
    "normalise",
    "plan_campaign",
    "rollout_plan",
]
