"""The kiosk of a service point (issue 16; node/web/kiosk), in a real Chromium at phone
and desktop size, against a Xiamen node and a Fuzhou visitor's home node on loopback
following one registry: signed in with the service point's token, it lists its
scenarios, shows a request as a QR code, and shows each decision as it arrives, in
Chinese and English together: granted (the visitor's ccx wallet reads the QR code off
the screen), declined (her wallet says no), unavailable (the network down); the day's
list holds them. The browser's clock is the world's (tests.conftest.NOW)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Response, Route, expect
from sqlmodel import Session
from typer.testing import CliRunner

import protocol as P
from node.app import create_app, initialize_node
from node.services import clients
from tests.cli_results import ok
from tests.conftest import NOW
from tests.node.oid4vp_helpers import ca_der, cli_wallet, two_cities
from tests.node.servers import RunningNode, WorldClock, free_port
from tests.node.test_verifications import _settings
from wallet._oid4vp import read_request
from wallet.cli import wallet_app

SCENARIO = "library_deposit_free"
OTHER = "bike_deposit_free"


@dataclass
class World:
    fuzhou: RunningNode
    xiamen: RunningNode
    token: str  # the service point's
    env: dict[str, str]  # the visitor's ccx wallet


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with two_cities(tmp_path, scopes=(SCENARIO, OTHER)) as cities:
        env = cli_wallet(cities.fuzhou, tmp_path)
        yield World(cities.fuzhou, cities.xiamen, cities.desk_token, env)


class Kiosk:
    """The kiosk's page, what its console said."""

    def __init__(self, browser: Browser, viewport: dict[str, Any], world: World) -> None:
        self.context = browser.new_context(viewport=viewport, timezone_id="Asia/Shanghai")  # type: ignore[arg-type]
        self.page: Page = self.context.new_page()
        self.page.clock.install(time=NOW)  # the world's time, running
        self.console: list[str] = []
        self.failed: list[str] = []  # the URLs the node refused
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.on("response", self._answered)
        self.page.on("pageerror", lambda error: self.console.append(str(error)))
        self.url = f"{world.xiamen.url}/kiosk/"

    def _answered(self, answer: Response) -> None:
        if not answer.ok:
            self.failed.append(answer.url)

    def sign_in(self, token: str) -> None:
        self.page.get_by_label("Service point credentials").fill(token)
        self.page.get_by_role("button", name="登录 Sign in").click()


@pytest.fixture
def kiosk(browser: Browser, viewport: dict[str, Any], world: World) -> Iterator[Kiosk]:
    opened = Kiosk(browser, viewport, world)
    opened.page.goto(opened.url)
    yield opened
    opened.context.close()


def decline(world: World, link: str) -> None:
    """The visitor's wallet says no (OpenID4VP section 8.5), encrypted as asked."""
    with httpx.Client() as http:
        asked = read_request(link, anchors=[ca_der()], now=NOW, client=http)
        claims = asked.request.claims
        [jwk] = claims["client_metadata"]["jwks"]["keys"]
        key = P.public_key_from_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y")})
        body = {"error": "access_denied", "state": claims["state"]}
        jwe = P.encrypt_ecdh_es(json.dumps(body).encode(), key, kid=jwk["kid"])  # type: ignore[arg-type]
        answer = http.post(claims["response_uri"], data={"response": jwe})
    assert answer.status_code == 200, answer.text


