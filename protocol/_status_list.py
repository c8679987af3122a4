"""Token Status Lists (draft-ietf-oauth-status-list): revocation without phoning home.

An issuer keeps one status value per attestation in a compressed bit array and serves
it signed as a ``statuslist+jwt``; a verifier fetches the whole list (herd privacy: the
issuer can't tell which attestation is being checked) and reads one entry.

Entry ``i`` of a list with ``bits`` bits per entry lives in byte ``i * bits // 8``,
starting at bit ``(i * bits) % 8`` counted from the least significant bit (draft
section 4.1), and the byte array is compressed with zlib (RFC 1950).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import (
    InvalidClaim,
    MissingClaim,
    ProtocolError,
    StatusIndexOutOfRange,
    StatusListExpired,
    StatusListMalformed,
    StatusListSubjectMismatch,
    StatusListTooLarge,
    UnknownKid,
)
from ._json import b64url_decode, b64url_encode
from ._jwk import PrivateKey
from ._jws import check_header, decode_jws, sign_jws, verify_jws_signature
from ._sd_jwt import IssuerKeyResolver

__all__ = [
    "STATUS_LIST_TYP",
    "STATUS_REVOKED",
    "STATUS_SUSPENDED",
    "STATUS_VALID",
    "StatusList",
    "VerifiedStatusList",
    "decode_status_list",
    "encode_status_list",
    "sign_status_list",
    "status_at",
    "verify_status_list",
]

STATUS_LIST_TYP = "statuslist+jwt"
STATUS_VALID = 0
STATUS_REVOKED = 1  # "INVALID" in the draft
STATUS_SUSPENDED = 2
_ALLOWED_BITS = (1, 2, 4, 8)
DEFAULT_MAX_BYTES = 1 << 20  # 1 MiB decompressed: 8 Mi entries at 1 bit, 1 Mi at 8 bits


class StatusList:
    """A mutable status array of ``size`` entries of ``bits`` bits each."""

    __slots__ = ("_data", "bits")

    def __init__(self, size: int, bits: int = 2, *, data: bytes | bytearray | None = None) -> None:
        if bits not in _ALLOWED_BITS:
            raise ValueError(f"bits must be one of {_ALLOWED_BITS}, not {bits}")
        if size < 1:
            raise ValueError("a status list needs at least one entry")
        self.bits = bits
        nbytes = (size * bits + 7) // 8
        if data is None:
            self._data = bytearray(nbytes)
        else:
            if len(data) != nbytes:
                raise ValueError(
                    f"{size} entries of {bits} bits need {nbytes} bytes, got {len(data)}"
                )
            self._data = bytearray(data)

    def __len__(self) -> int:
        return len(self._data) * 8 // self.bits

    def _locate(self, idx: int) -> tuple[int, int, int]:
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < len(self):
            raise StatusIndexOutOfRange(f"status index {idx!r} is outside 0..{len(self) - 1}")
        bit = idx * self.bits
        return bit >> 3, bit & 7, (1 << self.bits) - 1

    def __getitem__(self, idx: int) -> int:
        byte, shift, mask = self._locate(idx)
        return (self._data[byte] >> shift) & mask

    def __setitem__(self, idx: int, value: int) -> None:
        byte, shift, mask = self._locate(idx)
        if not 0 <= value <= mask:
            raise ValueError(f"status value {value} does not fit in {self.bits} bits")
        self._data[byte] = (self._data[byte] & ~(mask << shift)) | (value << shift)

    def to_bytes(self) -> bytes:
        return bytes(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StatusList) and (self.bits, self._data) == (
            other.bits,
            other._data,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable


def status_at(status_list: StatusList, idx: int) -> int:
    """The status value at ``idx``; raises :class:`StatusIndexOutOfRange` outside the list."""
    return status_list[idx]


def encode_status_list(status_list: StatusList) -> dict[str, Any]:
    """The ``status_list`` claim: ``{"bits": n, "lst": base64url(zlib(bytes))}``."""
    return {
        "bits": status_list.bits,
        "lst": b64url_encode(zlib.compress(status_list.to_bytes(), 9)),
    }


def decode_status_list(claim: Any, *, max_bytes: int = DEFAULT_MAX_BYTES) -> StatusList:
    """Decode a ``status_list`` claim, refusing to inflate more than ``max_bytes``.

    Raises :class:`StatusListMalformed` or :class:`StatusListTooLarge` (a zlib bomb).
    """
    if not isinstance(claim, Mapping):
        raise StatusListMalformed("status_list is not a JSON object")
    bits, lst = claim.get("bits"), claim.get("lst")
    if isinstance(bits, bool) or bits not in _ALLOWED_BITS:
        raise StatusListMalformed(f"status_list.bits must be one of {_ALLOWED_BITS}")
    if not isinstance(lst, str):
        raise StatusListMalformed("status_list.lst must be a base64url string")
    try:
        compressed = b64url_decode(lst, what="status_list.lst")
    except ProtocolError as exc:
        raise StatusListMalformed(exc.message) from exc
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(compressed, max_bytes + 1)
    except zlib.error as exc:
        raise StatusListMalformed("status_list.lst is not zlib data") from exc
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise StatusListTooLarge(f"status list inflates beyond {max_bytes} bytes")
    if not inflater.eof or inflater.unused_data:
        raise StatusListMalformed("status_list.lst is truncated or has trailing data")
    if not data:
        raise StatusListMalformed("status list is empty")
    return StatusList(len(data) * 8 // bits, bits, data=data)


def sign_status_list(
    status_list: StatusList,
    *,
    uri: str,
    issuer: str,
    issuer_key: PrivateKey,
    kid: str,
    now: int,
    exp: int,
    ttl: int,
) -> str:
    """Sign a Status List Token (``typ: statuslist+jwt``) for the list served at ``uri``."""
    if not now < exp or ttl < 0:
        raise ValueError("a status list token needs now < exp and ttl >= 0")
    payload = {
        "iss": issuer,
        "sub": uri,
        "iat": now,
        "exp": exp,
        "ttl": ttl,
        "status_list": encode_status_list(status_list),
    }
    return sign_jws(
        {"typ": STATUS_LIST_TYP, "kid": kid},
        json.dumps(payload, separators=(",", ":")).encode(),
        issuer_key,
    )


@dataclass(frozen=True, slots=True)
class VerifiedStatusList:
    """A verified Status List Token."""

    uri: str
    issued_at: int
    expires_at: int
    ttl: int | None
    status_list: StatusList


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if value is None:
        raise MissingClaim(f"status list token lacks {name!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidClaim(f"status list token {name!r} must be an integer")
    return value


def verify_status_list(
    token: str,
    *,
    uri: str,
    issuer: str,
    resolve_issuer_key: IssuerKeyResolver,
    now: int,
    allowed_algs: Collection[str] = ("ES256", "EdDSA"),
    leeway: int = 30,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_size: int = 2 * DEFAULT_MAX_BYTES,
) -> VerifiedStatusList:
    """Verify a Status List Token fetched from ``uri`` for an attestation of ``issuer``.

    Checks header, signature with the issuer's registry key, ``iss`` (if present) equal to
    ``issuer``, ``sub == uri`` (a list can't be served in place of another), ``exp``, then
    decodes the list within ``max_bytes``.
    """
    what = "status list token"
    jws = decode_jws(token, what=what, max_size=max_size)
    alg = check_header(
        jws.header, typ=STATUS_LIST_TYP, allowed_algs=allowed_algs, what=what, require_kid=True
    )
    try:
        key = resolve_issuer_key(issuer, jws.header["kid"], alg)
    except ProtocolError:
        raise
    except Exception as exc:
        raise UnknownKid(f"no trusted key for status list issuer {issuer!r}") from exc
    verify_jws_signature(alg, key, jws.signing_input, jws.signature, what=what)
    claims = jws.payload
    if "iss" in claims and claims["iss"] != issuer:  # optional; when present, the issuer's
        raise InvalidClaim(f"{what} iss {claims['iss']!r} is not the issuer {issuer!r}")
    if claims.get("sub") != uri:
        raise StatusListSubjectMismatch(
            f"status list sub {claims.get('sub')!r} is not its uri {uri!r}"
        )
    iat, exp = _int_claim(claims, "iat"), _int_claim(claims, "exp")
    ttl = claims.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0):
        raise InvalidClaim(f"{what} ttl must be a non-negative integer")
    if now > exp + leeway:
        raise StatusListExpired(f"status list expired at {exp}; now is {now}")
    if "status_list" not in claims:
        raise MissingClaim(f"{what} lacks 'status_list'")
    return VerifiedStatusList(
        uri, iat, exp, ttl, decode_status_list(claims["status_list"], max_bytes=max_bytes)
    )
