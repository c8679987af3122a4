"""Issuing attestations over HTTP: proof of possession, consents, status lists, revocation.

The resident logs in with the development identity provider; scores and consents are
written straight into the node's database (their own endpoints are tested elsewhere).
"""

from __future__ import annotations

import calendar
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

import protocol as P
from node.city_mapping import load_mapping_table
from node.errors import NodeError
from node.models import Attestation, AuditEntry, Consent, Nonce, Score, StatusListRow
from node.scoring import load_model
from node.services import issuing, mapping_tables, nonces, status_lists
from tests.conftest import METRICS, NOW, ec_key, ed_key
from tests.node.conftest import Clock
from tests.node.issuing_helpers import (
    BOTH_CONSENTS,
    RESIDENT,
    SCORE_FAIR,
    SCORE_GOOD,
    SCORE_VERY_GOOD,
    XIAMEN_TABLE,
    bearer,
    error_code,
    expected_standing,
    make_proof,
    new_nonce,
    node_key_resolver,
    node_state,
    request_attestation,
    seed_resident,
    session,
    xiamen_table,
)

NODE_ID = "http://xiamen.ccx.test"
VERIFIER = "https://fuzhou.ccx.example"
EVERYTHING = (
    "alliance_score",
    "band",
    "local_score",
    "local_scale",
    "score_date",
    *(f"score_at_least.{t}" for t in (550, 600, 650, 700, 750)),
)
STATUS_VALUES = {"valid": P.STATUS_VALID, "revoked": P.STATUS_REVOKED}
# Issued on 2027-01-15: the next monthly recompute is 2027-02-01T00:00:00Z, plus 5 days.
EXPECTED_EXPIRY = calendar.timegm((2027, 2, 1, 0, 0, 0)) + 5 * 86400


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    seed_resident(client)
    return bearer(client)


def issued(client: TestClient, headers: dict[str, str], holder: Any) -> str:
    response = request_attestation(client, headers, holder)
    assert response.status_code == 201, response.text
    token: str = response.json()["attestation"]
    return token


def status_of(client: TestClient, list_id: int, idx: int, now: int = NOW) -> int:
    response = client.get(f"/v1/status-lists/{list_id}")
    assert response.status_code == 200
    verified = P.verify_status_list(
        response.text,
        uri=f"{NODE_ID}/v1/status-lists/{list_id}",
        issuer=NODE_ID,
        resolve_issuer_key=node_key_resolver(client),
        now=now,
    )
    return P.status_at(verified.status_list, idx)


def attestation_rows(client: TestClient, resident: str = RESIDENT) -> list[Attestation]:
    with session(client) as db:
        return list(
            db.exec(
                select(Attestation)
                .where(Attestation.resident_id == resident)
                .order_by(Attestation.id)  # type: ignore[arg-type]
            ).all()
        )


# --- the happy path ----------------------------------------------------------------------


def test_demo_scores_fall_in_the_bands_these_tests_assume() -> None:
    assert [expected_standing(s)[1] for s in (SCORE_FAIR, SCORE_GOOD, SCORE_VERY_GOOD)] == [
        "fair",
        "good",
        "very_good",
    ]


@pytest.mark.parametrize("make_holder", [ec_key, ed_key], ids=["ES256", "EdDSA"])
def test_issued_attestation_verifies_with_the_nodes_published_key(
    client: TestClient, headers: dict[str, str], make_holder: Any
) -> None:
    holder = make_holder(11)
    response = request_attestation(client, headers, holder)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["format"] == "dc+sd-jwt"
    assert body["expires_at"] == EXPECTED_EXPIRY
    token = body["attestation"]
    assert token.endswith("~")

    presentation = P.present(
        token, disclose=EVERYTHING, holder_key=holder, aud=VERIFIER, nonce="n-1", now=NOW + 5
    )
    verified = P.verify_presentation(
        presentation,
        resolve_issuer_key=node_key_resolver(client),
        aud=VERIFIER,
        nonce="n-1",
        now=NOW + 6,
    )
    alliance_score, band = expected_standing(SCORE_GOOD)
    table = xiamen_table()
    assert verified.issuer == NODE_ID
    assert verified.kid == node_state(client).keyring.active.kid
    assert verified.alliance == "https://alliance.ccx.example"
    assert dict(verified.holder_jwk) == P.public_jwk(holder)
    assert verified.alliance_score == alliance_score == 633
    assert verified.band == band == body["band"] == "good"
    assert verified.score_at_least == {550: True, 600: True, 650: False, 700: False, 750: False}
    assert verified.disclosed["local_score"] == SCORE_GOOD
    assert verified.disclosed["local_scale"] == table.local_scale.to_json()
    assert verified.disclosed["score_date"] == "2027-01-15"
    assert (verified.mapping.city, verified.mapping.version) == ("xiamen", table.version)
    assert verified.mapping.sha256 == table.sha256
    assert verified.status.uri == f"{NODE_ID}/v1/status-lists/1"
    assert (verified.issued_at, verified.expires_at) == (NOW, EXPECTED_EXPIRY)
    assert status_of(client, 1, verified.status.idx) == P.STATUS_VALID


