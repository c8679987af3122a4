"""Coherence of the mapping (issue 5): a node that follows a registry issues with the
signed table the registry lists for its city, and a verifier refuses an attestation
mapped with a table the registry doesn't list. In-process nodes; the alliance host's
table files behind an ``httpx.MockTransport``; real signatures throughout."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

import protocol as P
from alliance.state import DEFAULT_POLICY
from mappings import AllianceScale, MappingTable
from node.models import Attestation
from node.services.registry import RegistryFollower
from tests.conftest import ALLIANCE, NOW, ec_key, ed_key
from tests.node.issuing_helpers import (
    XIAMEN_TABLE,
    bearer,
    error_code,
    make_proof,
    new_nonce,
    node_state,
    request_attestation,
    seed_resident,
    session,
)
from tests.node.test_verifications import FUZHOU, XIAMEN, service_point

ROOT = ed_key(91)
INTRUDER = ed_key(92)
HOST = "https://alliance.ccx.test"
FUZHOU_TABLE = XIAMEN_TABLE.parent / "fuzhou.table.json"


# --- the alliance host ------------------------------------------------------------------------


class AllianceHost:
    """The tables folder of the alliance host (``down`` makes every request fail); any
    other path is answered by ``forward`` (a city node), if given."""

    def __init__(self, forward: TestClient | None = None) -> None:
        self.files: dict[str, str] = {}
        self.down = False
        self.requests: list[str] = []
        self.forward = forward

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if self.down:
            raise httpx.ConnectError("the alliance host is down", request=request)
        if request.url.host == "alliance.ccx.test":
            body = self.files.get(request.url.path)
            return httpx.Response(404) if body is None else httpx.Response(200, text=body)
        assert self.forward is not None, request.url
        answer = self.forward.get(request.url.path)
        return httpx.Response(
            answer.status_code,
            content=answer.content,
            headers={"Content-Type": answer.headers.get("content-type", "")},
        )

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))


def table_claims(source: Path = XIAMEN_TABLE, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(source.read_bytes())
    claims.update(changes)
    return claims


def sign(claims: dict[str, Any], key: Any = ROOT) -> str:
    return MappingTable.from_claims(claims).sign(alliance=ALLIANCE, key=key, now=NOW)


def entry(claims: dict[str, Any], *, uri: str, **changes: Any) -> dict[str, Any]:
    """The registry's ``mapping_tables`` entry of a table (as ``ccx alliance table``)."""
    return {
        "city": claims["city"],
        "version": claims["version"],
        "sha256": P.mapping_table_hash(claims),
        "valid_from": claims["valid_from"],
        "valid_to": claims["valid_to"],
        "uri": uri,
        **changes,
    }


def registry(
    members: list[tuple[str, str, dict[str, Any]]],
    tables: list[dict[str, Any]],
    *,
    version: int = 1,
    prev: str | None = None,
) -> str:
    claims = {
        "iss": ALLIANCE,
        "exp": NOW + 30 * 86400,
        "version": version,
        "prev": prev,
        "scale": AllianceScale().to_json(),
        "members": [
            {"id": mid, "name": city.title(), "city": city, "status": "active", "jwks": jwks}
            for mid, city, jwks in members
        ],
        "mapping_tables": tables,
        "policy": DEFAULT_POLICY,
    }
    return P.sign_registry(claims, root_key=ROOT, now=NOW)


def follow(client: TestClient, token: str) -> RegistryFollower:
    follower = RegistryFollower(root_key=ROOT.public_key())
    follower.accept(token, now=NOW)
    node_state(client).follower = follower
    return follower


def jwks(client: TestClient) -> dict[str, Any]:
    keys: dict[str, Any] = client.get("/.well-known/jwks.json").json()
    return keys


def attest(client: TestClient, resident: str, score: float = 700) -> httpx.Response:
    seed_resident(client, resident, score=score)
    headers = bearer(client, resident)
    holder = ec_key(sum(map(ord, resident)) % 1000 + 10)
    aud = node_state(client).settings.node_id
    proof = make_proof(holder, new_nonce(client, headers), aud=aud, iat=NOW)
    return request_attestation(client, headers, holder, proof=proof)


def issuer_claims(attestation: str) -> dict[str, Any]:
    payload = attestation.split("~")[0].split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def thresholds_of(attestation: str) -> list[int]:
    """The thresholds of the attestation's ``score_at_least`` (one disclosure each)."""
    found = []
    for part in attestation.split("~")[1:]:
        if part:
            decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            if len(decoded) == 3 and isinstance(decoded[1], str) and decoded[1].isdigit():
                found.append(int(decoded[1]))
    return sorted(found)


