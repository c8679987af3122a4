"""Every node an OpenID4VP 1.0 verifier for its service points (issue 14;
docs/PROTOCOL.md section 11, docs/VERIFYING.md "Standard wallets").

A service point asks for a presentation request for one scenario
(:func:`create_request`) and shows its ``openid4vp://`` link as a QR code. The resident's
wallet fetches the signed request object once (:func:`request_object`): client
identifier ``x509_hash:<the node's leaf>``, the leaf in ``x5c`` (the alliance CA's
certificate of one of the node's registry keys), a fresh ``nonce`` and ``state``, the
``response_uri``, a DCQL query for the scenario's claims, and for ``direct_post.jwt`` a
fresh P-256 key to encrypt the answer to. The wallet posts its ``vp_token`` (encrypted or
not) to the response endpoint (:func:`receive_response`), which decides exactly as
``/v1/verifications`` does (node.services.verifying: registry keys only, status, policy,
tiers, one audit entry), with the KB-JWT's ``aud`` the full client identifier and the
attestation's recipients checked against this node's member id. The service point reads
the decision (:func:`result`).

A request is sealed, not stored (issue 15; node.services.nonces): its id is 12 random
bytes, its expiry, the response mode, the scenario and the service point, with an
HMAC under a key derived from the node's signing key. The transaction id is the same
body sealed for another purpose (only the node can derive it from the request id); the
request's ``nonce``, ``state`` and response encryption key are derived from the
transaction id with that key. Nothing is written when a request is made; the request id
is used up when the wallet fetches the object (its digest inserted), the nonce and the
transaction when it answers (their digests inserted, the answer kept beside the
transaction's for the service point), in the writer's group commit. The database holds
only digests and the answer.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Table, bindparam, select, update

import protocol as P
from node.auth import client_by_id
from node.errors import NodeError, OAuthError
from node.models import AuditEntry, Nonce
from node.scenarios import CREDIT_STANDING, DOMESTIC_SERVICE, Requirement, Scenario
from node.services import verifying
from node.services.nonces import (
    Opened,
    SecretRefused,
    derive,
    nonce_digest,
    open_sealed,
    redeem,
    reseal,
    seal,
)
from node.services.writer import WriteBatch
from node.state import ClientIdentity, NodeState
from protocol._json import b64url_encode

__all__ = [
    "DAY_LIST_LIMIT",
    "REQUEST_SCHEME",
    "PresentationRequest",
    "create_request",
    "decisions_since",
    "receive_response",
    "request_object",
    "result",
    "scenarios_of",
    "verifier_identity",
]

REQUEST_SCHEME = "openid4vp"
REQUEST, TRANSACTION = "vp_request", "vp_transaction"
ENC_VALUES = ["A128GCM", "A256GCM"]  # HAIP 1.0 section 5: verifiers support both
ALGS = ["ES256", "EdDSA"]

_NONCES = cast(Table, Nonce.__table__)  # type: ignore[attr-defined]
_READ = select(_NONCES.c.purpose, _NONCES.c.subject, _NONCES.c.used_at,
               _NONCES.c.expires_at, _NONCES.c.data).where(_NONCES.c.value == bindparam("digest"))  # fmt: skip
_ANSWER = (
    update(_NONCES)
    .where(
        _NONCES.c.value == bindparam("digest"),
        _NONCES.c.purpose == TRANSACTION,
        _NONCES.c.used_at.is_(None),
    )
    .values(used_at=bindparam("used_now"), data=bindparam("answered"))
)


# --- who the verifier is ----------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierIdentity:
    key: P.PrivateKey
    kid: str
    certificate: bytes  # the leaf, DER
    client_id: str


def verifier_identity(state: NodeState, now: int, *, kid: str | None = None) -> VerifierIdentity:
    """The key this node signs requests with and its leaf certificate from the registry
    in effect: the active key's, else the next one's (``kid`` names one). NodeError 503
    ``verifier_certificate_unavailable`` when the alliance has certified none yet."""
    registry = state.registry_in_effect(now)
    node_id = state.settings.node_id
    ring = state.signing_keys()
    candidates = [ring.active] + [k for k in ring.keys if k is not ring.active]
    known = state.memory.verifier_identities
    for managed in candidates:
        if kid is not None and managed.kid != kid:
            continue
        der = registry.certificate(node_id, managed.kid)
        if der is None or registry.verifier_ca is None or not managed.verifies_at(now):
            continue
        kept = known.get((registry.version, managed.kid))
        if kept is not None and kept[0] == der and kept[2] <= now <= kept[3]:
            identity: VerifierIdentity = kept[1]
            return identity
        try:
            certified = P.verify_x5c([der], [registry.verifier_ca], now=now)
        except P.ProtocolError:
            continue
        if node_id in certified.uris:
            identity = VerifierIdentity(managed.private_key, managed.kid, der, P.client_id_for(der))
            if len(known) > 64:
                known.clear()
            known[(registry.version, managed.kid)] = (
                der,
                identity,
                certified.valid_from,
                certified.valid_until,
            )
            return identity
    raise NodeError(
        "verifier_certificate_unavailable",
        f"registry version {registry.version} carries no valid certificate of this node's "
        "keys: the alliance certifies member keys when it publishes a version",
        status=503,
    )


# --- the service point's request ---------------------------------------------------------------


@dataclass(frozen=True)
class PresentationRequest:
    """What a kiosk shows (``link`` as a QR code) and keeps (``transaction_id``)."""

    transaction_id: str
    link: str
    request_uri: str
    client_id: str
    response_mode: str
    expires_at: int
    scenario: Scenario
    disclose: list[str]
    requirements: tuple[Requirement, ...]


def _url(state: NodeState, path: str) -> str:
    return f"{state.settings.node_id}{path}"


def create_request(
    state: NodeState,
    client: ClientIdentity,
    kind: str,
    *,
    response_mode: str,
    now: int,
) -> PresentationRequest:
    """A presentation request of ``client`` for scenario ``kind``, sealed: nothing is
    written. Raises what ``verifying.create_challenge`` raises, and 503
    ``verifier_certificate_unavailable``."""
    if response_mode not in P.RESPONSE_MODES:
        raise NodeError(
            "invalid_request", f"response_mode must be one of {P.RESPONSE_MODES}", status=422
        )
    identity = verifier_identity(state, now)
    scenario, reqs, disclose = verifying.asked(state, client, kind, now=now)
    expires_at = now + state.settings.challenge_lifetime
    ring = state.signing_keys()
    if identity.kid != ring.active.kid:  # requests are sealed with the active key's
        raise NodeError(
            "verifier_certificate_unavailable",
            "the alliance has not certified this node's active key yet",
            status=503,
        )
    payload = _MODES[response_mode] + f"{kind}\0{client.id}".encode()
    request_id = seal(ring, REQUEST, "", expires_at, payload)
    request = open_sealed(ring, request_id, REQUEST, "", now=now)
    request_uri = _url(state, f"/oid4vp/requests/{request_id}")
    link = f"{REQUEST_SCHEME}://?" + urlencode(
        {"client_id": identity.client_id, "request_uri": request_uri}
    )
    return PresentationRequest(
        transaction_id=reseal(ring, request, TRANSACTION, ""),
        link=link,
        request_uri=request_uri,
        client_id=identity.client_id,
        response_mode=response_mode,
        expires_at=expires_at,
        scenario=scenario,
        disclose=disclose,
        requirements=reqs,
    )


_MODES = {"direct_post.jwt": b"J", "direct_post": b"P"}
_VCT_OF = {CREDIT_STANDING: P.VCT, DOMESTIC_SERVICE: P.DOMESTIC_VCT}
_MODE_OF = {value[0]: mode for mode, value in _MODES.items()}


@dataclass(frozen=True, slots=True)
class _Sealed:
    """What a request's id or transaction id carries."""

    opened: Opened
    mode: str
    kind: str
    client: str

    @property
    def expires_at(self) -> int:
        return self.opened.expires_at

    @property
    def kid(self) -> str:
        return self.opened.kid


