"""The wallet as an OpenID4VCI 1.0 client (issue 14): it takes a ccx node's credential
offer by the pre-authorized code grant, with a DPoP-bound token, and keeps the credential;
the command `ccx wallet accept-offer` over real HTTP; and by the authorization code grant,
`ccx wallet authorize`, with the browser's way back on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

import protocol as P
from cli import InputError
from node.app import create_app, initialize_node
from node.models import AuditEntry
from node.settings import Settings
from tests.cli_results import assert_one_line_error, ok
from tests.conftest import NOW, ec_key, ed_key
from tests.node.conftest import Clock
from tests.node.issuing_helpers import bearer, jwks_resolver, seed_resident, session
from tests.node.servers import RunningNode, free_port
from wallet import (
    LoopbackRedirect,
    accept_offer,
    authorize,
    dev_login,
    disclosed_claims,
    parse_offer,
)
from wallet.cli import NOW_ENV, PASSPHRASE_ENV, WALLET_ENV, wallet_app

ISSUER = "http://xiamen.ccx.test"
PASSPHRASE = "a wallet passphrase for tests"


@pytest.fixture
def node(make_client: Any) -> TestClient:
    client: TestClient = make_client()
    seed_resident(client)
    return client


def new_offer(node: TestClient, *, cross_device: bool = False) -> dict[str, Any]:
    made = node.post(
        "/v1/me/credential-offers", json={"cross_device": cross_device}, headers=bearer(node)
    )
    assert made.status_code == 201, made.text
    answer: dict[str, Any] = made.json()
    return answer


@pytest.mark.parametrize("holder", [ec_key(70), ed_key(70)], ids=["ES256", "EdDSA"])
def test_the_wallet_takes_an_offer_and_gets_a_credential_bound_to_its_key(
    node: TestClient, holder: Any
) -> None:
    credential = accept_offer(new_offer(node)["offer"], holder_key=holder, now=NOW, client=node)
    claims = json.loads(P.b64url_decode(credential.split(".")[1]))
    assert claims["iss"] == ISSUER
    assert claims["cnf"]["jwk"] == P.public_jwk(holder)
    assert disclosed_claims(credential)["band"] == "good"
    presentation = P.present(
        credential,
        disclose=["band"],
        holder_key=holder,
        aud="https://v.example",
        nonce="n",
        now=NOW,
    )
    verified = P.verify_presentation(
        presentation,
        resolve_issuer_key=jwks_resolver(node.get("/.well-known/jwks.json").json(), ISSUER),
        aud="https://v.example",
        nonce="n",
        now=NOW,
    )
    assert verified.disclosed == {"band": "good"}
    with session(node) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.action == "attestation.issued")).one()
    assert entry.details["flow"] == "openid4vci"


def test_a_cross_device_offer_takes_its_transaction_code(node: TestClient) -> None:
    made = new_offer(node, cross_device=True)
    asked: list[dict[str, Any]] = []

    def ask(description: dict[str, Any]) -> str:
        asked.append(description)
        return str(made["tx_code"])

    accept_offer(made["offer"], holder_key=ec_key(71), now=NOW, client=node, ask_tx_code=ask)
    assert asked[0]["length"] == 6
    with pytest.raises(InputError) as refused:
        accept_offer(new_offer(node, cross_device=True)["offer"], holder_key=ec_key(71), now=NOW,
                     client=node)  # fmt: skip
    assert refused.value.code == "tx_code_required"


def test_a_wrong_transaction_code_is_the_issuers_own_error(node: TestClient) -> None:
    made = new_offer(node, cross_device=True)
    wrong = "000000" if made["tx_code"] != "000000" else "111111"
    with pytest.raises(InputError) as refused:
        accept_offer(made["offer"], holder_key=ec_key(72), now=NOW, client=node, tx_code=wrong)
    assert refused.value.code == "invalid_grant"


def test_an_offer_taken_once_is_gone(node: TestClient) -> None:
    made = new_offer(node)
    accept_offer(made["offer"], holder_key=ec_key(73), now=NOW, client=node)
    with pytest.raises(InputError) as refused:
        accept_offer(made["offer"], holder_key=ec_key(73), now=NOW, client=node)
    assert refused.value.code == "offer_not_found"


def test_an_offer_by_value_and_by_its_url(node: TestClient) -> None:
    by_url = parse_offer(new_offer(node)["credential_offer_uri"], node)
    by_value = parse_offer(
        "openid-credential-offer://?credential_offer=" + quote(json.dumps(dict(by_url))), node
    )
    assert by_value == by_url
    assert by_value.issuer == ISSUER


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("haip-vci://?x=1", "invalid_offer"),
        ("openid-credential-offer://?nothing=1", "invalid_offer"),
        ("openid-credential-offer://?credential_offer=%7Bnot-json", "invalid_offer"),
        ('openid-credential-offer://?credential_offer={"grants":{}}', "invalid_offer"),
    ],
    ids=["another_scheme", "no_offer", "offer_not_json", "offer_without_issuer"],
)
def test_a_link_that_is_no_offer_is_refused(node: TestClient, text: str, code: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_offer(text, node)
    assert refused.value.code == code


def test_metadata_naming_another_issuer_is_refused(node: TestClient) -> None:
    offer = {
        "credential_issuer": "http://evil.example",
        "credential_configuration_ids": ["ccx_credit_standing"],
        "grants": {
            "urn:ietf:params:oauth:grant-type:pre-authorized_code": {"pre-authorized_code": "c"}
        },
    }

    def answer(request: httpx.Request) -> httpx.Response:
        # the mix-up: metadata at the claimed issuer that names another (section 12.2.4)
        return httpx.Response(200, json={"credential_issuer": ISSUER})

    with (
        httpx.Client(transport=httpx.MockTransport(answer)) as client,
        pytest.raises(InputError) as refused,
    ):
        accept_offer(
            "openid-credential-offer://?credential_offer=" + quote(json.dumps(offer)),
            holder_key=ec_key(74), now=NOW, client=client,
        )  # fmt: skip
    assert refused.value.code == "invalid_metadata"


# --- the command, over real HTTP -------------------------------------------------------------


def test_ccx_wallet_accept_offer_keeps_the_credential(tmp_path: Path, node_settings: Settings,
                                                      clock: Clock) -> None:  # fmt: skip
    port = free_port()
    settings = node_settings.model_copy(update={"node_id": f"http://127.0.0.1:{port}"})
    initialize_node(settings, now=NOW)
    with RunningNode(create_app(settings, now=clock), port) as running:
        seed_resident(TestClient(running.app))
        made = httpx.post(
            f"{running.url}/v1/me/credential-offers",
            json={"cross_device": True},
            headers={"Authorization": "Bearer " + httpx.post(
                f"{running.url}/dev-idp/token", json={"subject": "resident-1"}
            ).json()["access_token"]},
        ).json()  # fmt: skip
        wallet = tmp_path / "wallet.json"
        env = {WALLET_ENV: str(wallet), PASSPHRASE_ENV: PASSPHRASE, NOW_ENV: str(NOW)}
        runner = CliRunner()
        ok(runner.invoke(wallet_app, ["keygen"], env=env))
        missing = runner.invoke(wallet_app, ["accept-offer", made["offer"]], env=env, input="\n")
        assert missing.exit_code == 2  # an empty answer at the prompt: no code
        made = httpx.post(
            f"{running.url}/v1/me/credential-offers",
            json={"cross_device": True},
            headers={"Authorization": "Bearer " + httpx.post(
                f"{running.url}/dev-idp/token", json={"subject": "resident-1"}
            ).json()["access_token"]},
        ).json()  # fmt: skip
        taken = ok(
            runner.invoke(
                wallet_app, ["accept-offer", made["offer"], "--tx-code", made["tx_code"]], env=env
            )
        )
        assert "attestation 1: http://127.0.0.1" in taken.stdout
        assert "band good" in taken.stdout
        listed = ok(runner.invoke(wallet_app, ["list"], env=env)).stdout
        assert f"127.0.0.1:{port}" in listed
        gone = runner.invoke(
            wallet_app, ["accept-offer", made["offer"], "--tx-code", made["tx_code"]], env=env
        )
        assert_one_line_error(gone, "offer_not_found", "OFFER")


# --- the authorization code grant ------------------------------------------------------------


def test_ccx_wallet_authorize_logs_in_at_the_city_and_keeps_the_credential(
    tmp_path: Path, node_settings: Settings, clock: Clock
) -> None:
    port = free_port()
    settings = node_settings.model_copy(update={"node_id": f"http://127.0.0.1:{port}"})
    initialize_node(settings, now=NOW)
    with RunningNode(create_app(settings, now=clock), port) as running:
        seed_resident(TestClient(running.app))
        env = {WALLET_ENV: str(tmp_path / "w.json"), PASSPHRASE_ENV: PASSPHRASE, NOW_ENV: str(NOW)}
        runner = CliRunner()
        ok(runner.invoke(wallet_app, ["keygen"], env=env))
        taken = ok(
            runner.invoke(
                wallet_app, ["authorize", running.url, "--dev-login", "resident-1"], env=env
            )
        )
        assert f"attestation 1: {running.url}, band good" in taken.stdout
        refused = runner.invoke(
            wallet_app, ["authorize", running.url, "--dev-login", "resident-without-consent"],
            env=env,
        )  # fmt: skip
        assert_one_line_error(refused, "access_denied", "OFFER")


def test_the_browser_comes_back_to_the_wallet_on_loopback(
    node: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 8252 section 7.3: the wallet listens on 127.0.0.1 for the browser's redirect;
    here the "browser" walks the dev login and then follows the redirect for real."""
    import threading
    import webbrowser

    opened: list[threading.Thread] = []

    def browser(url: str) -> bool:
        def walk() -> None:
            location = dev_login(node, "resident-1")(url)
            httpx.get(location, timeout=5)

        thread = threading.Thread(target=walk)
        thread.start()
        opened.append(thread)
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    loopback = LoopbackRedirect(timeout=20, say=lambda _: None)
    assert loopback.redirect_uri.startswith("http://127.0.0.1:")
    holder = ec_key(75)
    credential = authorize(
        ISSUER, holder_key=holder, now=NOW, log_in=loopback.log_in,
        redirect_uri=loopback.redirect_uri, client=node,
    )  # fmt: skip
    opened[0].join(5)
    assert disclosed_claims(credential)["band"] == "good"
