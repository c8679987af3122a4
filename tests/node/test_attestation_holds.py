"""A resident's holds on her attestations (issue 17, known gap C of docs/SECURITY.md):
suspending one and resuming it (a mislaid phone), and revoking every attestation bound
to one wallet key at once (a lost phone). Each sets its status list entry and is
audited under the resident; a revocation is final."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlmodel import select

import protocol as P
from node.models import Attestation, AuditEntry
from tests.node.issuing_helpers import (
    bearer,
    error_code,
    request_attestation,
    seed_resident,
    session,
)
from tests.node.test_issuing import status_of

OTHER = "resident-2"


def issue(client: TestClient, headers: dict[str, str], holder: Any = None) -> dict[str, Any]:
    key = holder if holder is not None else ec.generate_private_key(ec.SECP256R1())
    assert request_attestation(client, headers, key).status_code == 201
    listed: list[dict[str, Any]] = client.get("/v1/me/attestations", headers=headers).json()[
        "attestations"
    ]
    return listed[0]  # newest first


def status_in_list(client: TestClient, attestation_id: int) -> int:
    with session(client) as db:
        row = db.get(Attestation, attestation_id)
        assert row is not None
        list_id, idx = row.status_list_id, row.status_idx
    return status_of(client, list_id, idx)


def audit_entries(client: TestClient, action: str) -> list[AuditEntry]:
    with session(client) as db:
        return list(db.exec(select(AuditEntry).where(AuditEntry.action == action)))


def post(client: TestClient, path: str, headers: dict[str, str], **body: Any) -> Any:
    return client.post(f"/v1/me/attestations{path}", headers=headers, json=body or None)


def test_the_holds_need_her_token(client: TestClient) -> None:
    for path in ("/1/suspend", "/1/resume", "/revoke"):
        assert client.post(f"/v1/me/attestations{path}").status_code == 401


def test_she_suspends_one_attestation_and_resumes_it(client: TestClient) -> None:
    seed_resident(client)
    headers = bearer(client)
    kept, held = issue(client, headers), issue(client, headers)

    suspended = post(client, f"/{held['id']}/suspend", headers)
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert status_in_list(client, held["id"]) == P.STATUS_SUSPENDED
    assert status_in_list(client, kept["id"]) == P.STATUS_VALID  # one, not all of hers
    [entry] = audit_entries(client, "attestations.suspended")
    assert (entry.actor, entry.subject) == ("resident", "resident-1")
    assert entry.details == {
        "reason": "holder_suspended",
        "count": 1,
        "attestation_ids": [held["id"]],
    }

    resumed = post(client, f"/{held['id']}/resume", headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "valid"
    assert status_in_list(client, held["id"]) == P.STATUS_VALID
    [entry] = audit_entries(client, "attestations.resumed")
    assert entry.details == {
        "reason": "holder_resumed",
        "count": 1,
        "attestation_ids": [held["id"]],
    }


def test_suspending_twice_or_resuming_a_valid_one_is_a_conflict(client: TestClient) -> None:
    seed_resident(client)
    headers = bearer(client)
    attestation = issue(client, headers)
    resumed = post(client, f"/{attestation['id']}/resume", headers)
    assert (resumed.status_code, error_code(resumed)) == (409, "not_suspended")
    assert post(client, f"/{attestation['id']}/suspend", headers).status_code == 200
    again = post(client, f"/{attestation['id']}/suspend", headers)
    assert (again.status_code, error_code(again)) == (409, "already_suspended")
    assert len(audit_entries(client, "attestations.suspended")) == 1


def test_a_revoked_attestation_is_never_resumed_nor_suspended(client: TestClient) -> None:
    seed_resident(client)
    headers = bearer(client)
    attestation = issue(client, headers)
    assert post(client, f"/{attestation['id']}/suspend", headers).status_code == 200
    revoked = post(client, f"/{attestation['id']}/revoke", headers)  # a suspended one too
    assert revoked.status_code == 200, revoked.text
    assert status_in_list(client, attestation["id"]) == P.STATUS_REVOKED
    for action in ("resume", "suspend"):
        answer = post(client, f"/{attestation['id']}/{action}", headers)
        assert (answer.status_code, error_code(answer)) == (409, "already_revoked")
    assert status_in_list(client, attestation["id"]) == P.STATUS_REVOKED
    assert not audit_entries(client, "attestations.resumed")


def test_another_residents_attestation_cannot_be_suspended_or_resumed(client: TestClient) -> None:
    seed_resident(client)
    seed_resident(client, OTHER)
    theirs = issue(client, bearer(client, OTHER))
    for action in ("suspend", "resume"):
        answer = post(client, f"/{theirs['id']}/{action}", bearer(client))
        assert (answer.status_code, error_code(answer)) == (404, "attestation_not_found")
    assert status_in_list(client, theirs["id"]) == P.STATUS_VALID


def test_she_revokes_every_attestation_of_one_lost_key_at_once(client: TestClient) -> None:
    seed_resident(client)
    headers = bearer(client)
    lost, kept_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    first, second = issue(client, headers, lost), issue(client, headers, lost)
    kept = issue(client, headers, kept_key)
    assert first["holder_kid"] == second["holder_kid"] != kept["holder_kid"]
    assert post(client, f"/{first['id']}/suspend", headers).status_code == 200

    answer = post(client, "/revoke", headers, holder_kid=first["holder_kid"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["holder_kid"] == first["holder_kid"]
    assert {(a["id"], a["status"]) for a in body["attestations"]} == {
        (first["id"], "revoked"),
        (second["id"], "revoked"),
    }
    assert status_in_list(client, first["id"]) == P.STATUS_REVOKED
    assert status_in_list(client, second["id"]) == P.STATUS_REVOKED
    assert status_in_list(client, kept["id"]) == P.STATUS_VALID
    [entry] = audit_entries(client, "attestations.revoked")
    assert (entry.actor, entry.subject) == ("resident", "resident-1")
    assert entry.details == {
        "reason": "holder_key_revoked",
        "holder_kid": first["holder_kid"],
        "count": 2,
        "attestation_ids": sorted([first["id"], second["id"]], reverse=True),
    }

    again = post(client, "/revoke", headers, holder_kid=first["holder_kid"])
    assert again.status_code == 200, again.text  # nothing more to revoke, nothing audited
    assert len(audit_entries(client, "attestations.revoked")) == 1


def test_a_key_that_binds_none_of_hers_is_not_found(client: TestClient) -> None:
    seed_resident(client)
    seed_resident(client, OTHER)
    theirs = issue(client, bearer(client, OTHER))
    answer = post(client, "/revoke", bearer(client), holder_kid=theirs["holder_kid"])
    assert (answer.status_code, error_code(answer)) == (404, "holder_key_not_found")
    assert status_in_list(client, theirs["id"]) == P.STATUS_VALID


def test_a_holder_kid_that_is_no_thumbprint_is_refused(client: TestClient) -> None:
    seed_resident(client)
    for bad in ("", "x" * 44, "a+b/" * 11, 42):
        answer = post(client, "/revoke", bearer(client), holder_kid=bad)
        assert answer.status_code == 422, bad
        assert "a+b/" not in answer.text
