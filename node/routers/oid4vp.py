"""OpenID4VP 1.0: a service point's presentation request and its result, the wallet's
request object and response endpoints (issue 14; node/services/oid4vp.py holds the
rules). The wallet's endpoints are public: the request id and the transaction id in
their paths are the secrets, each single use."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from node.deps import NowDep, StateDep
from node.errors import error_responses, oauth_error_responses
from node.guards import GuardedRoute
from node.routers import BODY_ERRORS, CLIENT_ERRORS, form_body
from node.routers._oauth import NO_STORE, read_form
from node.routers.verifications import ServicePoint, TierOut, tier_out
from node.scenarios import SCENARIO_PATTERN
from node.services import oid4vp
from node.services.nonces import MAX_SEALED_LENGTH
from node.state import NodeState

__all__ = ["router"]

router = APIRouter(route_class=GuardedRoute, tags=["openid4vp"])

REQUEST_MEDIA_TYPE = "application/oauth-authz-req+jwt"
_ID = Path(min_length=1, max_length=MAX_SEALED_LENGTH)  # sealed ids (node.services.nonces)


class PresentationRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    scenario: str = Field(pattern=SCENARIO_PATTERN, examples=["library_deposit_free"])
    response_mode: Literal["direct_post.jwt", "direct_post"] = Field(
        "direct_post.jwt",
        description="direct_post.jwt: the wallet encrypts its answer to a key of this "
        "request (HAIP); direct_post: in the clear, over TLS",
    )


class PresentationRequestOut(BaseModel):
    transaction_id: str = Field(description="the handle of GET /v1/presentation-requests/{id}")
    request: str = Field(description="openid4vp://?client_id=...&request_uri=...: the QR code")
    request_uri: str
    client_id: str = Field(description="x509_hash:<this node's leaf certificate>")
    response_mode: str
    issued_at: int = Field(
        description="the node's time when it made the request: a kiosk counts down "
        "expires_at - issued_at on its own clock"
    )
    expires_at: int
    scenario: str
    name_zh: str
    name_en: str
    disclose: list[str] = Field(description="the claims the request asks the wallet for")
    credential: str = Field(
        "credit_standing",
        description="the credential it asks for: credit_standing or domestic_service",
    )
    tiers: list[TierOut] = Field(description="lowest first")


@router.post(
    "/v1/presentation-requests",
    status_code=201,
    tags=["verifications"],
    summary="A presentation request for one scenario, for a standard wallet (OpenID4VP)",
    responses=error_responses(*CLIENT_ERRORS, *BODY_ERRORS, 404, 429, 503),
)
async def create_request(
    body: PresentationRequestIn,
    client: ServicePoint,
    state: StateDep,
    now: NowDep,
) -> PresentationRequestOut:
    """Show `request` as a QR code (or open it on the resident's phone); the decision
    arrives at GET /v1/presentation-requests/{transaction_id}."""
    # one hop (the first request of a registry version may fetch its mapping table),
    # then the writer keeps the request before it is shown
    made = await run_in_threadpool(
        partial(oid4vp.create_request, state, client, body.scenario,
                response_mode=body.response_mode, now=now)
    )  # fmt: skip
    return PresentationRequestOut(
        transaction_id=made.transaction_id,
        request=made.link,
        request_uri=made.request_uri,
        client_id=made.client_id,
        response_mode=made.response_mode,
        issued_at=now,
        expires_at=made.expires_at,
        scenario=made.scenario.kind,
        name_zh=made.scenario.name_zh,
        name_en=made.scenario.name_en,
        disclose=made.disclose,
        credential=made.scenario.credential,
        tiers=[tier_out(req) for req in made.requirements],
    )


class ReasonOut(BaseModel):
    code: str
    message: str


class TierNameOut(BaseModel):
    name: str
    benefit: str
    benefit_zh: str | None = None


class PresentationResultOut(BaseModel):
    scenario: str
    outcome: Literal["pending", "expired", "granted", "denied", "refused", "declined"] = Field(
        description="pending: no answer yet; granted/denied: decided; refused: the "
        "presentation did not hold (code); declined: the wallet said no (code)"
    )
    expires_at: int | None = None
    tier: str | None = None
    benefit: str | None = None
    benefit_zh: str | None = None
    reasons: list[ReasonOut] | None = None
    issuer: str | None = None
    issuer_city: str | None = None
    band: str | None = None
    alliance_score: int | None = None
    shown: dict[str, Any] | None = Field(
        None, description="a domestic-service scenario's claims it shows (docs/CREDENTIALS.md)"
    )
    audit_seq: int | None = None
    code: str | None = Field(None, description="why it was refused or declined")
    message: str | None = None


class ScenarioOut(BaseModel):
    scenario: str
    name_zh: str
    name_en: str
    tiers: list[TierNameOut] = Field(description="the catalogue's tiers, lowest first")


class ServicePointOut(BaseModel):
    client_id: str
    department: str
    scenarios: list[ScenarioOut] = Field(
        description="the scenarios these credentials may verify (their verify:<scenario> scopes)"
    )


@router.get(
    "/v1/service-point",
    tags=["verifications"],
    summary="The calling service point and the scenarios it may verify (the kiosk's menu)",
    responses=error_responses(*CLIENT_ERRORS, 429, 503),
)
def service_point(client: ServicePoint, state: StateDep) -> ServicePointOut:
    return ServicePointOut(
        client_id=client.id,
        department=client.department,
        scenarios=[
            ScenarioOut(
                scenario=scenario.kind,
                name_zh=scenario.name_zh,
                name_en=scenario.name_en,
                tiers=[
                    TierNameOut(name=tier.name, benefit=tier.benefit, benefit_zh=tier.benefit_zh)
                    for tier in scenario.tiers
                ],
            )
            for scenario in oid4vp.scenarios_of(state, client)
        ],
    )


class DecisionRowOut(BaseModel):
    at: int = Field(description="NumericDate of the decision")
    scenario: str
    outcome: Literal["granted", "denied", "refused", "declined"]
    tier: str | None = None
    code: str | None = Field(None, description="why it was refused or declined")
    audit_seq: int


class DecisionsOut(BaseModel):
    decisions: list[DecisionRowOut] = Field(
        description=f"newest first, at most {oid4vp.DAY_LIST_LIMIT}"
    )


@router.get(
    "/v1/presentation-requests",
    tags=["verifications"],
    summary="This service point's decisions since a moment (the kiosk's day), newest first",
    response_model_exclude_none=True,
    responses=error_responses(*CLIENT_ERRORS, 429),
)
def decisions(
    since: Annotated[int, Query(ge=0, le=2**53, description="NumericDate: from then on")],
    client: ServicePoint,
    state: StateDep,
) -> DecisionsOut:
    """Each decision from the service point's audit entries: when, the scenario, the
    outcome, the tier or the refusal's code; nothing about the visitor."""
    rows = oid4vp.decisions_since(state, client, since)
    return DecisionsOut(decisions=[DecisionRowOut(**row) for row in rows])


@router.get(
    "/v1/presentation-requests/{transaction_id}",
    tags=["verifications"],
    summary="Where a presentation request stands: pending, or its decision",
    response_model_exclude_none=True,
    responses=error_responses(*CLIENT_ERRORS, 404, 429),
)
def request_result(
    transaction_id: Annotated[str, _ID],
    client: ServicePoint,
    state: StateDep,
    now: NowDep,
) -> PresentationResultOut:
    return PresentationResultOut(**oid4vp.result(state, client, transaction_id, now=now))


_REQUEST_OBJECT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the signed request object (typ oauth-authz-req+jwt)",
        "content": {REQUEST_MEDIA_TYPE: {"schema": {"type": "string"}}},
    }
}


