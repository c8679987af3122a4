"""Every error leaves the node as JSON with a stable code; none carries a stack trace.

The mapping from exceptions to responses lives here and only here (STYLE rule 2).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from keys import KeyringError
from mappings import MappingError
from protocol import ProtocolError

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "NodeError",
    "OAuthError",
    "OAuthErrorBody",
    "error_body",
    "error_responses",
    "install_error_handlers",
    "oauth_error_responses",
    "where_and_what",
]

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


class OAuthError(Exception):
    """A refusal of an OAuth or OpenID4VCI endpoint, in its own shape (RFC 6749 section
    5.2, OpenID4VCI 1.0 section 8.3.1): ``{"error": <code>, "error_description": ...}``.
    ``error`` is one of the specs' codes (``invalid_grant``, ``invalid_proof``, ...)."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers


class OAuthErrorBody(BaseModel):
    """What OAuth and OpenID4VCI endpoints answer when they refuse."""

    error: str = Field(description="the spec's code: invalid_grant, invalid_proof, ...")
    error_description: str = Field(description="for people; may change")


def oauth_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``error_responses`` for the OAuth-shaped endpoints (``OAuthErrorBody``)."""
    return {
        status: {"model": OAuthErrorBody, "description": ERROR_MEANINGS[status]}
        for status in sorted(statuses)
    }


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    return body


class ErrorDetail(BaseModel):
    code: str = Field(description="stable: what programs branch on")
    message: str = Field(description="for people; may change")
    details: Any = Field(None, description="where and what, for some codes (never input values)")


class ErrorBody(BaseModel):
    """What every error answer of the node holds (``error_body``)."""

    error: ErrorDetail


ERROR_MEANINGS = {
    400: "refused by the node's rules (a bad proof, an unreadable body or file)",
    401: "no credentials, or credentials, a nonce or a presentation that do not hold",
    403: "the credentials are not allowed this (scope, admin, consent)",
    404: "no such thing here",
    409: "conflicts with the present state",
    413: "the body, or the batch, is larger than the node accepts",
    415: "the file is neither CSV nor JSONL",
    422: "the request does not match the API (``details`` names the fields)",
    429: "too many requests from these credentials; see Retry-After",
    503: "the node can't answer now (keys, registry, identity provider, a busy store)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of the error statuses a route really answers, each with
    the error body's schema: ``@router.get(..., responses=error_responses(401, 404))``.

    Only statuses the route can give: the fuzz tests (tests/fuzz) fail on an answer whose
    status the document does not name."""
    return {
        status: {"model": ErrorBody, "description": ERROR_MEANINGS[status]}
        for status in sorted(statuses)
    }


def where_and_what(error: Mapping[str, Any]) -> dict[str, str]:
    """One validation error (pydantic's dict) as ``{"field", "problem"}``: the field and
    the rule it breaks, never the value sent (it may hold personal data or a secret).

    Pydantic's own message names the value in a few cases: a discriminator's unknown tag
    (``Input tag 'X' found using 'kind' ...``) and an unknown field's name (in ``loc``);
    those are said without it, and any other message that quotes the input has it cut."""
    path = [str(part) for part in error.get("loc", ()) if part != "body"]
    kind = error.get("type")
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":  # the last part is the unknown name the client sent
        return {
            "field": ".".join(path[:-1]),
            "problem": "holds a field the API does not know (see the OpenAPI document)",
        }
    if kind == "union_tag_invalid":
        discriminator = str(context.get("discriminator", "")).strip("'")
        return {
            "field": ".".join([*path, discriminator] if discriminator else path),
            "problem": f"must be one of {context.get('expected_tags', 'the documented values')}",
        }
    problem = str(error.get("msg", ""))
    sent = error.get("input")
    if isinstance(sent, str | int | float) and not isinstance(sent, bool):
        text = str(sent)
        if len(text) >= 4 and text in problem:
            problem = problem.replace(text, "(the value sent)")
    return {"field": ".".join(path), "problem": problem}


def _validation_details(exc: RequestValidationError) -> list[dict[str, str]]:
    return [where_and_what(error) for error in exc.errors()]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at this path. Starlette's own Allow names only the
    first route whose path matches, so where GET and POST are two routes (``/v1/me/
    consents``) a 405 said ``Allow: GET`` (RFC 9110 section 15.5.6 wants them all)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NodeError)
    async def _node_error(_: Request, exc: NodeError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(OAuthError)
    async def _oauth_error(_: Request, exc: OAuthError) -> JSONResponse:
        # RFC 6749 section 5.2: ASCII and no secrets in error_description
        description = exc.description.encode("ascii", "replace").decode("ascii")
        return JSONResponse(
            {"error": exc.error, "error_description": description},
            status_code=exc.status,
            headers={"Cache-Control": "no-store", **(exc.headers or {})},
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
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            400: "bad_request",  # e.g. a body that is not UTF-8
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
        }
        return JSONResponse(
            error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
            status_code=exc.status_code,
            headers=(
                {**(exc.headers or {}), "Allow": _allowed_methods(request)}
                if exc.status_code == 405
                else exc.headers
            ),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", "the node could not complete the request"), status_code=500
        )
