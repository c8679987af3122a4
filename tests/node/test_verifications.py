"""Service points: the scenario catalogue, the alliance-scale rule, challenges and
verifications (issue 5). In-process nodes with a registry installed in their follower,
and one pair of real nodes over loopback."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

import protocol as P
from alliance.state import DEFAULT_POLICY
from node.app import create_app, initialize_node
from node.models import AuditEntry, Consent
from node.scenarios import (
    CatalogueError,
    Scenario,
    Tier,
    disclosures_for,
    load_catalogue,
    parse_catalogue,
    requirements,
)
from node.services import clients, issuing
from node.services.registry import RegistryFollower
from node.settings import Settings
from tests.conftest import ALLIANCE, METRICS, NOW, ec_key, ed_key
from tests.node.issuing_helpers import (
    bearer,
    error_code,
    make_proof,
    new_nonce,
    node_state,
    request_attestation,
    seed_resident,
)
from tests.node.servers import RunningNode, WorldClock, free_port

ROOT = ed_key(77)
XIAMEN = "http://xiamen.ccx.test"
FUZHOU = "http://fuzhou.ccx.test"
THRESHOLDS = [550, 600, 650, 700, 750]
ALL_KINDS = (
    "library_deposit_free",
    "roadside_parking_pay_later",
    "car_park_pay_later",
    "hospital_treat_first_pay_later",
    "bike_deposit_free",
    "missing_document_approval",
)


# --- helpers ---------------------------------------------------------------------------------


def registry_token(
    members: list[tuple[str, str, dict[str, Any], str]],
    *,
    now: int,
    version: int = 1,
    prev: str | None = None,
    policy: dict[str, Any] | None = None,
) -> str:
    """A registry signed by ROOT; ``members`` as (id, city, jwks, status)."""
    claims = {
        "iss": ALLIANCE,
        "exp": now + 30 * 86400,
        "version": version,
        "prev": prev,
        "scale": {"min": 0, "max": 1000, "thresholds": THRESHOLDS},
        "members": [
            {"id": mid, "name": city.title(), "city": city, "status": status, "jwks": jwks}
            for mid, city, jwks, status in members
        ],
        "mapping_tables": [],
        "policy": policy if policy is not None else DEFAULT_POLICY,
    }
    return P.sign_registry(claims, root_key=ROOT, now=now)


def install_registry(client: TestClient, token: str, now: int) -> RegistryFollower:
    follower = RegistryFollower(root_key=ROOT.public_key())
    follower.accept(token, now=now)
    node_state(client).follower = follower
    return follower


def service_point(
    client: TestClient, *kinds: str, client_id: str = "library-desk"
) -> dict[str, str]:
    with Session(node_state(client).engine) as db:
        _, token = clients.create_client(
            db,
            client_id=client_id,
            department="culture",
            scopes=[f"verify:{kind}" for kind in kinds],
            actor="admin",
            now=NOW,
        )
    return {"Authorization": f"Bearer {token}"}


def forward_to(other: TestClient) -> httpx.Client:
    """An HTTP client whose requests are answered by ``other`` (the other city's node)."""

    def handle(request: httpx.Request) -> httpx.Response:
        answer = other.get(request.url.path)
        return httpx.Response(
            answer.status_code,
            content=answer.content,
            headers={"Content-Type": answer.headers.get("content-type", "")},
        )

    return httpx.Client(transport=httpx.MockTransport(handle))


def attest(client: TestClient, node_id: str, resident: str, score: float) -> tuple[str, Any]:
    """Seed ``resident`` with ``score`` on ``client``'s node and issue her an attestation."""
    seed_resident(client, resident, score=score)
    headers = bearer(client, resident)
    holder = ec_key(hash(resident) % 1000 + 10)
    proof = make_proof(holder, new_nonce(client, headers), aud=node_id, iat=NOW)
    response = request_attestation(client, headers, holder, proof=proof)
    assert response.status_code == 201, response.text
    return response.json()["attestation"], holder


class Alliance:
    """Xiamen (the verifier) and Fuzhou (a visitor's home) in-process, one registry."""

    def __init__(self, make_client: Callable[..., TestClient], tmp_path: Path, **xm: Any) -> None:
        self.xiamen = make_client(**xm)
        self.fuzhou = make_client(data_dir=tmp_path / "fuzhou", node_id=FUZHOU, city="fuzhou")
        self.jwks = {
            XIAMEN: self.xiamen.get("/.well-known/jwks.json").json(),
            FUZHOU: self.fuzhou.get("/.well-known/jwks.json").json(),
        }
        node_state(self.xiamen).http = forward_to(self.fuzhou)

    def members(self, fuzhou_status: str = "active") -> list[tuple[str, str, dict[str, Any], str]]:
        return [
            (XIAMEN, "xiamen", self.jwks[XIAMEN], "active"),
            (FUZHOU, "fuzhou", self.jwks[FUZHOU], fuzhou_status),
        ]

    def install(self, **kwargs: Any) -> RegistryFollower:
        return install_registry(self.xiamen, registry_token(self.members(), now=NOW, **kwargs), NOW)

    def challenge(self, headers: dict[str, str], scenario: str) -> dict[str, Any]:
        response = self.xiamen.post(
            "/v1/verifications/challenge", json={"scenario": scenario}, headers=headers
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def verify(
        self,
        headers: dict[str, str],
        attestation: str,
        holder: Any,
        challenge: dict[str, Any],
        disclose: tuple[str, ...],
        *,
        aud: str | None = None,
        now: int = NOW,
    ) -> httpx.Response:
        presentation = P.present(
            attestation,
            disclose=disclose,
            holder_key=holder,
            aud=aud or challenge["aud"],
            nonce=challenge["nonce"],
            now=now,
        )
        return self.xiamen.post(
            "/v1/verifications",
            json={"nonce": challenge["nonce"], "presentation": presentation},
            headers=headers,
        )


@pytest.fixture
def alliance(make_client: Any, tmp_path: Path) -> Alliance:
    world = Alliance(make_client, tmp_path)
    world.install()
    return world


# --- the catalogue ---------------------------------------------------------------------------


def test_the_demo_catalogue_has_every_policy_kind() -> None:
    catalogue = load_catalogue()
    assert set(ALL_KINDS) <= set(catalogue.scenarios)
    hospital = catalogue.scenarios["hospital_treat_first_pay_later"]
    assert [t.credit_limit_cny for t in hospital.tiers] == [1000, 3000, 5000]
    assert catalogue.scenarios["missing_document_approval"].name_zh == "容缺受理"
    assert catalogue.scenarios["library_deposit_free"].discloses == "threshold"


def _one_scenario(**tier: Any) -> dict[str, Any]:
    base = {"name": "standard", "local_threshold": 700, "benefit": "a benefit", **tier}
    return {"scenarios": {"library": {"name_zh": "图书馆", "name_en": "Library", "tiers": [base]}}}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_one_scenario(colour="red"), "scenarios.library.tiers.0.colour"),
        ({**_one_scenario(), "extra": 1}, "extra"),
        (_one_scenario(local_threshold="700"), "scenarios.library.tiers.0.local_threshold"),
        (_one_scenario(credit_limit_cny=-1), "scenarios.library.tiers.0.credit_limit_cny"),
        ({"scenarios": {}}, "scenarios"),
        (
            {"scenarios": {"Library-X": _one_scenario()["scenarios"]["library"]}},
            "scenarios.Library-X",
        ),
    ],
)
def test_a_bad_catalogue_is_refused_with_the_field_named(data: dict[str, Any], field: str) -> None:
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(data)
    assert caught.value.field == field


