"""The alliance host and a member node over real HTTP on loopback: the host serves the
alliance folder's registry (`CCX_ALLIANCE_DIR`); the member pins the root key, follows
the registry (`CCX_ALLIANCE_ROOT_JWK`, `CCX_REGISTRY_URL`), serves the copy it follows,
and keeps the last good version when the host is down. Real clocks: the registry is
published by `ccx alliance` with the wall clock."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from alliance.cli import alliance_app
from alliance.mapping_cli import PASSPHRASE_ENV
from node.app import create_app, initialize_node
from node.auth import hash_token
from node.services.registry import RegistryFollower
from node.settings import Settings
from node.state import load_keyring
from tests.conftest import METRICS, METRICS_TOKEN_HASH
from tests.node.servers import RunningNode, free_port

ALLIANCE_ID = "https://alliance.ccx.example"
ENV = {PASSPHRASE_ENV: "an alliance passphrase for tests"}
ADMIN_TOKEN = "an admin token for tests only"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def alliance(folder: Path, *args: str | Path) -> None:
    argv = [str(a) for a in args]
    if argv[0] != "init":
        argv += ["--dir", str(folder)]
    result = CliRunner().invoke(alliance_app, argv, env=ENV)
    assert result.exit_code == 0, result.output


def settings(folder: Path, port: int, **overrides: Any) -> Settings:
    return Settings(
        data_dir=folder,
        node_id=f"http://127.0.0.1:{port}",
        city=overrides.pop("city", "xiamen"),
        scheduler=False,
        dev_idp=True,
        keyring_passphrase="a node passphrase for tests",  # type: ignore[arg-type]
        metrics_token_hash=METRICS_TOKEN_HASH,
        **overrides,
    )


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[dict[str, Any]]:
    host_port, member_port = free_port(), free_port()
    folder = tmp_path / "alliance"
    member_settings = settings(
        tmp_path / "xiamen", member_port, admin_token_hash=hash_token(ADMIN_TOKEN)
    )
    ring = initialize_node(member_settings)
    jwks = tmp_path / "xiamen.jwks.json"
    jwks.write_text(json.dumps(ring.jwks(int(time.time()))))
    alliance(folder, "init", "--id", ALLIANCE_ID, "--dir", folder)
    alliance(
        folder, "admit", "--member-id", member_settings.node_id, "--name", "Xiamen",
        "--city", "xiamen", "--jwks", jwks,
    )  # fmt: skip
    alliance(folder, "publish")
    host_settings = settings(tmp_path / "host", host_port, city="fuzhou", alliance_dir=folder)
    initialize_node(host_settings)
    member_settings = member_settings.model_copy(
        update={
            "alliance_root_jwk": str(folder / "root.jwk"),
            "registry_url": f"http://127.0.0.1:{host_port}/v1/alliance/registry",
        }
    )
    host = RunningNode(create_app(host_settings), host_port)
    member = RunningNode(create_app(member_settings), member_port)
    with host, member:
        yield {"folder": folder, "host": host, "member": member, "settings": member_settings}


def follower(node: RunningNode) -> RegistryFollower:
    found: RegistryFollower = node.app.state.node.follower
    return found


def wait_for_version(node: RunningNode, version: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(f"{node.url}/readyz").json()
        if body.get("registry", {}).get("version") == version:
            return body
        time.sleep(0.05)
    raise AssertionError(f"the node did not reach registry version {version}: {body}")


def test_the_member_follows_the_hosts_registry_and_serves_its_copy(
    federation: dict[str, Any],
) -> None:
    host, member, folder = federation["host"], federation["member"], federation["folder"]
    ready = wait_for_version(member, 1)
    assert ready["status"] == "ready"
    assert ready["checks"]["registry"] is True
    published = (folder / "registry" / "current.jwt").read_text().strip()
    assert httpx.get(f"{host.url}/v1/alliance/registry").text == published
    copy = httpx.get(f"{member.url}/v1/alliance/registry")
    assert copy.status_code == 200
    assert copy.headers["content-type"] == "application/alliance-registry+jwt"
    assert copy.text == published
    again = httpx.get(
        f"{member.url}/v1/alliance/registry", headers={"If-None-Match": copy.headers["ETag"]}
    )
    assert again.status_code == 304
    assert "ccx_registry_version 1.0" in httpx.get(f"{member.url}/metrics", headers=METRICS).text


def test_a_new_version_and_a_skipped_one_are_taken_through_the_chain(
    federation: dict[str, Any],
) -> None:
    host, member, folder = federation["host"], federation["member"], federation["folder"]
    wait_for_version(member, 1)
    member_id = federation["settings"].node_id
    alliance(folder, "suspend", "--member-id", member_id)
    alliance(folder, "publish")
    alliance(folder, "reinstate", "--member-id", member_id)
    alliance(folder, "publish")
    result = follower(member).refresh(
        httpx.Client(), f"{host.url}/v1/alliance/registry", now=int(time.time())
    )
    assert result.accepted == (2, 3)
    assert httpx.get(f"{member.url}/v1/alliance/registry/versions/2").status_code == 200
    assert wait_for_version(member, 3)["status"] == "ready"


def test_with_the_host_down_the_member_keeps_the_last_good_registry(
    federation: dict[str, Any],
) -> None:
    host, member = federation["host"], federation["member"]
    wait_for_version(member, 1)
    host.__exit__()
    result = follower(member).refresh(
        httpx.Client(), f"{host.url}/v1/alliance/registry", now=int(time.time()) + 120
    )
    assert result.error is not None
    assert result.error[0] == "registry_unreachable"
    body = httpx.get(f"{member.url}/readyz").json()
    assert body["status"] == "ready"  # the last good version is still in effect
    assert body["registry"]["version"] == 1
    assert body["registry"]["last_error"] == "registry_unreachable"


def test_the_host_serves_tables_by_name_only(federation: dict[str, Any]) -> None:
    host = federation["host"]
    for name in ("..%2Falliance.json", "alliance.json", "xiamen.v1.table.jwt"):
        response = httpx.get(f"{host.url}/v1/alliance/tables/{name}")
        assert response.status_code == 404, name
        assert response.json()["error"]["code"] in {"registry_not_found", "not_found"}
        assert ALLIANCE_ID not in response.text


def test_a_node_without_a_registry_says_so(federation: dict[str, Any], tmp_path: Path) -> None:
    lone = settings(tmp_path / "lone", free_port())
    initialize_node(lone)
    with RunningNode(create_app(lone), int(lone.node_id.rsplit(":", 1)[1])) as node:
        response = httpx.get(f"{node.url}/v1/alliance/registry")
        assert response.status_code == 404
        assert "registry" not in httpx.get(f"{node.url}/readyz").json()


def test_a_private_root_jwk_is_refused_at_start(tmp_path: Path) -> None:
    import protocol as P
    from tests.conftest import ec_key

    private = {**P.public_jwk(ec_key(5)), "d": "AAAA"}
    bad = settings(tmp_path / "bad", free_port(), alliance_root_jwk=json.dumps(private))
    initialize_node(bad)
    with pytest.raises(ValueError, match="not a public JWK"):
        create_app(bad)
    assert load_keyring(bad).active  # the node's own keys are untouched


def test_a_rotation_waits_for_the_registry_to_list_the_next_key(
    federation: dict[str, Any], tmp_path: Path
) -> None:
    host, member, folder = federation["host"], federation["member"], federation["folder"]
    wait_for_version(member, 1)
    first = httpx.post(f"{member.url}/v1/admin/keys/rotate", headers=ADMIN)
    assert first.status_code == 200, first.text  # admitted with active + next listed
    second = httpx.post(f"{member.url}/v1/admin/keys/rotate", headers=ADMIN)
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "next_key_not_in_registry"
    jwks = tmp_path / "after.jwks.json"  # the alliance lists the new next key, publishes
    jwks.write_text(httpx.get(f"{member.url}/.well-known/jwks.json").text)
    member_id = federation["settings"].node_id
    alliance(folder, "keys", "--member-id", member_id, "--jwks", jwks)
    alliance(folder, "publish")
    follower(member).refresh(
        httpx.Client(), f"{host.url}/v1/alliance/registry", now=int(time.time())
    )
    third = httpx.post(f"{member.url}/v1/admin/keys/rotate", headers=ADMIN)
    assert third.status_code == 200, third.text


@pytest.mark.parametrize(
    ("root_jwk", "says"),
    [("missing.jwk", "can't read the file"), ('{"kty": "EC"}', "not a public JWK")],
    ids=["missing_file", "not_a_key"],
)
def test_serve_refuses_a_bad_pinned_root_key_in_one_line(
    tmp_path: Path, root_jwk: str, says: str
) -> None:
    from ccx.app import app as ccx

    node = settings(tmp_path / "node", free_port())
    initialize_node(node)
    env = {
        "CCX_DATA_DIR": str(node.data_dir),
        "CCX_KEYRING_PASSPHRASE": node.keyring_passphrase.get_secret_value(),
        "CCX_ALLIANCE_ROOT_JWK": root_jwk,
    }
    result = CliRunner().invoke(ccx, ["node", "serve"], env=env)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error [invalid_root_key] CCX_ALLIANCE_ROOT_JWK: ")
    assert "\n" not in result.stderr.strip()
    assert says in result.stderr
