"""What a service point's kiosk reads besides the presentation requests (issue 16): the
scenarios its credentials may verify (GET /v1/service-point) and its decisions of the
day (GET /v1/presentation-requests?since=...), read from its own audit entries. A
Fuzhou visitor answers a Xiamen request through the ccx wallet library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlmodel import select

import protocol as P
from node.models import AuditEntry
from tests.conftest import NOW
from tests.node.issuing_helpers import node_state, session
from tests.node.oid4vp_helpers import ca_der, certified_registry, follower
from tests.node.test_verifications import FUZHOU, XIAMEN, Alliance, attest, service_point
from wallet._oid4vp import Asked, answer_request, read_request

SCENARIO = "library_deposit_free"
OTHER = "bike_deposit_free"


@pytest.fixture
def world(make_client: Any, tmp_path: Path) -> Alliance:
    alliance = Alliance(make_client, tmp_path)
    node_state(alliance.xiamen).follower = follower(certified_registry(alliance))
    return alliance


def asked_of(world: Alliance, headers: dict[str, str]) -> Asked:
    made = world.xiamen.post("/v1/presentation-requests", json={"scenario": SCENARIO},
                             headers=headers)  # fmt: skip
    assert made.status_code == 201, made.text
    return read_request(made.json()["request"], anchors=[ca_der()], members={XIAMEN: "Xiamen"},
                        now=NOW, client=world.xiamen)  # fmt: skip


def decline(world: Alliance, asked: Asked) -> None:
    """The wallet's error response (OpenID4VP section 8.5), encrypted as asked."""
    claims = asked.request.claims
    [jwk] = claims["client_metadata"]["jwks"]["keys"]
    key = P.public_key_from_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y")})
    body = {"error": "access_denied", "error_description": "the resident said no",
            "state": claims["state"]}  # fmt: skip
    jwe = P.encrypt_ecdh_es(json.dumps(body).encode(), key, kid=jwk["kid"])  # type: ignore[arg-type]
    answer = world.xiamen.post(urlsplit(claims["response_uri"]).path, data={"response": jwe})
    assert answer.status_code == 200, answer.text


def day(world: Alliance, headers: dict[str, str], since: int | str) -> Any:
    return world.xiamen.get("/v1/presentation-requests", params={"since": since}, headers=headers)


def test_the_kiosk_lists_the_scenarios_its_credentials_may_verify(world: Alliance) -> None:
    headers = service_point(world.xiamen, SCENARIO, OTHER)
    answer = world.xiamen.get("/v1/service-point", headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["client_id"], body["department"]) == ("library-desk", "culture")
    # the catalogue's order, not the scopes'
    assert [s["scenario"] for s in body["scenarios"]] == [SCENARIO, OTHER]
    library = body["scenarios"][0]
    assert (library["name_zh"], library["name_en"]) == ("图书馆免押金借阅",
                                                        "Deposit-free library borrowing")  # fmt: skip
    assert library["tiers"][0]["benefit"]
    assert library["tiers"][0]["benefit_zh"]


def test_the_scenarios_need_credentials(world: Alliance) -> None:
    assert world.xiamen.get("/v1/service-point").status_code == 401
    wrong = world.xiamen.get("/v1/service-point", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthorized"


def test_the_day_lists_the_counters_own_decisions_newest_first(world: Alliance) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-1", 780)
    desk = service_point(world.xiamen, SCENARIO)
    other = service_point(world.xiamen, SCENARIO, client_id="pool-desk")
    assert answer_request(asked_of(world, desk), attestation, holder_key=holder, now=NOW,
                          client=world.xiamen) == {}  # fmt: skip
    decline(world, asked_of(world, desk))

    answer = day(world, desk, NOW - 60)
    assert answer.status_code == 200, answer.text
    declined, granted = answer.json()["decisions"]
    assert (declined["outcome"], declined["code"], declined["scenario"]) == (
        "declined", "access_denied", SCENARIO)  # fmt: skip
    assert granted["outcome"] == "granted"
    assert granted["tier"]
    assert granted["at"] == NOW
    assert granted["audit_seq"] < declined["audit_seq"]
    assert "tier" not in declined  # nothing said that is not known

    assert day(world, other, NOW - 60).json() == {"decisions": []}  # another counter's
    assert day(world, desk, NOW + 1).json() == {"decisions": []}  # before the day began
    with session(world.xiamen) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.seq == declined["audit_seq"])).one()
    # the wallet's own words are not kept in the log
    assert entry.details == {"scenario": SCENARIO, "client": "library-desk",
                             "code": "access_denied"}  # fmt: skip


def test_the_day_needs_credentials(world: Alliance) -> None:
    answer = world.xiamen.get("/v1/presentation-requests", params={"since": NOW})
    assert answer.status_code == 401


@pytest.mark.parametrize("since", ["yesterday", "-1", "1.5", ""])
def test_a_bad_since_is_a_422(world: Alliance, since: str) -> None:
    answer = day(world, service_point(world.xiamen, SCENARIO), since)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"


def test_since_is_required(world: Alliance) -> None:
    headers = service_point(world.xiamen, SCENARIO)
    answer = world.xiamen.get("/v1/presentation-requests", headers=headers)
    assert answer.status_code == 422