def _open(
    state: NodeState, value: str, purpose: str, now: int, *, expired: bool = False
) -> _Sealed:
    """A request id (``REQUEST``) or transaction id (``TRANSACTION``) this node sealed.
    Raises :class:`SecretRefused` (``expired`` unless ``expired``)."""
    opened = open_sealed(state.signing_keys(), value, purpose, "", now=now, expired=expired)
    payload = opened.payload
    kind, _, client = payload[1:].decode("utf-8", "replace").partition("\0")
    mode = _MODE_OF.get(payload[0]) if payload else None
    if mode is None or not kind or not client:
        raise SecretRefused("unknown")
    return _Sealed(opened, mode, kind, client)


# The transaction's secrets are derived, never stored (docs/SECURITY.md section 19): its
# nonce, state and response encryption key from its id, each with the value key of the
# signing key that sealed it (node.services.nonces.derive).


def _derived(state: NodeState, sealed: _Sealed, label: str, transaction_id: str) -> bytes:
    return derive(state.signing_keys(), sealed.kid, label, transaction_id)


def _nonce_of(state: NodeState, sealed: _Sealed, transaction_id: str) -> str:
    return b64url_encode(_derived(state, sealed, "vp nonce", transaction_id))


def _state_of(state: NodeState, sealed: _Sealed, transaction_id: str) -> str:
    return b64url_encode(_derived(state, sealed, "vp state", transaction_id))


