"""A compromised department token (docs/SECURITY.md, "Compromised department token").

A department's client credentials carry the scope ``records:push`` and nothing else.
Stolen, they push records in that department's name, which is the damage to contain;
they must not reach any other door of the node."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.node.pushing import admin_settings, credentials, record, stored_records

# Every door of the node other than pushing, with a body it would accept from the
# right caller; a department token must be refused at each (401: not a resident's
# bearer JWT, or no challenge of its own; 403: not an admin, not a service point).
OTHER_DOORS = [
    ("POST", "/v1/verifications/challenge", {"scenario": "library_deposit_free"}, 403),
    # no challenge can be its own (asking for one needs a verify scope): nonce_unknown
    ("POST", "/v1/verifications", {"nonce": "n", "presentation": "p"}, 401),
    ("POST", "/v1/admin/clients", {"id": "x", "department": "tax", "scopes": ["admin"]}, 403),
    ("DELETE", "/v1/admin/clients/tax-client", None, 403),
    ("GET", "/v1/admin/audit", None, 403),
    ("GET", "/v1/admin/audit/verify", None, 403),
    ("POST", "/v1/admin/keys/rotate", None, 403),
    ("POST", "/v1/admin/rescore", None, 403),
    ("GET", "/v1/admin/distribution/2027-01", None, 403),
    ("GET", "/v1/admin/objections", None, 403),
    ("POST", "/v1/admin/objections/1/resolve", {"decision": "upheld", "note": "x"}, 403),
    ("GET", "/v1/me/score", None, 401),
    ("GET", "/v1/me/consents", None, 401),
    ("POST", "/v1/me/attestations/nonce", None, 401),
]


def test_a_stolen_department_token_opens_no_door_but_pushing(make_client: Any) -> None:
    node: TestClient = make_client(**admin_settings())
    stolen = credentials(node, "tax")
    pushed = node.post("/v1/records", json=record("t-1"), headers=stolen)
    assert pushed.json()["stored"] == 1
    answered = {
        f"{method} {path}": node.request(method, path, json=body, headers=stolen).status_code
        for method, path, body, _ in OTHER_DOORS
    }
    assert answered == {f"{method} {path}": status for method, path, _, status in OTHER_DOORS}
    assert [r.record_id for r in stored_records(node)] == ["t-1"]  # and nothing else changed


def test_a_stolen_department_token_cannot_repair_another_departments_record(
    make_client: Any,
) -> None:
    node: TestClient = make_client(**admin_settings())
    tax, stolen = credentials(node, "tax"), credentials(node, "library")
    assert node.post("/v1/records", json=record("t-1"), headers=tax).json()["stored"] == 1
    repair = record("fix-1", kind="repair_completed", repairs="t-1")
    body = node.post("/v1/records", json=repair, headers=stolen).json()
    assert body["results"][0]["status"] == "refused"
