"""The node's pure ASGI middleware: the whole node's body limit, its rate limits, and
metrics of every request. Pure ASGI rather than ``@app.middleware("http")``: Starlette's
BaseHTTPMiddleware runs the rest of the app in a task of its own and streams the
response through a queue, which cost 0.6-1 ms a request here (bench/issue_http.py, A/B)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.auth import hash_token, verify_idp_token
from node.errors import NodeError, error_body
from node.services.rate_limit import Limit, NeedLease, SharedRateLimits
from node.state import Metrics, NodeState

__all__ = ["BodyLimit", "Observe", "RateLimit", "limits_of"]


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


# Which audience a request belongs to, by its path (issue 17, gap F). A service point's
# routes count against its verification limit (CCX_VERIFY_RATE); a resident's against
# hers (by subject); any other credentials against the client's; requests without
# credentials to the routes that take none against their address.
SERVICE_POINT_PREFIXES = ("/v1/verifications", "/v1/presentation-requests", "/v1/service-point")
RESIDENT_PREFIXES = ("/v1/me/",)
PUBLIC_PREFIXES = ("/dev-idp/", "/oid4vci/", "/oid4vp/", "/me/login")
FAILED_AUTH = "failed_auth"


def limits_of(settings: Any) -> dict[str, Limit]:
    """The node's limits by audience, from its settings (node.settings.Settings)."""
    return {
        "service_point": Limit(settings.verify_rate, settings.verify_burst),
        "resident": Limit(settings.resident_rate, settings.resident_burst),
        "client": Limit(settings.client_rate, settings.client_burst),
        "public": Limit(settings.public_rate, settings.public_burst),
        FAILED_AUTH: Limit(settings.failed_auth_rate, settings.failed_auth_burst),
    }


class RateLimit:
    """Token buckets shared by every worker of the node (node/services/rate_limit.py):
    per resident (her verified subject), per client (its credentials), per address for
    the routes without credentials, and per address for failed authentications: a 401
    costs its address a token, and an address out of them is answered 429 before its
    credentials are looked up, unless they are known good in this worker already. A
    refusal is 429 ``rate_limited`` with ``Retry-After`` (seconds). The check costs the
    hot path a hash and a dictionary look-up; a database transaction only once a lease
    is spent (about once a second per caller and worker)."""

    def __init__(self, app: ASGIApp, state: NodeState) -> None:
        self.app, self.state = app, state
        self.limits = SharedRateLimits(state.engine, limits_of(state.settings))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        now = int(state.now())
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        token = _bearer(scope)
        blocked = self.limits.blocked(FAILED_AUTH, address, now) if token is not None else None
        if blocked is not None and token is not None and not self._known_good(token):
            await _too_many(send, float(blocked), _WHAT[FAILED_AUTH])
            return
        audience, caller = self._caller(scope["path"], token, address, now)
        if audience is not None:
            local = self.limits.take_local(audience, caller, now)
            refused: float | None = (
                await anyio.to_thread.run_sync(self.limits.take_leased, audience, caller, now)
                if isinstance(local, NeedLease)
                else local
            )
            if refused is not None:
                await _too_many(send, refused, _WHAT[audience])
                return
        if token is None:
            await self.app(scope, receive, send)
            return
        status = 0

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watching_send)
        # a failed authentication costs its address a token
        if status == 401 and isinstance(
            self.limits.take_local(FAILED_AUTH, address, now), NeedLease
        ):
            await anyio.to_thread.run_sync(self.limits.take_leased, FAILED_AUTH, address, now)

    def _caller(
        self, path: str, token: str | None, address: str, now: int
    ) -> tuple[str | None, str]:
        if token is None:
            return ("public", address) if path.startswith(PUBLIC_PREFIXES) else (None, "")
        if path.startswith(SERVICE_POINT_PREFIXES):
            return "service_point", hash_token(token)
        if path.startswith(RESIDENT_PREFIXES) or path == "/v1/me":
            try:  # remembered by node.auth: the route's own check is a look-up then
                return "resident", verify_idp_token(self.state, token, now=now)
            except NodeError:  # the route answers 401, which costs the address a token
                return None, ""
        return "client", hash_token(token)

    def _known_good(self, token: str) -> bool:
        memory = self.state.memory
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        if digest in memory.resident_tokens:
            return True
        client = memory.clients.get(hash_token(token))
        return client is not None and client[1] > time.monotonic()


_WHAT = {
    "service_point": "requests from these credentials",
    "resident": "requests from this resident",
    "client": "requests from these credentials",
    "public": "requests from this address",
    FAILED_AUTH: "failed authentications",
}


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            raw = bytes(value)
            if raw[:7].lower() == b"bearer " and len(raw) <= 8192:
                return raw[7:].decode("latin-1").strip()
            return None
    return None


async def _too_many(send: Send, wait: float, what: str) -> None:
    seconds = max(1, int(-(-wait // 1)))
    await _send_json(
        send,
        429,
        error_body("rate_limited", f"too many {what}: try again in {seconds} s"),
        headers=[(b"retry-after", str(seconds).encode())],
    )


class _BodyTooLarge(Exception):
    pass


async def _send_json(
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
