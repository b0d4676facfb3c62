"""Precision ads: targeted ad campaigns, real-time decisions, billing, click fraud, audiences.

``load_ad_campaigns(folder)`` reads ``ads/*.yml`` (``AdCampaignSpec``);
``open_ad_server(project, engine, store)`` indexes every campaign's audience in memory and
serves decisions (``AdServer.decide``), clicks (``AdServer.click``: fraud rules, then billing
against the daily budget) and conversions; ``ads_router(server)`` puts them on HTTP.
"""

from jingzhun.ads._api import ads_router
from jingzhun.ads._audience import AudienceKind, audience_rows, export_ad_audience
from jingzhun.ads._ctr import CtrModel, fit_beta_prior, fit_ctr
from jingzhun.ads._evaluate import FraudEvaluation, apply_fraud, evaluate_fraud
from jingzhun.ads._fraud import (
    FraudResult,
    FraudRules,
    FraudSettings,
    InvalidReason,
    detect_fraud,
    fraud_scores,
    load_fraud_settings,
)
from jingzhun.ads._index import AudienceIndex, Person, build_index
from jingzhun.ads._ledger import AdLedger, AdLogs, Charge, LogWriter, read_logs, read_table
from jingzhun.ads._pacing import Pacer, PacingSettings, TrafficCurve
from jingzhun.ads._plan import AdPlan, audience_of, plan_campaign
from jingzhun.ads._report import AdReport, ad_report, write_ad_report
from jingzhun.ads._server import (
    AdServer,
    ClickResult,
    DecideRequest,
    Decision,
    ServerSettings,
)
from jingzhun.ads._service import (
    ads_state,
    campaign,
    load_campaigns,
    load_ctr_model,
    open_ad_server,
    project_index,
    train_ctr,
    training_frame,
)
from jingzhun.ads._simulate import (
    BOT_KINDS,
    DEFAULT_BOTS,
    SIMULATED_DATA_CENTRES,
    SimulationResult,
    simulate_day,
)
from jingzhun.ads._spec import (
    AdCampaignSpec,
    Creative,
    LoadedCampaign,
    Targeting,
    campaign_from_dict,
    load_ad_campaigns,
    targeting_rule,
)

__all__ = [
    "BOT_KINDS",
    "DEFAULT_BOTS",
    "SIMULATED_DATA_CENTRES",
    "AdCampaignSpec",
    "AdLedger",
    "AdLogs",
    "AdPlan",
    "AdReport",
    "AdServer",
    "AudienceIndex",
    "AudienceKind",
    "Charge",
    "ClickResult",
    "Creative",
    "CtrModel",
    "DecideRequest",
    "Decision",
    "FraudEvaluation",
    "FraudResult",
    "FraudRules",
    "FraudSettings",
    "InvalidReason",
    "LoadedCampaign",
    "LogWriter",
    "Pacer",
    "PacingSettings",
    "Person",
    "ServerSettings",
    "SimulationResult",
    "Targeting",
    "TrafficCurve",
    "ad_report",
    "ads_router",
    "ads_state",
    "apply_fraud",
    "audience_of",
    "audience_rows",
    "build_index",
    "campaign",
    "campaign_from_dict",
    "detect_fraud",
    "evaluate_fraud",
    "export_ad_audience",
    "fit_beta_prior",
    "fit_ctr",
    "fraud_scores",
    "load_ad_campaigns",
    "load_campaigns",
    "load_ctr_model",
    "load_fraud_settings",
    "open_ad_server",
    "plan_campaign",
    "project_index",
    "read_logs",
    "read_table",
    "simulate_day",
    "targeting_rule",
    "train_ctr",
    "training_frame",
    "write_ad_report",
]
