"""Rescoring (DESIGN section 9): a resident at once on every new record ("实时动态计算"),
everyone in the monthly job ("每月更新"), which also keeps the month's snapshot and the
distribution summary the alliance links with (DESIGN section 8: a histogram, never
residents).

Both paths feed :class:`node.scoring.ScoringModel` the same records, linked the same way:

- a record counts while its status is in :data:`COUNTING_STATUSES` (an objection flags
  a record, it keeps counting until resolved) and its kind is in the model;
- a repair repairs the one record it was checked against when it was pushed: the row
  of ``(repairs_department, repairs)``, stored with the repair
  (:func:`node.services.records.push_records` resolves and checks it). Ids are never
  reused and rows never deleted, so that pair names one row for good. While that row
  counts and is hers, the repair is linked to it; once it is removed (an upheld
  objection) the repair repairs nothing, and it never moves to another row. A repair
  without a department (a row the migration to 0003 could not resolve) repairs
  nothing;
- a record is restored by its first repair only (by ``occurred_at``, then by id), so two
  repairs pushed at once can't restore it twice.

Why the department is stored and not looked up again at each rescore: the reference
used to be resolved from ``record_id`` alone every time (her record of that id from the
repair's department, else her only one from another department). Rows pushed later
then changed what an old repair meant: another department's record of the same id made
a certified repair ambiguous, so it repaired nothing (an honest id collision did the
same), and a department's own record removed by an upheld objection handed its repair
to another department's record of that id, which that department had no right to
repair (issue 19). The right to repair is checked against one row at push time; the
link stays with that row.

Writes serialise per resident: :func:`lock_residents` creates her row if needed and locks
it (PostgreSQL: ``SELECT ... FOR UPDATE`` in id order; SQLite: the insert takes the
database's write lock), so two transactions adding records for her can't each store a
score that misses the other's record.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, and_, bindparam, case, func
from sqlalchemy import select as select_columns
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from mappings import DistributionSummary, LocalScale
from node.db import take_sqlite_writer
from node.models import DistributionSnapshot, Record, Resident, Score, ScoreSnapshot
from node.scoring import DAY, BatchScores, RecordInput, ScoringModel
from node.services import audit
from node.state import NodeState

__all__ = [
    "COUNTING_STATUSES",
    "RecordArrays",
    "RescoreSummary",
    "ScoringRow",
    "StoredRow",
    "collector_paused",
    "distribution_summary",
    "histogram",
    "insert_for",
    "load_record_arrays",
    "lock_residents",
    "month_of",
    "record_arrays",
    "repair_candidates",
    "repair_links",
    "rescore_everyone",
    "rescore_resident",
    "rescore_residents",
    "scoring_inputs",
    "scoring_rows",
]

log = logging.getLogger("ccx.node")

# DESIGN section 9: an objection flags a record until resolved; until then it counts.
COUNTING_STATUSES = ("active", "objected")
IN_CHUNK = 500  # ids per IN (...) list: far below SQLite's and PostgreSQL's limits
WRITE_CHUNK = 5_000  # rows per short write transaction in the monthly job
READ_CHUNK = 50_000  # rows fetched at a time from the server-side cursor


class ScoringRow(Protocol):
    """What scoring reads of a record row: a ``Record`` or a row of :func:`scoring_rows`."""

    @property
    def department(self) -> str: ...
    @property
    def record_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def occurred_at(self) -> int: ...
    @property
    def points(self) -> float | None: ...
    @property
    def repairs(self) -> str | None: ...
    @property
    def repairs_department(self) -> str | None: ...
    @property
    def status(self) -> str: ...


# --- linking records (pure) -------------------------------------------------------------


def repair_candidates(
    model: ScoringModel,
    rows: Sequence[ScoringRow],
    record_id: str,
    department: str,
    repairs_department: str | None = None,
) -> list[int]:
    """At push time only (:mod:`node.services.records`): indexes of the rows a repair
    pushed by ``department`` naming ``record_id`` may be for. With
    ``repairs_department`` (the push names it): her counting record of that id from that
    department. Without: her counting record of that id from ``department``, else her
    counting records of that id from any department. Exactly one means the repair is for
    that row, whose department is then stored with the repair; none or several, that the
    push is refused. Rescoring never resolves a reference again (:func:`repair_links`)."""
    candidates = [
        i
        for i, row in enumerate(rows)
        if row.record_id == record_id and _counts_as_plain(model, row)
    ]
    if repairs_department is not None:
        return [i for i in candidates if rows[i].department == repairs_department]
    own = [i for i in candidates if rows[i].department == department]
    return own or candidates


def repair_links(model: ScoringModel, rows: Sequence[ScoringRow]) -> dict[int, int]:
    """For one resident's rows in id order: ``{index of a repair: index of the record it
    repairs}``, by the rules in this module's docstring: a repair is linked to her
    counting record of exactly ``(repairs_department, repairs)``, or to nothing; the
    first repair of a record (by ``occurred_at``, then index) claims it. Rows that don't
    count (status, unknown kind) are neither repairs nor repaired."""
    plain: dict[tuple[str, str], int] = {}
    repairs: list[int] = []
    for i, row in enumerate(rows):
        kind = model.kinds.get(row.kind)
        if kind is None or row.status not in COUNTING_STATUSES:
            continue
        if kind.repair:
            repairs.append(i)
        else:
            plain[(row.department, row.record_id)] = i
    links: dict[int, int] = {}
    claimed: set[int] = set()
    for i in sorted(repairs, key=lambda i: (rows[i].occurred_at, i)):
        repair = rows[i]
        if repair.repairs_department is None or repair.repairs is None:
            continue
        target = plain.get((repair.repairs_department, repair.repairs))
        if target is not None and target not in claimed:
            links[i] = target
            claimed.add(target)
    return links


def _counts_as_plain(model: ScoringModel, row: ScoringRow) -> bool:
    kind = model.kinds.get(row.kind)
    return kind is not None and not kind.repair and row.status in COUNTING_STATUSES


def scoring_inputs(model: ScoringModel, rows: Sequence[ScoringRow]) -> list[RecordInput]:
    """The model's inputs for one resident's rows (in id order): the counting records,
    then the repairs, each linked to the record it repairs (or to nothing). Keys are
    ``department/record_id``. The order is the monthly job's, so both sum alike."""
    links = repair_links(model, rows)
    plain: dict[int, RecordInput] = {}
    repairs: list[tuple[int, ScoringRow]] = []
    for i, row in enumerate(rows):
        kind = model.kinds.get(row.kind)
        if kind is None or row.status not in COUNTING_STATUSES:
            continue
        if kind.repair:
            repairs.append((i, row))
        else:
            plain[i] = RecordInput(_key(row), row.kind, row.occurred_at, row.points)
    inputs = list(plain.values())
    for i, row in repairs:
        repaired = plain[links[i]] if i in links else None
        inputs.append(RecordInput(_key(row), row.kind, row.occurred_at, row.points, repaired))
    return inputs


