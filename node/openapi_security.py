"""The OpenAPI document's security schemes (OpenAPI 3.1, sections 4.8.27 and 4.8.30): the
bearer tokens the node takes, one scheme per audience, so that the interactive docs
(``/docs`` with CCX_API_DOCS=true) can authorize and a reader or a client generator sees
what each operation needs (issue 20).

The node checks credentials in its guards (node/guards.py), which take the request
alone, so FastAPI does not see them as security dependencies. Instead each credential
guard names its scheme (``requires``, in node/auth.py), each route puts its guards'
schemes in its operation (``GuardedRoute``: ``security: []`` for a route that takes
none), and ``with_security_schemes`` adds the schemes to the document's components."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = [
    "SECURITY_SCHEMES",
    "operation_security",
    "requires",
    "scheme_of",
    "with_security_schemes",
]

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "resident": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A resident: an ID token of the city's identity provider "
        "(CCX_IDP_ISSUER, audience CCX_IDP_AUDIENCE; in development POST /dev-idp/token, "
        "or `ccx wallet login`).",
    },
    "client": {
        "type": "http",
        "scheme": "bearer",
        "description": "A client (a department that pushes records, a service point that "
        "verifies): the token POST /v1/admin/clients answered once (`ccx node client "
        "add`); each operation checks the scope it needs.",
    },
    "admin": {
        "type": "http",
        "scheme": "bearer",
        "description": "The node's admin: the token whose SHA-256 is CCX_ADMIN_TOKEN_HASH "
        "(`ccx node admin-token` makes both).",
    },
    "metrics": {
        "type": "http",
        "scheme": "bearer",
        "description": "The metrics scraper: the token whose SHA-256 is CCX_METRICS_TOKEN_HASH.",
    },
}

_SCHEME = "__ccx_security_scheme__"

F = TypeVar("F", bound=Callable[..., Any])


def requires(scheme: str) -> Callable[[F], F]:
    """Mark a credential guard with the security scheme whose token it checks."""
    if scheme not in SECURITY_SCHEMES:
        raise ValueError(f"no security scheme {scheme!r}")

    def mark(guard: F) -> F:
        setattr(guard, _SCHEME, scheme)
        return guard

    return mark


def scheme_of(guard: Callable[..., Any]) -> str | None:
    """The scheme a guard checks, or None for a guard that checks no credentials."""
    scheme: str | None = getattr(guard, _SCHEME, None)
    return scheme


def operation_security(guards: Iterable[Callable[..., Any]]) -> list[dict[str, list[str]]]:
    """An operation's ``security``: every scheme its guards check, all required; ``[]``
    (no credentials) when they check none."""
    schemes = sorted({s for guard in guards if (s := scheme_of(guard)) is not None})
    return [{scheme: [] for scheme in schemes}] if schemes else []


def with_security_schemes(
    generate: Callable[[], dict[str, Any]],
) -> Callable[[], dict[str, Any]]:
    """FastAPI's ``app.openapi`` with the schemes in ``components.securitySchemes``."""

    def openapi() -> dict[str, Any]:
        document = generate()
        components = document.setdefault("components", {})
        components["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
        return document

    return openapi
