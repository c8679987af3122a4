"""The resident's page (issue 16: node/web/me) in a real Chromium, against a real node on
loopback with the development identity provider: she logs in through its pages, sees her
score, its breakdown and why each record counts, in Chinese and English; grants and
withdraws her consents, objects to a record, makes a credential offer, sees the
attestations issued to her and revokes, suspends and resumes one, or every one of a lost
wallet key. And what she is told when things fail: a token that is tampered with or
expired, a cancelled login, a node that is unavailable or can't be reached. Every check
of a change reads the node's API, not the page alone."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Browser, Page, Route, expect
from sqlmodel import Session

import protocol as P
from node.app import create_app, initialize_node
from node.models import Consent
from node.scoring import load_model
from node.services.records import push_records
from node.settings import Settings
from node.state import NodeState
from tests.conftest import NOW
from tests.node.conftest import xiamen_settings
from tests.node.issuing_helpers import jwks_resolver
from tests.node.servers import RunningNode, WorldClock, free_port
from wallet._home import fetch_attestation
from wallet._wallet import issuer_claims

RESIDENT = "resident-on-her-page"
DAY = 86400
MODEL = load_model()
# Her records, from three departments and four dimensions of the demo model.
RECORDS = {
    "civil": [
        {"record_id": "id-1", "kind": "identity_verified", "occurred_at": NOW - 400 * DAY},
        {"record_id": "vol-7", "kind": "volunteering", "occurred_at": NOW - 20 * DAY},
    ],
    "tax": [{"record_id": "t-2026-9", "kind": "tax_arrears", "occurred_at": NOW - 30 * DAY}],
    "transit": [{"record_id": "pl-3", "kind": "pay_later_on_time", "occurred_at": NOW - 5 * DAY}],
}
SCORE = 500 + 60 + 8 - 80 + 5


class World:
    def __init__(self, node: RunningNode, clock: WorldClock) -> None:
        self.node, self.clock = node, clock

    @property
    def state(self) -> NodeState:
        state: NodeState = self.node.app.state.node
        return state

    def token(self, subject: str = RESIDENT, *, issued: int | None = None) -> str:
        provider = self.state.dev_idp
        assert provider is not None
        return provider.token(subject, now=self.clock.now if issued is None else issued)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return httpx.request(method, f"{self.node.url}{path}", headers=headers, **kwargs)

    def consents(self) -> dict[str, dict[str, Any]]:
        answer = self.api("GET", "/v1/me/consents").json()["consents"]
        return {c["kind"]: c for c in answer if c["active"]}


def running_world(
    tmp_path: Path, records: dict[str, list[dict[str, Any]]], **settings: Any
) -> Iterator[World]:
    """A node on loopback (the tests' Xiamen, with ``settings`` changed) where she has
    ``records`` (by department) and her ``open_score`` consent."""
    port = free_port()
    node_settings: Settings = xiamen_settings(tmp_path / "node").model_copy(
        update={"node_id": f"http://127.0.0.1:{port}", **settings}
    )
    clock = WorldClock(NOW)
    initialize_node(node_settings, now=clock.now)
    app = create_app(node_settings, now=clock)
    state: NodeState = app.state.node
    with Session(state.engine) as db:
        for department, rows in records.items():
            rows = [{**row, "resident_id": RESIDENT} for row in rows]
            result = push_records(db, state, department, rows, now=NOW - 3600)
            assert result.counts == {"stored": len(rows), "duplicate": 0, "refused": 0}
        # she opened her score once already; sharing is hers to grant on the page
        db.add(Consent(resident_id=RESIDENT, kind="open_score", recipients=[], granted_at=NOW - 60))
        db.commit()
    with RunningNode(app, port) as running:
        yield World(running, clock)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from running_world(tmp_path, RECORDS)


class Watched:
    """A page in its own context, what its console said."""

    def __init__(self, browser: Browser, viewport: dict[str, Any]) -> None:
        self.context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        self.page: Page = self.context.new_page()
        self.page.clock.set_fixed_time(dt.datetime.fromtimestamp(NOW, dt.UTC))
        self.console: list[str] = []
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.on("pageerror", lambda error: self.console.append(str(error)))

    def fits(self) -> bool:
        return bool(
            self.page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
        )

    def clean(self) -> None:
        """No script error, nothing the content security policy refused."""
        refused = [line for line in self.console if "Content Security Policy" in line]
        errors = [line for line in self.console if "Error" in line and "status of" not in line]
        assert not refused, self.console
        assert not errors, self.console


@pytest.fixture
def watched(browser: Browser, viewport: dict[str, Any]) -> Iterator[Watched]:
    seen = Watched(browser, viewport)
    try:
        yield seen
    finally:
        seen.context.close()


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Watched]:
    seen = Watched(browser, {"width": 1280, "height": 800})
    try:
        yield seen
    finally:
        seen.context.close()


def log_in(world: World, page: Page, *, lang: str = "zh") -> None:
    """Through the development identity provider's pages, as she would."""
    page.goto(f"{world.node.url}/me/?lang={lang}")
    page.locator("#login").click()
    page.wait_for_selector("input[name=subject]")
    assert page.url.startswith(f"{world.node.url}/dev-idp/authorize?")
    page.fill("input[name=subject]", RESIDENT)
    page.locator("button[name=login][value=yes]").click()
    page.wait_for_url(f"{world.node.url}/me/")
    expect(page.locator("#app")).to_be_visible()


def english(page: Page) -> None:
    page.locator("#lang").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")


# --- the whole page ---------------------------------------------------------------------


def test_she_logs_in_and_sees_her_score_and_why_each_record_counts(
    world: World, watched: Watched
) -> None:
    page = watched.page
    log_in(world, page)
    expect(page.locator("#score-value")).to_have_text(str(SCORE))
    expect(page.locator("#alliance-band")).to_be_visible()
    # every dimension, each record behind it with its points and, in her language, why
    for name in ("basic", "positive", "dishonesty", "repair", "usage"):
        expect(page.locator(f"#dimension-{name}")).to_contain_text(MODEL.dimensions[name].label)
    tax = page.locator('li[data-record="tax/t-2026-9"]')
    expect(tax).to_contain_text("-80")
    expect(tax).to_contain_text(MODEL.kinds["tax_arrears"].explain_zh)
    expect(page.locator('li[data-record="civil/id-1"]')).to_contain_text(
        MODEL.kinds["identity_verified"].explain_zh
    )
    # the two consents, each with its purpose in plain words
    expect(page.locator("#consent-open_score")).to_contain_text("展示")
    expect(page.locator("#consent-share_alliance")).to_contain_text("未授权")
    assert watched.fits()

    english(page)
    expect(page.locator("#dimension-dishonesty h3")).to_contain_text("Broken promises")
    expect(tax).to_contain_text(MODEL.kinds["tax_arrears"].explain_en)
    expect(page.locator("#consent-share_alliance")).to_contain_text("Not granted")
    expect(page.locator("#consent-share_alliance")).to_contain_text("never a record")
    assert watched.fits()
    # the session lives in this tab's sessionStorage, never in localStorage or the URL
    assert page.evaluate("sessionStorage.getItem('ccx-me-token')").count(".") == 2
    assert "ccx-me-token" not in page.evaluate("JSON.stringify(localStorage)")
    assert "id_token" not in page.url
    watched.clean()


def test_she_grants_and_withdraws_her_consents(world: World, watched: Watched) -> None:
    page = watched.page
    log_in(world, page, lang="en")
    share = page.locator("#consent-share_alliance")
    share.locator("#share-purpose").fill("borrowing books without a deposit in Fuzhou")
    share.locator("button.grant").click()
    expect(share).to_contain_text("Granted")
    expect(share).to_contain_text("every member of the alliance")
    granted = world.consents()["share_alliance"]
    assert granted["recipients"] == ["alliance"]
    assert granted["purpose"] == "borrowing books without a deposit in Fuzhou"

    # withdrawing asks first, and says it revokes her attestations
    share.locator("button.withdraw").click()
    expect(share.locator(".confirm")).to_contain_text("revokes every attestation")
    share.locator("button.confirm-withdraw").click()
    expect(share).to_contain_text("Not granted")
    expect(page.locator("#alert")).to_contain_text("withdrawn")
    assert "share_alliance" not in world.consents()

    # without open_score the score is closed, and the page says how to open it
    opening = page.locator("#consent-open_score")
    opening.locator("button.withdraw").click()
    opening.locator("button.confirm-withdraw").click()
    expect(page.locator("#score")).to_contain_text("first give the consent")
    assert "open_score" not in world.consents()
    opening.locator("button.grant").click()
    expect(page.locator("#score-value")).to_have_text(str(SCORE))
    assert "open_score" in world.consents()
    watched.clean()


def test_she_objects_to_a_record_and_follows_it(world: World, watched: Watched) -> None:
    page = watched.page
    log_in(world, page, lang="en")
    record = page.locator('li[data-record="tax/t-2026-9"]')
    record.locator("button.object").click()
    record.locator("textarea").fill("I paid this tax on time; the receipt is attached.")
    record.locator("button[type=submit]").click()
    expect(page.locator("#objections li.objection")).to_contain_text("tax/t-2026-9")
    expect(page.locator("#objections li.objection")).to_contain_text("open")
    expect(record).to_contain_text("objected")  # it still counts until decided
    expect(page.locator("#score")).to_contain_text("still count")
    [objection] = world.api("GET", "/v1/me/objections").json()["objections"]
    assert objection["record"] == "tax/t-2026-9"
    assert objection["status"] == "open"
    watched.clean()


def test_she_can_do_it_all_by_keyboard(world: World, desktop: Watched) -> None:
    page = desktop.page
    page.goto(f"{world.node.url}/me/?lang=en")
    page.keyboard.press("Tab")  # the header's buttons come first: Log in is the next stop
    for _ in range(4):
        if page.evaluate("document.activeElement.id") == "login":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("input[name=subject]")
    page.fill("input[name=subject]", RESIDENT)
    page.keyboard.press("Enter")  # the form's first button: log in
    page.wait_for_url(f"{world.node.url}/me/")
    page.locator('li[data-record="civil/vol-7"] button.object').focus()
    page.keyboard.press("Enter")
    # the reason's field takes the focus, the send button follows it
    assert page.evaluate("document.activeElement.tagName") == "TEXTAREA"
    page.keyboard.type("These hours were served by my neighbour.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#objections li.objection")).to_contain_text("civil/vol-7")
    # a withdrawal asks first, and the question takes the focus
    page.locator("#consent-open_score button.withdraw").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.className") == "danger confirm-withdraw"
    page.keyboard.press("Tab")  # to Cancel
    page.keyboard.press("Enter")
    expect(page.locator("#consent-open_score button.withdraw")).to_be_visible()
    assert "open_score" in world.consents()


