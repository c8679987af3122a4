"""How the pages are served (node/web.py): each folder under its path with a content
security policy that allows no inline script and no third party, a directory asked
without its slash redirected by path only (never to the Host header's host)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from node.app import create_app, initialize_node
from tests.conftest import NOW
from tests.node.conftest import xiamen_settings


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = xiamen_settings(tmp_path / "node")
    initialize_node(settings, now=NOW)
    return TestClient(create_app(settings, now=lambda: NOW))


@pytest.mark.parametrize("path", ["/me/", "/kiosk/", "/wallet/", "/common/ccx.css"])
def test_each_page_is_served_with_a_strict_policy(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_only_the_wallet_may_connect_to_other_nodes(client: TestClient) -> None:
    assert "connect-src 'self';" in client.get("/kiosk/").headers["content-security-policy"]
    assert (
        "connect-src 'self' http: https:;"
        in (client.get("/wallet/").headers["content-security-policy"])
    )


def test_a_folder_without_its_slash_is_redirected_by_path_only(client: TestClient) -> None:
    answer = client.get("/kiosk", headers={"host": "evil.example"}, follow_redirects=False)
    assert answer.status_code in (302, 307)
    assert answer.headers["location"] == "/kiosk/"


def test_the_alliance_dashboard_is_only_on_the_alliance_host(client: TestClient) -> None:
    assert client.get("/alliance/").status_code == 404


def test_no_path_leaves_the_folder(client: TestClient) -> None:
    assert client.get("/common/../../node/settings.py").status_code == 404
    assert client.get("/common/%2e%2e/%2e%2e/settings.py").status_code == 404
