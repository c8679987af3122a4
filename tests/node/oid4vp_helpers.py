"""Helpers for the OpenID4VP tests: a registry that carries the alliance CA (a
certificate of the tests' root key) and leaves for the members' keys."""

from __future__ import annotations

import base64
from typing import Any

import protocol as P
from alliance.state import DEFAULT_POLICY
from node.services.registry import RegistryFollower
from tests.conftest import ALLIANCE, NOW, ec_key
from tests.node.test_verifications import THRESHOLDS, XIAMEN, Alliance

DAY = 86400
# The alliance root key of these tests, and so the CA: P-256, as `ccx alliance init`
# makes by default. (test_verifications' ROOT is Ed25519: X.509 validators built on the
# Web PKI's rules, openvc's among them, refuse an Ed25519 CA.)
CA_ROOT = ec_key(78)


def follower(token: str) -> RegistryFollower:
    """A registry follower pinning CA_ROOT that holds ``token``."""
    held = RegistryFollower(root_key=CA_ROOT.public_key())
    held.accept(token, now=NOW)
    return held


def ca_der() -> bytes:
    return P.ca_certificate(CA_ROOT, name="test alliance CA", not_before=NOW - DAY,
                            not_after=NOW + 3650 * DAY, serial=7)  # fmt: skip


def certified_registry(world: Alliance, *, certify: tuple[str, ...] = (XIAMEN,)) -> str:
    """The registry of test_verifications with the verifier CA and a leaf for every key
    of the members named in ``certify``."""
    return certified_token(world.members(), certify=certify)


def certified_token(
    members_in: list[tuple[str, str, dict[str, Any], str]], *, certify: tuple[str, ...]
) -> str:
    """A registry signed by CA_ROOT for ``members_in`` (id, city, jwks, status), with the
    verifier CA and a leaf for every key of the members named in ``certify``."""
    ca = ca_der()
    members = []
    for member_id, city, jwks, status in members_in:
        entry: dict[str, Any] = {"id": member_id, "name": city.title(), "city": city,
                                 "status": status, "jwks": jwks}  # fmt: skip
        if member_id in certify:
            entry["certificates"] = {
                jwk["kid"]: base64.b64encode(
                    P.leaf_certificate(
                        CA_ROOT,
                        ca,
                        P.public_key_from_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y")}),
                        uri=member_id,
                        name=city,
                        not_before=NOW - DAY,
                        not_after=NOW + 90 * DAY,
                        serial=8,
                    )
                ).decode()
                for jwk in jwks["keys"]
            }
        members.append(entry)
    claims = {
        "iss": ALLIANCE, "exp": NOW + 30 * DAY, "version": 1, "prev": None,
        "scale": {"min": 0, "max": 1000, "thresholds": THRESHOLDS}, "members": members,
        "mapping_tables": [], "policy": DEFAULT_POLICY,
        "verifier_ca": base64.b64encode(ca).decode(),
    }  # fmt: skip
    return P.sign_registry(claims, root_key=CA_ROOT, now=NOW)
