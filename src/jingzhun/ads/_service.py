"""The ads stage of one project: where its files are, and the server, index and CTR model
built from them.

| where | what |
|---|---|
| ``ads/*.yml`` | ad campaigns (``ads/_fraud.yml``: fraud-rule thresholds and data-centre ranges) |
| ``state/ads/ctr_model.json`` | the fitted CTR model (plain JSON) |
| ``state/ads/simulated_truth.parquet`` | the answer key of ``ads simulate`` |
| ``state/keys/ads.key`` | the HMAC key of impression tokens (``JINGZHUN_SECRET_ADS`` overrides) |
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select

from jingzhun.ads._ctr import CtrModel, fit_ctr, frequency_bucket
from jingzhun.ads._fraud import FraudRules, FraudSettings, load_fraud_settings
from jingzhun.ads._index import AudienceIndex, build_index
from jingzhun.ads._ledger import LogWriter, read_table
from jingzhun.ads._pacing import Pacer, TrafficCurve
from jingzhun.ads._server import AdServer, Clock, ServerSettings
from jingzhun.ads._spec import ADS_FOLDER, LoadedCampaign, load_ad_campaigns
from jingzhun.core import NotFoundError, Project
from jingzhun.engine import Engine
from jingzhun.profile import load_profile_settings
from jingzhun.segments import SegmentSpec, dependency_order, load_segment_specs
from jingzhun.store import AdClick, AdImpression, OperationalStore

CTR_FILE = "ctr_model.json"
TRUTH_FILE = "simulated_truth.parquet"


def ads_state(project: Project) -> Path:
    """``state/ads`` of the project."""
    return project.root / "state" / "ads"


def load_campaigns(project: Project) -> dict[str, LoadedCampaign]:
    """Every campaign under ``ads/``."""
    return load_ad_campaigns(project.root / ADS_FOLDER)


def campaign(project: Project, name: str) -> LoadedCampaign:
    """One campaign by name; unknown names list the known ones."""
    campaigns = load_campaigns(project)
    if name not in campaigns:
        known = ", ".join(sorted(campaigns)) or "none (add YAML files under ads/)"
        raise NotFoundError(f"no ad campaign named '{name}'; campaigns: {known}")
    return campaigns[name]


def project_segments(project: Project) -> dict[str, SegmentSpec]:
    """The project's segments (for ``targeting: {segment: NAME}``)."""
    folder = project.root / "segments"
    if not folder.is_dir():
        return {}
    return {s.name: s for s in dependency_order(load_segment_specs(folder))}


def project_index(
    project: Project,
    engine: Engine,
    campaigns: Mapping[str, LoadedCampaign] | None = None,
) -> AudienceIndex:
    """The audience index of the project's campaigns (or of ``campaigns``)."""
    settings = load_profile_settings(project.root / "tags" / "_settings.yml")
    return build_index(
        engine,
        load_campaigns(project) if campaigns is None else campaigns,
        segments=project_segments(project),
        include_late_loads=settings.include_late_loads,
    )


def load_ctr_model(project: Project) -> CtrModel:
    """The fitted model in ``state/ads``, else the untrained default."""
    path = ads_state(project) / CTR_FILE
    return CtrModel.load(path) if path.exists() else CtrModel()


def traffic_curve(store: OperationalStore, timezone: str, *, days: int = 28) -> TrafficCurve:
    """Hourly shares of the last ``days`` days of impressions, else the default shape."""
    with store.session() as session:
        newest = session.scalar(
            select(AdImpression.served_at).order_by(AdImpression.served_at.desc())
        )
        if newest is None:
            return TrafficCurve()
        rows = session.scalars(
            select(AdImpression.served_at).where(
                AdImpression.served_at >= newest - dt.timedelta(days=days)
            )
        ).all()
    if len(rows) < 24 * 20:
        return TrafficCurve()
    hours = pd.DatetimeIndex(pd.to_datetime(list(rows), utc=True)).tz_convert(timezone).hour
    return TrafficCurve.from_hours(list(hours))


