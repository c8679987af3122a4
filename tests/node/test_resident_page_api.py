"""What the resident's page (issue 16, node/web/me) needs of the node: her attestations
listed and revoked one by one, her login through the identity provider back to
``/me/login`` (the development provider's registered redirect URIs), and the score's
explanations and alliance standing."""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlmodel import select

from node.models import Attestation, AuditEntry
from node.scoring import ModelError, ScoringModel, load_model
from node.services import residents
from tests.conftest import NOW
from tests.node.issuing_helpers import (
    SCORE_GOOD,
    bearer,
    error_code,
    expected_standing,
    node_state,
    request_attestation,
    seed_resident,
    session,
)
from tests.node.test_issuing import status_of

NODE_ID = "http://xiamen.ccx.test"
OTHER = "resident-2"
LOGIN_STATE, LOGIN_NONCE = "s" * 43, "n" * 43


def issue(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    response = request_attestation(client, headers, holder())
    assert response.status_code == 201, response.text
    return attestations(client, headers)[0]  # newest first


def holder() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def attestations(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get("/v1/me/attestations", headers=headers)
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()["attestations"]
    return listed


# --- her attestations --------------------------------------------------------------------


def test_attestations_need_her_token(client: TestClient) -> None:
    assert client.get("/v1/me/attestations").status_code == 401
    assert client.post("/v1/me/attestations/1/revoke").status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert error_code(client.get("/v1/me/attestations", headers=bad)) == "unauthorized"


def test_she_sees_her_attestations_only_newest_first(client: TestClient) -> None:
    seed_resident(client)
    seed_resident(client, OTHER)
    mine, theirs = bearer(client), bearer(client, OTHER)
    first = issue(client, mine)
    request_attestation(client, mine, holder())
    issue(client, theirs)
    listed = attestations(client, mine)
    assert [a["id"] for a in listed] == sorted((a["id"] for a in listed), reverse=True)
    assert len(listed) == 2
    assert first["id"] in {a["id"] for a in listed}
    alliance_score, band = expected_standing(SCORE_GOOD)
    assert listed[0] | {"id": 0, "holder_kid": ""} == {
        "id": 0,
        "holder_kid": "",
        "credential": "credit_standing",  # issue 18: which of the two types
        "band": band,
        "alliance_score": alliance_score,
        "issued_at": NOW,
        "expires_at": listed[0]["expires_at"],
        "status": "valid",
    }
    assert len(attestations(client, theirs)) == 1
    assert not attestations(client, bearer(client, "resident-without-any"))


def test_she_revokes_one_attestation_and_its_status_list_says_so(client: TestClient) -> None:
    seed_resident(client)
    headers = bearer(client)
    kept = issue(client, headers)
    revoked = issue(client, headers)
    answer = client.post(f"/v1/me/attestations/{revoked['id']}/revoke", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "revoked"
    with session(client) as db:
        rows = {a.id: a for a in db.exec(select(Attestation))}
        [entry] = db.exec(select(AuditEntry).where(AuditEntry.action == "attestations.revoked"))
    assert rows[revoked["id"]].status == "revoked"
    assert rows[kept["id"]].status == "valid"  # one, not all of hers
    revoked_row = rows[revoked["id"]]
    assert status_of(client, revoked_row.status_list_id, revoked_row.status_idx) == 1
    kept_row = rows[kept["id"]]
    assert status_of(client, kept_row.status_list_id, kept_row.status_idx) == 0
    assert (entry.actor, entry.subject) == ("resident", "resident-1")
    assert entry.details == {
        "reason": "holder_revoked",
        "count": 1,
        "attestation_ids": [revoked["id"]],
    }


def test_revoking_twice_says_it_is_revoked_already(client: TestClient) -> None:
    seed_resident(client)
    headers = bearer(client)
    attestation = issue(client, headers)
    path = f"/v1/me/attestations/{attestation['id']}/revoke"
    assert client.post(path, headers=headers).status_code == 200
    again = client.post(path, headers=headers)
    assert again.status_code == 409
    assert error_code(again) == "already_revoked"


def test_another_residents_attestation_is_not_found_and_stays_valid(client: TestClient) -> None:
    seed_resident(client)
    seed_resident(client, OTHER)
    theirs = issue(client, bearer(client, OTHER))
    answer = client.post(f"/v1/me/attestations/{theirs['id']}/revoke", headers=bearer(client))
    assert answer.status_code == 404
    assert error_code(answer) == "attestation_not_found"
    unknown = client.post("/v1/me/attestations/999/revoke", headers=bearer(client))
    assert error_code(unknown) == "attestation_not_found"
    assert attestations(client, bearer(client, OTHER))[0]["status"] == "valid"


@pytest.mark.parametrize("attestation_id", ["0", "-1", "x", str(2**31)])
def test_an_attestation_id_that_is_no_row_id_is_refused(
    client: TestClient, attestation_id: str
) -> None:
    seed_resident(client)
    answer = client.post(f"/v1/me/attestations/{attestation_id}/revoke", headers=bearer(client))
    assert answer.status_code == 422


def test_the_issuance_route_is_unchanged_beside_the_list(client: TestClient) -> None:
    """POST /v1/me/attestations still issues (the list is a GET on the same path)."""
    seed_resident(client)
    response = request_attestation(client, bearer(client), holder())
    assert response.status_code == 201
    assert response.json()["attestation"].endswith("~")


# --- the score explained -------------------------------------------------------------------


def test_the_score_says_her_alliance_standing_and_names_each_kind(client: TestClient) -> None:
    seed_resident(client)
    body = client.get("/v1/me/score", headers=bearer(client)).json()
    alliance_score, band = expected_standing(body["score"])
    assert body["alliance"] == {"score": alliance_score, "band": band}
    assert {d["name"]: d["label_en"] for d in body["dimensions"]}["dishonesty"] == (
        "Broken promises"
    )


def test_without_a_mapping_table_the_score_is_shown_without_a_standing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("CCX_MAPPING_TABLE", str(tmp_path / "missing.json"))
    seed_resident(client)
    body = client.get("/v1/me/score", headers=bearer(client)).json()
    assert body["alliance"] is None
    assert body["score"] > 0


def test_every_kind_of_the_demo_model_is_explained_in_both_languages() -> None:
    for kind in load_model().kinds.values():
        assert kind.label_zh
        assert kind.label_en
        assert kind.explain_zh
        assert kind.explain_en


@pytest.mark.parametrize("bad", [3, "x" * 501, ["a list"]])
def test_an_explanation_that_is_not_short_text_is_refused(bad: object) -> None:
    model = load_model()
    data = {
        "model": {"version": "v", "base": 500, "scale": model.scale.to_json()},
        "dimensions": {
            name: {"weight": 1, "min": d.min, "max": d.max} for name, d in model.dimensions.items()
        },
        "kinds": {"tax_arrears": {"dimension": "dishonesty", "points": -80, "explain_en": bad}},
        "severity": dict(model.disclosure_days),
        "repair": {"restore": dict(model.restore)},
    }
    with pytest.raises(ModelError, match="explain_en"):
        ScoringModel.from_dict(data)


# --- logging in to her page ------------------------------------------------------------------


def test_her_page_sends_her_to_the_identity_provider(client: TestClient) -> None:
    answer = client.get(
        "/me/login", params={"state": LOGIN_STATE, "nonce": LOGIN_NONCE}, follow_redirects=False
    )
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{NODE_ID}/dev-idp/authorize"
    query = {name: values[0] for name, values in parse_qs(location.query).items()}
    assert query == {
        "response_type": "id_token",
        "response_mode": "form_post",
        "scope": "openid",
        "client_id": "ccx-node",
        "redirect_uri": f"{NODE_ID}/me/login",
        "state": LOGIN_STATE,
        "nonce": LOGIN_NONCE,
    }
    # the development provider shows its login form for it
    page = client.get(f"/dev-idp/authorize?{location.query}")
    assert page.status_code == 200
    assert f'value="{NODE_ID}/me/login"' in page.text


@pytest.mark.parametrize(
    "params", [{"state": "short", "nonce": LOGIN_NONCE}, {"state": LOGIN_STATE}]
)
def test_a_malformed_page_login_is_refused(client: TestClient, params: dict[str, str]) -> None:
    answer = client.get("/me/login", params=params, follow_redirects=False)
    assert answer.status_code == 400
    assert "incomplete" in answer.text  # a page for her browser, not JSON


def test_without_an_identity_provider_her_page_says_she_cannot_log_in(make_client: Any) -> None:
    client = make_client(dev_idp=False, idp_jwks='{"keys": []}')
    answer = client.get("/me/login", params={"state": LOGIN_STATE, "nonce": LOGIN_NONCE})
    assert answer.status_code == 404
    assert "no identity provider" in answer.text


def dev_login(client: TestClient, redirect_uri: str, *, login: str = "yes") -> Any:
    """The development provider's login form, answered."""
    return client.post(
        "/dev-idp/authorize",
        data={"redirect_uri": redirect_uri, "state": LOGIN_STATE, "nonce": LOGIN_NONCE,
              "subject": "resident-1", "login": login},
    )  # fmt: skip


def test_the_development_provider_answers_only_the_registered_redirect_uris(
    client: TestClient,
) -> None:
    for path in ("/me/login", "/oid4vci/login"):
        answer = dev_login(client, f"{NODE_ID}{path}")
        assert answer.status_code == 200
        assert f'action="{NODE_ID}{path}"' in answer.text
    for other in (f"{NODE_ID}/me/loginx", "https://evil.example/me/login", f"{NODE_ID}/"):
        refused = dev_login(client, other)
        assert refused.status_code == 400
        assert "redirect_uri must be one of" in unescape(refused.text)
        assert "id_token" not in refused.text
    shown = client.get(
        "/dev-idp/authorize",
        params={"response_type": "id_token", "response_mode": "form_post",
                "client_id": "ccx-node", "redirect_uri": "https://evil.example/cb",
                "state": LOGIN_STATE, "nonce": LOGIN_NONCE},
    )  # fmt: skip
    assert shown.status_code == 400


def posted_fields(page: str) -> dict[str, str]:
    return {
        name: unescape(value) for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', page)
    }


def test_the_id_token_comes_back_to_her_page_and_is_her_bearer_token(client: TestClient) -> None:
    seed_resident(client)
    fields = posted_fields(dev_login(client, f"{NODE_ID}/me/login").text)
    assert fields["state"] == LOGIN_STATE
    landing = client.post("/me/login", data=fields)
    assert landing.status_code == 200
    assert landing.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in landing.headers["content-security-policy"]
    token = unescape(re.findall(r'data-id-token="([^"]+)"', landing.text)[0])
    assert token == fields["id_token"]
    assert 'data-state="' + LOGIN_STATE + '"' in landing.text
    assert '<script type="module" src="/me/landing.js">' in landing.text
    # the ID token (it carries the page's nonce) opens her data as any bearer token does
    answer = client.get("/v1/me/consents", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200


def test_a_cancelled_login_comes_back_as_a_message(client: TestClient) -> None:
    fields = posted_fields(dev_login(client, f"{NODE_ID}/me/login", login="cancel").text)
    assert fields["error"] == "access_denied"
    landing = client.post("/me/login", data=fields)
    assert landing.status_code == 200
    assert "The login was cancelled" in landing.text
    assert "landing.js" not in landing.text


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"id_token": "eyJ.not.valid", "state": LOGIN_STATE}, 401),
        ({"state": LOGIN_STATE}, 400),
        ({"id_token": "x"}, 400),
        ({"error": "server_error", "state": LOGIN_STATE}, 400),
    ],
)
def test_a_login_answer_that_does_not_hold_is_refused_without_a_token(
    client: TestClient, fields: dict[str, str], status: int
) -> None:
    landing = client.post("/me/login", data=fields)
    assert landing.status_code == status
    assert "data-id-token" not in landing.text
    assert "landing.js" not in landing.text


def test_an_expired_id_token_is_refused(client: TestClient) -> None:
    provider = node_state(client).dev_idp
    assert provider is not None
    old = provider.token("resident-1", now=NOW - 3600, nonce=LOGIN_NONCE)
    landing = client.post("/me/login", data={"id_token": old, "state": LOGIN_STATE})
    assert landing.status_code == 401


def test_the_login_url_follows_a_configured_provider(make_client: Any) -> None:
    client = make_client(idp_authorization_endpoint="https://idp.city.example/authorize?x=1")
    url = residents.page_login_url(node_state(client), login_state=LOGIN_STATE, nonce=LOGIN_NONCE)
    assert url is not None
    assert url.startswith("https://idp.city.example/authorize?x=1&response_type=id_token&")