def test_tiers_must_rise() -> None:
    data = _one_scenario()
    tiers = data["scenarios"]["library"]["tiers"]
    tiers.append({**tiers[0], "name": "more", "local_threshold": 650})
    with pytest.raises(CatalogueError, match="lowest first") as caught:
        parse_catalogue(data)
    assert caught.value.field == "scenarios.library.tiers.1.local_threshold"


def test_ccx_scenarios_replaces_the_demo_catalogue(make_client: Any, tmp_path: Path) -> None:
    path = tmp_path / "scenarios.toml"
    path.write_text(
        '[scenarios.swimming_pool]\nname_zh = "游泳馆"\nname_en = "Swimming pool"\n'
        '[[scenarios.swimming_pool.tiers]]\nname = "standard"\nlocal_threshold = 700\n'
        'benefit = "Entry first, pay later"\n',
        encoding="utf-8",
    )
    world = Alliance(make_client, tmp_path, scenarios=path)
    world.install()
    headers = service_point(world.xiamen, "swimming_pool", "library_deposit_free")
    body = world.challenge(headers, "swimming_pool")
    assert body["disclose"] == ["score_at_least.650"]  # local 700 -> 604 -> up to 650
    missing = world.xiamen.post(
        "/v1/verifications/challenge", json={"scenario": "library_deposit_free"}, headers=headers
    )
    assert missing.status_code == 404
    assert error_code(missing) == "unknown_scenario"


