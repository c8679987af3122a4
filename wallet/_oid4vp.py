"""The wallet as an OpenID4VP 1.0 wallet (docs/WALLET.md; PROTOCOL.md section 11): take
an ``openid4vp://`` request (a link, or a QR code's text), fetch its signed request
object, check who asks (the ``x5c`` chain to a trusted CA, the ``x509_hash`` client
identifier), show what it asks for, and answer with a ``vp_token`` disclosing exactly
that, encrypted to the verifier's key when it asks for ``direct_post.jwt``.

Trust: the alliance CA from the registry the resident's home node follows (fetched from
it over TLS, as the credential was), plus anchors the caller adds (a verifier outside the
alliance, in tests). Every refusal is ``cli.InputError`` with a stable code.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

import protocol as P
from cli import InputError
from wallet._wallet import disclosed_claims, issuer_claims

__all__ = [
    "REQUEST_SCHEMES",
    "Asked",
    "alliance_anchors",
    "answer_request",
    "available_claims",
    "check_named",
    "read_request",
    "response_form",
]

REQUEST_SCHEMES = ("openid4vp", "haip-vp")  # OpenID4VP section 13.1, HAIP 1.0 section 5
FIELD = "REQUEST"
TIMEOUT = 10.0


@dataclass(frozen=True)
class Asked:
    """A request that holds, and what the resident must see before she agrees: who asks
    (the member's id and name when it is one), and the claims it wants disclosed."""

    request: P.VerifiedRequest
    verifier: str
    verifier_name: str | None

    @property
    def requested(self) -> tuple[str, ...]:
        """Every claim the request names (it may ask for one of several sets)."""
        return self.request.requested

    def disclosures_for(self, credential: str) -> tuple[str, ...]:
        """What answering with ``credential`` discloses: exactly what the query selects
        (a claim set when it gives some), nothing more. InputError when it can't, and
        ``recipient_not_named`` when the credential's recipients (its issuer-signed
        ``aud``: the members her consent names) leave this verifier out: it would refuse
        it, after seeing it (docs/SECURITY.md section 17)."""
        check_named(credential, self.verifier)
        held = credential_vct(credential)
        if held != self.request.vct:
            raise InputError(
                "wrong_credential",
                FIELD,
                f"the verifier asks for a {self.request.vct} credential, not this {held} one: "
                "answer with the credential it asks for (ccx wallet list)",
            )
        try:
            return self.request.disclosures_for(available_claims(credential))
        except P.ProtocolError as exc:
            raise InputError("cannot_answer", FIELD, exc.message) from exc


def check_named(credential: str, verifier: str, *, field: str = FIELD) -> None:
    """InputError ``recipient_not_named`` unless ``credential`` may go to ``verifier`` (a
    member id): its ``aud`` names it, or it has none (every member)."""
    try:
        P.check_recipient(credential, verifier)
    except P.RecipientNotNamed as exc:
        raise InputError(
            exc.code,
            field,
            f"{exc.message}; nothing was sent. To share with this verifier, consent to it "
            "at your home node and fetch a new attestation",
        ) from exc
    except P.ProtocolError as exc:
        raise InputError(exc.code, field, f"the attestation: {exc.message}") from exc


def _refusal(response: httpx.Response, what: str) -> InputError:
    try:
        body = response.json()
        error = body["error"]
        if isinstance(error, dict):
            code, text = str(error["code"]), str(error["message"])
        else:
            code, text = str(error), str(body.get("error_description", ""))
    except (ValueError, KeyError, TypeError):
        code, text = f"http_{response.status_code}", response.reason_phrase
    return InputError(code, FIELD, f"{what}: {text}")


def alliance_anchors(home: str, client: httpx.Client) -> tuple[list[bytes], dict[str, str]]:
    """The alliance CA certificate and the members' names, from the registry the home
    node ``home`` follows. The home node is trusted as the issuer of the credential is:
    over TLS; the registry's signature is the nodes' business (they pin the root)."""
    try:
        response = client.get(f"{home.rstrip('/')}/v1/alliance/registry")
    except httpx.HTTPError as exc:
        raise InputError("home_unreachable", FIELD, f"the home node: {exc}") from exc
    if not response.is_success:
        raise _refusal(response, "the home node's registry")
    try:
        payload = response.text.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        anchors = [base64.b64decode(claims["verifier_ca"], validate=True)]
        names = {m["id"]: str(m.get("name", m["id"])) for m in claims.get("members", [])
                 if m.get("status") == "active"}  # fmt: skip
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InputError(
            "no_trust_anchor", FIELD, "the home node's registry carries no verifier CA"
        ) from exc
    return anchors, names


def _link(text: str) -> tuple[str, str]:
    parts = urlsplit(text.strip())
    if parts.scheme not in REQUEST_SCHEMES:
        raise InputError(
            "invalid_request", FIELD, f"not an openid4vp:// request: {text.strip()[:60]!r}"
        )
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if "request" in query or "request_uri" not in query:
        # an unsigned request by value could name anyone: refused (a downgrade)
        raise InputError(
            "unsigned_request", FIELD, "only signed requests by request_uri are accepted"
        )
    if "client_id" not in query:
        raise InputError("invalid_request", FIELD, "the request names no client_id")
    return query["client_id"], query["request_uri"]


def read_request(
    text: str,
    *,
    anchors: Sequence[bytes],
    members: dict[str, str] | None = None,
    now: int,
    client: httpx.Client,
) -> Asked:
    """Fetch and check the request behind ``text`` (sections 5, 5.10): signed, by a
    certificate chaining to ``anchors``, for the link's client identifier."""
    client_id, request_uri = _link(text)
    try:
        response = client.get(request_uri, headers={"Accept": "application/oauth-authz-req+jwt"})
    except httpx.HTTPError as exc:
        raise InputError("verifier_unreachable", FIELD, f"the request: {exc}") from exc
    if not response.is_success:
        raise _refusal(response, "the request")
    try:
        verified = P.verify_request_object(
            response.text, client_id=client_id, anchors=anchors, now=now
        )
    except P.ProtocolError as exc:
        raise InputError(exc.code, FIELD, exc.message) from exc
    names = members or {}
    verifier = next((uri for uri in verified.verifier.uris), client_id)
    return Asked(verified, verifier, names.get(verifier))


def credential_vct(credential: str) -> str:
    """The credential type (``vct``) a credential says it is, unverified: what a wallet
    files it by and answers a query for that type with."""
    return str(issuer_claims(credential).get("vct", ""))


def available_claims(credential: str) -> dict[str, Any]:
    """The disclosable claims of ``credential`` by the names :func:`protocol.present`
    takes: ``band``, ``alliance_score``, ``score_at_least.650``, ...; for the
    domestic-service credential ``rating_at_least.4``, ..."""
    # the threshold container's entries are disclosures of their own, named by their
    # threshold: score_at_least's in a credit standing, rating_at_least's otherwise
    container = "score_at_least" if credential_vct(credential) == P.VCT else "rating_at_least"
    return {
        (f"{container}.{name}" if name.isdigit() else name): value
        for name, value in disclosed_claims(credential).items()
    }


def _encryption_key(metadata: Any) -> tuple[ec.EllipticCurvePublicKey, str | None]:
    keys = (metadata or {}).get("jwks", {}).get("keys", []) if isinstance(metadata, dict) else []
    for jwk in keys:
        if isinstance(jwk, dict) and jwk.get("alg") == "ECDH-ES" and jwk.get("crv") == "P-256":
            try:
                public = {k: jwk[k] for k in ("kty", "crv", "x", "y")}
                key = P.public_key_from_jwk(public)
            except (KeyError, P.ProtocolError):
                continue
            if isinstance(key, ec.EllipticCurvePublicKey):
                return key, jwk.get("kid")
    raise InputError(
        "no_encryption_key",
        FIELD,
        "the verifier asks for an encrypted answer but gives no P-256 key",
    )


def response_form(
    request: P.VerifiedRequest, presentation: str, *, encrypt: bool | None = None
) -> dict[str, str]:
    """The form a wallet posts to the response URI with ``presentation`` as the
    ``vp_token`` (section 8.2), encrypted to the verifier's key when the request asks for
    ``direct_post.jwt`` (section 8.3: ECDH-ES, A256GCM where offered, the key's ``kid``).
    ``encrypt`` overrides what the request asks (a test's or a fault's downgrade)."""
    claims = request.claims
    params: dict[str, Any] = {"vp_token": {request.query_id: [presentation]}}
    if "state" in claims:
        params["state"] = claims["state"]
    if not (claims["response_mode"] == "direct_post.jwt" if encrypt is None else encrypt):
        return {"vp_token": json.dumps(params["vp_token"]),
                **({"state": params["state"]} if "state" in params else {})}  # fmt: skip
    key, kid = _encryption_key(claims.get("client_metadata"))
    offered = claims.get("client_metadata", {}).get(
        "encrypted_response_enc_values_supported", ["A128GCM"]
    )
    enc = "A256GCM" if "A256GCM" in offered else "A128GCM"  # HAIP: SHOULD use A256GCM
    jwe = P.encrypt_ecdh_es(
        json.dumps(params).encode(), key, enc=enc, kid=kid,
        apu=secrets.token_bytes(16), apv=str(claims["nonce"]).encode(),
    )  # fmt: skip
    return {"response": jwe}


def answer_request(
    asked: Asked,
    credential: str,
    *,
    holder_key: P.PrivateKey,
    now: int,
    client: httpx.Client,
) -> dict[str, Any]:
    """Present ``credential`` disclosing exactly what ``asked`` wants (section 6.4.1:
    nothing more), the KB-JWT's ``aud`` the full client identifier (section B.3.6), and
    post the answer to the response URI (section 8.2, or 8.3 encrypted). The response
    endpoint's answer; its refusal as ``InputError``."""
    claims = asked.request.claims
    try:
        presentation = P.present(
            credential, disclose=list(asked.disclosures_for(credential)), holder_key=holder_key,
            aud=claims["client_id"], nonce=claims["nonce"], now=now, recipient=asked.verifier,
        )  # fmt: skip
    except P.ProtocolError as exc:
        raise InputError(exc.code, FIELD, f"the credential can't answer: {exc.message}") from exc
    form = response_form(asked.request, presentation)
    try:
        response = client.post(str(claims["response_uri"]), data=form)
    except httpx.HTTPError as exc:
        raise InputError("verifier_unreachable", FIELD, f"the response: {exc}") from exc
    if not response.is_success:
        raise _refusal(response, "the verifier")
    try:
        answer: dict[str, Any] = response.json()
    except ValueError:
        answer = {}
    return answer
