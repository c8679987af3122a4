"""Routes for departments (issue 4): pushing records with scoped client credentials, and
the admins' side: client credentials, the full rescoring, the distribution summary.

Routes parse, call ``node.services.records`` / ``clients`` / ``scoring`` and return; the
rules and the transactions live there. The department always comes from the caller's
credentials, never from a body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Path, Query, UploadFile, status
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, WithJsonSchema
from sqlmodel import Session

from node.auth import AdminDep, ClientIdentity, client_with, forget_client
from node.deps import NowDep, SessionDep, StateDep
from node.errors import NodeError, error_responses
from node.guards import BATCH_BODY, GuardedRoute
from node.models import DistributionSnapshot
from node.routers import ADMIN_ERRORS, BODY_ERRORS, CLIENT_ERRORS
from node.services import clients, records, scoring
from node.services.records import RecordIn
from node.state import NodeState

__all__ = ["router"]

router = APIRouter(route_class=GuardedRoute, tags=["departments"])

PUSH_SCOPE = "records:push"
PushClient = Annotated[ClientIdentity, client_with(PUSH_SCOPE)]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
SCOPE_PATTERN = r"^[a-z][a-z0-9_]{0,31}(:[a-z][a-z0-9_]{0,31})?$"
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


# --- bodies and answers ---------------------------------------------------------------


class RecordBatchIn(BaseModel):
    """Several records; each row is checked on its own and gets its own result."""

    model_config = ConfigDict(extra="forbid", strict=True)

    records: list[Annotated[Any, WithJsonSchema({"$ref": "#/components/schemas/RecordIn"})]] = (
        Field(min_length=1, description="at most settings.max_batch_rows records")
    )


def _push_shape(body: Any) -> str:
    return "batch" if isinstance(body, dict) and "records" in body else "record"


RecordPush = Annotated[
    Annotated[RecordIn, Tag("record")] | Annotated[RecordBatchIn, Tag("batch")],
    Discriminator(_push_shape),
]


class RecordResultOut(BaseModel):
    index: int = Field(description="the row's position in the request, from 0")
    record_id: str | None
    status: records.RowStatus
    code: Annotated[str | None, Field(description="why a row was refused (stable)")] = None
    message: str | None = None


class PushOut(BaseModel):
    stored: int
    duplicate: int
    refused: int
    results: list[RecordResultOut]


def _pushed(
    session: Session,
    state: NodeState,
    client: ClientIdentity,
    rows: Sequence[Any],
    *,
    now: int,
    strict: bool,
    received: bytes | None = None,
) -> PushOut:
    result = records.push_records(
        session,
        state,
        client.department,
        rows,
        now=now,
        strict=strict,
        may_repair_others=records.REPAIR_SCOPE in client.scopes,
        client_id=client.id,
        received=received,
    )
    # code and message only where a row was refused (the answer omits unset fields)
    answers = [
        RecordResultOut(
            index=r.index,
            record_id=r.record_id,
            status=r.status,
            **({"code": r.code, "message": r.message} if r.code is not None else {}),
        )
        for r in result.results
    ]
    return PushOut(results=answers, **result.counts)


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(pattern=NAME_PATTERN, description="names the client for good")
    department: str = Field(pattern=NAME_PATTERN, description="whose records it may push")
    scopes: list[Annotated[str, Field(pattern=SCOPE_PATTERN)]] = Field(
        min_length=1,
        max_length=16,
        description='e.g. "records:push"; "records:repair" also lets it repair other '
        'departments\' records (the credit centre); "verify:<scenario>" for a service '
        'point; never "admin" (422 scope_not_granted: the admin token is the only admin)',
    )
    expires_in: int | None = Field(
        None,
        ge=1,
        le=clients.CLIENT_MAX_LIFETIME,
        description="seconds from now until the credentials expire (default and most: "
        "two years); or give expires_at",
    )
    expires_at: int | None = Field(
        None, ge=0, le=2**53, description="NumericDate when the credentials expire"
    )


class ClientOut(BaseModel):
    id: str
    department: str
    scopes: list[str]
    created_at: int
    revoked_at: int | None = None
    expires_at: int | None = Field(
        None, description="NumericDate from which they are refused; null: made before expiry"
    )


class ClientListOut(BaseModel):
    clients: list[ClientOut]


class ClientCreatedOut(ClientOut):
    token: str = Field(description="the bearer token; shown this once, stored only hashed")


class RescoreOut(BaseModel):
    month: str
    model_version: str
    residents: int
    records: int
    rescored_again: int
    snapshot: Literal["created", "kept", "none"] = Field(
        description="the month's distribution snapshot: created now, kept from an earlier "
        "rescore, or none (no resident has a score yet)"
    )
    seconds: float
    phases: dict[str, float] = Field(description="seconds per phase of the job")


# --- departments ----------------------------------------------------------------------


@router.post(
    "/v1/records",
    summary="Push one record or a batch; each row gets its own result",
    response_model_exclude_unset=True,
    responses=error_responses(*CLIENT_ERRORS, *BODY_ERRORS, 503),  # 503: pushes kept colliding
    openapi_extra=BATCH_BODY,
)
def push_records(
    body: RecordPush,
    client: PushClient,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
) -> PushOut:
    """Idempotent by (department, record_id): the same record again is a ``duplicate``;
    another body under the same id is refused (``record_id_conflict``). The department
    is the one of the credentials, and it pushes only the kinds the city's scoring model
    lists for it (else the row is refused, ``kind_not_allowed``). Stored rows rescore
    their resident at once and keep the client that pushed them; each push is one audit
    entry (``records.pushed``: counts and the rows' SHA-256, never a row). A repair of
    another department's record needs the ``records:repair`` scope as well (else the row
    is refused, ``repair_not_allowed``)."""
    rows = body.records if isinstance(body, RecordBatchIn) else [body]
    return _pushed(session, state, client, rows, now=now, strict=True)


@router.post(
    "/v1/records/upload",
    summary="Push records from a CSV (header row first) or JSONL file",
    response_model_exclude_unset=True,
    responses=error_responses(*CLIENT_ERRORS, *BODY_ERRORS, 415, 503),
    # the file part's types, which decide where its name has no .csv or .jsonl suffix
    openapi_extra={
        **BATCH_BODY,
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "encoding": {"file": {"contentType": ", ".join(sorted(records.FILE_TYPES))}}
                }
            }
        },
    },
)
def upload_records(
    file: Annotated[UploadFile, File(description=".csv with a header row, or .jsonl")],
    client: PushClient,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
) -> PushOut:
    """As ``POST /v1/records``, one row per CSV line or JSONL line (``index`` counts data
    rows from 0, the CSV header and blank lines not included); the audit entry keeps the
    file's SHA-256 (what ``sha256sum`` prints)."""
    data = file.file.read()
    rows, typed = records.rows_from_file(file.filename, file.content_type, data)
    return _pushed(session, state, client, rows, now=now, strict=typed, received=data)