def test_a_broken_ccx_scenarios_file_fails_closed_naming_the_field(
    make_client: Any, tmp_path: Path
) -> None:
    path = tmp_path / "scenarios.toml"
    path.write_text('[scenarios.pool]\nname_zh = "x"\nname_en = "y"\ntiers = []\nfee = 1\n')
    world = Alliance(make_client, tmp_path, scenarios=path)
    world.install()
    response = world.xiamen.post(
        "/v1/verifications/challenge",
        json={"scenario": "pool"},
        headers=service_point(world.xiamen, "pool"),
    )
    assert response.status_code == 503
    assert error_code(response) == "scenarios_unavailable"
    assert response.json()["error"]["details"]["field"].startswith("scenarios.pool.")


# --- the rule --------------------------------------------------------------------------------


def _scenario(*thresholds: float) -> Scenario:
    tiers = tuple(Tier(f"t{i}", t, f"benefit {i}") for i, t in enumerate(thresholds))
    return Scenario("pool", "泳池", "Pool", "threshold", tiers)


def _identity(score: float) -> int:
    return round(score)


def test_the_rule_rounds_a_mapped_threshold_up_to_a_published_one() -> None:
    reqs = requirements(
        _scenario(551, 600, 740), thresholds=THRESHOLDS, policy_min=None, to_alliance=_identity
    )
    assert [(r.alliance_min, r.disclose) for r in reqs] == [
        (600, "score_at_least.600"),
        (600, "score_at_least.600"),
        (750, "score_at_least.750"),
    ]


def test_the_policy_minimum_sets_the_lowest_tier_and_no_tier_asks_less() -> None:
    reqs = requirements(
        _scenario(500, 520), thresholds=THRESHOLDS, policy_min=600, to_alliance=_identity
    )
    assert [r.alliance_min for r in reqs] == [600, 600]
    reqs = requirements(
        _scenario(700, 760), thresholds=THRESHOLDS, policy_min=550, to_alliance=_identity
    )
    assert [r.disclose for r in reqs] == ["score_at_least.550", "alliance_score"]


def test_above_every_published_threshold_the_score_itself_is_needed() -> None:
    scenario = _scenario(640, 800)
    reqs = requirements(scenario, thresholds=THRESHOLDS, policy_min=None, to_alliance=_identity)
    assert [(r.alliance_min, r.disclose) for r in reqs] == [
        (650, "score_at_least.650"),
        (800, "alliance_score"),
    ]
    assert disclosures_for(scenario, reqs) == ["score_at_least.650", "alliance_score"]


# --- challenges ------------------------------------------------------------------------------


def test_a_challenge_names_the_least_that_decides(alliance: Alliance) -> None:
    headers = service_point(
        alliance.xiamen, "library_deposit_free", "hospital_treat_first_pay_later"
    )
    body = alliance.challenge(headers, "library_deposit_free")
    assert body["aud"] == XIAMEN
    assert body["expires_at"] == NOW + 120
    assert body["disclose"] == ["score_at_least.600"]  # the policy's minimum
    hospital = alliance.challenge(headers, "hospital_treat_first_pay_later")
    # policy 550 for the lowest tier; local 720 -> 633 -> 650; local 790 -> 736 -> 750
    assert hospital["disclose"] == [
        "score_at_least.550",
        "score_at_least.650",
        "score_at_least.750",
    ]
    assert [t["credit_limit_cny"] for t in hospital["tiers"]] == [1000, 3000, 5000]


def test_a_challenge_for_a_scenario_outside_the_scopes_is_forbidden(alliance: Alliance) -> None:
    headers = service_point(alliance.xiamen, "library_deposit_free")
    response = alliance.xiamen.post(
        "/v1/verifications/challenge", json={"scenario": "bike_deposit_free"}, headers=headers
    )
    assert response.status_code == 403
    assert error_code(response) == "forbidden"


