"""The OpenID4VCI authorization code grant (OpenID4VCI 1.0 section 5, as HAIP 1.0 section
4 profiles it): a wallet the resident runs pushes its authorization request (RFC 9126,
PKCE S256 per RFC 7636, ``scope`` ``ccx_credit_standing``, optionally bound to its DPoP
key per RFC 9449 section 10), the resident's browser goes to the node's authorization
endpoint, logs in at the city's identity provider (OpenID Connect, an ID token by form
post; the development one in the demo), sees which wallet asks and allows or denies,
and the wallet gets a code at its redirect URI (with ``iss``, RFC 9207) that it
exchanges at the token endpoint with its PKCE verifier. From the access token on, the
flow is the pre-authorized one's (node/services/oid4vci.py).

Each step's secret (the request_uri, the login's state and nonce, the decision, the
code) is single use, short-lived and kept as its SHA-256 (node/services/nonces.py).
Wallets are public clients: anyone may name any ``client_id``, so what protects the
resident is the redirect URI (loopback, a wallet on her own device, or one the city
allows in ``CCX_WALLET_REDIRECT_URIS``) and the page where she sees who asks
(docs/SECURITY.md section 18).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlmodel import Session

from node.auth import verify_idp_token
from node.errors import NodeError, OAuthError
from node.services import audit, issuing
from node.services.nonces import SecretRefused, store_secret, take_secret
from node.services.oid4vci import (
    CONFIGURATION_ID,
    TokenGrant,
    dpop_jkt,
    login_endpoint,
    mint_access_token,
)
from node.state import NodeState

__all__ = [
    "AUTHORIZATION_CODE_GRANT",
    "REQUEST_URI_PREFIX",
    "Consent",
    "Redirect",
    "begin_login",
    "decide",
    "finish_login",
    "push_authorization_request",
    "redeem_authorization_code",
    "redirect_uri_allowed",
]

AUTHORIZATION_CODE_GRANT = "authorization_code"
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
PAR_LIFETIME = 90  # seconds between the pushed request and the browser's visit
LOGIN_LIFETIME = 600  # the resident's time to log in at the identity provider
DECISION_LIFETIME = 600  # ... and to allow or deny
CODE_LIFETIME = 60  # RFC 6749 section 4.1.2: short
PAR, LOGIN, DECISION, CODE = "vci_par", "vci_login", "vci_decision", "vci_authz_code"

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 section 4.1
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA-256), section 4.2
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,200}")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _url(state: NodeState, path: str) -> str:
    return f"{state.settings.node_id}{path}"


def redirect_uri_allowed(state: NodeState, uri: str) -> bool:
    """A loopback ``http`` redirect URI on any port (a wallet on the resident's own
    device, RFC 8252 sections 7.3 and 8.3), or one of ``CCX_WALLET_REDIRECT_URIS``
    exactly; never one with a fragment (RFC 6749 section 3.1.2)."""
    if "#" in uri or len(uri) > 512:
        return False
    if uri in state.settings.wallet_redirect_uris:
        return True
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018  (a port that is not a number raises here)
    except ValueError:
        return False
    return parts.scheme == "http" and host in _LOOPBACK and not parts.username


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# --- the pushed authorization request -------------------------------------------------------


def push_authorization_request(
    session: Session, state: NodeState, form: Mapping[str, str], *, dpop: str | None, now: int
) -> tuple[str, int]:
    """RFC 9126 section 2: check the request and keep it; the ``request_uri`` the
    browser brings to the authorization endpoint, and its lifetime (committed).
    OAuthError ``invalid_request``, ``invalid_scope``, ``invalid_target``,
    ``unsupported_response_type``, ``invalid_dpop_proof``."""
    if login_endpoint(state) is None:
        raise OAuthError(
            "invalid_request",
            "this node has no login for the authorization code flow: ask the resident "
            "for a credential offer instead",
        )
    if "request_uri" in form or "request" in form:
        raise OAuthError("invalid_request", "a pushed request carries its parameters itself")
    if form.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "response_type must be code")
    client_id = form.get("client_id", "")
    if not _PRINTABLE.fullmatch(client_id):
        raise OAuthError("invalid_request", "client_id is missing or not printable ASCII")
    redirect_uri = form.get("redirect_uri", "")
    if not redirect_uri_allowed(state, redirect_uri):
        raise OAuthError(
            "invalid_request",
            "redirect_uri must be a loopback http URI (a wallet on this device) or one "
            "this city allows",
        )
    if form.get("code_challenge_method") != "S256":
        raise OAuthError("invalid_request", "code_challenge_method must be S256 (PKCE)")
    challenge = form.get("code_challenge", "")
    if not _CHALLENGE.fullmatch(challenge):
        raise OAuthError("invalid_request", "code_challenge must be a base64url SHA-256")
    if "authorization_details" in form:
        raise OAuthError(
            "invalid_request", f"ask with scope={CONFIGURATION_ID} (HAIP 1.0 section 4.3)"
        )
    scopes = form.get("scope", "").split()
    if scopes != [CONFIGURATION_ID]:
        raise OAuthError("invalid_scope", f"scope must be {CONFIGURATION_ID}")
    resource = form.get("resource")
    if resource is not None and resource != state.settings.node_id:
        raise OAuthError("invalid_target", "resource must be this credential issuer")
    if form.get("issuer_state"):
        raise OAuthError("invalid_request", "this issuer makes no issuer_state: send none")
    wallet_state = form.get("state")
    if wallet_state is not None and not _PRINTABLE.fullmatch(wallet_state):
        raise OAuthError("invalid_request", "state must be printable ASCII, at most 200")
    jkt = (
        dpop_jkt(session, state, dpop, method="POST", url=_url(state, "/oid4vci/par"), now=now)
        if dpop
        else None
    )
    asked_jkt = form.get("dpop_jkt")
    if asked_jkt is not None and jkt is not None and asked_jkt != jkt:
        raise OAuthError("invalid_dpop_proof", "dpop_jkt is not the DPoP proof's key")
    handle = secrets.token_urlsafe(32)
    store_secret(
        session.connection(),
        purpose=PAR,
        value=handle,
        expires_at=now + PAR_LIFETIME,
        data={
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "code_challenge": challenge,
            "state": wallet_state,
            "jkt": jkt or asked_jkt,
        },
    )
    session.commit()
    return REQUEST_URI_PREFIX + handle, PAR_LIFETIME


# --- the browser's steps ----------------------------------------------------------------------


@dataclass(frozen=True)
class Redirect:
    """Send the browser to ``location`` (303)."""

    location: str


@dataclass(frozen=True)
class Consent:
    """The resident logged in: show her who asks, and let her allow or deny."""

    decision: str  # the single-use handle of her answer
    client_id: str
    redirect_uri: str


def _back_to_wallet(request: Mapping[str, Any], state: NodeState, **params: str) -> Redirect:
    """The wallet's redirect URI with ``params``, its ``state`` and ``iss`` (RFC 9207)."""
    answer = dict(params)
    if request.get("state") is not None:
        answer["state"] = request["state"]
    answer["iss"] = state.settings.node_id
    uri = request["redirect_uri"]
    return Redirect(uri + ("&" if urlsplit(uri).query else "?") + urlencode(answer))