def _enc_key(
    state: NodeState, sealed: _Sealed, transaction_id: str
) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """The response encryption key of the transaction, and its kid."""
    seed = _derived(state, sealed, "vp encryption key", transaction_id)
    scalar = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1()), "enc-" + b64url_encode(seed[:6])


_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# --- the wallet's fetch ------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetch:
    """A request object ready to hand out once ``job`` (the request id used up) is
    committed by the node's writer."""

    token: str
    job: Callable[[WriteBatch], None]


def request_object(state: NodeState, request_id: str, *, now: int) -> Fetch:
    """The signed request object (OpenID4VP sections 5 and 5.10), and the writer's job
    that uses the request id up (fetched once). NodeError 404 ``request_not_found`` for
    a request unknown or lapsed (and from the job, one fetched already); 503
    ``verifier_certificate_unavailable``."""
    try:
        sealed = _open(state, request_id, REQUEST, now)
        transaction_id = reseal(state.signing_keys(), sealed.opened, TRANSACTION, "")
    except SecretRefused as refused:
        raise _not_found(refused.why) from None
    client = client_by_id(state, sealed.client)
    if client is None:
        raise NodeError(
            "request_not_found", "the service point that asked is no longer allowed", status=404
        )
    scenario, _, disclose = verifying.asked(state, client, sealed.kind, now=now)
    identity = verifier_identity(state, now, kid=sealed.kid)
    claims: dict[str, Any] = {
        "aud": P.SELF_ISSUED_AUDIENCE,
        "client_id": identity.client_id,
        "response_type": "vp_token",
        "response_mode": sealed.mode,
        "response_uri": _url(state, f"/oid4vp/responses/{transaction_id}"),
        "nonce": _nonce_of(state, sealed, transaction_id),
        "state": _state_of(state, sealed, transaction_id),
        "dcql_query": _query(scenario, disclose),
        "client_metadata": _client_metadata(state, sealed, transaction_id),
        "iat": now,
        "exp": sealed.expires_at,
    }
    token = P.sign_request_object(claims, identity.key, [identity.certificate])

    def fetched(batch: WriteBatch) -> None:
        try:
            redeem(batch.connection, request_id, REQUEST, sealed.expires_at, now,
                   subject=sealed.client)  # fmt: skip
        except SecretRefused:
            raise _not_found("fetched already") from None

    return Fetch(token, fetched)


def _not_found(why: str) -> NodeError:
    return NodeError(
        "request_not_found",
        f"no such presentation request ({why}): ask the service point for a new one",
        status=404,
    )


def _query(scenario: Scenario, disclose: list[str]) -> dict[str, Any]:
    """The scenario's DCQL query: its tiers' claims as claim sets (the wallet discloses
    one boolean, the highest tier's its holder reaches, or for the domestic-service
    credential the claims of the highest tier she meets), plus what it must see."""
    if scenario.credential == DOMESTIC_SERVICE:
        return P.required_claims_query(
            P.DOMESTIC_VCT, [tier.requires for tier in scenario.tiers], scenario.shows
        )
    tiers = [name for name in disclose if name.startswith("score_at_least.")]
    extra = [name for name in disclose if not name.startswith("score_at_least.")]
    return P.tiered_dcql_query(tiers, extra)


