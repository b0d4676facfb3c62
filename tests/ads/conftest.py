"""Fixtures of the ads tests: one generated shop (built once), campaigns, simulated logs."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ads_shop import AS_OF, DAY, FRAUD, build_shop  # noqa: F401

from jingzhun.ads import (
    AdServer,
    apply_fraud,
    detect_fraud,
    open_ad_server,
    read_logs,
    simulate_day,
    train_ctr,
)
from jingzhun.workspace import Workspace

CAMPAIGNS = {
    "beauty_women": """\
name: beauty_women
description: Skincare for women who like beauty or apparel
category: beauty
targeting:
  gender: [F]
  interests: [beauty, apparel]
max_cpc: 0.80
daily_budget: 30
flight: {start: 2024-04-01, end: 2024-06-30}
frequency_cap: {impressions: 3, per_hours: 24}
creatives:
  - {name: glow, title: Winter glow, landing_url: https://shop.example/glow}
  - {name: shine, title: Shine on, landing_url: https://shop.example/shine}
""",
    "gadgets_city": """\
name: gadgets_city
category: electronics
placements: [app_home, site_sidebar]
targeting:
  age: {min: 18, max: 44}
  region: [London, Manchester]
max_cpc: 1.20
daily_budget: 40
flight: {start: 2024-04-01, end: 2024-06-30}
creatives:
  - {name: phones, title: New phones, landing_url: https://shop.example/phones}
  - {name: laptops, title: Laptops, landing_url: https://shop.example/laptops}
""",
    "spring_sale": """\
name: spring_sale
max_cpc: 0.50
daily_budget: 50
flight: {start: 2024-04-01, end: 2024-06-30}
creatives:
  - {name: sale, title: Spring sale, landing_url: https://shop.example/sale}
""",
}


def write_campaigns(root: Path, campaigns: dict[str, str] = CAMPAIGNS) -> None:
    folder = root / "ads"
    folder.mkdir(exist_ok=True)
    for name, text in campaigns.items():
        (folder / f"{name}.yml").write_text(text, encoding="utf-8")


@pytest.fixture(scope="session")
def shop_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_shop(tmp_path_factory.mktemp("ads") / "shop")
    write_campaigns(root)
    return root


@pytest.fixture
def project(shop_root: Path, tmp_path: Path) -> Path:
    """A fresh copy of the shop with the campaigns and no ad logs."""
    root = tmp_path / "shop"
    shutil.copytree(shop_root, root)
    return root


@pytest.fixture
def workspace(project: Path) -> Iterator[Workspace]:
    with Workspace.open(project) as ws:
        yield ws


@pytest.fixture
def server(workspace: Workspace) -> Iterator[AdServer]:
    srv = open_ad_server(workspace.project, workspace.engine, workspace.store, fraud=FRAUD)
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def simulated_root(shop_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shop after two simulated days with bots, fraud applied and the CTR model trained."""
    root = tmp_path_factory.mktemp("ads_simulated") / "shop"
    shutil.copytree(shop_root, root)
    with Workspace.open(root) as ws:
        srv = open_ad_server(ws.project, ws.engine, ws.store, fraud=FRAUD)
        try:
            for n in range(2):
                simulate_day(srv, DAY - dt.timedelta(days=2 - n), visitors=2500, seed=n)
        finally:
            srv.close()
        logs = read_logs(ws.store)
        result = detect_fraud(logs.impressions, logs.clicks, logs.conversions, FRAUD)
        apply_fraud(ws.store, result, now=dt.datetime.now(dt.UTC))
        train_ctr(ws.project, ws.engine, ws.store)
    return root


@pytest.fixture
def simulated(simulated_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "simulated"
    shutil.copytree(simulated_root, root)
    return root
