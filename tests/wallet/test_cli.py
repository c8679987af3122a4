"""`ccx wallet`: keygen, fetch, list, present and qr against a real node over real HTTP.

The node runs under uvicorn on a free loopback port in a background thread, on the
tests' fixed clock (NOW); the wallet is given the same clock through CCX_WALLET_NOW so
that its proof's iat is what the node expects.
"""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

import protocol as P
from node.app import create_app, initialize_node
from node.settings import Settings
from tests.cli_results import assert_one_line_error, ok
from tests.conftest import NOW
from tests.node.conftest import Clock
from tests.node.issuing_helpers import (
    BOTH_CONSENTS,
    RESIDENT,
    SCORE_GOOD,
    expected_standing,
    jwks_resolver,
    seed_resident,
)
from tests.node.servers import RunningNode
from wallet.cli import NOW_ENV, PASSPHRASE_ENV, WALLET_ENV, wallet_app

PASSPHRASE = "a wallet passphrase for tests"
VERIFIER = "https://fuzhou.ccx.example"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- a real node on a real port ----------------------------------------------------------------


class _AppAsClient:
    """What seed_resident needs of a TestClient: ``.app`` (it reads app.state.node)."""

    def __init__(self, app: Any) -> None:
        self.app = app


@pytest.fixture
def node(node_settings: Settings) -> Iterator[RunningNode]:
    initialize_node(node_settings, now=NOW)
    with RunningNode(create_app(node_settings, now=Clock())) as running:
        yield running


def seed(node: RunningNode, **kwargs: Any) -> None:
    seed_resident(_AppAsClient(node.app), **kwargs)  # type: ignore[arg-type]


def node_key_resolver(node: RunningNode) -> P.IssuerKeyResolver:
    """Trusts exactly the keys the node publishes (it stands in for the registry here)."""
    jwks = httpx.get(f"{node.url}/.well-known/jwks.json").json()
    return jwks_resolver(jwks, node.app.state.node.settings.node_id)


# --- running the wallet ------------------------------------------------------------------------


@pytest.fixture
def wallet(tmp_path: Path) -> Path:
    return tmp_path / "home" / ".ccx" / "wallet.json"


def run(wallet: Path, *args: str | Path, env: dict[str, str] | None = None) -> Result:
    environment = {WALLET_ENV: str(wallet), PASSPHRASE_ENV: PASSPHRASE, NOW_ENV: str(NOW)}
    return CliRunner().invoke(
        wallet_app, [str(a) for a in args], env={**environment, **(env or {})}
    )


def keygen_and_fetch(wallet: Path, node: RunningNode, *extra: str) -> None:
    ok(run(wallet, "keygen", *extra))
    ok(run(wallet, "fetch", "--node", node.url, "--dev-subject", RESIDENT))


