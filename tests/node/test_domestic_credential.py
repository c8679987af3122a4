"""The domestic-service (家政) credential on the node (issue 18): issued over OpenID4VCI
from her records of the kinds the scoring model names, with its own consent
(share_domestic_service) and status-list revocation; separate from the credit standing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

import protocol as P
from node.models import Attestation, AuditEntry, Record
from node.services import oid4vci
from tests.conftest import NOW, ec_key
from tests.node.issuing_helpers import (
    RESIDENT,
    bearer,
    node_key_resolver,
    seed_resident,
    session,
)
from tests.node.test_issuing import status_of
from tests.node.test_oid4vci import (
    ask_credential,
    c_nonce,
    code_of,
    fetch_offer,
    key_proof,
    oauth_error,
    pre_authorized,
    token,
)

DAY = 86400
HOUSEKEEPER = "housekeeper-1"
DOMESTIC = oid4vci.DOMESTIC_CONFIGURATION_ID


@pytest.fixture
def client(make_client: Any) -> TestClient:
    node: TestClient = make_client()
    seed_resident(node, HOUSEKEEPER)  # a score and both credit consents
    with session(node) as db:
        for n, (kind, days_ago, points) in enumerate([
            ("background_check_passed", 200, None),
            ("training_certificate", 700, None),
            ("training_certificate", 100, None),
            ("service_rating", 30, 5.0),
            ("service_rating", 20, 4.0),
            ("service_rating", 10, 4.0),
            ("complaint_upheld", 400, None),  # older than twelve months
        ]):  # fmt: skip
            db.add(Record(department="domestic", record_id=f"r{n}", resident_id=HOUSEKEEPER,
                          kind=kind, occurred_at=NOW - days_ago * DAY, recorded_at=NOW - 60,
                          points=points))  # fmt: skip
        db.commit()
    return node


def day(moment: int) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).date().isoformat()


def consent(client: TestClient, resident: str = HOUSEKEEPER) -> None:
    response = client.post(
        "/v1/me/consents",
        json={"kind": "share_domestic_service", "recipients": ["alliance"],
              "purpose": "家政机构与雇主核验"},
        headers=bearer(client, resident),
    )  # fmt: skip
    assert response.status_code == 201, response.text


def offer(client: TestClient, configuration: str, resident: str = HOUSEKEEPER) -> Any:
    return client.post(
        "/v1/me/credential-offers",
        json={"credential_configuration_id": configuration},
        headers=bearer(client, resident),
    )


def credential(client: TestClient, configuration: str, holder: Any) -> Any:
    made = offer(client, configuration)
    assert made.status_code == 201, made.text
    document = fetch_offer(client, made.json())
    assert document["credential_configuration_ids"] == [configuration]
    access = token(client, pre_authorized(code_of(document))).json()["access_token"]
    body = {"credential_configuration_id": configuration,
            "proofs": {"jwt": [key_proof(holder, c_nonce(client))]}}  # fmt: skip
    return ask_credential(client, access, body)


def shown(client: TestClient, token_: str, holder: Any, paths: tuple[str, ...]) -> Any:
    presentation = P.present(token_, disclose=paths, holder_key=holder, aud="https://v.example",
                             nonce="n", now=NOW)  # fmt: skip
    return P.verify_domestic_presentation(presentation, resolve_issuer_key=node_key_resolver(client),
                                          aud="https://v.example", nonce="n", now=NOW)  # fmt: skip


def test_the_metadata_offers_both_credentials_with_their_own_vct(client: TestClient) -> None:
    configurations = client.get("/.well-known/openid-credential-issuer").json()[
        "credential_configurations_supported"
    ]
    assert configurations[oid4vci.CONFIGURATION_ID]["vct"] == P.VCT
    assert configurations[DOMESTIC]["vct"] == P.DOMESTIC_VCT != P.VCT
    assert configurations[DOMESTIC]["scope"] == DOMESTIC
    metadata = client.get("/oid4vci/type-metadata", params={"vct": P.DOMESTIC_VCT}).json()
    assert metadata["vct"] == P.DOMESTIC_VCT
    paths = [claim["path"] for claim in metadata["claims"]]
    assert ["no_upheld_complaints_12m"] in paths
    assert ["rating_at_least", None] in paths
    assert client.get("/oid4vci/type-metadata").json()["vct"] == P.VCT


def test_a_housekeeper_gets_it_with_claims_from_her_records(client: TestClient) -> None:
    consent(client)
    holder = ec_key(7)
    response = credential(client, DOMESTIC, holder)
    assert response.status_code == 200, response.text
    issued = response.json()["credentials"][0]["credential"]
    verified = shown(client, issued, holder, (
        "background_check_passed", "background_check_date", "certified_since",
        "training_certificates", "rating_count", "no_upheld_complaints_12m",
        "rating_at_least.4", "rating_at_least.5",
    ))  # fmt: skip
    assert verified.claim("background_check_passed") is True
    assert verified.claim("background_check_date") == day(NOW - 200 * DAY)
    assert verified.claim("certified_since") == day(NOW - 700 * DAY)  # the first of two
    assert verified.claim("training_certificates") == 2
    assert verified.claim("rating_count") == 3
    assert verified.claim("rating_at_least.4") is True  # mean 4.33
    assert verified.claim("rating_at_least.5") is False
    assert verified.claim("no_upheld_complaints_12m") is True  # the complaint is 400 days old
    with session(client) as db:
        row = db.exec(select(Attestation).where(Attestation.resident_id == HOUSEKEEPER)).one()
        entry = db.exec(select(AuditEntry).where(AuditEntry.action == "attestation.issued")).one()
    assert row.credential == "domestic_service"
    assert row.band == ""
    assert entry.details["credential"] == "domestic_service"
    assert entry.details["flow"] == "openid4vci"


def test_it_needs_its_own_consent_not_the_credit_ones(client: TestClient) -> None:
    refused = offer(client, DOMESTIC)  # she holds open_score and share_alliance only
    assert refused.status_code == 403
    assert refused.json()["error"]["details"]["missing"] == ["share_domestic_service"]
    consent(client)
    assert offer(client, DOMESTIC).status_code == 201


def test_someone_without_domestic_records_gets_none(client: TestClient) -> None:
    seed_resident(client, RESIDENT)
    consent(client, RESIDENT)
    made = offer(client, DOMESTIC, RESIDENT)
    document = fetch_offer(client, made.json())
    access = token(client, pre_authorized(code_of(document))).json()["access_token"]
    body = {"credential_configuration_id": DOMESTIC,
            "proofs": {"jwt": [key_proof(ec_key(8), c_nonce(client))]}}  # fmt: skip
    response = ask_credential(client, access, body)
    assert response.status_code == 400
    assert oauth_error(response) == "credential_request_denied"
    assert "domestic-service record" in response.json()["error_description"]


def _issued(client: TestClient) -> dict[str, Attestation]:
    with session(client) as db:
        rows = db.exec(select(Attestation).where(Attestation.resident_id == HOUSEKEEPER)).all()
    return {row.credential: row for row in rows}


@pytest.mark.parametrize(
    ("withdrawn", "revoked", "kept"),
    [
        ("share_domestic_service", "domestic_service", "credit_standing"),
        ("share_alliance", "credit_standing", "domestic_service"),
        ("open_score", "credit_standing", "domestic_service"),
    ],
)
def test_withdrawing_one_consent_revokes_only_its_credential(
    client: TestClient, withdrawn: str, revoked: str, kept: str
) -> None:
    consent(client)
    holder = ec_key(7)
    assert credential(client, DOMESTIC, holder).status_code == 200
    assert credential(client, oid4vci.CONFIGURATION_ID, holder).status_code == 200
    answer = client.delete(f"/v1/me/consents/{withdrawn}", headers=bearer(client, HOUSEKEEPER))
    assert answer.status_code == 200, answer.text
    assert answer.json()["revoked_attestations"] == 1
    rows = _issued(client)
    assert rows[revoked].status == "revoked"
    assert rows[kept].status == "valid"
    assert status_of(client, rows[revoked].status_list_id, rows[revoked].status_idx) == 1
    assert status_of(client, rows[kept].status_list_id, rows[kept].status_idx) == 0
    listed = client.get("/v1/me/attestations", headers=bearer(client, HOUSEKEEPER)).json()
    assert {a["credential"]: a["status"] for a in listed["attestations"]} == {
        revoked: "revoked",
        kept: "valid",
    }


def test_the_credit_offer_is_unchanged_by_default(client: TestClient) -> None:
    made = client.post("/v1/me/credential-offers", json={}, headers=bearer(client, HOUSEKEEPER))
    assert fetch_offer(client, made.json())["credential_configuration_ids"] == [
        oid4vci.CONFIGURATION_ID
    ]


def test_an_unknown_configuration_is_refused(client: TestClient) -> None:
    response = offer(client, "ccx_something_else")
    assert response.status_code == 422


@pytest.mark.parametrize("configuration", [["ccx_domestic_service"], None, "ccx_other"])
def test_a_credential_request_naming_no_known_configuration_is_refused(
    client: TestClient, configuration: Any
) -> None:
    """The fuzzer's find: a list where the id goes was a 500 (unhashable), now the spec's
    refusal."""
    consent(client)
    made = offer(client, DOMESTIC)
    access = token(client, pre_authorized(code_of(fetch_offer(client, made.json())))).json()
    body = {"credential_configuration_id": configuration,
            "proofs": {"jwt": [key_proof(ec_key(7), c_nonce(client))]}}  # fmt: skip
    response = ask_credential(client, access["access_token"], body)
    assert response.status_code == 400
    assert oauth_error(response) == "unknown_credential_configuration"


# --- the monthly claim check (the band check's counterpart) ----------------------------


def _push(client: TestClient, kind: str, days_ago: int, record_id: str, *, at: int = NOW) -> None:
    with session(client) as db:
        db.add(Record(department="domestic", record_id=record_id, resident_id=HOUSEKEEPER,
                      kind=kind, occurred_at=NOW - days_ago * DAY, recorded_at=at))  # fmt: skip
        db.commit()


def _claim_check(client: TestClient, now: int) -> tuple[int, int]:
    from node.services import domestic
    from tests.node.issuing_helpers import node_state

    with session(client) as db:
        changes = domestic.apply_claim_changes(db, node_state(client), now)
        db.commit()
    return changes.checked, changes.revoked


def test_an_upheld_complaint_revokes_it_at_the_claim_check(client: TestClient) -> None:
    consent(client)
    assert credential(client, DOMESTIC, ec_key(7)).status_code == 200
    assert credential(client, oid4vci.CONFIGURATION_ID, ec_key(7)).status_code == 200
    assert _claim_check(client, NOW + 60) == (1, 0)  # nothing changed: left as it is
    # upheld after the issuance, about a service before it
    _push(client, "complaint_upheld", 3, "late-complaint", at=NOW + 30)
    assert _claim_check(client, NOW + 60) == (1, 1)
    rows = _issued(client)
    assert rows["domestic_service"].status == "revoked"
    assert rows["credit_standing"].status == "valid"  # the other credential is untouched
    with session(client) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.action == "attestations.revoked")).one()
    assert entry.details["claims"] == ["no_upheld_complaints_12m"]
    assert entry.details["reason"] == "claim_no_longer_true"


def test_a_claim_turned_true_leaves_it_valid(client: TestClient) -> None:
    _push(client, "background_check_failed", 1, "failed-check", at=NOW - 60)  # the latest
    consent(client)
    assert credential(client, DOMESTIC, ec_key(7)).status_code == 200
    _push(client, "background_check_passed", 0, "passed-again", at=NOW + 30)
    assert _claim_check(client, NOW + 60) == (1, 0)
    assert _issued(client)["domestic_service"].status == "valid"


def test_a_check_grown_too_old_revokes_it(client: TestClient) -> None:
    consent(client)
    assert credential(client, DOMESTIC, ec_key(7)).status_code == 200
    later = NOW + (1095 - 200 + 1) * DAY  # the passed check, 200 days old at NOW, expires
    with session(client) as db:  # still unexpired: stretch the attestation for the test
        row = db.exec(select(Attestation).where(Attestation.resident_id == HOUSEKEEPER)).one()
        row.expires_at = later + DAY
        db.add(row)
        db.commit()
    assert _claim_check(client, later) == (1, 1)


@pytest.mark.parametrize(
    ("offered", "asked"),
    [(DOMESTIC, oid4vci.CONFIGURATION_ID), (oid4vci.CONFIGURATION_ID, DOMESTIC)],
)
def test_an_access_token_is_good_for_its_offers_credential_alone(
    client: TestClient, offered: str, asked: str
) -> None:
    consent(client)
    made = offer(client, offered)
    access = token(client, pre_authorized(code_of(fetch_offer(client, made.json())))).json()
    body = {"credential_configuration_id": asked,
            "proofs": {"jwt": [key_proof(ec_key(7), c_nonce(client))]}}  # fmt: skip
    response = ask_credential(client, access["access_token"], body)
    assert response.status_code == 400
    assert oauth_error(response) == "invalid_credential_request"
    assert repr(offered) in response.json()["error_description"]
    assert _issued(client) == {}  # nothing issued
