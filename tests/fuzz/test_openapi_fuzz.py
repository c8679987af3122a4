"""Every operation of the node's OpenAPI document, fuzzed (issue 7): no 5xx, and every
answer (status, content type, body) is one the document declares.

schemathesis generates the requests from the document itself (its examples, coverage and
fuzzing phases: valid and invalid requests), calls a real node in-process (ASGI, a real
database) and checks each answer. Each operation is a test of its own, run twice: with
the credentials of the operation's audience, so that the fuzzer reaches past
authentication; and, for fewer examples, with none, garbage or another audience's.

The document is read when this module is imported (``schema.parametrize()`` needs it at
collection), from a node built for that alone. The node fuzzed is built once for the
module, on SQLite, or on PostgreSQL under ``--node-db=postgresql``
(tests/storage/node_postgres.py; ``make test`` runs that too). Deterministic: the same
cases every run, no example database written. ``CCX_FUZZ_EXAMPLES=500`` fuzzes deeper
by hand.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from node.app import create_app, initialize_node
from node.services import oid4vci
from node.services.records import FILE_TYPES
from node.settings import Settings
from tests.conftest import METRICS, METRICS_TOKEN_HASH, NOW
from tests.node.issuing_helpers import bearer, node_state, seed_resident
from tests.node.oid4vp_helpers import certified_token, follower
from tests.node.pushing import ADMIN, admin_settings, credentials, record
from tests.node.test_verifications import (
    ALL_KINDS,
    XIAMEN,
    service_point,
)
from tests.storage import pg

# Bounded so that the module takes about a minute on a 2-core machine.
MAX_EXAMPLES = int(os.environ.get("CCX_FUZZ_EXAMPLES", "20"))
MAX_EXAMPLES_WITH_OTHER_CREDENTIALS = max(1, MAX_EXAMPLES // 4)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,  # a shared CI machine's pauses are not the node's
    print_blob=False,
    # schemathesis's strategies for nested bodies are big and filtered by design
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
RESIDENT = "fuzz-resident"


def _settings(folder: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=folder,
        database_url=database_url,
        node_id=XIAMEN,
        city="xiamen",
        dev_idp=True,
        scheduler=False,
        keyring_passphrase="a passphrase for tests only",  # type: ignore[arg-type]
        # the bucket would be empty after 20 requests at a clock that stands still, and
        # the fuzzer would see nothing past the rate limiter (its 429 is documented)
        verify_burst=1_000_000,
        rate_limits=False,  # likewise the shared limits (tests/security/test_request_flood.py)
        metrics_token_hash=METRICS_TOKEN_HASH,
        **admin_settings(),
    )


def _openapi_document() -> dict[str, Any]:
    """The node's OpenAPI document, as ``create_app`` builds it."""
    with tempfile.TemporaryDirectory(prefix="ccx-fuzz-doc-") as folder:
        settings = _settings(Path(folder), f"sqlite:///{folder}/node.db")
        initialize_node(settings, now=NOW)
        app = create_app(settings, now=lambda: NOW)
        try:
            return app.openapi()
        finally:
            app.state.node.engine.dispose()


schema = schemathesis.openapi.from_dict(_openapi_document())


@schemathesis.serializer(*(t for t in FILE_TYPES if t.startswith("application/")))
def _file_part(_: schemathesis.SerializationContext, value: Any) -> bytes:
    """An uploaded file's part with a CSV or JSONL type of the document's ``encoding``
    (text/* parts go out as text on their own): the generated value's bytes."""
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else json.dumps(value)).encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class FuzzNode:
    """A node with everyone it serves: an admin, a department, a service point (every
    scenario of the catalogue, a registry in effect), a resident with a score, both
    consents, a record and an objection to it."""

    app: FastAPI
    headers: dict[str, dict[str, str]]  # audience -> headers that authenticate it


@pytest.fixture(scope="module")
def fuzz_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzNode]:
    folder = tmp_path_factory.mktemp("fuzz-node")
    database_url = f"sqlite:///{folder}/node.db"
    if request.config.getoption("--node-db", default="sqlite") == "postgresql":
        database_url = request.getfixturevalue("node_postgres_database")
        pg.empty_database(database_url)
    settings = _settings(folder, database_url)
    initialize_node(settings, now=NOW)
    app = create_app(settings, now=lambda: NOW)
    client = TestClient(app, raise_server_exceptions=False)
    jwks = client.get("/.well-known/jwks.json").json()
    members = [(XIAMEN, "xiamen", jwks, "active")]
    node_state(client).follower = follower(certified_token(members, certify=(XIAMEN,)))
    department = credentials(client, "tax", client_id="fuzz-department")
    pushed = client.post("/v1/records", json=record("fuzz-1", RESIDENT), headers=department)
    assert pushed.status_code == 200, pushed.text
    seed_resident(client, RESIDENT)
    resident = bearer(client, RESIDENT)
    objection = client.post(
        "/v1/me/objections", json={"record": "tax/fuzz-1", "reason": "not mine"}, headers=resident
    )
    assert objection.status_code == 201, objection.text
    yield FuzzNode(
        app=app,
        headers={
            "public": {},
            "admin": ADMIN,
            "department": department,
            "service_point": service_point(client, *ALL_KINDS, client_id="fuzz-service-point"),
            "resident": resident,
            "metrics": METRICS,
            "wallet": {"Authorization": f"Bearer {_access_token(client, resident)}"},
        },
    )
    node_state(client).engine.dispose()  # before the PostgreSQL database is emptied or dropped


