"""OpenID4VCI 1.0: the issuer's and authorization server's metadata, the resident's
credential offers, and the wallet's token, nonce and credential endpoints (issue 14;
node/services/oid4vci.py holds the rules). The wallet's endpoints answer refusals in the
OAuth shape ``{"error", "error_description"}`` with the specs' codes, and read their own
bodies (a form, or strict JSON) so that every refusal is one of those codes.
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

import protocol as P
from node.auth import ResidentDep
from node.deps import NowDep, SessionDep, StateDep
from node.errors import NodeError, OAuthError, error_responses, oauth_error_responses
from node.guards import SMALL_BODY_BYTES, GuardedRoute, read_body
from node.pages import form_page, message_page
from node.routers import BODY_ERRORS, RESIDENT_ERRORS, form_body
from node.routers._oauth import NO_STORE, read_form
from node.services import oid4vci, oid4vci_authorization

__all__ = ["router"]

router = APIRouter(route_class=GuardedRoute, tags=["openid4vci"])

CREDENTIAL_ISSUER_WELL_KNOWN = "/.well-known/openid-credential-issuer"
AUTHORIZATION_SERVER_WELL_KNOWN = "/.well-known/oauth-authorization-server"


# --- metadata ------------------------------------------------------------------------------


def _for_this_issuer(state: Any, path: str = "") -> None:
    # OpenID4VCI section 12.2.2 / RFC 8414 section 3: an issuer whose identifier has a
    # path serves its metadata at /.well-known/<name><path> (and only there); one
    # without a path at /.well-known/<name>.
    if ("/" + path.strip("/")).rstrip("/") != oid4vci.issuer_path(state.settings.node_id):
        raise NodeError("not_found", "no issuer metadata at this path", status=404)


@router.get(
    CREDENTIAL_ISSUER_WELL_KNOWN,
    summary="Credential Issuer Metadata (OpenID4VCI 1.0 section 12.2)",
    responses=error_responses(404),
)
def credential_issuer_metadata(state: StateDep) -> dict[str, Any]:
    _for_this_issuer(state)
    return oid4vci.credential_issuer_metadata(state)


@router.get(
    CREDENTIAL_ISSUER_WELL_KNOWN + "/{path:path}",
    summary="Credential Issuer Metadata of an issuer identifier with a path",
    responses=error_responses(404, 422),
)
def credential_issuer_metadata_with_path(
    state: StateDep, path: Annotated[str, Path(max_length=200)]
) -> dict[str, Any]:
    _for_this_issuer(state, path)
    return oid4vci.credential_issuer_metadata(state)


@router.get(
    AUTHORIZATION_SERVER_WELL_KNOWN,
    summary="Authorization Server Metadata (RFC 8414): the node is its own",
    responses=error_responses(404),
)
def authorization_server_metadata(state: StateDep) -> dict[str, Any]:
    _for_this_issuer(state)
    return oid4vci.authorization_server_metadata(state)


@router.get(
    AUTHORIZATION_SERVER_WELL_KNOWN + "/{path:path}",
    summary="Authorization Server Metadata of an issuer identifier with a path",
    responses=error_responses(404, 422),
)
def authorization_server_metadata_with_path(
    state: StateDep, path: Annotated[str, Path(max_length=200)]
) -> dict[str, Any]:
    _for_this_issuer(state, path)
    return oid4vci.authorization_server_metadata(state)


@router.get(
    "/oid4vci/type-metadata",
    summary="SD-JWT VC Type Metadata of a credential type (its vct is a URN, so here)",
    responses=error_responses(422),
)
def type_metadata(
    vct: Annotated[
        Literal["urn:ccx:credit-standing:1", "urn:ccx:domestic-service:1"],
        Query(description="the credential type; the credit standing by default"),
    ] = "urn:ccx:credit-standing:1",
) -> dict[str, Any]:
    return oid4vci.type_metadata(vct)


# --- the resident's offers -----------------------------------------------------------------


class OfferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    cross_device: bool = Field(
        False,
        description="the wallet is on another device than this screen (a QR code): the "
        "offer then needs a transaction code, shown here and typed into the wallet",
    )
    credential_configuration_id: Literal["ccx_credit_standing", "ccx_domestic_service"] = Field(
        "ccx_credit_standing",
        description="which credential: the credit standing, or the domestic-service (家政) "
        "credential (its own consent, share_domestic_service; docs/CREDENTIALS.md)",
    )


class OfferOut(BaseModel):
    credential_offer_uri: str = Field(description="where the wallet fetches the offer, once")
    offer: str = Field(
        description="openid-credential-offer://?credential_offer_uri=...: show it as a QR "
        "code or open it on this device"
    )
    tx_code: str | None = Field(description="the code to type into the wallet (cross-device)")
    expires_at: int = Field(description="NumericDate after which the offer lapses")


@router.post(
    "/v1/me/credential-offers",
    status_code=201,
    tags=["residents"],
    summary="A credential offer for a standard wallet (OpenID4VCI pre-authorized code)",
    responses=error_responses(*RESIDENT_ERRORS, *BODY_ERRORS, 403),  # 403: a consent missing
)
def create_offer(
    resident: ResidentDep,
    session: SessionDep,
    state: StateDep,
    now: NowDep,
    body: Annotated[OfferRequest | None, Body()] = None,
) -> OfferOut:
    """Needs both consents, as the credential does. The offer is single use and lapses
    in five minutes; its wallet gets the credential at once (docs/ISSUING.md)."""
    offer = oid4vci.create_offer(
        session, state, resident, cross_device=bool(body and body.cross_device), now=now,
        configuration=body.credential_configuration_id if body else oid4vci.CONFIGURATION_ID,
    )  # fmt: skip
    return OfferOut(
        credential_offer_uri=offer.credential_offer_uri,
        offer=offer.link,
        tx_code=offer.tx_code,
        expires_at=offer.expires_at,
    )


@router.get(
    "/oid4vci/offers/{offer_id}",
    summary="A credential offer, once (OpenID4VCI section 4.1.3)",
    responses=error_responses(404, 422),
)
def offer(
    offer_id: Annotated[str, Path(min_length=1, max_length=64)],
    session: SessionDep,
    state: StateDep,
    now: NowDep,
) -> JSONResponse:
    document = oid4vci.offer_document(session, state, offer_id, now=now)
    return JSONResponse(document, headers=NO_STORE)


# --- the wallet's endpoints ----------------------------------------------------------------

_FORM = form_body(
    {
        "grant_type": {
            "enum": [oid4vci.PREAUTHORIZED_GRANT, oid4vci_authorization.AUTHORIZATION_CODE_GRANT]
        },
        "pre-authorized_code": {},
        "tx_code": {},
        "code": {},
        "code_verifier": {},
        "redirect_uri": {},
        "client_id": {},
    },
    ["grant_type"],
)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = Field(description="DPoP when bound to the wallet's DPoP key, else Bearer")
    expires_in: int


@router.post(
    "/oid4vci/token",
    summary="Token endpoint: a pre-authorized code (and its tx_code), or an authorization "
    "code (and its PKCE verifier), for an access token",
    openapi_extra=_FORM,
    responses={
        200: {"model": TokenOut},
        **oauth_error_responses(400),
        **error_responses(413, 422),
    },
)
async def token(
    request: Request,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
    dpop: Annotated[str | None, Header(alias="DPoP", include_in_schema=False)] = None,
) -> JSONResponse:
    form = await read_form(request)
    redeem = (
        oid4vci_authorization.redeem_authorization_code
        if form.get("grant_type") == oid4vci_authorization.AUTHORIZATION_CODE_GRANT
        else oid4vci.redeem_pre_authorized_code
    )
    grant = await run_in_threadpool(redeem, session, state, form, dpop=dpop, now=now)
    body = TokenOut(
        access_token=grant.access_token, token_type=grant.token_type, expires_in=grant.expires_in
    )
    return JSONResponse(body.model_dump(), headers=NO_STORE)


# --- the authorization code grant ----------------------------------------------------------

_PAR_FORM = form_body(
    {
        "response_type": {"enum": ["code"]},
        "client_id": {},
        "redirect_uri": {},
        "scope": {"enum": [oid4vci.CONFIGURATION_ID]},
        "code_challenge": {},
        "code_challenge_method": {"enum": ["S256"]},
        "state": {},
        "resource": {},
        "dpop_jkt": {},
    },
    ["response_type", "client_id", "redirect_uri", "scope", "code_challenge",
     "code_challenge_method"],
)  # fmt: skip


class PushedRequestOut(BaseModel):
    request_uri: str = Field(description="urn:ietf:params:oauth:request_uri:..., single use")
    expires_in: int


@router.post(
    "/oid4vci/par",
    status_code=201,
    summary="Pushed authorization request (RFC 9126): the wallet's request, before the "
    "browser goes to the authorization endpoint",
    openapi_extra=_PAR_FORM,
    responses={
        201: {"model": PushedRequestOut},
        **oauth_error_responses(400),
        **error_responses(413, 422),
    },
)
async def pushed_authorization_request(
    request: Request,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
    dpop: Annotated[str | None, Header(alias="DPoP", include_in_schema=False)] = None,
) -> JSONResponse:
    form = await read_form(request)
    request_uri, expires_in = await run_in_threadpool(
        oid4vci_authorization.push_authorization_request, session, state, form, dpop=dpop, now=now
    )
    body = PushedRequestOut(request_uri=request_uri, expires_in=expires_in)
    return JSONResponse(body.model_dump(), status_code=201, headers=NO_STORE)


_PAGE: dict[str, Any] = {
    "description": "a page for the resident that says why, in Chinese and English",
    "content": {"text/html": {}},
}


def _refusal_page(exc: NodeError) -> Response:
    """A browser step's refusal as a page (there is no wallet to tell yet)."""
    return message_page(
        "无法继续",
        "Cannot go on",
        "请回到钱包重新开始。",
        f"{exc.message}.",
        status=exc.status,
    )


