"""Issue 20: the wallet's errors name the real cause, as a newcomer walking the story
met them: a node's URL with /v1, a mistyped wallet path, a URL that lost its slash, the
consent list said twice, and a node that is not the resident's home. Real nodes on
loopback (tests/node/servers.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.app import create_app, initialize_node
from node.settings import Settings
from tests.cli_results import assert_one_line_error, ok
from tests.conftest import NOW
from tests.node.conftest import Clock
from tests.node.issuing_helpers import BOTH_CONSENTS, RESIDENT
from tests.node.servers import RunningNode
from tests.wallet.test_cli import node, run, seed, wallet  # noqa: F401  (fixtures by name)


@pytest.fixture
def node_without_dev_idp(node_settings: Settings) -> Iterator[RunningNode]:
    settings = node_settings.model_copy(update={"dev_idp": False})
    initialize_node(settings, now=NOW)
    with RunningNode(create_app(settings, now=Clock())) as running:
        yield running


def _free_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- 1. the node's URL with /v1 is a wrong path, not a node without the dev IdP ------------


@pytest.mark.parametrize("suffix", ["/v1", "/v1/", "/api"])
def test_a_wrong_path_says_no_node_answers_there(
    wallet: Path,  # noqa: F811
    node: RunningNode,  # noqa: F811
    suffix: str,
) -> None:
    ok(run(wallet, "keygen"))
    result = run(wallet, "fetch", "--node", node.url + suffix, "--dev-subject", RESIDENT)
    assert_one_line_error(result, "not_a_node", "--node")
    assert f"no ccx node answers at {node.url}{suffix.rstrip('/')} " in result.stderr
    assert "development identity provider" not in result.stderr
    if suffix.startswith("/v1"):
        assert f"--node {node.url}\n" in result.stderr  # the URL to use instead


def test_a_wrong_path_with_a_token_says_so_too(
    wallet: Path,  # noqa: F811
    node: RunningNode,  # noqa: F811
) -> None:
    ok(run(wallet, "keygen"))
    result = run(wallet, "fetch", "--node", f"{node.url}/v1", "--token", "a-token")
    assert_one_line_error(result, "not_a_node", "--node")


def test_a_node_without_the_dev_idp_still_says_so(
    wallet: Path,  # noqa: F811
    node_without_dev_idp: RunningNode,
) -> None:
    ok(run(wallet, "keygen"))
    result = run(wallet, "fetch", "--node", node_without_dev_idp.url, "--dev-subject", RESIDENT)
    assert_one_line_error(result, "no_dev_idp", "--dev-subject")
    assert f"{node_without_dev_idp.url} has no development identity provider" in result.stderr


# --- 2. a wallet file named by --wallet must exist ------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["fetch", "--node", "http://127.0.0.1:9", "--dev-subject", RESIDENT],
        ["present", "--aud", "https://fuzhou.ccx.example", "--nonce", "n", "--disclose", "band"],
    ],
)
def test_a_missing_wallet_named_by_option_is_an_error(
    wallet: Path,  # noqa: F811
    tmp_path: Path,
    command: list[str],
) -> None:
    missing = tmp_path / "no" / "such" / "file"
    result = run(wallet, *command, "--wallet", missing)
    assert_one_line_error(result, "wallet_not_found", "--wallet")
    assert str(missing) in result.stderr
    assert not missing.exists()


def test_the_default_wallet_missing_says_make_one(wallet: Path) -> None:  # noqa: F811
    result = ok(run(wallet, "list"))
    assert result.stderr.strip() == f"no wallet yet at {wallet}: ccx wallet keygen"
    ok(run(wallet, "keygen"))
    assert ok(run(wallet, "list", "--wallet", wallet)).stderr.strip() == (
        f"no attestations in {wallet}"
    )


# --- 4. the URL in a message keeps its slash --------------------------------------------------


@pytest.mark.parametrize("slash", ["", "/"])
def test_an_unreachable_node_is_named_with_its_path(wallet: Path, slash: str) -> None:  # noqa: F811
    ok(run(wallet, "keygen"))
    port = _free_port()
    result = run(
        wallet, "fetch", "--node", f"http://127.0.0.1:{port}{slash}", "--dev-subject", RESIDENT
    )
    assert_one_line_error(result, "node_unreachable", "--node")
    assert f"cannot reach http://127.0.0.1:{port}/dev-idp/token:" in result.stderr


# --- 6. the missing consents said once ---------------------------------------------------------


@pytest.mark.parametrize("granted", [(), ("open_score",)], ids=["none", "open"])
def test_the_missing_consents_are_listed_once(
    wallet: Path,  # noqa: F811
    node: RunningNode,  # noqa: F811
    granted: tuple[str, ...],
) -> None:
    seed(node, consents=granted)
    ok(run(wallet, "keygen"))
    result = run(wallet, "fetch", "--node", node.url, "--dev-subject", RESIDENT)
    assert_one_line_error(result, "consent_required", "--node")
    for kind in BOTH_CONSENTS:
        assert result.stderr.count(kind) == (0 if kind in granted else 1), result.stderr


# --- 7. a node that knows nothing of her is probably not her home node -------------------------


def test_a_node_that_does_not_know_her_asks_whether_it_is_her_home(
    wallet: Path,  # noqa: F811
    node: RunningNode,  # noqa: F811
) -> None:
    ok(run(wallet, "keygen"))  # no record, no score, no consent on this node
    result = run(wallet, "fetch", "--node", node.url, "--dev-subject", "somebody-else")
    assert_one_line_error(result, "consent_required", "--node")
    assert "knows no score and no consent for somebody-else" in result.stderr
    assert "is it her home node?" in result.stderr


@pytest.mark.parametrize("suffix", ["/v1", "/no/such/path"])
def test_authorize_at_a_wrong_path_says_no_issuer_answers_there(
    wallet: Path,  # noqa: F811
    node: RunningNode,  # noqa: F811
    suffix: str,
) -> None:
    ok(run(wallet, "keygen"))
    result = run(wallet, "authorize", node.url + suffix, "--dev-login", RESIDENT)
    assert_one_line_error(result, "not_an_issuer", "ISSUER")
    assert f"no credential issuer answers at {node.url}{suffix} " in result.stderr
    if suffix == "/v1":
        assert f"without /v1: {node.url}\n" in result.stderr  # the identifier to use instead
