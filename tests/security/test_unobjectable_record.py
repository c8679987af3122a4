"""A record no one can object to (docs/SECURITY.md section 4; issue 19, item 1). A
department pushed a record whose id looked like a compact JWS (``eyJhbGciOiJ.x.1``);
her objection to it answered 500 and stored nothing, because the objection's audit entry
named ``department/record_id`` and the audit log refused token-shaped details. No route
could then remove the record. New pushes of such ids are refused
(tests/security/test_cross_department_repair.py); a record stored before that, or any
value a request brings into an audit entry, must never turn a valid request into a 500."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from node.auth import hash_token
from node.models import AuditEntry, Objection, Record
from tests.conftest import NOW

ADMIN_TOKEN = "admin-token-unobjectable"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PLANTED = "eyJhbGciOiJ.x.1"
RESIDENT = "resident-planted"


def login(client: TestClient, subject: str) -> dict[str, str]:
    token = client.post("/dev-idp/token", json={"subject": subject}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_a_token_shaped_record_id_can_be_objected_to_and_removed(make_client: Any) -> None:
    client = make_client(admin_token_hash=hash_token(ADMIN_TOKEN))
    engine = client.app.state.node.engine  # type: ignore[attr-defined]
    with Session(engine) as db:  # as a push before record ids were checked stored it
        db.add(
            Record(department="court", record_id=PLANTED, resident_id=RESIDENT,
                   kind="unfulfilled_judgment", occurred_at=NOW - 86400,
                   recorded_at=NOW - 86400)
        )  # fmt: skip
        db.commit()
    her = login(client, RESIDENT)
    response = client.post(
        "/v1/me/objections",
        json={"record": f"court/{PLANTED}", "reason": "this is not my judgment"},
        headers=her,
    )
    assert response.status_code == 201, response.text
    objection = response.json()["id"]
    response = client.post(
        f"/v1/admin/objections/{objection}/resolve",
        json={"decision": "upheld", "note": "planted by a stolen token"},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    with Session(engine) as db:
        [record] = db.exec(select(Record).where(Record.record_id == PLANTED)).all()
        assert record.status == "removed"
        assert len(db.exec(select(Objection)).all()) == 1
        entries = db.exec(select(AuditEntry).order_by(AuditEntry.seq)).all()
    filed = [e for e in entries if e.action == "objection.filed"]
    assert len(filed) == 1
    digest = "sha256:" + hashlib.sha256(f"court/{PLANTED}".encode()).hexdigest()
    assert digest in str(filed[0].details)
    assert all(PLANTED not in str(e.details) for e in entries)
    assert client.get("/v1/admin/audit/verify", headers=ADMIN).json()["ok"] is True
