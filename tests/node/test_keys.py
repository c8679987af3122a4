"""Rotating the node's signing key: the admin endpoint and `ccx node rotate-keys`
(next -> active -> retired; DESIGN section 7, docs/ISSUING.md)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

import protocol as P
from ccx.app import app as ccx
from node.auth import hash_token
from node.models import AuditEntry
from tests.conftest import NOW, ec_key
from tests.node.issuing_helpers import (
    bearer,
    error_code,
    node_key_resolver,
    node_state,
    request_attestation,
    seed_resident,
    session,
)

ADMIN_TOKEN = "an admin token for tests only"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VERIFIER = "https://verifier.ccx.test"


@pytest.fixture
def client(make_client: Any) -> TestClient:
    client: TestClient = make_client(admin_token_hash=hash_token(ADMIN_TOKEN))
    seed_resident(client)
    return client


def published_kids(client: TestClient) -> set[str]:
    return {jwk["kid"] for jwk in client.get("/.well-known/jwks.json").json()["keys"]}


def issue_and_verify(client: TestClient, holder: Any, resolver: P.IssuerKeyResolver) -> str:
    response = request_attestation(client, bearer(client), holder)
    assert response.status_code == 201, response.text
    presentation = P.present(
        response.json()["attestation"],
        disclose=["band"],
        holder_key=holder,
        aud=VERIFIER,
        nonce="n",
        now=NOW,
    )
    verified = P.verify_presentation(
        presentation, resolve_issuer_key=resolver, aud=VERIFIER, nonce="n", now=NOW
    )
    return verified.kid


def test_rotation_promotes_next_and_keeps_the_retired_key_verifying(client: TestClient) -> None:
    ring = node_state(client).signing_keys()
    old_active, old_next = ring.active.kid, ring.next.kid  # type: ignore[union-attr]
    before = issue_and_verify(client, ec_key(1), node_key_resolver(client))
    assert before == old_active
    earlier = request_attestation(client, bearer(client), ec_key(2)).json()["attestation"]

    response = client.post("/v1/admin/keys/rotate", headers=ADMIN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["active_kid"] == old_next
    assert body["retired_kid"] == old_active
    assert body["next_kid"] not in (old_active, old_next)
    assert body["retired_until"] == NOW + 36 * 86400
    assert published_kids(client) == {old_next, old_active, body["next_kid"]}

    resolver = node_key_resolver(client)
    assert issue_and_verify(client, ec_key(3), resolver) == old_next  # signs with the new key
    presentation = P.present(
        earlier, disclose=["band"], holder_key=ec_key(2), aud=VERIFIER, nonce="m", now=NOW
    )
    assert (  # an attestation signed before the rotation still verifies
        P.verify_presentation(
            presentation, resolve_issuer_key=resolver, aud=VERIFIER, nonce="m", now=NOW
        ).kid
        == old_active
    )


def test_rotation_is_audit_logged_with_kids_only(client: TestClient) -> None:
    body = client.post("/v1/admin/keys/rotate", headers=ADMIN).json()
    with session(client) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.action == "keys.rotated")).one()
    assert entry.actor == "admin"
    assert entry.details == body
    assert client.get("/v1/admin/audit/verify", headers=ADMIN).json()["ok"] is True


def test_a_resident_cannot_rotate(client: TestClient) -> None:
    kids = published_kids(client)
    response = client.post("/v1/admin/keys/rotate", headers=bearer(client))
    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    assert published_kids(client) == kids


def test_another_worker_follows_the_rotation(client: TestClient, make_client: Any) -> None:
    other = make_client(admin_token_hash=hash_token(ADMIN_TOKEN))  # same data folder
    assert published_kids(other) == published_kids(client)
    new_active = client.post("/v1/admin/keys/rotate", headers=ADMIN).json()["active_kid"]
    node_state(other)._keyring_seen = (0.0, node_state(other)._keyring_seen[1])  # time passed
    assert node_state(other).signing_keys().active.kid == new_active
    assert published_kids(other) == published_kids(client)


def test_the_command_rotates_and_the_running_node_follows(client: TestClient) -> None:
    settings = node_state(client).settings
    old_next = node_state(client).signing_keys().next.kid  # type: ignore[union-attr]
    result = CliRunner().invoke(
        ccx,
        ["node", "rotate-keys", "--data-dir", str(settings.data_dir)],
        env={"CCX_KEYRING_PASSPHRASE": settings.keyring_passphrase.get_secret_value()},
    )
    assert result.exit_code == 0, result.output
    assert f"active key:  {old_next}" in result.output
    state = node_state(client)
    state._keyring_seen = (0.0, state._keyring_seen[1])
    assert state.signing_keys().active.kid == old_next


def test_the_command_with_a_wrong_passphrase_says_so_and_changes_nothing(
    client: TestClient,
) -> None:
    settings = node_state(client).settings
    before = settings.keyring_path.read_bytes()
    result = CliRunner().invoke(
        ccx,
        ["node", "rotate-keys", "--data-dir", str(settings.data_dir)],
        env={"CCX_KEYRING_PASSPHRASE": "not the passphrase at all"},
    )
    assert result.exit_code != 0
    assert "passphrase" in result.output.lower()
    assert settings.keyring_path.read_bytes() == before
