"""A peer no one here wrote: openvc-core (PyPI, pinned) verifies the OpenID4VP 1.0
answers the ccx wallet sends (issue 14): the encrypted one (direct_post.jwt, HAIP:
ECDH-ES on P-256, decrypted by openvc's own JWE code) and the plain one (direct_post),
the vp_token keyed by the DCQL query id, the KB-JWT bound to the full x509_hash client
identifier and the request's nonce, the credential's status read from our node's list.

openvc is the verifier here: the test signs the request object as a verifier would
(a CA and a leaf of its own), the wallet library checks it and answers, and the answer
is captured on its way to the response URI. The credential comes from a ccx node on
HTTPS over OpenID4VCI. Sections are OpenID4VP 1.0's."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import ec
from openvc import P256KeyAgreementKey, verify_encrypted_vp_response, verify_vp_token
from openvc.openid4vp import ClaimsInvalid
from openvc.resolvers import default_status_list_token_resolver

import protocol as P
from tests.conftest import NOW, ec_key
from tests.interop.conftest import Https
from wallet import accept_offer
from wallet._oid4vp import Asked, answer_request

DAY = 86400
RESPONSE_URI = "https://verifier.example/response"
QUERY = P.dcql_query([["band"]])


class Verifier:
    """A verifier outside the alliance: its CA, its leaf, its encryption key."""

    def __init__(self) -> None:
        self.ca_key, self.key = ec_key(130), ec_key(131)
        self.ca = P.ca_certificate(self.ca_key, name="openvc test verifier CA",
                                   not_before=NOW - DAY, not_after=NOW + DAY, serial=1)  # fmt: skip
        self.leaf = P.leaf_certificate(
            self.ca_key, self.ca, self.key.public_key(), uri="https://verifier.example",
            name="verifier", not_before=NOW - DAY, not_after=NOW + DAY, serial=2,
        )  # fmt: skip
        self.client_id = P.client_id_for(self.leaf)
        self.agreement = P256KeyAgreementKey(ec.generate_private_key(ec.SECP256R1()), "enc-1")

    def request(self, mode: str, nonce: str) -> Asked:
        claims: dict[str, Any] = {
            "aud": P.SELF_ISSUED_AUDIENCE, "client_id": self.client_id,
            "response_type": "vp_token", "response_mode": mode, "response_uri": RESPONSE_URI,
            "nonce": nonce, "state": "state-1", "dcql_query": QUERY, "iat": NOW,
            "exp": NOW + 300,
            "client_metadata": {
                "jwks": {"keys": [{**self.agreement.public_jwk(), "kid": "enc-1",
                                   "alg": "ECDH-ES"}]},
                "encrypted_response_enc_values_supported": ["A128GCM", "A256GCM"],
            },
        }  # fmt: skip
        token = P.sign_request_object(claims, self.key, [self.leaf])
        verified = P.verify_request_object(token, client_id=self.client_id, anchors=[self.ca],
                                           now=NOW)  # fmt: skip
        return Asked(verified, "https://verifier.example", None)


def captured_answer(asked: Asked, credential: str, holder: P.PrivateKey) -> dict[str, str]:
    """What the wallet posts to the response URI (the transport captures it)."""
    posted: list[dict[str, str]] = []

    def response_endpoint(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == RESPONSE_URI
        posted.append(dict(parse_qsl(request.content.decode())))
        return httpx.Response(200, json={})

    with httpx.Client(transport=httpx.MockTransport(response_endpoint)) as client:
        answer_request(asked, credential, holder_key=holder, now=NOW, client=client)
    return posted[0]


def _openvc_checks(https: Https) -> dict[str, Any]:
    return {
        "dcql_query": QUERY,
        "jwt_vc_issuer_fetch": https.json,
        "resolve_status_list_token": default_status_list_token_resolver(
            fetch=https.text, jwt_vc_issuer_fetch=https.json
        ),
        "require_status": True,
        "require_holder_binding": True,
        "now": dt.datetime.fromtimestamp(NOW, tz=dt.UTC),
    }


@pytest.fixture
def credential(https: Https) -> tuple[str, P.PrivateKey]:
    holder = ec_key(132)
    return accept_offer(https.offer()["offer"], holder_key=holder, now=NOW,
                        client=https.client), holder  # fmt: skip


def test_openvc_decrypts_and_verifies_the_wallets_encrypted_answer(
    https: Https, credential: tuple[str, P.PrivateKey]
) -> None:
    verifier = Verifier()
    asked = verifier.request("direct_post.jwt", nonce="nonce-enc-1")
    form = captured_answer(asked, *credential)
    assert set(form) == {"response"}  # section 8.3: the JWE alone
    with time_machine.travel(NOW, tick=False):  # openvc's status check reads the clock
        result = verify_encrypted_vp_response(
            form["response"], key=verifier.agreement, nonce="nonce-enc-1",
            client_id=verifier.client_id, **_openvc_checks(https),
        )  # fmt: skip
    [presentation] = result.for_query(P.CREDENTIAL_QUERY_ID)
    [verified] = presentation.credentials
    assert verified.issuer == https.node.url
    assert verified.claims["band"] == "good"
    assert "alliance_score" not in verified.claims  # only what the query asked (6.4.1)


def test_openvc_verifies_the_wallets_plain_answer(
    https: Https, credential: tuple[str, P.PrivateKey]
) -> None:
    verifier = Verifier()
    asked = verifier.request("direct_post", nonce="nonce-plain-1")
    form = captured_answer(asked, *credential)
    assert form["state"] == "state-1"
    with time_machine.travel(NOW, tick=False):
        result = verify_vp_token(json.loads(form["vp_token"]), nonce="nonce-plain-1",
                                 client_id=verifier.client_id, **_openvc_checks(https))  # fmt: skip
    [presentation] = result.for_query(P.CREDENTIAL_QUERY_ID)
    assert presentation.credentials[0].claims["band"] == "good"


def test_openvc_refuses_the_answer_for_another_verifier(
    https: Https, credential: tuple[str, P.PrivateKey]
) -> None:
    # B.3.6 / 14.8: the KB-JWT's aud is the full client id: another verifier can't use it
    verifier, other = Verifier(), "x509_hash:" + "A" * 43
    form = captured_answer(verifier.request("direct_post", nonce="nonce-2"), *credential)
    with time_machine.travel(NOW, tick=False), pytest.raises(ClaimsInvalid):
        verify_vp_token(json.loads(form["vp_token"]), nonce="nonce-2", client_id=other,
                        **_openvc_checks(https))  # fmt: skip
