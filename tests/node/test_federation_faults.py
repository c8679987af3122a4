"""Federation faults over real loopback (issue 5): two real nodes under uvicorn, Fuzhou (a
visitor's home city, the issuer) and Xiamen (the service point's city, the verifier),
real signatures and real HTTP between them; both follow one signed alliance registry.

- the issuer down: Xiamen serves Fuzhou's cached status list through its ttl and the
  policy's ``status_stale_limit``, then fails closed (503 ``status_unavailable``);
- a key rotation at the issuer, gated by the registry, with no verification failing;
- a consent withdrawn at home reaches the service point once the cached list expires;
- a replayed and a tampered presentation are refused.

Both nodes read one clock the test moves by hand (it starts at the tests' fixed NOW, and
the holders' proofs are dated by it too), so the world's time moves for both cities at
once while the HTTP underneath stays real, on any day.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session

import protocol as P
from alliance.state import DEFAULT_POLICY
from node.app import create_app, initialize_node
from node.auth import hash_token
from node.services import clients
from node.services.registry import RegistryFollower
from tests.conftest import NOW, ec_key
from tests.node.servers import RunningNode, WorldClock, free_port
from tests.node.test_verifications import ROOT, _attest_over_http, _settings, registry_token

ADMIN_TOKEN = "an admin token for the federation fault tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SCENARIO = "library_deposit_free"  # policy minimum 600 on the alliance scale


class Federation:
    """Fuzhou and Xiamen on loopback, each following the same registry versions."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        policy: dict[str, Any] | None = None,
        fuzhou: dict[str, Any] | None = None,
    ) -> None:
        self.clock = WorldClock(NOW)
        self.policy = policy
        fz_port, xm_port = free_port(), free_port()
        fz = _settings(tmp_path / "fz", fz_port, "fuzhou").model_copy(
            update={"admin_token_hash": hash_token(ADMIN_TOKEN), **(fuzhou or {})}
        )
        # The clock stands still between moves, so the desk's rate bucket never refills.
        xm = _settings(tmp_path / "xm", xm_port, "xiamen").model_copy(update={"verify_burst": 100})
        self.fz_id, self.xm_id = fz.node_id, xm.node_id
        now = self.clock()
        self.jwks = {
            fz.node_id: initialize_node(fz, now=now).jwks(now),
            xm.node_id: initialize_node(xm, now=now).jwks(now),
        }
        self.tokens = [registry_token(self._members(), now=now, policy=policy)]
        fz_app, xm_app = create_app(fz, now=self.clock), create_app(xm, now=self.clock)
        self.followers: list[RegistryFollower] = []
        for app in (fz_app, xm_app):
            follower = RegistryFollower(root_key=ROOT.public_key())
            follower.accept(self.tokens[0], now=now)
            app.state.node.follower = follower
            self.followers.append(follower)
        self.fuzhou, self.xiamen = RunningNode(fz_app, fz_port), RunningNode(xm_app, xm_port)
        with Session(xm_app.state.node.engine) as db:
            _, token = clients.create_client(
                db, client_id="library-desk", department="culture",
                scopes=[f"verify:{SCENARIO}"], actor="admin", now=now,
            )  # fmt: skip
        self.desk = {"Authorization": f"Bearer {token}"}

    def _members(self) -> list[tuple[str, str, dict[str, Any], str]]:
        return [
            (self.xm_id, "xiamen", self.jwks[self.xm_id], "active"),
            (self.fz_id, "fuzhou", self.jwks[self.fz_id], "active"),
        ]

    def publish(self, fuzhou_jwks: dict[str, Any]) -> int:
        """The alliance lists Fuzhou's ``fuzhou_jwks`` in a new version; both nodes take it."""
        self.jwks[self.fz_id] = fuzhou_jwks
        version = len(self.tokens) + 1
        now = self.clock()
        token = registry_token(
            self._members(),
            now=now,
            version=version,
            prev=P.registry_hash(self.tokens[-1]),
            policy=self.policy,
        )
        for follower in self.followers:
            follower.accept(token, now=now)
        self.tokens.append(token)
        return version

    def presentation(self, attestation: str, holder: Any) -> tuple[str, str]:
        """A challenge from Xiamen's desk, answered by the holder at the world's time."""
        challenge = httpx.post(
            f"{self.xiamen.url}/v1/verifications/challenge",
            json={"scenario": SCENARIO},
            headers=self.desk,
        )
        assert challenge.status_code == 201, challenge.text
        body = challenge.json()
        presented = P.present(
            attestation,
            disclose=body["disclose"],
            holder_key=holder,
            aud=body["aud"],
            nonce=body["nonce"],
            now=self.clock(),
        )
        return body["nonce"], presented

    def send(self, nonce: str, presentation: str) -> httpx.Response:
        return httpx.post(
            f"{self.xiamen.url}/v1/verifications",
            json={"nonce": nonce, "presentation": presentation},
            headers=self.desk,
        )

    def verify(self, attestation: str, holder: Any) -> httpx.Response:
        return self.send(*self.presentation(attestation, holder))

    def cache_stats(self) -> Any:
        return self.xiamen.app.state.node.status_cache.snapshot()


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Callable[..., Federation]]:
    """Build and start a Federation (stopped after the test)."""
    with ExitStack() as stack:

        def make(**kwargs: Any) -> Federation:
            world = Federation(tmp_path, **kwargs)
            stack.enter_context(world.fuzhou)
            stack.enter_context(world.xiamen)
            return world

        yield make


