"""Records pushed by departments (DESIGN sections 9 and 10), one by one, in batches or
as a CSV / JSONL file.

Every row gets its own result, ``stored``, ``duplicate`` or ``refused`` (with a code),
and a bad row never costs the good ones. Pushes are idempotent by (department,
``record_id``): the same record again is a ``duplicate`` and changes nothing; another
body under the same id is refused (``record_id_conflict``). The department is the
caller's, from its credentials, never from the body.

A repair names the record it repairs: ``repairs`` (its record id) and, optionally,
``repairs_department`` (its department). Without the department the reference is
resolved as it always was: her counting record of that id from the pushing
department, else her only one from another department; several are refused. The
department found is stored with the repair, and rescoring links the repair to that
row only, for good (:mod:`node.services.scoring`): rows pushed later, or the removal
of that row, never hand the repair to another record. A department may repair its own
records; another department's only with the scope ``records:repair``
(:data:`REPAIR_SCOPE`: the city's credit centre, which certifies repairs), else the
row is refused (``repair_not_allowed``): a department's stolen token must not wipe out
what other departments recorded (docs/SECURITY.md, section 4).

A record id (and a ``repairs`` reference) must not look like a token (the shape the
audit log refuses, :data:`node.services.audit.TOKEN_SHAPE`): such a row is refused
``invalid_record``, as ids travel into the audit log (a resident's objection names
the record).

A department pushes only the kinds the city's scoring model lists for it
(``[departments.<name>] kinds``, :meth:`node.scoring.ScoringModel.may_push`); a row of
another kind is refused ``kind_not_allowed`` (issue 17, docs/SECURITY.md section 4).

Every stored row keeps the client that pushed it (``Record.client_id``), and every push
is one audit entry (``records.pushed``, under ``client:<id>``): the department, the
counts and the SHA-256 of the rows as received (:func:`received_digest`), never a row.
:func:`withdraw_client_records` takes a client's records since a time back (a leaked
token's pushes): marked ``removed``, as an upheld objection removes one, and their
residents rescored, audited.

One request is one transaction: the stored rows, her new resident row, her new score
and the push's audit entry are committed together, or nothing is (refused rows never
write). The checks
that read (is this id known? which record does this repair name?) run before the first
write, so the write transaction stays short; a record id that a concurrent push stored
in between makes the insert fail on the unique (department, record_id) constraint, and
the whole request is then checked and written again, where it finds the row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import bindparam, insert, update
from sqlalchemy import select as select_columns
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, col

from node.errors import NodeError, where_and_what
from node.models import STORABLE_TEXT, Client, Objection, Record
from node.scoring import DEPARTMENT_PATTERN, KIND_PATTERN, RecordInput, ScoringModel
from node.services import audit
from node.services.audit import TOKEN_SHAPE
from node.services.scoring import (
    IN_CHUNK,
    collector_paused,
    lock_residents,
    repair_candidates,
    repair_links,
    rescore_residents,
    scoring_rows,
)
from node.state import NodeState

__all__ = [
    "FUTURE_LEEWAY",
    "REPAIR_SCOPE",
    "PushResult",
    "RecordIn",
    "RowProblem",
    "RowResult",
    "RowStatus",
    "Withdrawal",
    "push_records",
    "received_digest",
    "rows_from_file",
    "withdraw_client_records",
]

REPAIR_SCOPE = "records:repair"  # repairs of another department's records (the credit centre)
FUTURE_LEEWAY = 300  # seconds a record may lie in the future (clocks of departments drift)
RECORD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"  # no "/": keys are dept/record_id
RESIDENT_ID_PATTERN = r"^[!-~]{1,128}$"  # the identity provider's subject: printable ASCII
LATEST_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_POINTS = 10_000.0
_NEW_RECORDS = insert(Record.__table__)  # type: ignore[attr-defined]
ATTEMPTS = 3  # a request whose insert lost a race is checked and written again
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # PostgreSQL: serialization failure, deadlock


def _not_token_shaped(value: str) -> str:
    if TOKEN_SHAPE.search(value):
        raise ValueError(
            "looks like a token (eyJ... with dots, a compact JWS), which the node never "
            "stores or logs; use another id"
        )
    return value


# A record id: the pattern (kept in the OpenAPI document), then the token shape.
RecordId = Annotated[str, Field(pattern=RECORD_ID_PATTERN), AfterValidator(_not_token_shaped)]


class RecordIn(BaseModel):
    """One record as a department pushes it. Times are epoch seconds (UTC)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    record_id: RecordId = Field(
        description="the department's own id of the record (not shaped like a token)"
    )
    resident_id: str = Field(
        pattern=RESIDENT_ID_PATTERN, description="the resident (her identity provider subject)"
    )
    kind: str = Field(pattern=KIND_PATTERN, description="a record kind of the city's model")
    occurred_at: int = Field(ge=0, le=LATEST_TIME, description="when it happened")
    points: float | None = Field(
        None,
        ge=-MAX_POINTS,
        le=MAX_POINTS,
        allow_inf_nan=False,
        description="the record's own points, only for kinds whose points may be overridden",
    )
    repairs: RecordId | None = Field(
        None, description="for a repair kind: the record_id of her record it repairs"
    )
    repairs_department: str | None = Field(
        None,
        pattern=DEPARTMENT_PATTERN,
        description="for a repair kind: the department of the record it repairs; without "
        "it, her record of that id from the pushing department, else her only one from "
        "another department. Another department's record needs the records:repair scope",
    )
    note: str | None = Field(None, max_length=500, pattern=STORABLE_TEXT)


