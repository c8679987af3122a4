"""Repairs across departments (docs/SECURITY.md, "Compromised department token";
issue 19, items 1b and 2).

A repair is checked, when it is pushed, against one record: her counting negative record
of some department, the pushing department's own unless its credentials hold
``records:repair`` (the credit centre). These show that the repair stays with that
record: records of the same id pushed later by other departments, or the removal of the
record, never cancel it or hand it to another department's record. And that record ids
shaped like tokens never get in (the audit log, which names records, refuses them)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import NOW
from tests.node.issuing_helpers import bearer
from tests.node.pushing import ADMIN, DAY, admin_settings, credentials, record, stored_records

CREDIT_CENTRE = ("records:push", "records:repair")
JUDGMENT = {"kind": "unfulfilled_judgment", "occurred_at": NOW - 20 * DAY}  # -250, serious


def push(node: TestClient, headers: dict[str, str], *rows: dict[str, Any]) -> list[Any]:
    response = node.post("/v1/records", json={"records": list(rows)}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


def her_score(node: TestClient, resident: str) -> float:
    """Her score as she sees it (``GET /v1/me/score``, with her ``open_score`` consent)."""
    headers = bearer(node, resident)
    node.post("/v1/me/consents", json={"kind": "open_score"}, headers=headers)  # 409 if held
    response = node.get("/v1/me/score", headers=headers)
    assert response.status_code == 200, response.text
    return float(response.json()["score"])


def rescore_everyone(node: TestClient) -> None:
    assert node.post("/v1/admin/rescore", headers=ADMIN).status_code == 200


def test_a_same_id_record_of_another_department_cannot_cancel_a_certified_repair(
    make_client: Any,
) -> None:
    node: TestClient = make_client(**admin_settings())
    court, tax = credentials(node, "court"), credentials(node, "tax")
    centre = credentials(node, "credit-centre", scopes=CREDIT_CENTRE)
    assert push(node, court, record("J-9", **JUDGMENT))[0]["status"] == "stored"
    assert her_score(node, "alice") == 250
    certified = push(node, centre, record("fix-J-9", kind="repair_completed", repairs="J-9"))
    assert certified[0]["status"] == "stored"
    assert her_score(node, "alice") == 313  # a quarter of 250 back: 312.5, half up

    # the tax office's own J-9 (its ids are its own): a volunteering record, +8
    assert push(node, tax, record("J-9", kind="volunteering"))[0]["status"] == "stored"
    assert her_score(node, "alice") == 321  # not 258: the repair still repairs the court's
    rescore_everyone(node)  # the monthly job links repairs the same way
    assert her_score(node, "alice") == 321


def test_a_removed_own_record_does_not_hand_its_repair_to_another_departments_record(
    make_client: Any,
) -> None:
    node: TestClient = make_client(**admin_settings())
    court = credentials(node, "court")
    library = credentials(node, "library")  # no records:repair
    assert push(node, court, record("J-77", **JUDGMENT))[0]["status"] == "stored"
    # the court's record is not the library's to repair
    refused = push(node, library, record("fix-0", kind="repair_completed", repairs="J-77"))
    assert refused[0]["code"] == "repair_not_allowed"

    # its own J-77 and a repair of that, which is allowed
    results = push(
        node,
        library,
        record("J-77", kind="tax_arrears"),
        record("fix-77", kind="repair_completed", repairs="J-77"),
    )
    assert [r["status"] for r in results] == ["stored", "stored"]
    assert her_score(node, "alice") == 210  # 500 - 250 - 80 + 40

    # she objects to the library's J-77 and the objection is upheld: the record goes
    alice = bearer(node, "alice")
    objection = node.post(
        "/v1/me/objections", json={"record": "library/J-77", "reason": "not mine"}, headers=alice
    )
    assert objection.status_code == 201, objection.text
    decided = node.post(
        f"/v1/admin/objections/{objection.json()['id']}/resolve",
        json={"decision": "upheld", "note": "recorded in error"},
        headers=ADMIN,
    )
    assert decided.status_code == 200, decided.text
    assert her_score(node, "alice") == 250  # not 313: the repair doesn't move to the court's
    rescore_everyone(node)
    assert her_score(node, "alice") == 250


def test_a_record_id_shaped_like_a_token_is_refused(make_client: Any) -> None:
    node: TestClient = make_client(**admin_settings())
    tax = credentials(node, "tax")
    shaped = "eyJhbGciOiJ.x.1"  # the probe's id: the start of a compact JWS
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
    results = push(
        node,
        tax,
        record("t-1"),
        record(shaped),
        record(f"ref-{jwt}"),
        record("fix-1", kind="repair_completed", repairs=jwt),
        record("t-2"),
    )
    assert [(r["status"], r.get("code")) for r in results] == [
        ("stored", None),
        ("refused", "invalid_record"),
        ("refused", "invalid_record"),
        ("refused", "invalid_record"),
        ("stored", None),
    ]
    for refused in results[1:4]:
        assert "looks like a token" in refused["message"]
    assert "record_id" in results[1]["message"]
    assert "repairs" in results[3]["message"]
    assert [r["record_id"] for r in results[1:3]] == [None, None]  # never echoed
    assert [r.record_id for r in stored_records(node)] == ["t-1", "t-2"]

    # one record alone: the body itself is invalid (as for any id the pattern refuses)
    alone = node.post("/v1/records", json=record(shaped), headers=tax)
    assert alone.status_code == 422
    assert alone.json()["error"]["code"] == "invalid_request"
    assert shaped not in alone.text  # the refusal names the field, never the value
    upload = node.post(
        "/v1/records/upload",
        files={
            "file": (
                "r.csv",
                f"record_id,resident_id,kind,occurred_at\n{shaped},a,honour,{NOW}\n".encode(),
                "text/csv",
            )
        },
        headers=tax,
    )
    assert upload.json()["results"][0]["code"] == "invalid_record"
    assert [r.record_id for r in stored_records(node)] == ["t-1", "t-2"]