def test_a_challenge_needs_credentials_and_a_good_body(alliance: Alliance) -> None:
    anonymous = alliance.xiamen.post(
        "/v1/verifications/challenge", json={"scenario": "library_deposit_free"}
    )
    assert anonymous.status_code == 401
    headers = service_point(alliance.xiamen, "library_deposit_free")
    for body in ({"scenario": "Library!"}, {"scenario": "library_deposit_free", "x": 1}, {}):
        response = alliance.xiamen.post("/v1/verifications/challenge", json=body, headers=headers)
        assert response.status_code == 422, body
        assert error_code(response) == "invalid_request"


def test_a_unknown_scenario_is_404(alliance: Alliance) -> None:
    headers = service_point(alliance.xiamen, "swimming_pool")
    response = alliance.xiamen.post(
        "/v1/verifications/challenge", json={"scenario": "swimming_pool"}, headers=headers
    )
    assert response.status_code == 404
    assert error_code(response) == "unknown_scenario"


def test_without_a_registry_the_node_asks_for_nothing(make_client: Any) -> None:
    client = make_client()
    headers = service_point(client, "library_deposit_free")
    response = client.post(
        "/v1/verifications/challenge", json={"scenario": "library_deposit_free"}, headers=headers
    )
    assert response.status_code == 503
    assert error_code(response) == "registry_unavailable"


def test_the_verification_endpoints_are_rate_limited_per_client(
    make_client: Any, tmp_path: Path, clock: Any
) -> None:
    world = Alliance(make_client, tmp_path, verify_burst=2, verify_rate=0.5)
    world.install()
    headers = service_point(world.xiamen, "library_deposit_free")
    other = service_point(world.xiamen, "library_deposit_free", client_id="another-desk")
    world.challenge(headers, "library_deposit_free")
    world.challenge(headers, "library_deposit_free")
    limited = world.xiamen.post(
        "/v1/verifications/challenge", json={"scenario": "library_deposit_free"}, headers=headers
    )
    assert limited.status_code == 429
    assert error_code(limited) == "rate_limited"
    assert limited.headers["Retry-After"] == "2"
    world.challenge(other, "library_deposit_free")  # a bucket per client
    clock.now += 2
    world.challenge(headers, "library_deposit_free")


# --- verifications ---------------------------------------------------------------------------


def test_a_local_resident_is_granted_on_one_boolean(alliance: Alliance) -> None:
    attestation, holder = attest(alliance.xiamen, XIAMEN, "local-1", 720)  # alliance 633
    headers = service_point(alliance.xiamen, "library_deposit_free")
    challenge = alliance.challenge(headers, "library_deposit_free")
    response = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] == "granted"
    assert body["tier"]["name"] == "standard"
    assert body["issuer_city"] == "xiamen"
    assert [r["code"] for r in body["reasons"]] == ["threshold_met"]
    assert "band" not in body
    assert "alliance_score" not in body
    with Session(node_state(alliance.xiamen).engine) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.action == "verification.decided")).one()
    assert entry.details["decision"] == "granted"
    assert entry.details["client"] == "library-desk"
    assert entry.details["issuer"] == XIAMEN
    assert "eyJ" not in json.dumps(entry.details)


def test_a_visitor_gets_the_tier_her_boolean_proves(alliance: Alliance) -> None:
    attestation, holder = attest(alliance.fuzhou, FUZHOU, "visitor-1", 600)  # alliance 662
    headers = service_point(alliance.xiamen, "hospital_treat_first_pay_later")
    challenge = alliance.challenge(headers, "hospital_treat_first_pay_later")
    response = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.650",))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] == "granted"
    assert body["tier"]["credit_limit_cny"] == 3000
    assert body["issuer_city"] == "fuzhou"
    assert body["issuer"] == FUZHOU


def test_a_visitor_below_the_threshold_is_denied(alliance: Alliance) -> None:
    attestation, holder = attest(alliance.fuzhou, FUZHOU, "visitor-2", 520)  # alliance 544
    headers = service_point(alliance.xiamen, "library_deposit_free")
    challenge = alliance.challenge(headers, "library_deposit_free")
    response = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",))
    body = response.json()
    assert body["decision"] == "denied"
    assert body["tier"] is None
    assert [r["code"] for r in body["reasons"]] == ["below_threshold"]


