"""A flood of requests from one caller (docs/SECURITY.md, "Flood of verifications";
issue 17, gap F).

One resident's app in a loop, one department's script gone wrong, one address hammering
the token endpoint or trying tokens: each has a token bucket of its own, shared by every
worker and process of the node through the database, and is answered 429 with
Retry-After once it is empty, while everyone else is served. A failed authentication
costs its address a token; an address out of them is refused before its credentials
are looked up. Limits are settings (CCX_RESIDENT_RATE, ...); CCX_RATE_LIMITS=false
turns them off for benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlmodel import Session

from node.app import create_app, initialize_node
from node.services import clients
from tests.conftest import NOW
from tests.node.issuing_helpers import bearer, error_code, node_state
from tests.node.servers import RunningNode, WorldClock

SMALL = {
    "resident_rate": 1.0,
    "resident_burst": 8,
    "client_rate": 1.0,
    "client_burst": 8,
    "public_rate": 1.0,
    "public_burst": 12,
    "failed_auth_rate": 1.0,
    "failed_auth_burst": 5,
}


def _department(client: TestClient, client_id: str) -> dict[str, str]:
    with Session(node_state(client).engine) as db:
        _, token = clients.create_client(
            db,
            client_id=client_id,
            department="civil_registry",
            scopes=["records:push"],
            actor="admin",
            now=NOW,
        )
    return {"Authorization": f"Bearer {token}"}


def _push(client: TestClient, headers: dict[str, str], n: int = 0) -> int:
    record = {
        "record_id": f"flood-{n}",
        "resident_id": "someone",
        "kind": "identity_verified",
        "occurred_at": NOW - 60,
    }
    return client.post("/v1/records", json={"records": [record]}, headers=headers).status_code


def test_a_residents_burst_is_refused_while_another_resident_is_served(
    make_client: Any, clock: Any
) -> None:
    node = make_client(**SMALL)
    flooding, other = bearer(node, "flooding-resident"), bearer(node, "patient-resident")
    answers = [node.get("/v1/me/consents", headers=flooding) for _ in range(12)]
    assert [a.status_code for a in answers[:8]] == [200] * 8
    refused = answers[8]
    assert refused.status_code == 429, refused.text
    assert error_code(refused) == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert "this resident" in refused.json()["error"]["message"]
    assert node.get("/v1/me/consents", headers=other).status_code == 200
    clock.now = NOW + 3  # the bucket refills at her rate
    assert node.get("/v1/me/consents", headers=flooding).status_code == 200


def test_a_departments_burst_is_refused_per_client(make_client: Any) -> None:
    node = make_client(**SMALL)
    runaway, other = _department(node, "runaway-feed"), _department(node, "calm-feed")
    statuses = [_push(node, runaway, n) for n in range(10)]
    assert statuses == [200] * 8 + [429] * 2, statuses
    assert _push(node, other) == 200


def test_unknown_tokens_from_one_address_are_refused_before_any_look_up(
    make_client: Any,
) -> None:
    node = make_client(**SMALL)
    department = _department(node, "honest-feed")
    assert _push(node, department) == 200
    guesses = [
        node.post(
            "/v1/records", json={"records": []}, headers={"Authorization": f"Bearer guess-{n}"}
        )
        for n in range(8)
    ]
    assert [g.status_code for g in guesses[:5]] == [401] * 5  # each costs a token
    assert guesses[6].status_code == 429
    assert "failed authentications" in guesses[6].json()["error"]["message"]
    assert int(guesses[6].headers["Retry-After"]) >= 1
    # credentials this worker already knows good still pass from that address
    assert _push(node, department, 1) == 200


def test_the_unauthenticated_routes_are_limited_per_address(make_client: Any) -> None:
    node = make_client(**SMALL)
    statuses = [
        node.post("/dev-idp/token", json={"subject": f"anyone-{n}"}).status_code for n in range(14)
    ]
    assert statuses[:12] == [200] * 12
    assert statuses[12] == 429


def test_with_rate_limits_off_a_burst_is_served(make_client: Any) -> None:
    node = make_client(**SMALL, rate_limits=False)
    flooding = bearer(node, "benchmark-resident")
    assert {node.get("/v1/me/consents", headers=flooding).status_code for _ in range(20)} == {200}


def test_two_processes_on_one_database_share_the_limit(node_settings: Any, tmp_path: Path) -> None:
    """Two node apps (two processes' worth: each its own memory and leases) on one
    database, served over real HTTP: a resident's burst split between them is cut at
    the one limit, not at twice it. On PostgreSQL when CCX_TEST_DATABASE_URL is set."""
    settings = node_settings.model_copy(update=SMALL)
    initialize_node(settings, now=NOW)
    clock = WorldClock(NOW)
    with (
        RunningNode(create_app(settings, now=clock)) as first,
        RunningNode(create_app(settings, now=clock)) as second,
    ):
        token = httpx.post(f"{first.url}/dev-idp/token", json={"subject": "two-homes"}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        statuses = [
            httpx.get(f"{(first, second)[n % 2].url}/v1/me/consents", headers=headers).status_code
            for n in range(16)
        ]
    assert statuses.count(200) == SMALL["resident_burst"], statuses
    assert statuses.count(429) == 16 - SMALL["resident_burst"]
