"""The web wallet (wallet/web/, issue 16) in a real Chromium against two real nodes on
loopback that follow one registry carrying the alliance CA: a Fuzhou resident takes her
credential through an OpenID4VCI offer link (the key made in the browser, non-extractable,
in IndexedDB), and answers a Xiamen service point's OpenID4VP request opened as a link or
scanned with the camera (Chromium's fake capture fed a video of the QR code), after the
page showed who asks and what would be disclosed. The page is served from a third origin
(a plain static server with the node's page headers), so every call to either node is
cross-origin: node/cors.py is what lets them through. The browser's clock is fixed at
NOW, as the nodes' is."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlmodel import Session, select

import protocol as P
from node.models import Consent
from node.web import WALLET_CONNECT, WALLET_PAGES, page_headers
from tests.conftest import NOW, ec_key
from tests.node.oid4vp_helpers import presentation_request, presentation_result, two_cities
from tests.node.servers import RunningNode, free_port
from tests.node.test_verifications import seed_resident_app
from tests.pages.camera import camera_args, qr_video
from tests.pages.conftest import DESKTOP, PHONE, chromium_path

SCENARIO = "library_deposit_free"
RESIDENT = "fz-resident"
DAY = 86400


class _Pages(SimpleHTTPRequestHandler):
    """The wallet's folder on another origin, with the headers the node serves it with
    (its content security policy among them); ``/untrusted-request`` answers a request
    object the test put there."""

    extra: ClassVar[dict[str, bytes]] = {}

    def end_headers(self) -> None:
        for name, value in page_headers(WALLET_CONNECT).items():
            self.send_header(name, value)
        super().end_headers()

    def do_GET(self) -> None:
        body = self.extra.get(self.path.split("?")[0])
        if body is None:
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/oauth-authz-req+jwt")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@dataclass
class World:
    fuzhou: RunningNode
    xiamen: RunningNode
    wallet: str  # the wallet's URL on its own origin
    desk: dict[str, str]
    extra: dict[str, bytes]

    def offer(self, *, cross_device: bool = False) -> dict[str, Any]:
        login = httpx.post(f"{self.fuzhou.url}/dev-idp/token", json={"subject": RESIDENT})
        made = httpx.post(
            f"{self.fuzhou.url}/v1/me/credential-offers", json={"cross_device": cross_device},
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        body: dict[str, Any] = made.json()
        return body

    def request(self) -> dict[str, Any]:
        return presentation_request(self.xiamen, self.desk, SCENARIO)

    def outcome(self, made: dict[str, Any]) -> str:
        return str(presentation_result(self.xiamen, self.desk, made)["outcome"])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    placed: dict[str, bytes] = {}

    class Pages(_Pages):
        extra = placed

    static = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Pages, directory=str(WALLET_PAGES))
    )
    serving = threading.Thread(target=static.serve_forever, daemon=True)
    serving.start()
    try:
        with two_cities(tmp_path) as cities:
            seed_resident_app(cities.fuzhou, RESIDENT, 780, ("alliance",), now=NOW)
            wallet = f"http://127.0.0.1:{static.server_address[1]}/"
            yield World(cities.fuzhou, cities.xiamen, wallet, cities.desk, placed)
    finally:
        static.shutdown()
        static.server_close()


class Watched:
    """A page of its own browser context (its own IndexedDB), its clock at NOW, and what
    its console said."""

    def __init__(self, browser: Browser, viewport: dict[str, Any]) -> None:
        self.context: BrowserContext = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        self.page: Page = self.context.new_page()
        self.page.clock.set_fixed_time(NOW)
        self.console: list[str] = []
        self.page.on(
            "console", lambda m: self.console.append(m.text) if m.type == "error" else None
        )
        self.page.on("pageerror", lambda error: self.console.append(str(error)))

    def open(self, world: World, **query: str) -> Page:
        text = "&".join(f"{name}={quote(value, safe='')}" for name, value in query.items())
        self.page.goto(f"{world.wallet}?lang=en{'&' if text else ''}{text}")
        self.page.wait_for_selector("body[data-ready=true]")
        return self.page

    def fits(self) -> bool:
        return bool(self.page.evaluate(
            "document.scrollingElement.scrollWidth <= window.innerWidth"
        ))  # fmt: skip

    def problem(self) -> str:
        box = self.page.locator("#problem")
        box.wait_for(state="visible")
        return box.inner_text()

    def clean(self) -> None:
        """Nothing refused by the content security policy, no script error."""
        assert not self.console, self.console


@pytest.fixture
def watched(browser: Browser, viewport: dict[str, Any]) -> Iterator[Watched]:
    seen = Watched(browser, viewport)
    try:
        yield seen
    finally:
        seen.context.close()


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Watched]:
    seen = Watched(browser, DESKTOP)
    try:
        yield seen
    finally:
        seen.context.close()


HELD_KEY = """async () => {
  const db = await new Promise((ok, no) => {
    const r = indexedDB.open("ccx-wallet"); r.onsuccess = () => ok(r.result); r.onerror = no;
  });
  const get = (store, key) => new Promise((ok, no) => {
    const r = db.transaction(store).objectStore(store).get(key);
    r.onsuccess = () => ok(r.result); r.onerror = no;
  });
  const held = await get("keys", "holder");
  let exported = "refused";
  try { await crypto.subtle.exportKey("jwk", held.privateKey); exported = "exported"; }
  catch (e) { exported = e.name; }
  const all = await new Promise((ok) => {
    const r = db.transaction("credentials").objectStore("credentials").getAll();
    r.onsuccess = () => ok(r.result);
  });
  return {
    extractable: held.privateKey.extractable, algorithm: held.privateKey.algorithm,
    usages: held.privateKey.usages, exported, thumbprint: held.thumbprint,
    credentials: all.map((c) => c.credential),
  };
}"""


def take_credential(watched: Watched, world: World) -> dict[str, Any]:
    made = world.offer()
    page = watched.open(world, offer=made["offer"])
    page.locator("#status").get_by_text("The credential is stored").wait_for()
    held: dict[str, Any] = page.evaluate(HELD_KEY)
    return held


def test_an_offer_link_makes_a_key_that_never_leaves_and_stores_the_credential(
    world: World, watched: Watched
) -> None:
    held = take_credential(watched, world)
    page = watched.page
    # the key: P-256, non-extractable, kept as a CryptoKey in IndexedDB
    assert held["extractable"] is False
    assert held["algorithm"] == {"name": "ECDSA", "namedCurve": "P-256"}
    assert held["usages"] == ["sign"]
    assert held["exported"] == "InvalidAccessError"
    assert page.locator("#thumbprint").inner_text() == held["thumbprint"]
    # the credential, bound to that key, issued by the home node
    [credential] = held["credentials"]
    claims = json.loads(P.b64url_decode(credential.split("~")[0].split(".")[1]))
    assert P.jwk_thumbprint(claims["cnf"]["jwk"]) == held["thumbprint"]
    assert claims["iss"] == world.fuzhou.url
    # what it holds, shown
    card = page.locator("article.credential")
    text = card.inner_text()
    assert world.fuzhou.url in text
    assert P.VCT in text
    assert "valid" in text
    for label in ("Score at least", "Alliance score", "Band"):
        assert label in text
    assert "Selectively disclosable" in text
    assert watched.fits()
    watched.clean()


def test_the_page_speaks_chinese_and_the_language_switch_keeps_what_it_shows(
    world: World, desktop: Watched
) -> None:
    take_credential(desktop, world)
    page = desktop.page
    page.locator("#lang").click()
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "凭证已保存" in page.locator("#status").inner_text()
    # the cards are drawn again after the switch (asynchronously): wait for them
    expect(page.locator("article.credential")).to_contain_text("分数不低于")
    page.locator("#lang").click()
    assert "stored" in page.locator("#status").inner_text()
    desktop.clean()


def test_a_used_offer_is_a_clear_error(world: World, desktop: Watched) -> None:
    made = world.offer()
    assert httpx.get(made["credential_offer_uri"]).status_code == 200  # someone else took it
    desktop.open(world, offer=made["offer"])
    assert "expired or was used" in desktop.problem()
    assert desktop.page.locator("article.credential").count() == 0


def test_a_wrong_transaction_code_is_a_clear_error(world: World, desktop: Watched) -> None:
    made = world.offer(cross_device=True)
    page = desktop.page
    page.goto(f"{world.wallet}?lang=en")
    page.wait_for_selector("body[data-ready=true]")
    page.locator("#paste").click()
    page.get_by_label("Link").fill(made["offer"])
    page.get_by_role("button", name="Open").click()
    page.get_by_label("The digits shown beside the QR code").fill(
        "000000" if made["tx_code"] != "000000" else "111111"
    )
    page.get_by_role("button", name="Continue").click()
    assert "transaction code is wrong" in desktop.problem()


def test_the_node_serves_the_wallet_under_its_policy(world: World, desktop: Watched) -> None:
    page = desktop.page
    answer = page.goto(f"{world.fuzhou.url}/wallet/?lang=en")
    assert answer is not None
    assert "connect-src 'self' http: https:" in answer.headers["content-security-policy"]
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#thumbprint").inner_text()
    desktop.clean()


def open_request(watched: Watched, world: World) -> tuple[Page, dict[str, Any]]:
    take_credential(watched, world)
    made = world.request()
    page = watched.open(world, request=made["request"])
    page.locator("#request").wait_for(state="visible")
    return page, made


def test_a_request_link_shows_who_asks_and_what_and_agreeing_grants(
    world: World, watched: Watched
) -> None:
    page, made = open_request(watched, world)
    assert page.locator("#verifier-name").inner_text() == "Xiamen"  # the registry's name
    assert page.locator("#verifier-id").inner_text() == world.xiamen.url  # the leaf's URI
    assert page.locator("#verifier-client").inner_text() == made["client_id"]
    [claim] = made["disclose"]  # the scenario's one score_at_least entry
    threshold = claim.split(".")[1]
    assert page.locator("#disclose li").all_inner_texts() == [f"Score at least {threshold}: yes"]
    assert watched.fits()
    assert world.outcome(made) == "pending"  # nothing sent before she agrees
    page.get_by_role("button", name="Agree and send").click()
    page.locator("#status").get_by_text("Sent to Xiamen").wait_for()
    assert page.locator("#request").is_hidden()
    assert world.outcome(made) == "granted"
    watched.clean()


def test_declining_sends_access_denied_and_discloses_nothing(
    world: World, desktop: Watched
) -> None:
    page, made = open_request(desktop, world)
    page.get_by_role("button", name="Decline").click()
    page.locator("#status").get_by_text("nothing was disclosed").wait_for()
    answer = httpx.get(
        f"{world.xiamen.url}/v1/presentation-requests/{made['transaction_id']}",
        headers=world.desk,
    ).json()
    assert answer["outcome"] == "declined"
    assert answer["code"] == "access_denied"
    assert "tier" not in answer
    desktop.clean()


def untrusted_request(world: World) -> str:
    """A request object signed by a leaf under a CA of its own, not the alliance's, put
    on the wallet's static host; its link."""
    ca_key, leaf_key = ec_key(91), ec_key(92)
    ca = P.ca_certificate(ca_key, name="not the alliance", not_before=NOW - DAY,
                          not_after=NOW + 365 * DAY, serial=1)  # fmt: skip
    leaf = P.leaf_certificate(ca_key, ca, leaf_key.public_key(), uri="http://evil.test",
                              name="Evil", not_before=NOW - DAY, not_after=NOW + 30 * DAY,
                              serial=2)  # fmt: skip
    client_id = P.client_id_for(leaf)
    claims = {
        "client_id": client_id, "response_type": "vp_token", "response_mode": "direct_post",
        "response_uri": f"{world.wallet}nowhere", "nonce": "n-1", "state": "s-1",
        "iat": NOW, "exp": NOW + 300,
        "dcql_query": P.dcql_query([["score_at_least", "650"]]),
    }  # fmt: skip
    world.extra["/untrusted-request"] = P.sign_request_object(claims, leaf_key, [leaf, ca]).encode()
    return f"openid4vp://?client_id={quote(client_id)}&request_uri={quote(world.wallet)}untrusted-request"


