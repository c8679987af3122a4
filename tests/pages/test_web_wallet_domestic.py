"""The web wallet with two credentials (issue 18): a Fuzhou housekeeper takes her credit
standing and her domestic-service (家政) credential through two offers in a real
Chromium, and answers a Xiamen family's request with the domestic-service one and a
library desk's with the credit standing: each request sees only the claims of the type
it asks for. The machinery (a static origin for the pages, the browser's clock) is
tests/pages/test_web_wallet.py's."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser

from node.web import WALLET_PAGES
from tests.conftest import NOW
from tests.node.issuing_helpers import seed_housekeeper
from tests.node.oid4vp_helpers import presentation_request, presentation_result, two_cities
from tests.node.servers import RunningNode
from tests.node.test_verifications import seed_resident_app
from tests.pages.conftest import DESKTOP
from tests.pages.test_web_wallet import HELD_KEY, Watched, _Pages

RESIDENT = "fz-housekeeper"


@dataclass
class World:
    fuzhou: RunningNode
    xiamen: RunningNode
    wallet: str
    desk: dict[str, str]
    extra: dict[str, bytes]

    def offer(self, configuration: str) -> str:
        login = httpx.post(f"{self.fuzhou.url}/dev-idp/token", json={"subject": RESIDENT})
        made = httpx.post(
            f"{self.fuzhou.url}/v1/me/credential-offers",
            json={"credential_configuration_id": configuration},
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
        assert made.status_code == 201, made.text
        return str(made.json()["offer"])

    def request(self, scenario: str) -> dict[str, Any]:
        return presentation_request(self.xiamen, self.desk, scenario)

    def outcome(self, made: dict[str, Any]) -> dict[str, Any]:
        return presentation_result(self.xiamen, self.desk, made)


def housekeeper(node: RunningNode) -> None:
    seed_resident_app(node, RESIDENT, 780, ("alliance",), now=NOW)
    seed_housekeeper(node.app.state.node.engine, RESIDENT, [
        ("background_check_passed", 100, None),
        *[("service_rating", d, 5.0) for d in (5, 15, 25)],
    ])  # fmt: skip


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
        with two_cities(
            tmp_path,
            scopes=("domestic_family_check", "library_deposit_free"),
            credentials={"fuzhou": ["credit_standing", "domestic_service"]},
        ) as cities:
            housekeeper(cities.fuzhou)
            wallet = f"http://127.0.0.1:{static.server_address[1]}/"
            yield World(cities.fuzhou, cities.xiamen, wallet, cities.desk, placed)
    finally:
        static.shutdown()
        static.server_close()


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Watched]:
    seen = Watched(browser, DESKTOP)
    try:
        yield seen
    finally:
        seen.context.close()


def take(desktop: Watched, world: World, configuration: str) -> None:
    page = desktop.open(world, offer=world.offer(configuration))  # type: ignore[arg-type]
    page.locator("#status").get_by_text("The credential is stored").wait_for()


def answer(desktop: Watched, world: World, scenario: str) -> tuple[list[str], dict[str, Any]]:
    made = world.request(scenario)
    page = desktop.open(world, request=made["request"])  # type: ignore[arg-type]
    page.locator("#request").wait_for(state="visible")
    shown = page.locator("#disclose li").all_inner_texts()
    page.get_by_role("button", name="Agree and send").click()
    page.locator("#status").get_by_text("Sent to Xiamen").wait_for()
    return shown, world.outcome(made)


def test_the_wallet_holds_both_and_answers_each_request_with_its_own(
    world: World, desktop: Watched
) -> None:
    take(desktop, world, "ccx_credit_standing")
    take(desktop, world, "ccx_domestic_service")
    page = desktop.page
    assert len(page.evaluate(HELD_KEY)["credentials"]) == 2
    cards = page.locator("article.credential").all_inner_texts()
    assert any("urn:ccx:domestic-service:1" in c and "Background check passed" in c for c in cards)
    assert any("urn:ccx:credit-standing:1" in c and "Band" in c for c in cards)

    shown, decided = answer(desktop, world, "domestic_family_check")
    assert shown == ["Background check passed: yes"]  # nothing of her score
    assert decided["outcome"] == "granted"
    assert decided["tier"] == "checked"

    shown, decided = answer(desktop, world, "library_deposit_free")
    assert len(shown) == 1
    assert shown[0].startswith("Score at least")  # nothing of her background check
    assert decided["outcome"] == "granted"
    desktop.clean()


def test_a_request_for_a_type_she_does_not_hold_is_a_clear_error(
    world: World, desktop: Watched
) -> None:
    take(desktop, world, "ccx_credit_standing")
    made = world.request("domestic_family_check")
    desktop.open(world, request=made["request"])  # type: ignore[arg-type]
    assert desktop.problem()  # cannot_answer: her credit standing is not asked for
    assert world.outcome(made)["outcome"] == "pending"  # nothing sent
