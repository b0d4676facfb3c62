"""Fixtures of the console tests: the demo project built once (real Online Retail sample plus
generated customers, profiles, segments, CLV and churn scores, a launched win-back campaign,
stored recommendations), a fresh copy of it per test module, and the test app.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_testapp import make_app
from fastapi import FastAPI

from jingzhun.demo import run_demo
from jingzhun.workspace import Workspace


@pytest.fixture(scope="session")
def console_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project, built once for every console test (about 30 seconds)."""
    root = tmp_path_factory.mktemp("console_demo") / "demo"
    result = run_demo(root, customers=300, seed=7)
    assert result.ok, result.to_dict()
    with Workspace.open(root) as ws:
        ws.recommend.fit(method="popularity")  # the 360° view shows stored recommendations
    return root


@pytest.fixture(scope="module")
def project(console_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo that this test module may change (segments saved, plans made)."""
    target = tmp_path_factory.mktemp("console_project") / "demo"
    shutil.copytree(console_demo, target)
    return target


@pytest.fixture(scope="module")
def workspace(project: Path) -> Iterator[Workspace]:
    with Workspace.open(project) as ws:
        yield ws


@pytest.fixture(scope="module")
def app(workspace: Workspace) -> FastAPI:
    return make_app(workspace)