def test_a_verifier_outside_the_alliance_is_refused(world: World, desktop: Watched) -> None:
    take_credential(desktop, world)
    desktop.open(world, request=untrusted_request(world))
    assert "not certified by the alliance" in desktop.problem()
    assert desktop.page.locator("#problem").get_attribute("data-code") == "certificate_untrusted"
    assert desktop.page.locator("#request").is_hidden()
    desktop.page.locator("#lang").click()  # the same refusal, in Chinese
    assert "不在联盟的信任链上" in desktop.problem()


def test_a_link_naming_another_client_is_refused(world: World, desktop: Watched) -> None:
    take_credential(desktop, world)
    made = world.request()
    forged = made["request"].replace(
        quote(made["client_id"], safe=""), quote("x509_hash:" + "A" * 43)
    )
    assert forged != made["request"]
    desktop.open(world, request=forged)
    assert "does not match the link" in desktop.problem()
    assert world.outcome(made) == "pending"


def test_a_credential_for_other_cities_is_not_shown_to_this_verifier(
    world: World, desktop: Watched
) -> None:
    """Issue 17, known gap K: her consent names Fuzhou alone, so her credential's aud
    does; Xiamen asks, and the wallet refuses before anything is shown or sent."""
    with Session(world.fuzhou.app.state.node.engine) as db:
        consent = db.exec(select(Consent).where(Consent.kind == "share_alliance")).one()
        consent.recipients = [world.fuzhou.url]
        db.add(consent)
        db.commit()
    held = take_credential(desktop, world)
    [credential] = held["credentials"]
    assert json.loads(P.b64url_decode(credential.split(".")[1]))["aud"] == [world.fuzhou.url]
    made = world.request()
    desktop.open(world, request=made["request"])
    assert "not one of them. Nothing was sent" in desktop.problem()
    assert desktop.page.locator("#problem").get_attribute("data-code") == "recipient_not_named"
    assert desktop.page.locator("#request").is_hidden()
    assert world.outcome(made) == "pending"
    desktop.page.locator("#lang").click()  # the same refusal, in Chinese
    assert "没有选择该请求方" in desktop.problem()
    desktop.clean()


