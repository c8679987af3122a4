"""The alliance dashboard (node/web/alliance, issue 16) in a real Chromium, against an
alliance host and member nodes on loopback (tests/node/alliance_world.py): members with
their state and readiness (Xiamen ready, Fuzhou not ready, Zhangzhou's node down), the
registry's versions and chain, the policy's scenarios, one curve per city's table, in
both languages, at phone and desktop size, with no console error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from alliance.state import REQUIRED_SCENARIOS
from tests.node.alliance_world import AllianceWorld, alliance_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllianceWorld]:
    with alliance_world(tmp_path_factory.mktemp("dashboard")) as made:
        yield made


class Watched:
    """A page and what its console said."""

    def __init__(self, browser: Browser, viewport: dict[str, Any], locale: str) -> None:
        self.context = browser.new_context(viewport=viewport, locale=locale)  # type: ignore[arg-type]
        self.page: Page = self.context.new_page()
        self.console: list[str] = []
        self.page.on(
            "console",
            lambda message: (
                self.console.append(message.text) if message.type in ("error", "warning") else None
            ),
        )
        self.page.on("pageerror", lambda error: self.console.append(str(error)))

    def fits(self) -> bool:
        """Whether the page body needs no sideways scrolling."""
        return bool(
            self.page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
        )


@pytest.fixture
def watched(browser: Browser, viewport: dict[str, Any]) -> Iterator[Watched]:
    seen = Watched(browser, viewport, "zh-CN")
    try:
        yield seen
    finally:
        seen.context.close()


def open_dashboard(watched: Watched, world: AllianceWorld, query: str = "") -> Page:
    page = watched.page
    page.goto(f"{world.host.url}/alliance/{query}")
    expect(page.locator("#members-body tr")).to_have_count(3)
    expect(page.locator("td.readiness .ready")).to_have_count(3)  # readiness has come
    return page


def test_the_dashboard_shows_members_versions_policy_curves_and_readiness(
    world: AllianceWorld, watched: Watched
) -> None:
    page = open_dashboard(watched, world, "?lang=en")
    expect(page.locator("h1")).to_have_text("Alliance dashboard")
    # members and their state
    rows = {
        city: page.locator(f"#members-body tr[data-city={city}]")
        for city in ("xiamen", "fuzhou", "zhangzhou")
    }
    expect(rows["zhangzhou"]).to_contain_text("suspended")
    expect(rows["xiamen"]).to_contain_text("active")
    expect(rows["xiamen"]).to_contain_text(world.members["xiamen"].node_id)
    # which nodes are ready, and why the others are not
    state = {city: row.locator(".ready").get_attribute("data-state") for city, row in rows.items()}
    assert state == {"xiamen": "ready", "fuzhou": "not_ready", "zhangzhou": "unreachable"}
    expect(rows["xiamen"]).to_contain_text("registry version 3")
    expect(rows["fuzhou"]).to_contain_text("failing checks: registry")
    expect(rows["zhangzhou"]).to_contain_text("could not connect")
    # the registry's versions and chain
    expect(page.locator("#chain")).to_contain_text("Intact")
    expect(page.locator("#versions-body tr")).to_have_count(3)
    links = page.locator("#versions-body tr").evaluate_all("rows => rows.map(r => r.dataset.links)")
    assert links == ["true", "true", "null"]  # newest first
    expect(page.locator("#versions-body tr[data-version='3']")).to_contain_text("(current)")
    expect(page.locator("#versions-body tr[data-version='3']")).to_contain_text("in effect")
    expect(page.locator("#versions-body tr[data-version='1']")).to_contain_text("superseded")
    # the policy and its scenarios
    expect(page.locator("#scenarios-body tr")).to_have_count(len(REQUIRED_SCENARIOS))
    expect(page.locator("#scenarios-body tr[data-kind=missing_document_approval]")).to_contain_text(
        "650"
    )
    expect(page.locator("#policy-thresholds")).to_have_text("550 · 600 · 650 · 700 · 750")
    # one curve per city's table, thresholds as guides, a legend and the points as tables
    plot = page.locator("#plot svg[role=img]")
    expect(plot).to_have_attribute(
        "aria-label",
        "Mapping curves: Xiamen, Fuzhou, Zhangzhou. Each curve maps the city's local score to the alliance score (0–1000).",
    )
    cities = page.locator("path.curve").evaluate_all("paths => paths.map(p => p.dataset.city)")
    assert sorted(cities) == ["fuzhou", "xiamen", "zhangzhou"]
    assert page.locator(".thresholds line").count() == 5
    expect(page.locator("#legend li")).to_have_count(3)
    page.locator("#points summary").last.click()
    expect(page.locator("#points details").last.locator("tbody tr")).to_have_count(6)
    expect(page.locator("#tables-body tr[data-city=zhangzhou]")).to_contain_text(
        "alliance root key"
    )
    assert watched.fits()
    assert not watched.console, watched.console


def test_the_dashboard_speaks_chinese_and_switches_to_english(
    world: AllianceWorld, watched: Watched
) -> None:
    page = open_dashboard(watched, world)
    expect(page.locator("h1")).to_have_text("联盟看板")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    fuzhou = page.locator("#members-body tr[data-city=fuzhou]")
    expect(fuzhou).to_contain_text("未就绪")
    expect(page.locator("#scenarios-body")).to_contain_text("图书馆免押金借阅")
    page.locator("#lang").click()
    expect(page.locator("h1")).to_have_text("Alliance dashboard")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(fuzhou).to_contain_text("not ready")
    expect(page.locator("#scenarios-body")).to_contain_text("Library card without deposit")
    expect(page.locator("path.curve")).to_have_count(3)  # redrawn, not lost
    page.reload()  # the choice is remembered
    expect(page.locator("h1")).to_have_text("Alliance dashboard")
    assert not watched.console, watched.console


def test_failures_are_said_in_words_and_lose_nothing(
    world: AllianceWorld, watched: Watched
) -> None:
    """The host's answers made to fail in the browser (the host itself stays healthy):
    the readiness unreachable, then the overview answering 503 on refresh."""
    page = watched.page
    page.route("**/v1/alliance/readiness", lambda route: route.abort())
    page.goto(f"{world.host.url}/alliance/?lang=en")
    expect(page.locator("#readiness-note")).to_contain_text(
        "Could not get the members' readiness: Can't reach the alliance host"
    )
    expect(page.locator("#members-body tr")).to_have_count(3)  # the members still shown
    body = '{"error": {"code": "busy", "message": "try later"}}'
    page.route(
        "**/v1/alliance/overview",
        lambda route: route.fulfill(status=503, content_type="application/json", body=body),
    )
    page.locator("#refresh").click()
    expect(page.locator("#notice")).to_have_text(
        "The alliance host is unavailable for now (503): try again later. try later [busy]"
    )
    expect(page.locator("path.curve")).to_have_count(3)  # what was shown stays
    expect(page.locator("#versions-body tr")).to_have_count(3)