def issued(client: TestClient) -> int:
    with session(client) as db:
        return int(db.exec(select(func.count()).select_from(Attestation)).one())


# --- issuing --------------------------------------------------------------------------------


@pytest.fixture
def host() -> AllianceHost:
    return AllianceHost()


@pytest.fixture
def xiamen(make_client: Any, host: AllianceHost) -> TestClient:
    client: TestClient = make_client()
    node_state(client).http = host.client()
    return client


def publish(host: AllianceHost, claims: dict[str, Any], key: Any = ROOT) -> str:
    path = f"/tables/{claims['city']}.v{claims['version']}.table.jwt"
    host.files[path] = sign(claims, key)
    return HOST + path


def test_a_node_following_a_registry_issues_with_its_signed_table(
    xiamen: TestClient, host: AllianceHost
) -> None:
    claims = table_claims(version=7)  # not the repository's version 1
    listed = entry(claims, uri=publish(host, claims))
    follow(xiamen, registry([(XIAMEN, "xiamen", jwks(xiamen))], [listed]))
    response = attest(xiamen, "r-1")
    assert response.status_code == 201, response.text
    claims_out = issuer_claims(response.json()["attestation"])
    assert claims_out["mapping"] == {"city": "xiamen", "version": 7, "sha256": listed["sha256"]}
    assert thresholds_of(response.json()["attestation"]) == list(AllianceScale().thresholds)
    saved = list((node_state(xiamen).settings.data_dir / "tables").glob("*.table.jwt"))
    assert [p.name for p in saved] == [f"xiamen.v7.{listed['sha256']}.table.jwt"]
    # Cached: the second issuance fetches nothing.
    assert attest(xiamen, "r-2").status_code == 201
    assert len(host.requests) == 1


def test_the_registry_scale_is_the_one_used(xiamen: TestClient, host: AllianceHost) -> None:
    scale = AllianceScale(thresholds=(500, 600, 700))
    claims = table_claims(version=2, scale_sha256=scale.sha256)
    listed = entry(claims, uri=publish(host, claims))
    raw = {
        "iss": ALLIANCE,
        "exp": NOW + 30 * 86400,
        "version": 1,
        "prev": None,
        "scale": scale.to_json(),
        "members": [
            {
                "id": XIAMEN,
                "name": "Xiamen",
                "city": "xiamen",
                "status": "active",
                "jwks": jwks(xiamen),
            }
        ],
        "mapping_tables": [listed],
        "policy": {**DEFAULT_POLICY, "scenarios": {}},
    }
    follow(xiamen, P.sign_registry(raw, root_key=ROOT, now=NOW))
    response = attest(xiamen, "r-1")
    assert response.status_code == 201, response.text
    assert thresholds_of(response.json()["attestation"]) == [500, 600, 700]


def refused_tables(host: AllianceHost) -> dict[str, dict[str, Any]]:
    good = table_claims(version=3)
    other_key = publish(host, table_claims(version=4), key=INTRUDER)
    host.files["/tables/other-hash.jwt"] = sign(table_claims(version=5))
    fuzhou = table_claims(version=6, city="fuzhou")  # xiamen's scale, fuzhou's name
    host.files["/tables/fuzhou-as-xiamen.jwt"] = sign(fuzhou)
    other_scale = table_claims(version=8, scale_sha256=AllianceScale(sd=90).sha256)
    return {
        "not signed by the root key": entry(table_claims(version=4), uri=other_key),
        "another hash than the registry's": entry(
            table_claims(version=5),
            uri=f"{HOST}/tables/other-hash.jwt",
            sha256=P.mapping_table_hash(good),
        ),
        "another city's table": entry(
            fuzhou, uri=f"{HOST}/tables/fuzhou-as-xiamen.jwt", city="xiamen"
        ),
        "another alliance scale": entry(other_scale, uri=publish(host, other_scale)),
        "missing at the host": entry(good, uri=f"{HOST}/tables/nowhere.jwt"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not signed by the root key",
        "another hash than the registry's",
        "another city's table",
        "another alliance scale",
        "missing at the host",
    ],
)
def test_a_table_that_does_not_verify_is_refused_and_nothing_is_issued(
    xiamen: TestClient, host: AllianceHost, case: str
) -> None:
    listed = refused_tables(host)[case]
    follow(xiamen, registry([(XIAMEN, "xiamen", jwks(xiamen))], [listed]))
    response = attest(xiamen, "r-1")
    assert response.status_code == 503, response.text
    assert error_code(response) == "mapping_table_unavailable"
    assert issued(xiamen) == 0
    assert not (node_state(xiamen).settings.data_dir / "tables").exists() or not list(
        (node_state(xiamen).settings.data_dir / "tables").iterdir()
    )


