"""Several writers at once, as N web workers and the scheduler are: no "database is locked"
on SQLite (WAL and a busy timeout), no lost rows on either backend."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, text
from sqlmodel import Session, select

from node.db import make_engine, migrate
from node.models import Record

ROWS = 500


def run_writers(url: str, writers: int, write: Callable[[Session, int, int], None]) -> None:
    """``writers`` threads, each with its own engine (as separate processes would have),
    each committing ROWS transactions; re-raises the first error any of them hit."""
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def worker(n: int) -> None:
        engine = make_engine(url)
        try:
            start.wait(timeout=30)
            with Session(engine) as session:
                for i in range(ROWS):
                    write(session, n, i)
                    session.commit()
        except BaseException as error:
            errors.append(error)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    if errors:
        raise errors[0]


def insert(session: Session, n: int, i: int) -> None:
    session.add(
        Record(
            department=f"dept-{n}",
            record_id=f"r-{i}",
            resident_id=f"res-{i % 17}",
            kind="volunteer_hours",
            occurred_at=2**33 + i,
            recorded_at=2**33 + i,
        )
    )


def count(url: str) -> int:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return session.exec(select(func.count()).select_from(Record)).one()
    finally:
        engine.dispose()


def test_two_writers_on_sqlite_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    engine = make_engine(url)
    migrate(engine)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    engine.dispose()

    run_writers(url, 2, insert)
    assert count(url) == 2 * ROWS


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_writers_lose_nothing(node_database_url: str, writers: int) -> None:
    engine = make_engine(node_database_url)
    migrate(engine)
    engine.dispose()
    run_writers(node_database_url, writers, insert)
    assert count(node_database_url) == writers * ROWS