def _client_metadata(state: NodeState, sealed: _Sealed, transaction_id: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "vp_formats_supported": {
            P.ATTESTATION_TYP: {"sd-jwt_alg_values": ALGS, "kb-jwt_alg_values": ALGS}
        }
    }
    if sealed.mode == "direct_post.jwt":
        key, kid = _enc_key(state, sealed, transaction_id)
        public = P.public_jwk(key.public_key())
        metadata["jwks"] = {"keys": [{**public, "kid": kid, "use": "enc", "alg": "ECDH-ES"}]}
        metadata["encrypted_response_enc_values_supported"] = ENC_VALUES
    return metadata


# --- the wallet's answer -----------------------------------------------------------------------


def _parameters(
    state: NodeState, transaction_id: str, sealed: _Sealed, form: Mapping[str, str]
) -> dict[str, Any]:
    """The response parameters (OpenID4VP sections 8.2, 8.3): decrypted from
    ``response`` for direct_post.jwt (a plain answer to an encrypted request is a
    downgrade, refused), else the form with ``vp_token`` parsed."""
    if sealed.mode == "direct_post.jwt":
        if "response" not in form:
            raise OAuthError(
                "invalid_request", "this request asked for an encrypted response (direct_post.jwt)"
            )
        key, kid = _enc_key(state, sealed, transaction_id)
        try:
            _, plaintext = P.decrypt_ecdh_es(form["response"], key, allowed_enc=ENC_VALUES, kid=kid)
            decrypted = P.strict_json_loads(plaintext, what="the response")
        except P.ProtocolError as exc:
            raise OAuthError("invalid_request", f"{exc.code}: {exc.message}") from exc
        if not isinstance(decrypted, dict):
            raise OAuthError("invalid_request", "the response is not a JSON object")
        return decrypted
    params: dict[str, Any] = dict(form)
    if isinstance(params.get("vp_token"), str):
        try:
            params["vp_token"] = P.strict_json_loads(params["vp_token"].encode(), what="vp_token")
        except P.ProtocolError as exc:
            raise OAuthError("invalid_request", f"vp_token: {exc.message}") from exc
    return params


def _presentation(params: Mapping[str, Any], query_id: str) -> str:
    token = params.get("vp_token")
    if not isinstance(token, dict) or set(token) != {query_id}:
        raise OAuthError("invalid_request", f"vp_token must be an object with {query_id!r} alone")
    presentations = token[query_id]
    if not isinstance(presentations, list) or len(presentations) != 1:
        raise OAuthError("invalid_request", "vp_token must hold exactly one presentation")
    if not isinstance(presentations[0], str):
        raise OAuthError("invalid_request", "a dc+sd-jwt presentation is a string")
    return presentations[0]


def _record(
    batch: WriteBatch, transaction_id: str, sealed: _Sealed, answer: dict[str, Any], now: int
) -> None:
    """Keep the answer for the service point, in a writer job: the transaction's digest
    inserted with it, so that it is answered once."""
    try:
        redeem(batch.connection, transaction_id, TRANSACTION, sealed.expires_at, now,
               subject=sealed.client, data={"kind": sealed.kind, "decision": answer})  # fmt: skip
    except SecretRefused:
        raise OAuthError(
            "invalid_request", "this presentation request was answered already"
        ) from None


def _decided(
    batch: WriteBatch, checked: verifying.Checked, now: int
) -> tuple[int, NodeError | None]:
    """The challenge used up with its audit entry (verifying.record), or the race lost
    to another answer with the same challenge (nothing written)."""
    try:
        return verifying.record(batch, checked, now), None
    except NodeError as lost:  # nonce_used: the challenge was used a moment ago
        return 0, lost


@dataclass(frozen=True)
class Answer:
    """A wallet's answer checked (:func:`check_response`): ``job`` for the node's writer
    (records it, uses the challenge up, audits), then :func:`finish` with its result."""

    job: Callable[[WriteBatch], tuple[int, NodeError | P.ProtocolError | None]]
    checked: verifying.Checked | None
    refuse: OAuthError | None = None  # raised once recorded (declined: None)