def test_a_presentation_that_discloses_nothing_useful_is_denied(alliance: Alliance) -> None:
    attestation, holder = attest(alliance.fuzhou, FUZHOU, "visitor-3", 600)
    headers = service_point(alliance.xiamen, "library_deposit_free")
    challenge = alliance.challenge(headers, "library_deposit_free")
    response = alliance.verify(headers, attestation, holder, challenge, ("score_date",))
    assert response.json()["reasons"][0]["code"] == "disclosure_missing"


def test_a_scenario_that_must_see_the_band_gets_it(alliance: Alliance) -> None:
    attestation, holder = attest(alliance.xiamen, XIAMEN, "local-2", 780)  # alliance 721
    headers = service_point(alliance.xiamen, "missing_document_approval")
    challenge = alliance.challenge(headers, "missing_document_approval")
    assert challenge["disclose"] == ["score_at_least.650", "band"]
    without = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.650",))
    assert without.json()["decision"] == "denied"
    assert without.json()["reasons"][0]["code"] == "disclosure_missing"
    challenge = alliance.challenge(headers, "missing_document_approval")
    response = alliance.verify(
        headers, attestation, holder, challenge, ("score_at_least.650", "band")
    )
    body = response.json()
    assert body["decision"] == "granted"
    assert body["band"] == "very_good"


def test_a_replayed_presentation_is_refused(alliance: Alliance) -> None:
    attestation, holder = attest(alliance.xiamen, XIAMEN, "local-3", 720)
    headers = service_point(alliance.xiamen, "library_deposit_free")
    challenge = alliance.challenge(headers, "library_deposit_free")
    first = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",))
    assert first.status_code == 200
    again = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",))
    assert again.status_code == 401
    assert error_code(again) == "nonce_used"


def test_outcomes_and_the_status_cache_show_in_the_metrics(alliance: Alliance) -> None:
    headers = service_point(alliance.xiamen, "library_deposit_free")
    for resident, score in (("visitor-m1", 600), ("visitor-m2", 520)):
        attestation, holder = attest(alliance.fuzhou, FUZHOU, resident, score)
        challenge = alliance.challenge(headers, "library_deposit_free")
        alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",))
    again = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",))
    # a challenge is sealed, not stored: the replay is checked (a cache hit), then
    # refused when its use is recorded, before any outcome is counted
    assert error_code(again) == "nonce_used"
    text = alliance.xiamen.get("/metrics", headers=METRICS).text
    for outcome in ("granted", "denied"):
        line = f'ccx_verifications_total{{outcome="{outcome}",scenario="library_deposit_free"}} 1.0'
        assert line in text
    assert 'ccx_status_cache_events_total{event="fetches"} 1.0' in text  # one list, one fetch
    assert 'ccx_status_cache_events_total{event="hits"} 2.0' in text
    assert "ccx_status_cache_entries 1.0" in text


def test_a_nonce_this_node_never_gave_is_unknown(alliance: Alliance) -> None:
    attestation, holder = attest(alliance.xiamen, XIAMEN, "local-4", 720)
    headers = service_point(alliance.xiamen, "library_deposit_free")
    fake = {"nonce": "made-up", "aud": XIAMEN}
    response = alliance.verify(headers, attestation, holder, fake, ("score_at_least.600",))
    assert response.status_code == 401
    assert error_code(response) == "nonce_unknown"


def test_another_clients_challenge_is_unknown_to_this_one(alliance: Alliance) -> None:
    attestation, holder = attest(alliance.xiamen, XIAMEN, "local-5", 720)
    mine = service_point(alliance.xiamen, "library_deposit_free")
    theirs = service_point(alliance.xiamen, "library_deposit_free", client_id="other-desk")
    challenge = alliance.challenge(mine, "library_deposit_free")
    response = alliance.verify(theirs, attestation, holder, challenge, ("score_at_least.600",))
    assert error_code(response) == "nonce_unknown"
    assert (
        alliance.verify(mine, attestation, holder, challenge, ("score_at_least.600",)).json()[
            "decision"
        ]
        == "granted"
    )  # the failed attempt did not use it up


def test_an_expired_challenge_is_refused(alliance: Alliance, clock: Any) -> None:
    attestation, holder = attest(alliance.xiamen, XIAMEN, "local-6", 720)
    headers = service_point(alliance.xiamen, "library_deposit_free")
    challenge = alliance.challenge(headers, "library_deposit_free")
    clock.now += 121
    response = alliance.verify(
        headers, attestation, holder, challenge, ("score_at_least.600",), now=clock.now
    )
    assert response.status_code == 401
    assert error_code(response) == "nonce_expired"


