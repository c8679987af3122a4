"""A pytest plugin that runs the node tests on PostgreSQL instead of SQLite.

    make test-node-pg
    # or, with a server of your own (scripts/pg-test-server start):
    .venv/bin/python -m pytest -p tests.storage.node_postgres --node-db=postgresql tests/node

With ``--node-db=postgresql`` (or ``CCX_TEST_NODE_DB=postgresql``), every test that uses
the ``node_settings`` fixture gets an empty database of its own on the server of
``CCX_TEST_DATABASE_URL`` (dropped after the test), handed to the node through the
``CCX_DATABASE_URL`` environment variable, which ``Settings`` reads when no
``database_url`` is given. tests/node itself is unchanged; without a server those tests
skip with a clear reason. Without the option the plugin does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from node.db import make_engine, migrate
from tests.storage import pg

OPTION = "--node-db"
ENV = "CCX_TEST_NODE_DB"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        OPTION,
        choices=["sqlite", "postgresql"],
        default=os.environ.get(ENV, "sqlite"),
        help="database for tests using node_settings (default: $CCX_TEST_NODE_DB or sqlite)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"node tests database: {config.getoption(OPTION)}"


@pytest.fixture(scope="session")
def node_postgres_database() -> Iterator[str]:
    """One database for the session (for each xdist worker), migrated once."""
    url = pg.server_url()
    if url is None:
        pytest.skip(pg.SKIP_REASON)
    with pg.temporary_database(url, "ccx_node") as database:
        engine = make_engine(database)
        try:
            migrate(engine)
        finally:
            engine.dispose()
        yield database


@pytest.fixture
def node_postgres_url(node_postgres_database: str) -> str:
    """The session's PostgreSQL database, emptied for one test (skips without a server).

    A test gets the node's schema with no rows in it, as a new node's database after
    ``migrate`` (which the node still runs, a no-op at head). Emptying takes one TRUNCATE
    where a new database (CREATE DATABASE copies a template) took 0.5 s on this machine."""
    pg.empty_database(node_postgres_database)
    return node_postgres_database


@pytest.fixture(autouse=True)
def _node_database_switch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.config.getoption(OPTION) != "postgresql":
        return
    if "node_settings" not in request.fixturenames:
        return
    monkeypatch.setenv("CCX_DATABASE_URL", request.getfixturevalue("node_postgres_url"))
