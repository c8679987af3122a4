"""OpenID4VCI key proofs (OpenID for Verifiable Credential Issuance 1.0, appendix F.1 and
F.4) and DPoP proofs (RFC 9449 section 4.3): what is accepted, and one test per way a
proof is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

import protocol as P
from protocol._jws import sign_jws
from tests.conftest import NOW, ec_key, ed_key

ISSUER = "https://xiamen.ccx.example"
TOKEN_URL = "https://xiamen.ccx.example/oid4vci/token"


def key_proof(
    key: Any = None,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> str:
    key = key or ec_key(1)
    head = {"typ": P.PROOF_TYP, "jwk": P.public_jwk(key), **(header or {})}
    body = {"aud": ISSUER, "iat": NOW, "nonce": "c-nonce-1", **(claims or {})}
    for name in drop:
        head.pop(name, None)
        body.pop(name, None)
    return sign_jws(head, json.dumps(body).encode(), key)


def verify(proof: str, **kwargs: Any) -> P.KeyProof:
    return P.verify_key_proof(proof, issuer=ISSUER, now=NOW, max_age=300, **kwargs)


@pytest.mark.parametrize("key", [ec_key(1), ed_key(1)], ids=["ES256", "EdDSA"])
def test_a_key_proof_gives_the_holder_key_and_its_nonce(key: Any) -> None:
    proof = verify(key_proof(key))
    assert proof.holder_jwk == P.public_jwk(key)
    assert (proof.nonce, proof.iat) == ("c-nonce-1", NOW)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"header": {"typ": "JWT"}}, P.WrongTyp),
        ({"drop": ("typ",)}, P.WrongTyp),
        ({"header": {"typ": "pop+jwt"}}, P.WrongTyp),
        ({"drop": ("jwk",)}, P.MissingClaim),
        ({"header": {"kid": "k1"}}, P.ForbiddenHeader),
        ({"header": {"x5c": ["MIIB"]}}, P.ForbiddenHeader),
        ({"header": {"jku": "https://evil.example/jwks"}}, P.ForbiddenHeader),
        ({"header": {"crit": ["exp"]}}, P.UnsupportedCritical),
        ({"claims": {"aud": "https://fuzhou.ccx.example"}}, P.AudienceMismatch),
        ({"claims": {"aud": [ISSUER]}}, P.AudienceNotString),
        ({"drop": ("aud",)}, P.MissingClaim),
        ({"claims": {"iat": NOW - 400}}, P.ProofIatOutOfWindow),
        ({"claims": {"iat": NOW + 60}}, P.ProofIatOutOfWindow),
        ({"claims": {"iat": "now"}}, P.InvalidClaim),
        ({"drop": ("nonce",)}, P.MissingClaim),
        ({"claims": {"nonce": 7}}, P.InvalidClaim),
        ({"claims": {"nonce": ""}}, P.InvalidClaim),
    ],
    ids=[
        "typ_jwt",
        "typ_missing",
        "typ_of_the_ccx_dialect",
        "no_jwk",
        "kid_instead",
        "x5c",
        "jku",
        "crit",
        "aud_another_issuer",
        "aud_an_array",
        "aud_missing",
        "iat_too_old",
        "iat_in_the_future",
        "iat_not_a_number",
        "nonce_missing",
        "nonce_not_a_string",
        "nonce_empty",
    ],
)
def test_a_key_proof_that_breaks_a_rule_is_refused(
    changes: dict[str, Any], error: type[P.ProtocolError]
) -> None:
    with pytest.raises(error):
        verify(key_proof(**changes))


def test_a_key_proof_signed_by_another_key_than_its_jwk_is_refused() -> None:
    proof = key_proof(ec_key(1), header={"jwk": P.public_jwk(ec_key(2))})
    with pytest.raises(P.InvalidSignature):
        verify(proof)


def test_a_key_proof_carrying_a_private_key_is_refused() -> None:
    jwk = {**P.public_jwk(ec_key(1)), "d": "AAAA"}
    with pytest.raises(P.InvalidKey):
        verify(key_proof(ec_key(1), header={"jwk": jwk}))


def test_a_key_proof_with_alg_none_is_refused() -> None:
    proof = key_proof()
    header = P.b64url_encode(
        json.dumps({"alg": "none", "typ": P.PROOF_TYP, "jwk": P.public_jwk(ec_key(1))}).encode()
    )
    with pytest.raises(P.AlgorithmNotAllowed):
        verify(f"{header}.{proof.split('.')[1]}.")


def test_an_algorithm_not_allowed_by_the_issuer_is_refused() -> None:
    with pytest.raises(P.AlgorithmNotAllowed):
        verify(key_proof(ed_key(1)), allowed_algs=("ES256",))


def test_an_oversized_key_proof_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(P.TokenTooLarge):
        verify(key_proof(claims={"pad": "x" * P.MAX_KEY_PROOF_SIZE}))


# --- DPoP ----------------------------------------------------------------------------------


def dpop(
    key: Any = None,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> str:
    key = key or ec_key(3)
    head = {"typ": P.DPOP_TYP, "jwk": P.public_jwk(key), **(header or {})}
    body = {"jti": "jti-1", "htm": "POST", "htu": TOKEN_URL, "iat": NOW, **(claims or {})}
    for name in drop:
        head.pop(name, None)
        body.pop(name, None)
    return sign_jws(head, json.dumps(body).encode(), key)


def check_dpop(proof: str, **kwargs: Any) -> P.DpopProof:
    return P.verify_dpop_proof(proof, method="POST", url=TOKEN_URL, now=NOW, **kwargs)


def test_a_dpop_proof_gives_its_key_thumbprint_and_jti() -> None:
    verified = check_dpop(dpop(ec_key(3), claims={"nonce": "server-1"}))
    assert verified.jkt == P.jwk_thumbprint(P.public_jwk(ec_key(3)))
    assert (verified.jti, verified.iat, verified.nonce) == ("jti-1", NOW, "server-1")


def test_htu_is_compared_without_query_fragment_and_default_port() -> None:
    proof = dpop(claims={"htu": "HTTPS://Xiamen.ccx.example:443/oid4vci/token?x=1#f"})
    assert check_dpop(proof).jti == "jti-1"


def test_a_dpop_proof_at_a_resource_needs_the_hash_of_its_access_token() -> None:
    token = "an-access-token"
    proof = dpop(claims={"ath": P.access_token_hash(token)})
    assert check_dpop(proof, access_token=token).jti == "jti-1"
    with pytest.raises(P.DpopBindingMismatch):
        check_dpop(proof, access_token="another-token")
    with pytest.raises(P.DpopBindingMismatch):
        check_dpop(dpop(), access_token=token)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"header": {"typ": "JWT"}}, P.WrongTyp),
        ({"drop": ("jwk",)}, P.MissingClaim),
        ({"header": {"kid": "k"}}, P.ForbiddenHeader),
        ({"claims": {"htm": "GET"}}, P.DpopBindingMismatch),
        (
            {"claims": {"htu": "https://xiamen.ccx.example/oid4vci/credential"}},
            P.DpopBindingMismatch,
        ),
        ({"claims": {"htu": "https://evil.example/oid4vci/token"}}, P.DpopBindingMismatch),
        ({"drop": ("jti",)}, P.InvalidClaim),
        ({"claims": {"iat": NOW - 1000}}, P.ProofIatOutOfWindow),
        ({"claims": {"nonce": 5}}, P.InvalidClaim),
    ],
    ids=[
        "typ",
        "no_jwk",
        "kid",
        "another_method",
        "another_path",
        "another_host",
        "no_jti",
        "too_old",
        "nonce_not_string",
    ],
)
def test_a_dpop_proof_that_breaks_a_rule_is_refused(
    changes: dict[str, Any], error: type[P.ProtocolError]
) -> None:
    with pytest.raises(error):
        check_dpop(dpop(**changes))


def test_a_dpop_proof_signed_by_another_key_is_refused() -> None:
    with pytest.raises(P.InvalidSignature):
        check_dpop(dpop(ec_key(3), header={"jwk": P.public_jwk(ec_key(4))}))