def test_the_node_keeps_what_revocation_needs_and_never_the_token(
    client: TestClient, headers: dict[str, str], node_settings: Any
) -> None:
    holder = ec_key(12)
    token = issued(client, headers, holder)
    [row] = attestation_rows(client)
    claims = json.loads(P.b64url_decode(token.split("~")[0].split(".")[1]))
    assert (row.status_list_id, row.status_idx) == (1, claims["status"]["status_list"]["idx"])
    assert row.holder_kid == P.jwk_thumbprint(P.public_jwk(holder))
    assert (row.band, row.status, row.issued_at, row.expires_at) == (
        "good",
        "valid",
        NOW,
        EXPECTED_EXPIRY,
    )
    issuer_jwt, *disclosures, _ = token.split("~")
    stored = b"".join(path.read_bytes() for path in Path(node_settings.data_dir).glob("node.db*"))
    for secret in (issuer_jwt.split(".")[2], *disclosures):
        assert secret.encode() not in stored


def test_issuance_is_counted_in_the_metrics(client: TestClient, headers: dict[str, str]) -> None:
    issued(client, headers, ec_key(13))
    assert "ccx_attestations_issued_total 1.0" in client.get("/metrics", headers=METRICS).text


def test_extra_members_of_the_holder_jwk_do_not_reach_the_attestation(
    client: TestClient, headers: dict[str, str]
) -> None:
    holder = ec_key(14)
    jwk = {**P.public_jwk(holder), "kid": "my-wallet", "use": "sig", "alg": "ES256"}
    response = request_attestation(client, headers, holder, holder_jwk=jwk)
    assert response.status_code == 201
    claims = json.loads(P.b64url_decode(response.json()["attestation"].split(".")[1]))
    assert claims["cnf"] == {"jwk": P.public_jwk(holder)}


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # mid-month: the first second of next month plus the grace
        (calendar.timegm((2027, 1, 15, 8, 0, 0)), calendar.timegm((2027, 2, 6, 0, 0, 0))),
        # December rolls into January
        (calendar.timegm((2026, 12, 20, 0, 0, 0)), calendar.timegm((2027, 1, 6, 0, 0, 0))),
        # issued at the recompute itself in a 31-day month: 36 days, capped at 35
        (
            calendar.timegm((2027, 1, 1, 0, 0, 0)),
            calendar.timegm((2027, 1, 1, 0, 0, 0)) + P.MAX_ATTESTATION_LIFETIME,
        ),
        # the last second of a month
        (calendar.timegm((2027, 2, 28, 23, 59, 59)), calendar.timegm((2027, 3, 6, 0, 0, 0))),
    ],
)
def test_attestations_live_until_the_next_recompute_plus_grace(now: int, expected: int) -> None:
    assert issuing.attestation_expiry(now, 5 * 86400) == expected


# --- proof of possession: one test per attack ----------------------------------------------


def test_nonce_needs_a_logged_in_resident(client: TestClient) -> None:
    response = client.post("/v1/me/attestations/nonce")
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_nonce_answer_tells_the_wallet_what_to_sign(
    client: TestClient, headers: dict[str, str]
) -> None:
    body = client.post("/v1/me/attestations/nonce", headers=headers).json()
    assert body["aud"] == NODE_ID
    assert body["typ"] == "pop+jwt"
    assert body["expires_at"] == NOW + node_state(client).settings.nonce_lifetime
    assert len(body["nonce"]) >= 43  # 32 random bytes


def test_replayed_nonce_is_refused_the_second_time(
    client: TestClient, headers: dict[str, str]
) -> None:
    holder = ec_key(20)
    proof = make_proof(holder, new_nonce(client, headers))
    first = request_attestation(client, headers, holder, proof=proof)
    assert first.status_code == 201
    replay = request_attestation(client, headers, holder, proof=proof)
    assert replay.status_code == 401
    assert error_code(replay) == "nonce_used"
    assert len(attestation_rows(client)) == 1


def test_a_nonce_the_node_never_gave_is_refused(
    client: TestClient, headers: dict[str, str]
) -> None:
    holder = ec_key(21)
    response = request_attestation(client, headers, holder, proof=make_proof(holder, "made-up"))
    assert response.status_code == 401
    assert error_code(response) == "nonce_unknown"


