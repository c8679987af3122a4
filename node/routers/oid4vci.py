"""OpenID4VCI 1.0: the issuer's and authorization server's metadata, the resident's
credential offers, and the wallet's token, nonce and credential endpoints (issue 14;
node/services/oid4vci.py holds the rules). The wallet's endpoints answer refusals in the
OAuth shape ``{"error", "error_description"}`` with the specs' codes, and read their own
bodies (a form, or strict JSON) so that every refusal is one of those codes.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Body, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

import protocol as P
from node.auth import ResidentDep
from node.deps import NowDep, SessionDep, StateDep
from node.errors import NodeError, OAuthError, error_responses, oauth_error_responses
from node.guards import SMALL_BODY_BYTES, GuardedRoute, read_body
from node.routers import BODY_ERRORS, RESIDENT_ERRORS
from node.services import oid4vci

__all__ = ["router"]

router = APIRouter(route_class=GuardedRoute, tags=["openid4vci"])

NO_STORE = {"Cache-Control": "no-store"}
CREDENTIAL_ISSUER_WELL_KNOWN = "/.well-known/openid-credential-issuer"
AUTHORIZATION_SERVER_WELL_KNOWN = "/.well-known/oauth-authorization-server"


# --- metadata ------------------------------------------------------------------------------


def _for_this_issuer(state: Any, path: str) -> None:
    # OpenID4VCI section 12.2.2 / RFC 8414 section 3: an issuer whose identifier has a
    # path serves its metadata at /.well-known/<name><path>; any other path is not it.
    if "/" + path.strip("/") != oid4vci.issuer_path(state.settings.node_id):
        raise NodeError("not_found", "no issuer metadata at this path", status=404)


@router.get(
    CREDENTIAL_ISSUER_WELL_KNOWN,
    summary="Credential Issuer Metadata (OpenID4VCI 1.0 section 12.2)",
    responses=error_responses(404),
)
def credential_issuer_metadata(state: StateDep) -> dict[str, Any]:
    if oid4vci.issuer_path(state.settings.node_id):
        raise NodeError("not_found", "this issuer's identifier has a path", status=404)
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
    if oid4vci.issuer_path(state.settings.node_id):
        raise NodeError("not_found", "this issuer's identifier has a path", status=404)
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


# --- the resident's offers -----------------------------------------------------------------


class OfferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    cross_device: bool = Field(
        False,
        description="the wallet is on another device than this screen (a QR code): the "
        "offer then needs a transaction code, shown here and typed into the wallet",
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
        session, state, resident, cross_device=bool(body and body.cross_device), now=now
    )
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

_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "grant_type": {"type": "string", "enum": [oid4vci.PREAUTHORIZED_GRANT]},
                        "pre-authorized_code": {"type": "string"},
                        "tx_code": {"type": "string"},
                    },
                    "required": ["grant_type", "pre-authorized_code"],
                }
            }
        },
    }
}


class TokenOut(BaseModel):
    access_token: str
    token_type: str = Field(description="DPoP when bound to the wallet's DPoP key, else Bearer")
    expires_in: int


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, each parameter once (RFC 6749 section
    3.2); OAuth ``invalid_request`` otherwise."""
    body = await read_body(request, SMALL_BODY_BYTES)
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


@router.post(
    "/oid4vci/token",
    summary="Token endpoint: a pre-authorized code (and its tx_code) for an access token",
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
    form = await _form(request)
    grant = await run_in_threadpool(
        oid4vci.redeem_pre_authorized_code, session, state, form, dpop=dpop, now=now
    )
    body = TokenOut(
        access_token=grant.access_token, token_type=grant.token_type, expires_in=grant.expires_in
    )
    return JSONResponse(body.model_dump(), headers=NO_STORE)


class NonceOut(BaseModel):
    c_nonce: str = Field(description="single use: the nonce of the next key proof")


@router.post(
    "/oid4vci/nonce",
    summary="Nonce endpoint (OpenID4VCI section 7): a fresh c_nonce",
    responses={200: {"model": NonceOut}},
)
def nonce(session: SessionDep, now: NowDep) -> JSONResponse:
    return JSONResponse({"c_nonce": oid4vci.new_c_nonce(session, now=now)}, headers=NO_STORE)


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
                            "enum": [oid4vci.CONFIGURATION_ID],
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
    resident = await run_in_threadpool(
        oid4vci.access_token_holder, session, state, authorization, dpop, now
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
        lambda: oid4vci.issue_credential(session, state, resident, body=body, now=now)
    )
    return JSONResponse({"credentials": [{"credential": issued}]}, headers=NO_STORE)