def stored(wallet: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(wallet.read_text())
    return document


# --- keygen --------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_keygen_prints_the_thumbprint_of_the_stored_key(wallet: Path, alg: str) -> None:
    result = ok(run(wallet, "keygen", "--alg", alg))
    key = stored(wallet)["holder_key"]
    assert result.stdout.strip() == key["thumbprint"] == P.jwk_thumbprint(key["public_jwk"])
    assert key["alg"] == alg
    assert key["pem"].startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert PASSPHRASE not in wallet.read_text()


def test_keygen_refuses_to_overwrite_a_key(wallet: Path) -> None:
    ok(run(wallet, "keygen"))
    before = wallet.read_bytes()
    assert_one_line_error(run(wallet, "keygen"), "key_exists", "--wallet")
    assert wallet.read_bytes() == before
    forced = ok(run(wallet, "keygen", "--force"))
    assert forced.stdout.strip() == stored(wallet)["holder_key"]["thumbprint"]
    assert wallet.read_bytes() != before


def test_keygen_refuses_an_unknown_alg(wallet: Path) -> None:
    assert_one_line_error(run(wallet, "keygen", "--alg", "RS256"), "unsupported_alg", "--alg")
    assert not wallet.exists()


def test_keygen_refuses_a_short_passphrase(wallet: Path) -> None:
    result = run(wallet, "keygen", env={PASSPHRASE_ENV: "short"})
    assert_one_line_error(result, "weak_passphrase", PASSPHRASE_ENV)
    assert not wallet.exists()


def test_the_wallet_file_is_private(wallet: Path, node: RunningNode) -> None:
    seed(node)
    ok(run(wallet, "keygen"))
    assert stat.S_IMODE(wallet.stat().st_mode) == 0o600
    assert stat.S_IMODE(wallet.parent.stat().st_mode) == 0o700
    ok(run(wallet, "fetch", "--node", node.url, "--dev-subject", RESIDENT))
    assert stat.S_IMODE(wallet.stat().st_mode) == 0o600
    assert [p.name for p in wallet.parent.iterdir()] == ["wallet.json"]  # no temporary left


# --- fetch, list, present ------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_keygen_fetch_present_verifies_and_discloses_only_what_was_asked(
    wallet: Path, node: RunningNode, alg: str
) -> None:
    seed(node)
    keygen_and_fetch(wallet, node, "--alg", alg)
    held = stored(wallet)["attestations"]
    assert len(held) == 1
    assert held[0]["issuer"] == "http://xiamen.ccx.test"
    assert held[0]["band"] == "good"

    challenge = ("--aud", VERIFIER, "--nonce", "n-123")
    disclose = ("--disclose", "band", "--disclose", "score_at_least.650")
    result = ok(run(wallet, "present", *challenge, *disclose))
    presentation = result.stdout.strip()
    verified = P.verify_presentation(
        presentation,
        resolve_issuer_key=node_key_resolver(node),
        aud=VERIFIER,
        nonce="n-123",
        now=NOW,
    )
    alliance_score, band = expected_standing(SCORE_GOOD)
    assert verified.disclosed == {"band": band, "score_at_least": {"650": alliance_score >= 650}}
    assert verified.holder_jwk == stored(wallet)["holder_key"]["public_jwk"]


def test_present_writes_to_a_file(wallet: Path, node: RunningNode, tmp_path: Path) -> None:
    seed(node)
    keygen_and_fetch(wallet, node)
    out = tmp_path / "presentation.txt"
    result = ok(
        run(
            wallet, "present", "--aud", VERIFIER, "--nonce", "n", "--disclose", "band", "--out", out
        )
    )
    assert result.stdout == ""
    verified = P.verify_presentation(
        out.read_text().strip(),
        resolve_issuer_key=node_key_resolver(node),
        aud=VERIFIER,
        nonce="n",
        now=NOW,
    )
    assert verified.disclosed == {"band": "good"}


def test_present_refuses_an_unknown_claim(wallet: Path, node: RunningNode) -> None:
    seed(node)
    keygen_and_fetch(wallet, node)
    result = run(wallet, "present", "--aud", VERIFIER, "--nonce", "n", "--disclose", "name")
    assert_one_line_error(result, "disclosure_not_found", "--disclose")


def test_present_with_a_wrong_passphrase(wallet: Path, node: RunningNode) -> None:
    seed(node)
    keygen_and_fetch(wallet, node)
    result = run(
        wallet, "present", "--aud", VERIFIER, "--nonce", "n", "--disclose", "band",
        env={PASSPHRASE_ENV: "not the passphrase at all"},
    )  # fmt: skip
    assert_one_line_error(result, "wrong_passphrase", PASSPHRASE_ENV)


def test_present_without_an_attestation(wallet: Path) -> None:
    ok(run(wallet, "keygen"))
    result = run(wallet, "present", "--aud", VERIFIER, "--nonce", "n", "--disclose", "band")
    assert_one_line_error(result, "no_attestation", "--wallet")


def test_list_shows_issuer_band_expiry_and_state(wallet: Path, node: RunningNode) -> None:
    seed(node)
    keygen_and_fetch(wallet, node)
    expires_at = stored(wallet)["attestations"][0]["expires_at"]
    listing = ok(run(wallet, "list")).stdout
    assert "http://xiamen.ccx.test" in listing
    assert "good" in listing
    assert "valid" in listing
    later = ok(run(wallet, "list", env={NOW_ENV: str(expires_at)})).stdout
    assert "expired" in later
    result = run(
        wallet, "present", "--aud", VERIFIER, "--nonce", "n", "--disclose", "band",
        env={NOW_ENV: str(expires_at)},
    )  # fmt: skip
    assert_one_line_error(result, "attestation_expired", "--wallet")


