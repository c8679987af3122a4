"""Admin routes: the audit log (hash-chained) and its check; key rotation; withdrawing a
client's records."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from node.auth import AdminDep
from node.deps import NowDep, SessionDep, StateDep
from node.errors import error_responses
from node.guards import GuardedRoute
from node.routers import ADMIN_ERRORS
from node.services import audit, keys, records

router = APIRouter(
    route_class=GuardedRoute,
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(*ADMIN_ERRORS),
)


class AuditVerification(BaseModel):
    ok: bool
    first_bad_seq: int | None = Field(description="the first entry that breaks the chain")
    count: int = Field(description="entries in the log")
    head_seq: int | None = None
    head_hash: str | None = Field(None, description="anchor this outside the node")


class AuditEntryPublic(BaseModel):
    seq: int
    at: int
    actor: str
    action: str
    subject: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    entries: list[AuditEntryPublic]
    next_after: int | None = Field(description="pass as ?after= for the next page; null at the end")


@router.get("/audit/verify", summary="Recompute the audit log's hash chain")
def verify_audit(_: AdminDep, session: SessionDep) -> AuditVerification:
    check = audit.verify_chain(session)
    last = audit.head(session)
    return AuditVerification(
        ok=check.ok,
        first_bad_seq=check.first_bad_seq,
        count=check.entries,
        head_seq=last.seq if last else None,
        head_hash=last.hash if last else None,
    )


@router.get("/audit", summary="Audit log entries after a sequence number, oldest first")
def list_audit(
    _: AdminDep,
    session: SessionDep,
    # bounded like every Integer key: past 2**63 the database driver raised (a 500)
    after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    rows = audit.entries_after(session, after=after, limit=limit + 1)
    page = [AuditEntryPublic.model_validate(row, from_attributes=True) for row in rows[:limit]]
    return AuditPage(entries=page, next_after=page[-1].seq if len(rows) > limit else None)


class RotationPublic(BaseModel):
    active_kid: str = Field(description="signs from now on (it was the next key)")
    next_kid: str = Field(description="the new next key, published ahead of the next rotation")
    retired_kid: str = Field(description="signed until now; still verifies until retired_until")
    retired_until: int = Field(description="NumericDate after which the retired key is dropped")


@router.post(
    "/keys/rotate",
    summary="Rotate the signing key: next becomes active, active is retired",
    responses=error_responses(409, 503),
)
def rotate_keys(
    actor: AdminDep, session: SessionDep, state: StateDep, now: NowDep
) -> RotationPublic:
    """Rotate only once the next key (see /.well-known/jwks.json) is in the alliance
    registry version in effect: verifiers take issuer keys from the registry alone, so
    an attestation signed by a key it does not list is refused (docs/PROTOCOL.md,
    "Key rotation"). The retired key stays in the JWKS until its last attestation has
    expired. Audit-logged (kids only)."""
    done = keys.rotate_node_key(session, state, actor=actor, now=now)
    return RotationPublic(
        active_kid=done.active_kid,
        next_kid=done.next_kid,
        retired_kid=done.retired_kid,
        retired_until=done.retired_until,
    )


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    since: int = Field(
        ge=0, le=2**53, description="NumericDate: the client's records pushed from then on"
    )


class WithdrawOut(BaseModel):
    client_id: str
    since: int
    withdrawn: int = Field(description="records marked removed")
    residents: int = Field(description="residents rescored")
    objections_closed: int = Field(description="open objections to them, upheld")


# a client's id, as POST /v1/admin/clients takes it (node/routers/departments.py)
CLIENT_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


@router.post(
    "/clients/{client_id}/withdraw-records",
    summary="Withdraw a client's records pushed since a time, and rescore those residents",
    responses=error_responses(400, 404, 413),
)
def withdraw_records(
    client_id: Annotated[str, Path(pattern=CLIENT_ID_PATTERN)],
    body: WithdrawIn,
    actor: AdminDep,
    session: SessionDep,
    state: StateDep,
    now: NowDep,
) -> WithdrawOut:
    """For credentials that leaked: revoke them (``DELETE /v1/admin/clients/{id}``), then
    withdraw what they pushed since the leak. Each record is marked removed, as an upheld
    objection removes one; the residents concerned are rescored at once; audited
    (``records.withdrawn``). Other clients' records, the same department's included, are
    untouched. Again: nothing more is withdrawn."""
    done = records.withdraw_client_records(
        session, state, client_id, since=body.since, actor=actor, now=now
    )
    return WithdrawOut(
        client_id=done.client_id,
        since=done.since,
        withdrawn=done.withdrawn,
        residents=done.residents,
        objections_closed=done.objections_closed,
    )
