"""The FastAPI application factory. Nothing is built at import time.

``create_app(settings)`` wires settings, the database engine, the keyring, the scoring
model, metrics and the routers; the lifespan opens and closes what needs it (the
in-process scheduler in development). Routes stay thin: parse, call a service, return.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio.to_thread
import httpx
from fastapi import FastAPI

from keys import Keyring
from node.cors import WalletCors
from node.db import make_engine, migrate
from node.dev_idp import DevIdentityProvider
from node.dev_idp import node_key as dev_idp_key
from node.errors import install_error_handlers
from node.jobs import build_scheduler, checkpoint_audit_head
from node.middleware import BodyLimit, Observe, RateLimit
from node.openapi_links import with_links
from node.openapi_security import with_security_schemes
from node.routers import (
    admin,
    alliance,
    attestations,
    departments,
    dev_idp,
    federation,
    oid4vci,
    oid4vp,
    residents,
    status,
    verifications,
)
from node.scoring import load_model
from node.server import redact_access_log
from node.services.registry import RegistryFollower, follower_for
from node.settings import Settings
from node.state import Metrics, NodeState, load_keyring, save_keyring, wall_clock
from node.web import mount_pages

__all__ = ["create_app", "initialize_node"]

log = logging.getLogger("ccx.node")


def initialize_node(settings: Settings, *, now: int | None = None) -> Keyring:
    """Create the data folder, the database schema and the keyring (if absent)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(make_engine(settings.effective_database_url))
    if settings.keyring_path.exists():
        return load_keyring(settings)
    ring = Keyring.create(now=wall_clock() if now is None else now)
    save_keyring(settings, ring)
    return ring


HTTP_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


async def _follow_registry(
    state: NodeState, follower: RegistryFollower, http: httpx.Client, url: str
) -> None:
    while True:
        try:
            await anyio.to_thread.run_sync(lambda: follower.refresh(http, url, now=state.now()))
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
    clock = now or wall_clock
    follower = follower_for(settings, now=clock())
    state = NodeState(
        settings=settings,
        engine=engine,
        keyring=load_keyring(settings),
        model=load_model(settings.scoring_model),
        metrics=Metrics(),
        now=clock,
        follower=follower,
        dev_idp=(
            DevIdentityProvider(
                issuer=settings.idp_issuer,
                audience=settings.idp_audience,
                key=dev_idp_key(settings.data_dir),  # one for every worker (issue 17)
            )
            if settings.dev_idp
            else None
        ),
    )
    state.signing_keys()  # remember the file's modification time
    redact_access_log()
    if follower is not None:
        state.metrics.registry_version.set_function(
            lambda: float(getattr(follower.in_effect(clock()), "version", 0))
        )
        state.metrics.registry_stale_seconds.set_function(
            lambda: float(-1 if (stale := follower.staleness(clock())) is None else stale)
        )

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
        state.http = http
        following = None
        if follower is not None and settings.registry_url:
            # Every worker follows the registry itself (a conditional GET every few
            # minutes): it is this process's memory that must be current.
            following = asyncio.create_task(
                _follow_registry(state, follower, http, settings.registry_url)
            )
        scheduler = None
        if settings.scheduler:  # development: the jobs run in this process
            scheduler = build_scheduler(state)
            scheduler.start()
        # What the process holds once started (modules, the app, its models) is kept out
        # of the cyclic collector's way: its full collections then scan only what
        # requests made, which cut the tail of a verification's latency (docs/PERFORMANCE.md).
        gc.collect()
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(20_000, 50, 50)
        yield
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        if following is not None:
            following.cancel()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        http.close()
        await asyncio.to_thread(state.writer.close)  # what is queued is committed first
        if scheduler is not None and settings.witness_url:
            # the head at shutdown, witnessed (issue 17, gap I): after the queued writes
            await asyncio.to_thread(checkpoint_audit_head, state)
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

    # Starlette tries the routes in order: the hot ones first (service points and
    # wallets many times a second, status lists), the people's and the admin's after.
    for module in (
        verifications,
        oid4vp,
        status,
        attestations,
        oid4vci,
        federation,
        residents,
        departments,
        alliance,
        admin,
    ):
        app.include_router(module.router)
    if settings.dev_idp:
        app.include_router(dev_idp.router)
    mount_pages(app, alliance_host=settings.alliance_dir is not None)  # after every route
    app.openapi = with_links(with_security_schemes(app.openapi))  # type: ignore[method-assign]
    if settings.rate_limits:  # innermost: its 429s are counted and get CORS headers
        app.add_middleware(RateLimit, state=state)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(WalletCors)  # the web wallet's endpoints, from any origin
    app.add_middleware(Observe, metrics=state.metrics)  # outermost: it times everything
    return app
