"""The wallet as an OpenID4VCI 1.0 client (docs/WALLET.md; PROTOCOL.md section 10):
take a credential offer and trade its pre-authorized code (and transaction code), or
run the authorization code flow with the resident's login, for a DPoP-bound access
token; prove the holder key over a c_nonce; receive the credential.
Works with any conformant issuer of the credit standing, not only ccx nodes; every
refusal becomes ``cli.InputError`` with the issuer's own error code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import webbrowser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

import protocol as P
from cli import InputError
from keys import generate_key
from protocol._jws import sign_jws

__all__ = [
    "OFFER_SCHEME",
    "LoopbackRedirect",
    "Offer",
    "accept_offer",
    "authorize",
    "dev_login",
    "parse_offer",
]

OFFER_SCHEME = "openid-credential-offer"
PREAUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
TIMEOUT = 10.0
FIELD = "OFFER"
CLIENT_ID = "ccx-wallet"  # a public client (OpenID4VCI section 5.1: no registration)


class Offer(dict[str, Any]):
    """A Credential Offer object (OpenID4VCI section 4.1.1), as the issuer sent it."""

    @property
    def issuer(self) -> str:
        return str(self["credential_issuer"])

    @property
    def pre_authorized(self) -> dict[str, Any]:
        grant = self.get("grants", {}).get(PREAUTHORIZED_GRANT)
        if not isinstance(grant, dict) or not isinstance(grant.get("pre-authorized_code"), str):
            raise InputError(
                "unsupported_offer", FIELD, "the offer has no pre-authorized code grant"
            )
        return grant


def _json(response: httpx.Response, what: str) -> Any:
    if not response.is_success:
        try:
            error = response.json()["error"]
            if isinstance(error, dict):  # a ccx node's own error shape
                code, description = str(error["code"]), str(error["message"])
            else:  # OAuth's
                code, description = str(error), str(response.json().get("error_description", ""))
        except (ValueError, KeyError, TypeError):
            code, description = f"http_{response.status_code}", response.reason_phrase
        raise InputError(code, FIELD, f"{what}: {description}")
    try:
        return response.json()
    except ValueError as exc:
        raise InputError("invalid_response", FIELD, f"{what} did not answer JSON") from exc


def _get(client: httpx.Client, url: str, what: str) -> Any:
    try:
        return _json(client.get(url, headers={"Accept": "application/json"}), what)
    except httpx.HTTPError as exc:
        raise InputError("issuer_unreachable", FIELD, f"{what}: {exc}") from exc


def _post(client: httpx.Client, url: str, what: str, **kwargs: Any) -> Any:
    try:
        return _json(client.post(url, **kwargs), what)
    except httpx.HTTPError as exc:
        raise InputError("issuer_unreachable", FIELD, f"{what}: {exc}") from exc


def parse_offer(text: str, client: httpx.Client) -> Offer:
    """The offer behind ``openid-credential-offer://?credential_offer_uri=...`` (fetched)
    or ``...?credential_offer=<json>`` (by value), or an offer's https URL."""
    parts = urlsplit(text.strip())
    if parts.scheme in ("https", "http"):
        document = _get(client, text.strip(), "the credential offer")
    elif parts.scheme == OFFER_SCHEME:
        query = parse_qs(parts.query)
        if "credential_offer_uri" in query:
            document = _get(client, query["credential_offer_uri"][0], "the credential offer")
        elif "credential_offer" in query:
            try:
                document = json.loads(query["credential_offer"][0])
            except ValueError as exc:
                raise InputError("invalid_offer", FIELD, "credential_offer is not JSON") from exc
        else:
            raise InputError(
                "invalid_offer",
                FIELD,
                "the link has neither credential_offer_uri nor credential_offer",
            )
    else:
        raise InputError(
            "invalid_offer", FIELD, f"not an {OFFER_SCHEME}:// link or an offer URL: {text[:80]!r}"
        )
    if not isinstance(document, dict) or not isinstance(document.get("credential_issuer"), str):
        raise InputError("invalid_offer", FIELD, "the offer names no credential_issuer")
    return Offer(document)


def _well_known(identifier: str, name: str) -> str:
    # OpenID4VCI section 12.2.2, RFC 8414 section 3: the well-known name goes between
    # the host and the identifier's path.
    parts = urlsplit(identifier)
    return f"{parts.scheme}://{parts.netloc}/.well-known/{name}{parts.path.rstrip('/')}"


