"""Helpers for the OpenID4VP tests: a registry that carries the alliance CA (a
certificate of the tests' root key) and leaves for the members' keys."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

import protocol as P
from alliance.state import DEFAULT_POLICY
from node.app import create_app, initialize_node
from node.services import clients
from node.services.registry import RegistryFollower
from tests.conftest import ALLIANCE, NOW, ec_key
from tests.node.servers import RunningNode, WorldClock, free_port
from tests.node.test_verifications import THRESHOLDS, XIAMEN, Alliance, _settings

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
    members_in: list[tuple[str, str, dict[str, Any], str]],
    *,
    certify: tuple[str, ...],
    credentials: Mapping[str, list[str]] | None = None,
    version: int = 1,
    prev: str | None = None,
) -> str:
    """A registry signed by CA_ROOT for ``members_in`` (id, city, jwks, status), with the
    verifier CA and a leaf for every key of the members named in ``certify``;
    ``credentials``: the credential types a member issues, by its id (none listed: the
    credit standing alone)."""
    ca = ca_der()
    members = []
    for member_id, city, jwks, status in members_in:
        entry: dict[str, Any] = {"id": member_id, "name": city.title(), "city": city,
                                 "status": status, "jwks": jwks}  # fmt: skip
        if credentials and member_id in credentials:
            entry["credentials"] = list(credentials[member_id])
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
        "iss": ALLIANCE, "exp": NOW + 30 * DAY, "version": version, "prev": prev,
        "scale": {"min": 0, "max": 1000, "thresholds": THRESHOLDS}, "members": members,
        "mapping_tables": [], "policy": DEFAULT_POLICY,
        "verifier_ca": base64.b64encode(ca).decode(),
    }  # fmt: skip
    return P.sign_registry(claims, root_key=CA_ROOT, now=NOW)


@dataclass
class TwoCities:
    """Fuzhou (a resident's home) and Xiamen (a service point's city) on loopback."""

    fuzhou: RunningNode
    xiamen: RunningNode
    clock: WorldClock
    desk_token: str  # Xiamen's service point "library-desk"
    desk: dict[str, str]  # its Authorization header


@contextmanager
def two_cities(
    folder: Path,
    *,
    scopes: tuple[str, ...] = ("library_deposit_free",),
    fuzhou: Mapping[str, Any] | None = None,
    xiamen: Mapping[str, Any] | None = None,
    credentials: Mapping[str, list[str]] | None = None,
) -> Iterator[TwoCities]:
    """Both nodes following one registry that carries the alliance CA and a leaf for every
    key of both, on one clock starting at NOW; Xiamen has a service point allowed to
    verify ``scopes``; ``fuzhou``/``xiamen`` update each node's settings; ``credentials``
    the types each city (``"fuzhou"``, ``"xiamen"``) issues, as the registry lists them."""
    fz_port, xm_port = free_port(), free_port()
    fz = _settings(folder / "fz", fz_port, "fuzhou").model_copy(update=dict(fuzhou or {}))
    xm = _settings(folder / "xm", xm_port, "xiamen").model_copy(update=dict(xiamen or {}))
    clock = WorldClock(NOW)
    fz_ring, xm_ring = initialize_node(fz, now=NOW), initialize_node(xm, now=NOW)
    token = certified_token(
        [(xm.node_id, "xiamen", xm_ring.jwks(NOW), "active"),
         (fz.node_id, "fuzhou", fz_ring.jwks(NOW), "active")],
        certify=(xm.node_id, fz.node_id),
        credentials={
            {"fuzhou": fz.node_id, "xiamen": xm.node_id}[city]: types
            for city, types in (credentials or {}).items()
        },
    )  # fmt: skip
    apps = []
    for settings in (fz, xm):
        app = create_app(settings, now=clock)
        app.state.node.follower = follower(token)
        apps.append(app)
    with Session(apps[1].state.node.engine) as db:
        _, secret = clients.create_client(
            db, client_id="library-desk", department="culture",
            scopes=[f"verify:{kind}" for kind in scopes], actor="admin", now=NOW,
        )  # fmt: skip
    with RunningNode(apps[0], fz_port) as fz_node, RunningNode(apps[1], xm_port) as xm_node:
        yield TwoCities(fz_node, xm_node, clock, secret, {"Authorization": f"Bearer {secret}"})


def cli_wallet(home: RunningNode, folder: Path, resident: str = "fz-resident") -> dict[str, str]:
    """The environment of a `ccx wallet` holding ``resident``'s credential from ``home``
    (she has a score of 780 and both consents, sharing with every member)."""
    from typer.testing import CliRunner

    from tests.cli_results import ok
    from tests.node.test_verifications import seed_resident_app
    from wallet.cli import NOW_ENV, PASSPHRASE_ENV, WALLET_ENV, wallet_app

    seed_resident_app(home, resident, 780, ("alliance",), now=NOW)
    env = {WALLET_ENV: str(folder / "w.json"), PASSPHRASE_ENV: "a wallet passphrase!",
           NOW_ENV: str(NOW)}  # fmt: skip
    ok(CliRunner().invoke(wallet_app, ["keygen"], env=env))
    ok(CliRunner().invoke(wallet_app, ["authorize", home.url, "--dev-login", resident], env=env))
    return env


def presentation_request(node: RunningNode, desk: dict[str, str], scenario: str) -> dict[str, Any]:
    """A service point's OpenID4VP request at ``node`` for ``scenario`` (201), with the
    ``desk`` Authorization header: the node's answer (transaction_id, request link)."""
    made = httpx.post(f"{node.url}/v1/presentation-requests", json={"scenario": scenario},
                      headers=desk)  # fmt: skip
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def presentation_result(
    node: RunningNode, desk: dict[str, str], made: dict[str, Any]
) -> dict[str, Any]:
    """Where the request ``made`` stands at ``node`` (GET .../{transaction_id})."""
    answer = httpx.get(f"{node.url}/v1/presentation-requests/{made['transaction_id']}",
                       headers=desk)  # fmt: skip
    body: dict[str, Any] = answer.json()
    return body
