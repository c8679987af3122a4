"""Service points: a challenge for a scenario, then the decision on a presentation
(docs/PROTOCOL.md "Service points: challenges and verifications")."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from node.auth import ClientIdentity, calling_client
from node.deps import NowDep, StateDep
from node.errors import error_responses
from node.guards import GuardedRoute, before_body
from node.openapi_security import requires
from node.routers import BODY_ERRORS, CLIENT_ERRORS
from node.scenarios import SCENARIO_PATTERN, Requirement
from node.services import verifying
from node.state import NodeState

# 429: the client's rate limit; 503: no registry, mapping table or catalogue to decide by
router = APIRouter(
    route_class=GuardedRoute,
    prefix="/v1/verifications",
    tags=["verifications"],
    responses=error_responses(*CLIENT_ERRORS, *BODY_ERRORS, 429, 503),
)


@requires("client")
@before_body  # the rate is checked before the body is read, and a token taken once
async def _rate_limited(request: Request) -> ClientIdentity:
    # async: an in-memory token bucket is cheaper than the hop to the thread pool
    client = await calling_client(request)
    state: NodeState = request.app.state.node
    verifying.check_rate(state, client, int(state.now()))
    return client


ServicePoint = Annotated[ClientIdentity, Depends(_rate_limited)]


class ChallengeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    scenario: str = Field(
        pattern=SCENARIO_PATTERN,
        description="a scenario of the catalogue",
        examples=["library_deposit_free"],
    )


class TierOut(BaseModel):
    name: str
    benefit: str
    benefit_zh: str | None = None
    credit_limit_cny: int | None = None
    alliance_min: int = Field(description="the least alliance score this tier needs")
    disclose: str = Field(description="the disclosure that proves it")


def tier_out(req: Requirement) -> TierOut:
    tier = req.tier
    return TierOut(
        name=tier.name,
        benefit=tier.benefit,
        benefit_zh=tier.benefit_zh,
        credit_limit_cny=tier.credit_limit_cny,
        alliance_min=req.alliance_min,
        disclose=req.disclose,
    )


class ChallengeOut(BaseModel):
    nonce: str = Field(description="single use: the KB-JWT's nonce")
    aud: str = Field(description="this node's id: the KB-JWT's aud")
    expires_at: int = Field(description="NumericDate after which the nonce is refused")
    scenario: str
    name_zh: str
    name_en: str
    disclose: list[str] = Field(
        description="claim paths that decide the scenario; the holder discloses those she "
        "chooses (usually one score_at_least boolean)"
    )
    tiers: list[TierOut] = Field(description="lowest first")


class VerificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    nonce: str = Field(min_length=1, max_length=verifying.MAX_NONCE_LENGTH)
    presentation: str = Field(
        min_length=1,
        max_length=16384,
        description="<issuer-signed JWT>~<disclosures>~<KB-JWT> (docs/PROTOCOL.md section 4)",
    )


class ReasonOut(BaseModel):
    code: str
    message: str


class VerificationOut(BaseModel):
    decision: Literal["granted", "denied"]
    scenario: str
    tier: TierOut | None = Field(description="the benefit tier granted, or null")
    reasons: list[ReasonOut]
    issuer: str
    issuer_city: str | None
    band: str | None = Field(None, description="only when the scenario must see it")
    alliance_score: int | None = Field(None, description="only when the scenario must see it")
    shown: dict[str, Any] | None = Field(
        None, description="a domestic-service scenario's claims it shows (docs/CREDENTIALS.md)"
    )
    audit_seq: int = Field(
        description="the sequence number of this node's audit entry recording the decision "
        "(GET /v1/admin/audit), so that every decision can be traced"
    )


@router.post(
    "/challenge",
    status_code=201,
    summary="A single-use challenge for one scenario",
    responses=error_responses(404),  # a scenario not in the catalogue
)
async def create_challenge(
    body: ChallengeIn, client: ServicePoint, state: StateDep, now: NowDep
) -> ChallengeOut:
    # one hop: the first challenge of a registry version may fetch its mapping table
    challenge = await run_in_threadpool(
        verifying.create_challenge, state, client, body.scenario, now=now
    )
    scenario = challenge.scenario
    return ChallengeOut(
        nonce=challenge.nonce,
        aud=challenge.aud,
        expires_at=challenge.expires_at,
        scenario=scenario.kind,
        name_zh=scenario.name_zh,
        name_en=scenario.name_en,
        disclose=challenge.disclose,
        tiers=[tier_out(req) for req in challenge.requirements],
    )


@router.post(
    "",
    summary="Decide a presentation made for a challenge",
    response_model_exclude_unset=True,
    # 401 a nonce unknown, used or expired, or a presentation that does not verify
    responses=error_responses(401),
)
async def verify_presentation(
    body: VerificationIn, client: ServicePoint, state: StateDep, now: NowDep
) -> VerificationOut:
    # The checks in one hop to the thread pool (a status list may be fetched), the
    # writes in the writer's next group commit; the event loop waits for neither.
    checked = await run_in_threadpool(
        partial(verifying.check, state, client, nonce=body.nonce, presentation=body.presentation,
                now=now)
    )  # fmt: skip
    seq = await state.writer.run(partial(verifying.record, checked=checked, now=now))
    decision = verifying.outcome(state, checked, seq)
    shown: dict[str, Any] = {
        name: value
        for name, value in (
            ("band", decision.band),
            ("alliance_score", decision.alliance_score),
            ("shown", None if decision.shown is None else dict(decision.shown)),
        )
        if value is not None
    }  # set only when the scenario must see it: absent from the answer otherwise
    return VerificationOut(
        decision="granted" if decision.granted else "denied",
        scenario=decision.scenario.kind,
        tier=tier_out(decision.tier) if decision.tier is not None else None,
        reasons=[ReasonOut(code=r.code, message=r.message) for r in decision.reasons],
        issuer=decision.issuer,
        issuer_city=decision.issuer_city,
        audit_seq=decision.audit_seq,
        **shown,
    )