def _dpop(key: P.PrivateKey, url: str, access_token: str | None, now: int) -> str:
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": "POST",
        "htu": url,
        "iat": now,
    }
    if access_token is not None:
        claims["ath"] = P.access_token_hash(access_token)
    return sign_jws({"typ": P.DPOP_TYP, "jwk": P.public_jwk(key)}, json.dumps(claims).encode(), key)


def _issuer_metadata(http: httpx.Client, issuer: str, field: str = FIELD) -> dict[str, Any]:
    url = _well_known(issuer, "openid-credential-issuer")
    try:
        metadata = _get(http, url, "issuer metadata")
    except InputError as exc:  # issue 20: a node's URL with /v1 names no issuer
        if exc.code not in ("not_found", "http_404"):
            raise
        hint = "a ccx node's issuer identifier is its base URL, without /v1"
        if issuer.rstrip("/").endswith("/v1"):
            hint += f": {issuer.rstrip('/').removesuffix('/v1')}"
        raise InputError(
            "not_an_issuer", field, f"no credential issuer answers at {issuer} ({url} is not "
            f"found): {hint}",
        ) from exc  # fmt: skip
    if not isinstance(metadata, dict) or metadata.get("credential_issuer") != issuer:
        raise InputError(  # section 12.2.4
            "invalid_metadata", FIELD, "the issuer's metadata names another credential_issuer"
        )
    return metadata


def _server_metadata(http: httpx.Client, server: str) -> dict[str, Any]:
    metadata = _get(http, _well_known(server, "oauth-authorization-server"), "AS metadata")
    if not isinstance(metadata, dict) or metadata.get("issuer") != server:
        raise InputError(  # RFC 8414 section 3.3
            "invalid_metadata", FIELD, "the authorization server's metadata names another issuer"
        )
    return metadata


def _token(
    http: httpx.Client, url: str, form: dict[str, str], dpop_key: P.PrivateKey, now: int
) -> tuple[str, str]:
    answer = _post(
        http, url, "the token endpoint", data=form,
        headers={"DPoP": _dpop(dpop_key, url, None, now)},
    )  # fmt: skip
    return str(answer["access_token"]), str(answer.get("token_type", "Bearer"))


def _credential(
    http: httpx.Client,
    metadata: dict[str, Any],
    configuration_id: str,
    *,
    access: tuple[str, str],
    dpop_key: P.PrivateKey,
    holder_key: P.PrivateKey,
    now: int,
) -> str:
    """Sections 7 and 8: a c_nonce, the key proof over it, the credential."""
    issuer = str(metadata["credential_issuer"])
    token, token_type = access
    nonce = _post(http, str(metadata["nonce_endpoint"]), "the nonce endpoint")["c_nonce"]
    proof = sign_jws(
        {"typ": P.PROOF_TYP, "jwk": P.public_jwk(holder_key)},
        json.dumps({"aud": issuer, "iat": now, "nonce": nonce}).encode(),
        holder_key,
    )
    credential_url = str(metadata["credential_endpoint"])
    headers = {"Authorization": f"{token_type} {token}"}
    if token_type == "DPoP":  # noqa: S105 (the token type's name)
        headers["DPoP"] = _dpop(dpop_key, credential_url, token, now)
    body = {"credential_configuration_id": configuration_id, "proofs": {"jwt": [proof]}}
    issued = _post(http, credential_url, "the credential endpoint", json=body, headers=headers)
    credential = issued["credentials"][0]["credential"]
    if not isinstance(credential, str):
        raise InputError("invalid_response", FIELD, "the credential is not an SD-JWT VC")
    return credential


@contextmanager
def _issuer(client: httpx.Client | None) -> Iterator[httpx.Client]:
    """The HTTP client of one flow (the caller's, or one of its own, closed after), and
    an issuer's answer that lacks what the flow reads made ``invalid_response``."""
    http = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
    try:
        yield http
    except (KeyError, IndexError, TypeError) as exc:
        raise InputError("invalid_response", FIELD, f"the issuer's answer lacks {exc}") from exc
    finally:
        if client is None:
            http.close()