def test_she_makes_a_credential_offer_for_a_phone_or_this_device(
    world: World, watched: Watched
) -> None:
    grant_sharing(world)
    page = watched.page
    log_in(world, page, lang="en")
    page.locator("#cross-device").check()
    page.locator("#make-offer").click()
    qr = page.locator("#offer img.qr")
    expect(qr).to_be_visible()
    assert (qr.get_attribute("src") or "").startswith("data:image/")
    link = page.locator("#offer-link").inner_text()
    assert link.startswith("openid-credential-offer://?credential_offer_uri=")
    wallet = page.locator("#web-wallet-link").get_attribute("href") or ""
    assert wallet.startswith("/wallet/?offer=")
    assert httpx.URL(f"{world.node.url}{wallet}").params["offer"] == link
    expect(page.locator("#tx-code")).to_have_text(re.compile(r"^\S{4,}$"))
    # the offer is the node's: it serves the document the link names, once
    document = httpx.get(httpx.URL(link).params["credential_offer_uri"])
    assert document.status_code == 200, document.text
    assert "pre-authorized_code" in document.text
    assert watched.fits()
    watched.clean()


def test_she_shares_her_domestic_service_credential_apart_and_takes_an_offer_of_it(
    world: World, watched: Watched
) -> None:
    """Issue 18: the node issues a second credential; its consent is a card of its own
    and the offer names the credential she chooses."""
    grant_sharing(world)  # her credit standing's consents, which the domestic one leaves be
    page = watched.page
    log_in(world, page, lang="en")
    domestic = page.locator("#consent-share_domestic_service")
    expect(domestic).to_contain_text("Share my domestic-service credential")
    expect(domestic).to_contain_text("Not granted")
    domestic.locator("#share-domestic-purpose").fill("an agency placing me in Xiamen")
    domestic.locator("button.grant").click()
    expect(domestic).to_contain_text("Granted")
    held = world.consents()
    assert held["share_domestic_service"]["purpose"] == "an agency placing me in Xiamen"
    assert held["share_domestic_service"]["recipients"] == ["alliance"]

    choice = page.locator("#offer-credential")
    expect(choice).to_be_visible()
    expect(choice.locator("option")).to_have_text(
        ["Credit standing", "Domestic-service credential"]
    )
    choice.select_option("ccx_domestic_service")
    page.locator("#make-offer").click()
    link = page.locator("#offer-link").inner_text()
    document = httpx.get(httpx.URL(link).params["credential_offer_uri"]).json()
    assert document["credential_configuration_ids"] == ["ccx_domestic_service"]

    domestic.locator("button.withdraw").click()
    domestic.locator("button.confirm-withdraw").click()
    expect(domestic).to_contain_text("Not granted")
    assert "share_domestic_service" not in world.consents()
    assert "share_alliance" in world.consents()  # the credit standing's consent stays
    page.locator("#lang").click()
    expect(domestic).to_contain_text("向联盟城市分享家政服务证明")
    expect(choice.locator("option")).to_have_text(["信用等级证明", "家政服务证明"])
    assert watched.fits()
    watched.clean()


