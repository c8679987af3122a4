"""Who may send a body, and how large: credentials are checked before a byte of the body
is read, and each route takes only the body it needs (issue 19, item 3).

FastAPI reads and parses a route's body before it solves the route's dependencies, so
checking credentials in a dependency alone lets anyone make the node read, buffer and
parse megabytes of JSON (or hundreds of multipart parts) before its 401. Every router of
the node is built with :class:`GuardedRoute`, which first runs the route's guards (the
dependencies marked with :func:`before_body`: who is calling, their scope, their rate),
then reads the body up to the route's limit, and only then hands the request to FastAPI.

A guard takes the request alone and is memoized per request, so that the dependency
FastAPI solves afterwards answers from the memo: nothing is checked twice and a rate
limit's token is taken once.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from node.errors import NodeError
from node.openapi_security import operation_security

__all__ = ["BATCH_BODY", "SMALL_BODY_BYTES", "GuardedRoute", "before_body", "read_body"]

# The most any route without batches takes: a presentation is at most 16 KiB, a consent
# or an objection a few hundred bytes.
SMALL_BODY_BYTES = 64 * 1024
# openapi_extra of a route that takes batches: its limit is CCX_MAX_BODY_BYTES (2 MiB by
# default), and the OpenAPI document says so.
BATCH_BODY = {"x-ccx-body-limit": "CCX_MAX_BODY_BYTES"}

_MEMO = "ccx.guards"
_GUARD = "__ccx_before_body__"

T = TypeVar("T")


def before_body(
    check: Callable[[Request], Awaitable[T]],
) -> Callable[[Request], Coroutine[Any, Any, T]]:
    """Mark ``check`` (an async dependency taking only the request) to run before the
    body is read, once per request: its result, or its refusal, comes first."""

    @functools.wraps(check)
    async def once(request: Request) -> T:
        memo: dict[Any, Any] = request.scope.setdefault(_MEMO, {})
        if once in memo:
            return memo[once]  # type: ignore[no-any-return]
        result = memo[once] = await check(request)
        return result

    setattr(once, _GUARD, True)
    return once


def _guards(dependant: Dependant) -> Iterator[Callable[[Request], Awaitable[Any]]]:
    """The marked dependencies of a route, the ones they depend on first."""
    for sub in dependant.dependencies:
        yield from _guards(sub)
        if getattr(sub.call, _GUARD, False):
            yield sub.call  # type: ignore[misc]


class GuardedRoute(APIRoute):
    """A route that checks its guards, then reads its body within its limit, then runs.
    Its OpenAPI operation names the security schemes its guards check."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        security = operation_security(_guards(self.dependant))
        self.openapi_extra = {**(self.openapi_extra or {}), "security": security}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = tuple(dict.fromkeys(_guards(self.dependant)))
        takes_body = self.body_field is not None
        batch = bool(self.openapi_extra and BATCH_BODY.keys() <= self.openapi_extra.keys())

        async def guarded(request: Request) -> Response:
            for guard in guards:
                await guard(request)
            if takes_body:
                limit = request.app.state.node.settings.max_body_bytes if batch else None
                await read_body(request, SMALL_BODY_BYTES if limit is None else limit)
            return await handler(request)

        return guarded


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing it (413) past ``limit`` bytes, whatever Content-Length
    said; for routes that parse their own body (the OAuth-shaped ones), call it first."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    # Starlette keeps a read body in ``_body``; request.body(), .json() and .form()
    # (through .stream()) serve it from there, so FastAPI parses what was read here.
    request._body = b"".join(chunks)
    return request._body


def _too_large(limit: int) -> NodeError:
    return NodeError("body_too_large", f"the body exceeds {limit} bytes", status=413)
