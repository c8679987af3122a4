"""Issue 20: `ccx node serve` (and `python -m node serve`) refuses what the operator must
fix in one line naming the variable: a setting that does not validate (a bad
CCX_REGISTRY_URL printed 46 lines of pydantic's traceback), and a keyring passphrase
that does not open the keyring (a follower started in a shell without the passphrase
exported said only "the passphrase does not decrypt the keyring")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from node.app import initialize_node
from node.cli import node_app
from node.settings import Settings
from tests.cli_results import assert_one_line_error
from tests.conftest import NOW
from tests.node.conftest import xiamen_settings

BAD_URL = "127.0.0.1:8000/v1/alliance/registry"  # the scheme forgotten


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """An initialized node's settings; the commands run in an empty folder (no .env)."""
    monkeypatch.chdir(tmp_path)
    settings = xiamen_settings(tmp_path / "node")
    initialize_node(settings, now=NOW)
    return settings


def serve(node: Settings, **env: str | None) -> Result:
    base: dict[str, str | None] = {
        "CCX_DATA_DIR": str(node.data_dir),
        "CCX_KEYRING_PASSPHRASE": node.keyring_passphrase.get_secret_value(),
        "CCX_CONFIG": None,
    }
    return CliRunner().invoke(node_app, ["serve"], env={**base, **env})


def test_a_bad_registry_url_is_one_line_naming_the_variable(node: Settings) -> None:
    result = serve(node, CCX_REGISTRY_URL=BAD_URL)
    assert_one_line_error(result, "invalid_setting", "CCX_REGISTRY_URL")
    assert f"must be an http(s) URL, not '{BAD_URL}'" in result.stderr


def test_a_setting_that_is_not_a_number_is_one_line(node: Settings) -> None:
    result = serve(node, CCX_REGISTRY_REFRESH="ten")
    assert_one_line_error(result, "invalid_setting", "CCX_REGISTRY_REFRESH")
    assert "'ten'" in result.stderr


def test_a_secret_put_where_its_hash_goes_is_not_repeated(node: Settings) -> None:
    result = serve(node, CCX_METRICS_TOKEN_HASH="the raw metrics token")
    assert_one_line_error(result, "invalid_setting", "CCX_METRICS_TOKEN_HASH")
    assert "raw metrics token" not in result.output


def test_python_m_node_serve_says_it_in_one_line(node: Settings) -> None:
    """The way the simulator and the durability tests start nodes, as a real process."""
    env = {
        **os.environ,
        "CCX_DATA_DIR": str(node.data_dir),
        "CCX_KEYRING_PASSPHRASE": node.keyring_passphrase.get_secret_value(),
        "CCX_REGISTRY_URL": BAD_URL,
    }
    env.pop("CCX_CONFIG", None)
    run = subprocess.run(
        [sys.executable, "-m", "node", "serve", "--port", "9"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().startswith("error [invalid_setting] CCX_REGISTRY_URL: ")
    assert "\n" not in run.stderr.strip()


def test_a_follower_without_the_passphrase_says_it_is_unset(node: Settings) -> None:
    # TWO-CITIES.md: a follower runs with CCX_DEV_IDP=true, which lets the built-in
    # development passphrase through; the keyring was made with another one.
    result = serve(node, CCX_KEYRING_PASSPHRASE=None, CCX_DEV_IDP="true")
    assert_one_line_error(result, "wrong_passphrase", "CCX_KEYRING_PASSPHRASE")
    assert "CCX_KEYRING_PASSPHRASE is unset" in result.stderr
    assert str(node.keyring_path) in result.stderr


def test_a_wrong_passphrase_says_it_is_set_but_wrong(node: Settings) -> None:
    result = serve(node, CCX_KEYRING_PASSPHRASE="a passphrase of another node")
    assert_one_line_error(result, "wrong_passphrase", "CCX_KEYRING_PASSPHRASE")
    assert "CCX_KEYRING_PASSPHRASE is set, but not to the passphrase it was made with" in (
        result.stderr
    )
