"""The admin token's setting, checked when the node starts, and the admin API's refusal
saying what is wrong (issue 20: a raw token put in CCX_ADMIN_TOKEN_HASH was accepted and
then refused on every call; a node with no admin token refused with no hint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from node.auth import hash_token
from node.cli import node_app
from node.settings import Settings
from tests.cli_results import assert_one_line_error
from tests.node.pushing import ADMIN, admin_settings

HASH = hash_token("admin-token")


@pytest.mark.parametrize(
    "value",
    ["admin-token", HASH[:-1], HASH + "0", "g" * 64, f"sha256:{HASH}"],
    ids=["the raw token", "63 digits", "65 digits", "not hex", "prefixed"],
)
def test_a_value_that_is_not_a_sha256_hex_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(admin_token_hash=value)
    (error,) = refused.value.errors()
    assert error["loc"] == ("admin_token_hash",)
    assert "SHA-256" in error["msg"]
    assert "ccx node admin-token" in error["msg"]


def test_serve_refuses_the_raw_token_in_one_line_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    env = {"CCX_DATA_DIR": str(tmp_path / "node"), "CCX_CONFIG": None}
    result = CliRunner().invoke(
        node_app, ["serve"], env={**env, "CCX_ADMIN_TOKEN_HASH": "my-admin-token"}
    )
    assert_one_line_error(result, "invalid_setting", "CCX_ADMIN_TOKEN_HASH")
    assert "ccx node admin-token" in result.stderr
    assert "my-admin-token" not in result.output  # the token is a secret: never repeated


def test_a_sha256_hex_is_taken_in_either_case_and_kept_in_lower_case() -> None:
    assert Settings(admin_token_hash=HASH.upper()).admin_token_hash == HASH
    assert Settings(admin_token_hash=f" {HASH}\n").admin_token_hash == HASH
    assert Settings(admin_token_hash=None).admin_token_hash is None
    assert Settings(admin_token_hash="").admin_token_hash is None  # CCX_ADMIN_TOKEN_HASH=


def test_a_node_without_an_admin_token_says_so(make_client: Any) -> None:
    node = make_client(admin_token_hash=None)
    refused = node.get("/v1/admin/audit/verify", headers=ADMIN)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "forbidden"
    assert "no admin token configured" in error["message"]
    assert "CCX_ADMIN_TOKEN_HASH" in error["message"]


def test_a_wrong_token_is_told_it_is_not_the_configured_admin_token(make_client: Any) -> None:
    node = make_client(**admin_settings())
    refused = node.get(
        "/v1/admin/audit/verify", headers={"Authorization": "Bearer not-the-admin-token"}
    )
    assert refused.status_code == 403
    message = refused.json()["error"]["message"]
    assert "not the admin token" in message
    assert "no admin token configured" not in message
