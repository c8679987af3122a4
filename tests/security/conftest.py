"""Fixtures for the security tests (docs/SECURITY.md): the node tests' fixtures
(tests/node/conftest.py: a real app on a real SQLite file, a clock moved by hand, ...),
imported by name, and a two-city alliance in-process (``world``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.node.conftest import (  # noqa: F401  (fixtures, used by name)
    _memoized_scrypt,
    client,
    clock,
    make_client,
    migrated_sqlite,
    node_settings,
)
from tests.security.world import World


@pytest.fixture
def world(make_client: Any, tmp_path: Path) -> World:  # noqa: F811 (the fixture, by name)
    """Xiamen (the verifier, holding a registry) and Fuzhou (a visitor's home city)."""
    return World.make(make_client, tmp_path)