def test_a_registry_without_a_table_for_the_city_stops_issuing(
    xiamen: TestClient, host: AllianceHost
) -> None:
    fuzhou = table_claims(FUZHOU_TABLE)
    listed = entry(fuzhou, uri=publish(host, fuzhou))
    follow(xiamen, registry([(XIAMEN, "xiamen", jwks(xiamen))], [listed]))
    response = attest(xiamen, "r-1")
    assert response.status_code == 503
    assert error_code(response) == "mapping_table_unavailable"
    assert "lists no mapping table for xiamen" in response.json()["error"]["message"]
    assert host.requests == []


def test_a_table_not_in_force_yet_is_not_used(xiamen: TestClient, host: AllianceHost) -> None:
    claims = table_claims(version=2, valid_from=NOW + 86400)
    follow(xiamen, registry([(XIAMEN, "xiamen", jwks(xiamen))], [entry(claims, uri=HOST)]))
    assert error_code(attest(xiamen, "r-1")) == "mapping_table_unavailable"


def test_the_saved_table_keeps_issuing_when_the_alliance_host_is_down(
    make_client: Any, xiamen: TestClient, host: AllianceHost
) -> None:
    claims = table_claims(version=7)
    listed = entry(claims, uri=publish(host, claims))
    token = registry([(XIAMEN, "xiamen", jwks(xiamen))], [listed])
    follow(xiamen, token)
    assert attest(xiamen, "r-1").status_code == 201
    host.down = True
    # The same process: from memory.
    assert attest(xiamen, "r-2").status_code == 201
    # A restart on the same data folder: from <data_dir>/tables, verified again.
    restarted: TestClient = make_client()
    node_state(restarted).http = host.client()
    follow(restarted, token)
    fetches = len(host.requests)
    response = attest(restarted, "r-3")
    assert response.status_code == 201, response.text
    assert issuer_claims(response.json()["attestation"])["mapping"]["sha256"] == listed["sha256"]
    assert len(host.requests) == fetches  # nothing fetched


def test_a_damaged_saved_table_is_fetched_again(
    make_client: Any, xiamen: TestClient, host: AllianceHost
) -> None:
    claims = table_claims(version=7)
    listed = entry(claims, uri=publish(host, claims))
    token = registry([(XIAMEN, "xiamen", jwks(xiamen))], [listed])
    follow(xiamen, token)
    assert attest(xiamen, "r-1").status_code == 201
    [saved] = (node_state(xiamen).settings.data_dir / "tables").glob("*.table.jwt")
    saved.write_text(sign(claims, INTRUDER))  # not the root key's
    restarted: TestClient = make_client()
    node_state(restarted).http = host.client()
    follow(restarted, token)
    assert attest(restarted, "r-2").status_code == 201
    assert saved.read_text() == host.files["/tables/xiamen.v7.table.jwt"]
    host.down = True
    saved.write_text("garbage")
    again: TestClient = make_client()
    node_state(again).http = host.client()
    follow(again, token)
    response = attest(again, "r-3")
    assert error_code(response) == "mapping_table_unavailable"


def test_an_unreachable_host_and_no_saved_table_fails_closed(
    xiamen: TestClient, host: AllianceHost
) -> None:
    claims = table_claims(version=7)
    listed = entry(claims, uri=publish(host, claims))
    host.down = True
    follow(xiamen, registry([(XIAMEN, "xiamen", jwks(xiamen))], [listed]))
    response = attest(xiamen, "r-1")
    assert response.status_code == 503
    assert error_code(response) == "mapping_table_unavailable"
    # A failure is not retried at once (one fetch per TABLE_RETRY_AFTER).
    assert error_code(attest(xiamen, "r-2")) == "mapping_table_unavailable"
    assert len(host.requests) == 1
    assert issued(xiamen) == 0


def test_a_registry_listing_no_tables_keeps_the_local_table(
    xiamen: TestClient, host: AllianceHost
) -> None:
    follow(xiamen, registry([(XIAMEN, "xiamen", jwks(xiamen))], []))
    response = attest(xiamen, "r-1")
    assert response.status_code == 201, response.text
    local = table_claims()
    mapping = issuer_claims(response.json()["attestation"])["mapping"]
    assert mapping == {"city": "xiamen", "version": 1, "sha256": P.mapping_table_hash(local)}


