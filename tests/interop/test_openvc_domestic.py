"""A peer no one here wrote accepts the domestic-service (家政) credential too (issue 18):
openvc-core (PyPI, pinned) verifies the ccx wallet's OpenID4VP answer to a DCQL query for
``urn:ccx:domestic-service:1`` (its issuer's key from the node's JWT VC issuer metadata,
the KB-JWT for the full x509_hash client identifier and the nonce, the status read from
the node's list), and sees only the claims asked. The verifier and the capture of the
answer are tests/interop/test_openvc_presentation.py's."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import time_machine
from openvc import verify_vp_token
from openvc.resolvers import default_status_list_token_resolver

import protocol as P
from tests.conftest import NOW, ec_key
from tests.interop.conftest import Https
from tests.interop.test_openvc_presentation import Verifier, captured_answer
from tests.node.issuing_helpers import seed_housekeeper
from wallet import accept_offer
from wallet._oid4vp import Asked

QUERY = P.dcql_query([["background_check_passed"], ["rating_at_least", "4"]], vct=P.DOMESTIC_VCT)


def _housekeeper(https: Https) -> None:
    seed_housekeeper(https.node.app.state.node.engine, "resident-1", [
        ("background_check_passed", 100, None),
        *[("service_rating", d, 4.0) for d in (5, 15, 25)],
    ])  # fmt: skip


@pytest.fixture
def credential(https: Https) -> tuple[str, P.PrivateKey]:
    _housekeeper(https)
    made = https.client.post(
        f"{https.node.url}/v1/me/credential-offers", headers=https.resident(),
        json={"credential_configuration_id": "ccx_domestic_service"},
    ).raise_for_status().json()  # fmt: skip
    holder = ec_key(133)
    token = accept_offer(made["offer"], holder_key=holder, now=NOW, client=https.client)
    return token, holder


def _asked(verifier: Verifier, nonce: str) -> Asked:
    asked = verifier.request("direct_post", nonce=nonce)
    claims: dict[str, Any] = {**asked.request.claims, "dcql_query": QUERY}
    token = P.sign_request_object(claims, verifier.key, [verifier.leaf])
    verified = P.verify_request_object(token, client_id=verifier.client_id,
                                       anchors=[verifier.ca], now=NOW)  # fmt: skip
    return Asked(verified, "https://verifier.example", None)


def test_openvc_verifies_the_wallets_answer_with_the_domestic_credential(
    https: Https, credential: tuple[str, P.PrivateKey]
) -> None:
    asked = _asked(Verifier(), "nonce-domestic-1")
    assert asked.request.vct == P.DOMESTIC_VCT
    form = captured_answer(asked, *credential)
    assert set(json.loads(form["vp_token"])) == {"domestic_service"}
    with time_machine.travel(NOW, tick=False):  # openvc's status check reads the clock
        result = verify_vp_token(
            json.loads(form["vp_token"]), nonce="nonce-domestic-1",
            client_id=asked.request.claims["client_id"], dcql_query=QUERY,
            jwt_vc_issuer_fetch=https.json,
            resolve_status_list_token=default_status_list_token_resolver(
                fetch=https.text, jwt_vc_issuer_fetch=https.json
            ),
            require_status=True, require_holder_binding=True,
            now=dt.datetime.fromtimestamp(NOW, tz=dt.UTC),
        )  # fmt: skip
    [presentation] = result.for_query("domestic_service")
    [verified] = presentation.credentials
    assert verified.issuer == https.node.url
    assert verified.claims["vct"] == P.DOMESTIC_VCT
    assert verified.claims["background_check_passed"] is True
    assert verified.claims["rating_at_least"] == {"4": True}  # that threshold alone
    for hidden in ("no_upheld_complaints_12m", "rating_count", "alliance_score", "band"):
        assert hidden not in verified.claims
