"""What the documents' examples of the standard flows run against (tests/test_docs.py):
one city node in-process (the tests' clock, the development identity provider, a
registry that carries the alliance CA and the node's certificate), a resident with a
score and both consents, a library desk's credentials. The examples get these names:
``xiamen`` (an HTTP client of the node: it is the httpx API), ``resident`` and ``desk``
(their Authorization headers), ``holder_key``, ``alliance_ca`` (DER), ``now``, and a
``credential`` the resident already holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from node.app import create_app, initialize_node
from tests.conftest import NOW, ec_key
from tests.node.conftest import xiamen_settings
from tests.node.issuing_helpers import bearer, node_state, seed_resident
from tests.node.oid4vp_helpers import ca_der, certified_token, follower
from tests.node.test_verifications import service_point
from wallet import accept_offer

__all__ = ["documents_world"]


def documents_world(folder: Path) -> dict[str, Any]:
    settings = xiamen_settings(folder / "node")
    initialize_node(settings, now=NOW)
    xiamen = TestClient(create_app(settings, now=lambda: NOW), raise_server_exceptions=False)
    jwks = xiamen.get("/.well-known/jwks.json").json()
    members = [(settings.node_id, "xiamen", jwks, "active")]
    node_state(xiamen).follower = follower(certified_token(members, certify=(settings.node_id,)))
    seed_resident(xiamen, "resident-1", score=780)
    resident = bearer(xiamen, "resident-1")
    offer = xiamen.post("/v1/me/credential-offers", json={}, headers=resident).json()
    held_key = ec_key(170)
    return {
        "xiamen": xiamen,
        "resident": resident,
        "desk": service_point(xiamen, "library_deposit_free", "hospital_treat_first_pay_later"),
        "holder_key": ec_key(171),
        "alliance_ca": ca_der(),
        "now": NOW,
        "credential": accept_offer(offer["offer"], holder_key=held_key, now=NOW, client=xiamen),
        "credential_key": held_key,
    }