def no_horizontal_scroll(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_counter_grants_a_visitor_then_one_declines(
    kiosk: Kiosk, world: World, tmp_path: Path
) -> None:
    page = kiosk.page
    kiosk.sign_in("not-the-token")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("凭据无效或已被撤销")
    expect(alert).to_contain_text("unknown or revoked")
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('ccx-kiosk-token')") is None

    # by keyboard alone: the token, Enter; the first scenario has the focus
    page.get_by_label("Service point credentials").fill(world.token)
    page.keyboard.press("Enter")
    scenarios = page.locator("button.scenario")
    expect(scenarios).to_have_count(2)
    expect(scenarios.first).to_be_focused()
    expect(scenarios.first).to_contain_text("图书馆免押金借阅")
    expect(scenarios.first).to_contain_text("Deposit-free library borrowing")
    expect(page.locator("#day-empty")).to_be_visible()
    no_horizontal_scroll(page)

    # the first visitor: her wallet reads the code off the screen
    page.keyboard.press("Enter")
    qr = page.locator("#qr img.qr")
    expect(qr).to_be_visible()
    assert (qr.get_attribute("src") or "").startswith("data:image/")
    link = page.locator("#request-link").text_content() or ""
    assert link.startswith("openid4vp://?client_id=x509_hash%3A")
    web_wallet = f"{world.xiamen.url}/wallet/?request={quote(link, safe='')}"
    assert page.locator("#open-web-wallet").get_attribute("href") == web_wallet
    assert page.locator("#open-here").get_attribute("href") == link
    expect(page.locator("#countdown")).to_contain_text("s")
    no_horizontal_scroll(page)
    shot = tmp_path / "kiosk-qr.png"
    qr.screenshot(path=str(shot))
    answered = CliRunner().invoke(wallet_app, ["answer", "--qr", str(shot), "--yes"],
                                  env=world.env)  # fmt: skip
    ok(answered)

    outcome = page.locator("#outcome")
    expect(outcome).to_contain_text("准予", timeout=10_000)
    expect(outcome).to_contain_text("Granted")
    details = page.locator("#outcome-details")
    expect(details).to_contain_text("档次")
    expect(details).to_contain_text("Tier")
    expect(details).to_contain_text("fuzhou")
    expect(page.locator("#next-visitor")).to_be_focused()

    # the next visitor declines
    page.locator("#next-visitor").click()
    expect(page.locator("#request-link")).not_to_have_text(link)
    decline(world, page.locator("#request-link").text_content() or "")
    expect(outcome).to_contain_text("访客已拒绝", timeout=10_000)
    expect(outcome).to_contain_text("The visitor declined")
    next_step = page.locator("#next-step")
    expect(next_step).to_contain_text("访客未分享任何信息")
    expect(next_step).to_contain_text("Nothing was shared")

    rows = page.locator("#day-rows tr")
    expect(rows).to_have_count(2)
    assert rows.nth(0).get_attribute("data-outcome") == "declined"
    assert rows.nth(1).get_attribute("data-outcome") == "granted"
    expect(rows.nth(1)).to_contain_text("准予 Granted")
    expect(rows.nth(1)).to_contain_text("Deposit-free library borrowing")
    no_horizontal_scroll(page)

    page.get_by_role("button", name="退出 Sign out").click()
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('ccx-kiosk-token')") is None
    # the browser logs each refusal; the wrong token's is the only one
    assert kiosk.failed == [f"{world.xiamen.url}/v1/service-point"]
    assert [line for line in kiosk.console if "Failed to load" not in line] == []


def test_the_network_down_is_unavailable_with_what_to_do(kiosk: Kiosk, world: World) -> None:
    page = kiosk.page
    kiosk.sign_in(world.token)
    expect(page.locator("button.scenario")).to_have_count(2)

    def down(route: Route) -> None:
        route.abort("internetdisconnected")

    page.route("**/v1/presentation-requests**", down)
    page.locator("button.scenario").first.click()
    outcome = page.locator("#outcome")
    expect(outcome).to_contain_text("暂不可用")
    expect(outcome).to_contain_text("Unavailable")
    expect(page.locator("#next-step")).to_contain_text("Check the network")

    # back up: the next visitor is served
    page.unroute("**/v1/presentation-requests**", down)
    page.locator("#next-visitor").click()
    expect(page.locator("#qr img.qr")).to_be_visible()

    # down while waiting: the page keeps trying, and the answer is not lost
    page.route("**/v1/presentation-requests/**", down)
    expect(page.locator("#waiting")).to_contain_text("The network is down, retrying")
    page.unroute("**/v1/presentation-requests/**", down)
    decline(world, page.locator("#request-link").text_content() or "")
    expect(outcome).to_contain_text("The visitor declined", timeout=10_000)


def test_a_domestic_service_decision_shows_the_claims_it_shows(kiosk: Kiosk, world: World) -> None:
    """Issue 18: an agency's decision on the domestic-service credential shows the claims
    its scenario shows (certified_since), in both languages. The node's answer is the
    one node/services/oid4vp.py makes, fulfilled here for the waiting page."""
    page = kiosk.page
    kiosk.sign_in(world.token)
    expect(page.locator("button.scenario")).to_have_count(2)
    page.locator("button.scenario").first.click()
    expect(page.locator("#qr img.qr")).to_be_visible()

    def answered(route: Route) -> None:
        route.fulfill(json={
            "scenario": "domestic_agency_hiring", "outcome": "granted", "tier": "recommended",
            "benefit": "Recommended placement", "benefit_zh": "优先推荐", "reasons": [],
            "issuer": world.fuzhou.url, "issuer_city": "fuzhou",
            "shown": {"certified_since": "2025-12-12"}, "audit_seq": 7,
        })  # fmt: skip

    page.route("**/v1/presentation-requests/**", answered)
    details = page.locator("#outcome-details")
    expect(details).to_contain_text("持证起始日期：2025-12-12", timeout=10_000)
    expect(details).to_contain_text("Certified since: 2025-12-12")
    page.unroute("**/v1/presentation-requests/**", answered)


def test_a_request_that_runs_out_asks_to_start_again(kiosk: Kiosk, world: World) -> None:
    page = kiosk.page
    kiosk.sign_in(world.token)
    page.locator("button.scenario").first.click()
    expect(page.locator("#countdown")).to_contain_text("120")
    page.clock.fast_forward(121_000)  # the browser's clock; the node's stands still
    outcome = page.locator("#outcome")
    expect(outcome).to_contain_text("请求已过期")
    expect(outcome).to_contain_text("The request expired")


def test_credentials_without_scenarios_say_so(kiosk: Kiosk, world: World) -> None:
    with Session(world.xiamen.app.state.node.engine) as db:
        _, bare = clients.create_client(db, client_id="bare-desk", department="culture",
                                        scopes=[], actor="admin", now=NOW)  # fmt: skip
    kiosk.sign_in(bare)
    expect(kiosk.page.get_by_role("alert")).to_contain_text("may verify no scenario")
    assert urlsplit(kiosk.page.url).path == "/kiosk/"


@pytest.fixture
def lonely(tmp_path: Path) -> Iterator[tuple[RunningNode, str]]:
    """A Xiamen node that follows no registry yet, whose service points may make three
    calls (its clock stands still: the bucket never refills)."""
    port = free_port()
    settings = _settings(tmp_path / "xm", port, "xiamen").model_copy(
        update={"verify_burst": 3, "verify_rate": 0.001}
    )
    initialize_node(settings, now=NOW)
    app = create_app(settings, now=WorldClock(NOW))
    with RunningNode(app, port) as xiamen:
        with Session(app.state.node.engine) as db:
            _, secret = clients.create_client(db, client_id="library-desk", department="culture",
                                              scopes=[f"verify:{SCENARIO}"], actor="admin",
                                              now=NOW)  # fmt: skip
        yield xiamen, secret


def test_a_node_that_cannot_decide_then_too_many_calls(
    browser: Browser, viewport: dict[str, Any], lonely: tuple[RunningNode, str]
) -> None:
    xiamen, secret = lonely
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    page.clock.install(time=NOW)
    try:
        page.goto(f"{xiamen.url}/kiosk/")
        page.get_by_label("Service point credentials").fill(secret)
        page.get_by_role("button", name="登录 Sign in").click()  # call 1, the day's list 2
        expect(page.locator("#day-empty")).to_be_visible()
        page.locator("button.scenario").click()  # 3: no registry, no verifier certificate
        outcome = page.locator("#outcome")
        expect(outcome).to_contain_text("暂不可用")
        expect(outcome).to_contain_text("Unavailable")
        expect(page.locator("#outcome-details")).to_contain_text("unavailable")  # the code
        page.locator("#next-visitor").click()  # 4: refused by the rate limit
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("请求过多")
        expect(alert).to_contain_text("Too many requests: try again in")
    finally:
        context.close()