def _go(redirect: oid4vci_authorization.Redirect) -> Response:
    return RedirectResponse(redirect.location, status_code=303, headers=NO_STORE)


@router.get(
    "/oid4vci/authorize",
    summary="Authorization endpoint (RFC 6749, with a pushed request only): the resident's "
    "browser, on its way to log in",
    response_class=HTMLResponse,
    responses={
        303: {"description": "to the identity provider's login"},
        400: _PAGE,
        404: _PAGE,
    },
    openapi_extra={
        "parameters": [
            {"name": name, "in": "query", "required": True, "schema": {"type": "string"}}
            for name in ("client_id", "request_uri")
        ]
    },
)
def authorize(request: Request, session: SessionDep, state: StateDep, now: NowDep) -> Response:
    # read here, not by FastAPI, so that a browser gets a page rather than JSON
    client_id = request.query_params.get("client_id")
    request_uri = request.query_params.get("request_uri")
    try:
        if not client_id or not request_uri or len(client_id) > 200 or len(request_uri) > 200:
            raise NodeError(
                "invalid_request", "client_id and request_uri are both needed", status=400
            )
        return _go(
            oid4vci_authorization.begin_login(
                session, state, client_id=client_id, request_uri=request_uri, now=now
            )
        )
    except NodeError as exc:
        return _refusal_page(exc)


