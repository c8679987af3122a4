"""Every error leaves the node as JSON with a stable code; none carries a stack trace.

The mapping from exceptions to responses lives here and only here (STYLE rule 2).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from keys import KeyringError
from mappings import MappingError
from protocol import ProtocolError

__all__ = ["NodeError", "error_body", "install_error_handlers"]

log = logging.getLogger("ccx.node")


class NodeError(Exception):
    """A refusal by the node's own rules: ``code`` stable, ``message`` for people."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 400,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details
        self.headers = headers  # e.g. Retry-After on a 429


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    return body


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only where and what, never the input value (it may hold personal data or secrets).
    return [
        {
            "field": ".".join(str(part) for part in error.get("loc", ()) if part != "body"),
            "problem": error.get("msg"),
        }
        for error in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NodeError)
    async def _node_error(_: Request, exc: NodeError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(ProtocolError)
    async def _protocol_error(_: Request, exc: ProtocolError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.http_status)

    @app.exception_handler(MappingError)
    async def _mapping_error(_: Request, exc: MappingError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, str(exc), {"field": exc.field}), status_code=exc.http_status
        )

    @app.exception_handler(KeyringError)
    async def _keyring_error(_: Request, exc: KeyringError) -> JSONResponse:
        log.error("keyring error: %s", exc)
        return JSONResponse(
            error_body("keyring_unavailable", "the node's keys are unavailable"), status_code=503
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            error_body(
                "invalid_request", "the request does not match the API", _validation_details(exc)
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        return JSONResponse(
            error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", "the node could not complete the request"), status_code=500
        )
