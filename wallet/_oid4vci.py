"""The wallet as an OpenID4VCI 1.0 client (docs/WALLET.md; PROTOCOL.md section 10):
take a credential offer, trade its pre-authorized code (and transaction code) for a
DPoP-bound access token, prove the holder key over a c_nonce, receive the credential.
Works with any conformant issuer of the credit standing, not only ccx nodes; every
refusal becomes ``cli.InputError`` with the issuer's own error code.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

import protocol as P
from cli import InputError
from keys import generate_key
from protocol._jws import sign_jws

__all__ = ["OFFER_SCHEME", "Offer", "accept_offer", "parse_offer"]

OFFER_SCHEME = "openid-credential-offer"
PREAUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
TIMEOUT = 10.0
FIELD = "OFFER"


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
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
    try:
        offer = parse_offer(offer_text, http)
        grant = offer.pre_authorized
        metadata = _get(
            http, _well_known(offer.issuer, "openid-credential-issuer"), "issuer metadata"
        )
        if metadata.get("credential_issuer") != offer.issuer:  # section 12.2.4
            raise InputError(
                "invalid_metadata", FIELD, "the issuer's metadata names another credential_issuer"
            )
        configuration_id = _configuration(offer, metadata)
        servers = metadata.get("authorization_servers") or [offer.issuer]
        server = grant.get("authorization_server") or servers[0]
        authorization = _get(http, _well_known(server, "oauth-authorization-server"), "AS metadata")
        token_url = str(authorization["token_endpoint"])
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
        answer = _post(
            http, token_url, "the token endpoint", data=form,
            headers={"DPoP": _dpop(dpop_key, token_url, None, now)},
        )  # fmt: skip
        access, token_type = str(answer["access_token"]), str(answer.get("token_type", "Bearer"))
        nonce = _post(http, str(metadata["nonce_endpoint"]), "the nonce endpoint")["c_nonce"]
        proof = sign_jws(
            {"typ": P.PROOF_TYP, "jwk": P.public_jwk(holder_key)},
            json.dumps({"aud": offer.issuer, "iat": now, "nonce": nonce}).encode(),
            holder_key,
        )
        credential_url = str(metadata["credential_endpoint"])
        headers = {"Authorization": f"{token_type} {access}"}
        if token_type == "DPoP":  # noqa: S105 (the token type's name)
            headers["DPoP"] = _dpop(dpop_key, credential_url, access, now)
        body = {"credential_configuration_id": configuration_id, "proofs": {"jwt": [proof]}}
        issued = _post(http, credential_url, "the credential endpoint", json=body, headers=headers)
        credential = issued["credentials"][0]["credential"]
        if not isinstance(credential, str):
            raise InputError("invalid_response", FIELD, "the credential is not an SD-JWT VC")
        return credential
    except (KeyError, IndexError, TypeError) as exc:
        raise InputError("invalid_response", FIELD, f"the issuer's answer lacks {exc}") from exc
    finally:
        if own:
            http.close()


def _configuration(offer: Offer, metadata: dict[str, Any]) -> str:
    """The offered configuration of the credit standing (dc+sd-jwt with its vct)."""
    configurations = metadata.get("credential_configurations_supported", {})
    for configuration_id in offer.get("credential_configuration_ids", []):
        found = configurations.get(configuration_id, {})
        if found.get("format") == P.ATTESTATION_TYP and found.get("vct") == P.VCT:
            return str(configuration_id)
    raise InputError(
        "unsupported_offer", FIELD, f"the offer holds no {P.VCT} credential in {P.ATTESTATION_TYP}"
    )
