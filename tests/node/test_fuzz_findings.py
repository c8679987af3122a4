"""What fuzzing the node's API found (issue 7, tests/fuzz), one test per bug, each named
after it: the input, and the answer the node now gives instead of a 500 or an answer its
OpenAPI document does not declare."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import NOW
from tests.node.issuing_helpers import bearer, error_code, seed_resident
from tests.node.pushing import ADMIN, admin_settings, credentials, record


@pytest.fixture
def client(make_client: Any) -> TestClient:
    return make_client(**admin_settings())  # type: ignore[no-any-return]


def upload(client: TestClient, name: str, content: bytes) -> dict[str, Any]:
    response = client.post(
        "/v1/records/upload", files={"file": (name, content)}, headers=credentials(client, "tax")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_audit_page_after_a_sequence_past_64_bits_is_refused_not_a_500(
    client: TestClient,
) -> None:
    # SQLite's driver raised OverflowError on ?after=2**63: a 500
    response = client.get("/v1/admin/audit", params={"after": 2**63}, headers=ADMIN)
    assert response.status_code == 422
    assert error_code(response) == "invalid_request"
    assert client.get("/v1/admin/audit", params={"after": 2**31 - 1}, headers=ADMIN).json() == {
        "entries": [],
        "next_after": None,
    }


def test_a_jsonl_line_nested_too_deep_is_refused_as_its_row_not_a_500(
    client: TestClient,
) -> None:
    # json.loads raised RecursionError, which only JSONDecodeError was caught beside
    body = upload(client, "records.jsonl", b"[" * 100_000 + b"\n" + b"[1]\n")
    assert [(row["status"], row["code"]) for row in body["results"]] == [
        ("refused", "invalid_json"),
        ("refused", "invalid_record"),
    ]


def test_a_jsonl_line_with_an_integer_of_5000_digits_is_refused_as_its_row_not_a_500(
    client: TestClient,
) -> None:
    # json.loads raised ValueError (Python's 4,300-digit limit on int())
    line = b'{"record_id": "r1", "resident_id": "alice", "kind": "tax_arrears", "occurred_at": '
    body = upload(client, "records.jsonl", line + b"9" * 5000 + b"}\n")
    assert body["results"][0]["code"] == "invalid_json"
    assert body["refused"] == 1


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/v1/me/consents", "GET, POST"),
        ("PUT", "/v1/me/objections", "GET, POST"),
        ("GET", "/v1/admin/clients/a-client", "DELETE"),
    ],
)
def test_a_405_names_every_method_of_the_path_in_allow(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    # Starlette named only the first route of the path: "Allow: GET" for GET and POST
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert error_code(response) == "method_not_allowed"


def test_a_body_that_is_not_utf8_is_a_400_bad_request_as_documented(client: TestClient) -> None:
    # FastAPI answers 400; the node called it "http_error" and its document had no 400
    response = client.post(
        "/dev-idp/token",
        content=b'{"subject": "\xff"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert error_code(response) == "bad_request"
    assert "400" in client.app.openapi()["paths"]["/dev-idp/token"]["post"]["responses"]  # type: ignore[attr-defined]


# --- NUL (U+0000) in free text: PostgreSQL's text can't hold it, so the insert or the
# look-up failed at the database (a 500; found by the fuzzer on PostgreSQL). Refused as
# invalid requests now, on every database. --------------------------------------------


def test_a_record_note_with_a_nul_is_refused_not_a_500(client: TestClient) -> None:
    response = client.post(
        "/v1/records", json=record("r1", note="a\x00b"), headers=credentials(client, "tax")
    )
    assert response.status_code == 422
    assert "note" in response.text


def test_a_dev_idp_subject_with_a_nul_is_refused_not_a_500_later(client: TestClient) -> None:
    # the dev IdP signed it, and every resident route then failed on PostgreSQL
    response = client.post("/dev-idp/token", json={"subject": "alice\x00"})
    assert response.status_code == 422


def test_an_identity_providers_subject_with_a_nul_is_refused_not_a_500(
    client: TestClient,
) -> None:
    # a real provider may sign any subject: the node checks it (node.auth.resident_id)
    provider = client.app.state.node.dev_idp  # type: ignore[attr-defined]
    token = provider.token("alice\x00", now=NOW)
    response = client.get("/v1/me/score", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "share_alliance", "recipients": ["alliance"], "purpose": "a\x00b"},
        {"kind": "share_alliance", "recipients": ["https://fuzhou.example\x00"], "purpose": "p"},
    ],
    ids=["purpose", "recipient"],
)
def test_a_consent_with_a_nul_is_refused_not_a_500(client: TestClient, body: Any) -> None:
    response = client.post("/v1/me/consents", json=body, headers=bearer(client, "alice"))
    assert response.status_code == 422


@pytest.mark.parametrize(
    "body",
    [{"record": "tax/r1", "reason": "a\x00b"}, {"record": "tax/r\x001", "reason": "not mine"}],
    ids=["reason", "record"],
)
def test_an_objection_with_a_nul_is_refused_not_a_500(client: TestClient, body: Any) -> None:
    seed_resident(client, "alice", consents=("open_score",))
    response = client.post("/v1/me/objections", json=body, headers=bearer(client, "alice"))
    assert response.status_code == 422


def test_a_resolution_note_with_a_nul_is_refused_not_a_500(client: TestClient) -> None:
    response = client.post(
        "/v1/admin/objections/1/resolve",
        json={"decision": "rejected", "note": "a\x00b"},
        headers=ADMIN,
    )
    assert response.status_code == 422


# --- what the document said and the node did not: schema-valid requests refused ---------


def test_a_note_of_spaces_alone_is_refused_and_the_document_says_so(client: TestClient) -> None:
    response = client.post(
        "/v1/admin/objections/1/resolve", json={"decision": "upheld", "note": " "}, headers=ADMIN
    )
    assert response.status_code == 422
    schema = client.app.openapi()["components"]["schemas"]["ObjectionDecision"]  # type: ignore[attr-defined]
    assert "pattern" in schema["properties"]["note"]


def test_a_recipient_must_be_a_url_or_alliance_and_the_document_says_so(
    client: TestClient,
) -> None:
    body = {"kind": "share_alliance", "recipients": ["fuzhou"], "purpose": "visits"}
    response = client.post("/v1/me/consents", json=body, headers=bearer(client, "alice"))
    assert response.status_code == 422
    schema = client.app.openapi()["components"]["schemas"]["ShareAllianceGrant"]  # type: ignore[attr-defined]
    assert "alliance|https?://" in schema["properties"]["recipients"]["items"]["pattern"]
