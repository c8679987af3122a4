"""Compact JWE with ECDH-ES on P-256 and AES-GCM (RFC 7516, RFC 7518 sections 4.6 and
5.3): the encrypted OpenID4VP response, ``response_mode=direct_post.jwt`` (OpenID4VP 1.0
section 8.3, HAIP 1.0 section 5).

Written over ``cryptography`` (ECDH, ``ConcatKDFHash``, ``AESGCM``) for the reason the
JWS layer is (protocol/_jws.py): one strict JOSE implementation, whose decryption refuses
what was not offered (any ``alg`` but ``ECDH-ES``, an ``enc`` not listed, ``zip``,
``crit``, a ``kid`` of another key, an ephemeral key that is not a valid P-256 point)
before any key agreement; interoperability is shown against jose (Node.js) and openvc.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Collection, Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from ._errors import JweInvalid, ProtocolError
from ._json import b64url_decode, b64url_encode, strict_json_loads
from ._jwk import public_jwk, public_key_from_jwk

__all__ = ["ENC_KEY_BITS", "concat_kdf", "decrypt_ecdh_es", "encrypt_ecdh_es"]

ENC_KEY_BITS = {"A128GCM": 128, "A256GCM": 256}
MAX_JWE_SIZE = 65536


def _with_length(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def concat_kdf(shared: bytes, enc: str, apu: bytes, apv: bytes) -> bytes:
    """The content key of direct key agreement (RFC 7518 section 4.6.2): Concat KDF
    (NIST SP 800-56A) over SHA-256 with AlgorithmID = ``enc``."""
    bits = ENC_KEY_BITS[enc]
    other = (
        _with_length(enc.encode("ascii"))
        + _with_length(apu)
        + _with_length(apv)
        + struct.pack(">I", bits)
    )
    return ConcatKDFHash(hashes.SHA256(), bits // 8, other).derive(shared)


def encrypt_ecdh_es(
    plaintext: bytes,
    recipient: ec.EllipticCurvePublicKey,
    *,
    enc: str = "A256GCM",
    kid: str | None = None,
    apu: bytes = b"",
    apv: bytes = b"",
) -> str:
    """``plaintext`` encrypted to ``recipient`` (a P-256 key) as a compact JWE."""
    if enc not in ENC_KEY_BITS:
        raise JweInvalid(f"enc {enc!r} is not one of {sorted(ENC_KEY_BITS)}")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    header: dict[str, Any] = {"alg": "ECDH-ES", "enc": enc, "epk": public_jwk(ephemeral)}
    if kid is not None:
        header["kid"] = kid
    if apu:
        header["apu"] = b64url_encode(apu)
    if apv:
        header["apv"] = b64url_encode(apv)
    key = concat_kdf(ephemeral.exchange(ec.ECDH(), recipient), enc, apu, apv)
    protected = b64url_encode(json.dumps(header, separators=(",", ":")).encode("utf-8"))
    iv = os.urandom(12)
    sealed = AESGCM(key).encrypt(iv, plaintext, protected.encode("ascii"))
    ciphertext, tag = sealed[:-16], sealed[-16:]
    return ".".join(
        (protected, "", b64url_encode(iv), b64url_encode(ciphertext), b64url_encode(tag))
    )


def _header(segment: str) -> Mapping[str, Any]:
    try:
        header = strict_json_loads(b64url_decode(segment, what="JWE header"), what="JWE header")
    except ProtocolError as exc:
        raise JweInvalid(exc.message) from exc
    if not isinstance(header, dict):
        raise JweInvalid("the JWE header is not a JSON object")
    return header


def decrypt_ecdh_es(
    token: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    allowed_enc: Collection[str] = ("A128GCM", "A256GCM"),
    kid: str | None = None,
    max_size: int = MAX_JWE_SIZE,
) -> tuple[Mapping[str, Any], bytes]:
    """The header and plaintext of a compact JWE made for ``key`` with ECDH-ES (direct
    key agreement). With ``kid``, a ``kid`` in the header must be that one (OpenID4VP
    section 8.3). Raises :class:`JweInvalid`."""
    if not isinstance(token, str) or len(token) > max_size:
        raise JweInvalid(f"the JWE is not a string of at most {max_size} characters")
    parts = token.split(".")
    if len(parts) != 5:
        raise JweInvalid(f"a compact JWE has 5 dot-separated parts, not {len(parts)}")
    protected, encrypted_key, iv_b64, ciphertext_b64, tag_b64 = parts
    header = _header(protected)
    if header.get("alg") != "ECDH-ES":
        raise JweInvalid(f"JWE alg must be ECDH-ES, got {header.get('alg')!r}")
    enc = header.get("enc")
    if enc not in allowed_enc or enc not in ENC_KEY_BITS:
        raise JweInvalid(f"JWE enc {enc!r} was not offered; offered: {sorted(allowed_enc)}")
    for name in ("zip", "crit", "jku", "x5u", "x5c", "jwk"):
        if name in header:
            raise JweInvalid(f"the JWE header carries {name!r}, which is not accepted")
    if kid is not None and "kid" in header and header["kid"] != kid:
        raise JweInvalid("the JWE was made for another key (kid)")
    if encrypted_key:
        raise JweInvalid("ECDH-ES (direct) has an empty encrypted key part")
    epk = header.get("epk")
    if not isinstance(epk, dict) or epk.get("kty") != "EC" or epk.get("crv") != "P-256":
        raise JweInvalid("the JWE's epk must be a P-256 public key")
    try:
        ephemeral = public_key_from_jwk(epk)
        apu = b64url_decode(header["apu"], what="apu") if "apu" in header else b""
        apv = b64url_decode(header["apv"], what="apv") if "apv" in header else b""
        iv = b64url_decode(iv_b64, what="JWE iv")
        ciphertext = b64url_decode(ciphertext_b64, what="JWE ciphertext")
        tag = b64url_decode(tag_b64, what="JWE tag")
    except (ProtocolError, TypeError) as exc:
        raise JweInvalid(f"the JWE is malformed: {exc}") from exc
    if not isinstance(ephemeral, ec.EllipticCurvePublicKey):
        raise JweInvalid("the JWE's epk must be a P-256 public key")
    if len(iv) != 12 or len(tag) != 16:
        raise JweInvalid("AES-GCM needs a 96-bit iv and a 128-bit tag")
    content_key = concat_kdf(key.exchange(ec.ECDH(), ephemeral), enc, apu, apv)
    try:
        plaintext = AESGCM(content_key).decrypt(iv, ciphertext + tag, protected.encode("ascii"))
    except InvalidTag as exc:
        raise JweInvalid("the JWE does not decrypt with this key") from exc
    return header, plaintext
