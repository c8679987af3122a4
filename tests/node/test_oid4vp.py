"""Every node an OpenID4VP 1.0 verifier (issue 14): a service point's request, the
signed request object (x509_hash, x5c under the alliance CA), the response endpoint in
both response modes deciding as /v1/verifications does, the result, and each refusal.
The ccx wallet library answers (wallet/_oid4vp.py). Sections are OpenID4VP 1.0's."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import select

import protocol as P
from cli import InputError
from node.auth import forget_client
from node.models import AuditEntry, Nonce
from node.services import clients, oid4vp
from node.state import ClientIdentity
from tests.conftest import NOW, ec_key
from tests.node.issuing_helpers import node_state, session
from tests.node.oid4vp_helpers import ca_der, certified_registry, follower
from tests.node.test_verifications import (
    FUZHOU,
    XIAMEN,
    Alliance,
    attest,
    service_point,
)
from wallet._oid4vp import Asked, answer_request, read_request

DAY = 86400
SCENARIO = "library_deposit_free"


@pytest.fixture
def world(make_client: Any, tmp_path: Path) -> Alliance:
    alliance = Alliance(make_client, tmp_path)
    node_state(alliance.xiamen).follower = follower(certified_registry(alliance))
    return alliance


def new_request(
    world: Alliance, headers: dict[str, str], *, mode: str = "direct_post.jwt"
) -> dict[str, Any]:
    made = world.xiamen.post(
        "/v1/presentation-requests",
        json={"scenario": SCENARIO, "response_mode": mode},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def read(world: Alliance, link: str) -> Asked:
    return read_request(link, anchors=[ca_der()], members={XIAMEN: "Xiamen"}, now=NOW,
                        client=world.xiamen)  # fmt: skip


def result(world: Alliance, headers: dict[str, str], made: dict[str, Any]) -> dict[str, Any]:
    answer = world.xiamen.get(
        f"/v1/presentation-requests/{made['transaction_id']}", headers=headers
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


# --- the whole flow ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["direct_post.jwt", "direct_post"])
def test_a_visitor_is_granted_through_a_standard_request(world: Alliance, mode: str) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-1", 780)
    headers = service_point(world.xiamen, SCENARIO)
    made = new_request(world, headers, mode=mode)
    link = urlsplit(made["request"])
    assert link.scheme == "openid4vp"
    query = parse_qs(link.query)
    assert query["client_id"] == [made["client_id"]]
    assert made["client_id"].startswith("x509_hash:")  # section 5.9.3
    assert result(world, headers, made)["outcome"] == "pending"

    asked = read(world, made["request"])
    assert asked.verifier == XIAMEN  # the leaf names the member
    assert asked.verifier_name == "Xiamen"
    assert asked.requested == tuple(made["disclose"])
    assert asked.request.claims["response_mode"] == mode
    assert answer_request(asked, attestation, holder_key=holder, now=NOW, client=world.xiamen) == {}

    decided = result(world, headers, made)
    assert decided["outcome"] == "granted"
    assert decided["issuer"] == FUZHOU
    assert decided["tier"] is not None
    with session(world.xiamen) as db:
        entries = db.exec(
            select(AuditEntry).where(AuditEntry.action == "verification.decided")
        ).all()
    assert entries[-1].seq == decided["audit_seq"]


def test_the_request_object_is_signed_by_the_certified_key(world: Alliance) -> None:
    made = new_request(world, service_point(world.xiamen, SCENARIO))
    uri = parse_qs(urlsplit(made["request"]).query)["request_uri"][0]
    answer = world.xiamen.get(urlsplit(uri).path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/oauth-authz-req+jwt")
    assert answer.headers["cache-control"] == "no-store"
    header = json.loads(base64.urlsafe_b64decode(answer.text.split(".")[0] + "=="))
    assert header["typ"] == "oauth-authz-req+jwt"  # section 5
    verified = P.verify_request_object(answer.text, client_id=made["client_id"],
                                       anchors=[ca_der()], now=NOW)  # fmt: skip
    claims = verified.claims
    assert claims["aud"] == "https://self-issued.me/v2"  # section 5.8
    assert claims["response_type"] == "vp_token"
    assert claims["response_uri"].startswith(f"{XIAMEN}/oid4vp/responses/")
    query = claims["dcql_query"]["credentials"][0]
    assert query["meta"] == {"vct_values": [P.VCT]}
    assert [c["path"] for c in query["claims"]] == [d.split(".") for d in made["disclose"]]
    [key] = claims["client_metadata"]["jwks"]["keys"]  # a fresh key for this request
    assert (key["alg"], key["crv"], key["use"]) == ("ECDH-ES", "P-256", "enc")
    assert "kid" in key
    assert claims["client_metadata"]["encrypted_response_enc_values_supported"] == [
        "A128GCM",
        "A256GCM",
    ]


def test_a_presentation_with_the_node_id_as_kb_aud_is_refused(world: Alliance) -> None:
    # section B.3.6: the KB-JWT's aud is the full client identifier; a presentation made
    # for the node's id (the ccx dialect) can't be replayed into a standard request
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-2", 780)
    headers = service_point(world.xiamen, SCENARIO)
    asked = read(world, new_request(world, headers, mode="direct_post")["request"])
    presentation = P.present(attestation, disclose=list(asked.disclosures_for(attestation)), holder_key=holder,
                             aud=XIAMEN, nonce=asked.request.claims["nonce"], now=NOW)  # fmt: skip
    answer = world.xiamen.post(
        urlsplit(asked.request.claims["response_uri"]).path,
        data={"vp_token": json.dumps({"credit_standing": [presentation]}),
              "state": asked.request.claims["state"]},
    )  # fmt: skip
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert "aud_mismatch" in answer.json()["error_description"]


# --- refusals -------------------------------------------------------------------------------------


def test_a_request_object_is_fetched_once(world: Alliance) -> None:
    made = new_request(world, service_point(world.xiamen, SCENARIO))
    path = urlsplit(made["request_uri"]).path
    assert world.xiamen.get(path).status_code == 200
    again = world.xiamen.post(path, data={"wallet_nonce": "x"})
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "request_not_found"


def test_a_response_is_taken_once(world: Alliance) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-3", 780)
    headers = service_point(world.xiamen, SCENARIO)
    asked = read(world, new_request(world, headers, mode="direct_post")["request"])
    presentation = P.present(attestation, disclose=list(asked.disclosures_for(attestation)), holder_key=holder,
                             aud=asked.request.claims["client_id"],
                             nonce=asked.request.claims["nonce"], now=NOW)  # fmt: skip
    form = {"vp_token": json.dumps({"credit_standing": [presentation]}),
            "state": asked.request.claims["state"]}  # fmt: skip
    path = urlsplit(asked.request.claims["response_uri"]).path
    assert world.xiamen.post(path, data=form).status_code == 200
    replayed = world.xiamen.post(path, data=form)
    assert replayed.status_code == 400
    assert "answered" in replayed.json()["error_description"]


def test_a_response_to_an_encrypted_request_in_the_clear_is_refused(world: Alliance) -> None:
    # a downgrade: the request asked for direct_post.jwt
    headers = service_point(world.xiamen, SCENARIO)
    asked = read(world, new_request(world, headers)["request"])
    answer = world.xiamen.post(
        urlsplit(asked.request.claims["response_uri"]).path,
        data={"vp_token": "{}", "state": asked.request.claims["state"]},
    )
    assert answer.status_code == 400
    assert "encrypted" in answer.json()["error_description"]
    assert (
        result(
            world,
            headers,
            {"transaction_id": asked.request.claims["response_uri"].rsplit("/", 1)[1]},
        )["outcome"]
        == "pending"
    )


def test_a_wrong_state_is_refused_and_leaves_the_request_open(world: Alliance) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-4", 780)
    headers = service_point(world.xiamen, SCENARIO)
    made = new_request(world, headers, mode="direct_post")
    asked = read(world, made["request"])
    path = urlsplit(asked.request.claims["response_uri"]).path
    wrong = world.xiamen.post(path, data={"vp_token": "{}", "state": "not-the-state"})
    assert wrong.status_code == 400
    assert answer_request(asked, attestation, holder_key=holder, now=NOW, client=world.xiamen) == {}
    assert result(world, headers, made)["outcome"] == "granted"


def test_a_response_after_the_request_expired_is_refused(world: Alliance, clock: Any) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-5", 780)
    headers = service_point(world.xiamen, SCENARIO)
    made = new_request(world, headers)
    asked = read(world, made["request"])
    clock.now = made["expires_at"] + 1
    with pytest.raises(InputError) as refused:
        answer_request(asked, attestation, holder_key=holder, now=clock.now, client=world.xiamen)
    assert refused.value.code == "invalid_request"
    assert result(world, headers, made)["outcome"] == "expired"


def test_a_response_encrypted_to_another_key_is_refused(world: Alliance) -> None:
    headers = service_point(world.xiamen, SCENARIO)
    asked = read(world, new_request(world, headers)["request"])
    other = ec_key(120)
    jwe = P.encrypt_ecdh_es(b'{"vp_token": {}}', other.public_key())  # type: ignore[arg-type]
    answer = world.xiamen.post(urlsplit(asked.request.claims["response_uri"]).path,
                               data={"response": jwe})  # fmt: skip
    assert answer.status_code == 400
    assert "jwe_invalid" in answer.json()["error_description"]


def test_a_wallet_that_declines_is_recorded(world: Alliance) -> None:
    headers = service_point(world.xiamen, SCENARIO)
    made = new_request(world, headers, mode="direct_post")
    asked = read(world, made["request"])
    answer = world.xiamen.post(
        urlsplit(asked.request.claims["response_uri"]).path,
        data={"error": "access_denied", "error_description": "the resident said no",
              "state": asked.request.claims["state"]},
    )  # fmt: skip
    assert answer.status_code == 200
    decided = result(world, headers, made)
    assert (decided["outcome"], decided["code"]) == ("declined", "access_denied")


def test_a_refused_presentation_is_the_service_points_to_see(world: Alliance) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-6", 780)
    headers = service_point(world.xiamen, SCENARIO)
    made = new_request(world, headers)
    asked = read(world, made["request"])
    tampered = Asked(
        P.VerifiedRequest({**asked.request.claims, "nonce": "another-nonce"},
                          asked.request.verifier, asked.request.query_id, asked.requested),
        asked.verifier, asked.verifier_name,
    )  # fmt: skip
    with pytest.raises(InputError) as refused:
        answer_request(tampered, attestation, holder_key=holder, now=NOW, client=world.xiamen)
    assert refused.value.code == "invalid_request"
    decided = result(world, headers, made)
    assert (decided["outcome"], decided["code"]) == ("refused", "nonce_mismatch")


def test_the_result_is_the_requesting_service_points_alone(world: Alliance) -> None:
    made = new_request(world, service_point(world.xiamen, SCENARIO))
    other = service_point(world.xiamen, SCENARIO, client_id="another-desk")
    answer = world.xiamen.get(f"/v1/presentation-requests/{made['transaction_id']}", headers=other)
    assert answer.status_code == 404


def test_without_a_certificate_the_node_asks_for_nothing(make_client: Any, tmp_path: Path) -> None:
    alliance = Alliance(make_client, tmp_path)
    node_state(alliance.xiamen).follower = follower(certified_registry(alliance, certify=()))
    answer = alliance.xiamen.post(
        "/v1/presentation-requests", json={"scenario": SCENARIO},
        headers=service_point(alliance.xiamen, SCENARIO),
    )  # fmt: skip
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "verifier_certificate_unavailable"


def test_a_request_needs_the_scenarios_scope(world: Alliance) -> None:
    answer = world.xiamen.post(
        "/v1/presentation-requests", json={"scenario": SCENARIO},
        headers=service_point(world.xiamen, "bike_deposit_free"),
    )  # fmt: skip
    assert answer.status_code == 403


def test_ids_are_kept_only_as_their_digests(world: Alliance) -> None:
    made = new_request(world, service_point(world.xiamen, SCENARIO))
    request_id = made["request_uri"].rsplit("/", 1)[1]
    with session(world.xiamen) as db:
        values = {row.value for row in db.exec(select(Nonce)).all()}
    assert request_id not in values
    assert made["transaction_id"] not in values


def test_the_database_holds_no_state_nor_encryption_key_of_a_request(world: Alliance) -> None:
    """docs/SECURITY.md section 19: the state and the response encryption key are
    derived from the transaction id with the node's key, so a copy of the database
    can't decrypt an answer nor forge one."""
    asked = read(world, new_request(world, service_point(world.xiamen, SCENARIO))["request"])
    state = asked.request.claims["state"]
    key = asked.request.claims["client_metadata"]["jwks"]["keys"][0]
    with session(world.xiamen) as db:
        stored = json.dumps([row.data for row in db.exec(select(Nonce)).all()])
    assert state not in stored
    assert key["x"] not in stored
    assert key["kid"] not in stored
    assert '"enc' not in stored
    assert '"state"' not in stored


