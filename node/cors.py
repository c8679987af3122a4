"""Cross-origin access for the web wallet (issue 16): the wallet's static pages may be
served from any origin, and talk from there to the resident's home node (issuance) and
to the service point's node (OpenID4VP). Only the public endpoints a wallet calls answer
cross-origin, with ``Access-Control-Allow-Origin: *`` and never credentials: they are
protected by single-use ids, pre-authorized codes and bearer or DPoP tokens sent in
headers, not by cookies, so a page on another origin gains nothing it could not do
from a script of its own (docs/SECURITY.md). A resident's, an admin's or a department's
endpoints do not answer cross-origin at all.

Pure ASGI, like node.middleware, and outside the routes: a preflight ``OPTIONS`` is
answered here, and an error answer (a 400 from the token endpoint, say) carries the
headers too, so that the wallet can read its body."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["WALLET_PATHS", "WalletCors", "wallet_facing"]

# Exact paths, and prefixes ending in "/" (or "*": the well-known names of an issuer
# identifier with a path).
WALLET_PATHS = (
    "/.well-known/openid-credential-issuer*",
    "/.well-known/oauth-authorization-server*",
    "/.well-known/jwt-vc-issuer*",
    "/.well-known/jwks.json",
    "/oid4vci/offers/",
    "/oid4vci/token",
    "/oid4vci/nonce",
    "/oid4vci/credential",
    "/oid4vci/type-metadata",
    "/oid4vp/requests/",
    "/oid4vp/responses/",
    "/v1/status-lists/",
    "/v1/alliance/registry",
)
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, DPoP, Content-Type"
MAX_AGE = "600"


def wallet_facing(path: str) -> bool:
    """Whether ``path`` is one of the public endpoints a web wallet calls."""
    for pattern in WALLET_PATHS:
        if pattern.endswith("*"):
            if path.startswith(pattern[:-1]):
                return True
        elif pattern.endswith("/"):
            if path.startswith(pattern) and len(path) > len(pattern):
                return True
        elif path == pattern:
            return True
    return False


_HEADERS = [(b"access-control-allow-origin", b"*")]


class WalletCors:
    """CORS for :data:`WALLET_PATHS` alone: ``*`` without credentials; the preflight
    answered 204 with the methods and headers a wallet sends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not wallet_facing(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await send({
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    *_HEADERS,
                    (b"access-control-allow-methods", ALLOW_METHODS.encode()),
                    (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                    (b"access-control-max-age", MAX_AGE.encode()),
                ],
            })  # fmt: skip
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_HEADERS]}
            await send(message)

        await self.app(scope, receive, with_cors)