def test_another_residents_nonce_is_refused(client: TestClient, headers: dict[str, str]) -> None:
    seed_resident(client, "resident-2")
    theirs = new_nonce(client, bearer(client, "resident-2"))
    holder = ec_key(22)
    response = request_attestation(client, headers, holder, proof=make_proof(holder, theirs))
    assert error_code(response) == "nonce_unknown"


def test_a_nonce_given_for_another_purpose_is_refused(
    client: TestClient, headers: dict[str, str]
) -> None:
    ring = node_state(client).signing_keys()
    # sealed by this node for this resident, but as a verification challenge
    challenge = nonces.seal(ring, "verify", RESIDENT, NOW + 60)
    holder = ec_key(23)
    response = request_attestation(client, headers, holder, proof=make_proof(holder, challenge))
    assert error_code(response) == "nonce_unknown"
    nonce = nonces.seal(ring, "pop", RESIDENT, NOW + 60)  # the same, for its purpose
    assert request_attestation(client, headers, holder, proof=make_proof(holder, nonce)).is_success


def test_expired_nonce_is_refused(
    client: TestClient, headers: dict[str, str], clock: Clock
) -> None:
    nonce = new_nonce(client, headers)
    clock.now += node_state(client).settings.nonce_lifetime + 1
    holder = ec_key(24)
    response = request_attestation(
        client, headers, holder, proof=make_proof(holder, nonce, iat=clock.now)
    )
    assert response.status_code == 401
    assert error_code(response) == "nonce_expired"


def test_proof_signed_by_another_key_is_refused_and_leaves_the_nonce_unused(
    client: TestClient, headers: dict[str, str]
) -> None:
    holder, thief = ec_key(25), ec_key(26)
    nonce = new_nonce(client, headers)
    response = request_attestation(client, headers, holder, proof=make_proof(thief, nonce))
    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"
    honest = request_attestation(client, headers, holder, proof=make_proof(holder, nonce))
    assert honest.status_code == 201


def test_proof_with_an_ed25519_signature_for_a_p256_key_is_refused(
    client: TestClient, headers: dict[str, str]
) -> None:
    holder = ec_key(27)
    proof = make_proof(ed_key(27), new_nonce(client, headers))
    response = request_attestation(client, headers, holder, proof=proof)
    assert error_code(response) == "alg_key_mismatch"


def test_holder_jwk_with_a_private_member_is_refused(
    client: TestClient, headers: dict[str, str]
) -> None:
    holder = ec_key(28)
    d = holder.private_numbers().private_value.to_bytes(32, "big")
    jwk = {**P.public_jwk(holder), "d": P.b64url_encode(d)}
    response = request_attestation(client, headers, holder, holder_jwk=jwk)
    assert response.status_code == 400
    assert error_code(response) == "invalid_key"
    assert "private" in response.json()["error"]["message"]


def test_small_order_ed25519_holder_key_is_refused(
    client: TestClient, headers: dict[str, str]
) -> None:
    identity_point = P.b64url_encode((1).to_bytes(32, "little"))
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": identity_point}
    response = request_attestation(
        client, headers, ed_key(29), holder_jwk=jwk, proof=make_proof(ed_key(29), "x")
    )
    assert error_code(response) == "invalid_key"


def test_proof_made_for_another_node_is_refused(
    client: TestClient, headers: dict[str, str]
) -> None:
    holder = ec_key(30)
    proof = make_proof(holder, new_nonce(client, headers), aud="https://fuzhou.ccx.example")
    response = request_attestation(client, headers, holder, proof=proof)
    assert response.status_code == 401
    assert error_code(response) == "proof_aud_mismatch"


def test_stale_proof_is_refused(client: TestClient, headers: dict[str, str]) -> None:
    holder = ec_key(31)
    proof = make_proof(holder, new_nonce(client, headers), iat=NOW - 3600)
    response = request_attestation(client, headers, holder, proof=proof)
    assert error_code(response) == "proof_iat_out_of_window"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ({"typ": "kb+jwt"}, "wrong_typ"),  # a key-binding JWT is not a proof for us
        ({"typ": "JWT"}, "wrong_typ"),
        ({"jwk": {"kty": "EC"}}, "forbidden_header"),  # the key comes from holder_jwk only
        ({"crit": ["exp"]}, "unsupported_crit"),
    ],
)
def test_proof_with_a_wrong_header_is_refused(
    client: TestClient, headers: dict[str, str], header: dict[str, Any], code: str
) -> None:
    holder = ec_key(32)
    proof = make_proof(holder, new_nonce(client, headers), header=header)
    assert error_code(request_attestation(client, headers, holder, proof=proof)) == code