def accept_offer(
    offer_text: str,
    *,
    holder_key: P.PrivateKey,
    now: int,
    tx_code: str | None = None,
    client: httpx.Client | None = None,
    ask_tx_code: Callable[[dict[str, Any]], str] | None = None,
) -> str:
    """Run the pre-authorized code flow for ``offer_text`` and return the credential (an
    SD-JWT VC bound to ``holder_key``). A transaction code the offer asks for comes from
    ``tx_code``, else from ``ask_tx_code(<the offer's tx_code object>)``. The access
    token is bound to a fresh DPoP key (RFC 9449). Raises ``cli.InputError``."""
    with _issuer(client) as http:
        offer = parse_offer(offer_text, http)
        grant = offer.pre_authorized
        metadata = _issuer_metadata(http, offer.issuer)
        configuration_id = _configuration(
            offer.get("credential_configuration_ids", []), metadata, (P.VCT, P.DOMESTIC_VCT)
        )
        servers = metadata.get("authorization_servers") or [offer.issuer]
        server = _server_metadata(http, grant.get("authorization_server") or servers[0])
        form = {
            "grant_type": PREAUTHORIZED_GRANT,
            "pre-authorized_code": grant["pre-authorized_code"],
        }
        if "tx_code" in grant:
            code = (
                tx_code
                if tx_code is not None
                else (ask_tx_code(grant["tx_code"]) if ask_tx_code else None)
            )
            if not code:
                raise InputError(
                    "tx_code_required", "--tx-code", "the offer asks for the code shown beside it"
                )
            form["tx_code"] = code
        dpop_key = generate_key("ES256")
        access = _token(http, str(server["token_endpoint"]), form, dpop_key, now)
        return _credential(
            http, metadata, configuration_id, access=access, dpop_key=dpop_key,
            holder_key=holder_key, now=now,
        )  # fmt: skip


def authorize(
    issuer: str,
    *,
    holder_key: P.PrivateKey,
    now: int,
    log_in: Callable[[str], str],
    redirect_uri: str,
    client_id: str = CLIENT_ID,
    client: httpx.Client | None = None,
) -> str:
    """Run the authorization code flow (OpenID4VCI section 5, as HAIP 1.0 profiles it)
    at ``issuer`` and return the credential: a pushed authorization request with
    ``scope``, PKCE S256 and the DPoP key, then ``log_in(<authorization URL>)``, which
    takes the resident's browser there and returns the URL the issuer sent it back to
    (``redirect_uri`` with the code), then the token, c_nonce, key proof and credential.
    The answer's ``state`` and ``iss`` (RFC 9207) are checked against what was sent.
    Raises ``cli.InputError``."""
    with _issuer(client) as http:
        metadata = _issuer_metadata(http, issuer, "ISSUER")
        configuration_id = _configuration(
            list(metadata.get("credential_configurations_supported", {})), metadata
        )
        scope = metadata["credential_configurations_supported"][configuration_id].get("scope")
        if not scope:
            raise InputError(
                "unsupported_issuer", FIELD, "the issuer names no scope for the credential"
            )
        servers = metadata.get("authorization_servers") or [issuer]
        server = _server_metadata(http, servers[0])
        par_url = server.get("pushed_authorization_request_endpoint")
        if not par_url or "S256" not in server.get("code_challenge_methods_supported", []):
            raise InputError(
                "unsupported_issuer",
                FIELD,
                "the issuer offers no authorization code flow with pushed requests and PKCE",
            )
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        state = secrets.token_urlsafe(24)
        dpop_key = generate_key("ES256")
        pushed = _post(
            http, str(par_url), "the pushed authorization request",
            data={
                "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                "scope": scope, "code_challenge": challenge, "code_challenge_method": "S256",
                "state": state, "resource": issuer,
            },
            headers={"DPoP": _dpop(dpop_key, str(par_url), None, now)},
        )  # fmt: skip
        query = urlencode({"client_id": client_id, "request_uri": pushed["request_uri"]})
        returned = log_in(f"{server['authorization_endpoint']}?{query}")
        answer = {k: v[0] for k, v in parse_qs(urlsplit(returned).query).items()}
        if answer.get("state") != state:
            raise InputError("state_mismatch", FIELD, "the answer is not to this wallet's request")
        if (
            server.get("authorization_response_iss_parameter_supported")
            and answer.get("iss") != server["issuer"]
        ):
            raise InputError(  # RFC 9207 section 2.4: a mix-up
                "issuer_mismatch", FIELD, "the answer comes from another authorization server"
            )
        if "error" in answer:
            raise InputError(
                answer["error"], FIELD, answer.get("error_description", "the issuer said no")
            )
        form = {
            "grant_type": "authorization_code", "code": answer["code"],
            "code_verifier": verifier, "redirect_uri": redirect_uri, "client_id": client_id,
        }  # fmt: skip
        access = _token(http, str(server["token_endpoint"]), form, dpop_key, now)
        return _credential(
            http, metadata, configuration_id, access=access, dpop_key=dpop_key,
            holder_key=holder_key, now=now,
        )  # fmt: skip


