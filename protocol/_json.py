"""Strict JSON and base64url, the two encodings every token here is made of.

Parsing refuses what lenient parsers let through, because a parser differential is a
signature bypass: duplicate member names (RFC 8259 leaves them undefined; RFC 7515
section 5.2 lets a JWS parser reject them, and we do), NaN and Infinity, and base64url
that is padded, uses another alphabet, or is not in canonical form (where two texts
would decode to the same bytes, a one-character change could go unnoticed).
"""

from __future__ import annotations

import binascii
import json
import re
from typing import Any

from ._errors import DuplicateJsonKey, MalformedToken

__all__ = ["b64url_decode", "b64url_encode", "canonical_json", "strict_json_loads"]


_FROM_STD = bytes.maketrans(b"+/", b"-_")


def b64url_encode(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return binascii.b2a_base64(data, newline=False).translate(_FROM_STD, b"=").decode("ascii")


# bytes.translate to the standard alphabet, mapping '+', '/' and '=' to an invalid byte,
# then binascii's strict mode, refuses every character outside the base64url alphabet
# without a regular expression (this runs several times per presentation).
_TO_STD = bytes.maketrans(b"-_+/=", b"+/***")
_PAD = (b"", b"", b"==", b"=")


def b64url_decode(text: str, *, what: str = "segment") -> bytes:
    """Decode canonical, unpadded base64url; raise :class:`MalformedToken` otherwise."""
    if not isinstance(text, str):
        raise MalformedToken(f"{what} is not a string")
    rem = len(text) % 4
    if rem == 1:
        raise MalformedToken(f"{what} has an impossible base64url length")
    try:
        data = binascii.a2b_base64(
            text.encode("ascii").translate(_TO_STD) + _PAD[rem], strict_mode=True
        )
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise MalformedToken(f"{what} is not valid base64url") from exc
    # The last character may carry unused low bits; only the encoding with those bits
    # zero is canonical (RFC 4648 section 3.5). Check them without re-encoding.
    if rem and text[-1] not in _CANONICAL_LAST[rem]:
        raise MalformedToken(f"{what} is not canonical base64url")
    return data


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# With 2 characters left over (one byte) the last character holds 2 data bits and 4 zero
# bits, so it must be a multiple of 16; with 3 left over (two bytes), 4 data bits and 2
# zero bits: a multiple of 4.
_CANONICAL_LAST = {
    2: frozenset(_ALPHABET[i] for i in range(0, 64, 16)),
    3: frozenset(_ALPHABET[i] for i in range(0, 64, 4)),
}


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise DuplicateJsonKey(f"duplicate JSON member name {name!r}")
            seen.add(name)
    return obj


def _refuse_constant(name: str) -> Any:
    raise MalformedToken(f"JSON constant {name} is not allowed")


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder(object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)


def strict_json_loads(data: bytes | str, *, what: str = "JSON") -> Any:
    """Parse UTF-8 JSON, refusing duplicate member names, NaN/Infinity and trailing data."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value, end = _DECODER.raw_decode(text, _WS.match(text).end())  # type: ignore[union-attr]
    except MalformedToken:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedToken(f"{what} is not valid JSON") from exc
    if end != len(text) and text[end:].strip(" \t\n\r"):
        raise MalformedToken(f"{what} has data after the JSON value")
    return value


def canonical_json(value: Any) -> bytes:
    """Deterministic UTF-8 JSON: sorted keys, no insignificant whitespace, no NaN.

    Used for everything we hash or sign as a document (registry, mapping tables), so
    that the same content always yields the same bytes and the same sha256.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