async def _browser_form(request: Request) -> dict[str, str]:
    try:
        return await read_form(request)
    except OAuthError as exc:
        raise NodeError("invalid_request", exc.description, status=400) from exc


@router.post(
    "/oid4vci/login",
    summary="Where the identity provider posts the resident's ID token (OpenID Connect "
    "Form Post Response Mode); the page where she allows or denies the wallet",
    response_class=HTMLResponse,
    openapi_extra=form_body(
        {
            "state": {"description": "the login's state, as the node sent it to the IdP"},
            "id_token": {"description": "the resident's ID token (absent: she cancelled)"},
            "error": {"description": "the identity provider's refusal, if any"},
        },
        ["state"],
    ),
    responses={303: {"description": "back to the wallet"}, 400: _PAGE, 401: _PAGE},
)
async def login(request: Request, session: SessionDep, state: StateDep, now: NowDep) -> Response:
    try:
        form = await _browser_form(request)
        outcome = await run_in_threadpool(
            oid4vci_authorization.finish_login, session, state, form, now=now
        )
    except NodeError as exc:
        return _refusal_page(exc)
    if isinstance(outcome, oid4vci_authorization.Redirect):
        return _go(outcome)
    where = urlsplit(outcome.redirect_uri)
    intro = (
        f'<p class="zh">钱包 <b>{escape(outcome.client_id)}</b> 请求领取您的信用状况凭证，'
        "凭证将保存在该钱包中，由您决定向谁出示。</p>"
        f'<p lang="en">The wallet <b>{escape(outcome.client_id)}</b> asks for your credit '
        "standing credential. It will be kept in that wallet, and you decide whom to show "
        "it to.</p>"
        f'<p class="who">{escape(where.scheme)}://{escape(where.netloc)}{escape(where.path)}</p>'
        '<p class="zh">如果不是您刚刚打开的钱包，请拒绝。</p>'
        '<p lang="en">If this is not the wallet you just opened, deny.</p>'
    )
    return form_page(
        "授权钱包",
        "Allow this wallet?",
        intro,
        action=f"{state.settings.node_id}/oid4vci/authorize/decision",
        hidden={"decision": outcome.decision},
        buttons=(("answer", "allow", "允许 / Allow"), ("answer", "deny", "拒绝 / Deny")),
    )


