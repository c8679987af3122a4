"""A wallet presenting to a verifier the attestation's recipients don't name
(docs/SECURITY.md section 17; issue 17, known gap K).

Her ``share_alliance`` consent names who may receive her standing, and the attestation
carries them as its issuer-signed ``aud``. Every verifier not named refuses it, but only
after seeing what it was shown: the issuer-signed claims (her city, the alliance, the
mapping table, the recipients themselves) and whatever she disclosed. Now the wallet
refuses first: nothing is made, nothing is sent, the verifier learns nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, select

import protocol as P
from cli import InputError
from node.models import AuditEntry
from tests.conftest import NOW
from tests.node.issuing_helpers import node_state
from tests.security.test_consent_recipients import audience, issued_through_the_api
from tests.security.world import FUZHOU, LIBRARY, XIAMEN, World, service_point
from wallet import check_named


def test_a_wallet_does_not_present_to_a_verifier_its_recipients_do_not_name(
    world: World,
) -> None:
    # She names her home city alone; Xiamen, an active member, asks.
    attestation, key = issued_through_the_api(world, "named-fuzhou", [FUZHOU], 611)
    holder: Any = key
    assert audience(attestation) == [FUZHOU]
    challenge = world.challenge(service_point(world.xiamen, LIBRARY))

    with pytest.raises(P.RecipientNotNamed):
        P.present(
            attestation, disclose=["score_at_least.600"], holder_key=holder,
            aud=challenge["aud"], nonce=challenge["nonce"], now=NOW, recipient=XIAMEN,
        )  # fmt: skip
    with pytest.raises(InputError) as refused:  # the ccx wallet's check, in both dialects
        check_named(attestation, XIAMEN)
    assert refused.value.code == "recipient_not_named"
    check_named(attestation, FUZHOU)  # the member she named: presented as before
    with Session(node_state(world.xiamen).engine) as db:  # Xiamen was shown nothing
        actions = [entry.action for entry in db.exec(select(AuditEntry)).all()]
    assert not [action for action in actions if action.startswith("verification.")]


def test_an_attestation_for_every_member_is_presented_anywhere(world: World) -> None:
    attestation, key = issued_through_the_api(world, "named-everyone", ["alliance"], 612)
    holder: Any = key
    assert audience(attestation) is None
    check_named(attestation, XIAMEN)
    desk = service_point(world.xiamen, LIBRARY)
    challenge = world.challenge(desk)
    presentation = P.present(
        attestation, disclose=["score_at_least.600"], holder_key=holder,
        aud=challenge["aud"], nonce=challenge["nonce"], now=NOW, recipient=XIAMEN,
    )  # fmt: skip
    assert world.send(desk, challenge["nonce"], presentation).json()["decision"] == "granted"
