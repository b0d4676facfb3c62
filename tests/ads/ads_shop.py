"""A small generated shop for the ads tests: generated data loaded, profiles built."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from jingzhun.ads import SIMULATED_DATA_CENTRES, FraudSettings
from jingzhun.core import init_project
from jingzhun.datagen import generate, source_specs
from jingzhun.workspace import Workspace

START = dt.date(2024, 1, 1)
DAYS = 120
AS_OF = START + dt.timedelta(days=DAYS)  # 2024-04-30
LATE_LOADS = "include_late_loads: true\n"


def build_shop(root: Path, *, customers: int = 800, seed: int = 3) -> Path:
    """``init`` + generated GB data + ``ingest`` + ``build`` as of the day after the data."""
    init_project(root, name="adshop", timezone="Europe/London", currency="GBP", region="GB")
    data = root / "data" / "generated"
    generate(data, customers=customers, days=DAYS, seed=seed, start=START, region="GB")
    for stem, text in source_specs("data/generated").items():
        (root / "sources" / f"gen_{stem}.yml").write_text(text, encoding="utf-8")
    (root / "tags" / "_settings.yml").write_text(LATE_LOADS, encoding="utf-8")
    with Workspace.open(root) as ws:
        ws.ingest.run()
        ws.build(AS_OF, probabilistic=False)
    return root


# Shared by the ads tests (a test module cannot import them from a conftest: every test
# folder's conftest is imported under the one module name "conftest").
DAY = AS_OF  # 2024-04-30, the profiles' date: ad traffic "today"
FRAUD = FraudSettings(data_centre_ranges=list(SIMULATED_DATA_CENTRES))