def test_a_node_following_no_registry_uses_the_unsigned_local_table(xiamen: TestClient) -> None:
    assert node_state(xiamen).follower is None
    response = attest(xiamen, "r-1")
    assert response.status_code == 201, response.text
    assert issuer_claims(response.json()["attestation"])["mapping"]["sha256"] == (
        P.mapping_table_hash(table_claims())
    )


# --- verifying ------------------------------------------------------------------------------


class Visit:
    """Fuzhou issues (no registry: its unsigned local table); Xiamen verifies under a
    registry that lists tables."""

    def __init__(self, make_client: Any, tmp_path: Path) -> None:
        self.fuzhou: TestClient = make_client(
            data_dir=tmp_path / "fuzhou", node_id=FUZHOU, city="fuzhou"
        )
        self.host = AllianceHost(forward=self.fuzhou)
        self.xiamen: TestClient = make_client()
        node_state(self.xiamen).http = self.host.client()
        xiamen_claims = table_claims(version=7)
        self.xiamen_entry = entry(xiamen_claims, uri=publish(self.host, xiamen_claims))
        self.members = [
            (XIAMEN, "xiamen", jwks(self.xiamen)),
            (FUZHOU, "fuzhou", jwks(self.fuzhou)),
        ]

    def follow(self, fuzhou_tables: list[dict[str, Any]]) -> None:
        follow(self.xiamen, registry(self.members, [self.xiamen_entry, *fuzhou_tables]))

    def verify(self, attestation: str, holder: Any) -> httpx.Response:
        headers = service_point(self.xiamen, "library_deposit_free")
        response = self.xiamen.post(
            "/v1/verifications/challenge",
            json={"scenario": "library_deposit_free"},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        challenge = response.json()
        presentation = P.present(
            attestation,
            disclose=tuple(challenge["disclose"]),
            holder_key=holder,
            aud=challenge["aud"],
            nonce=challenge["nonce"],
            now=NOW,
        )
        answer: httpx.Response = self.xiamen.post(
            "/v1/verifications",
            json={"nonce": challenge["nonce"], "presentation": presentation},
            headers=headers,
        )
        return answer

    def visitor(self, resident: str) -> tuple[str, Any]:
        seed_resident(self.fuzhou, resident, score=600)
        headers = bearer(self.fuzhou, resident)
        holder = ec_key(sum(map(ord, resident)) % 1000 + 10)
        proof = make_proof(holder, new_nonce(self.fuzhou, headers), aud=FUZHOU, iat=NOW)
        response = request_attestation(self.fuzhou, headers, holder, proof=proof)
        assert response.status_code == 201, response.text
        return response.json()["attestation"], holder


@pytest.fixture
def visit(make_client: Any, tmp_path: Path) -> Visit:
    return Visit(make_client, tmp_path)


def test_a_verifier_accepts_a_table_the_registry_lists(visit: Visit) -> None:
    fuzhou = table_claims(FUZHOU_TABLE)
    visit.follow([entry(fuzhou, uri=f"{HOST}/tables/fuzhou.v1.table.jwt")])
    attestation, holder = visit.visitor("visitor-1")
    response = visit.verify(attestation, holder)
    assert response.status_code == 200, response.text
    assert response.json()["decision"] == "granted"


def test_a_verifier_refuses_a_table_the_registry_does_not_list(visit: Visit) -> None:
    newer = table_claims(FUZHOU_TABLE, version=2)
    visit.follow([entry(newer, uri=f"{HOST}/tables/fuzhou.v2.table.jwt")])
    attestation, holder = visit.visitor("visitor-1")  # mapped with fuzhou's version 1
    response = visit.verify(attestation, holder)
    assert response.status_code == 401, response.text
    assert error_code(response) == "mapping_table_unknown"


def test_a_verifier_accepts_any_table_of_a_city_without_tables(visit: Visit) -> None:
    visit.follow([])  # the registry lists xiamen's table only
    attestation, holder = visit.visitor("visitor-1")
    response = visit.verify(attestation, holder)
    assert response.status_code == 200, response.text


def test_a_local_attestation_issued_with_the_registry_table_is_accepted(visit: Visit) -> None:
    visit.follow([])
    response = attest(visit.xiamen, "local-1", score=780)
    assert response.status_code == 201, response.text
    holder = ec_key(sum(map(ord, "local-1")) % 1000 + 10)
    decided = visit.verify(response.json()["attestation"], holder)
    assert decided.status_code == 200, decided.text
    assert decided.json()["issuer_city"] == "xiamen"