def test_an_offer_without_her_sharing_consent_says_which_consent_to_grant(
    world: World, desktop: Watched
) -> None:
    page = desktop.page
    log_in(world, page, lang="en")
    page.locator("#make-offer").click()
    expect(page.locator("#alert")).to_contain_text(
        'This needs your consent first, under "My consents": Share my standing'
    )
    expect(page.locator("#offer img.qr")).to_have_count(0)
    english_alert = page.locator("#alert").inner_text()
    page.locator("#lang").click()  # the message follows her language
    expect(page.locator("#alert")).to_contain_text("向联盟城市分享信用等级")
    assert page.locator("#alert").inner_text() != english_alert


def test_she_sees_the_attestations_issued_and_revokes_one(world: World, watched: Watched) -> None:
    grant_sharing(world)
    holder = ec.generate_private_key(ec.SECP256R1())
    issued = fetch_attestation(world.node.url, world.token(), None, holder, NOW)
    assert issued["band"]
    page = watched.page
    log_in(world, page, lang="en")
    [row] = page.locator("#attestations li.attestation").all()
    expect(row).to_contain_text(f"band {issued['band']}")
    expect(row.locator(".status")).to_have_text("valid")
    row.locator("button.revoke").click()
    row = page.locator("#attestations li.attestation")
    row.locator("button.confirm-revoke").click()
    expect(row.locator(".status")).to_have_text("revoked")
    [listed] = world.api("GET", "/v1/me/attestations").json()["attestations"]
    assert listed["status"] == "revoked"
    assert listed["holder_kid"] == P.jwk_thumbprint(P.public_jwk(holder))
    # the status list says so too: what every verifier reads
    assert status_of(world, issued["attestation"]) == 1  # revoked (RFC draft: 0x01)
    watched.clean()


