"""Every node an OpenID4VCI 1.0 credential issuer and its own authorization server
(issue 14; docs/PROTOCOL.md section 10, docs/ISSUING.md "Standard wallets").

A logged-in resident who has given both consents asks for a credential offer
(``POST /v1/me/credential-offers``): a single-use offer id, and a transaction code
(``tx_code``) when the wallet is on another screen. Her wallet fetches the offer once
(``GET /oid4vci/offers/<id>``) and gets a fresh pre-authorized code in it (so no code
ever travels in a URL), exchanges the code (and the ``tx_code``) for an access token at
the token endpoint (bound to its DPoP key when it sends a DPoP proof), asks the nonce
endpoint for a ``c_nonce``, and sends a key proof over that nonce to the credential
endpoint, which issues through the very service the ccx dialect uses
(:func:`node.services.issuing.issue_bound`: consents, score, status index, audit).

Every secret (offer id, pre-authorized code, c_nonce, access token, DPoP proof id) is
single use or short-lived, and kept as its SHA-256 in the ``nonce`` table
(:mod:`node.services.nonces`). Refusals are OAuth-shaped (:class:`node.errors.OAuthError`)
with the specs' codes.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from sqlalchemy import Connection, update
from sqlmodel import Session, col

import protocol as P
from keys import Keyring
from node.credentials import CREDIT_STANDING, DOMESTIC_SERVICE
from node.errors import NodeError, OAuthError
from node.models import Nonce
from node.services import audit, domestic, issuing
from node.services.nonces import (
    SecretRefused,
    nonce_digest,
    peek_secret,
    redeem,
    seal,
    store_secret,
    store_secret_once,
    take_secret,
    unseal,
)
from node.state import NodeState

__all__ = [
    "CONFIGURATIONS",
    "CONFIGURATION_ID",
    "DOMESTIC_CONFIGURATION_ID",
    "PREAUTHORIZED_GRANT",
    "CredentialOffer",
    "TokenGrant",
    "TokenHolder",
    "access_token_grant",
    "access_token_holder",
    "authorization_server_metadata",
    "create_offer",
    "credential_issuer_metadata",
    "dpop_jkt",
    "issue_credential",
    "login_endpoint",
    "mint_access_token",
    "new_c_nonce",
    "offer_document",
    "redeem_pre_authorized_code",
    "type_metadata",
]

CONFIGURATION_ID = "ccx_credit_standing"  # also the scope that asks for it
DOMESTIC_CONFIGURATION_ID = "ccx_domestic_service"  # issue 18, docs/CREDENTIALS.md
# configuration id -> the credential type it issues (node.credentials)
CONFIGURATIONS = {CONFIGURATION_ID: CREDIT_STANDING, DOMESTIC_CONFIGURATION_ID: DOMESTIC_SERVICE}
PREAUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
OFFER_LIFETIME = 300  # seconds an offer may wait for its wallet
CODE_LIFETIME = 120  # seconds a pre-authorized code may wait for its token request
C_NONCE_LIFETIME = 300
ACCESS_TOKEN_LIFETIME = 300  # OpenID4VCI section 13.10: longer ones must be sender-bound
TX_CODE_LENGTH = 6
TX_CODE_TRIES = 5  # wrong transaction codes before the pre-authorized code is burnt
DPOP_MAX_AGE = 300
PROOF_ALGS = ("ES256", "EdDSA")

OFFER, CODE, C_NONCE, ACCESS, DPOP_JTI = (
    "vci_offer",
    "vci_code",
    "vci_c_nonce",
    "vci_token",
    "dpop_jti",
)


def _endpoint(state: NodeState, path: str) -> str:
    return f"{state.settings.node_id}{path}"


# --- metadata ------------------------------------------------------------------------------


def credential_issuer_metadata(state: NodeState) -> dict[str, Any]:
    """The Credential Issuer Metadata (OpenID4VCI 1.0 section 12.2.4): the node is the
    issuer and its own authorization server; the credit standing's configuration, and the
    domestic-service credential's when its scoring model names the records that feed it."""
    issuer = state.settings.node_id
    city = state.settings.city
    metadata = {
        "credential_issuer": issuer,
        "credential_endpoint": _endpoint(state, "/oid4vci/credential"),
        "nonce_endpoint": _endpoint(state, "/oid4vci/nonce"),
        "display": [
            {"name": f"City Credit Exchange, {city}", "locale": "en"},
            {"name": f"城市信用互认（{city}）", "locale": "zh-CN"},
        ],
        "credential_configurations_supported": {
            CONFIGURATION_ID: {
                "format": P.ATTESTATION_TYP,
                "vct": P.VCT,
                "scope": CONFIGURATION_ID,
                "cryptographic_binding_methods_supported": ["jwk"],
                "credential_signing_alg_values_supported": ["ES256", "EdDSA"],
                "proof_types_supported": {
                    "jwt": {"proof_signing_alg_values_supported": list(PROOF_ALGS)}
                },
                "credential_metadata": {
                    "display": [
                        {
                            "name": "Credit standing",
                            "locale": "en",
                            "description": "Your standing on the alliance scale, for "
                            "benefits in every member city",
                        },
                        {
                            "name": "信用状况",
                            "locale": "zh-CN",
                            "description": "您在联盟信用标尺上的信用状况，可在各成员城市享受信易+服务",
                        },
                    ],
                    "claims": _claim_descriptions(state),
                },
            }
        },
    }
    if domestic.credential_rules(state) is not None:
        configurations: dict[str, Any] = metadata["credential_configurations_supported"]  # type: ignore[assignment]
        configurations[DOMESTIC_CONFIGURATION_ID] = {
            **configurations[CONFIGURATION_ID],
            "vct": P.DOMESTIC_VCT,
            "scope": DOMESTIC_CONFIGURATION_ID,
            "credential_metadata": {
                "display": [
                    {"name": "Domestic service", "locale": "en",
                     "description": "Your background check, training, ratings and complaints "
                     "as a housekeeper, for agencies and families in every member city"},
                    {"name": "家政服务", "locale": "zh-CN",
                     "description": "您作为家政服务人员的背景审查、培训、评价与投诉情况"},
                ],
                "claims": [
                    {"path": [name], "display": [{"name": en, "locale": "en"},
                                                 {"name": zh, "locale": "zh-CN"}]}
                    for name, en, zh in _DOMESTIC_CLAIM_NAMES
                ],
            },
        }  # fmt: skip
    return metadata


