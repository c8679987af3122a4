"""A flood of verifications (docs/SECURITY.md, "Flood of verifications").

What bounds the work one caller can make a node do: a token bucket per client in front
of both service-point endpoints, a size limit checked before any cryptography, and one
registry fetch per cooldown however many presentations name keys the node doesn't
know (each such presentation would otherwise make the node call the alliance host)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import protocol as P
from tests.conftest import NOW, ec_key
from tests.node.issuing_helpers import error_code
from tests.security.world import (
    FUZHOU,
    REGISTRY_URL,
    World,
    attest,
    forge_attestation,
    service_point,
)


def test_a_flood_from_one_client_is_cut_at_its_burst(make_client: Any, tmp_path: Path) -> None:
    world = World.make(make_client, tmp_path, verify_burst=3, verify_rate=0.5)
    flooder = service_point(world.xiamen, "library_deposit_free")
    other = service_point(world.xiamen, "library_deposit_free", client_id="other-desk")
    junk = {"nonce": "junk", "presentation": "junk"}
    codes = [
        error_code(world.xiamen.post("/v1/verifications", json=junk, headers=flooder))
        for _ in range(4)
    ]
    assert codes == ["nonce_unknown"] * 3 + ["rate_limited"]
    challenge = world.xiamen.post(
        "/v1/verifications/challenge", json={"scenario": "library_deposit_free"}, headers=flooder
    )
    assert challenge.status_code == 429  # one bucket for both endpoints
    assert challenge.headers["Retry-After"] == "2"
    world.challenge(other)  # another client's bucket is its own


def test_a_flood_of_unknown_issuer_keys_costs_the_alliance_host_one_fetch_per_cooldown(
    make_client: Any, tmp_path: Path, clock: Any
) -> None:
    world = World.make(
        make_client,
        tmp_path,
        registry_url=REGISTRY_URL,
        registry_refetch_cooldown=60,
        verify_burst=100,
    )
    world.network.registry = world.follower.versions[-1].token
    headers = service_point(world.xiamen, "library_deposit_free")

    def flood(count: int, seed: int) -> list[str]:
        codes = []
        for n in range(count):
            attacker, holder = ec_key(seed + 2 * n), ec_key(seed + 2 * n + 1)
            forged = forge_attestation(attacker, P.jwk_thumbprint(P.public_jwk(attacker)), holder)
            response = world.verify(headers, forged, holder, now=clock.now)
            codes.append(error_code(response))
        return codes

    assert flood(6, 600) == ["unknown_kid"] * 6
    assert len(world.network.to(REGISTRY_URL)) == 1  # not six
    clock.now = NOW + 60
    assert flood(3, 700) == ["unknown_kid"] * 3
    assert len(world.network.to(REGISTRY_URL)) == 2


def test_an_oversized_presentation_is_refused_before_it_is_verified(world: World) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-big", 600)
    headers = service_point(world.xiamen, "library_deposit_free")
    challenge = world.challenge(headers)
    presentation = world.present(attestation, holder, challenge)
    padded = presentation + "A" * (16_385 - len(presentation))
    refused = world.send(headers, challenge["nonce"], padded)
    assert refused.status_code == 422, refused.text
    assert error_code(refused) == "invalid_request"
    assert "A" * 64 not in refused.text  # the input is not echoed back
    granted = world.send(headers, challenge["nonce"], presentation)
    assert granted.json()["decision"] == "granted"  # nothing was spent on the big one
