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
