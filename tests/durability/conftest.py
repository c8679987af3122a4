"""Fixtures of the durability tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.storage import pg


@pytest.fixture(scope="module", autouse=True)
def _no_operator_settings() -> Iterator[None]:
    """The CCX_* settings of whoever runs the tests (a database URL, a registry, a
    config file) must reach neither the nodes nor the in-process ``ccx`` commands."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("CCX_") and n != pg.ENV]:
            patch.delenv(name)
        yield
