"""Who is calling: residents (bearer JWT of the city's identity provider), departments
and service points (client credentials, stored hashed), admins (a token, stored hashed).

Each route says what it needs with one dependency: ``ResidentDep``, ``client_with(scope)``
or ``AdminDep``. A failure is 401 (who are you?) or 403 (not allowed), with a code. Each
is a guard (``node.guards.before_body``): it takes the request alone and runs before the
route's body is read, so a caller without credentials never costs the node a parse.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Annotated, Any, cast

import jwt
from fastapi import Depends, Request
from sqlalchemy import Table, bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from node.errors import NodeError
from node.guards import before_body
from node.models import Client
from node.openapi_security import requires
from node.state import ClientIdentity, NodeState

__all__ = [
    "AdminDep",
    "ClientDep",
    "ClientIdentity",
    "MetricsReaderDep",
    "ResidentDep",
    "admin",
    "calling_client",
    "client_by_id",
    "client_with",
    "forget_client",
    "hash_token",
    "metrics_reader",
    "resident_id",
    "verify_idp_token",
]

RESIDENT_ALGORITHMS = ["ES256", "EdDSA", "RS256"]  # what an identity provider may sign with
LEEWAY = 30


def hash_token(token: str) -> str:
    """Hex SHA-256 of a bearer token: what the node stores instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _bearer(request: Request) -> str:
    authorization = request.headers.get("authorization")
    if not authorization or not authorization.startswith("Bearer ") or len(authorization) > 8192:
        raise NodeError("unauthorized", "a bearer token is required", status=401)
    return authorization.removeprefix("Bearer ").strip()


def _state(request: Request) -> NodeState:
    state: NodeState = request.app.state.node
    return state


def _idp_keys(state: NodeState) -> dict[str | None, jwt.PyJWK]:
    """The identity provider's keys by kid, parsed once per app (not once a request)."""
    keys = state.memory.idp_keys
    if keys is None:
        jwks = state.idp_jwks()
        if not jwks:
            raise NodeError("idp_unavailable", "no identity provider is configured", status=503)
        try:
            keyset = jwt.PyJWKSet.from_dict(json.loads(jwks) if isinstance(jwks, str) else jwks)
        except (ValueError, jwt.PyJWTError) as exc:
            raise NodeError(
                "idp_unavailable",
                "the identity provider's key set (CCX_IDP_JWKS) is unusable",
                status=503,
            ) from exc
        keys = state.memory.idp_keys = {key.key_id: key for key in keyset.keys}
    return keys


