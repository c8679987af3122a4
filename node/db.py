"""Database engine and schema migrations (SQLite with WAL by default, PostgreSQL by URL)."""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlmodel import create_engine

__all__ = ["make_engine", "migrate", "take_sqlite_writer"]

SQLITE_BUSY_SECONDS = 30

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``. SQLite gets WAL, a busy timeout and foreign keys, so that
    several workers can share one file; its parent folder is created."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        if path and path != ":memory:":
            # As many pooled connections as the thread pool has threads (anyio: 40): with
            # SQLAlchemy's default 5 (+10 overflow), a busy worker opened and closed a
            # connection, and ran its pragmas, for many requests.
            kwargs = {"pool_size": 40, "max_overflow": 10, **kwargs}
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS}, **kwargs
        )

        writer = threading.Lock()
        _SQLITE_WRITERS[engine] = writer

        # The writer lock belongs to the connection that took it until its transaction
        # ends, however it ends (commit, rollback, or a close that rolls back).
        @event.listens_for(engine, "commit")
        @event.listens_for(engine, "rollback")
        def _release_writer(connection: Any) -> None:
            if connection.info.pop(_HOLDS_WRITER, False):
                writer.release()

        @event.listens_for(engine, "checkin")  # a backstop: a pooled connection holds none
        def _release_on_checkin(_dbapi: Any, record: Any) -> None:
            if record is not None and record.info.pop(_HOLDS_WRITER, False):
                writer.release()

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, **kwargs)


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_HOLDS_WRITER = "ccx.holds_sqlite_writer"


def take_sqlite_writer(connection: Connection, timeout: float = SQLITE_BUSY_SECONDS) -> bool:
    """Wait for this process's turn to write to the SQLite file of ``connection``; the
    turn lasts until the connection's transaction ends. Returns False if the turn was
    already this connection's (or the engine is not SQLite), True when newly taken.

    Why: SQLite lets one writer in at a time and makes the others poll with growing
    sleeps (1, 2, 5, ... 100 ms), which at a few concurrent issuances costs more than the
    work. Threads of one process queue here instead and are woken at once; SQLite's own
    lock still guards against other processes. Raises ``TimeoutError`` after ``timeout``.
    """
    writer = _SQLITE_WRITERS.get(connection.engine)
    if writer is None or connection.info.get(_HOLDS_WRITER):
        return False
    if getattr(connection.connection.dbapi_connection, "in_transaction", False):
        # This transaction has written already, so it holds SQLite's own write lock: to
        # queue now could wait on a thread that holds this lock and waits for SQLite's
        # (a deadlock until the busy timeout). SQLite's lock alone keeps it exclusive.
        return False
    if not writer.acquire(timeout=timeout):
        raise TimeoutError("another writer held the database for too long")
    connection.info[_HOLDS_WRITER] = True
    return True


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