class LoopbackRedirect:
    """Where the resident's browser comes back to this wallet (RFC 8252 section 7.3): a
    one-shot listener on ``http://127.0.0.1:<free port>/callback``. ``log_in`` opens the
    authorization URL in her browser (and prints it, for a browser elsewhere on this
    machine) and waits for the redirect."""

    def __init__(self, *, timeout: float = 300.0, say: Callable[[str], None] = print) -> None:
        self._timeout = timeout
        self._say = say
        self._received: list[str] = []
        received = self._received

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path != "/callback":
                    self.send_error(404)
                    return
                received.append(self.path)
                page = (
                    "<!doctype html><meta charset=utf-8><p>钱包已收到，可以关闭此页。</p>"
                    "<p>The wallet has the answer; you may close this page.</p>"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:  # no access log on the terminal
                return

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self._server.timeout = 1.0
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_address[1]}/callback"

    def log_in(self, url: str) -> str:
        self._say(f"Log in and allow the wallet in your browser: {url}")
        webbrowser.open(url)
        deadline = time.monotonic() + self._timeout
        try:
            while not self._received and time.monotonic() < deadline:
                self._server.handle_request()
        finally:
            self._server.server_close()
        if not self._received:
            raise InputError("login_timeout", FIELD, "no answer from the browser in time")
        return self.redirect_uri.removesuffix("/callback") + self._received[0]


class _Forms(HTMLParser):
    """The forms of a page: action, and each input's name and value (hidden, text, or
    the submit button pressed)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, list[tuple[str, str, str]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((found.get("action", ""), []))
        elif tag in ("input", "button") and self.forms and "name" in found:
            kind = found.get("type", "text" if tag == "input" else "submit")
            self.forms[-1][1].append((kind, found["name"], found.get("value", "")))


def _submit(http: httpx.Client, page: httpx.Response, fields: dict[str, str]) -> httpx.Response:
    parser = _Forms()
    parser.feed(page.text)
    if not parser.forms:
        raise InputError("login_failed", FIELD, f"expected a form, got: {page.text[:200]!r}")
    action, inputs = parser.forms[0]
    form = {name: value for kind, name, value in inputs if kind == "hidden"}
    form.update(fields)
    return http.post(action, data=form, follow_redirects=False)


def dev_login(http: httpx.Client, resident: str) -> Callable[[str], str]:
    """``log_in`` for :func:`authorize` against a node with the development identity
    provider: walk its pages as a browser would, as ``resident``, and allow the wallet
    (for demos and tests; a real resident uses her browser, ``ccx wallet authorize``)."""

    def log_in(url: str) -> str:
        to_login = http.get(url, follow_redirects=False)  # 303 to the identity provider
        if to_login.status_code != 303:
            raise InputError("login_failed", FIELD, f"the authorization endpoint: {to_login.text}")
        login_page = http.get(to_login.headers["location"], follow_redirects=False)
        posted = _submit(http, login_page, {"subject": resident, "login": "yes"})  # auto-post
        consent_page = _submit(http, posted, {})
        if consent_page.status_code == 303:  # back to the wallet at once: refused
            return str(consent_page.headers["location"])
        back = _submit(http, consent_page, {"answer": "allow"})
        if back.status_code != 303:
            raise InputError("login_failed", FIELD, f"the issuer's page: {back.text[:200]}")
        return str(back.headers["location"])

    return log_in


def _configuration(
    candidates: list[str], metadata: dict[str, Any], vcts: tuple[str, ...] = (P.VCT,)
) -> str:
    """The first configuration among ``candidates`` of a credential this wallet holds:
    dc+sd-jwt with one of ``vcts`` (the credit standing; an offer may also hold the
    domestic-service credential, issue 18)."""
    configurations = metadata.get("credential_configurations_supported", {})
    for configuration_id in candidates:
        found = configurations.get(configuration_id, {})
        if found.get("format") == P.ATTESTATION_TYP and found.get("vct") in vcts:
            return str(configuration_id)
    raise InputError(
        "unsupported_offer",
        FIELD,
        f"the offer holds no {' or '.join(vcts)} credential in {P.ATTESTATION_TYP}",
    )