def verify_idp_token(state: NodeState, token: str, *, now: int, nonce: str | None = None) -> str:
    """The resident's subject, from a JWT the configured identity provider signed for this
    node (``aud``), checked against the node's clock. With ``nonce``, the token must carry
    that ``nonce`` claim (an OpenID Connect ID token made for one login,
    node/services/oid4vci_authorization.py). NodeError 401 ``unauthorized``.

    A bearer token (no ``nonce``) whose signature and claims held once is remembered by
    its SHA-256 with its subject and times, for as long as the identity provider's key
    set is the one it was checked with (a wallet sends the same token for its nonce and
    its issuance): its times are checked against the clock at every use."""
    keys = _idp_keys(state)
    memo = state.memory.resident_tokens
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
    kept = memo.get(digest) if nonce is None else None
    if kept is not None and kept[0] is keys:
        _check_times(kept[2], kept[3], now)
        return kept[1]
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        key = keys.get(kid) if kid is None or isinstance(kid, str) else None
        if key is None:
            raise NodeError(
                "unauthorized", "the token's key is not the identity provider's", status=401
            )
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=RESIDENT_ALGORITHMS,
            audience=state.settings.idp_audience,
            issuer=state.settings.idp_issuer,
            # PyJWT would read the wall clock for exp/iat/nbf (its weak spot, STYLE.md);
            # the node checks them against its own clock below instead.
            options={
                "require": ["exp", "iat", "sub"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except NodeError:
        raise
    except jwt.PyJWTError as exc:
        raise NodeError(
            "unauthorized", f"the bearer token is not valid: {exc}", status=401
        ) from exc
    exp, iat = claims["exp"], claims["iat"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat)):
        raise NodeError("unauthorized", "the token's exp and iat must be numbers", status=401)
    _check_times(exp, iat, now)
    if nonce is not None:
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(
            sent.encode("utf-8"), nonce.encode("utf-8")
        ):
            raise NodeError(
                "unauthorized", "the ID token was not made for this login (nonce)", status=401
            )
    subject = claims["sub"]
    # NUL: PostgreSQL can't store it in text (a 500 on every route that writes her id)
    if not isinstance(subject, str) or not 0 < len(subject) <= 128 or "\x00" in subject:
        raise NodeError("unauthorized", "the token's subject is not a resident id", status=401)
    if nonce is None:
        if len(memo) >= _TOKEN_MEMO_MAX:
            memo.clear()
        memo[digest] = (keys, subject, exp, iat)
    return subject


_TOKEN_MEMO_MAX = 10_000


def _check_times(exp: float, iat: float, now: int) -> None:
    if now > exp + LEEWAY:
        raise NodeError("unauthorized", "the bearer token has expired", status=401)
    if iat > now + LEEWAY:
        raise NodeError("unauthorized", "the bearer token was issued in the future", status=401)


# async: one signature check is cheaper than the hop to the thread pool a sync
# dependency costs.
@requires("resident")
@before_body
async def resident_id(request: Request) -> str:
    """The resident's subject, from a JWT the configured identity provider signed."""
    state = _state(request)
    return verify_idp_token(state, _bearer(request), now=int(state.now()))


ResidentDep = Annotated[str, Depends(resident_id)]


CLIENT_CACHE_SECONDS = 10.0
_CLIENT_CACHE_MAX = 10_000


def _lookup_client(state: NodeState, token_hash: str) -> ClientIdentity | None:
    with Session(state.engine) as session:
        row = session.exec(select(Client).where(Client.token_hash == token_hash)).first()
        if row is None or row.revoked_at is not None:
            return None
        return ClientIdentity(row.id, row.department, frozenset(row.scopes), row.expires_at)


def _expired(identity: ClientIdentity, now: int) -> bool:
    return identity.expires_at is not None and now >= identity.expires_at


@requires("client")
@before_body
async def calling_client(request: Request) -> ClientIdentity:
    """The calling client, from its hashed token. A known client is remembered for
    ``CLIENT_CACHE_SECONDS`` in this worker (service points call many times a second;
    the look-up and its hop to the thread pool cost more than the verification's own
    checks): a revocation takes effect at once in the worker that made it
    (:func:`forget_client`) and within that time in the others. Unknown tokens are
    never remembered. Expired credentials are refused from their ``expires_at`` on, on
    the node's clock, cached or not (401 ``credentials_expired``)."""
    token_hash = hash_token(_bearer(request))
    state = _state(request)
    cache = state.memory.clients
    hit = cache.get(token_hash)
    if hit is not None and hit[1] > time.monotonic():
        identity: ClientIdentity | None = hit[0]
    else:
        identity = await run_in_threadpool(_lookup_client, state, token_hash)
        if identity is None:
            cache.pop(token_hash, None)
            raise NodeError("unauthorized", "unknown or revoked client credentials", status=401)
        if len(cache) >= _CLIENT_CACHE_MAX:
            cache.clear()
        cache[token_hash] = (identity, time.monotonic() + CLIENT_CACHE_SECONDS)
    assert identity is not None
    if _expired(identity, int(state.now())):
        raise NodeError(
            "credentials_expired",
            "these client credentials have expired: ask the node's admin for new ones",
            status=401,
        )
    return identity


_CLIENTS = cast(Table, Client.__table__)  # type: ignore[attr-defined]
_BY_ID = sa_select(
    _CLIENTS.c.department, _CLIENTS.c.scopes, _CLIENTS.c.revoked_at, _CLIENTS.c.expires_at
).where(_CLIENTS.c.id == bindparam("client"))


def client_by_id(state: NodeState, client_id: str) -> ClientIdentity | None:
    """The client ``client_id`` while its credentials stand (None once revoked, expired
    on the node's clock, or unknown), remembered ``CLIENT_CACHE_SECONDS`` in this worker
    as :func:`calling_client` remembers tokens, its expiry checked at each call: what a
    request made earlier by a service point is answered for (the OpenID4VP response
    endpoint). Blocking: call it from a thread."""
    cache = state.memory.client_ids
    hit = cache.get(client_id)
    if hit is not None and hit[1] > time.monotonic():
        identity = hit[0]
    else:
        with state.engine.connect() as connection:
            row = connection.execute(_BY_ID, {"client": client_id}).first()
        identity = (
            None
            if row is None or row.revoked_at is not None
            else ClientIdentity(client_id, row.department, frozenset(row.scopes), row.expires_at)
        )
        if len(cache) >= _CLIENT_CACHE_MAX:
            cache.clear()
        cache[client_id] = (identity, time.monotonic() + CLIENT_CACHE_SECONDS)
    if identity is not None and _expired(identity, int(state.now())):
        return None
    return identity


def forget_client(state: NodeState, client_id: str) -> None:
    """Drop ``client_id`` from this worker's caches (after revoking its credentials)."""
    state.memory.client_ids.pop(client_id, None)
    cache = state.memory.clients
    for token_hash, (identity, _) in list(cache.items()):
        if identity.id == client_id:
            cache.pop(token_hash, None)


ClientDep = Annotated[ClientIdentity, Depends(calling_client)]
"""The calling client, whatever its scopes: for routes whose scope depends on the request
(``verify:<scenario>``); the route's service checks the scope."""


def client_with(scope: str) -> Any:
    """A dependency: the calling client, which must hold ``scope``."""

    @requires("client")
    @before_body
    async def require(request: Request) -> ClientIdentity:
        client = await calling_client(request)
        if scope not in client.scopes:
            raise NodeError("forbidden", f"these credentials lack the {scope!r} scope", status=403)
        return client

    return Depends(require)


@requires("admin")
@before_body
async def admin(request: Request) -> str:
    """``"admin"`` for the admin token (``CCX_ADMIN_TOKEN_HASH``), the only admin: no
    client is one, whatever its scopes (issue 17: a client would outlive a change of the
    token). Raises NodeError 403 ``forbidden`` for anything else, saying whether the
    node has an admin token at all (issue 20: an unconfigured node gave no hint)."""
    token_hash = hash_token(_bearer(request))
    expected = _state(request).settings.admin_token_hash
    if not expected:
        raise NodeError(
            "forbidden",
            "this node has no admin token configured: set CCX_ADMIN_TOKEN_HASH "
            "(`ccx node admin-token` writes it) and restart the node",
            status=403,
        )
    if hmac.compare_digest(token_hash, expected):
        return "admin"
    raise NodeError(
        "forbidden",
        "admin credentials are required: this bearer token is not the admin token "
        "whose hash is CCX_ADMIN_TOKEN_HASH",
        status=403,
    )


AdminDep = Annotated[str, Depends(admin)]


@requires("metrics")
@before_body
async def metrics_reader(request: Request) -> None:
    """The scraper of ``/metrics``: a bearer token whose SHA-256 is
    ``CCX_METRICS_TOKEN_HASH``. Without that setting the metrics are off (404): request
    counts by route and the registry's state are the operator's, not the public's."""
    expected = _state(request).settings.metrics_token_hash
    if not expected:
        raise NodeError(
            "not_found", "metrics are off on this node (CCX_METRICS_TOKEN_HASH)", status=404
        )
    if not hmac.compare_digest(hash_token(_bearer(request)), expected):
        raise NodeError("forbidden", "these credentials may not read the metrics", status=403)


MetricsReaderDep = Annotated[None, Depends(metrics_reader)]
