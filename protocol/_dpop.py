"""DPoP proofs (RFC 9449), pure: what a client signs to show it holds the key its access
token is bound to. The server side (which tokens are bound, which ``jti`` were seen) is
the node's (node/services/oid4vci.py).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._errors import (
    AlgorithmNotAllowed,
    DpopBindingMismatch,
    ForbiddenHeader,
    InvalidClaim,
    MissingClaim,
    ProofIatOutOfWindow,
    UnsupportedCritical,
    WrongTyp,
)
from ._json import b64url_encode
from ._jwk import jwk_thumbprint, public_jwk, public_key_from_jwk
from ._jws import SUPPORTED_ALGS, decode_jws, verify_jws_signature

__all__ = ["DPOP_TYP", "MAX_DPOP_SIZE", "DpopProof", "access_token_hash", "verify_dpop_proof"]

DPOP_TYP = "dpop+jwt"
MAX_DPOP_SIZE = 4096
_MAX_JTI = 256


@dataclass(frozen=True, slots=True)
class DpopProof:
    """A verified DPoP proof: the thumbprint of its key (``jkt``, what a token is bound
    to), its ``jti`` (the caller refuses one seen before) and ``iat``, and the server
    ``nonce`` it carries, if any."""

    jkt: str
    jti: str
    iat: int
    nonce: str | None


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url of the SHA-256 of the access token's ASCII (RFC 9449 section 4.2)."""
    return b64url_encode(hashlib.sha256(access_token.encode("ascii")).digest())


def _target(url: str) -> tuple[str, str, int | None, str]:
    # RFC 9449 section 4.3: htu is compared without query and fragment; scheme and host
    # case-insensitively (RFC 3986 section 6.2.2.1), default ports normalised.
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port, parts.path or "/"


def verify_dpop_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: int,
    max_age: int = 300,
    leeway: int = 30,
    access_token: str | None = None,
    allowed_algs: Collection[str] = ("ES256", "EdDSA"),
) -> DpopProof:
    """Verify a DPoP proof for a request of ``method`` to ``url`` (RFC 9449 section 4.3).

    Header: ``typ`` ``dpop+jwt``, ``alg`` allowed, the public key in ``jwk``, no other key
    reference, no ``crit``; signature with that key; claims ``jti`` (a string),
    ``htm`` = ``method``, ``htu`` = ``url`` (scheme, host, port and path), ``iat``
    within ``max_age`` before ``now``; with ``access_token`` (at a resource), ``ath`` its
    hash. Returns the key's thumbprint and the ``jti``; replay (a ``jti`` seen before)
    and the binding to a token's ``jkt`` are the caller's. Raises a ProtocolError.
    """
    what = "DPoP proof"
    jws = decode_jws(proof, what=what, max_size=MAX_DPOP_SIZE)
    header = jws.header
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed_algs or alg not in SUPPORTED_ALGS:
        raise AlgorithmNotAllowed(f"{what} alg {alg!r} is not allowed")
    if header.get("typ") != DPOP_TYP:
        raise WrongTyp(f"{what} typ must be {DPOP_TYP!r}")
    if "crit" in header:
        raise UnsupportedCritical(f"{what} lists crit extensions; none is supported")
    for name in ("kid", "x5c", "jku", "x5u"):
        if name in header:
            raise ForbiddenHeader(f"{what} header carries {name!r}: the key goes in 'jwk'")
    if "jwk" not in header:
        raise MissingClaim(f"{what} header must carry the key in 'jwk'")
    key = public_key_from_jwk(header["jwk"])
    verify_jws_signature(alg, key, jws.signing_input, jws.signature, what=what)
    claims = jws.payload
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI:
        raise InvalidClaim(f"{what} jti must be a unique string")
    if claims.get("htm") != method:
        raise DpopBindingMismatch(f"{what} htm is not this request's method {method}")
    htu = claims.get("htu")
    if not isinstance(htu, str) or _target(htu) != _target(url):
        raise DpopBindingMismatch(f"{what} htu is not this request's URL {url}")
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
        raise InvalidClaim(f"{what} iat must be a NumericDate")
    if not now - max_age - leeway <= iat <= now + leeway:
        raise ProofIatOutOfWindow(f"{what} iat {int(iat)} is not within {max_age} s of now")
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise DpopBindingMismatch(f"{what} ath is not the hash of the access token presented")
    nonce = claims.get("nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise InvalidClaim(f"{what} nonce must be a string")
    return DpopProof(jwk_thumbprint(public_jwk(key)), jti, int(iat), nonce)
