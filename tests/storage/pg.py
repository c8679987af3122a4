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

__all__ = ["ENV", "SKIP_REASON", "server_url", "temporary_database"]


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
def temporary_database(url: str, prefix: str = "ccx") -> Iterator[str]:
    """A new, empty database on the server of ``url``; dropped (connections and all) after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin(url) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _libpq(url, name)
    finally:
        with _admin(url) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