# --- admins ---------------------------------------------------------------------------


@router.post(
    "/v1/admin/clients",
    status_code=status.HTTP_201_CREATED,
    tags=["admin"],
    summary="Create client credentials; the token is returned this once",
    responses=error_responses(*ADMIN_ERRORS, *BODY_ERRORS, 409),
)
def create_client(
    body: ClientIn, admin: AdminDep, session: SessionDep, now: NowDep
) -> ClientCreatedOut:
    client, token = clients.create_client(
        session,
        client_id=body.id,
        department=body.department,
        scopes=body.scopes,
        actor=admin,
        now=now,
        expires_in=body.expires_in,
        expires_at=body.expires_at,
    )
    return ClientCreatedOut(**client.model_dump(exclude={"token_hash"}), token=token)


@router.get(
    "/v1/admin/clients",
    tags=["admin"],
    summary="Client credentials in force (with ?revoked=true, the revoked and expired too)",
    responses=error_responses(*ADMIN_ERRORS),
)
def list_clients(
    admin: AdminDep,
    session: SessionDep,
    now: NowDep,
    revoked: Annotated[bool, Query(description="list revoked and expired credentials too")] = False,
) -> ClientListOut:
    """Who may push or verify: id, department, scopes, times (expiry included); never a
    token (the node keeps only its hash)."""
    rows = clients.list_clients(session, now=now, revoked=revoked)
    return ClientListOut(clients=[ClientOut(**c.model_dump(exclude={"token_hash"})) for c in rows])


@router.delete(
    "/v1/admin/clients/{client_id}",
    tags=["admin"],
    summary="Revoke client credentials",
    responses=error_responses(*ADMIN_ERRORS, 404),
)
def revoke_client(
    client_id: Annotated[str, Path(pattern=NAME_PATTERN)],
    admin: AdminDep,
    session: SessionDep,
    state: StateDep,
    now: NowDep,
) -> ClientOut:
    client = clients.revoke_client(session, client_id, actor=admin, now=now)
    forget_client(state, client_id)
    return ClientOut(**client.model_dump(exclude={"token_hash"}))


@router.post(
    "/v1/admin/rescore",
    tags=["admin"],
    summary="Rescore everyone now; stores the month's snapshot once",
    responses=error_responses(*ADMIN_ERRORS),
)
def rescore(admin: AdminDep, state: StateDep, now: NowDep) -> RescoreOut:
    summary = scoring.rescore_everyone(state, now, actor=admin)
    return RescoreOut(**summary.to_json())


@router.get(
    "/v1/admin/distribution/{month}",
    tags=["admin"],
    summary="The month's distribution summary for the alliance (a histogram, no residents)",
    responses=error_responses(*ADMIN_ERRORS, 404),
)
def distribution(
    month: Annotated[str, Path(pattern=MONTH_PATTERN, description="YYYY-MM")],
    admin: AdminDep,
    state: StateDep,
    session: SessionDep,
) -> dict[str, Any]:
    snapshot = session.get(DistributionSnapshot, month)
    if snapshot is None:
        raise NodeError("snapshot_not_found", f"no distribution snapshot for {month}", status=404)
    summary = scoring.distribution_summary(
        snapshot, city=state.settings.city, scale=state.model.scale
    )
    return summary.to_json()
