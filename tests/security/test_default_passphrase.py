"""A node left with the built-in keyring passphrase (docs/SECURITY.md, section 8).

The default passphrase is in our repository for anyone to read: a keyring sealed with it
is no secret. It is accepted only beside the development identity provider (a laptop's
demo node, which lets anyone log in as anyone anyway); every other node refuses to write
or open its keyring with it, and the commands say so in one line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ccx.app import app as ccx
from keys import KeyringError
from node.app import create_app, initialize_node
from node.settings import DEVELOPMENT_PASSPHRASE, Settings

# Every CCX_ variable a developer's shell might hold that would change what is tested.
UNSET = ("CCX_KEYRING_PASSPHRASE", "CCX_DEV_IDP", "CCX_DATABASE_URL", "CCX_CONFIG")


@pytest.fixture(autouse=True)
def _no_passphrase_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)


def settings_of(folder: Path, **overrides: object) -> Settings:
    return Settings(data_dir=folder, scheduler=False, _env_file=None, **overrides)  # type: ignore[call-arg]


def test_a_node_without_a_passphrase_of_its_own_writes_no_keyring(tmp_path: Path) -> None:
    settings = settings_of(tmp_path / "node")
    assert settings.keyring_passphrase.get_secret_value() == DEVELOPMENT_PASSPHRASE
    with pytest.raises(KeyringError, match="CCX_KEYRING_PASSPHRASE"):
        initialize_node(settings)
    assert not settings.keyring_path.exists()


def test_a_development_nodes_keyring_does_not_open_on_a_real_node(tmp_path: Path) -> None:
    folder = tmp_path / "node"
    initialize_node(settings_of(folder, dev_idp=True))  # a laptop's demo node: accepted
    with pytest.raises(KeyringError, match="built-in development one"):
        create_app(settings_of(folder))


def test_the_commands_refuse_the_default_passphrase_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "node"
    result = CliRunner().invoke(
        ccx, ["node", "init", "--city", "xiamen", "--data-dir", str(folder)], env={}
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip().startswith(
        "error [keyring_error] CCX_KEYRING_PASSPHRASE: the keyring passphrase is the built-in"
    )
    assert "\n" not in result.stderr.strip()
    assert not (folder / "keyring.json").exists()


def test_serve_checks_the_passphrase_before_any_worker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "node"
    initialize_node(settings_of(folder, keyring_passphrase="the operator's own passphrase"))

    def server_started(*args: object, **kwargs: object) -> None:
        raise AssertionError("uvicorn was started with a keyring it can't open")

    monkeypatch.setattr(uvicorn, "run", server_started)  # should it get that far: fail, not hang
    result = CliRunner().invoke(
        ccx,
        ["node", "serve", "--port", "9"],
        env={"CCX_DATA_DIR": str(folder), "CCX_KEYRING_PASSPHRASE": "a wrong guess, 12+ bytes"},
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error [wrong_passphrase] CCX_KEYRING_PASSPHRASE: ")
    assert "\n" not in result.stderr.strip()


def test_a_node_with_the_development_identity_provider_says_so_when_it_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_of(tmp_path / "node", dev_idp=True)
    initialize_node(settings)
    with caplog.at_level(logging.WARNING, logger="ccx.node"), TestClient(create_app(settings)):
        pass
    events = [json.loads(r.getMessage()) for r in caplog.records if r.levelno == logging.WARNING]
    assert [e["event"] for e in events] == ["dev_idp_enabled"]
    assert "never in production" in events[0]["message"]
