"""A scorecard's reason codes on her page (issue 18, PIPL art. 24): a node scoring with the
learned Hangzhou scorecard names, in her language, the dimensions that lowered her score
most, as its API says; a hand-weighted model's page shows none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from node.scoring import RecordInput, Scorecard, load_model
from tests.conftest import NOW
from tests.pages.test_resident_page import (  # noqa: F401 (fixtures)
    RESIDENT,
    Watched,
    World,
    english,
    log_in,
    running_world,
    watched,
    world,
)

DAY = 86400
CARD = Path(__file__).parent.parent.parent / "simulator" / "cities" / "hangzhou.toml"
MODEL = load_model(CARD)
assert isinstance(MODEL.kind, Scorecard)
CHARACTERISTICS = MODEL.kind.characteristics
# a tax arrear and two pay-later defaults: her dishonesty and use of credit fall
RECORDS: dict[str, list[dict[str, Any]]] = {
    "tax": [{"record_id": "t-1", "kind": "tax_arrears", "occurred_at": NOW - 30 * DAY}],
    "transport": [
        {"record_id": f"pl-{i}", "kind": "pay_later_default", "occurred_at": NOW - i * DAY}
        for i in (3, 9)
    ],
    "public-security": [
        {"record_id": "id-1", "kind": "identity_verified", "occurred_at": NOW - 400 * DAY}
    ],
}


@pytest.fixture
def card_world(tmp_path: Path) -> Iterator[World]:
    yield from running_world(tmp_path, RECORDS, scoring_model=CARD)


def expected() -> tuple[float, list[tuple[str, float]]]:
    inputs = [
        RecordInput(f"{d}/{r['record_id']}", r["kind"], r["occurred_at"])
        for d, rows in RECORDS.items()
        for r in rows
    ]
    breakdown = MODEL.score(inputs, NOW)
    return breakdown.score, [(r.code, r.points_below_max) for r in breakdown.reasons]


def test_her_page_names_what_lowered_her_score_most(card_world: World, watched: Watched) -> None:  # noqa: F811
    score, reasons = expected()
    assert [code for code, _ in reasons][:2] == ["U1", "D1"]  # the records say so
    body = card_world.api("GET", "/v1/me/score").json()
    assert body["model_kind"] == "scorecard"
    assert body["score"] == score
    assert [(r["code"], r["points_below_max"]) for r in body["reasons"]] == reasons
    usage = next(d for d in body["dimensions"] if d["name"] == "usage")
    assert usage["value"] == -80
    assert usage["cap"] == {
        "min": min(CHARACTERISTICS["usage"].points),
        "max": max(CHARACTERISTICS["usage"].points),
    }

    page = watched.page
    log_in(card_world, page)
    expect(page.locator("#score-value")).to_have_text(f"{score:g}")
    items = page.locator("#reasons li")
    expect(items).to_have_count(len(reasons))
    characteristics = CHARACTERISTICS
    for i, (code, _) in enumerate(reasons):
        item = items.nth(i)
        expect(item).to_have_attribute("id", f"reason-{code}")
        dimension = next(c for c in characteristics.values() if c.reason_code == code)
        expect(item).to_contain_text(dimension.reason_zh)
    expect(page.locator("#reasons h3")).to_contain_text("降低")
    assert watched.fits()
    english(page)
    expect(page.locator("#reasons h3")).to_have_text("What lowered your score most")
    expect(items.first).to_contain_text(characteristics["usage"].reason_en)
    expect(items.first).to_contain_text("points below the most this part can give")
    assert watched.fits()
    watched.clean()


def test_a_hand_weighted_models_page_shows_no_reason_codes(world: World, watched: Watched) -> None:  # noqa: F811
    body = world.api("GET", "/v1/me/score").json()
    assert body["model_kind"] == "weighted"
    assert body["reasons"] == []
    page = watched.page
    log_in(world, page)
    expect(page.locator("#score-value")).to_be_visible()
    expect(page.locator("#reasons")).to_have_count(0)
    watched.clean()
