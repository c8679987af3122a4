"""Cross-origin access for the web wallet (node/cors.py, issue 16): the public endpoints
a wallet calls answer any origin, without credentials; a resident's, an admin's and a
department's endpoints do not answer cross-origin at all."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from node.cors import wallet_facing

WALLET = "http://wallet.example"


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/openid-credential-issuer",
        "/.well-known/oauth-authorization-server",
        "/.well-known/jwt-vc-issuer",
        "/.well-known/jwks.json",
        "/oid4vci/token",
        "/oid4vci/nonce",
        "/oid4vci/credential",
        "/oid4vci/offers/an-offer-id",
        "/oid4vp/requests/a-request-id",
        "/oid4vp/responses/a-transaction-id",
        "/v1/status-lists/1",
        "/v1/alliance/registry",
    ],
)
def test_a_preflight_to_a_wallet_endpoint_is_allowed(client: TestClient, path: str) -> None:
    answer = client.options(path, headers={
        "Origin": WALLET, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, dpop, content-type",
    })  # fmt: skip
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "*"
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "dpop", "content-type"} <= allowed
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in answer.headers


@pytest.mark.parametrize(
    "path",
    [
        "/v1/me/score",
        "/v1/me/credential-offers",
        "/v1/me/consents",
        "/v1/admin/clients",
        "/v1/presentation-requests",
        "/v1/alliance/registry/versions/1",
        "/oid4vci/par",
        "/oid4vci/offers/",
    ],
)
def test_other_endpoints_do_not_answer_cross_origin(client: TestClient, path: str) -> None:
    preflight = client.options(path, headers={
        "Origin": WALLET, "Access-Control-Request-Method": "POST",
    })  # fmt: skip
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code != 204
    answer = client.get(path, headers={"Origin": WALLET})
    assert "access-control-allow-origin" not in answer.headers


def test_an_answer_and_an_error_answer_carry_the_header(client: TestClient) -> None:
    metadata = client.get("/.well-known/openid-credential-issuer", headers={"Origin": WALLET})
    assert metadata.status_code == 200
    assert metadata.headers["access-control-allow-origin"] == "*"
    refused = client.post("/oid4vci/token", data={"grant_type": "nonsense"},
                          headers={"Origin": WALLET})  # fmt: skip
    assert refused.status_code == 400  # the wallet must be able to read why
    assert refused.headers["access-control-allow-origin"] == "*"
    assert "error" in refused.json()


def test_the_list_of_wallet_paths_matches_prefixes_not_lookalikes() -> None:
    assert wallet_facing("/.well-known/openid-credential-issuer/tenant")
    assert not wallet_facing("/oid4vci/tokens")
    assert not wallet_facing("/v1/alliance/registryx")
    assert not wallet_facing("/v1/me/attestations")
