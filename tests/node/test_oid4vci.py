"""The node as an OpenID4VCI 1.0 issuer (issue 14): metadata, the resident's offer, the
pre-authorized code grant (with tx_code, with DPoP), the nonce and credential endpoints,
each refusal with its spec code. Sections cited are OpenID4VCI 1.0's."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

import protocol as P
from node.models import AuditEntry, Nonce
from node.services import oid4vci
from protocol._jws import sign_jws
from tests.conftest import NOW, ec_key, ed_key
from tests.node.issuing_helpers import (
    RESIDENT,
    bearer,
    node_key_resolver,
    seed_resident,
    session,
)

ISSUER = "http://xiamen.ccx.test"
TOKEN = f"{ISSUER}/oid4vci/token"
CREDENTIAL = f"{ISSUER}/oid4vci/credential"


@pytest.fixture
def client(make_client: Any) -> TestClient:
    node: TestClient = make_client()
    seed_resident(node)
    return node


# --- helpers: a wallet's steps ---------------------------------------------------------------


def offer(client: TestClient, *, cross_device: bool = False, resident: str = RESIDENT) -> Any:
    response = client.post(
        "/v1/me/credential-offers",
        json={"cross_device": cross_device},
        headers=bearer(client, resident),
    )
    assert response.status_code == 201, response.text
    return response.json()


def fetch_offer(client: TestClient, made: dict[str, Any]) -> dict[str, Any]:
    link = urlsplit(made["offer"])
    assert link.scheme == "openid-credential-offer"
    uri = parse_qs(link.query)["credential_offer_uri"][0]
    assert uri == made["credential_offer_uri"]
    response = client.get(urlsplit(uri).path)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    document: dict[str, Any] = response.json()
    return document


def code_of(document: dict[str, Any]) -> str:
    code: str = document["grants"][oid4vci.PREAUTHORIZED_GRANT]["pre-authorized_code"]
    return code


def token(client: TestClient, form: dict[str, str], *, dpop: str | None = None) -> Any:
    headers = {"DPoP": dpop} if dpop else {}
    return client.post("/oid4vci/token", data=form, headers=headers)


def pre_authorized(code: str, **extra: str) -> dict[str, str]:
    return {"grant_type": oid4vci.PREAUTHORIZED_GRANT, "pre-authorized_code": code, **extra}


def access_token(client: TestClient, *, cross_device: bool = False) -> str:
    made = offer(client, cross_device=cross_device)
    extra = {"tx_code": made["tx_code"]} if cross_device else {}
    answer = token(client, pre_authorized(code_of(fetch_offer(client, made)), **extra))
    assert answer.status_code == 200, answer.text
    value: str = answer.json()["access_token"]
    return value


def c_nonce(client: TestClient) -> str:
    response = client.post("/oid4vci/nonce")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    value: str = response.json()["c_nonce"]
    return value


def key_proof(
    holder: Any, nonce: str, *, aud: str = ISSUER, iat: int = NOW, typ: str = P.PROOF_TYP
) -> str:
    head = {"typ": typ, "jwk": P.public_jwk(holder)}
    return sign_jws(head, json.dumps({"aud": aud, "iat": iat, "nonce": nonce}).encode(), holder)


def credential_request(proof: str) -> dict[str, Any]:
    return {"credential_configuration_id": oid4vci.CONFIGURATION_ID, "proofs": {"jwt": [proof]}}


def ask_credential(
    client: TestClient, access: str, body: Any, *, scheme: str = "Bearer", dpop: str | None = None
) -> Any:
    headers = {"Authorization": f"{scheme} {access}"}
    if dpop:
        headers["DPoP"] = dpop
    return client.post("/oid4vci/credential", json=body, headers=headers)


def dpop_proof(key: Any, url: str, *, access: str | None = None, iat: int = NOW) -> str:
    claims: dict[str, Any] = {"jti": str(uuid.uuid4()), "htm": "POST", "htu": url, "iat": iat}
    if access:
        claims["ath"] = P.access_token_hash(access)
    return sign_jws({"typ": P.DPOP_TYP, "jwk": P.public_jwk(key)}, json.dumps(claims).encode(), key)


def oauth_error(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error", "error_description"}, body
    code: str = body["error"]
    return code


# --- metadata ----------------------------------------------------------------------------


def test_the_issuer_metadata_describes_the_credit_standing_credential(client: TestClient) -> None:
    metadata = client.get("/.well-known/openid-credential-issuer").json()
    assert metadata["credential_issuer"] == ISSUER  # section 12.2.4: equal to the identifier
    assert metadata["credential_endpoint"] == CREDENTIAL
    assert metadata["nonce_endpoint"] == f"{ISSUER}/oid4vci/nonce"
    configuration = metadata["credential_configurations_supported"][oid4vci.CONFIGURATION_ID]
    assert configuration["format"] == "dc+sd-jwt"  # appendix A.3
    assert configuration["vct"] == P.VCT
    assert configuration["scope"] == oid4vci.CONFIGURATION_ID
    assert configuration["cryptographic_binding_methods_supported"] == ["jwk"]
    assert configuration["proof_types_supported"]["jwt"]["proof_signing_alg_values_supported"] == [
        "ES256",
        "EdDSA",
    ]
    display = configuration["credential_metadata"]["display"]
    assert {d["locale"] for d in display} == {"en", "zh-CN"}
    paths = [c["path"] for c in configuration["credential_metadata"]["claims"]]
    assert ["score_at_least"] in paths
    assert ["band"] in paths


def test_the_authorization_server_metadata_names_the_token_endpoint(client: TestClient) -> None:
    metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == ISSUER  # RFC 8414 section 3.3
    assert metadata["token_endpoint"] == TOKEN
    assert oid4vci.PREAUTHORIZED_GRANT in metadata["grant_types_supported"]
    assert metadata["pre-authorized_grant_anonymous_access_supported"] is True


def test_an_issuer_with_a_path_serves_its_metadata_after_the_well_known_name(
    make_client: Any,
) -> None:
    node = make_client(node_id="http://xiamen.ccx.test/city/xm")
    assert node.get("/.well-known/openid-credential-issuer").status_code == 404
    metadata = node.get("/.well-known/openid-credential-issuer/city/xm")  # section 12.2.2
    assert metadata.json()["credential_issuer"] == "http://xiamen.ccx.test/city/xm"
    assert node.get("/.well-known/openid-credential-issuer/other").status_code == 404
    assert node.get("/.well-known/oauth-authorization-server/city/xm").status_code == 200


# --- the flow ----------------------------------------------------------------------------


@pytest.mark.parametrize("holder", [ec_key(40), ed_key(40)], ids=["ES256", "EdDSA"])
def test_a_wallet_gets_the_credential_through_an_offer(client: TestClient, holder: Any) -> None:
    made = offer(client)
    assert made["tx_code"] is None
    document = fetch_offer(client, made)
    assert document["credential_issuer"] == ISSUER  # section 4.1.1
    assert document["credential_configuration_ids"] == [oid4vci.CONFIGURATION_ID]
    assert "tx_code" not in document["grants"][oid4vci.PREAUTHORIZED_GRANT]
    answer = token(client, pre_authorized(code_of(document)))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json()["token_type"] == "Bearer"
    access = answer.json()["access_token"]
    issued = ask_credential(client, access, credential_request(key_proof(holder, c_nonce(client))))
    assert issued.status_code == 200, issued.text
    [entry] = issued.json()["credentials"]  # section 8.3: objects with "credential"
    attestation = entry["credential"]
    presentation = P.present(
        attestation,
        disclose=["band"],
        holder_key=holder,
        aud="https://v.example",
        nonce="n",
        now=NOW,
    )
    verified = P.verify_presentation(
        presentation, resolve_issuer_key=node_key_resolver(client), aud="https://v.example",
        nonce="n", now=NOW,
    )  # fmt: skip
    assert verified.issuer == ISSUER
    assert verified.disclosed == {"band": "good"}
    with session(client) as db:
        issued_entry = db.exec(
            select(AuditEntry).where(AuditEntry.action == "attestation.issued")
        ).one()
    assert issued_entry.details["flow"] == "openid4vci"
    assert issued_entry.details["holder_kid"] == P.jwk_thumbprint(P.public_jwk(holder))


def test_the_offer_link_carries_no_code(client: TestClient) -> None:
    made = offer(client)
    code = code_of(fetch_offer(client, made))
    assert code not in unquote(made["offer"])
    assert code not in made["credential_offer_uri"]


def test_an_offer_is_fetched_once(client: TestClient) -> None:
    made = offer(client)
    fetch_offer(client, made)
    again = client.get(urlsplit(made["credential_offer_uri"]).path)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "offer_not_found"


def test_an_offer_lapses(client: TestClient, clock: Any) -> None:
    made = offer(client)
    clock.now += oid4vci.OFFER_LIFETIME + 1
    assert client.get(urlsplit(made["credential_offer_uri"]).path).status_code == 404


def test_an_offer_needs_both_consents(make_client: Any) -> None:
    node = make_client()
    seed_resident(node, consents=("open_score",))
    response = node.post("/v1/me/credential-offers", json={}, headers=bearer(node))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "consent_required"


def test_secrets_are_kept_only_as_their_digests(client: TestClient) -> None:
    made = offer(client)
    code = code_of(fetch_offer(client, made))
    access = token(client, pre_authorized(code)).json()["access_token"]
    nonce = c_nonce(client)
    with session(client) as db:
        stored = {row.value for row in db.exec(select(Nonce))}
    for secret in (made["credential_offer_uri"].rsplit("/", 1)[1], code, access, nonce):
        assert secret not in stored
        assert P.b64url_encode(secret.encode()) not in stored


# --- the token endpoint ------------------------------------------------------------------


def test_a_pre_authorized_code_is_single_use(client: TestClient) -> None:
    code = code_of(fetch_offer(client, offer(client)))
    assert token(client, pre_authorized(code)).status_code == 200
    again = token(client, pre_authorized(code))
    assert again.status_code == 400
    assert oauth_error(again) == "invalid_grant"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": oid4vci.PREAUTHORIZED_GRANT}, "invalid_request"),
        (pre_authorized("not-a-code-of-ours"), "invalid_grant"),
        (pre_authorized("x", tx_code="123456"), "invalid_grant"),
    ],
    ids=["another_grant", "no_code", "unknown_code", "unknown_code_with_tx_code"],
)
def test_a_bad_token_request_gets_its_oauth_code(
    client: TestClient, form: dict[str, str], error: str
) -> None:
    response = token(client, form)
    assert response.status_code == 400
    assert oauth_error(response) == error
    assert response.headers["cache-control"] == "no-store"


def test_a_token_request_that_is_not_a_form_is_invalid_request(client: TestClient) -> None:
    response = client.post("/oid4vci/token", json={"grant_type": oid4vci.PREAUTHORIZED_GRANT})
    assert (response.status_code, oauth_error(response)) == (400, "invalid_request")
    repeated = client.post(
        "/oid4vci/token",
        content=b"grant_type=a&grant_type=b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert (repeated.status_code, oauth_error(repeated)) == (400, "invalid_request")


def test_a_cross_device_offer_needs_its_transaction_code(client: TestClient) -> None:
    made = offer(client, cross_device=True)
    assert len(made["tx_code"]) == 6
    assert made["tx_code"].isdigit()
    document = fetch_offer(client, made)
    assert document["grants"][oid4vci.PREAUTHORIZED_GRANT]["tx_code"] == {
        "input_mode": "numeric",
        "length": 6,
        "description": document["grants"][oid4vci.PREAUTHORIZED_GRANT]["tx_code"]["description"],
    }
    code = code_of(document)
    missing = token(client, pre_authorized(code))
    assert (missing.status_code, oauth_error(missing)) == (400, "invalid_request")
    wrong = "000000" if made["tx_code"] != "000000" else "111111"
    assert oauth_error(token(client, pre_authorized(code, tx_code=wrong))) == "invalid_grant"
    right = token(client, pre_authorized(code, tx_code=made["tx_code"]))
    assert right.status_code == 200, right.text


def test_guessing_the_transaction_code_burns_the_code(client: TestClient) -> None:
    made = offer(client, cross_device=True)
    code = code_of(fetch_offer(client, made))
    guesses = [f"{n:06d}" for n in range(20) if f"{n:06d}" != made["tx_code"]]
    for guess in guesses[: oid4vci.TX_CODE_TRIES]:
        assert oauth_error(token(client, pre_authorized(code, tx_code=guess))) == "invalid_grant"
    late = token(client, pre_authorized(code, tx_code=made["tx_code"]))
    assert (late.status_code, oauth_error(late)) == (400, "invalid_grant")


def test_a_same_device_offer_refuses_a_transaction_code(client: TestClient) -> None:
    code = code_of(fetch_offer(client, offer(client)))
    response = token(client, pre_authorized(code, tx_code="123456"))
    assert (response.status_code, oauth_error(response)) == (400, "invalid_request")


# --- DPoP ----------------------------------------------------------------------------------


def test_a_dpop_bound_token_needs_proofs_of_its_key(client: TestClient) -> None:
    dpop_key, holder = ec_key(50), ec_key(51)
    code = code_of(fetch_offer(client, offer(client)))
    answer = token(client, pre_authorized(code), dpop=dpop_proof(dpop_key, TOKEN))
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"
    access = answer.json()["access_token"]
    body = credential_request(key_proof(holder, c_nonce(client)))
    as_bearer = ask_credential(client, access, body)
    assert (as_bearer.status_code, oauth_error(as_bearer)) == (401, "invalid_token")
    assert "DPoP" in as_bearer.headers["www-authenticate"]
    stolen = ask_credential(
        client, access, body, scheme="DPoP", dpop=dpop_proof(ec_key(52), CREDENTIAL, access=access)
    )
    assert (stolen.status_code, oauth_error(stolen)) == (401, "invalid_token")
    proof = dpop_proof(dpop_key, CREDENTIAL, access=access)
    issued = ask_credential(client, access, body, scheme="DPoP", dpop=proof)
    assert issued.status_code == 200, issued.text
    replayed = ask_credential(
        client, access, credential_request(key_proof(holder, c_nonce(client))), scheme="DPoP",
        dpop=proof,
    )  # fmt: skip
    assert (replayed.status_code, oauth_error(replayed)) == (400, "invalid_dpop_proof")


def test_a_dpop_proof_for_another_endpoint_is_refused_at_the_token_endpoint(
    client: TestClient,
) -> None:
    code = code_of(fetch_offer(client, offer(client)))
    response = token(client, pre_authorized(code), dpop=dpop_proof(ec_key(53), CREDENTIAL))
    assert (response.status_code, oauth_error(response)) == (400, "invalid_dpop_proof")
    # the code is not used up by a refused request
    assert token(client, pre_authorized(code)).status_code == 200


# --- the credential endpoint -------------------------------------------------------------


def test_a_c_nonce_is_single_use(client: TestClient) -> None:
    holder, access = ec_key(60), access_token(client)
    nonce = c_nonce(client)
    assert (
        ask_credential(client, access, credential_request(key_proof(holder, nonce))).status_code
        == 200
    )
    again = ask_credential(client, access, credential_request(key_proof(holder, nonce)))
    assert (again.status_code, oauth_error(again)) == (400, "invalid_nonce")


def test_a_c_nonce_expires(client: TestClient, clock: Any) -> None:
    nonce = c_nonce(client)
    clock.now += oid4vci.C_NONCE_LIFETIME + 1
    access = access_token(client)  # made after the wait: only the nonce is old
    response = ask_credential(
        client, access, credential_request(key_proof(ec_key(61), nonce, iat=clock.now))
    )
    assert (response.status_code, oauth_error(response)) == (400, "invalid_nonce")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("not an object", "invalid_credential_request"),
        ({"credential_configuration_id": "another", "proofs": {"jwt": ["x"]}}, "unknown_credential_configuration"),
        ({"credential_identifier": "x", "proofs": {"jwt": ["x"]}}, "unknown_credential_identifier"),
        ({"credential_configuration_id": oid4vci.CONFIGURATION_ID, "proof": {"proof_type": "jwt"}}, "invalid_credential_request"),
        ({"credential_configuration_id": oid4vci.CONFIGURATION_ID}, "invalid_proof"),
        ({"credential_configuration_id": oid4vci.CONFIGURATION_ID, "proofs": {"jwt": []}}, "invalid_proof"),
        ({"credential_configuration_id": oid4vci.CONFIGURATION_ID, "proofs": {"jwt": ["a", "b"]}}, "invalid_proof"),
        ({"credential_configuration_id": oid4vci.CONFIGURATION_ID, "proofs": {"ldp_vp": ["a"]}}, "invalid_proof"),
        ({"credential_configuration_id": oid4vci.CONFIGURATION_ID, "proofs": {"jwt": ["not.a.jwt"]}}, "invalid_proof"),
    ],
    ids=[
        "not_an_object",
        "another_configuration",
        "credential_identifier",
        "draft_proof",
        "no_proofs",
        "no_proof_in_proofs",
        "batch",
        "another_proof_type",
        "proof_not_a_jwt",
    ],
)  # fmt: skip
def test_a_bad_credential_request_gets_its_spec_code(
    client: TestClient, body: Any, error: str
) -> None:
    response = ask_credential(client, access_token(client), body)
    assert (response.status_code, oauth_error(response)) == (400, error)


@pytest.mark.parametrize(
    "change",
    ["aud", "iat", "typ"],
)
def test_a_key_proof_that_does_not_hold_is_invalid_proof(client: TestClient, change: str) -> None:
    holder, access, nonce = ec_key(62), access_token(client), c_nonce(client)
    proof = {
        "aud": key_proof(holder, nonce, aud="https://fuzhou.ccx.example"),
        "iat": key_proof(holder, nonce, iat=NOW - 3600),
        "typ": key_proof(holder, nonce, typ="pop+jwt"),
    }[change]
    response = ask_credential(client, access, credential_request(proof))
    assert (response.status_code, oauth_error(response)) == (400, "invalid_proof")
    # the c_nonce is left unused by a refused proof
    assert (
        ask_credential(client, access, credential_request(key_proof(holder, nonce))).status_code
        == 200
    )


def test_without_a_valid_access_token_the_answer_is_401(client: TestClient) -> None:
    body = credential_request(key_proof(ec_key(63), c_nonce(client)))
    for headers in ({}, {"Authorization": "Bearer made-up"}, {"Authorization": "Basic eDp5"}):
        response = client.post("/oid4vci/credential", json=body, headers=headers)
        assert (response.status_code, oauth_error(response)) == (401, "invalid_token")
        assert "www-authenticate" in response.headers


def test_an_access_token_lapses(client: TestClient, clock: Any) -> None:
    access = access_token(client)
    clock.now += oid4vci.ACCESS_TOKEN_LIFETIME + 1
    body = credential_request(key_proof(ec_key(64), c_nonce(client), iat=clock.now))
    response = ask_credential(client, access, body)
    assert (response.status_code, oauth_error(response)) == (401, "invalid_token")


def test_a_consent_withdrawn_after_the_offer_denies_the_credential(client: TestClient) -> None:
    access = access_token(client)
    withdrawn = client.delete("/v1/me/consents/share_alliance", headers=bearer(client))
    assert withdrawn.status_code == 200, withdrawn.text
    response = ask_credential(
        client, access, credential_request(key_proof(ec_key(65), c_nonce(client)))
    )
    assert (response.status_code, oauth_error(response)) == (400, "credential_request_denied")


def test_an_access_token_is_the_residents_alone(make_client: Any) -> None:
    node = make_client()
    seed_resident(node, "resident-a")
    seed_resident(node, "resident-b", score=None)  # no score: her token would be refused
    made = offer(node, resident="resident-a")
    access = token(node, pre_authorized(code_of(fetch_offer(node, made)))).json()["access_token"]
    issued = ask_credential(node, access, credential_request(key_proof(ec_key(66), c_nonce(node))))
    assert issued.status_code == 200
    with session(node) as db:
        entry = db.exec(select(AuditEntry).where(AuditEntry.action == "attestation.issued")).one()
    assert entry.subject == "resident-a"


def test_the_type_metadata_names_every_claim_in_both_languages(client: TestClient) -> None:
    document = client.get("/oid4vci/type-metadata").json()
    assert document["vct"] == P.VCT  # SD-JWT VC, "Type Metadata Format"
    assert {d["locale"] for d in document["display"]} == {"en", "zh-CN"}
    by_path = {tuple(c["path"]): c for c in document["claims"]}
    for name in P.DISCLOSABLE_CLAIMS:
        assert {d["locale"] for d in by_path[(name,)]["display"]} == {"en", "zh-CN"}
    assert by_path[("band",)]["sd"] == "always"
    assert by_path[("score_at_least",)]["sd"] == "never"  # the container: its entries are
    assert by_path[("score_at_least", None)]["sd"] == "always"
