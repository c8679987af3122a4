"""The public federation surface: keys, issuer metadata, health, metrics, errors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.testclient import TestClient

import protocol as P
from node.auth import ResidentDep
from protocol._jwk import private_jwk_members
from tests.conftest import METRICS


def test_jwks_lists_active_and_next_keys_public_only(client: TestClient) -> None:
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 2
    for jwk in keys:
        assert not private_jwk_members.intersection(jwk)
        assert jwk["kid"] == P.jwk_thumbprint(jwk)
        P.public_key_from_jwk({k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y")})


def test_issuer_metadata_names_the_node_and_its_keys(client: TestClient) -> None:
    body = client.get("/.well-known/jwt-vc-issuer").json()
    assert body["issuer"] == "http://xiamen.ccx.test"
    assert body["jwks"] == client.get("/.well-known/jwks.json").json()


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"keys": True, "database": True}


def test_metrics_count_requests_by_route(client: TestClient) -> None:
    client.get("/healthz")
    text = client.get("/metrics", headers=METRICS).text
    assert 'ccx_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text


def test_unknown_route_is_json_with_a_code(client: TestClient) -> None:
    response = client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not Found"}}


def test_oversized_body_is_refused_before_it_is_read(make_client: object) -> None:
    small = make_client(max_body_bytes=1024)  # type: ignore[operator]
    response = small.post("/healthz", content=b"x" * 2048)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_openapi_document_is_served(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/.well-known/jwks.json", "/healthz", "/readyz", "/metrics"} <= set(paths)


def test_interactive_docs_are_off_unless_asked_for(make_client: Any) -> None:
    assert make_client().get("/docs").status_code == 404
    assert make_client().get("/redoc").status_code == 404
    assert make_client(api_docs=True).get("/docs").status_code == 200


probe = APIRouter()


@probe.get("/probe/whoami")
def whoami(resident: ResidentDep) -> dict[str, str]:
    return {"resident": resident}


def test_dev_identity_provider_tokens_authenticate_a_resident(client: TestClient) -> None:
    client.app.include_router(probe)  # type: ignore[attr-defined]
    token = client.post("/dev-idp/token", json={"subject": "resident-1"}).json()["access_token"]
    assert client.get("/probe/whoami", headers={"Authorization": f"Bearer {token}"}).json() == {
        "resident": "resident-1"
    }
    refused = client.get("/probe/whoami", headers={"Authorization": "Bearer not-a-jwt"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert client.get("/probe/whoami").status_code == 401
