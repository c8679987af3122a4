"""The FastAPI application factory. Nothing is built at import time.

``create_app(settings)`` wires settings, the database engine, the keyring, the scoring
model, metrics and the routers; the lifespan opens and closes what needs it (the
in-process scheduler in development). Routes stay thin: parse, call a service, return.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keys import Keyring
from node.db import make_engine, migrate
from node.errors import error_body, install_error_handlers
from node.files import write_atomically
from node.scoring import ScoringModel, load_model
from node.settings import Settings

__all__ = ["NodeState", "create_app", "initialize_node", "load_keyring", "save_keyring"]

log = logging.getLogger("ccx.node")


@dataclass
class Metrics:
    """Per-app Prometheus metrics (a registry of its own, so many apps can share a process)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "ccx_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ccx_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.issued = Counter(
            "ccx_attestations_issued_total", "attestations issued", registry=self.registry
        )
        self.revoked = Counter(
            "ccx_attestations_revoked_total", "attestations revoked", registry=self.registry
        )
        self.records = Counter(
            "ccx_records_total", "records pushed, by outcome", ["outcome"], registry=self.registry
        )
        self.verifications = Counter(
            "ccx_verifications_total",
            "service-point verifications by scenario and outcome (granted, denied, or the "
            "refusal's error code)",
            ["scenario", "outcome"],
            registry=self.registry,
        )
        self.registry_version = Gauge(
            "ccx_registry_version",
            "the alliance registry version in effect (0: none)",
            registry=self.registry,
        )
        self.registry_stale_seconds = Gauge(
            "ccx_registry_stale_seconds",
            "seconds since the alliance registry was last fetched successfully (-1: never)",
            registry=self.registry,
        )
        self.rescore_seconds = Gauge(
            "ccx_last_full_rescore_seconds",
            "duration of the last full rescoring",
            registry=self.registry,
        )


KEYRING_RECHECK_SECONDS = 5.0


@dataclass
class NodeState:
    """What the routes and services share, built once per app."""

    settings: Settings
    engine: Engine
    keyring: Keyring
    model: ScoringModel
    metrics: Metrics
    started_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)
    _keyring_seen: tuple[float, int | None] = (0.0, None)  # (checked at, file mtime)

    def signing_keys(self) -> Keyring:
        """The node's keyring, current within a few seconds of a rotation.

        A rotation (``POST /v1/admin/keys/rotate`` or ``ccx node rotate-keys``) rewrites
        the keyring file; every worker process sees the new file here, checking its
        modification time at most every ``KEYRING_RECHECK_SECONDS``, so that N workers
        agree without a restart. Use this, not ``keyring``, wherever a key is used.
        """
        checked, mtime = self._keyring_seen
        moment = time.monotonic()
        if moment - checked < KEYRING_RECHECK_SECONDS:
            return self.keyring
        try:
            current = self.settings.keyring_path.stat().st_mtime_ns
        except OSError:  # the file went away: keep signing with what was loaded
            current = mtime
        if mtime is not None and current != mtime:
            self.keyring = load_keyring(self.settings)
            log.info(json.dumps({"event": "keyring_reloaded", "active": self.keyring.active.kid}))
        self._keyring_seen = (moment, current)
        return self.keyring


def load_keyring(settings: Settings) -> Keyring:
    """The node's keyring from its encrypted file (``ccx node init`` writes it)."""
    path = settings.keyring_path
    if not path.exists():
        raise FileNotFoundError(
            f"no keyring at {path}: run `ccx node init --city {settings.city}` first"
        )
    return Keyring.load(path.read_bytes(), settings.keyring_secret())


def save_keyring(settings: Settings, ring: Keyring) -> None:
    """Write the keyring file atomically, readable by the node's user alone (0600)."""
    data = ring.dump(settings.keyring_secret())
    write_atomically(settings.keyring_path, data, mode=0o600)


def initialize_node(settings: Settings, *, now: int | None = None) -> Keyring:
    """Create the data folder, the database schema and the keyring (if absent)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(make_engine(settings.effective_database_url))
    if settings.keyring_path.exists():
        return load_keyring(settings)
    ring = Keyring.create(now=int(time.time()) if now is None else now)
    save_keyring(settings, ring)
    return ring


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes (413), counting what actually arrives,
    not only what Content-Length claims."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _send_json(
                send, 413, error_body("body_too_large", f"the body exceeds {self.limit} bytes")
            )
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            await _send_json(
                send, 413, error_body("body_too_large", f"the body exceeds {self.limit} bytes")
            )


class Observe:
    """Counts and times every HTTP request by method, route template and status.

    Pure ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware
    runs the rest of the app in a task of its own and streams the response through a
    queue, which cost 0.6-1 ms a request here (bench/issue_http.py, A/B).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees when the app fails before answering

        async def observing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)