def test_a_request_before_any_credential_says_take_one_first(
    world: World, desktop: Watched
) -> None:
    made = world.request()
    desktop.open(world, request=made["request"])
    assert "no usable credential" in desktop.problem()


def test_a_request_read_already_is_a_clear_error(world: World, desktop: Watched) -> None:
    take_credential(desktop, world)
    made = world.request()
    assert httpx.get(made["request_uri"]).status_code == 200  # fetched once, by someone
    desktop.open(world, request=made["request"])
    assert "read already or has expired" in desktop.problem()


def test_a_node_that_cannot_be_reached_is_a_clear_error(world: World, desktop: Watched) -> None:
    take_credential(desktop, world)
    port = free_port()
    link = ("openid4vp://?client_id=x509_hash%3AAAAA"
            f"&request_uri={quote(f'http://127.0.0.1:{port}/oid4vp/requests/x', safe='')}")  # fmt: skip
    desktop.open(world, request=link)
    assert "cannot be reached" in desktop.problem()


def test_the_camera_reads_the_kiosk_qr_code_and_the_request_is_answered(
    world: World, browser: Browser, tmp_path: Path
) -> None:
    made = world.request()
    video = qr_video(made["request"], tmp_path / "kiosk.y4m")
    camera = browser.browser_type.launch(
        executable_path=chromium_path(), headless=True,
        args=camera_args(video),
    )  # fmt: skip
    try:
        phone = Watched(camera, PHONE)
        take_credential(phone, world)
        page = phone.open(world)
        page.get_by_role("button", name="Scan a QR code").click()
        page.locator("#request").wait_for(state="visible", timeout=20_000)
        assert page.locator("#video").is_hidden()  # the camera stopped once it read the code
        assert page.locator("#verifier-name").inner_text() == "Xiamen"
        page.get_by_role("button", name="Agree and send").click()
        page.locator("#status").get_by_text("Sent to Xiamen").wait_for()
        assert world.outcome(made) == "granted"
        phone.clean()
    finally:
        camera.close()


def test_a_browser_without_a_camera_says_to_paste_the_link(world: World, desktop: Watched) -> None:
    page = desktop.open(world)
    page.get_by_role("button", name="Scan a QR code").click()  # headless: no camera at all
    assert "paste the link" in desktop.problem()
    page.get_by_role("button", name="Paste a link").click()
    assert page.get_by_label("Link").is_visible()
