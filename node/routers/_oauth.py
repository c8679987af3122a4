"""What the OAuth-shaped routers share (OpenID4VCI, OpenID4VP): their form bodies and
the no-store header every answer carrying a secret gets."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from node.errors import OAuthError
from node.guards import SMALL_BODY_BYTES, read_body

__all__ = ["NO_STORE", "read_form"]

NO_STORE = {"Cache-Control": "no-store"}


async def read_form(request: Request, *, strict: bool = True) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, each parameter once (RFC 6749 section
    3.2); OAuth ``invalid_request`` otherwise. ``strict=False`` reads what is there
    without judging it (a body whose parameters are all to be ignored)."""
    body = await read_body(request, SMALL_BODY_BYTES)
    if not strict:
        return {}
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "the body is not a form") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"{name} is given more than once")
        form[name] = value
    return form
