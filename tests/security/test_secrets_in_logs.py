"""Secrets in logs (docs/SECURITY.md, "Secrets in logs and error bodies").

Logs leave the node (log shippers, support tickets). No bearer token, nonce,
attestation or presentation may be written to one, on success or on failure; and no
secret travels in a URL, so that access logs and proxies never see one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

import protocol as P
from node.services.status_cache import StatusListCache
from tests.conftest import ec_key
from tests.node.issuing_helpers import bearer, new_nonce, node_state
from tests.node.pushing import ADMIN, ADMIN_TOKEN, admin_settings
from tests.security.world import (
    FUZHOU,
    XIAMEN,
    World,
    attest,
    forge_attestation,
    service_point,
)

SECRET_NAMES = ("token", "nonce", "presentation", "proof", "attestation", "passphrase",
                "password", "secret", "authorization", "jwt", "key")  # fmt: skip
# Names that hold one of those words and no secret: an attestation's row id on her
# page's routes (/v1/me/attestations/{attestation_id}/revoke), never the attestation.
NOT_SECRET_NAMES = {"attestation_id"}
# OpenID Connect's authorization request carries its nonce in the URL by design (Core
# section 3.1.2.1): it binds the ID token to the tab that asked, and is no credential
NOT_SECRET_PARAMETERS = {("GET /me/login", "nonce")}


def test_no_secret_reaches_the_logs(
    make_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world = World.make(make_client, tmp_path, **admin_settings())
    login = bearer(world.xiamen, "resident-logs")
    pop_nonce = new_nonce(world.xiamen, login)
    local, local_holder = attest(world.xiamen, XIAMEN, "resident-logs", 720)
    visitor, visitor_holder = attest(world.fuzhou, FUZHOU, "visitor-logs", 600)
    desk = service_point(world.xiamen, "library_deposit_free")
    seen: dict[str, str] = {
        "resident's bearer token": login["Authorization"].removeprefix("Bearer "),
        "service point token": desk["Authorization"].removeprefix("Bearer "),
        "admin token": ADMIN_TOKEN,
        "proof-of-possession nonce": pop_nonce,
        "local attestation": local.split("~")[0],
        "visitor attestation": visitor.split("~")[0],
    }
    for name, (attestation, holder) in {
        "granted": (local, local_holder),
        "status fetched": (visitor, visitor_holder),
    }.items():
        challenge = world.challenge(desk)
        presentation = world.present(attestation, holder, challenge)
        assert world.send(desk, challenge["nonce"], presentation).status_code == 200
        seen[f"{name}: nonce"] = challenge["nonce"]
        seen[f"{name}: presentation"] = presentation.rsplit("~", 1)[1]
    attacker = ec_key(530)
    forged = forge_attestation(attacker, P.jwk_thumbprint(P.public_jwk(attacker)), attacker)
    challenge = world.challenge(desk)
    presentation = world.present(forged, attacker, challenge)
    assert world.send(desk, challenge["nonce"], presentation).status_code == 401
    seen["refused: presentation"] = presentation.rsplit("~", 1)[1]
    node_state(world.xiamen).http = httpx.Client(
        transport=httpx.MockTransport(lambda request: httpx.Response(502))
    )
    xiamen = node_state(world.xiamen)  # the visitor's city is now down, nothing cached
    xiamen.status_cache = StatusListCache(min_ttl=xiamen.settings.status_cache_min_ttl)
    challenge = world.challenge(desk)
    presentation = world.present(visitor, visitor_holder, challenge)
    assert world.send(desk, challenge["nonce"], presentation).status_code == 503
    seen["fail closed: presentation"] = presentation.rsplit("~", 1)[1]
    assert world.xiamen.post("/v1/admin/keys/rotate", headers=ADMIN).status_code == 200

    assert any(record.name.startswith("ccx") for record in caplog.records)  # not vacuous
    text = "\n".join(f"{record.getMessage()}\n{record.exc_text or ''}" for record in caplog.records)
    assert {what: secret in text for what, secret in seen.items()} == dict.fromkeys(seen, False)


def test_no_secret_travels_in_a_url(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    in_urls = {
        (f"{method.upper()} {path}", parameter["name"])
        for path, operations in paths.items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter["in"] in ("path", "query", "cookie")
    }
    assert len(in_urls) >= 5  # not vacuous: the node has path and query parameters
    secret = [
        (op, name)
        for op, name in in_urls
        if name not in NOT_SECRET_NAMES
        and (op, name) not in NOT_SECRET_PARAMETERS
        and any(s in name.lower() for s in SECRET_NAMES)
    ]
    assert secret == []
