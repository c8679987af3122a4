"""Fixtures for the wallet's tests: a real node to fetch from (the node tests' fixtures,
tests/node/conftest.py, imported by name)."""

from tests.node.conftest import (  # noqa: F401  (fixtures, used by name)
    _memoized_scrypt,
    clock,
    make_client,
    migrated_sqlite,
    node_settings,
)
