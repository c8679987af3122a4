"""The whole story in a real Chromium (issue 16), against two real nodes on loopback that
follow one registry: a Fuzhou resident logs in at her page, consents to share her
standing, and takes a credential offer into the web wallet of her home node; a Xiamen
library kiosk shows a request as a QR code; her wallet scans it with the camera
(Chromium's fake capture playing that code), shows who asks and what, and answers; the
kiosk shows "granted" with the tier. Her second visit goes by the link. Then she
withdraws her consent at her page, and once the status list's ttl has passed the next
visit is denied at the kiosk: the attestation is revoked. Every clock (both nodes', both pages') is the test's."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session

from node.services.records import push_records
from tests.conftest import NOW
from tests.node.oid4vp_helpers import two_cities
from tests.node.servers import RunningNode, WorldClock
from tests.pages.camera import camera_args, qr_video
from tests.pages.conftest import DESKTOP, PHONE, chromium_path

SCENARIO = "library_deposit_free"  # the standard tier needs 700 on Xiamen's scale
RESIDENT = "fz-visitor"
DAY = 86400
STATUS_TTL = 120  # seconds Xiamen may keep Fuzhou's status list
# base 500 + basic 100 + positive 188 + usage 5 = 793 on the demo model
RECORDS = {
    "civil": [
        {"record_id": "id-1", "kind": "identity_verified", "occurred_at": NOW - 400 * DAY},
        {"record_id": "home-1", "kind": "stable_residence", "occurred_at": NOW - 300 * DAY},
        {"record_id": "hon-1", "kind": "honour", "occurred_at": NOW - 200 * DAY},
        {"record_id": "hon-2", "kind": "honour", "occurred_at": NOW - 100 * DAY},
        {"record_id": "vol-1", "kind": "volunteering", "occurred_at": NOW - 20 * DAY},
    ],
    "health": [
        {"record_id": "blood-1", "kind": "blood_donation", "occurred_at": NOW - 90 * DAY},
        {"record_id": "blood-2", "kind": "blood_donation", "occurred_at": NOW - 30 * DAY},
    ],
    "transit": [{"record_id": "pl-1", "kind": "pay_later_on_time", "occurred_at": NOW - 5 * DAY}],
}
SCORE = 793


@dataclass
class World:
    fuzhou: RunningNode
    xiamen: RunningNode
    clock: WorldClock
    desk_token: str

    def decisions(self) -> list[dict[str, str]]:
        answer = httpx.get(f"{self.xiamen.url}/v1/presentation-requests",
                           params={"since": NOW - DAY},
                           headers={"Authorization": f"Bearer {self.desk_token}"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        rows: list[dict[str, str]] = answer.json()["decisions"]
        return rows


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with two_cities(tmp_path, fuzhou={"status_list_ttl": STATUS_TTL},
                    xiamen={"status_cache_min_ttl": STATUS_TTL}) as cities:  # fmt: skip
        home = cities.fuzhou.app.state.node
        with Session(home.engine) as db:  # what her city's departments sent
            for department, rows in RECORDS.items():
                rows = [{**row, "resident_id": RESIDENT} for row in rows]
                pushed = push_records(db, home, department, rows, now=NOW - 3600)
                assert pushed.counts["stored"] == len(rows)
            db.commit()
        yield World(cities.fuzhou, cities.xiamen, cities.clock, cities.desk_token)


def shown_request(kiosk: Page, before: str = "") -> str:
    """The request the kiosk shows now (a new one when ``before`` is given)."""
    expect(kiosk.locator("#qr img.qr")).to_be_visible()
    if before:
        expect(kiosk.locator("#request-link")).not_to_have_text(before)
    link = kiosk.locator("#request-link").text_content() or ""
    assert link.startswith("openid4vp://"), link
    return link


def agree(wallet: Page) -> None:
    """The wallet shows who asks and exactly what it would disclose; she agrees."""
    wallet.locator("#request").wait_for(state="visible", timeout=20_000)
    assert wallet.locator("#verifier-name").inner_text() == "Xiamen"
    assert [t.split(":")[0] for t in wallet.locator("#disclose li").all_inner_texts()] == [
        "Score at least 600"  # Xiamen's 700 on the alliance scale
    ]
    wallet.get_by_role("button", name="Agree and send").click()
    wallet.locator("#status").get_by_text("Sent to Xiamen").wait_for()


def paste(wallet: Page, link: str) -> None:
    wallet.get_by_role("button", name="Paste a link").click()
    wallet.get_by_label("Link").fill(link)
    wallet.get_by_role("button", name="Open").click()


def test_granted_by_camera_and_by_link_then_refused_after_she_withdraws(
    world: World, browser: Browser, tmp_path: Path
) -> None:
    # the library's counter: signed in, the scenario chosen, a request on screen
    kiosk_context = browser.new_context(viewport=DESKTOP, locale="en-US")  # type: ignore[arg-type]
    kiosk = kiosk_context.new_page()
    kiosk.clock.install(time=NOW)
    kiosk.goto(f"{world.xiamen.url}/kiosk/")
    kiosk.get_by_label("Service point credentials").fill(world.desk_token)
    kiosk.get_by_role("button", name="登录 Sign in").click()
    kiosk.locator(f"button.scenario[data-scenario={SCENARIO}]").click()
    first = shown_request(kiosk)
    # her phone, its camera pointed at the kiosk's code
    phone = browser.browser_type.launch(
        executable_path=chromium_path(), headless=True,
        args=camera_args(qr_video(first, tmp_path / "kiosk.y4m")),
    )  # fmt: skip
    try:
        context = phone.new_context(viewport=PHONE, locale="en-US")  # type: ignore[arg-type]
        page = context.new_page()
        page.clock.set_fixed_time(NOW)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        # she logs in at her home node's page, through her city's identity provider
        page.goto(f"{world.fuzhou.url}/me/?lang=en")
        page.locator("#login").click()
        page.fill("input[name=subject]", RESIDENT)
        page.locator("button[name=login][value=yes]").click()
        # both consents: to see her score, then to share her standing
        page.locator("#consent-open_score button.grant").click()
        expect(page.locator("#score-value")).to_have_text(str(SCORE))
        share = page.locator("#consent-share_alliance")
        share.locator("#share-purpose").fill("borrowing books as a visitor")
        share.locator("button.grant").click()
        expect(share).to_contain_text("Granted")
        # an offer for this device, opened in the web wallet of her home node
        page.locator("#make-offer").click()
        page.locator("#web-wallet-link").click()
        page.locator("#status").get_by_text("The credential is stored").wait_for()

        # first visit: the camera reads the kiosk's code
        page.get_by_role("button", name="Scan a QR code").click()
        agree(page)
        decision = kiosk.locator("#decision")
        expect(decision).to_have_attribute("data-outcome", "granted")
        expect(kiosk.locator("#outcome")).to_contain_text("准予")
        expect(kiosk.locator("#outcome")).to_contain_text("Granted")
        expect(kiosk.locator("#outcome-details")).to_contain_text("standard")

        # second visit: the kiosk's link, pasted into her wallet
        kiosk.locator("#next-visitor").click()
        paste(page, shown_request(kiosk, before=first))
        agree(page)
        expect(decision).to_have_attribute("data-outcome", "granted")

        # she withdraws her consent to share: her attestations are revoked at home
        page.goto(f"{world.fuzhou.url}/me/?lang=en")
        share.locator("button.withdraw").click()
        share.locator("button.confirm-withdraw").click()
        expect(page.locator("#alert")).to_contain_text("withdrawn")

        # once Xiamen's copy of Fuzhou's status list is past its ttl, she is denied
        world.clock.advance(STATUS_TTL + 1)
        page.clock.set_fixed_time(NOW + STATUS_TTL + 1)
        kiosk.locator("#next-visitor").click()
        third = shown_request(kiosk, before=first)
        page.goto(f"{world.fuzhou.url}/wallet/?request={quote(third, safe='')}")
        agree(page)
        expect(decision).to_have_attribute("data-outcome", "denied")
        expect(kiosk.locator("#outcome")).to_contain_text("Not granted")
        expect(decision).to_contain_text("revoked")
        assert not errors, errors
    finally:
        phone.close()
        kiosk_context.close()
    outcomes = [row["outcome"] for row in world.decisions()]
    assert outcomes == ["denied", "granted", "granted"]  # newest first