_CLAIM_NAMES: list[tuple[str, str, str]] = [
    ("alliance_score", "Alliance score", "联盟信用分"),
    ("band", "Band", "信用等级"),
    ("local_score", "Score of the home city", "本市信用分"),
    ("local_scale", "Scale of the home city", "本市信用分标尺"),
    ("score_date", "Score date", "评分日期"),
    ("score_at_least", "Score at least", "信用分不低于"),
]


_DOMESTIC_CLAIM_NAMES: list[tuple[str, str, str]] = [
    ("background_check_passed", "Background check passed", "背景审查通过"),
    ("background_check_date", "Background check date", "背景审查日期"),
    ("certified_since", "Certified since", "持证起始日期"),
    ("training_certificates", "Training certificates", "培训证书数"),
    ("rating_count", "Ratings", "评价数"),
    ("no_upheld_complaints_12m", "No upheld complaint in 12 months", "近12个月无成立投诉"),
    ("rating_at_least", "Rating at least", "评分不低于"),
]


def type_metadata(vct: str = P.VCT) -> dict[str, Any]:
    """SD-JWT VC Type Metadata (draft-ietf-oauth-sd-jwt-vc, section "SD-JWT VC Type
    Metadata") for the credit standing, or for the domestic-service credential
    (``vct`` :data:`protocol.DOMESTIC_VCT`). The draft retrieves it from an https
    ``vct``; ours are URNs, so the documents are published by every issuer here and
    named in docs/PROTOCOL.md section 10 for wallets to keep. ValueError for another vct."""
    if vct == P.DOMESTIC_VCT:
        return _domestic_type_metadata()
    if vct != P.VCT:
        raise ValueError(f"no type metadata for {vct!r}")
    return {
        "vct": P.VCT,
        "name": "Credit standing / 信用状况",
        "description": "A resident's standing on the alliance credit scale, selectively "
        "disclosable, bound to her key.",
        "display": [
            {"locale": "en", "name": "Credit standing",
             "description": "Your standing on the alliance scale"},
            {"locale": "zh-CN", "name": "信用状况", "description": "您在联盟信用标尺上的信用状况"},
        ],
        "claims": [
            {
                "path": [name],
                "display": [{"locale": "en", "label": en}, {"locale": "zh-CN", "label": zh}],
                "sd": "never" if name == "score_at_least" else "always",
            }
            for name, en, zh in _CLAIM_NAMES
        ]
        + [
            {"path": ["score_at_least", None], "sd": "always",
             "display": [{"locale": "en", "label": "Score at least (each threshold)"},
                         {"locale": "zh-CN", "label": "信用分不低于（各档）"}]},
        ],
    }  # fmt: skip


