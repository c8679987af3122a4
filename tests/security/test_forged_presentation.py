"""A forged presentation at a service point (docs/SECURITY.md, "Forged presentation").

The protocol-level attacks are in tests/protocol/test_attacks.py; these show that the
node's verification endpoint refuses the same forgeries over HTTP, audits the refusal,
uses the challenge up, and grants nothing."""

from __future__ import annotations

import json

from sqlmodel import Session, select

import protocol as P
from node.models import AuditEntry
from protocol._jws import sign_jws
from tests.conftest import ec_key
from tests.node.issuing_helpers import error_code, node_state
from tests.security.world import (
    FUZHOU,
    World,
    attest,
    bind,
    decode_segment,
    forge_attestation,
    service_point,
)


def refusals(world: World) -> list[str]:
    with Session(node_state(world.xiamen).engine) as db:
        entries = db.exec(
            select(AuditEntry).where(AuditEntry.action == "verification.refused")
        ).all()
    return [entry.details["code"] for entry in entries]


def test_an_attestation_signed_with_the_attackers_own_key_is_refused(world: World) -> None:
    attacker, holder = ec_key(500), ec_key(501)
    kid = P.jwk_thumbprint(P.public_jwk(attacker))
    forged = forge_attestation(attacker, kid, holder, alliance_score=990, band="excellent")
    headers = service_point(world.xiamen, "library_deposit_free")
    challenge = world.challenge(headers)
    presentation = world.present(forged, holder, challenge)
    response = world.send(headers, challenge["nonce"], presentation)
    assert response.status_code == 401, response.text
    assert error_code(response) == "unknown_kid"
    assert refusals(world) == ["unknown_kid"]  # audited, without the presentation
    again = world.send(headers, challenge["nonce"], presentation)
    assert error_code(again) == "nonce_used"  # the refused attempt used the challenge up


def test_an_attestation_carrying_its_own_key_in_the_header_is_refused(world: World) -> None:
    attacker, holder = ec_key(502), ec_key(503)
    jwk = P.public_jwk(attacker)
    genuine = forge_attestation(attacker, P.jwk_thumbprint(jwk), holder)
    issuer_jwt, disclosures = genuine.split("~", 1)
    head, payload, _ = issuer_jwt.split(".")
    header = {**decode_segment(head), "jwk": jwk}  # "trust the key I carry"
    forged = sign_jws(header, P.b64url_decode(payload), attacker) + "~" + disclosures
    headers = service_point(world.xiamen, "library_deposit_free")
    challenge = world.challenge(headers)
    response = world.send(headers, challenge["nonce"], world.present(forged, holder, challenge))
    assert response.status_code == 401, response.text
    assert error_code(response) == "forbidden_header"


def test_a_visitor_rewriting_her_disclosure_from_false_to_true_is_refused(world: World) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-low", 520)  # alliance 544
    headers = service_point(world.xiamen, "library_deposit_free")
    challenge = world.challenge(headers)
    honest = world.present(attestation, holder, challenge, ("score_at_least.600",))
    issuer_jwt, disclosure, _ = honest.split("~")
    salt, name, value = decode_segment(disclosure)
    assert (name, value) == ("600", False)
    raised = P.b64url_encode(json.dumps([salt, name, True]).encode())
    # She signs the KB-JWT herself over the edited disclosure: only the issuer's signed
    # digests can catch it.
    forged = bind(f"{issuer_jwt}~{raised}~", holder, aud=challenge["aud"], nonce=challenge["nonce"])
    response = world.send(headers, challenge["nonce"], forged)
    assert response.status_code == 400, response.text
    assert error_code(response) == "unreferenced_disclosure"
    assert refusals(world) == ["unreferenced_disclosure"]
