"""`ccx alliance`: init, admit, keys, suspend, scale, table, policy, publish, show.

Real keys and real signatures: every published version is checked with
``protocol.verify_registry`` against root.jwk, chained to the one before. Bad input must
end in one line ``error [code] field: message`` on stderr, exit status 2, and no file
changed. Keyring.dump/load stretch the passphrase with scrypt, so one alliance is made
per module and copied for each test that changes it.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import protocol as P
from alliance.cli import alliance_app
from alliance.mapping_cli import PASSPHRASE_ENV
from alliance.state import DEFAULT_POLICY, REQUIRED_SCENARIOS
from keys import Keyring
from mappings import AllianceScale, MappingTable
from tests.cli_results import assert_one_line_error, ok
from tests.conftest import ALLIANCE, NOW, ec_key, ed_key

TABLES = Path(__file__).parent.parent.parent / "mappings" / "tables"
PASSPHRASE = "correct horse battery staple"
XIAMEN = "https://xiamen.ccx.example"
FUZHOU = "https://fuzhou.ccx.example"
ENV = {PASSPHRASE_ENV: PASSPHRASE}


# The commands that decide by the time act at the tests' fixed clock, as every service does.
TIMED = {"init", "keys", "table", "publish", "show"}


def ccx(folder: Path, *args: str | Path, env: dict[str, str] | None = None) -> Result:
    argv = [str(a) for a in args]
    if argv[0] != "init" and "--help" not in argv:
        argv += ["--dir", str(folder)]
    if argv[0] in TIMED and "--help" not in argv and "--now" not in argv:
        argv += ["--now", str(NOW)]
    return CliRunner().invoke(alliance_app, argv, env=ENV if env is None else env)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def member_jwks(first_seed: int, folder: Path, name: str) -> tuple[Keyring, Path]:
    seeds = iter(range(first_seed, first_seed + 10))
    ring = Keyring.create(now=NOW, generate=lambda alg: ec_key(next(seeds)))
    path = folder / f"{name}.jwks.json"
    path.write_text(json.dumps(ring.jwks(NOW)))
    return ring, path


def root_jwk(folder: Path) -> P.PublicKey:
    return P.public_key_from_jwk(json.loads((folder / "root.jwk").read_bytes()))


def registry(folder: Path, version: int, previous: P.Registry | None = None) -> P.Registry:
    token = (folder / "registry" / f"v{version}.jwt").read_text()
    return P.verify_registry(token, root_key=root_jwk(folder), now=NOW, previous=previous)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("inputs")
    xiamen_ring, xiamen_jwks = member_jwks(100, folder, "xiamen")
    fuzhou_ring, fuzhou_jwks = member_jwks(200, folder, "fuzhou")
    local_scale = folder / "egret.json"
    local_scale.write_text(json.dumps({"name": "egret", "min": 0, "max": 1000, "step": 1}))
    return {
        "folder": folder,
        "xiamen_ring": xiamen_ring,
        "xiamen_jwks": xiamen_jwks,
        "fuzhou_ring": fuzhou_ring,
        "fuzhou_jwks": fuzhou_jwks,
        "local_scale": local_scale,
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Any]) -> Path:
    """An alliance with Xiamen and Fuzhou admitted, nothing published."""
    folder = tmp_path_factory.mktemp("base") / "alliance"
    ok(ccx(folder, "init", "--id", ALLIANCE, "--dir", folder))
    ok(
        ccx(
            folder,
            "admit",
            "--member-id",
            XIAMEN,
            "--name",
            "Xiamen",
            "--city",
            "xiamen",
            "--jwks",
            inputs["xiamen_jwks"],
            "--local-scale",
            inputs["local_scale"],
        )
    )
    ok(
        ccx(
            folder,
            "admit",
            "--member-id",
            FUZHOU,
            "--name",
            "Fuzhou",
            "--city",
            "fuzhou",
            "--jwks",
            inputs["fuzhou_jwks"],
        )
    )
    return folder


@pytest.fixture(scope="module")
def root_private(base: Path) -> P.PrivateKey:
    ring = Keyring.load((base / "root.keyring.json").read_bytes(), PASSPHRASE.encode())
    return ring.active.private_key


@pytest.fixture
def alliance(base: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "alliance"
    shutil.copytree(base, folder)
    return folder


def signed_table(folder: Path, key: P.PrivateKey, city: str = "xiamen", **changes: Any) -> Path:
    claims = json.loads((TABLES / "xiamen.table.json").read_bytes())
    claims.update(city=city, **changes)
    token = MappingTable.from_claims(claims).sign(alliance=ALLIANCE, key=key, now=NOW)
    path = folder / f"{city}-{claims['version']}.table.jwt"
    path.write_text(token)
    return path


# --- init ----------------------------------------------------------------------------------


def test_init_writes_the_keyring_private_and_the_root_public_key(base: Path) -> None:
    keyring = base / "root.keyring.json"
    assert keyring.stat().st_mode & 0o777 == 0o600
    jwk = json.loads((base / "root.jwk").read_bytes())
    assert "d" not in jwk
    assert jwk["kid"] == P.jwk_thumbprint(jwk)
    state = json.loads((base / "alliance.json").read_bytes())
    assert state["id"] == ALLIANCE
    assert state["root_kid"] == jwk["kid"]
    assert state["scale"] == AllianceScale().to_json()


def test_init_prints_the_root_kid(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    result = ok(ccx(folder, "init", "--id", ALLIANCE, "--dir", folder))
    assert json.loads((folder / "root.jwk").read_bytes())["kid"] in result.stdout


def test_init_refuses_an_existing_alliance(alliance: Path) -> None:
    before = snapshot(alliance)
    result = ccx(alliance, "init", "--id", ALLIANCE, "--dir", alliance)
    assert_one_line_error(result, "alliance_exists", "--dir")
    assert snapshot(alliance) == before


def test_init_refuses_a_short_passphrase_and_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    result = ccx(folder, "init", "--id", ALLIANCE, "--dir", folder, env={PASSPHRASE_ENV: "short"})
    assert_one_line_error(result, "keyring_error", PASSPHRASE_ENV)
    assert not folder.exists()


def test_init_refuses_an_id_that_is_not_a_url(tmp_path: Path) -> None:
    result = ccx(tmp_path, "init", "--id", "alliance", "--dir", tmp_path / "a")
    assert_one_line_error(result, "invalid_url", "--id")


# --- publish and verify --------------------------------------------------------------------


def test_publish_v1_then_v2_verify_chained(alliance: Path, inputs: dict[str, Any]) -> None:
    result = ok(ccx(alliance, "publish"))
    v1 = registry(alliance, 1)
    assert v1.sha256 in result.stdout
    assert v1.version == 1
    assert v1.prev is None
    assert v1.alliance == ALLIANCE
    assert set(v1.members) == {XIAMEN, FUZHOU}
    assert v1.members[XIAMEN].raw["local_scale"]["name"] == "egret"
    assert dict(v1.policy) == DEFAULT_POLICY
    assert dict(v1.scale) == AllianceScale().to_json()
    kid = inputs["xiamen_ring"].active.kid
    key = v1.resolve_issuer_key(XIAMEN, kid, "ES256", now=NOW)
    assert P.public_jwk(key) == P.public_jwk(inputs["xiamen_ring"].active.public_key)

    ok(ccx(alliance, "suspend", "--member-id", FUZHOU))
    ok(ccx(alliance, "publish", "--lifetime", "7d"))
    v2 = registry(alliance, 2, previous=v1)
    assert v2.prev == v1.sha256
    assert v2.expires_at - v2.issued_at == 7 * 86400
    assert (alliance / "registry" / "current.jwt").read_text() == v2.token
    state = json.loads((alliance / "alliance.json").read_bytes())
    assert [v["sha256"] for v in state["published"]] == [v1.sha256, v2.sha256]


def test_suspended_member_is_refused_by_the_registry(
    alliance: Path, inputs: dict[str, Any]
) -> None:
    ok(ccx(alliance, "suspend", "--member-id", XIAMEN))
    ok(ccx(alliance, "publish"))
    published = registry(alliance, 1)
    kid = inputs["xiamen_ring"].active.kid
    with pytest.raises(P.IssuerSuspended):
        published.resolve_issuer_key(XIAMEN, kid, "ES256", now=NOW)
    ok(ccx(alliance, "reinstate", "--member-id", XIAMEN))
    ok(ccx(alliance, "publish"))
    again = registry(alliance, 2, previous=published)
    again.resolve_issuer_key(XIAMEN, kid, "ES256", now=NOW)


def test_a_future_valid_from_is_kept(alliance: Path) -> None:
    ahead = NOW + 10 * 86400
    ok(ccx(alliance, "publish", "--valid-from", str(ahead), "--lifetime", "7d"))
    published = registry(alliance, 1)
    assert published.valid_from == ahead
    assert published.expires_at == ahead + 7 * 86400  # the lifetime runs from valid_from
    assert not published.in_effect(NOW)


def test_valid_from_as_an_iso_date(alliance: Path) -> None:
    ok(ccx(alliance, "publish", "--valid-from", "2030-01-02"))
    assert registry(alliance, 1).valid_from == 1893542400


def test_publish_refuses_a_wrong_passphrase_and_writes_nothing(alliance: Path) -> None:
    before = snapshot(alliance)
    result = ccx(alliance, "publish", env={PASSPHRASE_ENV: "not the passphrase at all"})
    assert_one_line_error(result, "wrong_passphrase", PASSPHRASE_ENV)
    assert snapshot(alliance) == before


@pytest.mark.parametrize(
    ("option", "value", "code"),
    [
        ("--lifetime", "7 days", "invalid_duration"),
        ("--lifetime", "0", "invalid_duration"),
        ("--valid-from", "next tuesday", "invalid_time"),
    ],
)
def test_publish_refuses_bad_times(alliance: Path, option: str, value: str, code: str) -> None:
    before = snapshot(alliance)
    assert_one_line_error(ccx(alliance, "publish", option, value), code, option)
    assert snapshot(alliance) == before


def test_publish_refuses_a_tampered_previous_version(alliance: Path) -> None:
    ok(ccx(alliance, "publish"))
    v1 = alliance / "registry" / "v1.jwt"
    v1.write_text(v1.read_text() + "x")
    before = snapshot(alliance)
    assert_one_line_error(ccx(alliance, "publish"), "state_mismatch", "--dir")
    assert snapshot(alliance) == before


def test_publish_refuses_a_root_jwk_that_is_not_the_alliance_key(alliance: Path) -> None:
    jwk = {**P.public_jwk(ec_key(999)), "alg": "ES256"}
    (alliance / "root.jwk").write_text(json.dumps(jwk))
    assert_one_line_error(ccx(alliance, "publish"), "key_mismatch", "--dir")
    assert not (alliance / "registry").exists()


# --- admit and keys ------------------------------------------------------------------------


def admit(folder: Path, jwks: Path | str, **overrides: str) -> Result:
    options = {"--member-id": "https://hz.ccx.example", "--name": "Hangzhou", "--city": "hangzhou"}
    options.update(overrides)
    argv = [part for pair in options.items() for part in pair]
    return ccx(folder, "admit", *argv, "--jwks", jwks)


def test_admit_refuses_a_private_jwk(alliance: Path, tmp_path: Path) -> None:
    jwk = {**P.public_jwk(ec_key(300)), "alg": "ES256"}
    jwk["kid"] = P.jwk_thumbprint(jwk)
    jwk["d"] = P.b64url_encode(ec_key(300).private_numbers().private_value.to_bytes(32, "big"))
    path = tmp_path / "leaky.jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    before = snapshot(alliance)
    assert_one_line_error(admit(alliance, path), "invalid_key", "--jwks keys[0]")
    assert snapshot(alliance) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kid": "not-the-thumbprint"}, "--jwks keys[0].kid"),
        ({"alg": "EdDSA"}, "--jwks keys[0].alg"),
        ({"alg": None}, "--jwks keys[0].alg"),
        ({"exp": "soon"}, "--jwks keys[0].exp"),
        ({"x5c": ["..."]}, "--jwks keys[0].x5c"),
    ],
)
def test_admit_refuses_a_bad_key(
    alliance: Path, tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    jwk = {**P.public_jwk(ec_key(301)), "alg": "ES256"}
    jwk["kid"] = P.jwk_thumbprint(jwk)
    jwk.update(change)
    jwk = {k: v for k, v in jwk.items() if v is not None}
    path = tmp_path / "bad.jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    assert_one_line_error(admit(alliance, path), "invalid_key", field)


def test_admit_an_ed25519_member(alliance: Path, tmp_path: Path) -> None:
    seeds = iter(range(7, 10))
    ring = Keyring.create(now=NOW, alg="EdDSA", generate=lambda alg: ed_key(next(seeds)))
    path = tmp_path / "ed.jwks.json"
    path.write_text(json.dumps({"keys": [ring.active.public_jwk()]}))
    ok(admit(alliance, path))
    ok(ccx(alliance, "publish"))
    published = registry(alliance, 1)
    published.resolve_issuer_key("https://hz.ccx.example", ring.active.kid, "EdDSA", now=NOW)


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"--member-id": XIAMEN}, "duplicate_member", "--member-id"),
        ({"--city": "xiamen"}, "duplicate_member", "--city"),
        ({"--member-id": "hangzhou"}, "invalid_url", "--member-id"),
        ({"--city": "Hang Zhou"}, "invalid_value", "--city"),
        ({"--name": " "}, "invalid_value", "--name"),
    ],
)
def test_admit_refuses_bad_members(
    alliance: Path, tmp_path: Path, overrides: dict[str, str], code: str, field: str
) -> None:
    _, path = member_jwks(400, tmp_path, "hz")
    before = snapshot(alliance)
    assert_one_line_error(admit(alliance, path, **overrides), code, field)
    assert snapshot(alliance) == before


def test_admit_refuses_a_key_of_another_member(alliance: Path, inputs: dict[str, Any]) -> None:
    assert_one_line_error(admit(alliance, inputs["xiamen_jwks"]), "duplicate_key", "--jwks")


@pytest.mark.parametrize(
    ("content", "code", "field"),
    [
        (None, "file_not_found", "--jwks"),
        (b"{not json", "invalid_json", "--jwks"),
        (b'{"keys": []}', "invalid_jwks", "--jwks"),
        (b'[{"kty": "EC"}]', "invalid_jwks", "--jwks"),
    ],
)
def test_admit_refuses_bad_jwks_files(
    alliance: Path, tmp_path: Path, content: bytes | None, code: str, field: str
) -> None:
    path = tmp_path / "jwks.json"
    if content is not None:
        path.write_bytes(content)
    assert_one_line_error(admit(alliance, path), code, field)


def test_admit_refuses_a_bad_local_scale(alliance: Path, tmp_path: Path) -> None:
    _, path = member_jwks(400, tmp_path, "hz")
    scale = tmp_path / "scale.json"
    scale.write_text(json.dumps({"name": "qj", "min": 10, "max": 5}))
    result = ccx(
        alliance, "admit", "--member-id", "https://hz.ccx.example", "--name", "Hangzhou",
        "--city", "hangzhou", "--jwks", path, "--local-scale", scale,
    )  # fmt: skip
    assert_one_line_error(result, "invalid_mapping_input", "--local-scale local_scale.max")


class _JwksHandler(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path != "/.well-known/jwks.json":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_server(tmp_path: Path) -> Iterator[tuple[str, Keyring]]:
    seeds = iter(range(500, 510))
    ring = Keyring.create(now=NOW, generate=lambda alg: ec_key(next(seeds)))
    handler = type("Handler", (_JwksHandler,), {"body": json.dumps(ring.jwks(NOW)).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", ring
    finally:
        server.shutdown()
        server.server_close()


def test_admit_fetches_the_jwks_from_the_node(
    alliance: Path, jwks_server: tuple[str, Keyring]
) -> None:
    url, ring = jwks_server
    ok(admit(alliance, f"{url}/.well-known/jwks.json", **{"--member-id": url}))
    state = json.loads((alliance / "alliance.json").read_bytes())
    member = next(m for m in state["members"] if m["id"] == url)
    assert member["jwks"] == ring.jwks(NOW)


def test_admit_reports_a_jwks_url_that_answers_404(
    alliance: Path, jwks_server: tuple[str, Keyring]
) -> None:
    url, _ = jwks_server
    assert_one_line_error(admit(alliance, f"{url}/nothing"), "fetch_failed", "--jwks")


def test_admit_reports_an_unreachable_jwks_url(alliance: Path) -> None:
    result = admit(alliance, "http://127.0.0.1:9/.well-known/jwks.json")
    assert_one_line_error(result, "fetch_failed", "--jwks")


def test_keys_rotation_keeps_the_retired_key_until_it_expires(
    alliance: Path, inputs: dict[str, Any], tmp_path: Path
) -> None:
    seeds = iter(range(600, 610))
    now = NOW
    rotated = inputs["xiamen_ring"].rotate(now=now, generate=lambda alg: ec_key(next(seeds)))
    path = tmp_path / "rotated.jwks.json"
    path.write_text(json.dumps(rotated.jwks(now)))
    ok(ccx(alliance, "keys", "--member-id", XIAMEN, "--jwks", path))
    ok(ccx(alliance, "publish"))
    published = registry(alliance, 1)
    retired = inputs["xiamen_ring"].active.kid
    assert published.members[XIAMEN].keys[retired].expires_at is not None
    published.resolve_issuer_key(XIAMEN, rotated.active.kid, "ES256", now=now)
    published.resolve_issuer_key(XIAMEN, retired, "ES256", now=now)

    # Dropping the retired key before it expires would break attestations it signed.
    only_new = tmp_path / "only-new.jwks.json"
    only_new.write_text(json.dumps({"keys": [rotated.active.public_jwk()]}))
    result = ccx(alliance, "keys", "--member-id", XIAMEN, "--jwks", only_new)
    assert_one_line_error(result, "key_still_valid", "--jwks")
    ok(ccx(alliance, "keys", "--member-id", XIAMEN, "--jwks", only_new, "--allow-drop"))


def test_unknown_member_is_named(alliance: Path, inputs: dict[str, Any]) -> None:
    for args in (
        ("suspend", "--member-id", "https://nobody.example"),
        ("reinstate", "--member-id", "https://nobody.example"),
        ("keys", "--member-id", "https://nobody.example", "--jwks", inputs["xiamen_jwks"]),
    ):
        assert_one_line_error(ccx(alliance, *args), "unknown_member", "--member-id")


def test_commands_on_a_folder_without_alliance(tmp_path: Path) -> None:
    assert_one_line_error(ccx(tmp_path, "show"), "no_alliance", "--dir")


# --- tables --------------------------------------------------------------------------------


def test_table_is_attached_and_published(
    alliance: Path, root_private: P.PrivateKey, tmp_path: Path
) -> None:
    path = signed_table(tmp_path, root_private)
    uri = "https://alliance.ccx.example/tables/xiamen.v1.table.jwt"
    ok(ccx(alliance, "table", "--file", path, "--uri", uri))
    ok(ccx(alliance, "publish"))
    claims = P.verify_mapping_table(path.read_text(), key=root_jwk(alliance))
    [entry] = registry(alliance, 1).mapping_tables
    assert entry == {
        "city": "xiamen",
        "version": 1,
        "sha256": P.mapping_table_hash(claims),
        "valid_from": claims["valid_from"],
        "valid_to": claims["valid_to"],
        "uri": uri,
    }
    assert (alliance / "tables" / "xiamen.v1.table.jwt").read_text().strip() == path.read_text()

    newer = signed_table(tmp_path, root_private, version=2, valid_from=NOW - 86400)
    ok(ccx(alliance, "table", "--file", newer, "--uri", uri.replace("v1", "v2")))
    state = json.loads((alliance / "alliance.json").read_bytes())
    # v1 stays listed: attestations made with it are alive until 36 days after v2 starts
    # (the commands act at NOW, a day after v2's valid_from)
    assert [(t["city"], t["version"]) for t in state["mapping_tables"]] == [
        ("xiamen", 1),
        ("xiamen", 2),
    ]
    assert_one_line_error(
        ccx(alliance, "table", "--file", path, "--uri", uri), "stale_table", "--file"
    )


def test_table_past_its_retention_leaves_at_the_next_attach(
    alliance: Path, root_private: P.PrivateKey, tmp_path: Path
) -> None:
    uri = "https://alliance.ccx.example/tables/xiamen.v{}.table.jwt"
    ok(
        ccx(
            alliance,
            "table",
            "--file",
            signed_table(tmp_path, root_private),
            "--uri",
            uri.format(1),
        )
    )
    newer = signed_table(tmp_path, root_private, version=2, valid_from=NOW)
    # 35 days of attestation life and a day's margin after v2 began: v1 can serve no one
    later = str(NOW + 37 * 86400)
    ok(ccx(alliance, "table", "--file", newer, "--uri", uri.format(2), "--now", later))
    state = json.loads((alliance / "alliance.json").read_bytes())
    assert [(t["city"], t["version"]) for t in state["mapping_tables"]] == [("xiamen", 2)]


def test_now_that_is_not_a_time_is_named(alliance: Path) -> None:
    assert_one_line_error(ccx(alliance, "publish", "--now", "soon"), "invalid_time", "--now")


def test_table_signed_by_another_key_is_refused(alliance: Path, tmp_path: Path) -> None:
    path = signed_table(tmp_path, ec_key(777))
    before = snapshot(alliance)
    result = ccx(alliance, "table", "--file", path, "--uri", "https://a.example/t.jwt")
    assert_one_line_error(result, "unknown_kid", "--file")
    assert snapshot(alliance) == before


def test_table_for_a_city_without_member_is_refused(
    alliance: Path, root_private: P.PrivateKey, tmp_path: Path
) -> None:
    path = signed_table(tmp_path, root_private, city="wuhan")
    result = ccx(alliance, "table", "--file", path, "--uri", "https://a.example/t.jwt")
    assert_one_line_error(result, "unknown_city", "--file")


def test_table_for_another_scale_is_refused(
    alliance: Path, root_private: P.PrivateKey, tmp_path: Path
) -> None:
    path = signed_table(tmp_path, root_private, scale_sha256="0" * 64)
    result = ccx(alliance, "table", "--file", path, "--uri", "https://a.example/t.jwt")
    assert_one_line_error(result, "invalid_mapping_input", "--file scale_sha256")


def test_table_needs_a_url(alliance: Path, root_private: P.PrivateKey, tmp_path: Path) -> None:
    path = signed_table(tmp_path, root_private)
    result = ccx(alliance, "table", "--file", path, "--uri", "tables/xiamen.jwt")
    assert_one_line_error(result, "invalid_url", "--uri")


# --- scale and policy ----------------------------------------------------------------------


def test_scale_change_needs_drop_tables_when_tables_exist(
    alliance: Path, root_private: P.PrivateKey, tmp_path: Path
) -> None:
    path = signed_table(tmp_path, root_private)
    ok(ccx(alliance, "table", "--file", path, "--uri", "https://a.example/x.jwt"))
    other = AllianceScale(mean=620).to_json()
    scale_file = tmp_path / "scale.json"
    scale_file.write_text(json.dumps(other))
    assert_one_line_error(
        ccx(alliance, "scale", "--file", scale_file), "tables_for_old_scale", "--file"
    )
    ok(ccx(alliance, "scale", "--file", scale_file, "--drop-tables"))
    ok(ccx(alliance, "publish"))
    published = registry(alliance, 1)
    assert dict(published.scale) == other
    assert published.mapping_tables == ()


def test_scale_refuses_a_bad_file(alliance: Path, tmp_path: Path) -> None:
    scale_file = tmp_path / "scale.json"
    scale_file.write_text(json.dumps({**AllianceScale().to_json(), "thresholds": [700, 600]}))
    result = ccx(alliance, "scale", "--file", scale_file)
    assert_one_line_error(result, "invalid_mapping_input", "--file scale.thresholds")


def write_policy(folder: Path, **changes: Any) -> Path:
    policy = json.loads(json.dumps(DEFAULT_POLICY))
    for name, value in changes.items():
        if value is None:
            policy.pop(name)
        else:
            policy[name] = value
    path = folder / "policy.json"
    path.write_text(json.dumps(policy))
    return path


def test_policy_is_published(alliance: Path, tmp_path: Path) -> None:
    scenarios = {kind: {"min_alliance_score": None} for kind in REQUIRED_SCENARIOS}
    scenarios["library_deposit_free"] = {"min_alliance_score": 700}
    scenarios["museum_audio_guide_free"] = {"min_alliance_score": 550}
    path = write_policy(tmp_path, scenarios=scenarios, max_attestation_age=7 * 86400)
    ok(ccx(alliance, "policy", "--file", path))
    ok(ccx(alliance, "publish"))
    policy = registry(alliance, 1).policy
    assert policy["max_attestation_age"] == 7 * 86400
    assert policy["scenarios"]["library_deposit_free"] == {"min_alliance_score": 700}
    assert policy["scenarios"]["museum_audio_guide_free"] == {"min_alliance_score": 550}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_attestation_age": None}, "--file.max_attestation_age"),
        ({"max_attestation_age": 0}, "--file.max_attestation_age"),
        ({"max_attestation_age": 40 * 86400}, "--file.max_attestation_age"),
        ({"max_attestation_age": "30d"}, "--file.max_attestation_age"),
        ({"status_stale_limit": -1}, "--file.status_stale_limit"),
        ({"status_stale_limit": True}, "--file.status_stale_limit"),
        ({"grace": 5}, "--file.grace"),
        ({"scenarios": []}, "--file.scenarios"),
        (
            {"scenarios": {"library_deposit_free": {"min_alliance_score": 600}}},
            "--file.scenarios.roadside_parking_pay_later",
        ),
        (
            {"scenarios": {**DEFAULT_POLICY["scenarios"], "bike_deposit_free": {}}},
            "--file.scenarios.bike_deposit_free.min_alliance_score",
        ),
        (
            {
                "scenarios": {
                    **DEFAULT_POLICY["scenarios"],
                    "bike_deposit_free": {"min_alliance_score": 640},
                }
            },
            "--file.scenarios.bike_deposit_free.min_alliance_score",
        ),
        (
            {
                "scenarios": {
                    **DEFAULT_POLICY["scenarios"],
                    "bike_deposit_free": {"min_alliance_score": 600, "max": 1},
                }
            },
            "--file.scenarios.bike_deposit_free.max",
        ),
        (
            {"scenarios": {**DEFAULT_POLICY["scenarios"], "Bad Kind": {"min_alliance_score": 600}}},
            "--file.scenarios.Bad Kind",
        ),
    ],
)
def test_policy_refuses_bad_fields(
    alliance: Path, tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    path = write_policy(tmp_path, **changes)
    before = snapshot(alliance)
    assert_one_line_error(ccx(alliance, "policy", "--file", path), "invalid_policy", field)
    assert snapshot(alliance) == before


def test_policy_refuses_duplicate_json_keys(alliance: Path, tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"max_attestation_age": 1, "max_attestation_age": 2}')
    assert_one_line_error(ccx(alliance, "policy", "--file", path), "invalid_json", "--file")


# --- show and help -------------------------------------------------------------------------


def test_show_says_whether_the_working_state_was_published(
    alliance: Path, inputs: dict[str, Any]
) -> None:
    result = ok(ccx(alliance, "show"))
    assert "Published: nothing yet" in result.stdout
    assert inputs["xiamen_ring"].active.kid in result.stdout
    assert "Policy (default)" in result.stdout
    ok(ccx(alliance, "publish"))
    assert "the working state matches it" in ok(ccx(alliance, "show")).stdout
    ok(ccx(alliance, "suspend", "--member-id", FUZHOU))
    shown = ok(ccx(alliance, "show")).stdout
    assert "differs" in shown
    assert "suspended" in shown


@pytest.mark.parametrize(
    "command",
    [
        None,
        "init",
        "admit",
        "suspend",
        "reinstate",
        "keys",
        "scale",
        "table",
        "policy",
        "publish",
        "show",
    ],
)
def test_every_command_has_help(command: str | None) -> None:
    argv = [command, "--help"] if command else ["--help"]
    result = CliRunner().invoke(alliance_app, argv)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout


def test_an_older_table_stays_listed_while_its_attestations_may_live() -> None:
    from alliance.state import retained_tables

    day = 86400
    v1 = {"city": "xiamen", "version": 1, "valid_from": 0, "valid_to": 400 * day}
    v2 = {"city": "xiamen", "version": 2, "valid_from": 100 * day, "valid_to": 500 * day}
    fz = {"city": "fuzhou", "version": 1, "valid_from": 0, "valid_to": 10 * day}
    entries = [v1, v2, fz]
    # v1 stopped being used when v2 began (day 100); attestations live 35 days at most
    assert [(e["city"], e["version"]) for e in retained_tables(entries, now=136 * day)] == [
        ("xiamen", 1),
        ("xiamen", 2),
        ("fuzhou", 1),
    ]
    assert [(e["city"], e["version"]) for e in retained_tables(entries, now=137 * day)] == [
        ("xiamen", 2),
        ("fuzhou", 1),  # a city's newest is kept even past its validity: nodes then refuse it
    ]


# --- the credential types a member issues (issue 18) -----------------------------------------


def test_a_member_admitted_with_credential_types_lists_them(alliance: Path, tmp_path: Path) -> None:
    _, path = member_jwks(500, tmp_path, "hz")
    ok(ccx(alliance, "admit", "--member-id", "https://hz.ccx.example", "--name", "Hangzhou",
           "--city", "hangzhou", "--jwks", path, "--credential", "domestic_service",
           "--credential", "credit_standing"))  # fmt: skip
    ok(ccx(alliance, "publish"))
    members = registry(alliance, 1).members
    assert members["https://hz.ccx.example"].credentials == ("credit_standing", "domestic_service")
    assert members[XIAMEN].credentials == ("credit_standing",)  # none listed: credit alone
    assert "credentials" not in members[XIAMEN].raw
    assert not members[XIAMEN].issues("domestic_service")


def test_the_credentials_command_changes_them(alliance: Path) -> None:
    result = ccx(alliance, "credentials", "--member-id", XIAMEN, "--credential", "domestic_service")
    ok(result)
    assert "issues domestic_service" in result.output
    ok(ccx(alliance, "publish"))
    assert registry(alliance, 1).members[XIAMEN].credentials == ("domestic_service",)


@pytest.mark.parametrize("args", [(), ("--credential", "pet_sitting")])
def test_the_credentials_command_refuses_unknown_or_no_types(
    alliance: Path, args: tuple[str, ...]
) -> None:
    before = snapshot(alliance)
    result = ccx(alliance, "credentials", "--member-id", XIAMEN, *args)
    assert_one_line_error(result, "invalid_value", "--credential")
    assert snapshot(alliance) == before
