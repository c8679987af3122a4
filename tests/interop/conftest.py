"""Fixtures for the interoperability tests: the node tests' fixtures (a node on its own
folder and database, the tests' clock), imported by name, and a node over HTTPS on
loopback under a test CA, as the peers ask of an issuer and a verifier."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from node.app import create_app, initialize_node
from node.settings import Settings
from tests.conftest import NOW
from tests.node.conftest import (  # noqa: F401  (fixtures, used by name)
    Clock,
    _memoized_scrypt,
    clock,
    make_client,
    migrated_sqlite,
    node_settings,
)
from tests.node.issuing_helpers import seed_resident
from tests.node.servers import RunningNode, free_port
from tests.pki import make_ca, tls_leaf


class Https:
    """A ccx node over HTTPS on loopback, and a client that trusts its test CA."""

    def __init__(self, node: RunningNode, authority: Path) -> None:
        self.node, self.authority = node, authority
        trust = ssl.create_default_context(cafile=str(authority))
        self.client = httpx.Client(verify=trust, timeout=10)

    def json(self, url: str) -> Any:
        return self.client.get(url).raise_for_status().json()

    def text(self, url: str) -> str:
        return self.client.get(url).raise_for_status().text

    def resident(self, subject: str = "resident-1") -> dict[str, str]:
        token = self.client.post(f"{self.node.url}/dev-idp/token", json={"subject": subject})
        return {"Authorization": f"Bearer {token.json()['access_token']}"}

    def offer(self, *, cross_device: bool = False) -> dict[str, Any]:
        made = self.client.post(
            f"{self.node.url}/v1/me/credential-offers",
            json={"cross_device": cross_device},
            headers=self.resident(),
        )
        answer: dict[str, Any] = made.raise_for_status().json()
        return answer


@pytest.fixture
def https(node_settings: Settings, clock: Clock, tmp_path: Path) -> Iterator[Https]:  # noqa: F811
    ca = make_ca()
    certificate, key = tls_leaf(ca).write(tmp_path / "tls", "node")
    authority, _ = ca.write(tmp_path / "tls", "ca")
    port = free_port()
    settings = node_settings.model_copy(update={"node_id": f"https://localhost:{port}"})
    initialize_node(settings, now=NOW)
    app = create_app(settings, now=clock)
    seed_resident(TestClient(app))
    with RunningNode(app, port, tls=(str(certificate), str(key))) as node:
        served = Https(node, authority)
        yield served
        served.client.close()
