"""A compromised admin token (docs/SECURITY.md, "Compromised admin token").

The admin token is the node's master key: it creates credentials, rotates the signing
key, resolves objections (which changes scores) and reads the audit log. What the node
does about its theft is make every write it allows leave an entry in the hash-chained
audit log under its actor; these show that, and that no door outlives changing the
token: no client is an admin (issue 17; before, a client created with the ``admin``
scope was one, and stayed one)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from node.auth import hash_token
from node.models import AuditEntry, Client
from tests.node.issuing_helpers import bearer, node_state
from tests.node.pushing import ADMIN, admin_settings, credentials, record


def audit_trail(client: Any) -> list[tuple[str, str]]:
    with Session(node_state(client).engine) as db:
        entries = db.exec(select(AuditEntry).order_by(AuditEntry.seq)).all()  # type: ignore[arg-type]
    return [(entry.actor, entry.action) for entry in entries]


def test_every_admin_write_is_audited_under_its_actor(make_client: Any) -> None:
    node = make_client(**admin_settings())
    tax = credentials(node, "tax")  # client.created
    assert node.post("/v1/records", json=record("t-9", "alice"), headers=tax).status_code == 200
    alice = bearer(node, "alice")
    assert node.post("/v1/me/consents", json={"kind": "open_score"}, headers=alice).is_success
    filed = node.post(
        "/v1/me/objections", json={"record": "tax/t-9", "reason": "not mine"}, headers=alice
    )
    assert filed.status_code == 201, filed.text
    before = len(audit_trail(node))

    writes = [
        ("POST", f"/v1/admin/objections/{filed.json()['id']}/resolve",
         {"decision": "upheld", "note": "checked"}),
        ("POST", "/v1/admin/keys/rotate", None),
        ("POST", "/v1/admin/rescore", None),
        ("DELETE", "/v1/admin/clients/tax-client", None),
    ]  # fmt: skip
    for method, path, body in writes:
        response = node.request(method, path, json=body, headers=ADMIN)
        assert response.is_success, (path, response.text)
    actions = {action for actor, action in audit_trail(node)[before:] if actor == "admin"}
    assert {"objection.resolved", "keys.rotated", "scores.rescored", "client.revoked"} <= actions
    assert node.get("/v1/admin/audit/verify", headers=ADMIN).json()["ok"] is True


def test_no_client_is_made_an_admin_so_none_outlives_the_admin_token(make_client: Any) -> None:
    """Issue 17 closed known gap H: the thief can't leave himself an admin-scoped client
    behind, and one made before (stored with the scope) is no admin either."""
    node = make_client(**admin_settings())
    refused = node.post(
        "/v1/admin/clients",
        json={"id": "helpdesk", "department": "it", "scopes": ["records:push", "admin"]},
        headers=ADMIN,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "scope_not_granted"
    assert ("admin", "client.created") not in audit_trail(node)  # nothing was made
    with Session(node_state(node).engine) as db:  # one stored before issue 17
        db.add(
            Client(id="old-ops", department="it", token_hash=hash_token("old ops token"),
                   scopes=["admin"], created_at=0)
        )  # fmt: skip
        db.commit()
    # The operator changes the admin token: nothing the thief holds is an admin any more.
    after = make_client(admin_token_hash=hash_token("a new admin token"))
    for token in (ADMIN, {"Authorization": "Bearer old ops token"}):
        answer = after.post(
            "/v1/admin/clients",
            json={"id": "another", "department": "it", "scopes": ["records:push"]},
            headers=token,
        )
        assert answer.status_code == 403, answer.text
        assert after.get("/v1/admin/audit", headers=token).status_code == 403