class _BodyTooLarge(Exception):
    pass


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class _StatusCacheCollector(Collector):
    """Exports the counters of the cache of other cities' status lists, read at scrape
    time (the cache counts; Prometheus only looks)."""

    def __init__(self, state: NodeState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        from node.services.verifying import STATUS_CACHE

        cache = self.state.extra.get(STATUS_CACHE)
        if cache is None:
            return
        stats = cache.snapshot()
        counters = CounterMetricFamily(
            "ccx_status_cache_events",
            "other cities' status lists: hits, fetches, fetch_failures, stale_served, "
            "refused, unavailable (failed closed)",
            labels=["event"],
        )
        for event in (
            "hits",
            "fetches",
            "fetch_failures",
            "stale_served",
            "refused",
            "unavailable",
        ):
            counters.add_metric([event], getattr(stats, event))
        yield counters
        yield GaugeMetricFamily(
            "ccx_status_cache_entries", "status lists held in the cache", value=stats.entries
        )


HTTP_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
HTTP_CLIENT = "http.client"  # NodeState.extra: the node's outgoing HTTP client (lifespan)


async def _follow_registry(state: NodeState, url: str) -> None:
    from node.services.registry import FOLLOWER

    follower = state.extra[FOLLOWER]
    while True:
        try:
            await anyio.to_thread.run_sync(
                lambda: follower.refresh(state.extra[HTTP_CLIENT], url, now=state.extra["now"]())
            )
        except Exception:  # refresh reports what it expects; anything else must not end the loop
            log.exception("registry refresh failed unexpectedly; trying again later")
        await asyncio.sleep(state.settings.registry_refresh)


def create_app(
    settings: Settings | None = None, *, now: Callable[[], int] | None = None
) -> FastAPI:
    """Build a node application. ``now`` overrides the clock (tests)."""
    settings = settings or Settings()
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    state = NodeState(
        settings=settings,
        engine=engine,
        keyring=load_keyring(settings),
        model=load_model(settings.scoring_model),
        metrics=Metrics(),
    )
    state.signing_keys()  # remember the file's modification time
    state.extra["now"] = now or (lambda: int(time.time()))
    from node.services.registry import FOLLOWER, follower_for

    follower = follower_for(settings, now=state.extra["now"]())
    state.extra[FOLLOWER] = follower
    state.metrics.registry.register(_StatusCacheCollector(state))
    if follower is not None:
        clock = state.extra["now"]
        state.metrics.registry_version.set_function(
            lambda: float(getattr(follower.in_effect(clock()), "version", 0))
        )
        state.metrics.registry_stale_seconds.set_function(
            lambda: float(follower.staleness(clock()) if follower.last_success else -1)
        )
    if settings.dev_idp:
        from node.dev_idp import DevIdentityProvider

        provider = DevIdentityProvider(issuer=settings.idp_issuer, audience=settings.idp_audience)
        state.extra["dev_idp"] = provider
        state.extra["idp_jwks"] = provider.jwks()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info(
            json.dumps({"event": "node_started", "node": settings.node_id, "city": settings.city})
        )
        if settings.dev_idp:
            log.warning(
                json.dumps(
                    {
                        "event": "dev_idp_enabled",
                        "message": "the development identity provider is on: anyone can log "
                        "in as any resident (POST /dev-idp/token); never in production",
                    }
                )
            )
        http = httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False)
        state.extra[HTTP_CLIENT] = http
        following = None
        if follower is not None and settings.registry_url:
            # Every worker follows the registry itself (a conditional GET every few
            # minutes): it is this process's memory that must be current.
            following = asyncio.create_task(_follow_registry(state, settings.registry_url))
        scheduler = None
        if settings.scheduler:  # development: the jobs run in this process
            from node.jobs import build_scheduler

            scheduler = build_scheduler(state)
            scheduler.start()
        yield
        if following is not None:
            following.cancel()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        http.close()
        engine.dispose()

    app = FastAPI(
        title=f"ccx node ({settings.city})",
        version="1",
        description="City Credit Exchange node: scoring, consent, attestations, federation.",
        lifespan=lifespan,
        # A path with a trailing slash is not found, not redirected: Starlette builds the
        # redirect from the request's Host header, so `GET /x/` with `Host: evil.example`
        # answered 307 to http://evil.example/x (issue 19, item 6).
        redirect_slashes=False,
        # The interactive pages load Swagger UI and ReDoc from a CDN, where an operator
        # might paste the admin token: off unless CCX_API_DOCS (issue 19, item 8).
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
    )
    app.state.node = state
    install_error_handlers(app)

    from node.routers import federation

    app.include_router(federation.router)
    from node.routers import (
        admin,
        alliance,
        attestations,
        departments,
        dev_idp,
        residents,
        status,
        verifications,
    )

    for module in (departments, residents, attestations, status, alliance, admin, verifications):
        app.include_router(module.router)
    if settings.dev_idp:
        app.include_router(dev_idp.router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(Observe, metrics=state.metrics)  # outermost: it times everything
    return app