def test_unsigned_proof_is_refused(client: TestClient, headers: dict[str, str]) -> None:
    holder = ec_key(33)
    claims = {"nonce": new_nonce(client, headers), "aud": NODE_ID, "iat": NOW}
    unsigned = ".".join(
        P.b64url_encode(json.dumps(part).encode())
        for part in ({"alg": "none", "typ": "pop+jwt"}, claims)
    )
    response = request_attestation(client, headers, holder, proof=unsigned + ".")
    assert error_code(response) == "alg_not_allowed"


@pytest.mark.parametrize("proof", ["", "not-a-jws", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30"])
def test_malformed_proof_is_refused(
    client: TestClient, headers: dict[str, str], proof: str
) -> None:
    response = request_attestation(client, headers, ec_key(34), proof=proof)
    assert response.status_code == 400
    assert error_code(response) == "malformed_token"


def test_proof_without_a_nonce_is_refused(client: TestClient, headers: dict[str, str]) -> None:
    holder = ec_key(35)
    proof = make_proof(holder, "x", claims={"nonce": 7})
    assert error_code(request_attestation(client, headers, holder, proof=proof)) == "invalid_proof"


def test_used_nonces_are_kept_until_they_expire_and_a_purged_one_stays_refused(
    client: TestClient, headers: dict[str, str], clock: Clock
) -> None:
    """A nonce is sealed, not stored: what the table keeps is the digest of one used
    (single use), until it expires; after the purge a replay is refused by its seal."""
    first, second = ec_key(37), ec_key(38)
    old = new_nonce(client, headers)
    assert request_attestation(client, headers, first, proof=make_proof(first, old)).is_success
    with session(client) as db:
        assert db.get(Nonce, nonces.nonce_digest(old)) is not None  # kept: it was used
    clock.now += node_state(client).settings.nonce_lifetime + nonces.LEEWAY + 1
    fresh = new_nonce(client, headers)
    with session(client) as db:
        assert db.get(Nonce, nonces.nonce_digest(fresh)) is None  # handed out: no write
    assert request_attestation(
        client, headers, second, proof=make_proof(second, fresh, iat=clock.now)
    ).is_success
    with session(client) as db:
        assert nonces.purge_expired_nonces(db, now=clock.now) == 1
        assert db.get(Nonce, nonces.nonce_digest(old)) is None
        assert db.get(Nonce, nonces.nonce_digest(fresh)) is not None
    response = request_attestation(
        client, headers, first, proof=make_proof(first, old, iat=clock.now)
    )
    assert error_code(response) == "nonce_expired"


def test_one_nonce_issues_once_when_two_requests_race(client: TestClient) -> None:
    seed_resident(client)
    state = node_state(client)
    holder = ec_key(36)
    nonce = nonces.create_pop_nonce(state, RESIDENT, now=NOW).value
    proof = make_proof(holder, nonce)
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def attempt() -> None:
        start.wait()
        with session(client) as db:
            try:
                issuing.issue(
                    db, state, RESIDENT, holder_jwk=P.public_jwk(holder), proof=proof, now=NOW
                )
                outcomes.append("issued")
            except NodeError as exc:
                outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["issued", "nonce_used", "nonce_used", "nonce_used"]


# --- consents and score ------------------------------------------------------------------


@pytest.mark.parametrize(
    "granted", [(), ("open_score",), ("share_alliance",)], ids=["none", "open", "share"]
)
def test_both_consents_are_required(client: TestClient, granted: tuple[str, ...]) -> None:
    seed_resident(client, consents=granted)
    headers = bearer(client)
    holder = ec_key(40)
    proof = make_proof(holder, new_nonce(client, headers))
    response = request_attestation(client, headers, holder, proof=proof)
    assert response.status_code == 403
    assert error_code(response) == "consent_required"
    missing = [kind for kind in BOTH_CONSENTS if kind not in granted]
    assert response.json()["error"]["details"] == {"missing": missing}
    # Refused before anything was spent: with the consents given, the same proof works.
    seed_resident(client, consents=missing)
    assert request_attestation(client, headers, holder, proof=proof).status_code == 201


def test_a_withdrawn_consent_does_not_count(client: TestClient, headers: dict[str, str]) -> None:
    with session(client) as db:
        for consent in db.exec(select(Consent).where(Consent.kind == "share_alliance")).all():
            consent.withdrawn_at = NOW - 1
            db.add(consent)
        db.commit()
    response = request_attestation(client, headers, ec_key(41))
    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"missing": ["share_alliance"]}


# --- recipients: the attestation names those of her consent (issue 19, item 4) -----------

QUANZHOU = "https://quanzhou.ccx.example"


def seed_share(client: TestClient, recipients: list[str], resident: str = RESIDENT) -> int:
    """Her share_alliance consent naming ``recipients``, written into the database."""
    with session(client) as db:
        consent = Consent(
            resident_id=resident,
            kind="share_alliance",
            recipients=recipients,
            purpose="visits",
            granted_at=NOW - 60,
        )
        db.add(consent)
        db.commit()
        assert consent.id is not None
        return consent.id


def issuer_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(P.b64url_decode(token.split("~")[0].split(".")[1]))
    return claims


@pytest.mark.parametrize(
    ("recipients", "aud"),
    [
        ([QUANZHOU, VERIFIER], [QUANZHOU, VERIFIER]),
        ([VERIFIER], [VERIFIER]),
        (["alliance"], None),
        # the alliance's own id (the registry's iss), as consents recorded before
        # recipients were checked may hold: every member, as "alliance"
        (["https://alliance.ccx.example"], None),
    ],
    ids=["two-members", "one-member", "every-member", "the-alliance-id"],
)
def test_the_attestation_names_the_recipients_of_her_consent(
    client: TestClient, recipients: list[str], aud: list[str] | None
) -> None:
    seed_resident(client, consents=("open_score",))
    consent_id = seed_share(client, recipients)
    token = issued(client, bearer(client), ec_key(43))

    assert issuer_claims(token).get("aud") == aud
    with session(client) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.action == "attestation.issued")).one()
    assert entry.details["share_consent_id"] == consent_id