def _key(row: ScoringRow) -> str:
    return f"{row.department}/{row.record_id}"


# --- one resident, or a few, at once ------------------------------------------------------

# What scoring reads of a record (see ScoringRow), with the resident and the id. The
# statements of the incremental path are built once: building one costs more than
# running it (the rescore after each push must stay within milliseconds).
SCORING_COLUMNS = (
    col(Record.id),
    col(Record.resident_id),
    col(Record.department),
    col(Record.record_id),
    col(Record.kind),
    col(Record.occurred_at),
    col(Record.points),
    col(Record.repairs),
    col(Record.repairs_department),
    col(Record.status),
)


class StoredRow(NamedTuple):
    """A record row as scoring reads it (the columns of :data:`SCORING_COLUMNS`). A plain
    tuple: reading attributes of SQLAlchemy rows costs several times more, and a bulk
    push rescores thousands of residents inside its write transaction."""

    id: int
    resident_id: str
    department: str
    record_id: str
    kind: str
    occurred_at: int
    points: float | None
    repairs: str | None
    repairs_department: str | None
    status: str


_ROWS_OF_RESIDENTS = (
    select_columns(*SCORING_COLUMNS)
    .where(
        col(Record.resident_id).in_(bindparam("ids", expanding=True)),
        col(Record.status).in_(COUNTING_STATUSES),
    )
    .order_by(col(Record.id))
)
_LOCK_RESIDENTS = (
    select_columns(col(Resident.id))
    .where(col(Resident.id).in_(bindparam("ids", expanding=True)))
    .order_by(col(Resident.id))
    .with_for_update()
)


