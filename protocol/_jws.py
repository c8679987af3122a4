"""Compact JWS (RFC 7515) for ES256 and EdDSA: the signature envelope of every token.

Hand-written over ``cryptography`` rather than through PyJWT's ``decode`` because the
verifiers here need what PyJWT does not give: refusal of duplicate JSON member names,
of non-canonical base64url, and of ``jku``/``x5u``/``jwk``/``x5c`` headers outright;
the issuer key resolved from the *payload's* ``iss`` before the signature is checked;
and no clock read inside. Verification cost is dominated by the ECDSA operation; this
layer adds only parsing (see bench/verify.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ._errors import (
    AlgorithmKeyMismatch,
    AlgorithmNotAllowed,
    ForbiddenHeader,
    InvalidKid,
    InvalidSignature,
    MalformedToken,
    ProtocolError,
    TokenTooLarge,
    UnknownKid,
    UnsupportedCritical,
    WrongTyp,
)
from ._json import b64url_decode, b64url_encode, strict_json_loads
from ._jwk import PrivateKey, PublicKey, alg_for_key, jwk_thumbprint, public_jwk

__all__ = [
    "SUPPORTED_ALGS",
    "Jws",
    "check_header",
    "decode_jws",
    "sign_jws",
    "verify_jws_signature",
    "verify_with_pinned_key",
]

SUPPORTED_ALGS = frozenset({"ES256", "EdDSA"})
# Header parameters that point at keys. A verifier that followed them would let the
# token choose its own trust anchor; we refuse tokens that carry them at all.
_KEY_REFERENCE_HEADERS = ("jku", "x5u", "jwk", "x5c")
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_MAX_KID = 256


class Jws(NamedTuple):
    """A parsed, not yet verified, compact JWS (a NamedTuple: cheap to build per token)."""

    header: Mapping[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


@functools.lru_cache(maxsize=256)
def _decode_header(segment: str, what: str) -> Mapping[str, Any]:
    # Headers repeat: every attestation of one issuer key, every ES256 KB-JWT has the same
    # one. Parsing is a pure function of the text, so its result can be shared read-only.
    header = strict_json_loads(b64url_decode(segment, what=f"{what} header"), what=f"{what} header")
    if not isinstance(header, dict):
        raise MalformedToken(f"{what} header is not a JSON object")
    return MappingProxyType(header)


def decode_jws(token: str, *, what: str, max_size: int = 65536) -> Jws:
    """Split and decode a compact JWS without verifying it.

    Raises :class:`MalformedToken` (or :class:`TokenTooLarge`) when the token is not three
    canonical base64url segments whose first two are JSON objects.
    """
    if not isinstance(token, str):
        raise MalformedToken(f"{what} is not a string")
    if len(token) > max_size:
        raise TokenTooLarge(f"{what} is {len(token)} characters; the limit is {max_size}")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedToken(f"{what} must have 3 dot-separated parts, not {len(parts)}")
    header = _decode_header(parts[0], what)
    # Labels are added only on failure: formatting them up front costs on every token.
    try:
        payload = strict_json_loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except MalformedToken as exc:
        raise type(exc)(f"{what}: {exc.message}") from exc
    if type(payload) is not dict:
        raise MalformedToken(f"{what} payload is not a JSON object")
    signing_input = token[: len(parts[0]) + 1 + len(parts[1])].encode("ascii")
    return Jws(header, payload, signing_input, signature)


def check_header(
    header: Mapping[str, Any],
    *,
    typ: str,
    allowed_algs: Collection[str],
    what: str,
    require_kid: bool,
    allow_x5c: bool = False,
) -> str:
    """Check a JOSE header against our rules and return its ``alg``.

    Order: alg allow-list; key-reference headers refused (``x5c`` too, unless
    ``allow_x5c``: an attestation's, which the caller then checks against the registry's
    key); ``crit`` (we understand no extension); ``typ`` exact; ``kid`` a short string
    when required.
    """
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed_algs or alg not in SUPPORTED_ALGS:
        raise AlgorithmNotAllowed(
            f"{what} alg {alg!r} is not allowed; accepted: {sorted(allowed_algs)}"
        )
    for name in _KEY_REFERENCE_HEADERS:
        if name in header and not (allow_x5c and name == "x5c"):
            raise ForbiddenHeader(
                f"{what} header carries {name!r}; keys come only from the alliance registry"
            )
    if "crit" in header:
        raise UnsupportedCritical(
            f"{what} header lists crit extensions {header['crit']!r}; none is supported"
        )
    if header.get("typ") != typ:
        raise WrongTyp(f"{what} typ must be {typ!r}, got {header.get('typ')!r}")
    if require_kid or "kid" in header:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID:
            raise InvalidKid(
                f"{what} kid must be a non-empty string of at most {_MAX_KID} characters"
            )
    return alg


def verify_jws_signature(
    alg: str,
    key: PublicKey,
    signing_input: bytes,
    signature: bytes,
    *,
    what: str,
    error: type[ProtocolError] = InvalidSignature,
) -> None:
    """Verify a JWS signature; return nothing or raise ``error`` (or :class:`AlgorithmKeyMismatch`)."""
    try:
        if alg == "ES256":
            if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
                key.curve, ec.SECP256R1
            ):
                raise AlgorithmKeyMismatch(
                    f"{what} alg ES256 needs a P-256 key, got {type(key).__name__}"
                )
            if len(signature) != 64:
                raise error(f"{what} ES256 signature must be 64 bytes, got {len(signature)}")
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, signing_input, _ECDSA_SHA256)
        elif alg == "EdDSA":
            if not isinstance(key, ed25519.Ed25519PublicKey):
                raise AlgorithmKeyMismatch(
                    f"{what} alg EdDSA needs an Ed25519 key, got {type(key).__name__}"
                )
            key.verify(signature, signing_input)
        else:
            raise AlgorithmNotAllowed(f"{what} alg {alg!r} is not supported")
    except _CryptoInvalidSignature as exc:
        raise error(f"{what} signature does not verify") from exc


def sign_jws(header: Mapping[str, Any], payload_json: bytes, key: PrivateKey) -> str:
    """Sign ``payload_json`` (already serialised) under ``header``; ``alg`` is set from the key."""
    alg = alg_for_key(key)
    full_header = {"alg": alg, **{k: v for k, v in header.items() if k != "alg"}}
    header_b64 = b64url_encode(json.dumps(full_header, separators=(",", ":")).encode("utf-8"))
    signing_input = f"{header_b64}.{b64url_encode(payload_json)}".encode("ascii")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signing_input, _ECDSA_SHA256))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = key.sign(signing_input)
    return f"{signing_input.decode('ascii')}.{b64url_encode(signature)}"


def verify_with_pinned_key(
    token: str,
    *,
    typ: str,
    key: PublicKey,
    what: str,
    allowed_algs: Collection[str],
    max_size: int = 4 << 20,
) -> dict[str, Any]:
    """Verify a document signed by one known key (the alliance root key every node pins)
    and return its payload. A ``kid``, if present, must be that key's thumbprint."""
    jws = decode_jws(token, what=what, max_size=max_size)
    alg = check_header(jws.header, typ=typ, allowed_algs=allowed_algs, what=what, require_kid=False)
    if "kid" in jws.header and jws.header["kid"] != jwk_thumbprint(public_jwk(key)):
        raise UnknownKid(f"{what} is signed with a key other than the pinned alliance key")
    verify_jws_signature(alg, key, jws.signing_input, jws.signature, what=what)
    return jws.payload


class VerifiedSignatures:
    """Signatures verified already, remembered by their exact bytes and key: a bounded
    memo for a verifier that sees the same token again (a resident who presents the
    same attestation at a kiosk she visits twice: its issuer JWT is byte for byte the
    one checked before). Only successes are kept, under SHA-256 of the algorithm, the
    key (its SubjectPublicKeyInfo), the signing input and the signature, so a token
    changed in one bit, or checked against another key, is verified afresh. Oldest out
    first beyond ``size``. Safe to share between threads."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._seen: dict[bytes, None] = {}
        self._lock = threading.Lock()
        self.hits = 0

    def verify(
        self, alg: str, key: PublicKey, signing_input: bytes, signature: bytes, *, what: str
    ) -> None:
        """:func:`verify_jws_signature`, skipped for a signature verified before."""
        spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        digest = hashlib.sha256(b"\0".join((alg.encode(), spki, signing_input, signature))).digest()
        if digest in self._seen:
            self.hits += 1
            return
        verify_jws_signature(alg, key, signing_input, signature, what=what)
        with self._lock:
            self._seen[digest] = None
            while len(self._seen) > self.size:
                del self._seen[next(iter(self._seen))]

    def __len__(self) -> int:
        return len(self._seen)
