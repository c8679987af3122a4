"""Bodies before credentials (docs/SECURITY.md section 10; issue 19, item 3): a caller
without credentials must not make the node read or parse a body, and each route takes
only the body it needs. Before, a 2 MB JSON body to ``POST /v1/records`` without
credentials cost 100-140 ms of event-loop time and ~50 MB before its 401, a malformed
one got 400/422 instead of 401, and a 1,200-part upload got "Too many fields"."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from fastapi.testclient import TestClient

from node.guards import SMALL_BODY_BYTES
from tests.node.pushing import admin_settings, credentials

SAMPLE = {"objection_id": "1", "client_id": "tax-feed"}
# Public by design: the development identity provider's login, OpenID4VCI's token
# endpoint (its "credentials" are the pre-authorized code in the body), the pushed
# authorization request (wallets are public clients), and the browser's steps of the
# authorization code flow (their credentials are the one-time state in the form).
PUBLIC_BODIES = {
    "POST /dev-idp/token",
    "POST /dev-idp/authorize",
    "POST /oid4vci/token",
    "POST /oid4vci/par",
    "POST /oid4vci/login",
    "POST /oid4vci/authorize/decision",
    # OpenID4VP: the wallet's fetch of a request object and its response (the request's
    # and the transaction's ids in the path are the credentials, each single use)
    "POST /oid4vp/requests/{request_id}",
    "POST /oid4vp/responses/{transaction_id}",
    # the identity provider's form post to the resident page (its credential is the ID
    # token in the body), and a checkpoint to the alliance host's witness (signed inside)
    "POST /me/login",
    "POST /v1/alliance/witness/checkpoints",
}


def body_operations(client: TestClient) -> list[tuple[str, str]]:
    """Every operation of the OpenAPI document that takes a body, with a sample path."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path))
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "requestBody" in operation and f"{method.upper()} {path}" not in PUBLIC_BODIES
    ]


def call_without_reading(client: TestClient, method: str, path: str) -> tuple[int, int]:
    """Send ``method path`` straight to the app with a 2 MiB body announced and no
    credentials; returns the status and how many times the app asked for the body."""
    reads = 0
    answer: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"{" * 65536, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"xiamen.ccx.test"),
            (b"content-type", b"application/json"),
            (b"content-length", str(2 * 1024 * 1024).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    return answer["status"], reads


def test_a_body_without_credentials_is_never_read(make_client: Any) -> None:
    client = make_client(**admin_settings())
    operations = body_operations(client)
    assert ("POST", "/v1/records") in operations
    assert ("POST", "/v1/verifications") in operations
    answers = {f"{m} {p}": call_without_reading(client, m, p) for m, p in operations}
    assert {op: a for op, a in answers.items() if a != (401, 0)} == {}


def test_a_malformed_body_without_credentials_gets_401(client: TestClient) -> None:
    for method, path in body_operations(client):
        response = client.request(
            method, path, content=b'{"records": [', headers={"content-type": "application/json"}
        )
        assert response.status_code == 401, (method, path, response.text)
        error = response.json()["error"]  # the node's shape, or OAuth's at OAuth endpoints
        assert (error["code"] if isinstance(error, dict) else error) in (
            "unauthorized",
            "invalid_token",
        )


def test_a_twelve_hundred_part_upload_without_credentials_gets_401(client: TestClient) -> None:
    fields = {f"field{i}": "x" for i in range(1200)}
    response = client.post("/v1/records/upload", data=fields, files={"file": ("a.csv", b"")})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_route_without_batches_takes_a_small_body_only(make_client: Any) -> None:
    client = make_client(**admin_settings())
    token = client.post("/dev-idp/token", json={"subject": "resident-1"}).json()["access_token"]
    padded = b'{"kind": "open_score"}' + b" " * SMALL_BODY_BYTES
    response = client.post(
        "/v1/me/consents",
        content=padded,
        headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    # the same request within the limit is taken
    response = client.post(
        "/v1/me/consents", json={"kind": "open_score"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.text


def test_a_batch_route_takes_a_batch_sized_body(make_client: Any) -> None:
    client = make_client(**admin_settings())
    headers = {**credentials(client, "tax"), "content-type": "application/json"}
    row = {"record_id": "t-1", "resident_id": "r-1", "kind": "tax_arrears", "occurred_at": 1}
    body = json.dumps({"records": [row]}).encode() + b" " * (1024 * 1024)
    response = client.post("/v1/records", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    too_large = body + b" " * (2 * 1024 * 1024)
    response = client.post("/v1/records", content=too_large, headers=headers)
    assert response.status_code == 413
