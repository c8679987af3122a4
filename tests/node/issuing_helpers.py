"""Helpers for the issuing and audit tests: seed a resident, prove possession, issue."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

import protocol as P
from mappings import AllianceScale, MappingTable
from node.models import Consent, Record, Score
from node.state import NodeState
from protocol._jws import sign_jws
from tests.conftest import NOW

ROOT = Path(__file__).resolve().parents[2]
XIAMEN_TABLE = ROOT / "mappings" / "tables" / "xiamen.table.json"
RESIDENT = "resident-1"
BOTH_CONSENTS = ("open_score", "share_alliance")
# Local scores on the demo model's 0..1000 scale and their bands through the demo
# xiamen table (checked by test_issuing): 670 fair, 720 good (alliance 633), 780 very_good.
SCORE_FAIR, SCORE_GOOD, SCORE_VERY_GOOD = 670, 720, 780


def xiamen_table() -> MappingTable:
    return MappingTable.from_claims(json.loads(XIAMEN_TABLE.read_text(encoding="utf-8")))


def expected_standing(local_score: float) -> tuple[int, str]:
    """(alliance score, band) of a local score, computed independently of the node."""
    alliance = int(xiamen_table().apply(float(local_score)))
    return alliance, AllianceScale().band_of(alliance)


def node_state(client: TestClient) -> NodeState:
    state: NodeState = client.app.state.node  # type: ignore[attr-defined]
    return state


def session(client: TestClient) -> Session:
    return Session(node_state(client).engine)


def seed_resident(
    client: TestClient,
    resident: str = RESIDENT,
    *,
    score: float | None = SCORE_GOOD,
    consents: Iterable[str] = BOTH_CONSENTS,
    computed_at: int = NOW - 3600,
) -> None:
    """Write a score and granted consents straight into the node's database."""
    with session(client) as db:
        if score is not None:
            db.merge(
                Score(
                    resident_id=resident,
                    score=score,
                    by_dimension={},
                    computed_at=computed_at,
                    model_version="demo-2026.11",
                )
            )
        for kind in consents:
            db.add(
                Consent(
                    resident_id=resident,
                    kind=kind,
                    recipients=["https://alliance.ccx.example"] if kind == "share_alliance" else [],
                    purpose="alliance credit standing" if kind == "share_alliance" else None,
                    granted_at=NOW - 60,
                )
            )
        db.commit()


def bearer(client: TestClient, resident: str = RESIDENT) -> dict[str, str]:
    token = client.post("/dev-idp/token", json={"subject": resident}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def new_nonce(client: TestClient, headers: dict[str, str]) -> str:
    response = client.post("/v1/me/attestations/nonce", headers=headers)
    assert response.status_code == 201, response.text
    nonce: str = response.json()["nonce"]
    return nonce


def make_proof(
    holder_key: Any,
    nonce: str,
    *,
    aud: str = "http://xiamen.ccx.test",
    iat: int = NOW,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
) -> str:
    """A ``pop+jwt`` over ``{"nonce", "aud", "iat"}`` signed with ``holder_key``."""
    payload = {"nonce": nonce, "aud": aud, "iat": iat, **(claims or {})}
    return sign_jws(
        {"typ": "pop+jwt", **(header or {})}, json.dumps(payload).encode("utf-8"), holder_key
    )


def request_attestation(
    client: TestClient,
    headers: dict[str, str],
    holder_key: Any,
    *,
    proof: str | None = None,
    holder_jwk: dict[str, Any] | None = None,
    iat: int | None = None,
) -> httpx.Response:
    """Ask for a nonce (unless a proof is given), prove possession, request the attestation."""
    if proof is None:
        proof = make_proof(
            holder_key,
            new_nonce(client, headers),
            iat=iat if iat is not None else node_state(client).now(),
        )
    return client.post(
        "/v1/me/attestations",
        headers=headers,
        json={"holder_jwk": holder_jwk or P.public_jwk(holder_key), "proof": proof},
    )


def node_key_resolver(client: TestClient) -> P.IssuerKeyResolver:
    """Trusts exactly the keys the node publishes at /.well-known/jwks.json (in these
    tests the node stands in for the alliance registry)."""
    return jwks_resolver(
        client.get("/.well-known/jwks.json").json(), node_state(client).settings.node_id
    )


def jwks_resolver(jwks: dict[str, Any], node_id: str) -> P.IssuerKeyResolver:
    """Trusts exactly the keys of ``jwks`` for the issuer ``node_id``."""
    keys = {jwk["kid"]: jwk for jwk in jwks["keys"]}

    def resolve(iss: str, kid: str | None, alg: str) -> P.PublicKey:
        if iss != node_id:
            raise P.IssuerNotMember(f"{iss} is not this test's issuer")
        jwk = keys.get(kid or "")
        if jwk is None:
            raise P.UnknownKid(f"the node publishes no key {kid}")
        if jwk["alg"] != alg:
            raise P.AlgorithmKeyMismatch(f"key {kid} is {jwk['alg']}")
        return P.public_key_from_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk})

    return resolve


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


DAY = 86400


def seed_housekeeper(
    engine: Engine,
    resident: str,
    records: Iterable[tuple[str, int, float | None]],
    *,
    consent: bool = True,
) -> None:
    """Her domestic-service records, ``(kind, days before NOW, points)``, pushed by the
    department "domestic" before NOW, and (``consent``) her share_domestic_service
    consent naming every member (issue 18)."""
    with Session(engine) as db:
        for n, (kind, days_ago, points) in enumerate(records):
            db.add(Record(department="domestic", record_id=f"{resident}-r{n}",
                          resident_id=resident, kind=kind, occurred_at=NOW - days_ago * DAY,
                          recorded_at=NOW - 60, points=points))  # fmt: skip
        if consent:
            db.add(Consent(resident_id=resident, kind="share_domestic_service",
                           recipients=["alliance"], purpose="家政核验", granted_at=NOW - 60))  # fmt: skip
        db.commit()
