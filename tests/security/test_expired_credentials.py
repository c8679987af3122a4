"""Forgotten credentials (docs/SECURITY.md, "Compromised department token" and
"Compromised admin token"; issue 17, known gap H).

A service point's or department's token copied into a script, a laptop, a kiosk sold
off: before issue 17 it worked until someone remembered to revoke it. Now credentials
expire (at most two years after they are made, by default then), and from that second
on the node refuses them like revoked ones, in the worker that has them cached too."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from node.services import clients
from node.services.clients import CLIENT_MAX_LIFETIME
from tests.conftest import NOW
from tests.node.issuing_helpers import node_state
from tests.node.pushing import ADMIN, admin_settings, record
from tests.security.world import World

LIBRARY = "library_deposit_free"


def make(node: TestClient, client_id: str, scopes: list[str], **expiry: int) -> dict[str, str]:
    """Credentials made through the admin API."""
    answer = node.post(
        "/v1/admin/clients",
        json={"id": client_id, "department": "tax", "scopes": scopes, **expiry},
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def challenge(node: TestClient, desk: dict[str, str]) -> Any:
    return node.post("/v1/verifications/challenge", json={"scenario": LIBRARY}, headers=desk)


def desk_until(world: World, client_id: str, **expiry: int) -> dict[str, str]:
    """A service point of Xiamen's (which follows the registry), made as the admin API
    makes it."""
    with Session(node_state(world.xiamen).engine) as db:
        _, token = clients.create_client(
            db, client_id=client_id, department="culture", scopes=[f"verify:{LIBRARY}"],
            actor="admin", now=NOW, **expiry,
        )  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


def test_an_expired_service_point_is_refused_even_while_cached(world: World, clock: Any) -> None:
    desk = desk_until(world, "old-kiosk", expires_in=3600)
    assert challenge(world.xiamen, desk).status_code == 201  # now remembered by this worker

    clock.now = NOW + 3600  # its expiry, seconds later: still in the worker's cache
    refused = challenge(world.xiamen, desk)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "credentials_expired"
    with Session(node_state(world.xiamen).engine) as db:
        in_force = clients.list_clients(db, now=clock.now)
        every = clients.list_clients(db, now=clock.now, revoked=True)
    assert "old-kiosk" not in [c.id for c in in_force]
    assert [(c.id, c.expires_at) for c in every] == [("old-kiosk", NOW + 3600)]


def test_an_expired_department_token_pushes_nothing(make_client: Any, clock: Any) -> None:
    node = make_client(**admin_settings())
    tax = make(node, "tax-script", ["records:push"], expires_at=NOW + 86400)
    assert node.post("/v1/records", json=record("t-1"), headers=tax).status_code == 200
    clock.now = NOW + 86400
    refused = node.post("/v1/records", json=record("t-2"), headers=tax)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "credentials_expired"


def test_credentials_expire_by_default_and_never_later_than_the_limit(
    make_client: Any, clock: Any
) -> None:
    node = make_client(**admin_settings())
    for too_long in ({"expires_in": CLIENT_MAX_LIFETIME + 1},
                     {"expires_at": NOW + CLIENT_MAX_LIFETIME + 1}):  # fmt: skip
        answer = node.post(
            "/v1/admin/clients",
            json={"id": "forever", "department": "tax", "scopes": ["records:push"], **too_long},
            headers=ADMIN,
        )
        assert answer.status_code == 422, answer.text
    tax = make(node, "tax-feed", ["records:push"])  # no expiry asked: the longest
    clock.now = NOW + CLIENT_MAX_LIFETIME - 1
    assert node.post("/v1/records", json=record("t-1"), headers=tax).status_code == 200
    clock.now = NOW + CLIENT_MAX_LIFETIME
    assert node.post("/v1/records", json=record("t-2"), headers=tax).status_code == 401
