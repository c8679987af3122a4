"""Recipients a consent names, and what they bind (docs/SECURITY.md; issue 19, item 4).

PIPL art. 23: a separate consent names the recipient. The ``share_alliance`` consent's
recipients are members of the alliance by their registry ids (checked against the
registry the home node follows when she consents), or "alliance" for every member. What
is issued is bound to them: the attestation's issuer-signed ``aud`` lists the named
members, and every verifier not named refuses it (``recipient_not_named``, checked in
protocol/, so any verifier using the library does). Before, a consent naming
``https://nobody.example`` was stored, an attestation issued, and a member not named
granted it at its service point. Fuzhou is the home city here, Xiamen the service point
(tests/security/world.py); both follow the same registry."""

from __future__ import annotations

import json

import httpx
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from node.models import AuditEntry, Consent
from protocol import b64url_encode
from tests.conftest import NOW, ec_key
from tests.node.issuing_helpers import (
    bearer,
    error_code,
    make_proof,
    new_nonce,
    node_state,
    request_attestation,
    seed_resident,
)
from tests.node.test_verifications import install_registry, registry_token
from tests.security.world import FUZHOU, XIAMEN, World, bind, decode_segment, service_point

NOBODY = "https://nobody.example"
PURPOSE = "免押金借阅 while visiting Xiamen"


def follow_the_registry(world: World, client: TestClient) -> None:
    """``client``'s node follows the registry Xiamen follows (both cities active)."""
    install_registry(client, registry_token(world.alliance.members(), now=NOW), NOW)


def share(client: TestClient, resident: str, recipients: list[str]) -> httpx.Response:
    body = {"kind": "share_alliance", "recipients": recipients, "purpose": PURPOSE}
    return client.post("/v1/me/consents", json=body, headers=bearer(client, resident))


def request(client: TestClient, node_id: str, resident: str, seed: int) -> httpx.Response:
    """Her wallet asks her home node for an attestation, for a key of its own."""
    headers = bearer(client, resident)
    holder = ec_key(seed)
    proof = make_proof(holder, new_nonce(client, headers), aud=node_id, iat=NOW)
    return request_attestation(client, headers, holder, proof=proof)


def issued_through_the_api(
    world: World, resident: str, recipients: list[str], seed: int
) -> tuple[str, object]:
    """A Fuzhou resident consents through the API, naming ``recipients``, and is issued."""
    follow_the_registry(world, world.fuzhou)
    seed_resident(world.fuzhou, resident, score=600, consents=("open_score",))
    granted = share(world.fuzhou, resident, recipients)
    assert granted.status_code == 201, granted.text
    response = request(world.fuzhou, FUZHOU, resident, seed)
    assert response.status_code == 201, response.text
    return response.json()["attestation"], ec_key(seed)


def audience(attestation: str) -> object:
    return decode_segment(attestation.split(".")[1]).get("aud")


def test_a_consent_naming_a_non_member_is_refused(world: World) -> None:
    follow_the_registry(world, world.fuzhou)
    seed_resident(world.fuzhou, "visitor-1", score=600, consents=("open_score",))

    response = share(world.fuzhou, "visitor-1", [NOBODY])
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "recipient_not_member"
    assert error["details"] == [
        {"field": "recipients.0", "problem": "not a member of the alliance (registry version 1)"}
    ]
    with Session(node_state(world.fuzhou).engine) as db:
        assert db.exec(select(Consent).where(Consent.kind == "share_alliance")).all() == []
    # so nothing can be issued to share her standing
    refused = request(world.fuzhou, FUZHOU, "visitor-1", 601)
    assert refused.status_code == 403
    assert error_code(refused) == "consent_required"


def test_a_member_not_named_in_the_consent_refuses_the_attestation(world: World) -> None:
    # She names her home city alone; Xiamen is an active member, but not a recipient.
    attestation, holder = issued_through_the_api(world, "visitor-2", [FUZHOU], 602)
    assert audience(attestation) == [FUZHOU]
    headers = service_point(world.xiamen, "library_deposit_free")

    response = world.verify(headers, attestation, holder)
    assert response.status_code == 403, response.text
    assert error_code(response) == "recipient_not_named"
    assert world.network.to(FUZHOU) == []  # refused before the status list is fetched
    with Session(node_state(world.xiamen).engine) as db:
        actions = [e.action for e in db.exec(select(AuditEntry)).all()]
    assert "verification.decided" not in actions
    assert actions[-1] == "verification.refused"


