"""Transaction-scoped locks for writers that must take turns (audit chain, issuing).

SQLite allows one writer at a time, but it takes the write lock only at a
transaction's first write; whatever was read before that may already be stale when
the write happens. PostgreSQL lets writers run side by side. ``hold_lock`` gives both
the same meaning: once it returns, no other transaction that asks for the same name
gets past its own ``hold_lock`` until this one commits or rolls back, and everything
read afterwards is current.
"""

from __future__ import annotations

import hashlib
import weakref

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

from node.db import take_sqlite_writer

__all__ = ["hold_lock", "lock_connection"]

# A write that matches no row still opens SQLite's write transaction (and waits for
# the lock up to the busy timeout): SQLite has no other way to upgrade a deferred
# transaction on demand. Any table does; the lock is database-wide. The primary-key
# lookup keeps it one B-tree probe (``WHERE 0 = 1`` is planned as a scan of the table).
_SQLITE_TAKE_WRITE_LOCK = text("UPDATE auditentry SET seq = seq WHERE seq = -1")
_PG_ADVISORY_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
# The locks each transaction holds, forgotten with the transaction object: a second
# request costs no round trip (SQLite's one lock covers every name).
_HELD: weakref.WeakKeyDictionary[SessionTransaction, set[str]] = weakref.WeakKeyDictionary()


def _advisory_key(name: str) -> int:
    # pg_advisory_xact_lock takes a signed 64-bit key.
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


def hold_lock(session: Session, name: str) -> None:
    """Hold the lock ``name`` until the session's transaction ends.

    SQLite: the database's write lock (one writer at a time, whatever the name).
    PostgreSQL: a transaction-scoped advisory lock on ``name`` (read your data with
    READ COMMITTED afterwards, so that statements see what the previous holder
    committed). Other databases: nothing; their unique constraints remain the guard.
    """
    connection = session.connection()
    transaction = session.get_transaction()
    held = _HELD.setdefault(transaction, set()) if transaction is not None else set()
    if not held or (name not in held and connection.dialect.name != "sqlite"):
        lock_connection(connection, name)
    held.add(name)


def lock_connection(connection: Connection, name: str) -> None:
    """:func:`hold_lock` on a Core connection, taken once per transaction by its owner
    (node.services.writer takes ``audit`` at the start of each batch)."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        take_sqlite_writer(connection)  # this process's threads queue without polling
        connection.execute(_SQLITE_TAKE_WRITE_LOCK)
    elif dialect == "postgresql":
        connection.execute(_PG_ADVISORY_XACT_LOCK, {"key": _advisory_key(name)})