def test_she_suspends_and_resumes_one_and_revokes_a_lost_keys_all(
    world: World, watched: Watched
) -> None:
    """A mislaid phone: suspended, then resumed; a lost one: every attestation of its key
    revoked at once, another key's kept. In Chinese first, then in English."""
    grant_sharing(world)
    phone, laptop = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    on_phone = [fetch_attestation(world.node.url, world.token(), None, phone, NOW) for _ in "ab"]
    on_laptop = fetch_attestation(world.node.url, world.token(), None, laptop, NOW)
    page = watched.page
    log_in(world, page, lang="zh")
    newest_phone = page.locator("#attestations li.attestation").nth(1)  # newest first
    newest_phone.locator("button.suspend").click()
    expect(newest_phone.locator(".status")).to_have_text("暂停")
    expect(page.locator("#alert")).to_contain_text("已暂停")
    assert status_of(world, on_phone[1]["attestation"]) == 2  # suspended (RFC draft: 0x02)
    expect(newest_phone.locator("button.resume")).to_have_text("恢复")
    expect(newest_phone.locator("button.resume")).to_be_focused()

    english(page)
    newest_phone.locator("button.resume").click()
    expect(newest_phone.locator(".status")).to_have_text("valid")
    expect(page.locator("#alert")).to_contain_text("is valid again")
    assert status_of(world, on_phone[1]["attestation"]) == 0
    expect(newest_phone.locator("button.suspend")).to_have_text("Suspend")

    newest_phone.locator("button.revoke-key").click()
    expect(newest_phone.locator(".confirm")).to_contain_text(
        "every attestation bound to this wallet key"
    )
    newest_phone.locator("button.confirm-revoke-key").click()
    expect(page.locator("#alert")).to_contain_text("2 attestation(s) of this wallet key revoked")
    statuses: dict[str, set[str]] = {}
    for listed in world.api("GET", "/v1/me/attestations").json()["attestations"]:
        statuses.setdefault(listed["holder_kid"], set()).add(listed["status"])
    assert statuses == {
        P.jwk_thumbprint(P.public_jwk(phone)): {"revoked"},
        P.jwk_thumbprint(P.public_jwk(laptop)): {"valid"},
    }
    assert [status_of(world, a["attestation"]) for a in on_phone] == [1, 1]
    assert status_of(world, on_laptop["attestation"]) == 0
    expect(page.locator("#attestations li.attestation .status")).to_have_text(
        ["valid", "revoked", "revoked"]
    )
    watched.clean()


