"""The in-process SQLite writer lock (node.db.take_sqlite_writer, used by hold_lock):
threads of one process queue for SQLite's single writer slot instead of polling, and
the turn ends with the transaction however it ends."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlmodel import Session

from node.db import make_engine, migrate, take_sqlite_writer
from node.services._locking import hold_lock


@pytest.fixture
def sqlite_engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'ccx.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def _other_thread_gets_turn(engine, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    result: list[bool] = []

    def attempt() -> None:
        with engine.connect() as connection:
            try:
                result.append(take_sqlite_writer(connection, timeout=timeout))
            except TimeoutError:
                result.append(False)
            connection.rollback()

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    return result == [True]


@pytest.mark.parametrize("ending", ["commit", "rollback", "close"])
def test_the_turn_ends_with_the_transaction(sqlite_engine, ending: str) -> None:  # type: ignore[no-untyped-def]
    session = Session(sqlite_engine)
    hold_lock(session, "audit")
    assert not _other_thread_gets_turn(sqlite_engine, timeout=0.05)
    getattr(session, ending)()
    assert _other_thread_gets_turn(sqlite_engine, timeout=1)
    session.close()


def test_a_second_lock_in_the_same_transaction_does_not_wait(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    with Session(sqlite_engine) as session:
        hold_lock(session, "attestations:a")
        started = time.perf_counter()
        hold_lock(session, "audit")  # would deadlock on itself if it queued again
        assert time.perf_counter() - started < 1
        assert take_sqlite_writer(session.connection()) is False
        session.rollback()


def test_writers_in_threads_take_turns(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    inside = 0
    overlaps = 0
    guard = threading.Lock()

    def writer() -> None:
        nonlocal inside, overlaps
        for _ in range(20):
            with Session(sqlite_engine) as session:
                hold_lock(session, "audit")
                with guard:
                    inside += 1
                    overlaps += inside > 1
                time.sleep(0.001)
                with guard:
                    inside -= 1
                session.commit()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == 0


def test_a_transaction_that_wrote_first_does_not_queue_behind_one_waiting_for_it(
    sqlite_engine,  # type: ignore[no-untyped-def]
) -> None:
    """A push writes its records, then appends to the audit log (hold_lock); meanwhile an
    issuance holds the in-process lock and waits for SQLite's. The push must not queue for
    the in-process lock (both would wait until the busy timeout)."""
    from sqlalchemy import text

    pusher = Session(sqlite_engine)
    pusher.connection().execute(text("UPDATE auditentry SET seq = seq WHERE seq = -1"))
    pusher.connection().execute(
        text("INSERT INTO nonce (value, purpose, subject, expires_at) VALUES ('n', 'pop', 's', 1)")
    )
    waited: list[float] = []

    def issuer() -> None:
        with Session(sqlite_engine) as session:
            started = time.perf_counter()
            hold_lock(session, "attestations:x")  # in-process lock, then SQLite's: waits
            waited.append(time.perf_counter() - started)
            session.rollback()

    thread = threading.Thread(target=issuer)
    thread.start()
    time.sleep(0.2)  # the issuer now holds the in-process lock and waits for SQLite's
    started = time.perf_counter()
    hold_lock(pusher, "audit")  # must not wait for the in-process lock
    assert time.perf_counter() - started < 1
    pusher.commit()
    thread.join(timeout=10)
    assert waited
    assert waited[0] < 5
