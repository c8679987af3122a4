"""Fixtures for the interoperability tests: the node tests' fixtures (a node on its own
folder and database, the tests' clock), imported by name."""

from tests.node.conftest import (  # noqa: F401  (fixtures, used by name)
    _memoized_scrypt,
    clock,
    make_client,
    migrated_sqlite,
    node_settings,
)