def _code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def _granted(response: httpx.Response) -> bool:
    assert response.status_code == 200, response.text
    return bool(response.json()["decision"] == "granted")


def _kid(attestation: str) -> str:
    header = attestation.split("~", 1)[0].split(".", 1)[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid


# --- the issuer down -----------------------------------------------------------------------


def test_with_the_issuer_down_the_cached_list_serves_until_the_stale_limit(
    federation: Callable[..., Federation],
) -> None:
    policy = copy.deepcopy(DEFAULT_POLICY)
    policy["status_stale_limit"] = 600  # less than a status list's life (a day)
    world = federation(policy=policy)  # Fuzhou's lists carry ttl 300 (the default)
    holder = ec_key(41)
    attestation = _attest_over_http(
        world.fuzhou, "fz-visitor", 600, holder, now=world.clock()
    )  # alliance 662

    assert _granted(world.verify(attestation, holder))  # Xiamen fetched Fuzhou's list
    assert world.cache_stats().fetches == 1
    world.fuzhou.__exit__()  # Fuzhou's node is down from here on

    world.clock.advance(100)  # within the ttl: the fresh copy, no fetch
    assert _granted(world.verify(attestation, holder))
    assert world.cache_stats().fetches == 1
    assert world.cache_stats().hits == 1

    world.clock.advance(400)  # t0+500: ttl over, the fetch fails, the stale copy serves
    assert _granted(world.verify(attestation, holder))
    world.clock.advance(399)  # t0+899: 1 s before ttl + stale limit, still served
    assert _granted(world.verify(attestation, holder))
    stats = world.cache_stats()
    assert (stats.fetches, stats.fetch_failures, stats.stale_served) == (3, 2, 2)

    world.clock.advance(2)  # t0+901: past the limit, fail closed
    refused = world.verify(attestation, holder)
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "status_unavailable"
    assert world.fz_id in error["message"]
    assert "has been unreachable for 401 s" in error["message"]
    assert "serve 600 s past its ttl; failing closed" in error["message"]
    assert error["details"] == {
        "issuer": world.fz_id,
        "uri": f"{world.fz_id}/v1/status-lists/1",
        "stale_limit": 600,
        "cause": "status_list_unreachable",
        "unreachable_for": 401,
    }
    assert world.cache_stats().unavailable == 1


# --- key rotation at the issuer ------------------------------------------------------------


def test_a_rotation_at_the_issuer_fails_no_verification(
    federation: Callable[..., Federation],
) -> None:
    world = federation()
    fz = world.fuzhou.url
    listed = world.jwks[world.fz_id]  # registry v1: Fuzhou's active and next keys
    assert len(listed["keys"]) == 2
    old_holder, new_holder = ec_key(42), ec_key(43)
    old = _attest_over_http(world.fuzhou, "fz-before", 600, old_holder, now=world.clock())
    assert _granted(world.verify(old, old_holder))

    rotated = httpx.post(f"{fz}/v1/admin/keys/rotate", headers=ADMIN)
    assert rotated.status_code == 200, rotated.text  # v1 lists the next key
    done = rotated.json()
    assert done["retired_kid"] == _kid(old)
    assert {done["retired_kid"], done["active_kid"]} == {k["kid"] for k in listed["keys"]}

    new = _attest_over_http(world.fuzhou, "fz-after", 620, new_holder, now=world.clock())
    assert _kid(new) == done["active_kid"] != _kid(old)
    assert _granted(world.verify(old, old_holder))  # the retired key, listed in v1
    assert _granted(world.verify(new, new_holder))  # the promoted key, listed in v1 as next

    refused = httpx.post(f"{fz}/v1/admin/keys/rotate", headers=ADMIN)
    assert refused.status_code == 409, refused.text  # v1 lacks the new next key
    assert _code(refused) == "next_key_not_in_registry"
    assert done["next_kid"] in refused.json()["error"]["message"]

    jwks = httpx.get(f"{fz}/.well-known/jwks.json").json()  # retired, active and next
    assert {k["kid"] for k in jwks["keys"]} == {
        *(k["kid"] for k in listed["keys"]),
        done["next_kid"],
    }
    retired = next(k for k in jwks["keys"] if k["kid"] == done["retired_kid"])
    assert retired["exp"] == done["retired_until"]
    assert world.publish(jwks) == 2
    assert _granted(world.verify(old, old_holder))  # the retired key stays listed in v2
    assert _granted(world.verify(new, new_holder))

    again = httpx.post(f"{fz}/v1/admin/keys/rotate", headers=ADMIN)
    assert again.status_code == 200, again.text  # v2 lists the next key
    assert again.json()["active_kid"] == done["next_kid"]
    assert _granted(world.verify(old, old_holder))
    assert _granted(world.verify(new, new_holder))
    assert world.cache_stats().unavailable == 0


# --- a consent withdrawn at home -----------------------------------------------------------


def test_a_consent_withdrawn_at_home_denies_the_visitor_once_the_cached_list_expires(
    federation: Callable[..., Federation],
) -> None:
    world = federation(fuzhou={"status_list_ttl": 30})  # Xiamen clamps it to 60 s
    holder = ec_key(44)
    attestation = _attest_over_http(world.fuzhou, "fz-withdrawer", 600, holder, now=world.clock())
    assert _granted(world.verify(attestation, holder))  # Xiamen caches Fuzhou's list

    login = httpx.post(f"{world.fuzhou.url}/dev-idp/token", json={"subject": "fz-withdrawer"})
    resident = {"Authorization": f"Bearer {login.json()['access_token']}"}
    withdrawn = httpx.delete(f"{world.fuzhou.url}/v1/me/consents/share_alliance", headers=resident)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["revoked_attestations"] == 1

    world.clock.advance(31)  # past the list's own ttl, not the clamped one
    assert _granted(world.verify(attestation, holder))
    assert world.cache_stats().fetches == 1

    world.clock.advance(30)  # t0+61: the copy has expired, Xiamen fetches the new list
    denied = world.verify(attestation, holder)
    assert denied.status_code == 200, denied.text
    body = denied.json()
    assert body["decision"] == "denied"
    assert body["tier"] is None
    assert [r["code"] for r in body["reasons"]] == ["attestation_revoked"]
    assert world.cache_stats().fetches == 2


# --- replayed and tampered presentations ---------------------------------------------------


def test_a_replayed_or_tampered_presentation_is_refused(
    federation: Callable[..., Federation],
) -> None:
    world = federation()
    holder = ec_key(45)
    attestation = _attest_over_http(world.fuzhou, "fz-shown", 600, holder, now=world.clock())

    nonce, presentation = world.presentation(attestation, holder)
    assert _granted(world.send(nonce, presentation))
    replayed = world.send(nonce, presentation)
    assert replayed.status_code == 401, replayed.text
    assert _code(replayed) == "nonce_used"

    nonce, presentation = world.presentation(attestation, holder)
    issuer_jwt, rest = presentation.split("~", 1)
    head, payload, signature = issuer_jwt.split(".")
    middle = len(signature) // 2  # not the last character: its low bits are padding
    swapped = "B" if signature[middle] == "A" else "A"
    signature = signature[:middle] + swapped + signature[middle + 1 :]
    tampered = world.send(nonce, f"{head}.{payload}.{signature}~{rest}")
    assert tampered.status_code == 401, tampered.text
    assert _code(tampered) == "invalid_signature"
    assert _granted(world.verify(attestation, holder))  # the genuine one still is
