"""JSON Web Keys for the two algorithms we sign with: ES256 (P-256) and EdDSA (Ed25519).

Written by hand rather than through ``jwt.algorithms.*.from_jwk`` because a verifier
must refuse a JWK that carries private members (PyJWT silently builds a private key
from one), must check the exact member set and lengths, and loads a holder key on
every presentation, where the direct ``from_encoded_point`` path is the cheapest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, TypeAlias

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ._errors import InvalidKey
from ._json import b64url_decode, b64url_encode, canonical_json

__all__ = [
    "PrivateKey",
    "PublicKey",
    "alg_for_key",
    "jwk_thumbprint",
    "private_jwk_members",
    "public_jwk",
    "public_key_from_jwk",
]

PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

# Members that only a private JWK has (RFC 7518 section 6, RFC 8037 section 2).
private_jwk_members = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def alg_for_key(key: PrivateKey | PublicKey) -> str:
    """The JWS ``alg`` for a key: ``ES256`` for P-256, ``EdDSA`` for Ed25519."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise InvalidKey(f"EC curve {key.curve.name} is not supported; use P-256")
        return "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise InvalidKey(f"unsupported key type {type(key).__name__}")


def public_jwk(key: PrivateKey | PublicKey) -> dict[str, str]:
    """The public JWK of a key, with exactly the required members (never a private one)."""
    pub = (
        key.public_key()
        if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
        else key
    )
    if alg_for_key(pub) == "ES256":
        point = pub.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(point[1:33]),
            "y": b64url_encode(point[33:]),
        }
    raw = pub.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}


def _member(jwk: Mapping[str, Any], name: str, size: int) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise InvalidKey(f"JWK member {name!r} is missing or not a string")
    try:
        raw = b64url_decode(value)
    except Exception as exc:
        raise InvalidKey(f"JWK member {name!r} is not base64url") from exc
    if len(raw) != size:
        raise InvalidKey(f"JWK member {name!r} must be {size} bytes, got {len(raw)}")
    return raw


def public_key_from_jwk(jwk: Any) -> PublicKey:
    """Load a public JWK (EC P-256 or OKP Ed25519).

    Raises :class:`InvalidKey` for anything else, including a JWK with private members.
    """
    if not isinstance(jwk, Mapping):
        raise InvalidKey("JWK is not a JSON object")
    leaked = private_jwk_members.intersection(jwk)
    if leaked:
        raise InvalidKey(f"JWK carries private members {sorted(leaked)}")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "EC" and crv == "P-256":
        point = b"\x04" + _member(jwk, "x", 32) + _member(jwk, "y", 32)
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except ValueError as exc:
            raise InvalidKey("JWK point is not on the P-256 curve") from exc
    if kty == "OKP" and crv == "Ed25519":
        raw = _member(jwk, "x", 32)
        if _ed25519_y(raw) in _ED25519_SMALL_ORDER_Y:
            raise InvalidKey("Ed25519 key is a small-order point; anyone could sign for it")
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    raise InvalidKey(f"unsupported JWK kty/crv {kty!r}/{crv!r}; use EC P-256 or OKP Ed25519")


# The eight points of small order on Ed25519 have y in {0, 1, -1, +-y8} (mod p). A
# key among them makes a signature check meaningless: (R = such a point, S = 0)
# verifies for every message with OpenSSL's cofactorless check. Reducing y mod p also
# catches their non-canonical encodings (y >= p). See "Taming the many EdDSAs"
# (Chalkias et al., 2020), section 4, and libsodium's ge25519_has_small_order.
_P25519 = 2**255 - 19
_Y8 = 0x7A03AC9277FDC74EC6CC392CFA53202A0F67100D760B3CBA4FD84D3D706A17C7
_ED25519_SMALL_ORDER_Y = frozenset({0, 1, _P25519 - 1, _Y8, _P25519 - _Y8})


def _ed25519_y(encoded: bytes) -> int:
    return (int.from_bytes(encoded, "little") & ((1 << 255) - 1)) % _P25519


_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the ``kid`` of every key we make."""
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty"))  # type: ignore[arg-type]
    if members is None:
        raise InvalidKey(f"no thumbprint for kty {jwk.get('kty')!r}")
    try:
        required = {name: jwk[name] for name in members}
    except KeyError as exc:
        raise InvalidKey(f"JWK lacks member {exc.args[0]!r}") from exc
    # RFC 7638 section 3.2: required members only, lexicographic order, no whitespace.
    return b64url_encode(hashlib.sha256(canonical_json(required)).digest())