def test_fetch_without_consents_leaves_the_wallet_unchanged(
    wallet: Path, node: RunningNode
) -> None:
    seed(node, consents=BOTH_CONSENTS[:1])
    ok(run(wallet, "keygen"))
    before = wallet.read_bytes()
    result = run(wallet, "fetch", "--node", node.url, "--dev-subject", RESIDENT)
    assert_one_line_error(result, "consent_required", "--node")
    assert "share_alliance" in result.stderr
    assert wallet.read_bytes() == before


def test_fetch_with_a_bad_token_is_the_nodes_error(wallet: Path, node: RunningNode) -> None:
    ok(run(wallet, "keygen"))
    result = run(wallet, "fetch", "--node", node.url, "--token", "not-a-token")
    assert_one_line_error(result, "unauthorized", "--node")


def test_fetch_from_an_unreachable_node(wallet: Path) -> None:
    ok(run(wallet, "keygen"))
    before = wallet.read_bytes()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run(wallet, "fetch", "--node", f"http://127.0.0.1:{port}", "--dev-subject", RESIDENT)
    assert_one_line_error(result, "node_unreachable", "--node")
    assert f"127.0.0.1:{port}" in result.stderr
    assert wallet.read_bytes() == before


def test_fetch_needs_a_key_and_one_login(wallet: Path, node: RunningNode) -> None:
    result = run(wallet, "fetch", "--node", node.url, "--dev-subject", RESIDENT)
    assert_one_line_error(result, "no_holder_key", "--wallet")
    ok(run(wallet, "keygen"))
    result = run(wallet, "fetch", "--node", node.url)
    assert_one_line_error(result, "missing_option", "--token")


# --- qr ------------------------------------------------------------------------------------


def test_qr_writes_a_png_and_an_svg(wallet: Path, node: RunningNode, tmp_path: Path) -> None:
    seed(node)
    keygen_and_fetch(wallet, node)
    selection = ("--aud", VERIFIER, "--nonce", "n", "--disclose", "score_at_least.650")
    png, svg = tmp_path / "p.png", tmp_path / "p.svg"
    result = ok(run(wallet, "qr", *selection, "--out", png))
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert "QR code version" in result.stderr
    ok(run(wallet, "qr", *selection, "--out", svg))
    assert b"<svg" in svg.read_bytes()


def test_qr_of_a_presentation_file_in_the_terminal(
    wallet: Path, node: RunningNode, tmp_path: Path
) -> None:
    seed(node)
    keygen_and_fetch(wallet, node)
    presentation = tmp_path / "presentation.txt"
    ok(run(wallet, "present", "--aud", VERIFIER, "--nonce", "n", "--disclose", "band", "--out", presentation))  # fmt: skip
    result = ok(run(wallet, "qr", "--presentation", presentation, "--terminal"))
    assert len(result.stdout.splitlines()) > 40  # a large code, drawn two rows a line
    assert "▀" in result.stdout or "█" in result.stdout


def test_qr_says_when_a_presentation_is_too_long(tmp_path: Path, wallet: Path) -> None:
    too_long = tmp_path / "long.txt"
    too_long.write_text("a.b.c~" + "d" * 3000 + "~e.f.g")
    result = run(wallet, "qr", "--presentation", too_long, "--out", tmp_path / "x.png")
    assert_one_line_error(result, "presentation_too_long", "--presentation")
    assert "3012 bytes" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_qr_refuses_other_image_formats(tmp_path: Path, wallet: Path) -> None:
    result = run(wallet, "qr", "--presentation", tmp_path / "p.txt", "--out", tmp_path / "x.jpg")
    assert_one_line_error(result, "unsupported_format", "--out")


# --- help ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["keygen"], ["fetch"], ["list"], ["present"], ["qr"]])
def test_help(command: list[str], wallet: Path) -> None:
    result = ok(run(wallet, *command, "--help"))
    assert "Usage" in result.stdout
    assert "--now" not in result.stdout
