"""A malicious member node (docs/SECURITY.md, "Malicious member node").

Fuzhou is a member in good standing whose node turns hostile: it signs with its own,
registered key whatever claims it likes. The verifier (Xiamen) must keep it to its own
name, its own status lists and this alliance, and the alliance must be able to cut it
off, after which its earlier grants can be found in Xiamen's audit log."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, select

from node.models import AuditEntry
from tests.conftest import NOW, ec_key
from tests.node.issuing_helpers import error_code, node_state
from tests.security.world import (
    FUZHOU,
    XIAMEN,
    World,
    attest,
    forge_attestation,
    service_point,
)


@pytest.mark.parametrize(
    ("kid_of", "code"),
    [("fuzhou", "unknown_kid"), ("xiamen", "invalid_signature")],
    ids=["its-own-kid", "xiamens-kid"],
)
def test_a_member_signing_in_another_members_name_is_refused(
    world: World, kid_of: str, code: str
) -> None:
    fuzhou_key, fuzhou_kid = world.fuzhou_key()
    xiamen_kid = world.alliance.jwks[XIAMEN]["keys"][0]["kid"]
    holder = ec_key(510)
    forged = forge_attestation(
        fuzhou_key,
        fuzhou_kid if kid_of == "fuzhou" else xiamen_kid,
        holder,
        iss=XIAMEN,  # "a Xiamen resident", says Fuzhou
        status={"idx": 3, "uri": f"{XIAMEN}/v1/status-lists/1"},
    )
    headers = service_point(world.xiamen, "library_deposit_free")
    challenge = world.challenge(headers)
    response = world.send(headers, challenge["nonce"], world.present(forged, holder, challenge))
    assert response.status_code == 401, response.text
    assert error_code(response) == code


# Where a hostile member points its attestations' status: another member's list (where
# the index may read 0), cloud metadata, the verifier's own loopback, another path of
# its own node, a query or userinfo smuggling another host.
ELSEWHERE = [
    f"{XIAMEN}/v1/status-lists/1",
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:5432/v1/status-lists/1",
    f"{FUZHOU}/v1/admin/audit",
    f"{FUZHOU}/v1/status-lists/1?next=http://10.0.0.1/",
    f"{FUZHOU}@10.0.0.1/v1/status-lists/1",
]


def test_a_status_uri_outside_the_members_node_is_refused_before_any_request(
    world: World,
) -> None:
    fuzhou_key, fuzhou_kid = world.fuzhou_key()
    holder = ec_key(511)
    headers = service_point(world.xiamen, "library_deposit_free")
    answers = {}
    for n, uri in enumerate(ELSEWHERE):
        status = {"idx": n, "uri": uri}
        forged = forge_attestation(fuzhou_key, fuzhou_kid, holder, status=status)
        challenge = world.challenge(headers)
        presentation = world.present(forged, holder, challenge)
        response = world.send(headers, challenge["nonce"], presentation)
        answers[uri] = (response.status_code, error_code(response))
    assert answers == dict.fromkeys(ELSEWHERE, (422, "status_uri_not_allowed"))
    assert world.network.requests == []


def test_an_attestation_for_another_alliance_is_refused(world: World) -> None:
    fuzhou_key, fuzhou_kid = world.fuzhou_key()
    holder = ec_key(512)
    forged = forge_attestation(
        fuzhou_key, fuzhou_kid, holder, alliance="https://another-alliance.example"
    )
    headers = service_point(world.xiamen, "library_deposit_free")
    challenge = world.challenge(headers)
    response = world.send(headers, challenge["nonce"], world.present(forged, holder, challenge))
    assert response.status_code == 401, response.text
    assert error_code(response) == "alliance_mismatch"


def test_a_lying_member_is_cut_off_by_suspension_and_its_grants_are_traceable(
    world: World, clock: Any
) -> None:
    # What no verifier can see: Fuzhou attests a standing its resident doesn't have.
    fuzhou_key, fuzhou_kid = world.fuzhou_key()
    holder = ec_key(513)
    inflated = forge_attestation(
        fuzhou_key,
        fuzhou_kid,
        holder,
        status={"idx": 9, "uri": f"{FUZHOU}/v1/status-lists/1"},
        alliance_score=900,
        band="excellent",
    )
    attest(world.fuzhou, FUZHOU, "visitor-honest", 600)  # Fuzhou's list 1 now exists
    headers = service_point(world.xiamen, "library_deposit_free")
    granted = world.verify(headers, inflated, holder)
    assert granted.json()["decision"] == "granted"  # the residual risk, shown

    clock.now = NOW + 1  # the alliance suspends Fuzhou in registry v2
    world.follower.accept(
        world.registry(2, now=clock.now, fuzhou_status="suspended"), now=clock.now
    )
    refused = world.verify(headers, inflated, holder, now=clock.now)
    assert refused.status_code == 401, refused.text
    assert error_code(refused) == "issuer_suspended"

    with Session(node_state(world.xiamen).engine) as db:
        grants = db.exec(
            select(AuditEntry).where(AuditEntry.action == "verification.decided")
        ).all()
    assert [(e.details["issuer"], e.details["kid"], e.details["decision"]) for e in grants] == [
        (FUZHOU, fuzhou_kid, "granted")
    ]
    assert grants[0].seq == granted.json()["audit_seq"]