async def _request_object(request_id: str, state: NodeState, now: int) -> Response:
    fetch = await run_in_threadpool(partial(oid4vp.request_object, state, request_id, now=now))
    await state.writer.run(fetch.job)  # used up before it is handed out
    return Response(fetch.token, media_type=REQUEST_MEDIA_TYPE, headers=NO_STORE)


@router.get(
    "/oid4vp/requests/{request_id}",
    summary="The signed request object, once (OpenID4VP sections 5 and 5.10)",
    response_class=Response,
    responses={**_REQUEST_OBJECT, **error_responses(404, 422, 503)},
)
async def get_request_object(
    request_id: Annotated[str, _ID], state: StateDep, now: NowDep
) -> Response:
    return await _request_object(request_id, state, now)


@router.post(
    "/oid4vp/requests/{request_id}",
    summary="The signed request object, once (request_uri_method=post: the wallet's "
    "metadata in the form is read and ignored)",
    response_class=Response,
    openapi_extra=form_body({"wallet_metadata": {}, "wallet_nonce": {}}, []),
    responses={**_REQUEST_OBJECT, **error_responses(404, 413, 422, 503)},
)
async def post_request_object(
    request: Request,
    request_id: Annotated[str, _ID],
    state: StateDep,
    now: NowDep,
) -> Response:
    # Section 5.10: the verifier MUST ignore unknown parameters. A wallet_nonce would
    # have to be copied into the request object; this verifier signs one request per
    # id and needs no wallet_nonce against replay (the id is single use).
    await read_form(request, strict=False)
    return await _request_object(request_id, state, now)


@router.post(
    "/oid4vp/responses/{transaction_id}",
    summary="Response endpoint (OpenID4VP section 8.2): the wallet's vp_token, or its "
    "encrypted response (direct_post.jwt)",
    openapi_extra=form_body(
        {
            "response": {"description": "direct_post.jwt: the JWE"},
            "vp_token": {"description": "direct_post: the vp_token JSON"},
            "state": {},
            "error": {},
            "error_description": {},
        },
        [],
    ),
    responses={
        200: {"description": "processed: the decision is the service point's"},
        **oauth_error_responses(400),
        **error_responses(413, 422),
    },
)
async def response_endpoint(
    request: Request,
    transaction_id: Annotated[str, _ID],
    state: StateDep,
    now: NowDep,
) -> JSONResponse:
    # the checks in one hop to the thread pool, the writes in the writer's next group
    # commit: the event loop waits for neither
    form = await read_form(request)
    answer = await run_in_threadpool(
        partial(oid4vp.check_response, state, transaction_id, form, now=now)
    )
    recorded = await state.writer.run(answer.job)
    return JSONResponse(oid4vp.finish(state, answer, recorded), headers=NO_STORE)
