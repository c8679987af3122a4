"""A peer no one here wrote: polaris-oid4vp (PyPI, pinned), an OpenID4VP 1.0 + HAIP
verifier, runs on loopback (its own reference listener, plain HTTP on 127.0.0.1) and
judges the presentation the ccx wallet sends it (issue 14): the wallet checks polaris's
signed request object (x509_hash, its certificate trusted as a test anchor), reads its
DCQL query, discloses exactly what it asks, and answers encrypted (direct_post.jwt,
ECDH-ES on P-256; polaris accepts nothing else). The credential comes from a ccx node
on HTTPS over OpenID4VCI (ES256, which is all polaris accepts).

polaris reads the wall clock; the test sets it (time-machine), as it sets ours."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from polaris_oid4vp.serve import serve
from polaris_oid4vp.verifier import Verifier

import protocol as P
from cli import InputError
from tests.conftest import NOW, ec_key
from tests.interop.conftest import Https
from tests.node.servers import free_port
from wallet import accept_offer
from wallet._oid4vp import answer_request, read_request

DAY = 86400


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


class Polaris:
    """polaris's Verifier and listener, asking for ``claims`` of our credential."""

    def __init__(self, https: Https, claims: tuple[tuple[str, ...], ...]) -> None:
        ca_key, self.key = ec_key(140), ec_key(141)
        self.ca = P.ca_certificate(ca_key, name="polaris test CA", not_before=NOW - DAY,
                                   not_after=NOW + DAY, serial=1)  # fmt: skip
        leaf = P.leaf_certificate(
            ca_key, self.ca, self.key.public_key(), uri="https://polaris.test",
            name="polaris", not_before=NOW - DAY, not_after=NOW + DAY, serial=2,
        )  # fmt: skip
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        jwks = https.json(f"{https.node.url}/.well-known/jwks.json")["keys"]
        self.verifier = Verifier(
            client_cert_pem=_pem(leaf),
            client_key_pem=self.key.private_bytes(  # type: ignore[union-attr]
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            request_uri=f"{base}/request.jwt", response_uri=f"{base}/response",
            issuer_jwks=jwks, vct_values=(P.VCT,), claims=claims,
        )  # fmt: skip
        self.verdicts: list[tuple[int, Any, Any]] = []
        self.httpd = serve(self.verifier, host="127.0.0.1", port=port,
                           on_verdict=lambda *verdict: self.verdicts.append(verdict))  # fmt: skip

    def link(self) -> str:
        session, _ = self.verifier.new_request()
        return "openid4vp://?" + urlencode(self.verifier.authorization_request_params(session))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def credential(https: Https) -> tuple[str, P.PrivateKey]:
    holder = ec_key(142)
    token = accept_offer(https.offer()["offer"], holder_key=holder, now=NOW, client=https.client)
    return token, holder


@pytest.mark.parametrize(
    ("claims", "disclosed"),
    [((("band",),), {"band"}), ((("score_at_least", "600"),), {"score_at_least"})],
    ids=["band", "score_at_least.600"],
)
def test_polaris_accepts_the_ccx_wallets_presentation(
    https: Https, credential: tuple[str, P.PrivateKey], claims: Any, disclosed: set[str]
) -> None:
    polaris = Polaris(https, claims)
    try:
        with time_machine.travel(NOW, tick=False), httpx.Client(timeout=10) as client:
            asked = read_request(polaris.link(), anchors=[polaris.ca], now=NOW, client=client)
            assert asked.verifier == "https://polaris.test"
            assert asked.request.claims["response_mode"] == "direct_post.jwt"
            answer = answer_request(asked, credential[0], holder_key=credential[1], now=NOW,
                                    client=client)  # fmt: skip
    finally:
        polaris.close()
    [(status, body, verdict)] = polaris.verdicts
    assert status == 200, (body, verdict.code, verdict.reason)
    assert verdict.authentic, (verdict.code, verdict.reason)
    assert set(verdict.claims) >= disclosed
    assert "redirect_uri" in answer  # HAIP 5.1: polaris sends the wallet on


def test_polaris_refuses_a_presentation_made_for_another_verifier(
    https: Https, credential: tuple[str, P.PrivateKey]
) -> None:
    """B.3.6: the KB-JWT bound to another client id is refused by polaris too; the
    wallet reports polaris's refusal."""
    polaris = Polaris(https, (("band",),))
    try:
        with time_machine.travel(NOW, tick=False), httpx.Client(timeout=10) as client:
            asked = read_request(polaris.link(), anchors=[polaris.ca], now=NOW, client=client)
            forged = type(asked)(
                P.VerifiedRequest({**asked.request.claims, "client_id": "x509_hash:" + "A" * 43},
                                  asked.request.verifier, asked.request.query_id,
                                  asked.requested),
                asked.verifier, None,
            )  # fmt: skip
            with pytest.raises(InputError):
                answer_request(forged, credential[0], holder_key=credential[1], now=NOW,
                               client=client)  # fmt: skip
    finally:
        polaris.close()
    [(status, _, verdict)] = polaris.verdicts
    assert status == 400
    assert not verdict.authentic