def test_a_presentation_for_another_verifier_is_refused_and_audited(alliance: Alliance) -> None:
    attestation, holder = attest(alliance.xiamen, XIAMEN, "local-7", 720)
    headers = service_point(alliance.xiamen, "library_deposit_free")
    challenge = alliance.challenge(headers, "library_deposit_free")
    response = alliance.verify(
        headers, attestation, holder, challenge, ("score_at_least.600",), aud=FUZHOU
    )
    assert response.status_code == 401
    assert error_code(response) == "aud_mismatch"
    with Session(node_state(alliance.xiamen).engine) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.action == "verification.refused")).one()
    assert entry.details["code"] == "aud_mismatch"


def attest_naming(
    client: TestClient, node_id: str, resident: str, score: float, recipients: list[str]
) -> tuple[str, Any]:
    """``attest``, with her share_alliance consent naming ``recipients``."""
    seed_resident(client, resident, score=score, consents=("open_score",))
    with Session(node_state(client).engine) as db:
        db.add(
            Consent(
                resident_id=resident,
                kind="share_alliance",
                recipients=recipients,
                purpose="visits",
                granted_at=NOW - 60,
            )
        )
        db.commit()
    headers = bearer(client, resident)
    holder = ec_key(hash(resident) % 1000 + 10)
    proof = make_proof(holder, new_nonce(client, headers), aud=node_id, iat=NOW)
    response = request_attestation(client, headers, holder, proof=proof)
    assert response.status_code == 201, response.text
    return response.json()["attestation"], holder


def test_a_visitor_whose_consent_names_this_node_is_decided(alliance: Alliance) -> None:
    attestation, holder = attest_naming(alliance.fuzhou, FUZHOU, "fz-named", 600, [XIAMEN])
    headers = service_point(alliance.xiamen, "library_deposit_free")
    challenge = alliance.challenge(headers, "library_deposit_free")
    response = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",))
    assert response.status_code == 200, response.text
    assert response.json()["decision"] == "granted"


def test_a_visitor_whose_consent_does_not_name_this_node_is_refused_and_audited(
    alliance: Alliance,
) -> None:
    # Her consent names her home node only: Xiamen is a member, but not a recipient.
    attestation, holder = attest_naming(alliance.fuzhou, FUZHOU, "fz-home", 600, [FUZHOU])
    headers = service_point(alliance.xiamen, "library_deposit_free")
    challenge = alliance.challenge(headers, "library_deposit_free")
    response = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",))
    assert response.status_code == 403
    assert error_code(response) == "recipient_not_named"
    assert XIAMEN in response.json()["error"]["message"]
    with Session(node_state(alliance.xiamen).engine) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.action == "verification.refused")).one()
    assert entry.details["code"] == "recipient_not_named"
    again = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",))
    assert error_code(again) == "nonce_used"  # the refusal used the challenge up
    line = 'ccx_verifications_total{outcome="recipient_not_named",scenario="library_deposit_free"}'
    assert f"{line} 1.0" in alliance.xiamen.get("/metrics", headers=METRICS).text


def test_a_local_whose_consent_names_only_other_members_is_refused_at_home(
    alliance: Alliance,
) -> None:
    # The home node is a recipient like any other (docs/PROTOCOL.md 3.3).
    attestation, holder = attest_naming(alliance.xiamen, XIAMEN, "xm-away", 720, [FUZHOU])
    headers = service_point(alliance.xiamen, "library_deposit_free")
    challenge = alliance.challenge(headers, "library_deposit_free")
    response = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",))
    assert response.status_code == 403
    assert error_code(response) == "recipient_not_named"


def test_a_bad_verification_body_is_422(alliance: Alliance) -> None:
    headers = service_point(alliance.xiamen, "library_deposit_free")
    for body in (
        {"nonce": "n"},
        {"nonce": "n", "presentation": 5},
        {"nonce": "x" * 65, "presentation": "a"},
    ):
        response = alliance.xiamen.post("/v1/verifications", json=body, headers=headers)
        assert response.status_code == 422, body