def insert_for(
    session_or_connection: Session | Connection, table: Any
) -> sqlite.Insert | postgresql.Insert:
    """An INSERT for ``table`` in the database's own dialect, so that callers can add
    ``on_conflict_do_nothing`` / ``on_conflict_do_update`` (SQLite and PostgreSQL)."""
    return _dialect_insert(_dialect(session_or_connection), table)


def _dialect(session_or_connection: Session | Connection) -> str:
    if isinstance(session_or_connection, Session):
        return session_or_connection.get_bind().dialect.name
    return session_or_connection.dialect.name


def _dialect_insert(dialect: str, table: Any) -> sqlite.Insert | postgresql.Insert:
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"no upsert for the {dialect} dialect")


@cache
def _new_residents(dialect: str) -> Any:
    return _dialect_insert(dialect, Resident).on_conflict_do_nothing(index_elements=["id"])


@cache
def _score_upsert(dialect: str) -> Any:
    statement = _dialect_insert(dialect, Score)
    return statement.on_conflict_do_update(
        index_elements=["resident_id"],
        set_={
            "score": statement.excluded.score,
            "by_dimension": statement.excluded.by_dimension,
            "computed_at": statement.excluded.computed_at,
            "model_version": statement.excluded.model_version,
        },
    )


def lock_residents(session: Session, resident_ids: Iterable[str], *, now: int) -> None:
    """Create the residents' rows where missing and lock them until the transaction ends,
    in id order (no deadlocks between two batches). Call before reading her records to
    rescore her; on SQLite the insert itself takes the write lock."""
    ids = sorted(set(resident_ids))
    if not ids:
        return
    connection = session.connection()
    dialect = connection.dialect.name
    connection.execute(_new_residents(dialect), [{"id": rid, "created_at": now} for rid in ids])
    if dialect == "postgresql":
        for chunk in _chunks(ids, IN_CHUNK):
            connection.execute(_LOCK_RESIDENTS, {"ids": list(chunk)}).all()


def scoring_rows(session: Session, resident_ids: Sequence[str]) -> dict[str, list[StoredRow]]:
    """The counting record rows of these residents, in id order, by resident (only the
    columns scoring needs), read in the session's transaction."""
    by_resident: dict[str, list[StoredRow]] = {rid: [] for rid in resident_ids}
    connection = session.connection()
    for chunk in _chunks(sorted(set(resident_ids)), IN_CHUNK):
        for row in map(
            StoredRow._make, connection.execute(_ROWS_OF_RESIDENTS, {"ids": list(chunk)})
        ):
            by_resident[row.resident_id].append(row)
    return by_resident


