"""The trust boundary (docs/SECURITY.md, "Assets and trust boundaries"): without
credentials only the public federation routes answer, and none of them carries a
resident's data. A resident's records and score stay in her home node; what leaves is
what she discloses from her attestation."""

from __future__ import annotations

import re

from sqlmodel import Session

from node.models import Record
from tests.conftest import NOW
from tests.node.issuing_helpers import node_state
from tests.security.world import XIAMEN, World, attest

RESIDENT = "resident-boundary-7f3a"
RECORD_ID = "record-boundary-991"
# Public by design (docs/PROTOCOL.md section 6 and 7, DESIGN section 10), with the
# development identity provider, which a production node never serves (CCX_DEV_IDP).
# /metrics answers its scraper's token alone; /openapi.json (not an operation of the
# document) is public and holds no data; /docs and /redoc are off (CCX_API_DOCS).
PUBLIC = {
    "GET /.well-known/jwks.json",
    "GET /.well-known/jwt-vc-issuer",
    "GET /healthz",
    "GET /readyz",
    "GET /v1/status-lists/{list_id}",
    "GET /v1/alliance/registry",
    "GET /v1/alliance/registry/versions/{version}",
    "GET /v1/alliance/tables/{name}",
    # the alliance host's witness (docs/PROTOCOL.md section 7b): a checkpoint carries its
    # member's signature, the record is public evidence; 404 on any other node
    "POST /v1/alliance/witness/checkpoints",
    "GET /v1/alliance/witness/checkpoints",
    # the alliance dashboard's two reads (docs/PAGES.md): what the host has published and
    # whether members answer /readyz; 404 on any other node
    "GET /v1/alliance/overview",
    "GET /v1/alliance/readiness",
    # the resident page's login (docs/PAGES.md): to the identity provider and back; the
    # ID token posted back is checked like any resident's token
    "GET /me/login",
    "POST /me/login",
    "POST /dev-idp/token",
    # OpenID4VCI 1.0: the metadata, a credential offer (its id is the secret), the token
    # endpoint (a pre-authorized code is), the nonce endpoint
    "GET /.well-known/openid-credential-issuer",
    "GET /.well-known/openid-credential-issuer/{path}",
    "GET /.well-known/oauth-authorization-server",
    "GET /.well-known/oauth-authorization-server/{path}",
    "GET /oid4vci/offers/{offer_id}",
    "POST /oid4vci/token",
    "POST /oid4vci/nonce",
    "GET /oid4vci/type-metadata",
    # the authorization code grant: the pushed request (wallets are public clients), the
    # browser's steps (their one-time state is the secret) and the dev IdP's login page
    "POST /oid4vci/par",
    "GET /oid4vci/authorize",
    "POST /oid4vci/login",
    "POST /oid4vci/authorize/decision",
    "GET /dev-idp/authorize",
    "POST /dev-idp/authorize",
    # OpenID4VP: a request object by its single-use id, the response endpoint
    "GET /oid4vp/requests/{request_id}",
    "POST /oid4vp/requests/{request_id}",
    "POST /oid4vp/responses/{transaction_id}",
}
SAMPLE = {
    "list_id": "1",
    "version": "1",
    "name": "xiamen.v1.table.jwt",
    "client_id": "tax-client",
    "month": "2027-01",
    "kind": "share_alliance",
    "objection_id": "1",
    "attestation_id": "1",
    "path": "x",
    "offer_id": "made-up",
    "request_id": "made-up",
    "transaction_id": "made-up",
}


def operations(world: World) -> list[tuple[str, str]]:
    paths = world.xiamen.get("/openapi.json").json()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


def test_without_credentials_only_the_public_routes_answer(world: World) -> None:
    attest(world.xiamen, XIAMEN, RESIDENT, 720)  # her score, her status list 1
    with Session(node_state(world.xiamen).engine) as db:
        db.add(
            Record(department="tax", record_id=RECORD_ID, resident_id=RESIDENT,
                   kind="tax_arrears", occurred_at=NOW - 86400, recorded_at=NOW - 86400)
        )  # fmt: skip
        db.commit()
    closed: dict[str, int] = {}
    for method, template in operations(world):
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], template)
        response = world.xiamen.request(method, path, json={})
        operation = f"{method} {template}"
        if operation in PUBLIC:
            assert RESIDENT not in response.text, operation
            assert RECORD_ID not in response.text, operation
        else:
            closed[operation] = response.status_code
    assert closed, "the node has routes behind credentials"
    assert {op: status for op, status in closed.items() if status not in (401, 403)} == {}
    assert set(PUBLIC) <= {f"{m} {p}" for m, p in operations(world)}
