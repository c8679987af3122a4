"""One writer per process, committing in groups (issue 15).

A request that must write (a challenge or request used up, its audit entry, the
decision it records) hands its writes to the writer as a *job*, a function of a
:class:`WriteBatch`, and waits for the job's result. The writer's thread takes every job
queued meanwhile, runs each in a savepoint of one transaction (a job that raises rolls
back its own writes only, and its caller gets the exception), commits once, and only
then hands each job its result: nothing is acknowledged before it is committed
(tests/durability's kill -9 tests). At 32 requests in flight one commit serves many of
them, and the requests of a process never queue on the database's write lock: on
SQLite they would poll for it with growing sleeps, one transaction each.

The audit chain (node.services.audit): the writer takes the ``audit`` lock once per
batch (SQLite's write lock; a transaction-scoped advisory lock on PostgreSQL), reads the
head once, and chains the batch's entries in memory. Other processes (workers, a
second node on one PostgreSQL) and code that still appends through a session take the
same lock, so the chain stays one: each batch starts from the head it finds.

Why by hand: SQLAlchemy has no group commit; the job queue, the batch and its
savepoints are the whole mechanism (about a hundred lines), and the thread owns its
connection as a plain SQLAlchemy Core ``Connection``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection, Engine

from node.services import audit
from node.services._locking import lock_connection

__all__ = ["GroupWriter", "WriteBatch", "WriterClosed"]

log = logging.getLogger("ccx.node")

T = TypeVar("T")
MAX_BATCH = 256  # jobs in one transaction: bounds how long one commit makes others wait


class WriterClosed(RuntimeError):
    """The writer was closed (the node is stopping): the job was not run."""


class WriteBatch:
    """What a job writes with: the batch's ``connection`` (inside the job's savepoint)
    and :meth:`audit`, which chains an entry after the batch's last one."""

    def __init__(self, connection: Connection, head: tuple[int, str]) -> None:
        self.connection = connection
        self.head = head

    def lock(self, name: str) -> None:
        """Hold the lock ``name`` until the batch commits (node.services._locking): on
        SQLite the batch holds the database's write lock already; on PostgreSQL a
        transaction-scoped advisory lock, which writers outside the writer (a session's
        ``hold_lock``) respect too."""
        if self.connection.dialect.name != "sqlite":
            lock_connection(self.connection, name)

    def audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str | None,
        details: dict[str, Any],
        now: int,
    ) -> int:
        """Append an audit entry (node.services.audit.append's rules); its ``seq``."""
        values = audit.entry_values(
            actor=actor, action=action, subject=subject, details=details, now=now
        )
        entry = audit.insert_after(self.connection, self.head, values)
        self.head = (entry["seq"], entry["hash"])
        return self.head[0]


@dataclass(slots=True)
class _Job(Generic[T]):
    run: Callable[[WriteBatch], T]
    future: Future[T]


class GroupWriter:
    """The process's writer for ``engine``: :meth:`call` from a thread, :meth:`run` from
    the event loop. Its thread starts with the first job; :meth:`close` drains the
    queue and stops it."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.batches = 0  # committed batches and their jobs: metrics and the benchmark
        self.jobs = 0
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._closed = False

    def submit(self, job: Callable[[WriteBatch], T]) -> Future[T]:
        """Queue ``job``; its future holds the job's result once the batch committed, or
        what the job raised (its writes rolled back), or the commit's error."""
        future: Future[T] = Future()
        with self._guard:
            if self._closed:
                raise WriterClosed("the node's writer is closed: the node is stopping")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ccx-writer", daemon=True)
                self._thread.start()
            self._queue.put(_Job(job, future))
        return future

    def call(self, job: Callable[[WriteBatch], T]) -> T:
        """Run ``job`` in the next batch and wait for the commit (from a thread)."""
        return self.submit(job).result()

    async def run(self, job: Callable[[WriteBatch], T]) -> T:
        """Run ``job`` in the next batch; the event loop goes on meanwhile."""
        return await asyncio.wrap_future(self.submit(job))

    def close(self, timeout: float = 30.0) -> None:
        """Run what is queued, then stop the thread (idempotent)."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    # --- the writer's thread ----------------------------------------------------------

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            jobs: list[_Job[Any]] = [first]
            while len(jobs) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                jobs.append(more)
            self._run_batch(jobs)

    def _run_batch(self, jobs: list[_Job[Any]]) -> None:
        outcomes: list[tuple[_Job[Any], Any, BaseException | None]] = []
        try:
            with self.engine.connect() as connection:
                batch = WriteBatch(connection, self._lock_and_read_head(connection))
                for job in jobs:
                    if not job.future.set_running_or_notify_cancel():
                        continue
                    savepoint = connection.begin_nested()
                    head = batch.head
                    try:
                        value = job.run(batch)
                    # the job's own refusal, or a bug of its own: its writes only (and
                    # never the writer's thread, which every later request waits on)
                    except BaseException as exc:
                        savepoint.rollback()
                        batch.head = head
                        outcomes.append((job, None, exc))
                    else:
                        savepoint.commit()
                        outcomes.append((job, value, None))
                connection.commit()
        except Exception as exc:  # the transaction failed: nothing of it was written
            log.warning("group commit failed: %s: %s", type(exc).__name__, exc)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.batches += 1
        self.jobs += len(outcomes)
        for job, value, error in outcomes:
            if error is None:
                job.future.set_result(value)
            else:
                job.future.set_exception(error)

    @staticmethod
    def _lock_and_read_head(connection: Connection) -> tuple[int, str]:
        """Take the ``audit`` lock for the batch's transaction (on SQLite its first
        statement opens the write transaction, so that the savepoints are inside it)
        and read the chain head."""
        lock_connection(connection, "audit")
        return audit.read_head(connection)