def test_a_revoked_attestation_is_denied(alliance: Alliance) -> None:
    attestation, holder = attest(alliance.xiamen, XIAMEN, "local-8", 720)
    state = node_state(alliance.xiamen)
    with Session(state.engine) as db:
        assert issuing.revoke_outstanding(db, state, "local-8", now=NOW, reason="test") == 1
        db.commit()
    headers = service_point(alliance.xiamen, "library_deposit_free")
    challenge = alliance.challenge(headers, "library_deposit_free")
    body = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",)).json()
    assert body["decision"] == "denied"
    assert [r["code"] for r in body["reasons"]] == ["attestation_revoked"]


def test_a_revoked_visitor_attestation_is_denied_through_her_citys_list(alliance: Alliance) -> None:
    attestation, holder = attest(alliance.fuzhou, FUZHOU, "visitor-4", 600)
    state = node_state(alliance.fuzhou)
    with Session(state.engine) as db:
        issuing.revoke_outstanding(db, state, "visitor-4", now=NOW, reason="test")
        db.commit()
    headers = service_point(alliance.xiamen, "library_deposit_free")
    challenge = alliance.challenge(headers, "library_deposit_free")
    body = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",)).json()
    assert [r["code"] for r in body["reasons"]] == ["attestation_revoked"]


def test_an_attestation_older_than_the_policy_allows_is_denied(
    make_client: Any, tmp_path: Path, clock: Any
) -> None:
    world = Alliance(make_client, tmp_path)
    policy = copy.deepcopy(DEFAULT_POLICY)
    policy["max_attestation_age"] = 3600
    world.install(policy=policy)
    attestation, holder = attest(world.xiamen, XIAMEN, "local-9", 720)
    clock.now += 3601
    headers = service_point(world.xiamen, "library_deposit_free")
    challenge = world.challenge(headers, "library_deposit_free")
    body = world.verify(
        headers, attestation, holder, challenge, ("score_at_least.600",), now=clock.now
    ).json()
    assert [r["code"] for r in body["reasons"]] == ["attestation_too_old"]


def test_when_the_visitors_city_is_unreachable_the_node_fails_closed(alliance: Alliance) -> None:
    attestation, holder = attest(alliance.fuzhou, FUZHOU, "visitor-5", 600)
    node_state(alliance.xiamen).http = httpx.Client(
        transport=httpx.MockTransport(lambda request: httpx.Response(502))
    )
    headers = service_point(alliance.xiamen, "library_deposit_free")
    challenge = alliance.challenge(headers, "library_deposit_free")
    response = alliance.verify(headers, attestation, holder, challenge, ("score_at_least.600",))
    assert response.status_code == 503
    assert error_code(response) == "status_unavailable"


def test_a_city_that_is_not_a_member_is_refused(make_client: Any, tmp_path: Path) -> None:
    world = Alliance(make_client, tmp_path)
    install_registry(
        world.xiamen,
        registry_token([(XIAMEN, "xiamen", world.jwks[XIAMEN], "active")], now=NOW),
        NOW,
    )
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-6", 600)
    headers = service_point(world.xiamen, "library_deposit_free")
    challenge = world.challenge(headers, "library_deposit_free")
    response = world.verify(headers, attestation, holder, challenge, ("score_at_least.600",))
    assert response.status_code == 401
    assert error_code(response) == "issuer_not_member"


# --- two real nodes over loopback ----------------------------------------------------------


def _settings(folder: Path, port: int, city: str) -> Settings:
    return Settings(
        data_dir=folder,
        node_id=f"http://127.0.0.1:{port}",
        city=city,
        scheduler=False,
        dev_idp=True,
        keyring_passphrase="a node passphrase for tests",  # type: ignore[arg-type]
    )