@dataclass(frozen=True)
class RowProblem:
    """A row that could not even be read (a JSONL line that is not JSON, a CSV line
    with too many cells): it is refused with this code, the others go on."""

    code: str
    message: str


RowStatus = Literal["stored", "duplicate", "refused"]


@dataclass(frozen=True)
class RowResult:
    index: int  # the row's position in the request (0-based; for a file, data rows only)
    record_id: str | None
    status: RowStatus
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class PushResult:
    results: list[RowResult]
    counts: dict[str, int] = field(default_factory=dict)


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def push_records(
    session: Session,
    state: NodeState,
    department: str,
    rows: Sequence[Any],
    *,
    now: int,
    strict: bool = True,
    may_repair_others: bool = False,
    client_id: str | None = None,
    received: bytes | None = None,
) -> PushResult:
    """Check and store ``rows`` for ``department`` (see the module docstring); rescore
    each resident who got a record and append the push's audit entry, in the same
    transaction. ``strict=False`` reads numbers from text (CSV cells).
    ``may_repair_others``: the caller holds :data:`REPAIR_SCOPE`. ``client_id``: the
    credentials that push (kept on each stored row and named by the audit entry; None
    for the node's own callers, audited as ``node``). ``received``: the bytes of an
    uploaded file, whose digest the audit entry keeps (else that of the rows,
    :func:`received_digest`).

    Raises ``NodeError`` 413 ``batch_too_large`` (nothing is written, nothing audited)
    over ``settings.max_batch_rows`` rows; 503 ``busy`` if the request keeps losing races.
    """
    limit = state.settings.max_batch_rows
    if len(rows) > limit:
        raise NodeError(
            "batch_too_large",
            f"{len(rows)} records in one push; at most {limit}",
            status=413,
            details={"rows": len(rows), "max_batch_rows": limit},
        )
    refused: dict[int, RowResult] = {}
    checked: list[tuple[int, RecordIn]] = []
    for index, raw in enumerate(rows):
        try:
            record = _parse(raw, strict=strict)
            _check_alone(state.model, department, record, now=now)
        except _Refused as refusal:
            refused[index] = RowResult(
                index, _echo_id(raw), "refused", refusal.code, refusal.message
            )
            continue
        checked.append((index, record))
    digest = received_digest(rows) if received is None else _sha256(received)
    results: list[RowResult] = []
    counts: dict[str, int] = {}
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with collector_paused():  # a bulk read and rescore: see its docstring
                outcome = _store(
                    session,
                    state,
                    department,
                    checked,
                    now=now,
                    may_repair=may_repair_others,
                    client_id=client_id,
                )
                results = [outcome.get(i) or refused[i] for i in range(len(rows))]
                counts = {"stored": 0, "duplicate": 0, "refused": 0}
                for result in results:
                    counts[result.status] += 1
                # last, as the audit lock is held until the commit (node.services.audit)
                audit.append(
                    session,
                    actor="node" if client_id is None else f"client:{client_id}",
                    action="records.pushed",
                    subject=department,
                    details={
                        "department": department,
                        **counts,
                        "rows_sha256": digest,
                        "received": "records" if received is None else "file",
                    },
                    now=now,
                )
                session.commit()
            break
        except DBAPIError as exc:  # IntegrityError among them
            session.rollback()
            if not _lost_a_race(exc):
                raise
            if attempt == ATTEMPTS:
                raise NodeError(
                    "busy", "concurrent pushes kept colliding; push again", status=503
                ) from exc
    for status, n in counts.items():
        if n:
            state.metrics.records.labels(status).inc(n)
    return PushResult(results, counts)