def test_a_named_recipient_accepts_the_attestation_and_another_member_refuses_it(
    client: TestClient,
) -> None:
    seed_resident(client, consents=("open_score",))
    seed_share(client, [VERIFIER])
    holder = ec_key(44)
    token = issued(client, bearer(client), holder)

    def verify_at(verifier: str) -> P.VerifiedPresentation:
        presentation = P.present(
            token, disclose=("band",), holder_key=holder, aud=verifier, nonce="n", now=NOW
        )
        return P.verify_presentation(
            presentation,
            resolve_issuer_key=node_key_resolver(client),
            aud=verifier,
            nonce="n",
            now=NOW,
        )

    assert verify_at(VERIFIER).audience == (VERIFIER,)
    with pytest.raises(P.RecipientNotNamed):
        verify_at(QUANZHOU)


def test_a_share_consent_naming_no_one_issues_nothing(client: TestClient) -> None:
    # Never granted through the API (it takes one recipient at least): a row by hand.
    seed_resident(client, consents=("open_score",))
    seed_share(client, [])
    headers = bearer(client)
    holder = ec_key(45)
    proof = make_proof(holder, new_nonce(client, headers))
    response = request_attestation(client, headers, holder, proof=proof)
    assert response.status_code == 403
    assert error_code(response) == "consent_required"
    assert "names no recipient" in response.json()["error"]["message"]
    assert attestation_rows(client) == []


def test_a_resident_without_a_score_gets_no_attestation(client: TestClient) -> None:
    seed_resident(client, score=None)
    response = request_attestation(client, bearer(client), ec_key(42))
    assert response.status_code == 409
    assert error_code(response) == "score_unavailable"


def test_attestation_request_needs_a_logged_in_resident(client: TestClient) -> None:
    holder = ec_key(43)
    response = client.post(
        "/v1/me/attestations",
        json={"holder_jwk": P.public_jwk(holder), "proof": make_proof(holder, "n")},
    )
    assert response.status_code == 401


# --- the mapping table ---------------------------------------------------------------------


def test_mapping_table_comes_from_ccx_mapping_table(
    make_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = json.loads(XIAMEN_TABLE.read_text(encoding="utf-8"))
    claims["version"] = 7
    override = tmp_path / "table.json"
    override.write_text(json.dumps(claims), encoding="utf-8")
    monkeypatch.setenv(mapping_tables.MAPPING_TABLE_ENV, str(override))
    client = make_client()
    seed_resident(client)
    token = request_attestation(client, bearer(client), ec_key(50)).json()["attestation"]
    claims = json.loads(P.b64url_decode(token.split(".")[1]))
    assert claims["mapping"]["version"] == 7


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"city": "fuzhou"}, "serves xiamen"),
        ({"scale_sha256": "00" * 32}, "another alliance scale"),
        ({"knots": "not knots"}, "knots"),
    ],
)
def test_a_mapping_table_that_does_not_fit_is_refused(
    make_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, Any],
    reason: str,
) -> None:
    claims = {**json.loads(XIAMEN_TABLE.read_text(encoding="utf-8")), **change}
    override = tmp_path / "table.json"
    override.write_text(json.dumps(claims), encoding="utf-8")
    monkeypatch.setenv(mapping_tables.MAPPING_TABLE_ENV, str(override))
    client = make_client()
    seed_resident(client)
    response = request_attestation(client, bearer(client), ec_key(51))
    assert response.status_code == 503
    assert error_code(response) == "mapping_table_unavailable"
    assert reason in response.json()["error"]["message"]


