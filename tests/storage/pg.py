"""Throwaway databases on the PostgreSQL test server named by ``CCX_TEST_DATABASE_URL``.

``make test`` starts that server (scripts/pg-test-server) and exports the variable; by
hand: ``set -a; eval "$(scripts/pg-test-server start)"; set +a``. Without it, the
PostgreSQL cases skip with :data:`SKIP_REASON`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

ENV = "CCX_TEST_DATABASE_URL"
SKIP_REASON = "PostgreSQL test server not available (see make test notice)"

__all__ = ["ENV", "SKIP_REASON", "empty_database", "server_url", "temporary_database"]


def server_url() -> str | None:
    """The test server's URL, or None when there is none."""
    return os.environ.get(ENV) or None


def _libpq(url: str, database: str | None = None) -> str:
    """``url`` as libpq takes it (no ``+driver``), optionally naming another database."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(_libpq(url), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise RuntimeError(
            f"{ENV} is set, but its server can't be reached ({error}); "
            "unset it to skip the PostgreSQL tests, or start one with scripts/pg-test-server"
        ) from error


@contextmanager
def temporary_database(
    url: str, prefix: str = "ccx", *, template: str | None = None
) -> Iterator[str]:
    """A new database on the server of ``url``, empty or a copy of the database ``template``
    names (a URL; nothing may be connected to it); dropped (connections and all) after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        source = make_url(template).database or ""
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(source)
        )
    with _admin(url) as admin:
        admin.execute(create)
    try:
        yield _libpq(url, name)
    finally:
        with _admin(url) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


KEEP = frozenset({"alembic_version"})


def empty_database(url: str, *, keep: frozenset[str] = KEEP) -> None:
    """Delete every row of every table in ``url``'s public schema but ``keep``'s and restart
    its sequences, first ending the sessions other clients still hold on it (a test's
    engines that were never disposed), so that nothing of one test reaches the next.

    DELETE with the foreign-key triggers off (session_replication_role, which the test
    server's owner may set), not TRUNCATE: on a few small tables it takes milliseconds
    where TRUNCATE, which swaps every table's files, took ~0.15 s."""
    with psycopg.connect(_libpq(url), autocommit=True, connect_timeout=10) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
            if name not in keep
        ]
        sequences = [
            name
            for (name,) in connection.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
            )
        ]
        with connection.transaction():
            connection.execute("SET LOCAL session_replication_role = replica")
            for name in tables:
                connection.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier("public", name)))
            for name in sequences:
                connection.execute(
                    sql.SQL("ALTER SEQUENCE {} RESTART").format(sql.Identifier("public", name))
                )
