"""The group-commit writer (node.services.writer, issue 15), on SQLite and PostgreSQL:
jobs queued together commit in one transaction, each in its own savepoint (a job that
raises loses its own writes only), results are handed out only after the commit, the
audit chain stays one across two writers (two processes' worth: two engines), and a
closed writer drains its queue."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from node.db import make_engine, migrate
from node.models import AuditEntry, Nonce
from node.services import audit
from node.services.nonces import store_secret
from node.services.writer import GroupWriter, WriteBatch, WriterClosed

NOW = 1_900_000_000


@pytest.fixture
def fresh_engine(node_database_url: str) -> Iterator[Engine]:
    engine = make_engine(node_database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def secret_and_entry(name: str) -> Callable[[WriteBatch], int]:
    def job(batch: WriteBatch) -> int:
        store_secret(batch.connection, purpose="test", value=name, expires_at=NOW + 60)
        return batch.audit(actor="node", action="test.wrote", subject=name, details={}, now=NOW)

    return job


def failing(batch: WriteBatch) -> int:
    store_secret(batch.connection, purpose="test", value="lost", expires_at=NOW + 60)
    batch.audit(actor="node", action="test.lost", subject="lost", details={}, now=NOW)
    raise LookupError("refused by the job")


def hold(writer: GroupWriter) -> tuple[Future[bool], threading.Event]:
    """A first job that holds the writer's thread until the event is set."""
    running, gate = threading.Event(), threading.Event()

    def job(batch: WriteBatch) -> bool:
        running.set()
        return gate.wait(10)

    future = writer.submit(job)
    assert running.wait(10)
    return future, gate


def nonces(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Nonce)).scalar_one())


def check_chain(engine: Engine) -> tuple[bool, int]:
    with Session(engine) as session:
        ok, _, entries = audit.verify_chain(session)
    return ok, entries


def test_a_batch_commits_once_and_a_refusing_job_loses_only_its_own_writes(
    fresh_engine: Engine,
) -> None:
    writer = GroupWriter(fresh_engine)
    first, gate = hold(writer)  # the next four queue meanwhile: one batch
    futures: list[Future[int]] = [
        writer.submit(secret_and_entry("a")),
        writer.submit(secret_and_entry("b")),
        writer.submit(failing),
        writer.submit(secret_and_entry("c")),
    ]
    assert not any(f.done() for f in futures)
    gate.set()
    assert first.result(10) is True
    seqs = [f.result(10) for f in (futures[0], futures[1], futures[3])]
    with pytest.raises(LookupError, match="refused by the job"):
        futures[2].result(10)
    assert seqs == [1, 2, 3]  # the failed job's entry was rolled back: no gap, no fork
    assert writer.batches == 2
    assert nonces(fresh_engine) == 3
    assert check_chain(fresh_engine) == (True, 3)
    writer.close()


def test_nothing_is_acknowledged_before_the_commit(fresh_engine: Engine) -> None:
    writer = GroupWriter(fresh_engine)
    seen: list[int] = []

    def job(batch: WriteBatch) -> str:
        store_secret(batch.connection, purpose="test", value="x", expires_at=NOW + 60)
        return "done"

    called = threading.Event()
    future = writer.submit(job)
    future.add_done_callback(lambda _: (seen.append(nonces(fresh_engine)), called.set()))
    assert future.result(10) == "done"
    assert called.wait(10)
    assert seen == [1]  # when the caller hears "done", another connection sees the row
    writer.close()


def test_a_job_that_breaks_a_constraint_loses_only_itself(fresh_engine: Engine) -> None:
    writer = GroupWriter(fresh_engine)
    _, gate = hold(writer)
    duplicate = [writer.submit(secret_and_entry("same")), writer.submit(secret_and_entry("same"))]
    gate.set()
    assert duplicate[0].result(10) == 1
    with pytest.raises(IntegrityError):
        duplicate[1].result(10)  # its savepoint rolled back: the first one stands
    assert nonces(fresh_engine) == 1
    writer.close()


def test_two_writers_on_one_database_keep_one_audit_chain(fresh_engine: Engine) -> None:
    """Two engines, as two worker processes or two node processes have: each batch
    starts from the head it finds under the audit lock."""
    other = make_engine(fresh_engine.url.render_as_string(hide_password=False))
    writers = [GroupWriter(fresh_engine), GroupWriter(other)]
    errors: list[BaseException] = []

    def burst(n: int) -> None:
        try:
            futures = [writers[n].submit(secret_and_entry(f"{n}-{i}")) for i in range(120)]
            for future in futures:
                future.result(60)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[0]
    for writer in writers:
        writer.close()
    other.dispose()
    assert check_chain(fresh_engine) == (True, 240)
    with Session(fresh_engine) as session:
        seqs = session.connection().execute(select(AuditEntry.seq)).scalars().all()  # type: ignore[call-overload]
    assert sorted(seqs) == list(range(1, 241))


def test_close_runs_what_is_queued_then_refuses_new_jobs(fresh_engine: Engine) -> None:
    writer = GroupWriter(fresh_engine)
    futures = [writer.submit(secret_and_entry(str(i))) for i in range(20)]
    writer.close()
    assert [f.result(0) for f in futures] == list(range(1, 21))
    with pytest.raises(WriterClosed):
        writer.submit(secret_and_entry("late"))


def test_the_event_loop_awaits_a_job(fresh_engine: Engine) -> None:
    import asyncio

    writer = GroupWriter(fresh_engine)

    async def main() -> list[Any]:
        return list(
            await asyncio.gather(*(writer.run(secret_and_entry(f"e{i}")) for i in range(8)))
        )

    assert sorted(asyncio.run(main())) == list(range(1, 9))
    writer.close()


def test_a_job_that_raises_anything_leaves_the_writer_serving(fresh_engine: Engine) -> None:
    writer = GroupWriter(fresh_engine)

    def exits(batch: WriteBatch) -> None:
        raise SystemExit("a bug of the job's own")

    with pytest.raises(SystemExit):
        writer.submit(exits).result(10)
    assert writer.call(secret_and_entry("after")) == 1  # the thread lives on
    writer.close()
