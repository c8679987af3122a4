"""A peer no one here wrote: the OpenWallet Foundation's OpenID4VC libraries
(@openid4vc/openid4vci, @openid4vc/oauth2 0.4.6 on npm, pinned with their hashes in
tests/interop/nodewallet/package-lock.json, installed by `make test` with `npm ci`)
drive a small Node.js wallet (nodewallet/wallet.mjs) against a ccx node on HTTPS on
loopback: it obtains the credit standing by the pre-authorized code grant and by the
authorization code grant, and presents it to the node's OpenID4VP verifier with
@openid4vc/openid4vp 0.4.6 (issue 14). The wallet's clock is the tests' (it replaces
Date), its TLS trusts the test CA (NODE_EXTRA_CA_CERTS).

Sections are OpenID4VCI 1.0's unless named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from jwt.algorithms import ECAlgorithm
from sqlmodel import Session

import protocol as P
from node.services import clients
from tests.conftest import NOW
from tests.interop.conftest import Https
from tests.node.issuing_helpers import jwks_resolver
from tests.node.oid4vp_helpers import ca_der, certified_token, follower

NODEWALLET = Path(__file__).parent / "nodewallet"


def node_wallet(https: Https, *args: str) -> dict[str, Any]:
    """Run the Node.js wallet with ``args``; its one JSON answer."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is not installed: the OpenID4VC peer tests need it (node >= 20)")
    if not (NODEWALLET / "node_modules" / "@openid4vc" / "openid4vci").is_dir():
        pytest.fail(f"{NODEWALLET}/node_modules is missing: `make test` runs npm ci there")
    env = {
        **os.environ,
        "NODE_EXTRA_CA_CERTS": str(https.authority),
        "CCX_WALLET_NOW": str(NOW),
    }
    done = subprocess.run(  # noqa: S603 (our own script, our arguments)
        [node, "wallet.mjs", *args],
        cwd=NODEWALLET, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    try:
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        pytest.fail(f"the Node wallet answered nothing usable:\n{done.stdout}\n{done.stderr}")
    return answer


def install_registry_on(state: Any, token: str) -> None:
    state.follower = follower(token)


def held(https: Https, answer: dict[str, Any]) -> P.VerifiedPresentation:
    """The credential the Node wallet got, presented with its holder key and verified by
    the ccx protocol library against the node's published keys."""
    assert "error" not in answer, answer
    holder = ECAlgorithm.from_jwk(json.dumps(answer["holder"]))  # PyJWT reads a private JWK
    presentation = P.present(
        answer["credential"], disclose=["band"], holder_key=holder, aud="v", nonce="n", now=NOW
    )
    jwks = https.json(f"{https.node.url}/.well-known/jwks.json")
    return P.verify_presentation(
        presentation,
        resolve_issuer_key=jwks_resolver(jwks, https.node.url),
        aud="v",
        nonce="n",
        now=NOW,
    )


def test_the_node_wallet_gets_the_credential_by_the_pre_authorized_code_grant(
    https: Https,
) -> None:
    made = https.offer(cross_device=True)
    answer = node_wallet(https, "pre-authorized", made["offer"], made["tx_code"])
    assert answer.get("version") == "V1", answer  # the library read our metadata as 1.0
    assert answer["token_type"] == "DPoP"  # RFC 9449: the library asked for a bound token
    verified = held(https, answer)
    assert verified.issuer == https.node.url
    assert verified.disclosed == {"band": "good"}


def test_the_node_wallet_gets_the_credential_by_the_authorization_code_grant(
    https: Https,
) -> None:
    # PAR (RFC 9126), PKCE S256, DPoP, the dev IdP's login walked by fetch, iss (RFC 9207)
    answer = node_wallet(https, "authorization-code", https.node.url, "resident-1")
    assert answer["token_type"] == "DPoP"
    verified = held(https, answer)
    assert verified.issuer == https.node.url
    assert verified.disclosed == {"band": "good"}


def test_the_node_wallet_reports_the_issuers_refusal(https: Https) -> None:
    made = https.offer(cross_device=True)
    answer = node_wallet(https, "pre-authorized", made["offer"], "000000")
    assert "error" in answer
    assert "invalid_grant" in json.dumps(answer)


@pytest.mark.parametrize("mode", ["direct_post.jwt", "direct_post"])
def test_the_node_wallet_presents_to_our_verifier(https: Https, tmp_path: Path, mode: str) -> None:
    """OpenID4VP 1.0 with @openid4vc/openid4vp 0.4.6: the library resolves our request
    (x509_hash, the x5c chain checked by the wallet's callback against the alliance CA),
    reads the DCQL query, encrypts to our key (direct_post.jwt, section 8.3) or not, and
    our response endpoint decides; the service point sees the grant."""
    state = https.node.app.state.node
    jwks = https.json(f"{https.node.url}/.well-known/jwks.json")
    install_registry_on(state, certified_token([(https.node.url, "xiamen", jwks, "active")],
                                               certify=(https.node.url,)))  # fmt: skip
    with Session(state.engine) as db:
        _, secret = clients.create_client(
            db, client_id="library-desk", department="culture",
            scopes=["verify:library_deposit_free"], actor="admin", now=NOW,
        )  # fmt: skip
    desk = {"Authorization": f"Bearer {secret}"}
    offer = https.offer(cross_device=True)
    held = node_wallet(https, "pre-authorized", offer["offer"], offer["tx_code"])
    made = https.client.post(
        f"{https.node.url}/v1/presentation-requests",
        json={"scenario": "library_deposit_free", "response_mode": mode}, headers=desk,
    ).json()  # fmt: skip
    ca = tmp_path / "alliance-ca.pem"
    ca.write_bytes(x509.load_der_x509_certificate(ca_der()).public_bytes(Encoding.PEM))
    answer = node_wallet(
        https, "present", made["request"], held["credential"], json.dumps(held["holder"]), str(ca)
    )
    assert answer.get("status") == 200, answer
    assert answer["version"] == 100  # the library took our request for 1.0 final
    assert answer["client_id"] == made["client_id"]  # the KB-JWT's aud (B.3.6)
    assert answer["mode"] == mode
    decided = https.client.get(
        f"{https.node.url}/v1/presentation-requests/{made['transaction_id']}", headers=desk
    ).json()
    assert decided["outcome"] == "granted", decided