def _domestic_type_metadata() -> dict[str, Any]:
    return {
        "vct": P.DOMESTIC_VCT,
        "name": "Domestic service / 家政服务",
        "description": "A housekeeper's background check, training, ratings and upheld "
        "complaints, each selectively disclosable, bound to her key.",
        "display": [
            {"locale": "en", "name": "Domestic service",
             "description": "Your record as a housekeeper"},
            {"locale": "zh-CN", "name": "家政服务", "description": "您的家政服务记录"},
        ],
        "claims": [
            {
                "path": [name],
                "display": [{"locale": "en", "label": en}, {"locale": "zh-CN", "label": zh}],
                "sd": "never" if name == "rating_at_least" else "always",
            }
            for name, en, zh in _DOMESTIC_CLAIM_NAMES
        ]
        + [
            {"path": ["rating_at_least", None], "sd": "always",
             "display": [{"locale": "en", "label": "Rating at least (each threshold, stars)"},
                         {"locale": "zh-CN", "label": "评分不低于（各档，星级）"}]},
        ],
    }  # fmt: skip


def _claim_descriptions(state: NodeState) -> list[dict[str, Any]]:
    return [
        {"path": [name], "display": [{"name": en, "locale": "en"}, {"name": zh, "locale": "zh-CN"}]}
        for name, en, zh in _CLAIM_NAMES
    ]


def login_endpoint(state: NodeState) -> str | None:
    """Where residents log in for the authorization code grant: the identity provider's
    authorization endpoint (``CCX_IDP_AUTHORIZATION_ENDPOINT``), the development one's
    with ``CCX_DEV_IDP``; None: that grant is off (node/services/oid4vci_authorization.py)."""
    configured = state.settings.idp_authorization_endpoint
    if configured:
        return configured
    return _endpoint(state, "/dev-idp/authorize") if state.settings.dev_idp else None


def authorization_server_metadata(state: NodeState) -> dict[str, Any]:
    """Authorization Server Metadata (RFC 8414) of the node as its own AS: the
    pre-authorized code grant always, the authorization code grant (pushed requests
    only, PKCE S256, ``iss`` in the answer) when residents have somewhere to log in."""
    metadata: dict[str, Any] = {
        "issuer": state.settings.node_id,
        "token_endpoint": _endpoint(state, "/oid4vci/token"),
        "grant_types_supported": [PREAUTHORIZED_GRANT],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "pre-authorized_grant_anonymous_access_supported": True,
        "dpop_signing_alg_values_supported": list(PROOF_ALGS),
        "scopes_supported": [CONFIGURATION_ID],  # the authorization code grant: credit only
    }
    if login_endpoint(state) is not None:
        metadata.update(
            {
                "authorization_endpoint": _endpoint(state, "/oid4vci/authorize"),
                "pushed_authorization_request_endpoint": _endpoint(state, "/oid4vci/par"),
                "require_pushed_authorization_requests": True,
                "grant_types_supported": ["authorization_code", PREAUTHORIZED_GRANT],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": True,
            }
        )
    return metadata


