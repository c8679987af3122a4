"""A resident's attestations: a proof-of-possession nonce, then the attestation itself;
the list of those issued to her, revoking, suspending and resuming one (issue 16: her
page), and revoking every one bound to a lost wallet key (issue 17)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from node.auth import ResidentDep
from node.deps import NowDep, SessionDep, StateDep
from node.errors import error_responses
from node.guards import GuardedRoute
from node.routers import BODY_ERRORS, RESIDENT_ERRORS
from node.services import issuing, nonces

router = APIRouter(
    route_class=GuardedRoute,
    prefix="/v1/me/attestations",
    tags=["attestations"],
    responses=error_responses(*RESIDENT_ERRORS),
)


class NonceResponse(BaseModel):
    nonce: str = Field(description="single use; sign it in the proof of possession")
    expires_at: int = Field(description="NumericDate after which the nonce is refused")
    aud: str = Field(description="the node's id: the proof's aud")
    typ: Literal["pop+jwt"] = Field("pop+jwt", description="the proof's JOSE typ")


class AttestationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    holder_jwk: dict[str, Any] = Field(
        description="the wallet's public key: EC P-256 or OKP Ed25519, public members only",
        max_length=16,
    )
    proof: str = Field(
        description='compact JWS, typ "pop+jwt", ES256 or EdDSA, signed by the holder key '
        'over {"nonce": <nonce>, "aud": <node id>, "iat": <now>}',
        max_length=nonces.MAX_PROOF_SIZE,
    )


class AttestationResponse(BaseModel):
    attestation: str = Field(description="the SD-JWT VC (ends with ~); the node keeps no copy")
    format: Literal["dc+sd-jwt"] = "dc+sd-jwt"
    band: str
    expires_at: int


@router.post("/nonce", status_code=201, summary="A single-use nonce for the proof of possession")
async def create_nonce(resident: ResidentDep, state: StateDep, now: NowDep) -> NonceResponse:
    # async: sealing a nonce writes nothing (node.services.nonces)
    nonce = nonces.create_pop_nonce(state, resident, now=now)
    return NonceResponse(
        nonce=nonce.value, expires_at=nonce.expires_at, aud=state.settings.node_id, typ="pop+jwt"
    )


@router.post(
    "",
    status_code=201,
    summary="Issue an attestation of the resident's standing, bound to her wallet key",
    # 400 a bad proof or key; 401 its nonce unknown, used or expired; 403 a consent
    # missing; 409 no score yet; 503 no mapping table in force, no status index free
    responses=error_responses(*BODY_ERRORS, 401, 403, 409),
)
async def issue_attestation(
    body: AttestationRequest,
    resident: ResidentDep,
    state: StateDep,
    now: NowDep,
) -> AttestationResponse:
    """Needs both consents (open the score; share it with the alliance) and a score."""
    # the checks in one hop (the mapping table may be fetched), the writes in the
    # writer's next group commit, the signature on the event loop (~0.1 ms)
    pending = await run_in_threadpool(
        partial(issuing.prepare_issue, state, resident, holder_jwk=body.holder_jwk,
                proof=body.proof, now=now)
    )  # fmt: skip
    issued = pending.finish(await state.writer.run(pending.job))
    return AttestationResponse(
        attestation=issued.token, band=issued.band, expires_at=issued.expires_at
    )


# --- the attestations issued to her (after the issuance route: it stays first) ----------


class AttestationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    holder_kid: str = Field(description="the JWK thumbprint of the wallet key it is bound to")
    credential: str = Field(
        "credit_standing",
        description="credit_standing or domestic_service (docs/CREDENTIALS.md)",
    )
    band: str = Field(description="a credit standing's band; empty for a domestic-service one")
    alliance_score: int | None
    issued_at: int
    expires_at: int
    status: Literal["valid", "suspended", "revoked"] = Field(
        description="as its status list says; an expired one keeps its last status"
    )


class AttestationList(BaseModel):
    attestations: list[AttestationPublic]


class HolderKeyRevocation(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    holder_kid: str = Field(
        description="the wallet key's JWK thumbprint (RFC 7638), as listed beside each attestation",
        pattern=r"^[A-Za-z0-9_-]{43}$",
    )


class HolderKeyRevoked(BaseModel):
    holder_kid: str
    attestations: list[AttestationPublic] = Field(
        description="every attestation of mine bound to that key, as they now stand"
    )


@router.get("", summary="The attestations issued to me, newest first")
def my_attestations(resident: ResidentDep, session: SessionDep) -> AttestationList:
    rows = issuing.attestations_of(session, resident)
    return AttestationList(attestations=[AttestationPublic.model_validate(r) for r in rows])


AttestationId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "/revoke",
    summary="Revoke every attestation of mine bound to one wallet key (a lost phone)",
    responses=error_responses(*BODY_ERRORS, 404),
)
def revoke_holder_key(
    body: HolderKeyRevocation,
    resident: ResidentDep,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
) -> HolderKeyRevoked:
    """Audited. Every valid or suspended attestation bound to ``holder_kid`` is revoked
    at once; a second call revokes nothing more. 404 ``holder_key_not_found`` when none
    of mine is bound to that key."""
    rows = issuing.revoke_holder_key(session, state, resident, body.holder_kid, now=now)
    return HolderKeyRevoked(
        holder_kid=body.holder_kid, attestations=[AttestationPublic.model_validate(r) for r in rows]
    )


@router.post(
    "/{attestation_id}/revoke",
    summary="Revoke one of my attestations (its status list says so at once)",
    responses=error_responses(404, 409),
)
def revoke_attestation(
    attestation_id: AttestationId,
    resident: ResidentDep,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
) -> AttestationPublic:
    """Audited. 404 ``attestation_not_found`` unless it is mine; 409 ``already_revoked``
    the second time. Verifiers see it once their copy of the status list is renewed."""
    row = issuing.revoke_attestation(session, state, resident, attestation_id, now=now)
    return AttestationPublic.model_validate(row)


@router.post(
    "/{attestation_id}/suspend",
    summary="Suspend one of my attestations until I resume it (a mislaid phone)",
    responses=error_responses(404, 409),
)
def suspend_attestation(
    attestation_id: AttestationId,
    resident: ResidentDep,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
) -> AttestationPublic:
    """Audited; its status list entry becomes 2 (suspended) and verifiers refuse it
    (``attestation_suspended``) once their copy of the list is renewed. 404
    ``attestation_not_found`` unless it is mine; 409 ``already_revoked``,
    ``already_suspended``."""
    row = issuing.suspend_attestation(session, state, resident, attestation_id, now=now)
    return AttestationPublic.model_validate(row)


@router.post(
    "/{attestation_id}/resume",
    summary="Make a suspended attestation of mine valid again",
    responses=error_responses(404, 409),
)
def resume_attestation(
    attestation_id: AttestationId,
    resident: ResidentDep,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
) -> AttestationPublic:
    """Audited; verifiers accept it again once their copy of the status list is renewed.
    404 ``attestation_not_found`` unless it is mine; 409 ``already_revoked`` (a revocation
    is final), ``not_suspended``."""
    row = issuing.resume_attestation(session, state, resident, attestation_id, now=now)
    return AttestationPublic.model_validate(row)
