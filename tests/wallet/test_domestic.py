"""The domestic-service (家政) credential across two cities (issue 18): a Fuzhou
housekeeper's `ccx wallet` holds it beside her credit standing, and answers a Xiamen
agency's and a family's OpenID4VP requests with the one each asks for; the registry says
which members issue which type (fail closed); withdrawing one consent revokes only that
credential. Real nodes on loopback, one registry carrying the alliance CA."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.cli_results import assert_one_line_error, ok
from tests.conftest import NOW
from tests.node.issuing_helpers import seed_housekeeper
from tests.node.oid4vp_helpers import (
    cli_wallet,
    presentation_request,
    presentation_result,
    two_cities,
)
from tests.node.servers import RunningNode
from wallet.cli import wallet_app

DAY = 86400
RESIDENT = "fz-housekeeper"
SCOPES = ("domestic_agency_hiring", "domestic_family_check", "library_deposit_free")


@dataclass
class World:
    fuzhou: RunningNode
    xiamen: RunningNode
    desk: dict[str, str]
    env: dict[str, str]

    def request(self, scenario: str) -> dict[str, Any]:
        return presentation_request(self.xiamen, self.desk, scenario)

    def result(self, made: dict[str, Any]) -> dict[str, Any]:
        return presentation_result(self.xiamen, self.desk, made)

    def answer(self, made: dict[str, Any]) -> Any:
        return CliRunner().invoke(wallet_app, ["answer", made["request"], "--yes"], env=self.env)

    def resident_headers(self) -> dict[str, str]:
        token = httpx.post(f"{self.fuzhou.url}/dev-idp/token", json={"subject": RESIDENT})
        return {"Authorization": f"Bearer {token.json()['access_token']}"}


def day(moment: int) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).date().isoformat()


def housekeeper(node: RunningNode) -> None:
    seed_housekeeper(
        node.app.state.node.engine,
        RESIDENT,
        [
            ("background_check_passed", 100, None),
            ("training_certificate", 400, None),
            *[("service_rating", d, 4.0) for d in (5, 15, 25)],
        ],
        consent=False,  # she grants it through the API (fetch_domestic)
    )


def fetch_domestic(world: World) -> None:
    """Her consent to share it with every member, an offer, `ccx wallet accept-offer`."""
    headers = world.resident_headers()
    granted = httpx.post(f"{world.fuzhou.url}/v1/me/consents", headers=headers,
                         json={"kind": "share_domestic_service", "recipients": ["alliance"],
                               "purpose": "家政机构与雇主核验"})  # fmt: skip
    assert granted.status_code == 201, granted.text
    offer = httpx.post(f"{world.fuzhou.url}/v1/me/credential-offers", headers=headers,
                       json={"credential_configuration_id": "ccx_domestic_service"})  # fmt: skip
    assert offer.status_code == 201, offer.text
    accepted = ok(CliRunner().invoke(wallet_app, ["accept-offer", offer.json()["offer"]],
                                     env=world.env))  # fmt: skip
    assert "domestic service" in accepted.stdout


def make_world(tmp_path: Path, credentials: dict[str, list[str]] | None) -> Iterator[World]:
    with two_cities(tmp_path, scopes=SCOPES, credentials=credentials) as cities:
        env = cli_wallet(cities.fuzhou, tmp_path, RESIDENT)  # a credit standing, too
        housekeeper(cities.fuzhou)
        world = World(cities.fuzhou, cities.xiamen, cities.desk, env)
        fetch_domestic(world)
        yield world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, {"fuzhou": ["credit_standing", "domestic_service"]})


def test_an_agency_decides_on_the_domestic_credential_and_learns_no_score(world: World) -> None:
    made = world.request("domestic_agency_hiring")
    assert made["disclose"] == ["background_check_passed", "no_upheld_complaints_12m",
                                "rating_at_least.4", "certified_since"]  # fmt: skip
    answered = ok(world.answer(made))
    shown = answered.stderr.split("asks to see:")[1]
    assert "rating_at_least.4" in shown
    assert "score" not in shown  # nothing of her credit standing
    decided = world.result(made)
    assert decided["outcome"] == "granted", decided
    assert decided["tier"] == "recommended"
    assert decided["shown"] == {"certified_since": day(NOW - 400 * DAY)}
    assert decided["issuer_city"] == "fuzhou"
    assert decided.get("band") is None  # None fields are left out of the answer
    assert decided.get("alliance_score") is None


def test_a_family_check_discloses_one_claim(world: World) -> None:
    made = world.request("domestic_family_check")
    answered = ok(world.answer(made))
    assert "answered Xiamen: background_check_passed\n" in answered.stdout
    assert world.result(made)["tier"] == "checked"


def test_the_same_wallet_answers_a_credit_scenario_with_the_credit_standing(world: World) -> None:
    made = world.request("library_deposit_free")
    answered = ok(world.answer(made))
    assert "score_at_least." in answered.stdout
    assert world.result(made)["outcome"] == "granted"


def test_withdrawing_the_domestic_consent_revokes_only_that_credential(world: World) -> None:
    withdrawn = httpx.delete(f"{world.fuzhou.url}/v1/me/consents/share_domestic_service",
                             headers=world.resident_headers())  # fmt: skip
    assert withdrawn.json()["revoked_attestations"] == 1
    domestic = world.request("domestic_family_check")
    ok(world.answer(domestic))
    decided = world.result(domestic)
    assert decided["outcome"] == "denied", decided
    assert [r["code"] for r in decided["reasons"]] == ["attestation_revoked"]
    credit = world.request("library_deposit_free")
    ok(world.answer(credit))
    assert world.result(credit)["outcome"] == "granted"


def test_the_wallet_says_when_it_holds_no_credential_of_the_type_asked(world: World) -> None:
    held = ok(CliRunner().invoke(wallet_app, ["list"], env=world.env)).stdout
    assert "domestic service" in held
    made = world.request("domestic_family_check")
    credit_only = CliRunner().invoke(  # attestation 1: her credit standing
        wallet_app, ["answer", made["request"], "--yes", "--attestation", "1"], env=world.env
    )
    assert_one_line_error(credit_only, "wrong_credential", "REQUEST")


@pytest.fixture
def credit_only_registry(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, None)  # the registry lists no credentials: credit alone


def test_a_member_the_registry_does_not_list_for_it_is_refused(
    credit_only_registry: World,
) -> None:
    world = credit_only_registry
    made = world.request("domestic_family_check")
    refused = world.answer(made)
    assert refused.exit_code != 0
    decided = world.result(made)
    assert decided["outcome"] == "refused"
    assert decided["code"] == "credential_not_issued_by_member"


def test_the_ccx_dialect_decides_a_domestic_check_too(world: World) -> None:
    """POST /v1/verifications/challenge and /v1/verifications, with `ccx wallet present`
    of her domestic-service credential (attestation 2: the credit standing is 1)."""
    challenge = httpx.post(f"{world.xiamen.url}/v1/verifications/challenge",
                           json={"scenario": "domestic_agency_hiring"}, headers=world.desk)  # fmt: skip
    assert challenge.status_code == 201, challenge.text
    asked = challenge.json()
    assert asked["disclose"] == ["background_check_passed", "no_upheld_complaints_12m",
                                 "rating_at_least.4", "certified_since"]  # fmt: skip
    presented = ok(CliRunner().invoke(wallet_app, [
        "present", "--attestation", "2", "--aud", asked["aud"], "--nonce", asked["nonce"],
        *[part for claim in asked["disclose"] for part in ("--disclose", claim)],
    ], env=world.env))  # fmt: skip
    decided = httpx.post(f"{world.xiamen.url}/v1/verifications", headers=world.desk,
                         json={"nonce": asked["nonce"],
                               "presentation": presented.stdout.strip()})  # fmt: skip
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert body["decision"] == "granted"
    assert body["tier"]["name"] == "recommended"
    assert body["shown"] == {"certified_since": day(NOW - 400 * DAY)}
    assert "band" not in body


def test_a_kiosk_on_the_command_line_decides_a_domestic_check(world: World) -> None:
    """`ccx kiosk` (issue 20) for the agency: its scenarios with their tiers, a request,
    the decision with the tier and the claim the scenario shows besides."""
    from ccx.app import app

    def kiosk(*args: str) -> Any:
        token = world.desk["Authorization"].removeprefix("Bearer ")
        return ok(CliRunner().invoke(app, ["kiosk", *args, "--node", world.xiamen.url],
                                     env={"CCX_CLIENT_TOKEN": token}, prog_name="ccx"))  # fmt: skip

    menu = kiosk("scenarios").stdout
    assert "domestic_agency_hiring  Domestic-service agency: hiring a housekeeper" in menu
    assert "    recommended: Recommended placement: also rated 4 stars or more" in menu
    made = json.loads(kiosk("request", "--scenario", "domestic_agency_hiring",
                            "--format", "json").stdout)  # fmt: skip
    ok(world.answer(made))
    decided = kiosk("decision", made["transaction_id"], "--wait", "5").stdout.splitlines()
    assert decided[:3] == [
        "granted: domestic_agency_hiring",
        "  tier recommended: Recommended placement: also rated 4 stars or more",
        f"  certified_since: {day(NOW - 400 * DAY)}",
    ]
    assert not any("band" in line for line in decided)  # no score, no band
