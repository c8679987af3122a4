"""Attacks on OpenID4VP presentations (docs/SECURITY.md section 19): a response replayed
to another request or to another city, a request injected from elsewhere, a downgrade to
an unsigned request or a response in the clear, and a relay of a genuine request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

import protocol as P
from cli import InputError
from tests.conftest import NOW
from tests.node.issuing_helpers import node_state
from tests.node.oid4vp_helpers import ca_der, certified_registry, follower
from tests.node.test_verifications import FUZHOU, XIAMEN, Alliance, attest, service_point
from wallet._oid4vp import Asked, answer_request, read_request

SCENARIO = "library_deposit_free"


@pytest.fixture
def world(make_client: Any, tmp_path: Path) -> Alliance:
    alliance = Alliance(make_client, tmp_path)
    token = certified_registry(alliance, certify=(XIAMEN, FUZHOU))
    node_state(alliance.xiamen).follower = follower(token)
    node_state(alliance.fuzhou).follower = follower(token)
    return alliance


def request_at(node: TestClient, headers: dict[str, str], mode: str = "direct_post") -> Asked:
    made = node.post("/v1/presentation-requests", json={"scenario": SCENARIO,
                     "response_mode": mode}, headers=headers).json()  # fmt: skip
    return read_request(made["request"], anchors=[ca_der()], now=NOW, client=node)


def plain_answer(asked: Asked, attestation: str, holder: Any) -> dict[str, str]:
    presentation = P.present(attestation, disclose=list(asked.disclosures_for(attestation)),
                             holder_key=holder, aud=asked.request.claims["client_id"],
                             nonce=asked.request.claims["nonce"], now=NOW)  # fmt: skip
    return {"vp_token": json.dumps({P.CREDENTIAL_QUERY_ID: [presentation]}),
            "state": asked.request.claims["state"]}  # fmt: skip


def test_a_response_replayed_to_another_request_of_the_same_node_is_refused(
    world: Alliance,
) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "replayed-1", 780)
    headers = service_point(world.xiamen, SCENARIO)
    first, second = request_at(world.xiamen, headers), request_at(world.xiamen, headers)
    form = plain_answer(first, attestation, holder)
    form["state"] = second.request.claims["state"]  # the thief knows the other state, even
    refused = world.xiamen.post(urlsplit(second.request.claims["response_uri"]).path, data=form)
    assert refused.status_code == 400
    assert "nonce_mismatch" in refused.json()["error_description"]


def test_a_response_replayed_to_another_city_is_refused(world: Alliance) -> None:
    """The KB-JWT's aud is the full client id of the node that asked (B.3.6): Fuzhou's
    verifier, with another certificate, refuses what Xiamen was sent."""
    attestation, holder = attest(world.fuzhou, FUZHOU, "replayed-2", 780)
    at_xiamen = request_at(world.xiamen, service_point(world.xiamen, SCENARIO))
    at_fuzhou = request_at(
        world.fuzhou, service_point(world.fuzhou, SCENARIO, client_id="fuzhou-desk")
    )
    assert at_xiamen.request.claims["client_id"] != at_fuzhou.request.claims["client_id"]
    form = plain_answer(at_xiamen, attestation, holder)
    form["state"] = at_fuzhou.request.claims["state"]
    refused = world.fuzhou.post(urlsplit(at_fuzhou.request.claims["response_uri"]).path,
                                data=form)  # fmt: skip
    assert refused.status_code == 400
    assert "aud_mismatch" in refused.json()["error_description"]


def test_a_response_replayed_to_the_same_request_is_refused(world: Alliance) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "replayed-3", 780)
    asked = request_at(world.xiamen, service_point(world.xiamen, SCENARIO))
    form = plain_answer(asked, attestation, holder)
    path = urlsplit(asked.request.claims["response_uri"]).path
    assert world.xiamen.post(path, data=form).status_code == 200
    assert world.xiamen.post(path, data=form).status_code == 400


def test_a_request_injected_from_elsewhere_is_refused_by_the_wallet(world: Alliance) -> None:
    """Mix-up: a link naming Xiamen's client id but a request object that another key
    signed (the attacker's, under the same CA or not) does not pass the wallet."""
    made = world.xiamen.post("/v1/presentation-requests", json={"scenario": SCENARIO},
                             headers=service_point(world.xiamen, SCENARIO)).json()  # fmt: skip
    fuzhou_made = world.fuzhou.post(
        "/v1/presentation-requests", json={"scenario": SCENARIO},
        headers=service_point(world.fuzhou, SCENARIO, client_id="fuzhou-desk"),
    ).json()  # fmt: skip
    # Xiamen's client id with Fuzhou's request object: the leaf is not the one named
    mixed = "openid4vp://?" + urlencode(
        {"client_id": made["client_id"], "request_uri": fuzhou_made["request_uri"]}
    )
    with pytest.raises(InputError) as refused:
        read_request(mixed, anchors=[ca_der()], now=NOW, client=world.fuzhou)
    assert refused.value.code == "client_id_mismatch"


@pytest.mark.parametrize(
    "link",
    [
        "openid4vp://?client_id=redirect_uri%3Ahttps%3A%2F%2Fevil.example%2Fcb"
        "&response_type=vp_token&response_mode=direct_post&nonce=n"
        "&response_uri=https%3A%2F%2Fevil.example%2Fcb&dcql_query=%7B%7D",
        "openid4vp://?client_id=x509_hash%3Aabc&request=eyJhbGciOiJub25lIn0.e30.",
    ],
    ids=["unsigned_parameters", "request_by_value"],
)
def test_a_downgrade_to_an_unsigned_request_is_refused_by_the_wallet(
    world: Alliance, link: str
) -> None:
    with pytest.raises(InputError) as refused:
        read_request(link, anchors=[ca_der()], now=NOW, client=world.xiamen)
    assert refused.value.code == "unsigned_request"


def test_a_response_in_the_clear_to_an_encrypted_request_is_refused(world: Alliance) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "downgraded", 780)
    asked = request_at(world.xiamen, service_point(world.xiamen, SCENARIO), "direct_post.jwt")
    refused = world.xiamen.post(urlsplit(asked.request.claims["response_uri"]).path,
                                data=plain_answer(asked, attestation, holder))  # fmt: skip
    assert refused.status_code == 400
    assert "encrypted" in refused.json()["error_description"]