def open_ad_server(
    project: Project,
    engine: Engine,
    store: OperationalStore,
    *,
    campaigns: Mapping[str, LoadedCampaign] | None = None,
    ctr: CtrModel | None = None,
    fraud: FraudSettings | None = None,
    settings: ServerSettings | None = None,
    clock: Clock | None = None,
    log: LogWriter | None = None,
) -> AdServer:
    """The decision server of a project: campaigns indexed, CTR model, traffic curve, fraud
    settings and token key loaded. Close it (``server.close()``) to write the last log rows.
    """
    index = project_index(project, engine, campaigns)
    fraud_settings = fraud or load_fraud_settings(project.root / ADS_FOLDER)
    timezone = project.settings.timezone
    return AdServer(
        index,
        ctr or load_ctr_model(project),
        store,
        secret=project.secret("ads"),
        timezone=timezone,
        pacer=Pacer(traffic_curve(store, timezone), seed=(settings or ServerSettings()).seed),
        fraud=FraudRules(fraud_settings),
        settings=settings,
        clock=clock,
        log=log,
    )


def training_frame(store: OperationalStore, index: AudienceIndex, timezone: str) -> pd.DataFrame:
    """One row per logged impression with the CTR model's features and ``clicked`` (a valid
    click on it), in time order.
    """
    impressions = read_table(store, AdImpression)
    clicks = read_table(store, AdClick)
    if len(impressions) == 0:
        return pd.DataFrame()
    valid = set(clicks.loc[clicks["valid"].astype(bool), "impression_id"].dropna())
    # Traffic of a source with an invalid click is not people's behaviour: left out.
    invalid = clicks[~clicks["valid"].astype(bool)]
    bad_devices = set(invalid["device_id"].dropna())
    bad_ips = set(invalid.loc[invalid["device_id"].isna(), "ip"].dropna())
    keep = ~impressions["device_id"].isin(bad_devices) & ~(
        impressions["device_id"].isna() & impressions["ip"].isin(bad_ips)
    )
    frame = impressions[keep].sort_values("served_at").reset_index(drop=True)
    frame["clicked"] = frame["impression_id"].isin(valid).astype(int)
    local = frame["served_at"].dt.tz_convert(timezone)
    frame["hour"] = local.dt.hour
    people = index.people
    categories = {c.spec.name: c.spec.category for c in index.campaigns}
    keys = frame["customer_key"]
    frame["known"] = keys.notna().astype(int)
    frame["age_band"] = keys.map(
        lambda k: (people[k].age_band if k in people else None) or "unknown"
    )
    frame["gender"] = keys.map(lambda k: (people[k].gender if k in people else None) or "unknown")
    frame["interest_match"] = [
        int(k in people and categories.get(c) is not None and categories[c] in people[k].interests)
        for k, c in zip(keys, frame["campaign"], strict=True)
    ]
    who = keys.fillna(frame["anonymous_id"]).fillna(frame["device_id"]).fillna(frame["ip"])
    epoch = pd.Timestamp(0, tz="UTC")
    stamp = (frame["served_at"] - epoch).dt.total_seconds().to_numpy()
    frame["_who"] = who.fillna("unknown")
    frame["_t"] = stamp
    earlier = np.zeros(len(frame), dtype=int)
    for _, rows in frame.groupby(["_who", "campaign"], sort=False).groups.items():
        positions = np.asarray(rows)
        times = stamp[positions]
        first = np.searchsorted(times, times - 86400.0, side="left")
        earlier[positions] = np.arange(len(positions)) - first
    frame["frequency"] = [frequency_bucket(int(e)) for e in earlier]
    return frame.drop(columns=["_who", "_t"])


def train_ctr(project: Project, engine: Engine, store: OperationalStore) -> CtrModel:
    """Fit the CTR model on the project's logs and save it in ``state/ads``."""
    index = project_index(project, engine)
    frame = training_frame(store, index, project.settings.timezone)
    model = fit_ctr(frame)
    model.save(ads_state(project) / CTR_FILE)
    return model
