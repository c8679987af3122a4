"""A compromised admin token (docs/SECURITY.md, "Compromised admin token").

The admin token is the node's master key: it creates credentials, rotates the signing
key, resolves objections (which changes scores) and reads the audit log. What the node
does about its theft is make every write it allows leave an entry in the hash-chained
audit log under its actor; these show that, and the one door that outlives changing
the token: a client created with the ``admin`` scope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from node.auth import hash_token
from node.models import AuditEntry
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


def test_an_admin_scoped_client_outlives_the_admin_token_and_shows_in_the_audit_log(
    make_client: Any, tmp_path: Path
) -> None:
    node = make_client(**admin_settings())
    backdoor = credentials(node, "it", scopes=("admin",), client_id="helpdesk")
    # The operator changes the admin token; the same data folder, a new token hash.
    after = make_client(admin_token_hash=hash_token("a new admin token"))
    assert after.get("/v1/admin/audit", headers=ADMIN).status_code == 403
    still = after.post(
        "/v1/admin/clients",
        json={"id": "another", "department": "it", "scopes": ["records:push"]},
        headers=backdoor,
    )
    assert still.status_code == 201, still.text  # residual: revoke admin-scoped clients too
    trail = audit_trail(after)
    assert ("admin", "client.created") in trail  # how a review finds the backdoor ...
    assert ("client:helpdesk", "client.created") in trail  # ... and what it did
    with Session(node_state(after).engine) as db:
        created = db.exec(select(AuditEntry).where(AuditEntry.subject == "helpdesk")).one()
    assert created.details["scopes"] == ["admin"]