def rescore_residents(
    session: Session, state: NodeState, resident_ids: Iterable[str], *, now: int
) -> dict[str, float]:
    """Rescore these residents from their records and store their scores, inside the
    caller's transaction (it commits); locks them first. Returns their new scores."""
    ids = sorted(set(resident_ids))
    if not ids:
        return {}
    session.flush()  # the caller's pending changes (a record's new status) must count
    lock_residents(session, ids, now=now)
    model = state.model
    rows = scoring_rows(session, ids)
    values: list[dict[str, Any]] = []
    for rid in ids:
        breakdown = model.score(scoring_inputs(model, rows[rid]), now)
        values.append(
            {
                "resident_id": rid,
                "score": breakdown.score,
                "by_dimension": dict(breakdown.by_dimension),
                "computed_at": now,
                "model_version": model.version,
            }
        )
    _upsert_scores(session.connection(), values)
    return {v["resident_id"]: v["score"] for v in values}


def rescore_resident(session: Session, state: NodeState, resident_id: str, now: int) -> Score:
    """Rescore one resident at once (a new record, an upheld objection) and store her
    score with its breakdown by dimension, inside the caller's transaction (the caller
    commits). Locks her first (see the module docstring); creates her row if needed."""
    rescore_residents(session, state, [resident_id], now=now)
    score = session.get(Score, resident_id, populate_existing=True)
    assert score is not None  # just written in this transaction
    return score


def _upsert_scores(connection: Connection, values: list[dict[str, Any]]) -> None:
    connection.execute(_score_upsert(connection.dialect.name), values)


# --- everyone: the monthly job ----------------------------------------------------------


@dataclass(frozen=True)
class RescoreSummary:
    """What a full rescoring did."""

    month: str
    model_version: str
    residents: int
    records: int  # records loaded that could count (repairs included)
    rescored_again: int  # residents with records pushed during the job, rescored after it
    # "created"; "kept": the month had its snapshot already; "none": no resident had a
    # score, so none was taken (an empty histogram would hold the month's place)
    snapshot: str
    seconds: float
    phases: dict[str, float]  # seconds: load, score, write_scores, rescore_again, snapshot

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def month_of(now: int) -> str:
    """``YYYY-MM`` of an epoch time, in UTC."""
    return time.strftime("%Y-%m", time.gmtime(now))


