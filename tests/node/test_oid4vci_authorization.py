"""The node's OpenID4VCI authorization code grant (issue 14): a pushed authorization
request (RFC 9126) with PKCE S256 (RFC 7636), the resident's login at the development
identity provider (OpenID Connect, ID token by form post), her decision, the code back
at the wallet with iss (RFC 9207), the token request, then the credential. Each step's
refusal is checked. Sections cited are OpenID4VCI 1.0's unless an RFC is named."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

import protocol as P
from cli import InputError
from node.models import AuditEntry
from node.services import oid4vci
from tests.conftest import NOW, ec_key
from tests.node.issuing_helpers import RESIDENT, node_key_resolver, seed_resident, session
from tests.node.test_oid4vci import ISSUER, TOKEN, dpop_proof, oauth_error
from wallet._oid4vci import _Forms, authorize, dev_login

PAR = f"{ISSUER}/oid4vci/par"
REDIRECT = "http://127.0.0.1:7777/callback"
CLIENT = "test-wallet"


@pytest.fixture
def client(make_client: Any) -> TestClient:
    node: TestClient = make_client()
    seed_resident(node)
    return node


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def par_form(challenge: str, **changes: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "scope": oid4vci.CONFIGURATION_ID,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "wallet-state-1",
        "resource": ISSUER,
        **changes,
    }
    return {name: value for name, value in form.items() if value is not None}


def push(client: TestClient, form: dict[str, str], *, dpop: str | None = None) -> Any:
    return client.post("/oid4vci/par", data=form, headers={"DPoP": dpop} if dpop else {})


def request_uri(client: TestClient, challenge: str, **changes: str | None) -> str:
    answer = push(client, par_form(challenge, **changes))
    assert answer.status_code == 201, answer.text  # RFC 9126 section 2.2
    body = answer.json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert 0 < body["expires_in"] <= 600
    assert answer.headers["cache-control"] == "no-store"
    uri: str = body["request_uri"]
    return uri


def authorize_url(uri: str, client_id: str = CLIENT) -> str:
    return f"/oid4vci/authorize?{urlencode({'client_id': client_id, 'request_uri': uri})}"


def form_of(page: Any) -> tuple[str, dict[str, str]]:
    parser = _Forms()
    parser.feed(page.text)
    action, inputs = parser.forms[0]
    return action, {name: value for kind, name, value in inputs if kind == "hidden"}


def log_in(client: TestClient, uri: str, resident: str = RESIDENT) -> Any:
    """Through the authorization endpoint and the dev IdP's pages: the node's answer to
    the posted ID token (the consent page, or a redirect)."""
    to_idp = client.get(authorize_url(uri), follow_redirects=False)
    assert to_idp.status_code == 303, to_idp.text
    login_page = client.get(to_idp.headers["location"], follow_redirects=False)
    action, hidden = form_of(login_page)
    posted = client.post(action, data={**hidden, "subject": resident, "login": "yes"})
    action, hidden = form_of(posted)
    assert action == f"{ISSUER}/oid4vci/login"
    return client.post(action, data=hidden, follow_redirects=False)


def code_for(client: TestClient, challenge: str, **changes: str | None) -> dict[str, str]:
    consent = log_in(client, request_uri(client, challenge, **changes))
    assert consent.status_code == 200, consent.text
    action, hidden = form_of(consent)
    back = client.post(action, data={**hidden, "answer": "allow"}, follow_redirects=False)
    assert back.status_code == 303, back.text
    location = back.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def code_token(client: TestClient, code: str, verifier: str, **changes: str) -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT,
        "client_id": CLIENT,
        **changes,
    }
    return client.post("/oid4vci/token", data=form)


# --- metadata ----------------------------------------------------------------------------


def test_the_metadata_offers_the_authorization_code_grant_with_par_and_pkce(
    client: TestClient,
) -> None:
    metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["authorization_endpoint"] == f"{ISSUER}/oid4vci/authorize"
    assert metadata["pushed_authorization_request_endpoint"] == PAR  # RFC 9126 section 5
    assert metadata["require_pushed_authorization_requests"] is True
    assert metadata["code_challenge_methods_supported"] == ["S256"]  # RFC 7636, HAIP
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["authorization_response_iss_parameter_supported"] is True  # RFC 9207
    assert set(metadata["grant_types_supported"]) == {
        "authorization_code",
        oid4vci.PREAUTHORIZED_GRANT,
    }


def test_without_a_login_the_grant_is_not_offered(make_client: Any) -> None:
    node = make_client(dev_idp=False, idp_jwks='{"keys": []}')
    metadata = node.get("/.well-known/oauth-authorization-server").json()
    assert "authorization_endpoint" not in metadata
    assert metadata["grant_types_supported"] == [oid4vci.PREAUTHORIZED_GRANT]
    answer = push(node, par_form(pkce()[1]))
    assert answer.status_code == 400
    assert oauth_error(answer) == "invalid_request"


def test_a_configured_identity_provider_is_where_residents_log_in(make_client: Any) -> None:
    node = make_client(idp_authorization_endpoint="https://idp.xiamen.example/authorize")
    to_idp = node.get(authorize_url(request_uri(node, pkce()[1])), follow_redirects=False)
    location = urlsplit(to_idp.headers["location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        "idp.xiamen.example",
        "/authorize",
    )
    query = parse_qs(location.query)
    assert query["response_type"] == ["id_token"]  # OpenID Connect Core section 3.2
    assert query["response_mode"] == ["form_post"]
    assert query["redirect_uri"] == [f"{ISSUER}/oid4vci/login"]
    assert query["client_id"] == ["ccx-node"]
    assert len(query["nonce"][0]) >= 32
    assert len(query["state"][0]) >= 32


# --- the whole flow ------------------------------------------------------------------------


def test_a_wallet_gets_the_credential_by_the_authorization_code_grant(client: TestClient) -> None:
    holder = ec_key(41)
    credential = authorize(
        ISSUER,
        holder_key=holder,
        now=NOW,
        log_in=dev_login(client, RESIDENT),
        redirect_uri=REDIRECT,
        client=client,
    )
    presentation = P.present(
        credential, disclose=["band"], holder_key=holder, aud="v", nonce="n", now=NOW
    )
    verified = P.verify_presentation(
        presentation, resolve_issuer_key=node_key_resolver(client), aud="v", nonce="n", now=NOW
    )
    assert verified.issuer == ISSUER
    assert verified.disclosed == {"band": "good"}
    with session(client) as db:
        actions = [e.action for e in db.exec(select(AuditEntry)).all()]
        issued = [e for e in db.exec(select(AuditEntry)).all() if e.action == "attestation.issued"]
    assert "authorization.allowed" in actions
    assert issued[-1].details["flow"] == "openid4vci"


def test_the_code_comes_back_with_the_wallets_state_and_the_issuer(client: TestClient) -> None:
    answer = code_for(client, pkce()[1])
    assert answer["state"] == "wallet-state-1"
    assert answer["iss"] == ISSUER  # RFC 9207 section 2
    assert len(answer["code"]) >= 32


def dpop_bound_code(client: TestClient, key: Any) -> dict[str, str]:
    """A code for a request pushed with a DPoP proof of ``key`` (RFC 9449 section 10),
    and the token request's form for it."""
    verifier, challenge = pkce()
    bound = push(client, par_form(challenge), dpop=dpop_proof(key, PAR))
    assert bound.status_code == 201, bound.text
    consent = log_in(client, bound.json()["request_uri"])
    action, hidden = form_of(consent)
    back = client.post(action, data={**hidden, "answer": "allow"}, follow_redirects=False)
    return {
        "grant_type": "authorization_code",
        "code": parse_qs(urlsplit(back.headers["location"]).query)["code"][0],
        "code_verifier": verifier,
        "redirect_uri": REDIRECT,
        "client_id": CLIENT,
    }


