"""Residents (issue 4): score with breakdown, consents, objections, and who may see what.

Records are seeded straight into the node's database (the department push API is
separate work). The audit log's ``append`` and the issuing service's
``revoke_outstanding`` are the real ones, wrapped so that each test can also see the
calls made to them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

import protocol as P
from node.auth import hash_token
from node.dev_idp import DevIdentityProvider
from node.models import (
    Attestation,
    AuditEntry,
    Consent,
    Objection,
    Record,
    Score,
    StatusListRow,
)
from node.scoring import load_model
from node.services import audit, issuing
from tests.conftest import METRICS, NOW
from tests.node.test_verifications import install_registry, registry_token

DAY = 86400
ADMIN_TOKEN = "an admin token for tests only"
FUZHOU = "https://fuzhou.ccx.example"
QUANZHOU = "https://quanzhou.ccx.example"
PUTIAN = "https://putian.ccx.example"  # a suspended member
SHARE = {
    "kind": "share_alliance",
    "recipients": [FUZHOU, QUANZHOU],
    "purpose": "deposit-free library borrowing while visiting Fuzhou",
}
SHARE_WITH_EVERY_MEMBER = {**SHARE, "recipients": ["alliance"]}


# --- collaborators --------------------------------------------------------------------


@dataclass
class Recorder:
    calls: list[dict[str, Any]] = field(default_factory=list)

    def actions(self) -> list[str]:
        return [call["action"] for call in self.calls]


@pytest.fixture(autouse=True)
def audit_log(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Every ``audit.append`` call, passed on to the real one."""
    recorder, real = Recorder(), audit.append

    def append(session: Session, **kwargs: Any) -> Any:
        recorder.calls.append(kwargs)
        return real(session, **kwargs)

    monkeypatch.setattr(audit, "append", append)
    return recorder


