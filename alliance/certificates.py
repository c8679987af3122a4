"""The alliance as certificate authority of its members' OpenID4VP requests (issue 14;
docs/PROTOCOL.md section 11).

The root key that signs the registry also signs X.509 certificates: one self-signed CA
certificate, and a leaf for every member key the registry lists, naming the member's id
(its URI) as subject alternative name. Both ride in the registry (``verifier_ca``, and
``certificates`` by ``kid`` in each member), so a node gets its certificate the way it
gets everything else from the alliance: signed by the root, continuing the chain. A
wallet that trusts the CA learns from a request's leaf which member asks.

Certificates are made once and kept in ``alliance.json``: republishing does not change
them; a new member key gets its own at the next publish; a removed key's goes with it.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography import x509

import protocol as P
from alliance.state import AllianceState

__all__ = ["CA_LIFETIME", "LEAF_LIFETIME", "certify"]

CA_LIFETIME = 10 * 365 * 86400
LEAF_LIFETIME = 397 * 86400  # about 13 months, the Web PKI's ceiling
BACKDATE = 3600  # seconds of clock skew between the alliance host and a wallet


def _b64(der: bytes) -> str:
    return base64.b64encode(der).decode("ascii")


def _serial() -> int:
    return secrets.randbits(127) | 1  # positive, non-zero, at most 20 octets (RFC 5280 4.1.2.2)


def _ca_fits(state: AllianceState, root: P.PrivateKey, now: int) -> bool:
    current = state.certificates.get("ca")
    if not current:
        return False
    ca = x509.load_der_x509_certificate(base64.b64decode(current))
    same_key = P.public_jwk(ca.public_key()) == P.public_jwk(root.public_key())  # type: ignore[arg-type]
    return same_key and ca.not_valid_after_utc.timestamp() > now + LEAF_LIFETIME


def _leaf_fits(value: str | None, jwk: Mapping[str, Any], ca_der: bytes, now: int) -> bool:
    if not value:
        return False
    leaf = x509.load_der_x509_certificate(base64.b64decode(value))
    issued_by_ca = leaf.issuer == x509.load_der_x509_certificate(ca_der).subject
    public = {k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk}
    same_key = P.public_jwk(leaf.public_key()) == public  # type: ignore[arg-type]
    return issued_by_ca and same_key and leaf.not_valid_after_utc.timestamp() > now


def certify(state: AllianceState, root: P.PrivateKey, *, now: int) -> AllianceState:
    """``state`` with a CA certificate of ``root`` and a leaf for every member key, each
    kept if it still fits (same key, still valid), made otherwise."""
    if _ca_fits(state, root, now):
        ca_der = base64.b64decode(state.certificates["ca"])
    else:
        ca_der = P.ca_certificate(
            root, name=f"{state.id} verifier CA", not_before=now - BACKDATE,
            not_after=now + CA_LIFETIME, serial=_serial(),
        )  # fmt: skip
    ca_changed = _b64(ca_der) != state.certificates.get("ca")
    leaves: dict[str, str] = {}
    kept: Mapping[str, str] = {} if ca_changed else state.certificates.get("members", {})
    for member in state.members:
        for jwk in member["jwks"]["keys"]:
            kid = jwk["kid"]
            if _leaf_fits(kept.get(kid), jwk, ca_der, now):
                leaves[kid] = kept[kid]
                continue
            not_after = now + LEAF_LIFETIME
            if isinstance(jwk.get("exp"), int):
                not_after = min(not_after, jwk["exp"])
            if not_after <= now:
                continue  # a retired key verifies old attestations; it asks nothing new
            leaves[kid] = _b64(
                P.leaf_certificate(
                    root,
                    ca_der,
                    P.public_key_from_jwk(jwk),
                    uri=member["id"],
                    name=str(member.get("name", member["id"])),
                    not_before=now - BACKDATE,
                    not_after=not_after,
                    serial=_serial(),
                )
            )
    return state.with_certificates({"ca": _b64(ca_der), "members": leaves})