def test_a_named_member_grants(world: World) -> None:
    attestation, holder = issued_through_the_api(world, "visitor-3", [XIAMEN], 603)
    assert audience(attestation) == [XIAMEN]
    headers = service_point(world.xiamen, "library_deposit_free")

    response = world.verify(headers, attestation, holder)
    assert response.status_code == 200, response.text
    assert response.json()["decision"] == "granted"


def test_a_consent_for_every_member_grants_everywhere(world: World) -> None:
    attestation, holder = issued_through_the_api(world, "visitor-4", ["alliance"], 604)
    assert audience(attestation) is None
    headers = service_point(world.xiamen, "library_deposit_free")
    assert world.verify(headers, attestation, holder).json()["decision"] == "granted"


def test_a_consent_stored_before_recipients_were_checked_binds_its_attestations_too(
    world: World,
) -> None:
    # The probe's consent, already in a database from before the check: issuing still
    # names its recipients, so no member accepts the attestation.
    seed_resident(world.fuzhou, "visitor-5", score=600, consents=("open_score",))
    with Session(node_state(world.fuzhou).engine) as db:
        db.add(
            Consent(
                resident_id="visitor-5",
                kind="share_alliance",
                recipients=[NOBODY],
                purpose="visits",
                granted_at=NOW - 60,
            )
        )
        db.commit()
    response = request(world.fuzhou, FUZHOU, "visitor-5", 605)
    assert response.status_code == 201, response.text
    attestation = response.json()["attestation"]
    assert audience(attestation) == [NOBODY]

    refused = world.verify(
        service_point(world.xiamen, "library_deposit_free"), attestation, ec_key(605)
    )
    assert refused.status_code == 403
    assert error_code(refused) == "recipient_not_named"


def test_a_holder_stripping_the_recipients_is_refused(world: World) -> None:
    attestation, holder = issued_through_the_api(world, "visitor-6", [FUZHOU], 606)
    issuer_jwt, *disclosures, _ = attestation.split("~")
    header, payload, signature = issuer_jwt.split(".")
    claims = decode_segment(payload)
    del claims["aud"]
    stripped = ".".join(
        [header, b64url_encode(json.dumps(claims, separators=(",", ":")).encode()), signature]
    )
    headers = service_point(world.xiamen, "library_deposit_free")
    challenge = world.challenge(headers)
    presentation = bind(
        "~".join([stripped, *disclosures, ""]),
        holder,
        aud=challenge["aud"],
        nonce=challenge["nonce"],
    )

    response = world.send(headers, challenge["nonce"], presentation)
    assert response.status_code == 401, response.text
    assert error_code(response) == "invalid_signature"


def test_changing_the_recipients_revokes_what_was_issued_for_the_old_ones(
    world: World,
) -> None:
    # A Xiamen resident (her status is read from Xiamen's own lists, no cache between):
    # she named Xiamen, then changes her consent to Fuzhou alone.
    seed_resident(world.xiamen, "local-1", score=720, consents=("open_score",))
    assert share(world.xiamen, "local-1", [XIAMEN, FUZHOU]).status_code == 201
    first = request(world.xiamen, XIAMEN, "local-1", 607).json()["attestation"]
    headers = service_point(world.xiamen, "library_deposit_free")
    assert world.verify(headers, first, ec_key(607)).json()["decision"] == "granted"

    again = share(world.xiamen, "local-1", [FUZHOU])  # a consent in force is not changed
    assert again.status_code == 409
    assert error_code(again) == "consent_active"
    withdrawn = world.xiamen.delete(
        "/v1/me/consents/share_alliance", headers=bearer(world.xiamen, "local-1")
    )
    assert withdrawn.json()["revoked_attestations"] == 1
    assert share(world.xiamen, "local-1", [FUZHOU]).status_code == 201
    second = request(world.xiamen, XIAMEN, "local-1", 608).json()["attestation"]
    assert audience(second) == [FUZHOU]

    old = world.verify(headers, first, ec_key(607))
    assert [r["code"] for r in old.json()["reasons"]] == ["attestation_revoked"]
    new = world.verify(headers, second, ec_key(608))
    assert new.status_code == 403
    assert error_code(new) == "recipient_not_named"


def test_a_node_that_follows_no_registry_refuses_to_name_members(world: World) -> None:
    # Fuzhou here pins no root key: it can't tell a member from anyone else (fail closed).
    seed_resident(world.fuzhou, "visitor-7", score=600, consents=("open_score",))
    response = share(world.fuzhou, "visitor-7", [XIAMEN])
    assert response.status_code == 503, response.text
    assert error_code(response) == "registry_unavailable"
    assert share(world.fuzhou, "visitor-7", ["alliance"]).status_code == 201