@pytest.fixture(autouse=True)
def revocations(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Every ``issuing.revoke_outstanding`` call, passed on to the real one."""
    recorder, real = Recorder(), issuing.revoke_outstanding

    def revoke(
        session: Session, state: Any, resident_id: str, *, now: int, reason: str,
        credential: str = "credit_standing",
    ) -> int:  # fmt: skip
        recorder.calls.append({"resident_id": resident_id, "now": now, "reason": reason})
        return real(session, state, resident_id, now=now, reason=reason, credential=credential)

    monkeypatch.setattr(issuing, "revoke_outstanding", revoke)
    return recorder


# --- helpers --------------------------------------------------------------------------


def follow_registry(client: TestClient, members: dict[str, str], *, now: int = NOW) -> None:
    """Have the node follow a registry (signed by the test root) listing ``members``
    (id -> status), each with this node's keys (only the ids matter here)."""
    jwks = client.get("/.well-known/jwks.json").json()
    token = registry_token(
        [(mid, f"city{i}", jwks, status) for i, (mid, status) in enumerate(members.items())],
        now=now,
    )
    install_registry(client, token, now)


@pytest.fixture
def client(make_client: Any) -> TestClient:
    """A node following a registry of Fuzhou, Quanzhou (active) and Putian (suspended)."""
    node: TestClient = make_client(admin_token_hash=hash_token(ADMIN_TOKEN))
    follow_registry(node, {FUZHOU: "active", QUANZHOU: "active", PUTIAN: "suspended"})
    return node


@pytest.fixture
def lone_client(make_client: Any) -> TestClient:
    """A node that follows no registry (no alliance root key pinned)."""
    return make_client(admin_token_hash=hash_token(ADMIN_TOKEN))  # type: ignore[no-any-return]


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def login(client: TestClient, subject: str) -> dict[str, str]:
    response = client.post("/dev-idp/token", json={"subject": subject})
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def session_of(client: TestClient) -> Session:
    return Session(client.app.state.node.engine)  # type: ignore[attr-defined]


def seed(client: TestClient, resident: str, *records: tuple[str, str, str], **extra: Any) -> None:
    """Records of ``resident`` as (department, record_id, kind), ten days old."""
    with session_of(client) as session:
        for department, record_id, kind in records:
            session.add(
                Record(
                    department=department,
                    record_id=record_id,
                    resident_id=resident,
                    kind=kind,
                    occurred_at=NOW - 10 * DAY,
                    recorded_at=NOW - 10 * DAY,
                    **extra,
                )
            )
        session.commit()


def rows(client: TestClient, model: Any, **where: Any) -> list[Any]:
    with session_of(client) as session:
        statement = select(model)
        for name, value in where.items():
            statement = statement.where(getattr(model, name) == value)
        return list(session.exec(statement))


def record_status(client: TestClient, department: str, record_id: str) -> str:
    (row,) = rows(client, Record, department=department, record_id=record_id)
    return str(row.status)


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def grant_open_score(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/v1/me/consents", json={"kind": "open_score"}, headers=headers)
    assert response.status_code == 201, response.text


ALICE_RECORDS = (
    ("public-security", "ps-1", "identity_verified"),  # basic +60
    ("volunteers", "v-1", "volunteering"),  # positive +8
    ("tax", "t-1", "tax_arrears"),  # dishonesty -80
)


@pytest.fixture
def alice(client: TestClient) -> dict[str, str]:
    """Alice, with three records; Bob has records of his own in the same departments."""
    seed(client, "alice", *ALICE_RECORDS)
    seed(client, "bob", ("tax", "t-2", "unfulfilled_judgment"), ("volunteers", "v-2", "honour"))
    return login(client, "alice")


# --- the score ------------------------------------------------------------------------


def test_opening_the_score_requires_her_consent(client: TestClient, alice: dict[str, str]) -> None:
    response = client.get("/v1/me/score", headers=alice)
    assert response.status_code == 403
    assert error_code(response) == "consent_required"
    assert rows(client, Score) == []


def test_score_is_computed_from_her_records_and_stored(
    client: TestClient, alice: dict[str, str]
) -> None:
    grant_open_score(client, alice)
    body = client.get("/v1/me/score", headers=alice).json()
    assert body["score"] == 500 + 60 + 8 - 80
    assert body["model_version"] == "demo-2026.11"
    assert body["computed_at"] == NOW
    assert body["scale"] == {"name": "demo", "min": 0, "max": 1000, "step": 1}
    assert body["objected_records_counted"] is False
    dimensions = {d["name"]: d for d in body["dimensions"]}
    assert list(dimensions) == ["basic", "positive", "dishonesty", "repair", "usage"]
    assert dimensions["basic"]["label"] == "基础信息"
    assert dimensions["dishonesty"]["cap"] == {"min": -450, "max": 0}
    assert {name: d["points"] for name, d in dimensions.items()} == {
        "basic": 60,
        "positive": 8,
        "dishonesty": -80,
        "repair": 0,
        "usage": 0,
    }
    assert dimensions["dishonesty"]["records"] == [
        {
            "department": "tax",
            "record_id": "t-1",
            "kind": "tax_arrears",
            "occurred_at": NOW - 10 * DAY,
            "points": -80,
            "status": "active",
            "objected": False,
            "severity": "general",
            "counts_until": NOW - 10 * DAY + 1095 * DAY,  # the demo model: three years
            "label_zh": "欠缴税款",
            "label_en": "Tax arrears",
            "explain_zh": load_model().kinds["tax_arrears"].explain_zh,
            "explain_en": load_model().kinds["tax_arrears"].explain_en,
        }
    ]
    (stored,) = rows(client, Score)
    assert (stored.resident_id, stored.score, stored.computed_at) == ("alice", 488, NOW)
    assert stored.model_version == "demo-2026.11"


def test_score_shows_only_her_own_records(client: TestClient, alice: dict[str, str]) -> None:
    grant_open_score(client, alice)
    body = client.get("/v1/me/score", headers=alice).json()
    shown = {(r["department"], r["record_id"]) for d in body["dimensions"] for r in d["records"]}
    assert shown == {(department, record_id) for department, record_id, _ in ALICE_RECORDS}


def test_stored_score_is_served_while_it_follows_from_her_records(
    client: TestClient, alice: dict[str, str], clock: Any
) -> None:
    grant_open_score(client, alice)
    client.get("/v1/me/score", headers=alice)
    clock.now += 600
    body = client.get("/v1/me/score", headers=alice).json()
    assert (body["score"], body["computed_at"]) == (488, NOW)
    assert sum(d["points"] for d in body["dimensions"]) == 488 - 500


def test_a_stale_stored_score_is_recomputed(
    client: TestClient, alice: dict[str, str], clock: Any
) -> None:
    grant_open_score(client, alice)
    client.get("/v1/me/score", headers=alice)
    clock.now += 600
    seed(client, "alice", ("hospital", "h-1", "pay_later_default"))  # pushed, not rescored
    body = client.get("/v1/me/score", headers=alice).json()
    assert (body["score"], body["computed_at"]) == (488 - 40, NOW + 600)
    (usage,) = next(d for d in body["dimensions"] if d["name"] == "usage")["records"]
    assert usage["record_id"] == "h-1"
    (stored,) = rows(client, Score, resident_id="alice")
    assert (stored.score, stored.computed_at) == (448, NOW + 600)


def test_a_score_of_another_model_version_is_recomputed(
    client: TestClient, alice: dict[str, str]
) -> None:
    with session_of(client) as session:
        session.add(
            Score(
                resident_id="alice",
                score=900,
                by_dimension={},
                computed_at=NOW - DAY,
                model_version="old-model",
            )
        )
        session.commit()
    grant_open_score(client, alice)
    body = client.get("/v1/me/score", headers=alice).json()
    assert (body["score"], body["model_version"], body["computed_at"]) == (
        488,
        "demo-2026.11",
        NOW,
    )


def test_repair_restores_part_of_the_record_it_names(client: TestClient) -> None:
    seed(client, "carol", ("tax", "t-9", "tax_arrears"))
    seed(
        client,
        "carol",
        ("tax", "t-10", "repair_completed"),
        repairs="t-9",
        repairs_department="tax",
    )
    headers = login(client, "carol")
    grant_open_score(client, headers)
    body = client.get("/v1/me/score", headers=headers).json()
    assert body["score"] == 500 - 80 + 40  # a general record: half restored
    (repair,) = next(d for d in body["dimensions"] if d["name"] == "repair")["records"]
    assert (repair["record_id"], repair["points"]) == ("t-10", 40)


def test_objected_record_still_counts_and_is_flagged(
    client: TestClient, alice: dict[str, str]
) -> None:
    grant_open_score(client, alice)
    filed = client.post(
        "/v1/me/objections", json={"record": "tax/t-1", "reason": "paid in 2026"}, headers=alice
    )
    assert filed.status_code == 201
    body = client.get("/v1/me/score", headers=alice).json()
    assert body["score"] == 488
    assert body["objected_records_counted"] is True
    (tax,) = next(d for d in body["dimensions"] if d["name"] == "dishonesty")["records"]
    assert (tax["status"], tax["objected"], tax["points"]) == ("objected", True, -80)


# --- consents -------------------------------------------------------------------------


def test_granting_and_listing_consents(client: TestClient, audit_log: Recorder) -> None:
    headers = login(client, "alice")
    opened = client.post("/v1/me/consents", json={"kind": "open_score"}, headers=headers)
    shared = client.post("/v1/me/consents", json=SHARE, headers=headers)
    assert (opened.status_code, shared.status_code) == (201, 201)
    assert shared.json()["recipients"] == SHARE["recipients"]
    assert shared.json()["purpose"] == SHARE["purpose"]
    consents = client.get("/v1/me/consents", headers=headers).json()["consents"]
    assert [(c["kind"], c["active"], c["granted_at"]) for c in consents] == [
        ("open_score", True, NOW),
        ("share_alliance", True, NOW),
    ]
    assert audit_log.actions() == ["consent.granted", "consent.granted"]
    assert {c["subject"] for c in audit_log.calls} == {"alice"}
    assert audit_log.calls[1]["details"]["recipients"] == SHARE["recipients"]


@pytest.mark.parametrize(
    "purpose", ["p" * 500, "信" * 500, "😀" * 500], ids=["ascii", "cjk", "astral"]
)
def test_the_largest_share_consent_is_accepted_and_audited(
    client: TestClient, audit_log: Recorder, purpose: str
) -> None:
    """At every bound at once: the consent and its audit entry both fit."""
    grant = {
        "kind": "share_alliance",
        "recipients": [f"https://n{i:02d}." + "a" * 188 for i in range(16)],
        "purpose": purpose,
    }
    assert all(len(r) == 200 for r in grant["recipients"])
    follow_registry(client, dict.fromkeys(grant["recipients"], "active"))
    response = client.post("/v1/me/consents", json=grant, headers=login(client, "alice"))
    assert response.status_code == 201, response.text
    assert response.json()["recipients"] == grant["recipients"]
    assert response.json()["purpose"] == purpose
    assert audit_log.actions() == ["consent.granted"]


@pytest.mark.parametrize(
    "purpose",
    [
        "在福州访问期间免押金借阅图书",
        "图书馆免押金借阅　（福州、泉州）。",  # ideographic space, full-width punctuation
        "  surrounding spaces are trimmed  ",
        "Café visits, 2027—deposit-free (≥ 600)",
    ],
    ids=["chinese", "chinese-punctuation", "trimmed", "latin-symbols"],
)
def test_a_purpose_in_any_script_is_accepted(client: TestClient, purpose: str) -> None:
    grant = {**SHARE, "purpose": purpose}
    response = client.post("/v1/me/consents", json=grant, headers=login(client, "alice"))
    assert response.status_code == 201, response.text
    assert response.json()["purpose"] == purpose.strip()


# --- recipients: members of the alliance registry (issue 19, item 4) --------------------


def test_every_member_needs_no_registry(lone_client: TestClient) -> None:
    headers = login(lone_client, "alice")
    response = lone_client.post("/v1/me/consents", json=SHARE_WITH_EVERY_MEMBER, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["recipients"] == ["alliance"]


def test_naming_members_without_a_registry_fails_closed(lone_client: TestClient) -> None:
    before = database_state(lone_client)
    response = lone_client.post("/v1/me/consents", json=SHARE, headers=login(lone_client, "alice"))
    assert response.status_code == 503
    assert error_code(response) == "registry_unavailable"
    assert "alliance" in response.json()["error"]["message"]
    assert database_state(lone_client) == before


def test_naming_members_once_the_registry_expired_fails_closed(
    client: TestClient, clock: Any
) -> None:
    clock.now = NOW + 31 * DAY  # the test registry lives 30 days
    response = client.post("/v1/me/consents", json=SHARE, headers=login(client, "alice"))
    assert response.status_code == 503
    assert error_code(response) == "registry_unavailable"
    every = client.post(
        "/v1/me/consents", json=SHARE_WITH_EVERY_MEMBER, headers=login(client, "bob")
    )
    assert every.status_code == 201


@pytest.mark.parametrize(
    ("recipient", "problem"),
    [
        ("https://nobody.example", "not a member"),
        (PUTIAN, "suspended member"),
        ("https://alliance.ccx.example", "alliance's own id"),  # the registry's iss
        (FUZHOU + "/v1", "not a member"),
        (FUZHOU.replace("https", "http"), "not a member"),
    ],
    ids=["stranger", "suspended", "alliance-id", "longer", "other-scheme"],
)
def test_a_recipient_that_is_not_an_active_member_is_refused(
    client: TestClient, recipient: str, problem: str
) -> None:
    before = database_state(client)
    grant = {**SHARE, "recipients": [FUZHOU, recipient]}
    response = client.post("/v1/me/consents", json=grant, headers=login(client, "alice"))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "recipient_not_member"
    ((detail),) = error["details"]
    assert detail["field"] == "recipients.1"
    assert problem in detail["problem"]
    assert recipient not in json.dumps(error)  # where and why, never the value
    assert database_state(client) == before


def test_a_trailing_slash_names_the_same_member(client: TestClient) -> None:
    grant = {**SHARE, "recipients": [FUZHOU + "/"]}
    response = client.post("/v1/me/consents", json=grant, headers=login(client, "alice"))
    assert response.status_code == 201, response.text
    assert response.json()["recipients"] == [FUZHOU]


def test_alliance_beside_members_is_refused(client: TestClient) -> None:
    grant = {**SHARE, "recipients": [FUZHOU, "alliance"]}
    response = client.post("/v1/me/consents", json=grant, headers=login(client, "alice"))
    assert response.status_code == 422
    assert error_code(response) == "invalid_request"
    ((detail),) = response.json()["error"]["details"]
    assert detail["field"] == "share_alliance.recipients"
    assert "alliance" in detail["problem"]


def test_the_document_explains_what_recipients_bind(client: TestClient) -> None:
    schema = client.app.openapi()["components"]["schemas"]["ShareAllianceGrant"]  # type: ignore[attr-defined]
    explained = " ".join(schema["description"].split())
    assert "a member not named refuses it" in explained
    assert "withdraws the consent, which revokes every attestation" in explained
    assert "aud" in schema["properties"]["recipients"]["description"]
    assert "Cc, Cf" in schema["properties"]["purpose"]["description"]


def test_consents_of_others_are_not_listed(client: TestClient) -> None:
    grant_open_score(client, login(client, "bob"))
    assert client.get("/v1/me/consents", headers=login(client, "alice")).json() == {"consents": []}


def test_granting_a_consent_in_force_again_is_a_conflict(client: TestClient) -> None:
    headers = login(client, "alice")
    grant_open_score(client, headers)
    again = client.post("/v1/me/consents", json={"kind": "open_score"}, headers=headers)
    assert again.status_code == 409
    assert error_code(again) == "consent_active"
    assert len(rows(client, Consent)) == 1


@pytest.mark.parametrize("kind", ["open_score", "share_alliance"])
def test_withdrawal_revokes_outstanding_attestations_and_is_audited(
    client: TestClient, clock: Any, kind: str, revocations: Recorder, audit_log: Recorder
) -> None:
    headers = login(client, "alice")
    grant = {"kind": "open_score"} if kind == "open_score" else SHARE
    assert client.post("/v1/me/consents", json=grant, headers=headers).status_code == 201
    clock.now += 60
    response = client.delete(f"/v1/me/consents/{kind}", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["consent"]["withdrawn_at"] == NOW + 60
    assert body["consent"]["active"] is False
    assert revocations.calls == [
        {"resident_id": "alice", "now": NOW + 60, "reason": f"consent_withdrawn:{kind}"}
    ]
    assert audit_log.actions() == ["consent.granted", "consent.withdrawn"]
    assert audit_log.calls[1]["details"]["revoked_attestations"] == body["revoked_attestations"]


def test_after_withdrawal_the_score_is_closed_again(
    client: TestClient, alice: dict[str, str]
) -> None:
    grant_open_score(client, alice)
    assert client.get("/v1/me/score", headers=alice).status_code == 200
    assert client.delete("/v1/me/consents/open_score", headers=alice).status_code == 200
    closed = client.get("/v1/me/score", headers=alice)
    assert closed.status_code == 403
    assert error_code(closed) == "consent_required"


def test_granting_again_after_withdrawal_keeps_the_history(client: TestClient, clock: Any) -> None:
    headers = login(client, "alice")
    grant_open_score(client, headers)
    clock.now += 10
    client.delete("/v1/me/consents/open_score", headers=headers)
    clock.now += 10
    grant_open_score(client, headers)
    consents = client.get("/v1/me/consents", headers=headers).json()["consents"]
    assert [(c["granted_at"], c["withdrawn_at"], c["active"]) for c in consents] == [
        (NOW, NOW + 10, False),
        (NOW + 20, None, True),
    ]


def test_withdrawing_a_consent_never_granted_is_not_found(
    client: TestClient, revocations: Recorder
) -> None:
    headers = login(client, "alice")
    grant_open_score(client, login(client, "bob"))  # someone else's consent is not hers
    response = client.delete("/v1/me/consents/open_score", headers=headers)
    assert response.status_code == 404
    assert error_code(response) == "consent_not_found"
    assert revocations.calls == []


def test_withdrawing_twice_is_not_found(client: TestClient) -> None:
    headers = login(client, "alice")
    grant_open_score(client, headers)
    assert client.delete("/v1/me/consents/open_score", headers=headers).status_code == 200
    again = client.delete("/v1/me/consents/open_score", headers=headers)
    assert again.status_code == 404
    assert error_code(again) == "consent_not_found"


def test_withdrawal_is_undone_when_revocation_fails(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = login(client, "alice")
    grant_open_score(client, headers)

    def failing(*_: Any, **__: Any) -> int:
        raise RuntimeError("status list unavailable")

    monkeypatch.setattr(issuing, "revoke_outstanding", failing)
    response = client.delete("/v1/me/consents/open_score", headers=headers)
    assert response.status_code == 500
    (consent,) = rows(client, Consent)
    assert consent.withdrawn_at is None  # one transaction: no withdrawal without revocation


def test_withdrawal_revokes_her_attestations_only(client: TestClient) -> None:
    """Her valid attestations are revoked, in their rows and in the status list."""
    size = 2**10
    with session_of(client) as session:
        session.add(
            StatusListRow(id=1, bits=2, size=size, data=bytes(size * 2 // 8), updated_at=NOW)
        )
        for index, resident in enumerate(["alice", "alice", "bob"]):
            session.add(
                Attestation(
                    resident_id=resident,
                    status_list_id=1,
                    status_idx=1000 + index,
                    holder_kid="holder",
                    band="good",
                    issued_at=NOW - DAY,
                    expires_at=NOW + 30 * DAY,
                )
            )
        session.commit()
    headers = login(client, "alice")
    assert client.post("/v1/me/consents", json=SHARE, headers=headers).status_code == 201
    response = client.delete("/v1/me/consents/share_alliance", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["revoked_attestations"] == 2
    assert {a.status for a in rows(client, Attestation, resident_id="alice")} == {"revoked"}
    assert {a.status for a in rows(client, Attestation, resident_id="bob")} == {"valid"}
    (status_list,) = rows(client, StatusListRow)
    entries = P.StatusList(status_list.size, status_list.bits, data=status_list.data)
    assert [entries[1000 + index] for index in range(3)] == [1, 1, 0]  # 1: revoked
    assert [(e.action, e.actor) for e in rows(client, AuditEntry)][-2:] == [
        ("attestations.revoked", "node"),
        ("consent.withdrawn", "resident"),
    ]


def test_consent_changes_reach_the_audit_log(client: TestClient) -> None:
    headers = login(client, "alice")
    grant_open_score(client, headers)
    client.delete("/v1/me/consents/open_score", headers=headers)
    entries = rows(client, AuditEntry)
    assert [(e.actor, e.action, e.subject) for e in entries] == [
        ("resident", "consent.granted", "alice"),
        ("resident", "consent.withdrawn", "alice"),
    ]
    with session_of(client) as session:
        assert audit.verify_chain(session).ok


def test_a_resident_with_the_longest_id_is_served(client: TestClient) -> None:
    """Subjects run up to 128 characters; nothing derived from one may outgrow a column."""
    subject = "r" * 128
    seed(client, subject, ("tax", "t-long", "tax_arrears"))
    headers = login(client, subject)
    assert client.post("/v1/me/consents", json=SHARE, headers=headers).status_code == 201
    grant_open_score(client, headers)
    assert client.get("/v1/me/score", headers=headers).json()["score"] == 420
    assert object_to(client, headers, "tax/t-long") > 0
    assert client.delete("/v1/me/consents/share_alliance", headers=headers).status_code == 200
    assert {e.subject for e in rows(client, AuditEntry)} == {subject}


# --- objections (异议) ----------------------------------------------------------------


def test_objecting_to_her_record_flags_it(
    client: TestClient, alice: dict[str, str], audit_log: Recorder
) -> None:
    response = client.post(
        "/v1/me/objections", json={"record": "tax/t-1", "reason": "paid in 2026"}, headers=alice
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["record"], body["kind"], body["status"], body["created_at"]) == (
        "tax/t-1",
        "tax_arrears",
        "open",
        NOW,
    )
    assert record_status(client, "tax", "t-1") == "objected"
    listed = client.get("/v1/me/objections", headers=alice).json()["objections"]
    assert [o["id"] for o in listed] == [body["id"]]
    assert "resident_id" not in listed[0]
    assert audit_log.actions() == ["objection.filed"]
    assert "paid" not in str(audit_log.calls[0]["details"])  # free text stays out of the log


def test_objecting_to_another_residents_record_is_not_found(
    client: TestClient, alice: dict[str, str]
) -> None:
    """Bob's record and a record that does not exist answer alike: existence is not leaked."""
    bobs = client.post(
        "/v1/me/objections", json={"record": "tax/t-2", "reason": "not mine"}, headers=alice
    )
    missing = client.post(
        "/v1/me/objections", json={"record": "tax/t-404", "reason": "not mine"}, headers=alice
    )
    assert bobs.status_code == missing.status_code == 404
    assert bobs.json() == missing.json()
    assert error_code(bobs) == "record_not_found"
    assert record_status(client, "tax", "t-2") == "active"
    assert rows(client, Objection) == []


def test_residents_see_only_their_own_objections(client: TestClient, alice: dict[str, str]) -> None:
    bob = login(client, "bob")
    client.post("/v1/me/objections", json={"record": "tax/t-2", "reason": "x"}, headers=bob)
    assert client.get("/v1/me/objections", headers=alice).json() == {"objections": []}
    assert len(client.get("/v1/me/objections", headers=bob).json()["objections"]) == 1


def test_objecting_twice_while_open_is_a_conflict(
    client: TestClient, alice: dict[str, str]
) -> None:
    body = {"record": "tax/t-1", "reason": "paid"}
    assert client.post("/v1/me/objections", json=body, headers=alice).status_code == 201
    again = client.post("/v1/me/objections", json=body, headers=alice)
    assert again.status_code == 409
    assert error_code(again) == "objection_open"
    assert len(rows(client, Objection)) == 1


def object_to(client: TestClient, headers: dict[str, str], record: str) -> int:
    response = client.post(
        "/v1/me/objections", json={"record": record, "reason": "wrong"}, headers=headers
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_admins_list_open_objections(client: TestClient, alice: dict[str, str]) -> None:
    first = object_to(client, alice, "tax/t-1")
    second = object_to(client, login(client, "bob"), "tax/t-2")
    listed = client.get("/v1/admin/objections", headers=ADMIN).json()["objections"]
    assert [(o["id"], o["resident_id"], o["record"]) for o in listed] == [
        (first, "alice", "tax/t-1"),
        (second, "bob", "tax/t-2"),
    ]
    paged = client.get(f"/v1/admin/objections?after={first}", headers=ADMIN).json()
    assert [o["id"] for o in paged["objections"]] == [second]


def test_upheld_objection_removes_the_record_and_rescores(
    client: TestClient, alice: dict[str, str], clock: Any, audit_log: Recorder
) -> None:
    grant_open_score(client, alice)
    assert client.get("/v1/me/score", headers=alice).json()["score"] == 488
    objection = object_to(client, alice, "tax/t-1")
    clock.now += DAY
    response = client.post(
        f"/v1/admin/objections/{objection}/resolve",
        json={"decision": "upheld", "note": "the arrears were paid before the deadline"},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["resolved_at"]) == ("upheld", NOW + DAY)
    assert record_status(client, "tax", "t-1") == "removed"
    (stored,) = rows(client, Score, resident_id="alice")
    assert (stored.score, stored.computed_at) == (568, NOW + DAY)
    alice = login(client, "alice")  # a day later: a fresh token
    body = client.get("/v1/me/score", headers=alice).json()
    assert body["score"] == 568
    assert all(r["record_id"] != "t-1" for d in body["dimensions"] for r in d["records"])
    mine = client.get("/v1/me/objections", headers=alice).json()["objections"]
    assert mine[0]["resolution"] == "the arrears were paid before the deadline"
    assert audit_log.calls[-1]["action"] == "objection.resolved"
    assert audit_log.calls[-1]["actor"] == "admin"
    assert audit_log.calls[-1]["subject"] == "alice"


def test_rejected_objection_puts_the_record_back(client: TestClient, alice: dict[str, str]) -> None:
    objection = object_to(client, alice, "tax/t-1")
    response = client.post(
        f"/v1/admin/objections/{objection}/resolve",
        json={"decision": "rejected", "note": "the court confirmed the arrears"},
        headers=ADMIN,
    )
    assert response.status_code == 200
    assert record_status(client, "tax", "t-1") == "active"
    assert client.get("/v1/admin/objections", headers=ADMIN).json() == {"objections": []}
    rejected = client.get("/v1/admin/objections?status=rejected", headers=ADMIN).json()
    assert [o["id"] for o in rejected["objections"]] == [objection]


def test_resolving_twice_is_a_conflict(client: TestClient, alice: dict[str, str]) -> None:
    objection = object_to(client, alice, "tax/t-1")
    url = f"/v1/admin/objections/{objection}/resolve"
    assert (
        client.post(url, json={"decision": "rejected", "note": "no"}, headers=ADMIN).status_code
        == 200
    )
    again = client.post(url, json={"decision": "upheld", "note": "yes"}, headers=ADMIN)
    assert again.status_code == 409
    assert error_code(again) == "already_resolved"
    assert record_status(client, "tax", "t-1") == "active"


def test_resolving_an_unknown_objection_is_not_found(client: TestClient) -> None:
    response = client.post(
        "/v1/admin/objections/999/resolve", json={"decision": "upheld", "note": "x"}, headers=ADMIN
    )
    assert response.status_code == 404
    assert error_code(response) == "objection_not_found"


@pytest.mark.parametrize("objection_id", ["0", "-1", "x", str(2**64)])
def test_resolving_a_malformed_objection_id_is_an_invalid_request(
    client: TestClient, objection_id: str
) -> None:
    response = client.post(
        f"/v1/admin/objections/{objection_id}/resolve",
        json={"decision": "upheld", "note": "x"},
        headers=ADMIN,
    )
    assert response.status_code == 422
    assert error_code(response) == "invalid_request"


# --- who may call what ------------------------------------------------------------------

RESIDENT_CALLS = [
    ("GET", "/v1/me/score", None),
    ("GET", "/v1/me/consents", None),
    ("POST", "/v1/me/consents", {"kind": "open_score"}),
    ("POST", "/v1/me/consents", SHARE),
    ("DELETE", "/v1/me/consents/open_score", None),
    ("GET", "/v1/me/objections", None),
    ("POST", "/v1/me/objections", {"record": "tax/t-1", "reason": "wrong"}),
]
ADMIN_CALLS = [
    ("GET", "/v1/admin/objections", None),
    ("POST", "/v1/admin/objections/1/resolve", {"decision": "upheld", "note": "x"}),
]
ALL_CALLS = RESIDENT_CALLS + ADMIN_CALLS


def call(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return client.request(method, path, json=body, headers=headers)


@pytest.fixture
def objection_and_consent(client: TestClient, alice: dict[str, str]) -> None:
    """Something behind every endpoint, so a refusal can't be mistaken for 'nothing there'."""
    grant_open_score(client, alice)
    object_to(client, alice, "tax/t-1")


def database_state(client: TestClient) -> dict[str, Any]:
    """What a refused request must leave as it was (compare before and after)."""
    return {
        "consents": [(c.id, c.withdrawn_at) for c in rows(client, Consent)],
        "objections": [(o.id, o.status) for o in rows(client, Objection)],
        "records": sorted((r.department, r.record_id, r.status) for r in rows(client, Record)),
        "scores": [(sc.resident_id, sc.computed_at) for sc in rows(client, Score)],
        "audit": len(rows(client, AuditEntry)),
    }


@pytest.mark.usefixtures("objection_and_consent")
@pytest.mark.parametrize(("method", "path", "body"), ALL_CALLS)
def test_every_endpoint_needs_a_token(
    client: TestClient, method: str, path: str, body: Any
) -> None:
    before = database_state(client)
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic YWxpY2U6eA=="}):
        response = call(client, method, path, body, headers)
        assert response.status_code == 401, (headers, response.text)
        assert error_code(response) == "unauthorized"
    assert database_state(client) == before


@pytest.mark.usefixtures("objection_and_consent")
@pytest.mark.parametrize(("method", "path", "body"), RESIDENT_CALLS)
def test_an_expired_token_is_refused(
    client: TestClient, clock: Any, method: str, path: str, body: Any
) -> None:
    headers = login(client, "alice")
    clock.now += 900 + 31  # the dev provider's lifetime, plus the leeway
    before = database_state(client)
    response = call(client, method, path, body, headers)
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert database_state(client) == before


@pytest.mark.usefixtures("objection_and_consent")
def test_a_token_accepted_once_is_still_refused_once_it_expires(
    client: TestClient, clock: Any
) -> None:
    """The node remembers a token whose signature held (node.auth.verify_idp_token):
    its times are checked at every use all the same."""
    headers = login(client, "alice")
    assert client.get("/v1/me/score", headers=headers).status_code == 200
    assert client.get("/v1/me/score", headers=headers).status_code == 200  # remembered
    clock.now += 900 + 31
    response = client.get("/v1/me/score", headers=headers)
    assert (response.status_code, error_code(response)) == (401, "unauthorized")


def forged(client: TestClient, *, same_kid: bool) -> dict[str, str]:
    """A well-formed token for alice, signed by a key that is not the provider's."""
    provider: DevIdentityProvider = client.app.state.node.dev_idp  # type: ignore[attr-defined]
    other = DevIdentityProvider(issuer=provider.issuer, audience=provider.audience)
    if not same_kid:
        return {"Authorization": f"Bearer {other.token('alice', now=NOW)}"}
    claims: dict[str, Any] = {"iss": provider.issuer, "aud": provider.audience, "sub": "alice"}
    claims |= {"iat": NOW, "exp": NOW + 900}
    token = jwt.encode(claims, other.key, algorithm="ES256", headers={"kid": provider.kid})
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.usefixtures("objection_and_consent")
@pytest.mark.parametrize("same_kid", [False, True], ids=["unknown_kid", "kid_of_the_provider"])
@pytest.mark.parametrize(("method", "path", "body"), RESIDENT_CALLS)
def test_a_token_signed_by_another_key_is_refused(
    client: TestClient, method: str, path: str, body: Any, same_kid: bool
) -> None:
    before = database_state(client)
    response = call(client, method, path, body, forged(client, same_kid=same_kid))
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert database_state(client) == before


@pytest.mark.usefixtures("objection_and_consent")
@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_admin_endpoints_are_forbidden_to_residents(
    client: TestClient, alice: dict[str, str], method: str, path: str, body: Any
) -> None:
    before = database_state(client)
    response = call(client, method, path, body, alice)
    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    assert database_state(client) == before


def test_no_resident_id_in_any_path(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/me/score",
        "/v1/me/consents",
        "/v1/me/consents/{kind}",
        "/v1/me/objections",
        "/v1/admin/objections",
        "/v1/admin/objections/{objection_id}/resolve",
    } <= set(paths)
    for path, operations in paths.items():
        if path.startswith("/v1/me"):
            for operation in operations.values():
                names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
                assert not {n for n in names if "resident" in n or "subject" in n}, path


# --- bad input ------------------------------------------------------------------------

LONG = "x" * 1001
BAD_BODIES = {
    "consent_unknown_kind": ("/v1/me/consents", {"kind": "sell_my_data"}),
    "consent_kind_wrong_type": ("/v1/me/consents", {"kind": 5}),
    "consent_unknown_field": ("/v1/me/consents", {"kind": "open_score", "admin": True}),
    "open_score_with_recipients": ("/v1/me/consents", {"kind": "open_score", "recipients": []}),
    "share_without_recipients": ("/v1/me/consents", {**SHARE, "recipients": []}),
    "share_recipients_not_a_list": ("/v1/me/consents", {**SHARE, "recipients": "alliance"}),
    "share_recipient_not_a_node": ("/v1/me/consents", {**SHARE, "recipients": ["fuzhou"]}),
    "share_recipient_too_long": (
        "/v1/me/consents",
        {**SHARE, "recipients": ["https://" + "a" * 193]},
    ),
    "share_recipients_repeated": (
        "/v1/me/consents",
        {**SHARE, "recipients": ["alliance", "alliance"]},
    ),
    "share_too_many_recipients": (
        "/v1/me/consents",
        {**SHARE, "recipients": [f"https://n{i}.example" for i in range(17)]},
    ),
    "share_without_purpose": (
        "/v1/me/consents",
        {"kind": "share_alliance", "recipients": ["alliance"]},
    ),
    "share_alliance_beside_members": (
        "/v1/me/consents",
        {**SHARE, "recipients": [FUZHOU, "alliance"]},
    ),
    "share_recipient_with_a_control_character": (
        "/v1/me/consents",
        {**SHARE, "recipients": [FUZHOU + "\x01"]},
    ),
    "share_recipient_with_a_quote": ("/v1/me/consents", {**SHARE, "recipients": [FUZHOU + '"']}),
    "share_recipient_with_a_backslash": (
        "/v1/me/consents",
        {**SHARE, "recipients": [FUZHOU + "\\"]},
    ),
    "share_recipient_not_ascii": ("/v1/me/consents", {**SHARE, "recipients": ["https://福州.cn"]}),
    "share_purpose_with_a_line_break": ("/v1/me/consents", {**SHARE, "purpose": "a\nb"}),
    "share_purpose_with_a_tab": ("/v1/me/consents", {**SHARE, "purpose": "a\tb"}),
    "share_purpose_with_an_escape": ("/v1/me/consents", {**SHARE, "purpose": "a\x1b[2Jb"}),
    "share_purpose_with_a_c1_control": ("/v1/me/consents", {**SHARE, "purpose": "a\x85b"}),
    "share_purpose_with_a_bidi_override": (
        "/v1/me/consents",
        {**SHARE, "purpose": "library \u202eyrarbil"},
    ),
    "share_purpose_with_a_zero_width_space": ("/v1/me/consents", {**SHARE, "purpose": "a\u200bb"}),
    "share_purpose_with_a_line_separator": ("/v1/me/consents", {**SHARE, "purpose": "a\u2028b"}),
    "share_purpose_shaped_like_a_token": (
        "/v1/me/consents",
        {**SHARE, "purpose": "visits eyJhbGciOi.x. here"},
    ),
    "share_blank_purpose": ("/v1/me/consents", {**SHARE, "purpose": "   "}),
    "share_purpose_too_long": ("/v1/me/consents", {**SHARE, "purpose": "p" * 501}),
    "share_purpose_wrong_type": ("/v1/me/consents", {**SHARE, "purpose": 42}),
    "objection_reason_too_long": ("/v1/me/objections", {"record": "tax/t-1", "reason": LONG}),
    "objection_reason_wrong_type": ("/v1/me/objections", {"record": "tax/t-1", "reason": 1}),
    "objection_without_reason": ("/v1/me/objections", {"record": "tax/t-1"}),
    "objection_record_unqualified": ("/v1/me/objections", {"record": "t-1", "reason": "x"}),
    "objection_record_too_long": (
        "/v1/me/objections",
        {"record": "tax/" + "t" * 200, "reason": "x"},
    ),
    "objection_record_wrong_type": ("/v1/me/objections", {"record": ["tax", "t-1"], "reason": "x"}),
    "objection_unknown_field": (
        "/v1/me/objections",
        {"record": "tax/t-1", "reason": "x", "resident_id": "bob"},
    ),
    "body_not_an_object": ("/v1/me/objections", ["tax/t-1"]),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_bodies_are_invalid_requests_and_write_nothing(
    client: TestClient, alice: dict[str, str], case: str
) -> None:
    path, body = BAD_BODIES[case]
    before = database_state(client)
    response = client.post(path, json=body, headers=alice)
    assert response.status_code == 422, response.text
    assert error_code(response) == "invalid_request"
    assert database_state(client) == before


@pytest.mark.parametrize("path", ["/v1/me/consents", "/v1/me/objections"])
@pytest.mark.parametrize("payload", [b"{", b'{"kind": "open_score",}', b"", b"\xff\xfe"])
def test_malformed_json_is_an_invalid_request(
    client: TestClient, alice: dict[str, str], path: str, payload: bytes
) -> None:
    before = database_state(client)
    response = client.post(
        path, content=payload, headers={**alice, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert error_code(response) == "invalid_request"
    assert database_state(client) == before


def test_validation_errors_do_not_echo_the_input(client: TestClient, alice: dict[str, str]) -> None:
    response = client.post(
        "/v1/me/objections", json={"record": "tax/t-1", "reason": "secret " * 200}, headers=alice
    )
    assert response.status_code == 422
    assert "secret" not in response.text


def test_withdrawing_an_unknown_kind_is_an_invalid_request(
    client: TestClient, alice: dict[str, str]
) -> None:
    response = client.delete("/v1/me/consents/sell_my_data", headers=alice)
    assert response.status_code == 422
    assert error_code(response) == "invalid_request"


@pytest.mark.usefixtures("objection_and_consent")
@pytest.mark.parametrize(
    "body",
    [
        {"decision": "maybe", "note": "x"},
        {"decision": "upheld"},
        {"decision": "upheld", "note": "x" * 1001},
        {"decision": "upheld", "note": "x", "record_status": "active"},
    ],
)
def test_bad_resolutions_are_invalid_requests(client: TestClient, body: Any) -> None:
    (objection,) = rows(client, Objection)
    response = client.post(f"/v1/admin/objections/{objection.id}/resolve", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert error_code(response) == "invalid_request"
    assert [o.status for o in rows(client, Objection)] == ["open"]
    assert record_status(client, "tax", "t-1") == "objected"


@pytest.mark.parametrize(
    "query", ["status=closed", "limit=0", "limit=5000", "after=-1", f"after={2**64}"]
)
def test_bad_admin_queries_are_invalid_requests(client: TestClient, query: str) -> None:
    response = client.get(f"/v1/admin/objections?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert error_code(response) == "invalid_request"


@pytest.mark.parametrize("kid", [["a"], {"kid": "a"}, 7], ids=["list", "object", "number"])
def test_a_token_whose_kid_is_not_a_string_is_refused(client: TestClient, kid: Any) -> None:
    provider: DevIdentityProvider = client.app.state.node.dev_idp  # type: ignore[attr-defined]
    claims: dict[str, Any] = {"iss": provider.issuer, "aud": provider.audience, "sub": "alice"}
    claims |= {"iat": NOW, "exp": NOW + 900}
    signed = jwt.encode(claims, provider.key, algorithm="ES256", headers={"kid": provider.kid})
    header = base64.urlsafe_b64encode(json.dumps({"alg": "ES256", "kid": kid}).encode())
    token = header.rstrip(b"=").decode() + signed[signed.index(".") :]  # PyJWT won't write it
    response = client.get("/v1/me/score", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_a_failing_request_is_counted_with_its_status(client: TestClient) -> None:
    client.get("/v1/me/score", headers={"Authorization": "Bearer not-a-jwt"})
    text = client.get("/metrics", headers=METRICS).text
    assert 'ccx_http_requests_total{method="GET",route="/v1/me/score",status="401"} 1.0' in text