# --- the wallet's checks ---------------------------------------------------------------------------


def test_the_wallet_refuses_a_verifier_outside_its_trust(world: Alliance) -> None:
    made = new_request(world, service_point(world.xiamen, SCENARIO))
    other_ca = P.ca_certificate(ec_key(121), name="another CA", not_before=NOW - DAY,
                                not_after=NOW + DAY, serial=9)  # fmt: skip
    with pytest.raises(InputError) as refused:
        read_request(made["request"], anchors=[other_ca], now=NOW, client=world.xiamen)
    assert refused.value.code == "certificate_untrusted"


def test_the_wallet_refuses_a_link_whose_client_id_is_not_the_certificates(world: Alliance) -> None:
    made = new_request(world, service_point(world.xiamen, SCENARIO))
    forged = made["request"].replace("x509_hash%3A", "x509_hash%3AAAAA")
    with pytest.raises(InputError) as refused:
        read(world, forged)
    assert refused.value.code == "client_id_mismatch"


@pytest.mark.parametrize(
    "link",
    [
        "openid4vp://?client_id=redirect_uri%3Ahttps%3A%2F%2Fevil&request=eyJ",
        "https://evil.example/x",
        "openid4vp://?client_id=x",
    ],
    ids=["unsigned_by_value", "not_openid4vp", "no_request_uri"],
)
def test_the_wallet_refuses_requests_it_cannot_trust(world: Alliance, link: str) -> None:
    with pytest.raises(InputError):
        read(world, link)


