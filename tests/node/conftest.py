"""Fixtures for node tests: a real app on a real SQLite file in a temporary folder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from node.app import create_app, initialize_node
from node.db import make_engine, migrate
from node.settings import Settings
from tests.conftest import METRICS_TOKEN_HASH, NOW


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="session", autouse=True)
def _memoized_scrypt() -> Iterator[None]:
    """Scrypt is a pure function of the passphrase and the file's salt and cost, and costs
    ~0.15 s here; the node tests build hundreds of nodes, each loading the keyring it has
    just saved. Memoized for them (same inputs, same key, a wrong passphrase still fails);
    tests/keys run the real thing every time."""
    import keys._keyring as keyring

    stretch = keyring._stretch
    memo: dict[tuple[bytes, str], bytes] = {}

    def memoized(passphrase: bytes, kdf: Mapping[str, Any]) -> bytes:
        key = (passphrase, json.dumps(dict(kdf), sort_keys=True))
        if key not in memo:
            memo[key] = stretch(passphrase, kdf)
        return memo[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keyring, "_stretch", memoized)
        yield


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the node's schema, migrated once for the session."""
    path = tmp_path_factory.mktemp("schema") / "node.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
    finally:
        engine.dispose()
    assert not path.with_name("node.db-wal").exists(), "the template must be checkpointed"
    return path


def xiamen_settings(data_dir: Path) -> Settings:
    """The settings of the tests' Xiamen node in ``data_dir``: the dev IdP on, no
    scheduler, a passphrase for tests, the metrics token of tests/conftest.py."""
    return Settings(
        data_dir=data_dir,
        node_id="http://xiamen.ccx.test",
        city="xiamen",
        dev_idp=True,
        scheduler=False,
        keyring_passphrase="a passphrase for tests only",  # type: ignore[arg-type]
        metrics_token_hash=METRICS_TOKEN_HASH,
    )


@pytest.fixture
def node_settings(tmp_path: Path, migrated_sqlite: Path) -> Settings:
    """A node in its own folder. On SQLite its database starts as a copy of the migrated
    schema, as a new node's would be after ``migrate`` (which it still runs, a no-op at
    head): running the migrations for every test cost ~0.2 s of each."""
    settings = xiamen_settings(tmp_path / "node")
    if settings.database_url is None:  # not on PostgreSQL (tests/storage/node_postgres.py)
        settings.data_dir.mkdir(parents=True)
        shutil.copyfile(migrated_sqlite, settings.data_dir / "node.db")
    return settings


@pytest.fixture
def make_client(node_settings: Settings, clock: Clock) -> Iterator[Any]:
    """Build a client for the node (settings overrides allowed); closes them all after."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = node_settings.model_copy(update=overrides)
        initialize_node(settings, now=clock.now)
        client = TestClient(create_app(settings, now=clock), raise_server_exceptions=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Any) -> TestClient:
    return make_client()  # type: ignore[no-any-return]