def test_a_table_for_another_local_scale_is_refused(tmp_path: Path) -> None:
    # Hangzhou's 钱江分 runs 350..950; the demo model's scale is 0..1000.
    hangzhou = XIAMEN_TABLE.with_name("hangzhou.table.json")
    claims = {**json.loads(hangzhou.read_text(encoding="utf-8")), "city": "xiamen"}
    source = tmp_path / "table.json"
    source.write_text(json.dumps(claims), encoding="utf-8")
    with pytest.raises(NodeError) as refused:
        load_mapping_table("xiamen", load_model(), source=source)
    assert refused.value.code == "mapping_table_unavailable"
    assert "local scale" in refused.value.message


def test_a_missing_mapping_table_is_unavailable(
    make_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(mapping_tables.MAPPING_TABLE_ENV, str(tmp_path / "nowhere.json"))
    client = make_client()
    seed_resident(client)
    response = request_attestation(client, bearer(client), ec_key(52))
    assert error_code(response) == "mapping_table_unavailable"


def test_no_attestation_outside_the_tables_validity(
    client: TestClient, headers: dict[str, str], clock: Clock
) -> None:
    clock.now = xiamen_table().valid_to
    response = request_attestation(client, bearer(client), ec_key(53))
    assert response.status_code == 503
    assert error_code(response) == "mapping_table_not_in_force"


# --- status indexes ------------------------------------------------------------------------


def test_no_status_index_is_used_twice_in_2000_issuances(make_client: Any) -> None:
    client = make_client(status_list_size=1024)  # the smallest allowed: lists fill quickly
    state = node_state(client)
    holder = ec_key(60)
    holder_jwk = P.public_jwk(holder)
    residents = [f"resident-{i}" for i in range(20)]
    for resident in residents:
        seed_resident(client, resident)
    with session(client) as db:
        for n in range(2000):
            resident = residents[n % len(residents)]
            nonce = nonces.create_pop_nonce(state, resident, now=NOW).value
            issuing.issue(
                db,
                state,
                resident,
                holder_jwk=holder_jwk,
                proof=make_proof(holder, nonce),
                now=NOW,
            )
        pairs = db.exec(select(Attestation.status_list_id, Attestation.status_idx)).all()
        lists = db.exec(select(StatusListRow.id, StatusListRow.size)).all()
    assert len(pairs) == 2000
    assert len(set(pairs)) == 2000
    # A new list once one is half full: 2000 entries need 4 lists of 1024, none over half.
    assert [list_id for list_id, _ in lists] == [1, 2, 3, 4]
    per_list = {list_id: sum(1 for p in pairs if p[0] == list_id) for list_id, _ in lists}
    assert per_list == {1: 512, 2: 512, 3: 512, 4: 464}
    assert all(0 <= idx < 1024 for _, idx in pairs)


def test_a_drawn_index_that_is_taken_is_drawn_again(
    client: TestClient, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = iter([5, 5, 5, 9])
    monkeypatch.setattr(status_lists.secrets, "randbelow", lambda _: next(draws))
    issued(client, headers, ec_key(61))
    issued(client, headers, ec_key(62))
    assert [row.status_idx for row in attestation_rows(client)] == [5, 9]


# --- status lists and revocation -----------------------------------------------------------


def test_status_list_is_signed_cacheable_and_verifies(
    client: TestClient, headers: dict[str, str]
) -> None:
    issued(client, headers, ec_key(70))
    response = client.get("/v1/status-lists/1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/statuslist+jwt"
    assert response.headers["cache-control"] == "max-age=300"
    verified = P.verify_status_list(
        response.text,
        uri=f"{NODE_ID}/v1/status-lists/1",
        issuer=NODE_ID,
        resolve_issuer_key=node_key_resolver(client),
        now=NOW,
    )
    assert verified.ttl == 300
    assert verified.expires_at == NOW + 86400
    assert verified.status_list.bits == 2
    assert len(verified.status_list) == 2**17


def test_a_signed_status_list_is_reused_until_it_changes_or_half_its_lifetime_passes(
    client: TestClient, headers: dict[str, str], clock: Clock
) -> None:
    issued(client, headers, ec_key(78))

    def fetch() -> str:
        return client.get("/v1/status-lists/1").text

    first = fetch()
    clock.now += 60
    assert fetch() == first  # unchanged, signed a minute ago: the same token
    clock.now = NOW + 86400 // 2
    halfway = fetch()
    assert halfway != first  # half the lifetime gone: signed afresh
    iat = json.loads(P.b64url_decode(halfway.split(".")[1]))["iat"]
    assert iat == clock.now
    with session(client) as db:  # a change in the same second as the last signature
        issuing.revoke_outstanding(db, node_state(client), RESIDENT, now=clock.now, reason="test")
        db.commit()
    assert fetch() != halfway
    [row] = attestation_rows(client)
    assert status_of(client, 1, row.status_idx, now=clock.now) == P.STATUS_REVOKED


def test_status_list_served_for_another_uri_is_refused(
    client: TestClient, headers: dict[str, str]
) -> None:
    issued(client, headers, ec_key(71))
    with pytest.raises(P.StatusListSubjectMismatch):
        P.verify_status_list(
            client.get("/v1/status-lists/1").text,
            uri=f"{NODE_ID}/v1/status-lists/2",
            issuer=NODE_ID,
            resolve_issuer_key=node_key_resolver(client),
            now=NOW,
        )


@pytest.mark.parametrize("list_id", ["2", "999999"])
def test_unknown_status_list_is_404(
    client: TestClient, headers: dict[str, str], list_id: str
) -> None:
    issued(client, headers, ec_key(72))
    response = client.get(f"/v1/status-lists/{list_id}")
    assert response.status_code == 404
    assert error_code(response) == "status_list_not_found"


def test_revoke_outstanding_shows_in_the_status_list(
    client: TestClient, headers: dict[str, str]
) -> None:
    first, second = issued(client, headers, ec_key(73)), issued(client, headers, ec_key(74))
    seed_resident(client, "resident-2")
    issued(client, bearer(client, "resident-2"), ec_key(75))
    rows = attestation_rows(client)
    assert all(status_of(client, 1, row.status_idx) == P.STATUS_VALID for row in rows)

    state = node_state(client)
    with session(client) as db:
        count = issuing.revoke_outstanding(
            db, state, RESIDENT, now=NOW + 10, reason="consent_withdrawn"
        )
        db.commit()
    assert count == 2
    for token in (first, second):
        idx = json.loads(P.b64url_decode(token.split(".")[1]))["status"]["status_list"]["idx"]
        assert status_of(client, 1, idx) == P.STATUS_REVOKED
    assert {row.status for row in attestation_rows(client)} == {"revoked"}
    [other] = attestation_rows(client, "resident-2")
    assert other.status == "valid"
    assert status_of(client, 1, other.status_idx) == P.STATUS_VALID
    assert "ccx_attestations_revoked_total 2.0" in client.get("/metrics", headers=METRICS).text
    with session(client) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.action == "attestations.revoked")).one()
    assert entry.subject == RESIDENT
    assert entry.details["reason"] == "consent_withdrawn"
    assert entry.details["count"] == 2

    with session(client) as db:  # nothing outstanding any more
        assert issuing.revoke_outstanding(db, state, RESIDENT, now=NOW + 20, reason="again") == 0
        db.commit()


def test_revocation_rolled_back_by_the_caller_leaves_no_trace(
    client: TestClient, headers: dict[str, str]
) -> None:
    issued(client, headers, ec_key(76))
    with session(client) as db:
        issuing.revoke_outstanding(
            db, node_state(client), RESIDENT, now=NOW, reason="consent_withdrawn"
        )
        db.rollback()
    [row] = attestation_rows(client)
    assert row.status == "valid"
    assert status_of(client, 1, row.status_idx) == P.STATUS_VALID
    assert "ccx_attestations_revoked_total 0.0" in client.get("/metrics", headers=METRICS).text


def test_revoke_outstanding_also_revokes_suspended_attestations(
    client: TestClient, headers: dict[str, str]
) -> None:
    issued(client, headers, ec_key(77))
    with session(client) as db:
        row = db.exec(select(Attestation)).one()
        row.status = "suspended"
        db.add(row)
        db.commit()
        assert (
            issuing.revoke_outstanding(
                db, node_state(client), RESIDENT, now=NOW, reason="consent_withdrawn"
            )
            == 1
        )
        db.commit()
    [row] = attestation_rows(client)
    assert row.status == "revoked"
    assert status_of(client, 1, row.status_idx) == P.STATUS_REVOKED


# --- band changes at the monthly rescore ----------------------------------------------------


def set_score(client: TestClient, resident: str, score: float | None) -> None:
    with session(client) as db:
        row = db.get(Score, resident)
        assert row is not None
        if score is None:
            db.delete(row)
        else:
            row.score = score
            db.add(row)
        db.commit()


def test_a_lower_band_revokes_and_a_higher_band_keeps(client: TestClient) -> None:
    people = {
        "falls": (SCORE_GOOD, SCORE_FAIR),  # good -> fair: overstated, revoked
        "rises": (SCORE_GOOD, SCORE_VERY_GOOD),  # good -> very_good: understated, kept
        "stays": (SCORE_GOOD, SCORE_GOOD + 10),  # still good
        "gone": (SCORE_GOOD, None),  # no score any more: can't be confirmed, revoked
    }
    for n, (resident, (before, _)) in enumerate(people.items()):
        seed_resident(client, resident, score=before)
        issued(client, bearer(client, resident), ec_key(80 + n))
    for resident, (_, after) in people.items():
        set_score(client, resident, after)

    with session(client) as db:
        changes = issuing.apply_band_changes(db, node_state(client), NOW + 60)
        db.commit()
    assert changes == issuing.BandChanges(checked=4, revoked=2)
    for resident, expected in [
        ("falls", "revoked"),
        ("rises", "valid"),
        ("stays", "valid"),
        ("gone", "revoked"),
    ]:
        [row] = attestation_rows(client, resident)
        assert row.status == expected, resident
        assert status_of(client, 1, row.status_idx) == STATUS_VALUES[expected]
    with session(client) as db:
        reasons = {
            entry.subject: entry.details["reason"]
            for entry in db.exec(
                select(AuditEntry).where(AuditEntry.action == "attestations.revoked")
            ).all()
        }
    assert reasons == {"falls": "band_lowered", "gone": "score_removed"}
    assert "ccx_attestations_revoked_total 2.0" in client.get("/metrics", headers=METRICS).text


def test_a_fall_across_a_threshold_inside_the_band_revokes(client: TestClient) -> None:
    # Local 736 -> alliance 656 and 728 -> 644, 740 -> 662: all "good" (600..699).
    people = {
        "crosses_650": (736, 728),  # score_at_least.650 was true, is false now: revoked
        "stays_above": (740, 736),  # 662 -> 656: every disclosed fact still holds
        "old_row": (736, 728),  # issued before migration 0002: no score kept, band rule only
    }
    for n, (resident, (before, _)) in enumerate(people.items()):
        seed_resident(client, resident, score=before)
        issued(client, bearer(client, resident), ec_key(90 + n))
    assert [expected_standing(s)[0] for s in (736, 728, 740)] == [656, 644, 662]
    assert {expected_standing(s)[1] for s in (736, 728, 740)} == {"good"}
    with session(client) as db:
        [old] = db.exec(select(Attestation).where(Attestation.resident_id == "old_row")).all()
        assert old.alliance_score == 656  # what issuing keeps
        old.alliance_score = None
        db.add(old)
        db.commit()
    for resident, (_, after) in people.items():
        set_score(client, resident, after)

    with session(client) as db:
        changes = issuing.apply_band_changes(db, node_state(client), NOW + 60)
        db.commit()
    assert changes == issuing.BandChanges(checked=3, revoked=1)
    statuses = {r: attestation_rows(client, r)[0].status for r in people}
    assert statuses == {"crosses_650": "revoked", "stays_above": "valid", "old_row": "valid"}
    with session(client) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.action == "attestations.revoked")).one()
    assert (entry.subject, entry.details["reason"]) == ("crosses_650", "threshold_crossed")


