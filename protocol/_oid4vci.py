"""What OpenID for Verifiable Credential Issuance 1.0 puts on the wire that a verifier
must check, pure: the key proof a wallet sends with its credential request (appendix
F.1, checks in F.4). The endpoints, grants and tokens around it are the node's
(node/services/oid4vci.py); docs/PROTOCOL.md section 9 describes the flow.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import (
    AlgorithmNotAllowed,
    AudienceMismatch,
    AudienceNotString,
    ForbiddenHeader,
    InvalidClaim,
    MissingClaim,
    ProofIatOutOfWindow,
    UnsupportedCritical,
    WrongTyp,
)
from ._jwk import PublicKey, public_jwk, public_key_from_jwk
from ._jws import SUPPORTED_ALGS, decode_jws, verify_jws_signature

__all__ = [
    "MAX_KEY_PROOF_SIZE",
    "PROOF_TYP",
    "KeyProof",
    "verify_key_proof",
]

PROOF_TYP = "openid4vci-proof+jwt"
MAX_KEY_PROOF_SIZE = 4096
# A proof names the key it proves by value (``jwk``); the others would name a key
# elsewhere, which an issuer would have to trust or fetch.
_OTHER_KEY_HEADERS = ("kid", "x5c", "jku", "x5u", "trust_chain")
_MAX_NONCE = 256


@dataclass(frozen=True, slots=True)
class KeyProof:
    """A verified key proof: the holder's public key (and its public JWK, exactly kty,
    crv, x(, y)), the ``c_nonce`` it signs (not yet used up: the caller does that),
    and its ``iat``."""

    holder_key: PublicKey
    holder_jwk: dict[str, str]
    nonce: str
    iat: int


def _header_key(header: Mapping[str, Any], allowed_algs: Collection[str], what: str) -> Any:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed_algs or alg not in SUPPORTED_ALGS:
        raise AlgorithmNotAllowed(
            f"{what} alg {alg!r} is not allowed; accepted: {sorted(allowed_algs)}"
        )
    if header.get("typ") != PROOF_TYP:
        raise WrongTyp(f"{what} typ must be {PROOF_TYP!r}, got {header.get('typ')!r}")
    if "crit" in header:
        raise UnsupportedCritical(f"{what} lists crit extensions; none is supported")
    for name in _OTHER_KEY_HEADERS:
        if name in header:
            raise ForbiddenHeader(f"{what} header carries {name!r}: name the key in 'jwk'")
    if "jwk" not in header:
        raise MissingClaim(f"{what} header must carry the holder key in 'jwk'")
    return alg


def verify_key_proof(
    proof: str,
    *,
    issuer: str,
    now: int,
    max_age: int,
    leeway: int = 30,
    allowed_algs: Collection[str] = ("ES256", "EdDSA"),
) -> KeyProof:
    """Verify an OpenID4VCI ``jwt`` key proof (OpenID4VCI 1.0 appendix F.1 and F.4).

    Checks, in order: size and shape; header ``alg`` in ``allowed_algs``, ``typ``
    ``openid4vci-proof+jwt``, no ``crit``, the key by value in ``jwk`` (public members
    only; ``kid``, ``x5c``, ``jku``, ``x5u``, ``trust_chain`` refused); the signature
    with that key; ``aud`` one string equal to ``issuer`` (the Credential Issuer
    Identifier); ``iat`` a NumericDate within ``max_age`` seconds before ``now`` (and
    ``leeway`` either side); ``nonce`` a non-empty string. Returns the key and the nonce;
    whether the nonce is one the issuer gave and still unused is the caller's to check.
    Raises a :class:`ProtocolError` subclass with its own code.
    """
    what = "key proof"
    jws = decode_jws(proof, what=what, max_size=MAX_KEY_PROOF_SIZE)
    alg = _header_key(jws.header, allowed_algs, what)
    holder_key = public_key_from_jwk(jws.header["jwk"])
    verify_jws_signature(alg, holder_key, jws.signing_input, jws.signature, what=what)
    claims = jws.payload
    aud = claims.get("aud")
    if aud is None:
        raise MissingClaim(f"{what} has no aud: the credential issuer's identifier")
    if not isinstance(aud, str):
        raise AudienceNotString(f"{what} aud must be one string, the credential issuer")
    if aud != issuer:
        raise AudienceMismatch(f"{what} is meant for {aud!r}, not this issuer ({issuer})")
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
        raise InvalidClaim(f"{what} iat must be a NumericDate")
    if not now - max_age - leeway <= iat <= now + leeway:
        raise ProofIatOutOfWindow(
            f"{what} iat {int(iat)} is not within {max_age} s before now ({now})"
        )
    nonce = claims.get("nonce")
    if nonce is None:
        raise MissingClaim(f"{what} has no nonce: ask the nonce endpoint for a c_nonce")
    if not isinstance(nonce, str) or not 0 < len(nonce) <= _MAX_NONCE:
        raise InvalidClaim(f"{what} nonce must be the c_nonce string the issuer gave")
    return KeyProof(holder_key, public_jwk(holder_key), nonce, int(iat))
