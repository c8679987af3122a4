"""Fixtures for node tests: a real app on a real SQLite file in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from node.app import create_app, initialize_node
from node.settings import Settings
from tests.conftest import NOW


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def node_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "node",
        node_id="http://xiamen.ccx.test",
        city="xiamen",
        dev_idp=True,
        scheduler=False,
        keyring_passphrase="a passphrase for tests only",  # type: ignore[arg-type]
    )


@pytest.fixture
def make_client(node_settings: Settings, clock: Clock) -> Iterator[Any]:
    """Build a client for the node (settings overrides allowed); closes them all after."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = node_settings.model_copy(update=overrides)
        initialize_node(settings, now=clock.now)
        client = TestClient(create_app(settings, now=clock), raise_server_exceptions=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Any) -> TestClient:
    return make_client()  # type: ignore[no-any-return]
