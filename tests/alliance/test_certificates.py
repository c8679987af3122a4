# ruff: noqa: F811  (the fixtures of tests/alliance/test_cli.py, used by name)
"""The alliance as certificate authority of its members' OpenID4VP requests
(alliance/certificates.py; docs/PROTOCOL.md section 11): publishing puts a CA
certificate of the root key and a leaf per member key into the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import protocol as P
from tests.alliance.test_cli import (  # noqa: F401  (fixtures, used by name)
    FUZHOU,
    XIAMEN,
    alliance,
    base,
    ccx,
    inputs,
    registry,
    root_private,
)
from tests.cli_results import ok
from tests.conftest import NOW, ec_key


def test_every_member_key_gets_a_leaf_under_the_alliance_ca(
    alliance: Path, inputs: dict[str, Any], root_private: P.PrivateKey
) -> None:
    ok(ccx(alliance, "publish"))
    v1 = registry(alliance, 1)
    assert v1.verifier_ca is not None
    for member_id, ring in ((XIAMEN, inputs["xiamen_ring"]), (FUZHOU, inputs["fuzhou_ring"])):
        leaf = v1.certificate(member_id, ring.active.kid)
        assert leaf is not None
        certified = P.verify_x5c([leaf], [v1.verifier_ca], now=NOW)
        assert certified.uris == (member_id,)  # the member's id names it
        assert P.public_jwk(certified.public_key) == P.public_jwk(ring.active.public_key)
    # the CA is the root key itself: trusting the registry is trusting the CA
    from cryptography import x509

    ca = x509.load_der_x509_certificate(v1.verifier_ca)
    assert P.public_jwk(ca.public_key()) == P.public_jwk(root_private.public_key())  # type: ignore[arg-type]


def test_republishing_keeps_the_certificates(alliance: Path, inputs: dict[str, Any]) -> None:
    ok(ccx(alliance, "publish"))
    ok(ccx(alliance, "publish"))
    v1, v2 = registry(alliance, 1), registry(alliance, 2)
    kid = inputs["xiamen_ring"].active.kid
    assert v1.verifier_ca == v2.verifier_ca
    assert v1.certificate(XIAMEN, kid) == v2.certificate(XIAMEN, kid)


def test_a_new_member_key_gets_its_own_leaf(
    alliance: Path, inputs: dict[str, Any], tmp_path: Path
) -> None:
    ok(ccx(alliance, "publish"))
    seeds = iter(range(700, 710))
    rotated = inputs["xiamen_ring"].rotate(now=NOW, generate=lambda alg: ec_key(next(seeds)))
    path = tmp_path / "rotated.jwks.json"
    path.write_text(json.dumps(rotated.jwks(NOW)))
    ok(ccx(alliance, "keys", "--member-id", XIAMEN, "--jwks", path))
    ok(ccx(alliance, "publish"))
    v2 = registry(alliance, 2)
    leaf = v2.certificate(XIAMEN, rotated.active.kid)
    assert leaf is not None
    assert v2.verifier_ca is not None
    certified = P.verify_x5c([leaf], [v2.verifier_ca], now=NOW)
    assert P.public_jwk(certified.public_key) == P.public_jwk(rotated.active.public_key)


def test_a_leaf_of_one_member_is_not_anothers(alliance: Path, inputs: dict[str, Any]) -> None:
    ok(ccx(alliance, "publish"))
    v1 = registry(alliance, 1)
    assert v1.certificate(FUZHOU, inputs["xiamen_ring"].active.kid) is None
