"""Storage fixtures: every test here runs on SQLite (WAL) and on a real PostgreSQL server.

PostgreSQL is the server of ``CCX_TEST_DATABASE_URL`` (``make test`` starts a throwaway
one with scripts/pg-test-server); each test module gets a database of its own there,
dropped after. Without the variable the PostgreSQL cases skip, and a notice says so at
the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel

import node.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from node.db import make_engine, migrate
from tests.storage import pg

BACKENDS = ["sqlite", "postgresql"]


def _new_database(backend: str, folder: Path, prefix: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'ccx.db'}"
        return
    url = pg.server_url()
    if url is None:
        pytest.skip(pg.SKIP_REASON)
    with pg.temporary_database(url, prefix) as database:
        yield database


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database for this test module: a SQLite file, or a fresh PostgreSQL database."""
    yield from _new_database(request.param, tmp_path_factory.mktemp("sqlite"), "ccx_storage")


@pytest.fixture(params=BACKENDS)
def node_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for this one test, on each backend: hand it to a node as
    ``Settings(database_url=...)``, or migrate it yourself."""
    yield from _new_database(request.param, tmp_path, "ccx_node")


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on this module's database, migrated to head."""
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the migrated database; every table is emptied after the test."""
    with Session(engine) as session:
        yield session
    with engine.begin() as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            connection.execute(table.delete())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if pg.SKIP_REASON in str(getattr(report, "longrepr", ""))
    ]
    if not skipped:
        return
    bar = "!" * 78
    terminalreporter.write_line("")
    terminalreporter.write_line(bar, red=True, bold=True)
    terminalreporter.write_line(
        f"!!  {len(skipped)} PostgreSQL test(s) SKIPPED: no PostgreSQL test server "
        f"({pg.ENV} unset).",
        red=True,
        bold=True,
    )
    terminalreporter.write_line(
        "!!  `make test` starts one where PostgreSQL is installed or installable.",
        red=True,
        bold=True,
    )
    terminalreporter.write_line(bar, red=True, bold=True)