def rescore_everyone(state: NodeState, now: int, *, actor: str = "node") -> RescoreSummary:
    """Rescore every resident with :meth:`ScoringModel.score_batch_breakdown`, store every
    score, and, once per month (``YYYY-MM`` of ``now``), the month's
    :class:`ScoreSnapshot` rows and its :class:`DistributionSnapshot`.

    Records stream from a server-side cursor into numpy arrays; writes go in short
    transactions of :data:`WRITE_CHUNK` rows, so pushes keep flowing. Residents who get
    a record while the job runs are rescored once more at the end, so the job never
    leaves a score older than a push. Idempotent per month: the distribution snapshot
    is written last, and while it is missing a rerun rewrites the month's snapshot
    rows; once it exists, reruns refresh scores and keep the snapshot. The run goes
    into the audit log under ``actor`` (the scheduler: ``"node"``).
    """
    clock = _Stopwatch()
    model = state.model
    month = month_of(now)
    with state.engine.connect() as connection, collector_paused():
        high_water = connection.execute(select(func.max(Record.id))).scalar() or 0
        resident_ids = _load_resident_ids(connection)
        arrays = load_record_arrays(connection, model, resident_ids, now=now, up_to=high_water)
    clock.lap("load")
    result = model.score_batch_breakdown(len(resident_ids), *arrays, now)
    clock.lap("score")
    _store_scores(state, resident_ids, result, now=now)
    clock.lap("write_scores")
    rescored_again = _rescore_pushed_since(state, high_water, now=now)
    clock.lap("rescore_again")
    snapshot = _store_snapshot(state, month, resident_ids, result.scores, now=now)
    clock.lap("snapshot")
    state.metrics.rescore_seconds.set(clock.total)
    summary = RescoreSummary(
        month=month,
        model_version=model.version,
        residents=len(resident_ids),
        records=len(arrays.resident_idx),
        rescored_again=rescored_again,
        snapshot=snapshot,
        seconds=round(clock.total, 3),
        phases={name: round(seconds, 3) for name, seconds in clock.laps.items()},
    )
    with Session(state.engine) as session:
        audit.append(
            session,
            actor=actor,
            action="scores.rescored",
            subject=None,
            details={
                "month": month,
                "model_version": model.version,
                "residents": summary.residents,
                "records": summary.records,
                "snapshot": snapshot,
            },
            now=now,
        )
        session.commit()
    log.info("full rescoring: %s", summary.to_json())
    return summary


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during bulk reads: its passes over the
    hundreds of thousands of row objects they create cost more than reading the rows
    (bench/rescore.py: the job's load runs about twice as fast). What the bulk paths
    build holds no reference cycles. The switch is process-wide and pushes run in
    threads side by side, so pauses are counted: the collector resumes when the last
    one ends, and only if it was running when the first began."""
    with _PAUSES_LOCK:
        if _PAUSES["count"] == 0:
            _PAUSES["was_enabled"] = gc.isenabled()
            gc.disable()
        _PAUSES["count"] += 1
    try:
        yield
    finally:
        with _PAUSES_LOCK:
            _PAUSES["count"] -= 1
            if _PAUSES["count"] == 0 and _PAUSES["was_enabled"]:
                gc.enable()


_PAUSES_LOCK = threading.Lock()
_PAUSES = {"count": 0, "was_enabled": True}


class _Stopwatch:
    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name], self.last = now - self.last, now

    @property
    def total(self) -> float:
        return self.last - self.started


def _store_scores(
    state: NodeState, resident_ids: list[str], result: BatchScores, *, now: int
) -> None:
    """Every score, in transactions of :data:`WRITE_CHUNK` rows: each holds SQLite's
    write lock for some tens of milliseconds (bench/rescore.py), so pushes keep flowing
    between them. The rows go to the driver as plain tuples with the breakdown already
    JSON text (the JSON column would store the very same text): SQLAlchemy's
    per-row parameter processing cost more than the writes themselves."""
    model = state.model
    breakdown = _breakdown_json(list(model.dimensions))
    scores = result.scores.tolist()
    for start in range(0, len(resident_ids), WRITE_CHUNK):
        stop = min(start + WRITE_CHUNK, len(resident_ids))
        rows = [
            (rid, score, breakdown % tuple(dims), now, model.version)
            for rid, score, dims in zip(
                resident_ids[start:stop],
                scores[start:stop],
                result.by_dimension[:, start:stop].T.tolist(),
                strict=True,
            )
        ]
        with state.engine.begin() as connection:
            take_sqlite_writer(connection)  # this process's pushes queue, not poll
            _executemany(connection, _score_upsert(connection.dialect.name), _SCORE_COLUMNS, rows)


_SCORE_COLUMNS = ("resident_id", "score", "by_dimension", "computed_at", "model_version")


def _breakdown_json(dimensions: list[str]) -> str:
    """A ``%`` template giving, for a tuple of floats (one per dimension), the text
    ``json.dumps`` gives for ``dict(zip(dimensions, values))``: the same keys in the
    same order and ``repr`` of each float (the scores are finite), at a fraction of
    its cost."""
    return (
        "{" + ", ".join(json.dumps(name).replace("%", "%%") + ": %r" for name in dimensions) + "}"
    )


def _executemany(
    connection: Connection, statement: Any, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Run ``statement`` (an INSERT of ``columns``, compiled for the connection's
    dialect) for every row through the driver's ``executemany``. ``rows`` hold values
    the driver takes as they are (JSON columns as JSON text)."""
    compiled = statement.compile(dialect=connection.dialect)
    if compiled.positional:
        order = [columns.index(name) for name in compiled.positiontup]
        if order != list(range(len(columns))):
            rows = [tuple(row[i] for i in order) for row in rows]
        parameters: list[Any] = rows
    else:
        parameters = [dict(zip(columns, row, strict=True)) for row in rows]
    driver = connection.connection.dbapi_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.executemany(compiled.string, parameters)
    finally:
        cursor.close()


def _load_resident_ids(connection: Connection) -> list[str]:
    result = connection.execution_options(stream_results=True, yield_per=READ_CHUNK).execute(
        select(Resident.id).order_by(col(Resident.id))
    )
    return [rid for (rid,) in result]


class RecordArrays(NamedTuple):
    """The record arrays :meth:`ScoringModel.score_batch` takes, in its argument order."""

    resident_idx: npt.NDArray[np.int64]
    kind_idx: npt.NDArray[np.int64]  # into model.kind_order
    occurred_at: npt.NDArray[np.int64]
    points: npt.NDArray[np.float64]  # effective points (ScoringModel.points_of)
    expires_at: npt.NDArray[np.int64]  # end of the counting period (ScoringModel.expiry_of)

    @classmethod
    def concatenate(cls, parts: Sequence[RecordArrays]) -> RecordArrays:
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return cls(empty, empty, empty, np.empty(0, dtype=np.float64), empty)
        return cls(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def record_arrays(
    model: ScoringModel,
    resident_idx: npt.NDArray[np.int64],
    kind_idx: npt.NDArray[np.int64],
    occurred_at: npt.NDArray[np.int64],
    own_points: npt.NDArray[np.float64],
) -> RecordArrays:
    """The arrays :meth:`ScoringModel.score_batch` takes, from the columns of records
    that are not repairs (``own_points``: the record's own points, NaN where it has
    none): their effective points (:meth:`ScoringModel.points_of`) and expiry."""
    order = model.kind_order
    # a kind that feeds a credential only (scored = false, issue 18) counts 0 points
    kinds = [model.kinds[k] for k in order]
    kind_points = np.array([k.points if k.scored else 0.0 for k in kinds], dtype=np.float64)
    overridable = np.array([k.points_overridable and k.scored for k in kinds], dtype=bool)
    period = DAY * np.array(
        [model.disclosure_days[model.kinds[k].severity] for k in order], dtype=np.int64
    )
    points = np.where(
        overridable[kind_idx] & ~np.isnan(own_points), own_points, kind_points[kind_idx]
    )
    return RecordArrays(resident_idx, kind_idx, occurred_at, points, occurred_at + period[kind_idx])


def histogram(model: ScoringModel, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """How many scores fall on each point of the model's scale (the distribution the
    alliance links with)."""
    points = np.rint((scores - model.scale.min) / model.scale.step).astype(np.int64)
    return np.bincount(points, minlength=model.scale.size)


def load_record_arrays(
    connection: Connection,
    model: ScoringModel,
    resident_ids: list[str],
    *,
    now: int,
    up_to: int,
) -> RecordArrays:
    """The arrays of every record with id up to ``up_to`` that can count at ``now``,
    ordered as :func:`scoring_inputs` orders them (records by id, then repairs by id),
    streamed in chunks of :data:`READ_CHUNK` rows. ``resident_ids`` gives the resident
    index; residents with records but no resident row are appended to it."""
    index = {rid: i for i, rid in enumerate(resident_ids)}
    order = model.kind_order
    oldest = now - max(model.disclosure_days.values()) * DAY  # older ones can't count
    # the kind as its index into model.kind_order: a small int (CPython caches those),
    # not a new str per row (bench/rescore.py: the load runs about a quarter faster)
    kind_idx = case({name: i for i, name in enumerate(order)}, value=col(Record.kind))
    statement = (
        select_columns(
            col(Record.resident_id), kind_idx, col(Record.occurred_at), col(Record.points)
        )
        .where(
            col(Record.id) <= up_to,
            col(Record.status).in_(COUNTING_STATUSES),
            col(Record.kind).in_([k for k in order if not model.kinds[k].repair]),
            col(Record.occurred_at) > oldest,
            col(Record.occurred_at) <= now,
        )
        .order_by(col(Record.id))
    )
    parts: list[RecordArrays] = []
    for chunk in _stream(connection, statement, READ_CHUNK):
        residents, kinds, occurred, own = zip(*chunk, strict=True)
        n = len(chunk)
        parts.append(
            record_arrays(
                model,
                _indices(residents, index, resident_ids),
                np.fromiter(kinds, dtype=np.int64, count=n),
                np.fromiter(occurred, dtype=np.int64, count=n),
                np.array(own, dtype=np.float64),  # NULL -> NaN
            )
        )
    repairs = _load_repairs(connection, model, index, resident_ids, now=now, up_to=up_to)
    if repairs is not None:
        parts.append(repairs)
    return RecordArrays.concatenate(parts)


def _stream(connection: Connection, statement: Any, size: int) -> Iterator[Sequence[Any]]:
    """Rows in chunks of ``size`` straight from the driver's cursor (on PostgreSQL a
    server-side one, so that the rows never sit in memory all at once). The job reads
    millions of rows: SQLAlchemy's row objects would double the cost of the driver's.
    The statement's values come from the model and from constants, so they are
    rendered into the SQL (kinds are ``[a-z0-9_]`` names)."""
    sql = str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    driver = connection.connection.dbapi_connection
    assert driver is not None
    if connection.dialect.name == "postgresql":
        cursor = driver.cursor(name=f"ccx_rescore_{os.getpid()}_{id(statement)}")
    else:
        cursor = driver.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()


def _load_repairs(
    connection: Connection,
    model: ScoringModel,
    index: dict[str, int],
    resident_ids: list[str],
    *,
    now: int,
    up_to: int,
) -> RecordArrays | None:
    """Repairs are few: load them with the records they name (one statement: a scan for
    the repairs, a lookup on the unique (department, record_id) index for the row each
    names by ``(repairs_department, repairs)``), link them per resident with
    :func:`repair_links` (the very rule the single-resident path uses), and take each
    repair's points and expiry from the record it repairs."""
    repair_kinds = [k for k in model.kind_order if model.kinds[k].repair]
    if not repair_kinds:
        return None
    table = Record.__table__  # type: ignore[attr-defined]
    fix, named = table.alias("fix"), table.alias("named")
    names = list(StoredRow._fields)  # the columns of SCORING_COLUMNS, in their order
    statement = (
        select_columns(*(fix.c[n] for n in names), *(named.c[n] for n in names))
        .select_from(
            fix.outerjoin(
                named,
                and_(
                    named.c.department == fix.c.repairs_department,
                    named.c.record_id == fix.c.repairs,
                    named.c.resident_id == fix.c.resident_id,
                    named.c.status.in_(COUNTING_STATUSES),
                    named.c.id <= up_to,
                ),
            )
        )
        .where(
            fix.c.id <= up_to,
            fix.c.status.in_(COUNTING_STATUSES),
            fix.c.kind.in_(repair_kinds),
            fix.c.occurred_at <= now,
        )
    )
    width = len(names)
    by_resident: dict[str, dict[int, StoredRow]] = defaultdict(dict)
    for chunk in _stream(connection, statement, READ_CHUNK):
        for row in chunk:
            repair = StoredRow._make(row[:width])
            rows = by_resident[repair.resident_id]
            rows[repair.id] = repair
            if row[width] is not None:  # a counting record it names (ids dedupe)
                rows[row[width]] = StoredRow._make(row[width:])
    linked: list[tuple[StoredRow, StoredRow]] = []
    for by_id in by_resident.values():
        ordered = [by_id[i] for i in sorted(by_id)]
        links = repair_links(model, ordered)
        linked.extend((ordered[i], ordered[j]) for i, j in links.items())
    if not linked:
        return None
    linked.sort(key=lambda pair: pair[0].id)  # repairs by id, as scoring_inputs orders them
    points = np.empty(len(linked), dtype=np.float64)
    expires = np.empty(len(linked), dtype=np.int64)
    for n, (fix, original) in enumerate(linked):
        base = RecordInput("", original.kind, original.occurred_at, original.points)
        points[n] = model.points_of(RecordInput("", fix.kind, fix.occurred_at, None, base))
        # a repair counts while the record it repairs does (that one must have occurred)
        expires[n] = model.expiry_of(base) if original.occurred_at <= now else -1
    return RecordArrays(
        _indices([fix.resident_id for fix, _ in linked], index, resident_ids),
        np.array([model.kind_order.index(fix.kind) for fix, _ in linked], dtype=np.int64),
        np.array([fix.occurred_at for fix, _ in linked], dtype=np.int64),
        points,
        expires,
    )


def _indices(
    residents: Sequence[str], index: dict[str, int], resident_ids: list[str]
) -> npt.NDArray[np.int64]:
    try:
        return np.fromiter(map(index.__getitem__, residents), dtype=np.int64, count=len(residents))
    except KeyError:  # records of a resident without a row: give her an index too
        for rid in residents:
            if rid not in index:
                index[rid] = len(resident_ids)
                resident_ids.append(rid)
        return np.fromiter(map(index.__getitem__, residents), dtype=np.int64, count=len(residents))


def _rescore_pushed_since(state: NodeState, high_water: int, *, now: int) -> int:
    with Session(state.engine) as session:
        late = list(
            session.exec(select(Record.resident_id).where(col(Record.id) > high_water).distinct())
        )
        for chunk in _chunks(sorted(late), IN_CHUNK):
            rescore_residents(session, state, chunk, now=now)
            session.commit()
    return len(late)


def _store_snapshot(
    state: NodeState,
    month: str,
    resident_ids: list[str],
    scores: npt.NDArray[np.float64],
    *,
    now: int,
) -> str:
    model = state.model
    with Session(state.engine) as session:
        if session.get(DistributionSnapshot, month) is not None:
            return "kept"
    if not resident_ids:  # nothing to summarise: the first rescore with scores takes it
        return "none"
    values = scores.tolist()
    for start in range(0, len(resident_ids), WRITE_CHUNK):
        rows = [
            (month, rid, score)
            for rid, score in zip(
                resident_ids[start : start + WRITE_CHUNK],
                values[start : start + WRITE_CHUNK],
                strict=True,
            )
        ]
        with state.engine.begin() as connection:
            take_sqlite_writer(connection)
            statement = insert_for(connection, ScoreSnapshot)
            statement = statement.on_conflict_do_update(
                index_elements=["month", "resident_id"], set_={"score": statement.excluded.score}
            )
            _executemany(connection, statement, ("month", "resident_id", "score"), rows)
    counts = histogram(model, scores)
    with state.engine.begin() as connection:
        statement = insert_for(connection, DistributionSnapshot).on_conflict_do_nothing(
            index_elements=["month"]
        )
        connection.execute(
            statement,
            {
                "month": month,
                "model_version": model.version,
                "counts": counts.tolist(),
                "created_at": now,
            },
        )
    return "created"


# --- the aggregate the alliance gets (pure) ------------------------------------------------


def distribution_summary(
    snapshot: DistributionSnapshot, *, city: str, scale: LocalScale
) -> DistributionSummary:
    """The ``mappings.DistributionSummary`` of a month's snapshot (its ``to_json()`` is
    what goes to the alliance): the city, the model's local scale, the histogram per
    score point, the snapshot date (UTC day it was taken) and the model version.

    Raises ``mappings.MappingError`` if the histogram doesn't fit the scale (the model's
    scale changed since the snapshot)."""
    return DistributionSummary(
        city=city,
        local_scale=scale,
        counts=np.asarray(snapshot.counts, dtype=np.float64),
        snapshot=time.strftime("%Y-%m-%d", time.gmtime(snapshot.created_at)),
        model_version=snapshot.model_version,
    )


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
