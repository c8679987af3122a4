"""A lost phone (docs/SECURITY.md, "Stolen holder key"; issue 17, known gap C).

Whoever finds a resident's unlocked phone holds her wallet key and attestations and can
be her at any service point. She no longer needs to withdraw a consent (which revokes
everything, her other phone's too): she suspends the phone's attestation (and resumes
it if the phone turns up), or revokes every attestation bound to the phone's key at
once. Her home city's service points see it at once; another city's once its copy of
her city's status list has lived its ttl."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from node.settings import Settings
from tests.conftest import NOW
from tests.node.issuing_helpers import bearer, node_state
from tests.security.world import FUZHOU, LIBRARY, XIAMEN, World, attest, service_point


def her_attestation(home: TestClient, resident: str) -> dict[str, Any]:
    listed = home.get("/v1/me/attestations", headers=bearer(home, resident))
    assert listed.status_code == 200, listed.text
    newest: dict[str, Any] = listed.json()["attestations"][0]
    return newest


def cache_lifetime(verifier: TestClient, issuer: TestClient) -> int:
    """How long the verifier keeps the issuer's status list: its ttl, clamped."""
    mine: Settings = node_state(verifier).settings
    theirs: Settings = node_state(issuer).settings
    return max(theirs.status_list_ttl, mine.status_cache_min_ttl)


def decision(response: Any) -> tuple[str, list[str]]:
    assert response.status_code == 200, response.text
    body = response.json()
    return body["decision"], [reason["code"] for reason in body["reasons"]]


def test_a_thief_with_her_lost_phone_is_refused_at_home_once_she_suspends_it(
    world: World,
) -> None:
    attestation, phone_key = attest(world.xiamen, XIAMEN, "lost-phone-1", 720)
    desk = service_point(world.xiamen, LIBRARY)
    assert decision(world.verify(desk, attestation, phone_key))[0] == "granted"

    held = her_attestation(world.xiamen, "lost-phone-1")
    suspended = world.xiamen.post(
        f"/v1/me/attestations/{held['id']}/suspend", headers=bearer(world.xiamen, "lost-phone-1")
    )
    assert suspended.status_code == 200, suspended.text
    # the thief, at once (her home node reads its own database)
    assert decision(world.verify(desk, attestation, phone_key)) == (
        "denied",
        ["attestation_suspended"],
    )

    resumed = world.xiamen.post(
        f"/v1/me/attestations/{held['id']}/resume", headers=bearer(world.xiamen, "lost-phone-1")
    )
    assert resumed.status_code == 200, resumed.text  # the phone turned up
    assert decision(world.verify(desk, attestation, phone_key))[0] == "granted"


def test_a_thief_with_her_lost_phone_is_refused_in_another_city_once_the_list_renews(
    world: World, clock: Any
) -> None:
    attestation, phone_key = attest(world.fuzhou, FUZHOU, "lost-phone-2", 720)
    desk = service_point(world.xiamen, LIBRARY)
    assert decision(world.verify(desk, attestation, phone_key))[0] == "granted"  # cached
    lifetime = cache_lifetime(world.xiamen, world.fuzhou)
    held = her_attestation(world.fuzhou, "lost-phone-2")
    her = bearer(world.fuzhou, "lost-phone-2")

    assert world.fuzhou.post(f"/v1/me/attestations/{held['id']}/suspend", headers=her).is_success
    clock.now = NOW + lifetime + 1
    assert decision(world.verify(desk, attestation, phone_key, now=clock.now)) == (
        "denied",
        ["attestation_suspended"],
    )

    assert world.fuzhou.post(f"/v1/me/attestations/{held['id']}/resume", headers=her).is_success
    clock.now += lifetime + 1
    assert decision(world.verify(desk, attestation, phone_key, now=clock.now))[0] == "granted"


def test_a_thief_with_her_lost_phone_is_refused_once_she_revokes_its_key(
    world: World, clock: Any
) -> None:
    attestation, phone_key = attest(world.fuzhou, FUZHOU, "lost-phone-3", 720)
    desk = service_point(world.xiamen, LIBRARY)
    assert decision(world.verify(desk, attestation, phone_key))[0] == "granted"
    held = her_attestation(world.fuzhou, "lost-phone-3")

    revoked = world.fuzhou.post(
        "/v1/me/attestations/revoke",
        json={"holder_kid": held["holder_kid"]},
        headers=bearer(world.fuzhou, "lost-phone-3"),
    )
    assert revoked.status_code == 200, revoked.text
    assert [a["status"] for a in revoked.json()["attestations"]] == ["revoked"]
    clock.now = NOW + cache_lifetime(world.xiamen, world.fuzhou) + 1
    assert decision(world.verify(desk, attestation, phone_key, now=clock.now)) == (
        "denied",
        ["attestation_revoked"],
    )
    # a revocation is final: resuming it is refused and the thief stays out
    resumed = world.fuzhou.post(
        f"/v1/me/attestations/{held['id']}/resume", headers=bearer(world.fuzhou, "lost-phone-3")
    )
    assert resumed.status_code == 409
    clock.now += cache_lifetime(world.xiamen, world.fuzhou) + 1
    assert decision(world.verify(desk, attestation, phone_key, now=clock.now)) == (
        "denied",
        ["attestation_revoked"],
    )