# --- offers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialOffer:
    """What the resident gets: the offer's URL, the ``openid-credential-offer://`` link
    a wallet takes (as a QR code or a tap), the transaction code to type in when the
    wallet is on another screen, and when the offer lapses."""

    offer_id: str
    credential_offer_uri: str
    link: str
    tx_code: str | None
    expires_at: int


def create_offer(
    session: Session,
    state: NodeState,
    resident_id: str,
    *,
    cross_device: bool,
    now: int,
    configuration: str = CONFIGURATION_ID,
) -> CredentialOffer:
    """A single-use credential offer for ``resident_id`` (committed) of the credential
    ``configuration`` (:data:`CONFIGURATIONS`). Needs its consents now (NodeError 403
    ``consent_required``), as the credential itself will; with ``cross_device``, a
    numeric transaction code of six digits the wallet must send. NodeError 404
    ``credential_not_issued`` for the domestic-service credential on a node whose model
    names no records for it."""
    credential = CONFIGURATIONS[configuration]
    if credential == DOMESTIC_SERVICE and domestic.credential_rules(state) is None:
        raise NodeError(
            "credential_not_issued", "this node issues no domestic-service credential", status=404
        )
    connection = session.connection()
    issuing.require_consents(connection, resident_id, now, state.settings.alliance, credential)
    offer_id = secrets.token_urlsafe(32)
    tx_code = (
        "".join(str(secrets.randbelow(10)) for _ in range(TX_CODE_LENGTH)) if cross_device else None
    )
    store_secret(
        connection,
        purpose=OFFER,
        value=offer_id,
        subject=resident_id,
        expires_at=now + OFFER_LIFETIME,
        data={"tx_code": nonce_digest(tx_code) if tx_code else None,
              "configuration": configuration},
    )  # fmt: skip
    audit.append(
        session,
        actor="resident",
        action="credential_offer.created",
        subject=resident_id,
        details={
            "cross_device": cross_device,
            "expires_at": now + OFFER_LIFETIME,
            "configuration": configuration,
        },
        now=now,
    )
    session.commit()
    uri = _endpoint(state, f"/oid4vci/offers/{offer_id}")
    return CredentialOffer(
        offer_id=offer_id,
        credential_offer_uri=uri,
        link="openid-credential-offer://?credential_offer_uri=" + quote(uri, safe=""),
        tx_code=tx_code,
        expires_at=now + OFFER_LIFETIME,
    )


def offer_document(
    session: Session, state: NodeState, offer_id: str, *, now: int
) -> dict[str, Any]:
    """The Credential Offer (OpenID4VCI section 4.1.1), once (committed): the offer is
    used up, and a fresh pre-authorized code is made for it and put in the document, so
    that the code itself never travels in a URL. NodeError 404 ``offer_not_found`` for
    an offer unknown, fetched already or lapsed."""
    connection = session.connection()
    try:
        resident_id, data = take_secret(connection, purpose=OFFER, value=offer_id, now=now)
    except SecretRefused as refused:
        raise NodeError(
            "offer_not_found",
            f"no such credential offer ({refused.why}): ask for a new one",
            status=404,
        ) from None
    code = secrets.token_urlsafe(32)
    store_secret(
        connection,
        purpose=CODE,
        value=code,
        subject=resident_id,
        expires_at=now + CODE_LIFETIME,
        data={"tx_code": data.get("tx_code"), "tries": 0,
              "configuration": data.get("configuration") or CONFIGURATION_ID},
    )  # fmt: skip
    session.commit()
    grant: dict[str, Any] = {"pre-authorized_code": code}
    if data.get("tx_code"):
        grant["tx_code"] = {
            "input_mode": "numeric",
            "length": TX_CODE_LENGTH,
            "description": "The code shown beside the QR code / 二维码旁显示的数字",
        }
    return {
        "credential_issuer": state.settings.node_id,
        "credential_configuration_ids": [data.get("configuration") or CONFIGURATION_ID],
        "grants": {PREAUTHORIZED_GRANT: grant},
    }