def test_a_service_point_whose_credentials_were_revoked_decides_nothing(world: Alliance) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-7", 780)
    headers = service_point(world.xiamen, SCENARIO)
    made = new_request(world, headers)
    asked = read(world, made["request"])
    with session(world.xiamen) as db:
        revoked = clients.revoke_client(db, "library-desk", actor="admin", now=NOW)
        desk = ClientIdentity(revoked.id, revoked.department, frozenset(revoked.scopes))
    forget_client(node_state(world.xiamen), "library-desk")  # as DELETE /v1/admin/clients/ does
    with pytest.raises(InputError) as refused:
        answer_request(asked, attestation, holder_key=holder, now=NOW, client=world.xiamen)
    assert refused.value.code == "invalid_request"
    # its credentials are gone: read what was recorded
    recorded = oid4vp.result(node_state(world.xiamen), desk, made["transaction_id"], now=NOW)
    assert (recorded["outcome"], recorded["code"]) == ("refused", "forbidden")


@pytest.mark.parametrize(("score", "granted"), [(780, True), (520, False)])
def test_a_tiered_scenario_gets_one_boolean_the_highest_reached(
    world: Alliance, score: int, granted: bool
) -> None:
    """DCQL claim sets (sections 6.3, 6.4.2): a scenario with tiers asks for each tier's
    score_at_least entry, highest first, each but the lowest only if true; the wallet
    discloses one boolean, and the node decides the tier from it."""
    kind = "hospital_treat_first_pay_later"
    attestation, holder = attest(world.fuzhou, FUZHOU, f"visitor-tier-{score}", score)
    headers = service_point(world.xiamen, kind, client_id="hospital-desk")
    made = world.xiamen.post("/v1/presentation-requests", json={"scenario": kind},
                             headers=headers).json()  # fmt: skip
    asked = read(world, made["request"])
    query = asked.request.claims["dcql_query"]["credentials"][0]
    assert len(query["claim_sets"]) == len(made["tiers"]) > 1
    [shown] = asked.disclosures_for(attestation)  # one boolean
    assert shown in made["disclose"]
    answer_request(asked, attestation, holder_key=holder, now=NOW, client=world.xiamen)
    decided = result(world, headers, made)
    assert decided["outcome"] == ("granted" if granted else "denied")
    tiers = [t["name"] for t in made["tiers"]]
    if granted:
        assert decided["tier"] == tiers[-1]  # 780 reaches the top tier
    else:
        assert shown == made["tiers"][0]["disclose"]  # the lowest, which says false
