"""Fixtures of the API tests: projects (bare and the built bank example), apps, keys."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_support import BANK_AS_OF, REPO, settings_for
from fastapi import FastAPI
from fastapi.testclient import TestClient

from jingzhun.api import ApiContext, create_app
from jingzhun.core import init_project
from jingzhun.workspace import Workspace


@pytest.fixture
def bare_project(tmp_path: Path) -> Path:
    """A new project with no sources (nothing in the warehouse)."""
    return init_project(tmp_path / "shop", name="shop", timezone="UTC", currency="USD")


@pytest.fixture(scope="session")
def built_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/bank ingested and built for 2024-06-30 once per test run."""
    root = tmp_path_factory.mktemp("bank_built") / "bank"
    shutil.copytree(REPO / "examples" / "bank", root)
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
        ws.build(BANK_AS_OF, probabilistic=False)
    return root


@pytest.fixture
def bank(built_bank: Path, tmp_path: Path) -> Path:
    """A private copy of the built bank project."""
    root = tmp_path / "bank"
    shutil.copytree(built_bank, root)
    return root


class Served:
    """A running app in a TestClient, with its context and a helper to make keys."""

    def __init__(self, app: FastAPI, client: TestClient) -> None:
        self.app = app
        self.client = client
        self.context: ApiContext = app.state.jingzhun
        self._n = 0

    def key(self, *scopes: str) -> str:
        self._n += 1
        return self.context.access.create_api_key(
            f"k{self._n}-{'-'.join(scopes)}", list(scopes), created_by="test"
        )


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """``serve(project, **settings)`` starts an app (lifespan included) in a TestClient."""
    clients: list[TestClient] = []

    def start(project: Path, **overrides: object) -> Served:
        app = create_app(settings_for(project, **overrides))
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return Served(app, client)

    yield start
    for client in clients:
        client.__exit__(None, None, None)