# --- tokens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenGrant:
    """An access token for the credential endpoint (``token_type`` DPoP when bound)."""

    access_token: str
    token_type: str
    expires_in: int


def dpop_jkt(
    session: Session, state: NodeState, proof: str, *, method: str, url: str, now: int,
    access_token: str | None = None,
) -> str:  # fmt: skip
    """The thumbprint a DPoP proof's key has; the proof's ``jti`` is remembered for its
    window so that a replay is refused (OAuth ``invalid_dpop_proof``)."""
    try:
        verified = P.verify_dpop_proof(
            proof, method=method, url=url, now=now, max_age=DPOP_MAX_AGE,
            access_token=access_token, allowed_algs=PROOF_ALGS,
        )  # fmt: skip
    except P.ProtocolError as exc:
        raise OAuthError("invalid_dpop_proof", exc.message, status=400) from exc
    fresh = store_secret_once(
        session.connection(),
        purpose=DPOP_JTI,
        value=f"{verified.jkt}:{verified.jti}",
        expires_at=verified.iat + DPOP_MAX_AGE + 60,
    )
    if not fresh:
        raise OAuthError("invalid_dpop_proof", "this DPoP proof was used before: make a new one")
    return verified.jkt


def redeem_pre_authorized_code(
    session: Session,
    state: NodeState,
    form: Mapping[str, str],
    *,
    dpop: str | None,
    now: int,
) -> TokenGrant:
    """The token endpoint for the pre-authorized code grant (OpenID4VCI section 6):
    the code single use, the transaction code when the offer had one (a wrong one counts;
    after ``TX_CODE_TRIES`` the code is burnt), the token bound to the DPoP key when a
    DPoP proof comes with the request (committed). OAuthError ``invalid_request``,
    ``unsupported_grant_type``, ``invalid_grant``, ``invalid_dpop_proof``."""
    grant_type = form.get("grant_type")
    if grant_type != PREAUTHORIZED_GRANT:
        raise OAuthError("unsupported_grant_type", f"grant_type must be {PREAUTHORIZED_GRANT}")
    code = form.get("pre-authorized_code")
    if not code:
        raise OAuthError("invalid_request", "pre-authorized_code is missing")
    connection = session.connection()
    try:
        resident_id, data = peek_secret(connection, purpose=CODE, value=code, now=now)
    except SecretRefused as refused:
        raise OAuthError(
            "invalid_grant", f"the pre-authorized code is {refused.why}: ask for a new offer"
        ) from None
    expected = data.get("tx_code")
    sent = form.get("tx_code")
    if expected is None and sent:
        raise OAuthError("invalid_request", "this offer has no transaction code: send none")
    if expected is not None:
        if not sent:
            raise OAuthError("invalid_request", "tx_code is missing: the offer asks for one")
        if not secrets.compare_digest(nonce_digest(sent), expected):
            _count_wrong_tx_code(session, code, data, now)
            raise OAuthError("invalid_grant", "the transaction code is wrong")
    jkt = (
        dpop_jkt(
            session, state, dpop, method="POST", url=_endpoint(state, "/oid4vci/token"), now=now
        )
        if dpop
        else None
    )
    try:
        take_secret(connection, purpose=CODE, value=code, now=now)
    except SecretRefused as refused:  # another request took it in between
        raise OAuthError("invalid_grant", f"the pre-authorized code is {refused.why}") from None
    configuration = str(data.get("configuration") or CONFIGURATION_ID)
    return mint_access_token(session, resident_id, jkt=jkt, now=now, configuration=configuration)