def begin_login(
    session: Session, state: NodeState, *, client_id: str, request_uri: str, now: int
) -> Redirect:
    """The authorization endpoint (RFC 9126 section 4): take the pushed request (single
    use) and send the browser to log in at the identity provider, with a fresh state and
    nonce of this login (committed). NodeError 400 ``authorization_request_not_found``
    when the request is unknown, used or lapsed, or was pushed by another client."""
    endpoint = login_endpoint(state)
    if endpoint is None:
        raise NodeError("not_found", "this node has no authorization code flow", status=404)
    handle = request_uri.removeprefix(REQUEST_URI_PREFIX)
    connection = session.connection()
    try:
        if handle == request_uri:
            raise SecretRefused("unknown")
        _, request = take_secret(connection, purpose=PAR, value=handle, now=now)
    except SecretRefused as refused:
        raise NodeError(
            "authorization_request_not_found",
            f"this authorization request is {refused.why}: start again in the wallet",
            status=400,
        ) from None
    if request["client_id"] != client_id:
        session.commit()  # used up all the same: a mix-up is not retried
        raise NodeError(
            "authorization_request_not_found",
            "this authorization request was made by another wallet",
            status=400,
        )
    login_state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    store_secret(
        connection,
        purpose=LOGIN,
        value=login_state,
        expires_at=now + LOGIN_LIFETIME,
        data={**request, "nonce": nonce},
    )
    session.commit()
    query = urlencode(
        {
            "response_type": "id_token",
            "response_mode": "form_post",
            "scope": "openid",
            "client_id": state.settings.idp_audience,
            "redirect_uri": _url(state, "/oid4vci/login"),
            "state": login_state,
            "nonce": nonce,
        }
    )
    return Redirect(endpoint + ("&" if "?" in endpoint else "?") + query)