def check_response(
    state: NodeState, transaction_id: str, form: Mapping[str, str], *, now: int
) -> Answer:
    """The response endpoint (OpenID4VP section 8.2), before anything is written:
    checks only (the asking service point's credentials from the worker's cache).
    OAuthError 400 ``invalid_request`` at once for a request unknown or expired, a
    wrong ``state`` and a response in the clear to an encrypted request (nothing
    recorded); otherwise the :class:`Answer` to record (a request answered already is
    refused when it is recorded)."""
    try:
        sealed = _open(state, transaction_id, TRANSACTION, now)
        expected_state = _state_of(state, sealed, transaction_id)
    except SecretRefused as refused:
        message = {"expired": "this presentation request has expired"}.get(
            refused.why, "no such presentation request"
        )
        raise OAuthError("invalid_request", message) from None
    params = _parameters(state, transaction_id, sealed, form)
    if not isinstance(params.get("state"), str) or not hmac.compare_digest(
        params["state"], expected_state
    ):
        raise OAuthError("invalid_request", "state is not this request's")

    def only(answer: dict[str, Any]) -> Callable[[WriteBatch], tuple[int, None]]:
        def job(batch: WriteBatch) -> tuple[int, None]:
            _record(batch, transaction_id, sealed, answer, now)
            return 0, None

        return job

    if "error" in params:  # the wallet declined (section 8.5)
        declined = {"outcome": "declined", "code": str(params["error"])[:64],
                    "message": str(params.get("error_description", ""))[:300]}  # fmt: skip

        def audited(batch: WriteBatch) -> tuple[int, None]:
            # audited as the decisions are, so that the counter's day lists it
            # (decisions_since); the wallet's own words stay in the answer alone
            seq = batch.audit(actor=f"client:{sealed.client}", action=DECLINED,
                              subject=sealed.kind, now=now,
                              details={"scenario": sealed.kind, "client": sealed.client,
                                       "code": declined["code"]})  # fmt: skip
            _record(batch, transaction_id, sealed, declined, now)
            return seq, None

        return Answer(audited, None)
    scenario = verifying.catalogue(state).get(sealed.kind)
    credential = scenario.credential if scenario is not None else CREDIT_STANDING
    presentation = _presentation(params, P.CREDENTIAL_QUERY_IDS[_VCT_OF[credential]])
    client = client_by_id(state, sealed.client)
    if client is None:
        revoked = {"outcome": "refused", "code": "forbidden",
                   "message": "the service point's credentials were revoked"}  # fmt: skip
        return Answer(only(revoked), None, OAuthError(
            "invalid_request", "the service point that asked is no longer allowed"
        ))  # fmt: skip
    nonce = _nonce_of(state, sealed, transaction_id)
    identity = verifier_identity(state, now, kid=sealed.kid)
    checked = verifying.check(
        state, client, nonce=nonce, presentation=presentation, kb_aud=identity.client_id,
        now=now, challenge=verifying.OpenChallenge(sealed.kind, nonce, sealed.expires_at),
    )  # fmt: skip

    def job(batch: WriteBatch) -> tuple[int, NodeError | P.ProtocolError | None]:
        seq, lost = _decided(batch, checked, now)
        refusal = lost or checked.refusal
        if refusal is not None:
            answer = {"outcome": "refused", "code": refusal.code, "message": refusal.message}
        else:
            answer = _decision_answer(cast(verifying.Decision, checked.decision), seq)
        _record(batch, transaction_id, sealed, answer, now)
        return seq, refusal

    return Answer(job, checked)


def finish(
    state: NodeState, answer: Answer, result: tuple[int, NodeError | P.ProtocolError | None]
) -> dict[str, Any]:
    """What the response endpoint says once the writer recorded ``answer``: 200 ``{}``
    for a presentation decided (granted or denied) and for the wallet's own error
    response; OAuthError 400 ``invalid_request`` for a presentation that does not hold
    (its ccx code in the description; the service point sees it too)."""
    seq, refusal = result
    checked = answer.checked
    if answer.refuse is not None:
        raise answer.refuse
    if checked is None:
        return {}
    if refusal is not None:
        if checked.challenge is not None and refusal is checked.refusal:  # not a lost race
            state.metrics.verifications.labels(checked.kind, refusal.code).inc()
        raise OAuthError("invalid_request", f"{refusal.code}: {refusal.message}") from refusal
    verifying.outcome(state, checked, seq)  # counted in the metrics
    return {}


