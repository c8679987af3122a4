"""Helpers for the tests of records and scoring: an admin, departments' credentials,
records as departments push them, and a look into the node's database."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from node.auth import hash_token
from node.models import Record, Score
from node.state import NodeState
from tests.conftest import NOW

ADMIN_TOKEN = "admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DAY = 86400


def admin_settings(**overrides: Any) -> dict[str, Any]:
    return {"admin_token_hash": hash_token(ADMIN_TOKEN), **overrides}


def credentials(
    client: TestClient,
    department: str,
    *,
    scopes: tuple[str, ...] = ("records:push",),
    client_id: str | None = None,
) -> dict[str, str]:
    """Headers with a new client token of ``department`` (created by the admin)."""
    response = client.post(
        "/v1/admin/clients",
        json={
            "id": client_id or f"{department}-client",
            "department": department,
            "scopes": list(scopes),
        },
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def record(
    record_id: str, resident_id: str = "alice", kind: str = "tax_arrears", **fields: Any
) -> dict[str, Any]:
    """A record as a department pushes it; it happened ten days before NOW by default."""
    return {
        "record_id": record_id,
        "resident_id": resident_id,
        "kind": kind,
        "occurred_at": NOW - 10 * DAY,
        **fields,
    }


def state_of(client: TestClient) -> NodeState:
    state: NodeState = client.app.state.node  # type: ignore[attr-defined]
    return state


def stored_records(client: TestClient) -> list[Record]:
    with Session(state_of(client).engine) as session:
        return list(session.exec(select(Record).order_by(Record.id)))  # type: ignore[arg-type]


def score_of(client: TestClient, resident_id: str) -> Score | None:
    with Session(state_of(client).engine) as session:
        return session.get(Score, resident_id)