def finish_login(
    session: Session, state: NodeState, form: Mapping[str, str], *, now: int
) -> Consent | Redirect:
    """Where the identity provider posts the ID token (OpenID Connect Form Post
    Response Mode): take the login (single use), check the token was made for it
    (``nonce``), then ask the resident; a resident without both consents, or one who
    cancelled at the identity provider, goes back to the wallet with ``access_denied``
    (committed). NodeError 400 ``login_not_found``, 401 ``unauthorized``."""
    connection = session.connection()
    try:
        _, request = take_secret(connection, purpose=LOGIN, value=form.get("state", ""), now=now)
    except SecretRefused as refused:
        raise NodeError(
            "login_not_found",
            f"this login is {refused.why}: start again in the wallet",
            status=400,
        ) from None
    session.commit()
    if "id_token" not in form:
        return _back_to_wallet(
            request, state, error="access_denied", error_description="the login was cancelled"
        )
    resident = verify_idp_token(state, form["id_token"], now=now, nonce=request["nonce"])
    connection = session.connection()  # a new one after the commit
    try:
        issuing.require_consents(connection, resident, now, state.settings.alliance)
    except NodeError as refused:
        return _back_to_wallet(
            request, state, error="access_denied", error_description=refused.message
        )
    decision = secrets.token_urlsafe(32)
    store_secret(
        connection,
        purpose=DECISION,
        value=decision,
        subject=resident,
        expires_at=now + DECISION_LIFETIME,
        data={key: value for key, value in request.items() if key != "nonce"},
    )
    session.commit()
    return Consent(decision, request["client_id"], request["redirect_uri"])


def decide(session: Session, state: NodeState, form: Mapping[str, str], *, now: int) -> Redirect:
    """The resident's answer: a code for the wallet (single use, a minute), or
    ``access_denied``; audited either way (committed). NodeError 400 ``login_not_found``."""
    connection = session.connection()
    try:
        resident, request = take_secret(
            connection, purpose=DECISION, value=form.get("decision", ""), now=now
        )
    except SecretRefused as refused:
        raise NodeError(
            "login_not_found",
            f"this authorization is {refused.why}: start again in the wallet",
            status=400,
        ) from None
    allowed = form.get("answer") == "allow"
    audit.append(
        session,
        actor="resident",
        action="authorization.allowed" if allowed else "authorization.denied",
        subject=resident,
        details={"client_id": request["client_id"], "redirect_uri": request["redirect_uri"]},
        now=now,
    )
    if not allowed:
        session.commit()
        return _back_to_wallet(
            request, state, error="access_denied", error_description="the resident said no"
        )
    code = secrets.token_urlsafe(32)
    store_secret(
        connection,
        purpose=CODE,
        value=code,
        subject=resident,
        expires_at=now + CODE_LIFETIME,
        data=request,
    )
    session.commit()
    return _back_to_wallet(request, state, code=code)


# --- the token endpoint ----------------------------------------------------------------------


def redeem_authorization_code(
    session: Session, state: NodeState, form: Mapping[str, str], *, dpop: str | None, now: int
) -> TokenGrant:
    """The token endpoint for the authorization code grant (RFC 6749 section 4.1.3, RFC
    7636 section 4.6): the code single use (used up by any attempt, right or wrong), for
    the client, redirect URI and PKCE verifier it was made for, and for the DPoP key the
    request was pushed with, if any (committed). OAuthError ``invalid_request``,
    ``invalid_grant``, ``invalid_dpop_proof``."""
    if login_endpoint(state) is None:
        raise OAuthError("unsupported_grant_type", "this node has no authorization code flow")
    code = form.get("code")
    if not code:
        raise OAuthError("invalid_request", "code is missing")
    verifier = form.get("code_verifier", "")
    if not _VERIFIER.fullmatch(verifier):
        raise OAuthError("invalid_request", "code_verifier is missing or malformed (RFC 7636)")
    connection = session.connection()
    try:
        resident, request = take_secret(connection, purpose=CODE, value=code, now=now)
    except SecretRefused as refused:
        raise OAuthError(
            "invalid_grant", f"the authorization code is {refused.why}: start again"
        ) from None
    session.commit()  # used up, whatever follows
    if form.get("client_id") != request["client_id"]:
        raise OAuthError("invalid_grant", "the code was issued to another client")
    if form.get("redirect_uri") != request["redirect_uri"]:
        raise OAuthError("invalid_grant", "redirect_uri is not the authorization request's")
    if not secrets.compare_digest(_challenge(verifier), request["code_challenge"]):
        raise OAuthError("invalid_grant", "the PKCE code_verifier does not match")
    jkt = (
        dpop_jkt(session, state, dpop, method="POST", url=_url(state, "/oid4vci/token"), now=now)
        if dpop
        else None
    )
    bound = request.get("jkt")
    if bound is not None and not (jkt is not None and secrets.compare_digest(jkt, bound)):
        raise OAuthError(
            "invalid_dpop_proof",
            "the authorization request was bound to a DPoP key: prove that key",
        )
    return mint_access_token(session, resident, jkt=jkt, now=now)
