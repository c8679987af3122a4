"""The signed envelope of a mapping table (``typ: mapping-table+jwt``, DESIGN section 8).

The table's content is built and checked by ``mappings/``; here it is only signed and
verified with the alliance key, as canonical JSON, and hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from typing import Any

from ._errors import InvalidClaim, MissingClaim
from ._json import canonical_json
from ._jwk import PrivateKey, PublicKey, jwk_thumbprint, public_jwk
from ._jws import sign_jws, verify_with_pinned_key

__all__ = ["MAPPING_TABLE_TYP", "mapping_table_hash", "sign_mapping_table", "verify_mapping_table"]

MAPPING_TABLE_TYP = "mapping-table+jwt"
_ENVELOPE = ("iss", "iat")


def mapping_table_hash(table: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the table's canonical JSON, without the envelope (``iss``, ``iat``).

    This is the ``sha256`` an attestation's ``mapping`` claim and the registry's
    ``mapping_tables`` entries carry: the same content always has the same hash.
    """
    return hashlib.sha256(
        canonical_json({k: v for k, v in table.items() if k not in _ENVELOPE})
    ).hexdigest()


def sign_mapping_table(
    table: Mapping[str, Any], *, alliance: str, key: PrivateKey, now: int
) -> str:
    """Sign a mapping table's claims as the alliance ``alliance`` (its ``iss``)."""
    clash = set(_ENVELOPE).intersection(table)
    if clash:
        raise ValueError(f"the table must not carry envelope claims {sorted(clash)}")
    payload = {**table, "iss": alliance, "iat": now}
    kid = jwk_thumbprint(public_jwk(key))
    return sign_jws({"typ": MAPPING_TABLE_TYP, "kid": kid}, canonical_json(payload), key)


def verify_mapping_table(
    token: str, *, key: PublicKey, allowed_algs: Collection[str] = ("ES256", "EdDSA")
) -> dict[str, Any]:
    """Verify a mapping table's signature with the pinned alliance ``key``; return its claims.

    Checks the header rules of docs/PROTOCOL.md section 2 and that ``iss`` and ``iat`` are
    present. Whether the table is for the right alliance, scale and time is for the
    caller (``mappings.MappingTable.from_token``).
    """
    claims = verify_with_pinned_key(
        token, typ=MAPPING_TABLE_TYP, key=key, what="mapping table", allowed_algs=allowed_algs
    )
    if not isinstance(claims.get("iss"), str):
        raise MissingClaim("mapping table lacks a string iss (the alliance)")
    if isinstance(claims.get("iat"), bool) or not isinstance(claims.get("iat"), int):
        raise InvalidClaim("mapping table iat must be an integer")
    return claims
