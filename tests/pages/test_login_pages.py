"""The pages a resident sees when a standard wallet asks for her credential by the
authorization code grant (OpenID4VCI; node/pages.py), in a real Chromium (issue 16's first
browser tests): the city's login page (the development identity provider's), the page
that posts the login back to the node, the consent page, the way back to the wallet. A
real node on loopback; the wallet's side (the pushed request, the code's redirect) is the
test's. Each page must work under its content security policy (the one script a page has
runs by its nonce, nothing else does), on a phone-sized and a desktop-sized screen."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route
from sqlmodel import Session

from node.app import create_app, initialize_node
from node.models import Consent, Score
from node.services import oid4vci
from node.settings import Settings
from tests.conftest import NOW
from tests.node.conftest import xiamen_settings
from tests.node.servers import RunningNode, free_port

RESIDENT = "resident-in-a-browser"
CLIENT = "test-wallet"
REDIRECT = "http://127.0.0.1:7777/callback"  # a loopback redirect: any port (RFC 8252)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningNode]:
    port = free_port()
    settings: Settings = xiamen_settings(tmp_path / "node").model_copy(
        update={"node_id": f"http://127.0.0.1:{port}"}
    )
    initialize_node(settings, now=NOW)
    app = create_app(settings, now=lambda: NOW)
    with Session(app.state.node.engine) as db:
        db.add(Score(resident_id=RESIDENT, score=720, by_dimension={}, computed_at=NOW - 3600,
                     model_version="demo-2026.11"))  # fmt: skip
        for kind in ("open_score", "share_alliance"):
            db.add(Consent(resident_id=RESIDENT, kind=kind,
                           recipients=["alliance"] if kind == "share_alliance" else [],
                           purpose="a test" if kind == "share_alliance" else None,
                           granted_at=NOW - 60))  # fmt: skip
        db.commit()
    with RunningNode(app, port) as running:
        yield running


def pushed_request(node: RunningNode) -> str:
    """The wallet's pushed authorization request (RFC 9126): its request_uri."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    answer = httpx.post(f"{node.url}/oid4vci/par", data={
        "response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT,
        "scope": oid4vci.CONFIGURATION_ID, "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256", "state": "wallet-state-1", "resource": node.url,
    })  # fmt: skip
    assert answer.status_code == 201, answer.text
    uri: str = answer.json()["request_uri"]
    return uri


class Watched:
    """A page, what its console said, and where the wallet was sent back to."""

    def __init__(self, browser: Browser, viewport: dict[str, Any]) -> None:
        self.context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        self.page: Page = self.context.new_page()
        self.console: list[str] = []
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.on("pageerror", lambda error: self.console.append(str(error)))
        self.back: list[str] = []

        def wallet(route: Route) -> None:  # the wallet's redirect URI: record, answer
            self.back.append(route.request.url)
            route.fulfill(status=200, content_type="text/html", body="<p>wallet</p>")

        self.page.route(f"{REDIRECT}*", wallet)

    def fits(self) -> bool:
        """Whether the page needs no sideways scrolling."""
        return bool(self.page.evaluate(
            "document.scrollingElement.scrollWidth <= window.innerWidth"
        ))  # fmt: skip


@pytest.fixture
def watched(browser: Browser, viewport: dict[str, Any]) -> Iterator[Watched]:
    seen = Watched(browser, viewport)
    try:
        yield seen
    finally:
        seen.context.close()


def authorize_url(node: RunningNode) -> str:
    query = urlencode({"client_id": CLIENT, "request_uri": pushed_request(node)})
    return f"{node.url}/oid4vci/authorize?{query}"


def test_a_resident_logs_in_and_allows_the_wallet_in_a_real_browser(
    node: RunningNode, watched: Watched
) -> None:
    page = watched.page
    page.goto(authorize_url(node))
    # the city's login page (the development identity provider's)
    assert page.locator("input[name=subject]").is_visible()
    assert watched.fits()
    page.fill("input[name=subject]", RESIDENT)
    page.locator("button[name=login][value=yes]").click()
    # the login goes back to the node by a page that posts it (its one script, by nonce),
    # and the node shows the consent page
    page.wait_for_selector("button[name=answer][value=allow]")
    assert node.url in page.url
    assert watched.fits()
    assert CLIENT in page.content()  # it names the wallet that asks
    page.locator("button[name=answer][value=allow]").click()
    page.wait_for_url(f"{REDIRECT}*")
    [back] = watched.back
    answer = {name: values[0] for name, values in parse_qs(urlsplit(back).query).items()}
    assert set(answer) == {"code", "state", "iss"}
    assert answer["state"] == "wallet-state-1"
    assert answer["iss"] == node.url
    # nothing the content security policy refused, no script error
    assert not [line for line in watched.console if "Content Security Policy" in line]
    assert not [line for line in watched.console if "Error" in line], watched.console


def test_a_resident_who_denies_sends_the_wallet_access_denied_in_a_real_browser(
    node: RunningNode, watched: Watched
) -> None:
    page = watched.page
    page.goto(authorize_url(node))
    page.fill("input[name=subject]", RESIDENT)
    page.locator("button[name=login][value=yes]").click()
    page.locator("button[name=answer][value=deny]").click()
    page.wait_for_url(f"{REDIRECT}*")
    [back] = watched.back
    answer = parse_qs(urlsplit(back).query)
    assert answer["error"] == ["access_denied"]
    assert "code" not in answer


def test_a_script_injected_into_a_login_page_does_not_run(
    node: RunningNode, watched: Watched
) -> None:
    """The pages escape what they show; were that to fail, their policy still refuses a
    script without the page's nonce."""
    page = watched.page
    page.goto(authorize_url(node))
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.injected = true'; document.body.appendChild(s); }"
    )
    assert page.evaluate("window.injected === true") is False
    assert [line for line in watched.console if "Content Security Policy" in line]