def _attest_over_http(
    node: RunningNode,
    resident: str,
    score: float,
    holder: Any,
    recipients: tuple[str, ...] = ("alliance",),
    *,
    now: int,
) -> str:
    """An attestation of ``resident`` fetched over HTTP, the node's clock at ``now``."""
    seed_resident_app(node, resident, score, recipients, now=now)
    token = httpx.post(f"{node.url}/dev-idp/token", json={"subject": resident}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    nonce = httpx.post(f"{node.url}/v1/me/attestations/nonce", headers=headers).json()["nonce"]
    proof = make_proof(holder, nonce, aud=node.url, iat=now)
    response = httpx.post(
        f"{node.url}/v1/me/attestations",
        headers=headers,
        json={"holder_jwk": P.public_jwk(holder), "proof": proof},
    )
    assert response.status_code == 201, response.text
    attestation: str = response.json()["attestation"]
    return attestation


def seed_resident_app(
    node: RunningNode, resident: str, score: float, recipients: tuple[str, ...], *, now: int
) -> None:
    from node.models import Consent, Score

    with Session(node.app.state.node.engine) as db:
        db.add(Score(resident_id=resident, score=score, by_dimension={}, computed_at=now - 60,
                     model_version="demo-2026.11"))  # fmt: skip
        db.add(Consent(resident_id=resident, kind="open_score", recipients=[], granted_at=now - 60))
        db.add(Consent(resident_id=resident, kind="share_alliance", recipients=list(recipients),
                       purpose="visits", granted_at=now - 60))  # fmt: skip
        db.commit()


def _present_over_http(
    verifier: RunningNode, headers: dict[str, str], attestation: str, holder: Any, *, now: int
) -> httpx.Response:
    challenge = httpx.post(
        f"{verifier.url}/v1/verifications/challenge",
        json={"scenario": "library_deposit_free"},
        headers=headers,
    )
    assert challenge.status_code == 201, challenge.text
    body = challenge.json()
    presentation = P.present(
        attestation,
        disclose=body["disclose"],
        holder_key=holder,
        aud=body["aud"],
        nonce=body["nonce"],
        now=now,
    )
    return httpx.post(
        f"{verifier.url}/v1/verifications",
        json={"nonce": body["nonce"], "presentation": presentation},
        headers=headers,
    )


def test_a_fuzhou_resident_at_a_xiamen_service_point_over_loopback(tmp_path: Path) -> None:
    fz_port, xm_port = free_port(), free_port()
    fz, xm = (
        _settings(tmp_path / "fz", fz_port, "fuzhou"),
        _settings(tmp_path / "xm", xm_port, "xiamen"),
    )
    clock = WorldClock(NOW)  # both nodes, the registry and the holders at the test's time
    now = clock()
    fz_ring, xm_ring = initialize_node(fz, now=now), initialize_node(xm, now=now)
    members = [
        (xm.node_id, "xiamen", xm_ring.jwks(now), "active"),
        (fz.node_id, "fuzhou", fz_ring.jwks(now), "active"),
    ]
    first = registry_token(members, now=now)
    xm_app = create_app(xm, now=clock)
    follower = RegistryFollower(root_key=ROOT.public_key())
    follower.accept(first, now=now)
    xm_app.state.node.follower = follower
    fz_app = create_app(fz, now=clock)
    with RunningNode(fz_app, fz_port) as fuzhou, RunningNode(xm_app, xm_port) as xiamen:
        with Session(xm_app.state.node.engine) as db:
            _, token = clients.create_client(
                db, client_id="library-desk", department="culture",
                scopes=["verify:library_deposit_free"], actor="admin", now=now,
            )  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        good_holder, poor_holder = ec_key(31), ec_key(32)
        # her consent names Xiamen: the attestation's aud, which Xiamen finds itself in
        good = _attest_over_http(fuzhou, "fz-good", 600, good_holder, (xm.node_id,), now=now)
        poor = _attest_over_http(fuzhou, "fz-poor", 520, poor_holder, now=now)  # alliance 544
        assert json.loads(P.b64url_decode(good.split(".")[1]))["aud"] == [xm.node_id]

        granted = _present_over_http(xiamen, headers, good, good_holder, now=now)
        assert granted.status_code == 200, granted.text
        assert granted.json()["decision"] == "granted"
        assert granted.json()["issuer_city"] == "fuzhou"
        denied = _present_over_http(xiamen, headers, poor, poor_holder, now=now)
        assert denied.json()["decision"] == "denied"
        assert denied.json()["reasons"][0]["code"] == "below_threshold"

        members[1] = (fz.node_id, "fuzhou", fz_ring.jwks(now), "suspended")
        clock.advance(1)
        second = registry_token(members, now=clock(), version=2, prev=P.registry_hash(first))
        follower.accept(second, now=clock())
        refused = _present_over_http(xiamen, headers, good, good_holder, now=clock())
        assert refused.status_code == 401
        assert error_code(refused) == "issuer_suspended"
