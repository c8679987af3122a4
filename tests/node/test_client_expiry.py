"""Client credentials' expiry through the admin API (issue 17, docs/SECURITY.md
section 13): how it is asked for, what is refused, and the service point behind a
pending OpenID4VP request (``node.auth.client_by_id``) expiring too."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from node.auth import client_by_id
from node.models import AuditEntry
from node.services.clients import CLIENT_MAX_LIFETIME
from tests.conftest import NOW
from tests.node.issuing_helpers import node_state
from tests.node.pushing import ADMIN, admin_settings


@pytest.fixture
def node(make_client: Any) -> TestClient:
    client: TestClient = make_client(**admin_settings())
    return client


def create(node: TestClient, **fields: Any) -> Any:
    body = {"id": "desk-1", "department": "culture", "scopes": ["records:push"], **fields}
    return node.post("/v1/admin/clients", json=body, headers=ADMIN)


@pytest.mark.parametrize(
    ("fields", "expires_at"),
    [
        ({}, NOW + CLIENT_MAX_LIFETIME),
        ({"expires_in": 600}, NOW + 600),
        ({"expires_at": NOW + 30 * 86400}, NOW + 30 * 86400),
        ({"expires_in": CLIENT_MAX_LIFETIME}, NOW + CLIENT_MAX_LIFETIME),
    ],
)
def test_the_expiry_asked_for_is_kept_listed_and_audited(
    node: TestClient, fields: dict[str, int], expires_at: int
) -> None:
    created = create(node, **fields)
    assert created.status_code == 201, created.text
    assert created.json()["expires_at"] == expires_at
    [listed] = node.get("/v1/admin/clients", headers=ADMIN).json()["clients"]
    assert listed["expires_at"] == expires_at
    with Session(node_state(node).engine) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.action == "client.created")).one()
    assert entry.details["expires_at"] == expires_at


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"expires_in": 60, "expires_at": NOW + 60}, "invalid_expiry"),
        ({"expires_at": NOW}, "invalid_expiry"),
        ({"expires_at": NOW - 1}, "invalid_expiry"),
        ({"expires_at": NOW + CLIENT_MAX_LIFETIME + 1}, "client_lifetime_too_long"),
        ({"expires_in": CLIENT_MAX_LIFETIME + 1}, "invalid_request"),
        ({"expires_in": 0}, "invalid_request"),
        ({"expires_in": "3600"}, "invalid_request"),
        ({"scopes": ["admin"]}, "scope_not_granted"),
    ],
)
def test_a_bad_expiry_or_the_admin_scope_is_refused_and_nothing_made(
    node: TestClient, fields: dict[str, Any], code: str
) -> None:
    answer = create(node, **fields)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == code
    assert node.get("/v1/admin/clients", params={"revoked": "true"}, headers=ADMIN).json() == {
        "clients": []
    }


def test_the_service_point_behind_a_pending_request_expires_too(
    node: TestClient, clock: Any
) -> None:
    assert create(node, expires_in=60).status_code == 201
    state = node_state(node)
    found = client_by_id(state, "desk-1")
    assert found is not None
    assert found.expires_at == NOW + 60
    clock.now = NOW + 60  # remembered by this worker, refused all the same
    assert client_by_id(state, "desk-1") is None
