"""A registry rollback, and its cousin the freeze (docs/SECURITY.md, "Registry
rollback").

Whoever sits between a node and the alliance host (or controls the host, without the
root key) can't sign a registry, but can replay old signed versions or stop serving new
ones. An old version would bring back a suspended member or a dropped key. The node
takes only higher versions that continue its chain, keeps what it accepted across a
restart, and stops deciding when the last version it holds expires."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.services.registry import RegistryFollower
from tests.conftest import NOW
from tests.node.issuing_helpers import error_code, node_state
from tests.node.test_verifications import ROOT
from tests.security.world import FUZHOU, REGISTRY_URL, World, attest, service_point

DAY = 86400


def test_a_rollback_cannot_bring_back_a_suspended_member(world: World, tmp_path: Path) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-rb", 600)
    headers = service_point(world.xiamen, "library_deposit_free")
    first = world.follower.versions[0].token  # v1: Fuzhou active
    suspended = world.registry(2, now=NOW, fuzhou_status="suspended")
    http = world.network.client()

    saved = RegistryFollower(root_key=ROOT.public_key(), folder=tmp_path / "registry")
    for follower in (world.follower, saved):  # the running node, one that will restart
        world.network.registry = first
        follower.refresh(http, REGISTRY_URL, now=NOW)
        world.network.registry = suspended
        assert follower.refresh(http, REGISTRY_URL, now=NOW).accepted == (2,)
        world.network.registry = first  # the attacker serves the old, valid, signed v1
        result = follower.refresh(http, REGISTRY_URL, now=NOW)
        assert result.error is not None
        assert result.error[0] == "registry_rollback"
        assert follower.newest is not None
        assert follower.newest.version == 2
    refused = world.verify(headers, attestation, holder)
    assert error_code(refused) == "issuer_suspended"

    restarted = RegistryFollower(root_key=ROOT.public_key(), folder=tmp_path / "registry")
    assert restarted.load(now=NOW) == 2  # what it accepted survives the restart
    result = restarted.refresh(http, REGISTRY_URL, now=NOW)
    assert result.error is not None
    assert result.error[0] == "registry_rollback"
    node_state(world.xiamen).follower = restarted
    refused = world.verify(headers, attestation, holder)
    assert error_code(refused) == "issuer_suspended"


def test_a_frozen_registry_stops_decisions_once_it_expires(world: World, clock: Any) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-frozen", 600)
    headers = service_point(world.xiamen, "library_deposit_free")
    world.network.registry = None  # the alliance host is blocked: no new version arrives
    held = world.follower.versions[-1]
    assert held.expires_at == NOW + 30 * DAY

    clock.now = NOW + 3 * DAY  # stale, not expired: the last good version still decides
    result = world.follower.refresh(world.network.client(), REGISTRY_URL, now=clock.now)
    assert result.error is not None
    granted = world.verify(headers, attestation, holder, now=clock.now)
    assert granted.json()["decision"] == "granted"
    ready = world.xiamen.get("/readyz").json()
    assert ready["registry"]["last_error"] == "registry_unreachable"

    clock.now = held.expires_at + 1  # whatever it lists may be out of date: decide nothing
    response = world.xiamen.post(
        "/v1/verifications/challenge", json={"scenario": "library_deposit_free"}, headers=headers
    )
    assert response.status_code == 503, response.text
    assert error_code(response) == "registry_unavailable"
    assert world.xiamen.get("/readyz").status_code == 503