def grant_sharing(world: World) -> None:
    answer = world.api(
        "POST",
        "/v1/me/consents",
        json={"kind": "share_alliance", "recipients": ["alliance"], "purpose": "a visit"},
    )
    assert answer.status_code == 201, answer.text


def status_of(world: World, attestation: str) -> int:
    """The attestation's entry in its status list, as the node publishes it, verified."""
    reference = issuer_claims(attestation)["status"]["status_list"]
    jwks = httpx.get(f"{world.node.url}/.well-known/jwks.json").json()
    verified = P.verify_status_list(
        httpx.get(reference["uri"]).text,
        uri=reference["uri"],
        issuer=world.node.url,
        resolve_issuer_key=jwks_resolver(jwks, world.node.url),
        now=world.clock.now,
    )
    return P.status_at(verified.status_list, reference["idx"])


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("spoil", ["tampered", "expired"])
def test_a_bad_or_expired_session_asks_her_to_log_in_again(
    world: World, desktop: Watched, spoil: str
) -> None:
    page = desktop.page
    if spoil == "tampered":
        good = world.token()
        head, body, signature = good.split(".")
        token = f"{head}.{body}.{signature[:-4]}AAAA"
    else:
        token = world.token(issued=NOW - 3600)  # lived 900 s
    page.goto(f"{world.node.url}/me/?lang=en")
    page.evaluate("token => sessionStorage.setItem('ccx-me-token', token)", token)
    page.reload()
    expect(page.locator("#alert")).to_contain_text("log in again")
    expect(page.locator("#alert button")).to_have_text("Log in")
    expect(page.locator("#login-section")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('ccx-me-token')") is None


def test_a_session_that_ends_while_she_reads_asks_her_to_log_in_again(
    world: World, desktop: Watched
) -> None:
    page = desktop.page
    log_in(world, page, lang="en")
    world.clock.advance(3600)  # her token lived 900 s
    page.locator("#consent-open_score button.withdraw").click()
    page.locator("#consent-open_score button.confirm-withdraw").click()
    expect(page.locator("#alert")).to_contain_text("Your session has ended")
    assert "open_score" in world.consents()


def test_a_cancelled_login_says_so(world: World, desktop: Watched) -> None:
    page = desktop.page
    page.goto(f"{world.node.url}/me/?lang=en")
    page.locator("#login").click()
    page.locator("button[name=login][value=cancel]").click()
    page.wait_for_url(f"{world.node.url}/me/login")
    expect(page.locator("#landing-message")).to_contain_text("The login was cancelled")
    expect(page.locator("#landing-message")).to_contain_text("登录已取消")
    page.locator("a.button").click()
    expect(page.locator("#login-section")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('ccx-me-token')") is None


def test_a_login_answer_this_tab_did_not_ask_for_is_refused(world: World, desktop: Watched) -> None:
    """A form post made elsewhere (login CSRF): its state is not the one this tab kept."""
    page = desktop.page
    page.goto(f"{world.node.url}/me/")
    page.evaluate(
        "sessionStorage.setItem('ccx-me-login', JSON.stringify({state: 'a'.repeat(43),"
        " nonce: 'b'.repeat(43)}))"
    )
    page.set_content(
        f'<form method="post" action="{world.node.url}/me/login">'
        f'<input name="id_token" value="{world.token()}"><input name="state" value="{"c" * 43}">'
        "</form>"
    )
    page.evaluate("document.forms[0].submit()")
    page.wait_for_url(f"{world.node.url}/me/login")
    expect(page.locator("#landing-message")).to_contain_text("was not begun on this page")
    assert page.evaluate("sessionStorage.getItem('ccx-me-token')") is None


@pytest.mark.parametrize("failure", ["unavailable", "unreachable"])
def test_a_node_that_fails_is_explained_and_nothing_is_lost(
    world: World, desktop: Watched, failure: str
) -> None:
    page = desktop.page
    log_in(world, page, lang="en")
    record = page.locator('li[data-record="tax/t-2026-9"]')
    record.locator("button.object").click()
    record.locator("textarea").fill("not mine")

    def fail(route: Route) -> None:
        if failure == "unreachable":
            route.abort("internetdisconnected")
        else:
            route.fulfill(
                status=503,
                content_type="application/json",
                body='{"error": {"code": "busy", "message": "the node is busy."}}',
            )

    page.route("**/v1/me/objections", fail)
    record.locator("button[type=submit]").click()
    expected = "can't be reached" if failure == "unreachable" else "unavailable for now (busy)"
    expect(page.locator("#alert")).to_contain_text(expected)
    expect(record.locator("textarea")).to_have_value("not mine")  # what she typed is kept
    page.unroute("**/v1/me/objections")
    record.locator("button[type=submit]").click()
    expect(page.locator("#objections li.objection")).to_contain_text("not mine")
    assert len(world.api("GET", "/v1/me/objections").json()["objections"]) == 1


def test_the_login_landing_page_keeps_the_page_policy_and_is_never_stored(world: World) -> None:
    answer = httpx.post(
        f"{world.node.url}/me/login", data={"id_token": world.token(), "state": "s" * 43}
    )
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert "<script>" not in answer.text  # no inline script: /me/landing.js
    refused = httpx.post(
        f"{world.node.url}/me/login", data={"id_token": world.token() + "x", "state": "s" * 43}
    )
    assert refused.status_code == 401
    assert "data-id-token" not in refused.text