# Who calls what, by path prefix. An operation under none of these fails its test, so a
# new route must be given its audience here.
AUDIENCES = (
    ("/v1/admin/", "admin"),
    ("/v1/records", "department"),
    ("/v1/verifications", "service_point"),
    ("/v1/presentation-requests", "service_point"),
    ("/v1/service-point", "service_point"),
    ("/v1/me/", "resident"),
    ("/v1/status-lists/", "public"),
    ("/v1/alliance/", "public"),
    ("/.well-known/", "public"),
    ("/dev-idp/", "public"),
    ("/me/login", "public"),  # the resident's page's login (its token is checked inside)
    ("/healthz", "public"),
    ("/readyz", "public"),
    ("/metrics", "metrics"),
    ("/oid4vci/credential", "wallet"),
    ("/oid4vci/", "public"),
    ("/oid4vp/", "public"),
)


def _access_token(client: TestClient, resident: dict[str, str]) -> str:
    """A wallet's OpenID4VCI access token for the resident (offer, fetch, token)."""
    made = client.post("/v1/me/credential-offers", json={}, headers=resident).json()
    path = made["credential_offer_uri"].removeprefix(XIAMEN)
    code = client.get(path).json()["grants"][oid4vci.PREAUTHORIZED_GRANT]["pre-authorized_code"]
    grant = {"grant_type": oid4vci.PREAUTHORIZED_GRANT, "pre-authorized_code": code}
    access: str = client.post("/oid4vci/token", data=grant).json()["access_token"]
    return access


def audience(path: str) -> str:
    for prefix, who in AUDIENCES:
        if path.startswith(prefix):
            return who
    raise AssertionError(f"{path} has no audience in AUDIENCES: add it")


@schema.parametrize()
@FUZZ_SETTINGS
def test_operation_with_its_audiences_credentials(
    case: schemathesis.Case, fuzz_node: FuzzNode
) -> None:
    headers = fuzz_node.headers[audience(case.path)]
    case.call_and_validate(app=fuzz_node.app, headers=headers, checks=CHECKS)


OTHER_CREDENTIALS = st.sampled_from(
    [
        "none",
        "Bearer not-a-token",
        "Basic YWRtaW46YWRtaW4=",
        "Bearer " + "x" * 9000,
        "admin",
        "department",
        "service_point",
        "resident",
        "metrics",
        "wallet",
    ]
)


@schema.parametrize()
@schema.given(who=OTHER_CREDENTIALS)
@hypothesis.settings(
    FUZZ_SETTINGS,
    max_examples=MAX_EXAMPLES_WITH_OTHER_CREDENTIALS,
    # generated cases only: schemathesis can't join the document's examples (and its
    # coverage phase) with a strategy of our own; the test above runs those
    phases=[Phase.generate, Phase.shrink],
)
def test_operation_with_other_credentials(
    case: schemathesis.Case, who: str, fuzz_node: FuzzNode
) -> None:
    if who == "none":
        headers: dict[str, str] = {}
    elif who in fuzz_node.headers:
        headers = fuzz_node.headers[who]
    else:
        headers = {"Authorization": who}
    case.call_and_validate(app=fuzz_node.app, headers=headers, checks=CHECKS)


# --- the document itself ----------------------------------------------------------------


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema.raw_schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


# The OAuth and OpenID4VCI endpoints refuse in their specs' shape ({"error",
# "error_description"}: RFC 6749 section 5.2, OpenID4VCI 1.0 section 8.3.1), but for a
# body over the limit, refused before it is read, in the node's.
OAUTH_SHAPED = {("/oid4vci/token", "400"), ("/oid4vci/credential", "400"),
                ("/oid4vci/credential", "401"), ("/oid4vci/credential", "503"),
                ("/oid4vci/par", "400"), ("/oid4vp/responses/{transaction_id}", "400")}  # fmt: skip
# The browser's steps of the authorization code flow refuse with a page for the resident.
PAGES = {"/oid4vci/authorize", "/oid4vci/login", "/oid4vci/authorize/decision",
         "/dev-idp/authorize", "/me/login"}  # fmt: skip


def test_every_error_the_document_declares_has_the_nodes_error_body() -> None:
    """FastAPI's own 422 body (HTTPValidationError) is not what the node answers."""
    assert "HTTPValidationError" not in json.dumps(schema.raw_schema)
    for path, method, operation in _operations():
        for status, response in operation["responses"].items():
            if int(status) < 400 or (path, status) == ("/readyz", "503"):
                continue
            if path in PAGES and "text/html" in response.get("content", {}):
                continue
            body = response["content"]["application/json"]["schema"]
            shape = "OAuthErrorBody" if (path, status) in OAUTH_SHAPED else "ErrorBody"
            assert body == {"$ref": f"#/components/schemas/{shape}"}, (method, path, status)


def test_every_operation_behind_credentials_declares_401() -> None:
    for path, method, operation in _operations():
        if audience(path) != "public":
            assert "401" in operation["responses"], (method, path)