def mint_access_token(
    session: Session,
    resident_id: str | None,
    *,
    jkt: str | None,
    now: int,
    configuration: str = CONFIGURATION_ID,
) -> TokenGrant:
    """A fresh access token for the credential endpoint, bound to the DPoP key ``jkt``
    when there is one, good for the credential ``configuration`` alone (its offer's;
    issue 18) (committed)."""
    access_token = secrets.token_urlsafe(32)
    store_secret(
        session.connection(),
        purpose=ACCESS,
        value=access_token,
        subject=resident_id,
        expires_at=now + ACCESS_TOKEN_LIFETIME,
        data={"jkt": jkt, "configuration": configuration},
    )
    session.commit()
    return TokenGrant(access_token, "DPoP" if jkt else "Bearer", ACCESS_TOKEN_LIFETIME)


def _count_wrong_tx_code(session: Session, code: str, data: dict[str, Any], now: int) -> None:
    tries = int(data.get("tries", 0)) + 1
    values: dict[str, Any] = {"data": {**data, "tries": tries}}
    if tries >= TX_CODE_TRIES:
        values["used_at"] = now  # burnt: a guesser has no more tries
    session.execute(update(Nonce).where(col(Nonce.value) == nonce_digest(code)).values(**values))
    session.commit()


# --- nonces and credentials ------------------------------------------------------------------


def new_c_nonce(state: NodeState, *, now: int) -> str:
    """A fresh ``c_nonce`` (OpenID4VCI section 7), single use (sealed: nothing is written
    until it is used, node.services.nonces)."""
    return seal(state.signing_keys(), C_NONCE, "", now + C_NONCE_LIFETIME)


class TokenHolder(NamedTuple):
    """Whom an access token stands for, and the one credential configuration it is for."""

    resident: str
    configuration: str


def access_token_holder(
    session: Session, state: NodeState, authorization: str | None, dpop: str | None, now: int
) -> str:
    """:func:`access_token_grant`'s resident."""
    return access_token_grant(session, state, authorization, dpop, now).resident