def receive_response(
    state: NodeState, transaction_id: str, form: Mapping[str, str], *, now: int
) -> dict[str, Any]:
    """:func:`check_response`, the writer, :func:`finish`, from a thread."""
    answer = check_response(state, transaction_id, form, now=now)
    return finish(state, answer, state.writer.call(answer.job))


def _decision_answer(decision: verifying.Decision, seq: int) -> dict[str, Any]:
    tier = decision.tier.tier if decision.tier is not None else None
    return {
        "outcome": "granted" if decision.granted else "denied",
        "tier": tier.name if tier is not None else None,
        "benefit": tier.benefit if tier is not None else None,
        "benefit_zh": tier.benefit_zh if tier is not None else None,
        "reasons": [{"code": r.code, "message": r.message} for r in decision.reasons],
        "issuer": decision.issuer,
        "issuer_city": decision.issuer_city,
        "band": decision.band,
        "alliance_score": decision.alliance_score,
        "shown": None if decision.shown is None else dict(decision.shown),
        "audit_seq": seq,
    }


# --- the service point's result ----------------------------------------------------------------
def result(
    state: NodeState, client: ClientIdentity, transaction_id: str, *, now: int
) -> dict[str, Any]:
    """Where the request stands, for the service point that made it: ``pending``,
    ``expired``, or the decision (``granted``, ``denied``, ``refused``, ``declined``).
    NodeError 404 ``request_not_found`` (unknown, or another client's)."""
    try:
        sealed = _open(state, transaction_id, TRANSACTION, now, expired=True)
    except SecretRefused:
        sealed = None
    if sealed is None or sealed.client != client.id:
        raise NodeError("request_not_found", "no such presentation request of yours", status=404)
    with state.engine.connect() as connection:
        row = connection.execute(_READ, {"digest": nonce_digest(transaction_id)}).first()
    if row is not None and row.purpose == TRANSACTION and row.data:
        return {"scenario": sealed.kind, **row.data["decision"]}
    status = "expired" if sealed.expires_at < now else "pending"
    return {"scenario": sealed.kind, "outcome": status, "expires_at": sealed.expires_at}


# --- the counter's scenarios and its day (the kiosk, issue 16) ---------------------------------

DECLINED = "verification.declined"
_OUTCOME_OF_ACTION = {
    "verification.decided": None,  # granted or denied: the entry's ``decision``
    "verification.refused": "refused",
    DECLINED: "declined",
}
DAY_LIST_LIMIT = 500  # a counter's busiest day, and then some

_AUDIT = cast(Table, AuditEntry.__table__)  # type: ignore[attr-defined]
_DAY = (
    select(_AUDIT.c.seq, _AUDIT.c.at, _AUDIT.c.action, _AUDIT.c.subject, _AUDIT.c.details)
    .where(
        _AUDIT.c.actor == bindparam("actor"),
        _AUDIT.c.at >= bindparam("since"),
        _AUDIT.c.action.in_(list(_OUTCOME_OF_ACTION)),
    )
    .order_by(_AUDIT.c.seq.desc())
    .limit(DAY_LIST_LIMIT)
)


def scenarios_of(state: NodeState, client: ClientIdentity) -> list[Scenario]:
    """The catalogue's scenarios ``client`` may verify (its ``verify:<scenario>``
    scopes), in the catalogue's order. NodeError 503 ``scenarios_unavailable``."""
    return [
        scenario
        for kind, scenario in verifying.catalogue(state).scenarios.items()
        if f"verify:{kind}" in client.scopes
    ]


def decisions_since(state: NodeState, client: ClientIdentity, since: int) -> list[dict[str, Any]]:
    """The decisions made for ``client`` from ``since`` on (NumericDate), newest first, at
    most ``DAY_LIST_LIMIT``: read from its audit entries (granted, denied, refused and
    declined; through OpenID4VP or /v1/verifications), which hold no personal data."""
    with state.engine.connect() as connection:
        rows = connection.execute(_DAY, {"actor": f"client:{client.id}", "since": since}).all()
    decisions = []
    for row in rows:
        details = row.details or {}
        outcome = _OUTCOME_OF_ACTION[row.action] or str(details.get("decision"))
        decisions.append({
            "at": row.at,
            "scenario": row.subject or str(details.get("scenario", "")),
            "outcome": outcome,
            "tier": details.get("tier"),
            "code": details.get("code"),
            "audit_seq": row.seq,
        })  # fmt: skip
    return decisions