def test_band_changes_leave_expired_and_revoked_attestations_alone(
    client: TestClient, headers: dict[str, str]
) -> None:
    issued(client, headers, ec_key(90))
    set_score(client, RESIDENT, SCORE_FAIR)
    with session(client) as db:
        after_expiry = EXPECTED_EXPIRY
        assert issuing.apply_band_changes(db, node_state(client), after_expiry) == (0, 0)
        db.commit()
    [row] = attestation_rows(client)
    assert row.status == "valid"


def test_a_suspended_attestation_is_revoked_when_the_band_falls_and_kept_otherwise(
    client: TestClient,
) -> None:
    for n, resident in enumerate(("falls", "rises")):
        seed_resident(client, resident)
        issued(client, bearer(client, resident), ec_key(91 + n))
    with session(client) as db:
        for row in db.exec(select(Attestation)).all():
            row.status = "suspended"
            db.add(row)
        db.commit()
    set_score(client, "falls", SCORE_FAIR)
    set_score(client, "rises", SCORE_VERY_GOOD)
    with session(client) as db:
        issuing.apply_band_changes(db, node_state(client), NOW + 60)
        db.commit()
    assert attestation_rows(client, "falls")[0].status == "revoked"
    assert attestation_rows(client, "rises")[0].status == "suspended"
