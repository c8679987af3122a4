"""A stolen holder key (docs/SECURITY.md, "Stolen holder key").

An attestation is bound to its holder's key: the token alone is worth nothing, the key
alone gets no new attestation without her login. A thief with both (her wallet file
and its passphrase) can present them like her until the attestation expires, she
withdraws a consent (which revokes every attestation of hers), or the monthly check
revokes it. These show each of those limits at the service point."""

from __future__ import annotations

from typing import Any

from tests.conftest import NOW, ec_key
from tests.node.issuing_helpers import bearer, error_code
from tests.security.world import XIAMEN, World, attest, decode_segment, service_point


def test_a_stolen_attestation_without_the_holder_key_is_refused(world: World) -> None:
    attestation, _ = attest(world.xiamen, XIAMEN, "victim-1", 720)
    thief = ec_key(520)
    headers = service_point(world.xiamen, "library_deposit_free")
    response = world.verify(headers, attestation, thief)  # KB-JWT signed with his own key
    assert response.status_code == 401, response.text
    assert error_code(response) == "kb_invalid_signature"


def test_a_stolen_wallet_is_refused_once_she_withdraws_her_consent(world: World) -> None:
    attestation, holder = attest(world.xiamen, XIAMEN, "victim-2", 720)
    headers = service_point(world.xiamen, "library_deposit_free")
    assert world.verify(headers, attestation, holder).json()["decision"] == "granted"

    withdrawn = world.xiamen.delete(
        "/v1/me/consents/share_alliance", headers=bearer(world.xiamen, "victim-2")
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["revoked_attestations"] == 1

    denied = world.verify(headers, attestation, holder)  # her home node: no cache between
    assert denied.status_code == 200, denied.text
    assert denied.json()["decision"] == "denied"
    assert [r["code"] for r in denied.json()["reasons"]] == ["attestation_revoked"]


def test_a_stolen_wallet_stops_at_the_attestations_expiry(world: World, clock: Any) -> None:
    attestation, holder = attest(world.xiamen, XIAMEN, "victim-3", 720)
    expires_at = decode_segment(attestation.split(".")[1])["exp"]
    assert expires_at - NOW <= 35 * 86400
    headers = service_point(world.xiamen, "library_deposit_free")
    clock.now = expires_at + 31  # past the 30 s leeway
    response = world.verify(headers, attestation, holder, now=clock.now)
    assert response.status_code == 401, response.text
    assert error_code(response) == "expired"