@router.post(
    "/oid4vci/authorize/decision",
    summary="The resident allows or denies the wallet: back to it with a code or access_denied",
    response_class=HTMLResponse,
    openapi_extra=form_body(
        {
            "decision": {"description": "the consent page's one-time handle"},
            "answer": {"enum": ["allow", "deny"]},
        },
        ["decision", "answer"],
    ),
    responses={303: {"description": "back to the wallet"}, 400: _PAGE},
)
async def decision(request: Request, session: SessionDep, state: StateDep, now: NowDep) -> Response:
    try:
        form = await _browser_form(request)
        redirect = await run_in_threadpool(
            oid4vci_authorization.decide, session, state, form, now=now
        )
    except NodeError as exc:
        return _refusal_page(exc)
    return _go(redirect)


class NonceOut(BaseModel):
    c_nonce: str = Field(description="single use: the nonce of the next key proof")


@router.post(
    "/oid4vci/nonce",
    summary="Nonce endpoint (OpenID4VCI section 7): a fresh c_nonce",
    responses={200: {"model": NonceOut}},
)
async def nonce(state: StateDep, now: NowDep) -> JSONResponse:
    # async: a sealed c_nonce is made without a write
    return JSONResponse({"c_nonce": oid4vci.new_c_nonce(state, now=now)}, headers=NO_STORE)


class CredentialOut(BaseModel):
    credentials: list[dict[str, str]] = Field(
        description='[{"credential": <the SD-JWT VC>}] (OpenID4VCI section 8.3)'
    )


_CREDENTIAL_REQUEST = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "credential_configuration_id": {
                            "type": "string",
                            "enum": sorted(oid4vci.CONFIGURATIONS),
                        },
                        "proofs": {
                            "type": "object",
                            "properties": {"jwt": {"type": "array", "items": {"type": "string"}}},
                        },
                    },
                    "required": ["credential_configuration_id", "proofs"],
                }
            }
        },
    }
}


@router.post(
    "/oid4vci/credential",
    summary="Credential endpoint (OpenID4VCI section 8): the credit standing, for a key proof",
    openapi_extra=_CREDENTIAL_REQUEST,
    responses={
        200: {"model": CredentialOut},
        **oauth_error_responses(400, 401, 503),
        **error_responses(413, 422),
    },
)
async def credential(
    request: Request,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    dpop: Annotated[str | None, Header(alias="DPoP", include_in_schema=False)] = None,
) -> JSONResponse:
    # the access token (and its DPoP proof) before a byte of the body is read
    grant = await run_in_threadpool(
        oid4vci.access_token_grant, session, state, authorization, dpop, now
    )
    raw = await read_body(request, SMALL_BODY_BYTES)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise OAuthError("invalid_credential_request", "the body must be application/json")
    try:
        body = P.strict_json_loads(raw, what="the credential request")
    except P.ProtocolError as exc:
        raise OAuthError("invalid_credential_request", exc.message) from exc
    issued = await run_in_threadpool(
        lambda: oid4vci.issue_credential(
            session, state, grant.resident, body=body, now=now, granted=grant.configuration
        )
    )
    return JSONResponse({"credentials": [{"credential": issued}]}, headers=NO_STORE)
