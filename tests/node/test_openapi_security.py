"""The OpenAPI document's security schemes (node/openapi_security.py, issue 20): the
interactive docs can authorize, and each operation names the bearer token it needs,
which is the one the node asks for: without one, an operation that names a scheme
answers 401, and one that names none does not ask for credentials."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from node.app import create_app, initialize_node
from node.openapi_security import SECURITY_SCHEMES
from tests.conftest import NOW
from tests.node.conftest import xiamen_settings
from tests.node.pushing import admin_settings

# Operations that name no scheme of ours yet answer 401 without credentials, and why.
OWN_CREDENTIALS = {
    # OpenID4VCI's access token (RFC 6750 or DPoP), which the token endpoint issues
    ("post", "/oid4vci/credential"),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    settings = xiamen_settings(tmp_path_factory.mktemp("security")).model_copy(
        update={**admin_settings(), "rate_limits": False}  # many refusals from one address
    )
    initialize_node(settings, now=NOW)
    return TestClient(create_app(settings, now=lambda: NOW))


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()  # type: ignore[no-any-return]


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]


def test_the_document_declares_a_bearer_scheme_per_audience(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert set(schemes) == {"resident", "client", "admin", "metrics"}
    for scheme in schemes.values():
        assert scheme["type"] == "http"
        assert scheme["scheme"] == "bearer"
        assert scheme["description"]
    assert "CCX_ADMIN_TOKEN_HASH" in schemes["admin"]["description"]


def test_every_operation_names_the_schemes_it_needs(document: dict[str, Any]) -> None:
    named: dict[str, set[str]] = {}
    for method, path, operation in _operations(document):
        assert "security" in operation, f"{method} {path}"
        for requirement in operation["security"]:
            assert set(requirement) <= set(SECURITY_SCHEMES), f"{method} {path}"
            for scheme in requirement:
                named.setdefault(scheme, set()).add(f"{method} {path}")
    assert "post /v1/records" in named["client"]
    assert "post /v1/verifications" in named["client"]  # through the rate limit's guard
    assert "get /v1/me/score" in named["resident"]
    assert "post /v1/admin/clients" in named["admin"]
    assert named["metrics"] == {"get /metrics"}


def test_each_operation_asks_for_the_credentials_it_names(
    client: TestClient, document: dict[str, Any]
) -> None:
    wrong = []
    for method, path, operation in _operations(document):
        url = re.sub(r"\{[^}]+\}", "2026-01", path)  # any value: credentials come first
        answer = client.request(method, url, follow_redirects=False)
        asks = answer.status_code == 401
        should = bool(operation["security"]) or (method, path) in OWN_CREDENTIALS
        if asks != should:
            wrong.append(f"{method} {path}: names {operation['security']}, answered {answer}")
    assert not wrong, "\n".join(wrong)
