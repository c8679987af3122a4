"""The simulator's HTTP client: every call to a node goes through :meth:`Api.call`, which
times it by endpoint and turns the answer into (status, JSON) or :class:`Unreachable`.

aiohttp rather than httpx (which the node itself uses for its few outgoing calls): the
simulator makes hundreds of thousands of requests on the same two cores the nodes run
on, and measured on this VM against a bare uvicorn echo at 16 connections, httpx's
AsyncClient cost 3.7 ms of client CPU per request and aiohttp's 0.3-0.4 ms.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

__all__ = ["Api", "Unreachable", "error_code"]

TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5)


class Unreachable(Exception):
    """No HTTP answer: the node is down, refused the connection or timed out."""


def error_code(body: Any) -> str | None:
    """The stable error code of a node's error body ``{"error": {"code": ...}}``, or of
    an OAuth-shaped one ``{"error": "invalid_request", "error_description": "<ccx code>:
    ..."}`` (an OpenID4VP response endpoint's refusal: the ccx code when it names one)."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("code"), str):
            return str(error["code"])
        if isinstance(error, str):
            described = str(body.get("error_description", ""))
            code, colon, _ = described.partition(":")
            return code if colon and code.replace("_", "").isalnum() else error
    return None


class Api:
    """One connection pool for the whole run; latencies by endpoint label. ``body`` is
    sent as JSON."""

    def __init__(self, connections: int = 64) -> None:
        self.connections = connections
        self.latencies: dict[str, list[float]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        connector = aiohttp.TCPConnector(limit=self.connections, limit_per_host=0)
        self._session = aiohttp.ClientSession(connector=connector, timeout=TIMEOUT)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self,
        method: str,
        base: str,
        path: str,
        *,
        label: str | None = None,
        body: Any = None,
        form: Mapping[str, str] | None = None,
        token: str | None = None,
        params: Mapping[str, str] | None = None,
        text: bool = False,
    ) -> tuple[int, Any]:
        """``method base+path``; (status, parsed JSON or None; the text itself with
        ``text``). ``body`` goes as JSON, ``form`` as a form. Raises Unreachable when no
        answer came. ``label`` names the endpoint for the latency table (default: the
        method and path)."""
        assert self._session is not None, "use Api as an async context manager"
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        started = time.perf_counter()
        content = {"json": body} if form is None else {"data": dict(form)}
        try:
            async with self._session.request(
                method, base + path, headers=headers, params=params, **content
            ) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unreachable(f"{method} {base}{path}: {type(exc).__name__} {exc}") from exc
        finally:
            self.latencies.setdefault(label or f"{method} {path}", []).append(
                time.perf_counter() - started
            )
        if text:
            return status, raw.decode("utf-8", "replace")
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        return status, answer

    async def ok(self, method: str, base: str, path: str, **kwargs: Any) -> Any:
        """As :meth:`call`, for steps that must succeed: RuntimeError naming the endpoint
        and the node's error code otherwise."""
        status, answer = await self.call(method, base, path, **kwargs)
        if not 200 <= status < 300:
            raise RuntimeError(
                f"{method} {base}{path} answered {status} "
                f"[{error_code(answer) or '-'}]: {_message(answer)}"
            )
        return answer


def _message(body: Any) -> str:
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        return str(body["error"].get("message", ""))[:300]
    return str(body)[:300]