def test_a_relayed_request_still_answers_the_verifier_that_signed_it(world: Alliance) -> None:
    """An attacker copies Xiamen's genuine request object to his own request_uri: the
    wallet accepts it (it is Xiamen's, signed), and sends the answer where Xiamen's
    object says, encrypted to Xiamen's key: the attacker learns nothing."""
    attestation, holder = attest(world.fuzhou, FUZHOU, "relayed", 780)
    made = world.xiamen.post("/v1/presentation-requests", json={"scenario": SCENARIO},
                             headers=service_point(world.xiamen, SCENARIO)).json()  # fmt: skip
    genuine = world.xiamen.get(urlsplit(made["request_uri"]).path).text
    posted: list[str] = []

    def attacker(request: httpx.Request) -> httpx.Response:
        if request.url.host == "evil.example":
            return httpx.Response(200, text=genuine)
        posted.append(str(request.url))
        return world.xiamen.post(request.url.path, content=request.content,
                                 headers={"content-type": "application/x-www-form-urlencoded"})  # type: ignore[return-value]  # fmt: skip

    link = "openid4vp://?" + urlencode(
        {"client_id": made["client_id"], "request_uri": "https://evil.example/r"}
    )
    with httpx.Client(transport=httpx.MockTransport(attacker)) as client:
        asked = read_request(link, anchors=[ca_der()], now=NOW, client=client)
        answer_request(asked, attestation, holder_key=holder, now=NOW, client=client)
    assert posted == [asked.request.claims["response_uri"]]
    assert urlsplit(posted[0]).netloc == urlsplit(XIAMEN).netloc