def test_a_dpop_bound_request_needs_the_same_key_at_the_token_endpoint(
    client: TestClient,
) -> None:
    # RFC 9449 section 10: a DPoP proof at PAR binds the code to that key
    form = dpop_bound_code(client, ec_key(42))
    stolen = client.post(
        "/oid4vci/token", data=form, headers={"DPoP": dpop_proof(ec_key(43), TOKEN)}
    )
    assert stolen.status_code == 400
    assert oauth_error(stolen) == "invalid_dpop_proof"


def test_the_dpop_key_proven_at_par_gets_a_dpop_token(client: TestClient) -> None:
    key = ec_key(44)
    form = dpop_bound_code(client, key)
    answer = client.post("/oid4vci/token", data=form, headers={"DPoP": dpop_proof(key, TOKEN)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"


# --- refusals at the pushed request -------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),  # HAIP: S256 only
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
        ({"redirect_uri": "http://127.0.0.1:7777/cb#frag"}, "invalid_request"),
        ({"redirect_uri": "http://user@127.0.0.1/cb"}, "invalid_request"),
        ({"redirect_uri": None}, "invalid_request"),
        ({"client_id": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
        ({"resource": "https://other.example"}, "invalid_target"),
        ({"authorization_details": "[]"}, "invalid_request"),  # HAIP section 4.3: scope
        ({"request_uri": "urn:x"}, "invalid_request"),  # RFC 9126 section 2.1
        ({"issuer_state": "forged"}, "invalid_request"),
    ],
)
def test_a_bad_pushed_request_gets_its_oauth_code(
    client: TestClient, changes: dict[str, str | None], code: str
) -> None:
    answer = push(client, par_form(pkce()[1], **changes))
    assert answer.status_code == 400, answer.text
    assert oauth_error(answer) == code


def test_a_redirect_uri_the_city_allows_is_accepted(make_client: Any) -> None:
    node = make_client(wallet_redirect_uris=["https://wallet.example/cb"])
    assert (
        push(node, par_form(pkce()[1], redirect_uri="https://wallet.example/cb")).status_code == 201
    )
    refused = push(node, par_form(pkce()[1], redirect_uri="https://wallet.example/cb/other"))
    assert refused.status_code == 400


# --- refusals in the browser ---------------------------------------------------------------


def test_a_pushed_request_is_used_once(client: TestClient) -> None:
    uri = request_uri(client, pkce()[1])
    assert client.get(authorize_url(uri), follow_redirects=False).status_code == 303
    again = client.get(authorize_url(uri), follow_redirects=False)
    assert again.status_code == 400
    assert "text/html" in again.headers["content-type"]
    assert "used" in again.text


def test_a_pushed_request_lapses(client: TestClient, clock: Any) -> None:
    uri = request_uri(client, pkce()[1])
    clock.now += 91
    assert client.get(authorize_url(uri), follow_redirects=False).status_code == 400


def test_a_pushed_request_is_for_its_client_only(client: TestClient) -> None:
    uri = request_uri(client, pkce()[1])
    mixed = client.get(authorize_url(uri, client_id="another-wallet"), follow_redirects=False)
    assert mixed.status_code == 400
    # and the request is gone: the right client cannot retry a mixed-up request either
    assert client.get(authorize_url(uri), follow_redirects=False).status_code == 400


def test_an_id_token_made_for_another_login_is_refused(client: TestClient) -> None:
    to_idp = client.get(authorize_url(request_uri(client, pkce()[1])), follow_redirects=False)
    state = parse_qs(urlsplit(to_idp.headers["location"]).query)["state"][0]
    provider = client.app.state.node.dev_idp  # type: ignore[attr-defined]
    token = provider.token(RESIDENT, now=NOW, nonce="a-nonce-of-another-login")
    answer = client.post("/oid4vci/login", data={"state": state, "id_token": token})
    assert answer.status_code == 401
    assert "nonce" in answer.text


def test_a_bearer_token_without_a_nonce_is_not_a_login(client: TestClient) -> None:
    to_idp = client.get(authorize_url(request_uri(client, pkce()[1])), follow_redirects=False)
    state = parse_qs(urlsplit(to_idp.headers["location"]).query)["state"][0]
    provider = client.app.state.node.dev_idp  # type: ignore[attr-defined]
    answer = client.post(
        "/oid4vci/login", data={"state": state, "id_token": provider.token(RESIDENT, now=NOW)}
    )
    assert answer.status_code == 401


def test_a_login_is_used_once(client: TestClient) -> None:
    to_idp = client.get(authorize_url(request_uri(client, pkce()[1])), follow_redirects=False)
    login_page = client.get(to_idp.headers["location"], follow_redirects=False)
    action, hidden = form_of(login_page)
    posted = client.post(action, data={**hidden, "subject": RESIDENT, "login": "yes"})
    action, hidden = form_of(posted)
    assert client.post(action, data=hidden, follow_redirects=False).status_code == 200
    replay = client.post(action, data=hidden, follow_redirects=False)
    assert replay.status_code == 400
    assert "used" in replay.text


def test_a_resident_who_denies_sends_the_wallet_access_denied(client: TestClient) -> None:
    consent = log_in(client, request_uri(client, pkce()[1]))
    action, hidden = form_of(consent)
    back = client.post(action, data={**hidden, "answer": "deny"}, follow_redirects=False)
    answer = parse_qs(urlsplit(back.headers["location"]).query)
    assert answer["error"] == ["access_denied"]  # RFC 6749 section 4.1.2.1
    assert answer["state"] == ["wallet-state-1"]
    assert answer["iss"] == [ISSUER]
    assert "code" not in answer
    with session(client) as db:
        assert db.exec(select(AuditEntry).where(AuditEntry.action == "authorization.denied")).all()


def test_a_resident_who_cancels_at_the_login_sends_the_wallet_access_denied(
    client: TestClient,
) -> None:
    to_idp = client.get(authorize_url(request_uri(client, pkce()[1])), follow_redirects=False)
    login_page = client.get(to_idp.headers["location"], follow_redirects=False)
    action, hidden = form_of(login_page)
    posted = client.post(action, data={**hidden, "login": "cancel"})
    action, hidden = form_of(posted)
    assert "id_token" not in hidden
    back = client.post(action, data=hidden, follow_redirects=False)
    assert parse_qs(urlsplit(back.headers["location"]).query)["error"] == ["access_denied"]


def test_a_resident_without_both_consents_is_sent_back_at_once(client: TestClient) -> None:
    seed_resident(client, "resident-no-consent", consents=("open_score",))
    back = log_in(client, request_uri(client, pkce()[1]), resident="resident-no-consent")
    assert back.status_code == 303
    answer = parse_qs(urlsplit(back.headers["location"]).query)
    assert answer["error"] == ["access_denied"]
    assert "consent" in answer["error_description"][0]


def test_the_consent_page_names_the_wallet_and_cannot_be_framed(client: TestClient) -> None:
    page = log_in(client, request_uri(client, pkce()[1]))
    assert CLIENT in page.text
    assert "127.0.0.1:7777" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_the_login_pages_escape_what_they_are_given(client: TestClient) -> None:
    to_idp = client.get(authorize_url(request_uri(client, pkce()[1])), follow_redirects=False)
    page = client.get(
        to_idp.headers["location"] + "&login_hint=%22%3E%3Cscript%3Ex", follow_redirects=False
    )
    assert page.status_code == 200
    assert "<script>x" not in page.text
    assert "&quot;&gt;&lt;script&gt;x" in page.text


def test_the_dev_login_answers_only_its_own_node(client: TestClient) -> None:
    page = client.get(
        "/dev-idp/authorize?"
        + urlencode(
            {
                "response_type": "id_token",
                "response_mode": "form_post",
                "client_id": "ccx-node",
                "redirect_uri": "https://evil.example/steal",
                "state": "s" * 32,
                "nonce": "n" * 32,
            }
        )
    )
    assert page.status_code == 400
    assert "redirect_uri" in page.text


# --- refusals at the token endpoint ---------------------------------------------------------


def test_a_code_is_single_use(client: TestClient) -> None:
    verifier, challenge = pkce()
    code = code_for(client, challenge)["code"]
    assert code_token(client, code, verifier).status_code == 200
    again = code_token(client, code, verifier)
    assert again.status_code == 400
    assert oauth_error(again) == "invalid_grant"


def test_a_wrong_verifier_burns_the_code(client: TestClient) -> None:
    verifier, challenge = pkce()
    code = code_for(client, challenge)["code"]
    wrong = code_token(client, code, pkce()[0])
    assert wrong.status_code == 400
    assert oauth_error(wrong) == "invalid_grant"
    assert oauth_error(code_token(client, code, verifier)) == "invalid_grant"


@pytest.mark.parametrize(
    "changes",
    [{"redirect_uri": "http://127.0.0.1:7777/other"}, {"client_id": "another-wallet"}],
    ids=["redirect_uri", "client_id"],
)
def test_a_code_is_for_its_client_and_redirect_uri(
    client: TestClient, changes: dict[str, str]
) -> None:
    verifier, challenge = pkce()
    code = code_for(client, challenge)["code"]
    answer = code_token(client, code, verifier, **changes)
    assert answer.status_code == 400
    assert oauth_error(answer) == "invalid_grant"


def test_a_code_lapses_in_a_minute(client: TestClient, clock: Any) -> None:
    verifier, challenge = pkce()
    code = code_for(client, challenge)["code"]
    clock.now += 61
    assert oauth_error(code_token(client, code, verifier)) == "invalid_grant"


def test_a_malformed_verifier_is_invalid_request(client: TestClient) -> None:
    code = code_for(client, pkce()[1])["code"]
    assert oauth_error(code_token(client, code, "short")) == "invalid_request"


# --- the wallet's side ------------------------------------------------------------------------


def test_the_wallet_refuses_an_answer_from_another_issuer(client: TestClient) -> None:
    def mixed_up(url: str) -> str:  # RFC 9207: the answer came from someone else
        location = dev_login(client, RESIDENT)(url)
        return location.replace("iss=http%3A%2F%2Fxiamen.ccx.test", "iss=https%3A%2F%2Fevil")

    with pytest.raises(InputError) as refused:
        authorize(
            ISSUER, holder_key=ec_key(45), now=NOW, log_in=mixed_up,
            redirect_uri=REDIRECT, client=client,
        )  # fmt: skip
    assert refused.value.code == "issuer_mismatch"


def test_the_wallet_reports_a_denial(client: TestClient) -> None:
    seed_resident(client, "resident-no-consent", consents=())
    with pytest.raises(InputError) as refused:
        authorize(
            ISSUER, holder_key=ec_key(46), now=NOW,
            log_in=dev_login(client, "resident-no-consent"), redirect_uri=REDIRECT, client=client,
        )  # fmt: skip
    assert refused.value.code == "access_denied"
