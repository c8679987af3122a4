"""A registry freeze (docs/SECURITY.md, "Registry rollback (and freeze)"; issue 17, gap D).

Whoever sits between a node and the alliance host can't sign a registry, but can stop
new versions from arriving: block the host, or have it answer 500 forever, so that a
member's suspension never reaches the node. The node keeps deciding with what it holds
for at most ``CCX_REGISTRY_MAX_STALENESS`` seconds without a good fetch, then refuses
(503 ``registry_stale``) and /readyz says why; the first good fetch heals it. The clock
of the last good fetch is saved, so a restart does not reset it. Fetches from the host
have an overall deadline and take no content coding (a trickling or inflating host)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from node.services import registry as registry_module
from node.services.registry import RegistryFollower, fetch_alliance_text
from tests.conftest import NOW
from tests.node.issuing_helpers import error_code, node_state
from tests.node.test_verifications import ROOT
from tests.security.world import FUZHOU, LIBRARY, REGISTRY_URL, World, attest, service_point

HOUR = 3600


def _answering_500(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, text="the host is broken (or made to look so)")


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("blocked", request=request)


@pytest.mark.parametrize("host", [_unreachable, _answering_500], ids=["blocked", "500"])
def test_a_frozen_registry_stops_decisions_after_the_max_staleness(
    world: World, clock: Any, host: Any
) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-freeze", 600)
    headers = service_point(world.xiamen, LIBRARY)
    state = node_state(world.xiamen)
    limit = state.settings.registry_max_staleness
    assert limit == 24 * HOUR  # the default
    follower = world.follower
    follower.max_staleness = limit  # as follower_for sets it on a node with a registry_url
    world.network.registry = follower.versions[-1].token
    assert follower.refresh(world.network.client(), REGISTRY_URL, now=NOW).unchanged

    frozen = httpx.Client(transport=httpx.MockTransport(host))
    clock.now = NOW + limit  # every fetch since has failed; at the limit, still trusted
    assert follower.refresh(frozen, REGISTRY_URL, now=clock.now).error is not None
    granted = world.verify(headers, attestation, holder, now=clock.now)
    assert granted.json()["decision"] == "granted", granted.text

    clock.now = NOW + limit + 1  # a suspension might have been published meanwhile
    assert follower.refresh(frozen, REGISTRY_URL, now=clock.now).error is not None
    refused = world.xiamen.post(
        "/v1/verifications/challenge", json={"scenario": LIBRARY}, headers=headers
    )
    assert refused.status_code == 503, refused.text
    assert error_code(refused) == "registry_stale"
    assert "CCX_REGISTRY_MAX_STALENESS" in refused.json()["error"]["message"]
    ready = world.xiamen.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["checks"]["registry"] is False
    assert body["registry"]["refused"] == "registry_stale"
    assert body["registry"]["stale_seconds"] == limit + 1
    assert body["registry"]["last_error"] == "registry_unreachable"

    # the host answers again (nothing new published): one good fetch heals the node
    assert follower.refresh(world.network.client(), REGISTRY_URL, now=clock.now).unchanged
    assert world.xiamen.get("/readyz").status_code == 200
    healed = world.verify(headers, attestation, holder, now=clock.now)
    assert healed.json()["decision"] == "granted", healed.text


def test_a_restart_does_not_reset_the_staleness_clock(world: World, tmp_path: Path) -> None:
    folder = tmp_path / "registry"
    world.network.registry = world.follower.versions[-1].token
    first = RegistryFollower(root_key=ROOT.public_key(), folder=folder, max_staleness=HOUR)
    assert first.refresh(world.network.client(), REGISTRY_URL, now=NOW).accepted == (1,)

    # restarted two hours later, the host blocked: it counts from the saved good fetch
    restarted = RegistryFollower(
        root_key=ROOT.public_key(), folder=folder, max_staleness=HOUR, started=NOW + 2 * HOUR
    )
    assert restarted.load(now=NOW + 2 * HOUR) == 1
    assert restarted.staleness(NOW + 2 * HOUR) == 2 * HOUR
    reason = restarted.stale_reason(NOW + 2 * HOUR)
    assert reason is not None
    assert "7200 s" in reason
    # a node that never fetched counts from its start
    fresh = RegistryFollower(root_key=ROOT.public_key(), max_staleness=HOUR, started=NOW)
    assert fresh.stale_reason(NOW + HOUR) is None
    assert fresh.stale_reason(NOW + HOUR + 1) is not None


class _Trickle:
    """A host that sends its headers and then one byte every ``pause`` seconds."""

    def __init__(self, pause: float = 0.05) -> None:
        self.pause = pause
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/registry/current.jwt"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.server.settimeout(0.2)
        while not self.stop.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                try:
                    while not self.stop.is_set():
                        connection.sendall(b"e")
                        time.sleep(self.pause)
                except OSError:  # the node hung up: what the test wants
                    pass

    def __enter__(self) -> _Trickle:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(registry_module, "FETCH_DEADLINE", 0.5)
    return 0.5


def test_a_trickling_alliance_host_is_cut_off_at_the_deadline(short_deadline: float) -> None:
    """Each byte arrives well within the read timeout (5 s), so only the overall deadline
    ends the fetch: the registry (and a mapping table, through the same function)."""
    follower = RegistryFollower(root_key=ROOT.public_key())
    with _Trickle() as host, httpx.Client() as client:
        started = time.monotonic()
        result = follower.refresh(client, host.url, now=NOW)
        took = time.monotonic() - started
    assert result.error is not None
    assert result.error[0] == "registry_unreachable"
    assert "took over 0.5 s" in result.error[1]
    assert took < short_deadline + 2


def test_a_content_coded_registry_is_refused() -> None:
    """A few hundred bytes of gzip could inflate to far more than the size limit checks
    as they arrive: the node asks for identity and refuses any coding."""
    seen: list[str] = []

    def gzipped(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Accept-Encoding", ""))
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"\x1f\x8b")

    client = httpx.Client(transport=httpx.MockTransport(gzipped))
    follower = RegistryFollower(root_key=ROOT.public_key())
    result = follower.refresh(client, REGISTRY_URL, now=NOW)
    assert result.error is not None
    assert "'gzip' body unasked" in result.error[1]
    assert seen == ["identity"]
    with pytest.raises(registry_module.FetchRefused, match="gzip"):
        fetch_alliance_text(client, "http://alliance.ccx.test/tables/xiamen-v1.jwt")