def received_digest(rows: Sequence[Any]) -> str:
    """Hex SHA-256 of records as a department sent them: the JSON array of the rows
    (a record read into :class:`RecordIn` as the fields it was given), keys sorted, no
    whitespace, UTF-8 (the shape of ``protocol.canonical_json``), so that a department
    can match a push in the audit log against what it sent without the log holding a
    row. A file upload is digested as its bytes instead."""
    as_sent = [
        row.model_dump(mode="json", exclude_unset=True) if isinstance(row, RecordIn) else row
        for row in rows
    ]
    try:  # NaN and 1e999 are JSON Python reads; a row must never make the digest fail
        text = json.dumps(as_sent, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(as_sent)
    return _sha256(text.encode("utf-8", "surrogatepass"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _lost_a_race(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # (department, record_id) stored by a concurrent push
    return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def _parse(raw: Any, *, strict: bool) -> RecordIn:
    if isinstance(raw, RowProblem):
        raise _Refused(raw.code, raw.message)
    if isinstance(raw, RecordIn):
        return raw
    if not isinstance(raw, Mapping):
        raise _Refused("invalid_record", "a record must be a JSON object")
    try:
        return RecordIn.model_validate(raw, strict=strict)
    except ValidationError as exc:
        # the field and the rule, never the value sent (nor an unknown field's name)
        described = [where_and_what(e) for e in exc.errors(include_url=False)]
        fields = [d["field"] or "record" for d in described]
        code = "invalid_resident_id" if fields[0] == "resident_id" else "invalid_record"
        message = "; ".join(f"{f}: {d['problem']}" for f, d in zip(fields, described, strict=True))
        raise _Refused(code, message) from None


def _echo_id(raw: Any) -> str | None:
    record_id = raw.get("record_id") if isinstance(raw, Mapping) else None
    if not isinstance(record_id, str) or len(record_id) > 128 or TOKEN_SHAPE.search(record_id):
        return None  # too long to be an id, or a token: never echoed
    return record_id


def _check_alone(model: ScoringModel, department: str, record: RecordIn, *, now: int) -> None:
    """What can be checked without the database."""
    kind = model.kinds.get(record.kind)
    if kind is None:
        raise _Refused("unknown_kind", f"{record.kind!r} is not a record kind of this city")
    if not model.may_push(department, record.kind):
        raise _Refused(
            "kind_not_allowed",
            f"department {department!r} may not push records of kind {record.kind!r}: the "
            "city's scoring model lists the kinds each department may push",
        )
    if record.occurred_at > now + FUTURE_LEEWAY:
        raise _Refused("occurred_in_future", "occurred_at lies in the future")
    if record.points is not None and not kind.points_overridable:
        raise _Refused(
            "points_not_overridable",
            f"records of kind {record.kind!r} can't carry their own points",
        )
    if kind.repair and record.repairs is None:
        raise _Refused("invalid_repair", "a repair names the record it repairs (repairs)")
    if not kind.repair and (record.repairs is not None or record.repairs_department is not None):
        given = "repairs" if record.repairs is not None else "repairs_department"
        raise _Refused("invalid_repair", f"kind {record.kind!r} is not a repair; drop {given}")
    if record.repairs == record.record_id:
        raise _Refused("invalid_repair", "a record can't repair itself")


@dataclass
class _Pending:
    """A row accepted earlier in this request, as scoring sees rows."""

    department: str
    record_id: str
    kind: str
    occurred_at: int
    points: float | None
    repairs: str | None
    repairs_department: str | None  # resolved by _check_repair
    status: str = "active"


def _store(
    session: Session,
    state: NodeState,
    department: str,
    checked: list[tuple[int, RecordIn]],
    *,
    now: int,
    may_repair: bool,
    client_id: str | None,
) -> dict[int, RowResult]:
    model = state.model
    known = _known_records(session, department, {r.record_id for _, r in checked})
    # her counting records, for the residents who get a repair (to find what it repairs)
    theirs: dict[str, list[Any]] = scoring_rows(
        session, [r.resident_id for _, r in checked if model.kinds[r.kind].repair]
    )
    outcome: dict[int, RowResult] = {}
    accepted: dict[str, RecordIn] = {}  # repairs with the department _check_repair found
    new_rows: list[dict[str, Any]] = []
    for index, record in checked:
        previous = accepted.get(record.record_id) or known.get(record.record_id)
        if previous is not None:
            if _same_record(previous, record):
                outcome[index] = RowResult(index, record.record_id, "duplicate")
            else:
                outcome[index] = RowResult(
                    index,
                    record.record_id,
                    "refused",
                    "record_id_conflict",
                    "this record_id holds another record already; record ids are never reused",
                )
            continue
        repairs_department = None
        if model.kinds[record.kind].repair:
            try:
                repairs_department = _check_repair(
                    model, department, record, theirs[record.resident_id], may_repair
                )
            except _Refused as refusal:
                outcome[index] = RowResult(
                    index, record.record_id, "refused", refusal.code, refusal.message
                )
                continue
        accepted[record.record_id] = (
            record
            if repairs_department is None
            else record.model_copy(update={"repairs_department": repairs_department})
        )
        if record.resident_id in theirs:
            theirs[record.resident_id].append(
                _Pending(
                    department,
                    record.record_id,
                    record.kind,
                    record.occurred_at,
                    record.points,
                    record.repairs,
                    repairs_department,
                )
            )
        new_rows.append(
            {
                "department": department,
                "client_id": client_id,
                "record_id": record.record_id,
                "resident_id": record.resident_id,
                "kind": record.kind,
                "occurred_at": record.occurred_at,
                "recorded_at": now,
                "points": record.points,
                "repairs": record.repairs,
                "repairs_department": repairs_department,
                "status": "active",
                "note": record.note,
            }
        )
        outcome[index] = RowResult(index, record.record_id, "stored")
    if new_rows:
        session.connection().execute(_NEW_RECORDS, new_rows)
        rescore_residents(session, state, {row["resident_id"] for row in new_rows}, now=now)
    return outcome


_KNOWN_RECORDS = select_columns(
    col(Record.record_id),
    col(Record.resident_id),
    col(Record.kind),
    col(Record.occurred_at),
    col(Record.points),
    col(Record.repairs),
    col(Record.repairs_department),
    col(Record.note),
).where(
    col(Record.department) == bindparam("department"),
    col(Record.record_id).in_(bindparam("ids", expanding=True)),
)


def _known_records(session: Session, department: str, record_ids: set[str]) -> dict[str, Any]:
    """The department's stored records among these ids, by record_id (what ``_body``
    compares)."""
    known: dict[str, Any] = {}
    ordered = sorted(record_ids)
    connection = session.connection()
    for start in range(0, len(ordered), IN_CHUNK):
        chunk = ordered[start : start + IN_CHUNK]
        rows = connection.execute(_KNOWN_RECORDS, {"department": department, "ids": chunk})
        known.update((row.record_id, row) for row in rows)
    return known


def _same_record(previous: Any, record: RecordIn) -> bool:
    """Whether ``record`` is the stored (or earlier accepted) ``previous`` again. A
    repair pushed again without ``repairs_department`` is the same repair whichever
    department its first push resolved; with it, the department must be the stored one."""
    if _body(previous) != _body(record):
        return False
    named = record.repairs_department
    return named is None or named == previous.repairs_department


def _body(record: Any) -> tuple[Any, ...]:
    points = None if record.points is None else float(record.points)
    return (
        record.resident_id,
        record.kind,
        record.occurred_at,
        points,
        record.repairs,
        record.note,
    )


def _check_repair(
    model: ScoringModel, department: str, repair: RecordIn, rows: list[Any], may_repair: bool
) -> str:
    """The record a repair names must be hers, counting, negative, not yet repaired, and
    the department's own unless ``may_repair``. Returns its department, which is stored
    with the repair: rescoring links the repair to that row only
    (:func:`node.services.scoring.repair_links`), so the right checked here is the right
    the repair keeps. Which record an id without a department names:
    :func:`node.services.scoring.repair_candidates`."""
    assert repair.repairs is not None
    named = repair.repairs_department
    if named is not None and named != department and not may_repair:
        # refused before looking: without the scope, another department's records are
        # none of its business (not even whether one exists)
        raise _Refused("repair_not_allowed", _not_allowed(repair.repairs))
    chosen = repair_candidates(model, rows, repair.repairs, department, named)
    if not chosen:
        where = f" of department {named!r}" if named is not None else ""
        raise _Refused(
            "unknown_repaired_record",
            f"the resident has no counting record {repair.repairs!r}{where} to repair",
        )
    if len(chosen) > 1:
        raise _Refused(
            "unknown_repaired_record",
            f"{repair.repairs!r} names records of several departments; name the one it "
            "repairs in repairs_department",
        )
    original = rows[chosen[0]]
    if original.department != department and not may_repair:
        raise _Refused("repair_not_allowed", _not_allowed(repair.repairs))
    points = model.points_of(RecordInput("", original.kind, original.occurred_at, original.points))
    if points >= 0:
        raise _Refused("not_repairable", f"record {repair.repairs!r} is not a negative record")
    if chosen[0] in repair_links(model, rows).values():
        raise _Refused("already_repaired", f"record {repair.repairs!r} has been repaired already")
    if repair.occurred_at < original.occurred_at:
        raise _Refused("invalid_repair", "a repair can't occur before the record it repairs")
    return str(original.department)


def _not_allowed(record_id: str) -> str:
    return (
        f"record {record_id!r} is another department's: only credentials with the "
        f"{REPAIR_SCOPE!r} scope (the credit centre) may repair it"
    )


# --- withdrawing a client's records -------------------------------------------------------


@dataclass(frozen=True)
class Withdrawal:
    """What :func:`withdraw_client_records` did."""

    client_id: str
    since: int
    withdrawn: int  # records marked removed
    residents: int  # residents rescored
    objections_closed: int  # open objections to those records, now upheld


_CLIENT_RECORDS = select_columns(col(Record.id), col(Record.resident_id)).where(
    col(Record.client_id) == bindparam("client_id"),
    col(Record.recorded_at) >= bindparam("since"),
    col(Record.status) != "removed",
)
_REMOVE = (
    update(Record)
    .where(col(Record.id).in_(bindparam("ids", expanding=True)))
    .values(status="removed")
)
_UPHOLD = (
    update(Objection)
    .where(
        col(Objection.record_pk).in_(bindparam("ids", expanding=True)),
        col(Objection.status) == "open",
    )
    .values(status="upheld", resolved_at=bindparam("now"), resolution=bindparam("resolution"))
)


def withdraw_client_records(
    session: Session, state: NodeState, client_id: str, *, since: int, actor: str, now: int
) -> Withdrawal:
    """Take back every record the client ``client_id`` pushed at or after ``since``
    (its ``recorded_at``; a leaked token's pushes): each is marked ``removed``, as an
    upheld objection removes a record (records are never deleted), an open objection
    to one is upheld with it, and the residents concerned are rescored, in one
    transaction with its audit entry (``records.withdrawn``: the client, ``since`` and
    the counts, never a resident). Records pushed before migration 0006 name no client
    and are never withdrawn. Running it again withdraws nothing more.

    Raises ``NodeError`` 404 ``client_not_found`` for a client this node never had.
    """
    if session.get(Client, client_id) is None:
        raise NodeError("client_not_found", f"no client credentials {client_id!r}", status=404)
    connection = session.connection()
    found = connection.execute(_CLIENT_RECORDS, {"client_id": client_id, "since": since}).all()
    ids = sorted(row.id for row in found)
    residents = sorted({row.resident_id for row in found})
    # her lock first, as every rescoring path takes it (resolve_objection): a push
    # rescoring her meanwhile waits, then reads the records' new status
    lock_residents(session, residents, now=now)
    closed = 0
    resolution = f"withdrawn with the records of client {client_id}"
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        connection.execute(_REMOVE, {"ids": chunk})
        closed += connection.execute(
            _UPHOLD, {"ids": chunk, "now": now, "resolution": resolution}
        ).rowcount
    rescore_residents(session, state, residents, now=now)
    done = Withdrawal(client_id, since, len(ids), len(residents), closed)
    audit.append(
        session,
        actor=actor,
        action="records.withdrawn",
        subject=client_id,
        details={
            "client": client_id,
            "since": since,
            "withdrawn": done.withdrawn,
            "residents": done.residents,
            "objections_closed": closed,
        },
        now=now,
    )
    session.commit()
    return done


# --- files --------------------------------------------------------------------------------

CSV_TYPES = {"text/csv", "application/csv", "text/comma-separated-values"}
JSONL_TYPES = {
    "application/jsonl",
    "application/x-jsonlines",
    "application/jsonlines",
    "application/x-ndjson",
    "application/ndjson",
}
FILE_TYPES = CSV_TYPES | JSONL_TYPES
CSV_COLUMNS = set(RecordIn.model_fields)
CSV_REQUIRED = {name for name, f in RecordIn.model_fields.items() if f.is_required()}


def rows_from_file(
    filename: str | None, content_type: str | None, data: bytes
) -> tuple[list[Any], bool]:
    """The rows of an uploaded CSV (header row first) or JSONL file, and whether they
    are typed (JSONL) or text to be read as numbers (CSV). The file name's suffix
    decides, else the content type. Empty CSV cells are absent values.

    Raises ``NodeError`` (nothing is written): 415 ``unsupported_file_type``, 400
    ``invalid_encoding`` (not UTF-8), 400 ``invalid_csv`` (no header, unknown or missing
    columns, broken quoting)."""
    kind = _file_kind(filename, content_type)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NodeError("invalid_encoding", "the file must be UTF-8 text") from exc
    if kind == "jsonl":
        return [_jsonl_row(line) for line in text.splitlines() if line.strip()], True
    return _csv_rows(text), False


def _file_kind(filename: str | None, content_type: str | None) -> str:
    name = (filename or "").lower()
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if media in CSV_TYPES:
        return "csv"
    if media in JSONL_TYPES:
        return "jsonl"
    raise NodeError(
        "unsupported_file_type",
        "upload a .csv file (header row first) or a .jsonl file (one record per line)",
        status=415,
    )


def _jsonl_row(line: str) -> Any:
    try:
        return json.loads(line)
    # ValueError: not JSON, or an integer of more than 4,300 digits; RecursionError:
    # arrays or objects nested too deep. Either is the line's problem, not the node's.
    except (ValueError, RecursionError):
        return RowProblem("invalid_json", "this line is not JSON the node can read")


def _csv_rows(text: str) -> list[Any]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise NodeError("invalid_csv", "the file is empty; it needs a header row")
        columns = [name.strip() for name in header]
        unknown = sorted(set(columns) - CSV_COLUMNS)
        missing = sorted(CSV_REQUIRED - set(columns))
        if unknown or missing or len(set(columns)) != len(columns):
            raise NodeError(
                "invalid_csv",
                "the header row must name each column once, from: "
                + ", ".join(RecordIn.model_fields),
                details={"unknown": unknown, "missing": missing},
            )
        rows: list[Any] = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            if len(cells) != len(columns):
                rows.append(
                    RowProblem(
                        "invalid_record",
                        f"this line has {len(cells)} cells; the header has {len(columns)}",
                    )
                )
                continue
            rows.append(
                {name: cell for name, cell in zip(columns, cells, strict=True) if cell != ""}
            )
        return rows
    except csv.Error as exc:
        raise NodeError("invalid_csv", f"the CSV can't be read: {exc}") from exc