def access_token_grant(
    session: Session, state: NodeState, authorization: str | None, dpop: str | None, now: int
) -> TokenHolder:
    """The resident an access token at the credential endpoint stands for (RFC 6750
    section 3, RFC 9449 section 7), and the configuration it was granted for, checked
    before the request's body is read: OAuth 401 ``invalid_token`` with
    ``WWW-Authenticate``, 400 ``invalid_dpop_proof``."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme not in ("Bearer", "DPoP") or not token or len(token) > 512:
        raise OAuthError(
            "invalid_token",
            "an access token from the token endpoint is required",
            status=401,
            headers={"WWW-Authenticate": 'DPoP algs="ES256 EdDSA", Bearer'},
        )
    try:
        resident_id, data = peek_secret(session.connection(), purpose=ACCESS, value=token, now=now)
    except SecretRefused as refused:
        raise OAuthError(
            "invalid_token",
            f"the access token is {refused.why}",
            status=401,
            headers={"WWW-Authenticate": f'{scheme} error="invalid_token"'},
        ) from None
    bound = data.get("jkt")
    if bound is not None:
        if scheme != "DPoP" or not dpop:
            raise OAuthError(
                "invalid_token",
                "this access token is bound to a DPoP key: send it as DPoP with a proof",
                status=401,
                headers={"WWW-Authenticate": 'DPoP error="invalid_token"'},
            )
        jkt = dpop_jkt(
            session, state, dpop, method="POST",
            url=_endpoint(state, "/oid4vci/credential"), now=now, access_token=token,
        )  # fmt: skip
        if not secrets.compare_digest(jkt, bound):
            raise OAuthError(
                "invalid_token",
                "the DPoP proof is signed by another key than the token's",
                status=401,
                headers={"WWW-Authenticate": 'DPoP error="invalid_token"'},
            )
    elif scheme != "Bearer":
        raise OAuthError(
            "invalid_token", "this access token is a bearer token", status=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )  # fmt: skip
    assert resident_id is not None
    return TokenHolder(resident_id, str(data.get("configuration") or CONFIGURATION_ID))


def _proof_of(body: Any) -> str:
    """The one jwt key proof of a credential request (OpenID4VCI section 8.2)."""
    if not isinstance(body, dict):
        raise OAuthError("invalid_credential_request", "the request must be a JSON object")
    if "credential_identifier" in body:
        raise OAuthError(
            "unknown_credential_identifier",
            "this issuer gives no credential identifiers: name credential_configuration_id",
        )
    configuration = body.get("credential_configuration_id")
    if not isinstance(configuration, str) or configuration not in CONFIGURATIONS:
        raise OAuthError(
            "unknown_credential_configuration",
            f"credential_configuration_id must be one of {sorted(CONFIGURATIONS)}",
        )
    if "proof" in body:
        raise OAuthError("invalid_credential_request", "send proofs (1.0), not proof (drafts)")
    proofs = body.get("proofs")
    if not isinstance(proofs, dict) or set(proofs) != {"jwt"}:
        raise OAuthError("invalid_proof", 'proofs must hold one proof type, "jwt"')
    jwts = proofs["jwt"]
    if not isinstance(jwts, list) or len(jwts) != 1 or not isinstance(jwts[0], str):
        raise OAuthError("invalid_proof", "proofs.jwt must hold one key proof (no batch issuance)")
    return jwts[0]


def _use_c_nonce(connection: Connection, ring: Keyring, c_nonce: str, now: int) -> None:
    try:
        redeem(connection, c_nonce, C_NONCE, unseal(ring, c_nonce, C_NONCE, "", now=now), now)
    except SecretRefused as refused:
        raise OAuthError(
            "invalid_nonce", f"the proof's c_nonce is {refused.why}: ask the nonce endpoint"
        ) from None


def issue_credential(
    session: Session,
    state: NodeState,
    resident_id: str,
    *,
    body: Any,
    now: int,
    granted: str = CONFIGURATION_ID,
) -> str:
    """The credential endpoint (OpenID4VCI section 8) for ``resident_id``, whose access
    token :func:`access_token_holder` accepted: the request, the key proof over a c_nonce
    of this node (single use), then :func:`node.services.issuing.issue_bound`. Returns
    the SD-JWT VC. OAuthError with the spec's codes; a missing consent or score is
    ``credential_request_denied``."""
    proof = _proof_of(body)
    if body["credential_configuration_id"] != granted:
        raise OAuthError(
            "invalid_credential_request",
            f"this access token was granted for {granted!r}: ask for an offer of "
            f"{body['credential_configuration_id']!r}",
        )
    issue_bound = (
        domestic.issue_domestic_bound
        if CONFIGURATIONS[body["credential_configuration_id"]] == DOMESTIC_SERVICE
        else issuing.issue_bound
    )
    try:
        key_proof = P.verify_key_proof(
            proof,
            issuer=state.settings.node_id,
            now=now,
            max_age=state.settings.nonce_lifetime,
            allowed_algs=PROOF_ALGS,
        )
    except P.ProtocolError as exc:
        raise OAuthError("invalid_proof", exc.message) from exc
    try:
        issued = issue_bound(
            session,
            state,
            resident_id,
            holder_key=key_proof.holder_key,
            use_proof_nonce=lambda connection: _use_c_nonce(
                connection, state.signing_keys(), key_proof.nonce, now
            ),
            flow="openid4vci",
            now=now,
        )
    except NodeError as exc:
        session.rollback()
        if exc.status >= 500:
            raise OAuthError("temporarily_unavailable", exc.message, status=exc.status) from exc
        raise OAuthError("credential_request_denied", exc.message) from exc
    return issued.token


def issuer_path(node_id: str) -> str:
    """The path of the issuer identifier (``""`` for a host-only id): the well-known
    documents of an issuer with a path live at ``/.well-known/<name><path>``
    (OpenID4VCI section 12.2.2, RFC 8414 section 3)."""
    return urlsplit(node_id).path.rstrip("/")
