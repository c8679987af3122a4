"""How ``ccx node serve`` runs uvicorn: limits that keep slow and idle clients from
starving everyone else (issue 19, item 5; docs/SECURITY.md section 7).

Uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but it has no
deadline for a request's headers or body: 1,500 connections that send half a header line
each stayed open forever, and with a low file limit they took every descriptor. So:

- a request's headers must arrive within ``CCX_HEADER_TIMEOUT`` seconds of the
  connection or of the request's first byte, and its body within ``CCX_BODY_TIMEOUT`` of
  its headers, else the connection is closed (:class:`DeadlineProtocol`);
- past ``CCX_MAX_CONNECTIONS`` open connections (never more than the process's file
  limit allows, keeping some descriptors for the database, files and outgoing HTTP) a
  new request is answered 503 at once (uvicorn's ``limit_concurrency``), which sheds
  load before the process runs out of descriptors;
- idle keep-alive connections close after ``CCX_KEEP_ALIVE_TIMEOUT``.

A reverse proxy in front must do the same on its side (docs/SECURITY.md section 7).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from node.settings import Settings

__all__ = [
    "RESERVED_DESCRIPTORS",
    "DeadlineProtocol",
    "connection_limit",
    "redact_access_log",
    "uvicorn_options",
]

# Descriptors a worker keeps for itself beyond its clients: the database pool (SQLite: up
# to 50 connections, each with its WAL and shared-memory files), the keyring and data
# files, outgoing HTTP to other nodes, logs.
RESERVED_DESCRIPTORS = 256


@functools.cache
def _deadlines() -> tuple[float, float]:
    """(header, body) seconds, from this process's settings (each worker reads its own)."""
    settings = Settings()
    return settings.header_timeout, settings.body_timeout


class DeadlineProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol with a deadline for each request's headers, then one
    for its body; a connection that misses one is closed."""

    _deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(_deadlines()[0])

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(_deadlines()[0])

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(_deadlines()[1])

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def connection_limit(wanted: int) -> int:
    """The most connections one worker takes: ``wanted``, but never more than its file
    limit leaves after :data:`RESERVED_DESCRIPTORS` (the soft limit is first raised to
    the hard one, as far as the system lets it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # not allowed here: live with the soft limit
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_DESCRIPTORS))


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` that bound clients (module docstring) and,
    with ``CCX_TLS_CERTFILE`` and ``CCX_TLS_KEYFILE``, serve HTTPS."""
    options: dict[str, Any] = {
        "http": f"{DeadlineProtocol.__module__}:{DeadlineProtocol.__name__}",
        "limit_concurrency": connection_limit(settings.max_connections),
        "timeout_keep_alive": settings.keep_alive_timeout,
    }
    if settings.tls_certfile is not None and settings.tls_keyfile is not None:
        options["ssl_certfile"] = str(settings.tls_certfile)
        options["ssl_keyfile"] = str(settings.tls_keyfile)
    return options


# Paths whose last segment is a secret for a while (a credential offer's id, an OpenID4VP
# request's and transaction's ids, single use): uvicorn's access log prints request
# paths, and no secret may reach a log.
SECRET_PATHS = ("/oid4vci/offers/", "/oid4vp/requests/", "/oid4vp/responses/",
                "/v1/presentation-requests/")  # fmt: skip


class _RedactSecretPaths(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access record: args = (client, method, path with query, version, status)
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            for prefix in SECRET_PATHS:
                if args[2].startswith(prefix):
                    record.args = (*args[:2], prefix + "...", *args[3:])
        return True


def redact_access_log(logger: logging.Logger | None = None) -> None:
    """Keep secrets of paths (:data:`SECRET_PATHS`) out of uvicorn's access log; once per
    logger, however many apps a process builds."""
    target = logger or logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactSecretPaths) for f in target.filters):
        target.addFilter(_RedactSecretPaths())
