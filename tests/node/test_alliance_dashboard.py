"""The alliance dashboard's API on the alliance host (issue 16; node/services/
alliance_dashboard.py): the published registry verified version by version (a broken
chain shown broken), members, policy and each city's curve; members' readiness asked
over real HTTP on loopback, at most once a ttl. The world: tests/node/alliance_world.py."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import protocol as P
from alliance.state import REQUIRED_SCENARIOS
from keys import Keyring
from node.app import create_app, initialize_node
from node.services.alliance_dashboard import alliance_overview
from tests.conftest import NOW
from tests.node.alliance_world import PASSPHRASE, START, AllianceWorld, alliance_world
from tests.node.conftest import xiamen_settings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllianceWorld]:
    with alliance_world(tmp_path_factory.mktemp("dashboard")) as made:
        yield made


@pytest.fixture(scope="module")
def overview(world: AllianceWorld) -> dict[str, Any]:
    answer = httpx.get(f"{world.host.url}/v1/alliance/overview")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_the_versions_are_verified_and_chained(overview: dict[str, Any]) -> None:
    assert overview["chain_intact"] is True
    assert overview["current_version"] == 3
    versions = overview["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["links"] for v in versions] == [None, True, True]
    assert all(v["verified"] and v["problem"] is None for v in versions)
    assert versions[1]["prev"] == versions[0]["sha256"]
    assert [v["in_effect"] for v in versions] == [True, True, True]
    assert versions[2]["iat"] == NOW + 120


def test_members_with_their_status_keys_and_certificates(
    world: AllianceWorld, overview: dict[str, Any]
) -> None:
    members = {m["city"]: m for m in overview["members"]}
    assert set(members) == {"xiamen", "fuzhou", "zhangzhou"}
    assert members["zhangzhou"]["status"] == "suspended"
    assert members["xiamen"]["status"] == "active"
    assert members["xiamen"]["id"] == world.members["xiamen"].node_id
    jwks = json.loads((world.folder.parent / "xiamen.jwks.json").read_text())
    assert {k["kid"] for k in members["xiamen"]["keys"]} == {k["kid"] for k in jwks["keys"]}
    certificates = members["xiamen"]["certificates"]
    assert certificates
    assert all(c["valid_now"] for c in certificates)
    assert all(c["not_before"] <= START <= c["not_after"] for c in certificates)


def test_the_policy_and_scale(overview: dict[str, Any]) -> None:
    policy = overview["policy"]
    kinds = {s["kind"]: s["min_alliance_score"] for s in policy["scenarios"]}
    assert set(kinds) == set(REQUIRED_SCENARIOS)
    assert kinds["missing_document_approval"] == 650
    assert policy["max_attestation_age"] == 30 * 86400
    assert overview["scale"]["thresholds"] == [550, 600, 650, 700, 750]


def test_each_citys_curve_comes_from_its_verified_table(
    world: AllianceWorld, overview: dict[str, Any]
) -> None:
    tables = {t["city"]: t for t in overview["tables"]}
    assert set(tables) == {"xiamen", "fuzhou", "zhangzhou"}
    root_kid = json.loads((world.folder / "root.jwk").read_text())["kid"]
    for table in tables.values():
        assert table["verified"] is True
        assert table["problem"] is None
        assert table["signed_by"] == root_kid
        points = table["points"]
        assert points[0]["position"] == 0
        assert points[-1]["position"] == 1
        scores = [p["alliance"] for p in points]
        assert scores == sorted(scores)  # the link is monotone
        assert all(0 <= s <= 1000 for s in scores)
    assert len(tables["xiamen"]["points"]) == 101  # 1001 knots, thinned
    assert [p["local"] for p in tables["zhangzhou"]["points"]] == [
        "D", "C", "B", "A", "AA", "AAA",
    ]  # fmt: skip


def test_a_broken_chain_is_shown_broken(world: AllianceWorld, tmp_path: Path) -> None:
    """Version 2 replaced by a version 2 the root key signed too, but not the one version
    3 continues: version 3 no longer links (a node would refuse it)."""
    folder = tmp_path / "alliance"
    shutil.copytree(world.folder, folder)
    root = Keyring.load((folder / "root.keyring.json").read_bytes(), PASSPHRASE.encode())
    public = P.public_key_from_jwk(json.loads((folder / "root.jwk").read_text()))
    second = folder / "registry" / "v2.jwt"
    claims = P.verify_registry(
        second.read_text().strip(), root_key=public, now=START, check_expiry=False
    )
    payload = json.loads(P.b64url_decode(claims.token.split(".")[1]))
    payload.pop("iat")
    second.write_text(P.sign_registry(payload, root_key=root.active.private_key, now=NOW + 90))
    seen = alliance_overview(folder, now=START)
    assert seen.chain_intact is False
    assert [v.links for v in seen.versions] == [None, True, False]
    assert seen.versions[2].verified is True
    assert seen.versions[2].problem is not None
    assert seen.versions[2].problem.code == "registry_chain_broken"


def test_a_version_not_signed_by_the_root_key_is_shown_unverified(
    world: AllianceWorld, tmp_path: Path
) -> None:
    folder = tmp_path / "alliance"
    shutil.copytree(world.folder, folder)
    first = folder / "registry" / "v1.jwt"
    head, body, signature = first.read_text().strip().split(".")
    first.write_text(f"{head}.{body}.{signature[:-4]}AAAA")
    seen = alliance_overview(folder, now=START)
    assert seen.chain_intact is False
    assert seen.versions[0].verified is False
    assert seen.versions[0].problem is not None
    assert seen.versions[1].links is False  # nothing verified to continue from
    assert seen.current_version == 3
    assert len(seen.members) == 3


def test_readiness_tells_ready_not_ready_and_unreachable(tmp_path: Path) -> None:
    with alliance_world(tmp_path) as world:
        url = f"{world.host.url}/v1/alliance/readiness"
        answer = httpx.get(url)
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "max-age=15"
        report = answer.json()
        members = {m["city"]: m for m in report["members"]}
        assert members["xiamen"]["state"] == "ready"
        assert members["xiamen"]["registry_version"] == 3
        fuzhou = members["fuzhou"]
        assert (fuzhou["state"], fuzhou["reason"], fuzhou["http_status"]) == (
            "not_ready", "checks_failed", 503,
        )  # fmt: skip
        assert fuzhou["failing_checks"] == ["registry"]
        zhangzhou = members["zhangzhou"]
        assert (zhangzhou["state"], zhangzhou["reason"]) == ("unreachable", "connect_failed")
        assert zhangzhou["status"] == "suspended"
        assert "could not connect" in zhangzhou["detail"]

        # Xiamen goes down: within the ttl the host asks nobody and says what it saw
        world.running["xiamen"].__exit__()
        world.clock.advance(10)
        again = httpx.get(url).json()
        assert again == report
        assert httpx.get(url).headers["cache-control"] == "max-age=5"
        world.clock.advance(5)  # the ttl has passed: asked again
        fresh = httpx.get(url).json()
        assert fresh["checked_at"] == START + 15
        assert {m["city"]: m["state"] for m in fresh["members"]}["xiamen"] == "unreachable"


def test_only_the_alliance_host_has_a_dashboard(tmp_path: Path) -> None:
    settings = xiamen_settings(tmp_path / "node")
    initialize_node(settings, now=NOW)
    client = TestClient(create_app(settings, now=lambda: NOW))
    for path in ("/v1/alliance/overview", "/v1/alliance/readiness"):
        answer = client.get(path)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"
