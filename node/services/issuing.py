"""Issuing attestations and keeping their status (issue 4; DESIGN sections 5-6,
docs/PROTOCOL.md sections 3 and 6, node side in docs/ISSUING.md).

A resident asks for a proof-of-possession nonce, signs ``{"nonce", "aud", "iat"}`` with
her wallet key as a ``pop+jwt``, and sends it with the public key. The node checks the
proof, uses the nonce up, requires both consents (``open_score`` and ``share_alliance``)
and a current score, limits the attestation to the recipients her ``share_alliance``
consent names (the issuer-signed ``aud``; none when she named "alliance"), maps the score onto the alliance scale with the city's mapping
table, gives the attestation a random, never reused index in the current status list,
stores what revocation needs (never the token), writes the audit log and answers with
the SD-JWT VC.

The mapping table comes from ``node.services.mapping_tables``, the nonce and its proof
from ``node.services.nonces``, the status index and the list's bytes from
``node.services.status_lists``; this module holds the issuance itself, the consents it
needs, and the revocations (a withdrawn consent, the monthly band check).

Concurrency: issuing and revoking for a resident take the lock
``attestations:<resident>`` (see ``_locking``), so that a consent withdrawal that
revokes her attestations can't miss one issued at the same moment.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from prometheus_client import Counter
from sqlalchemy import Connection, Table, bindparam, event, exists, or_, select
from sqlmodel import Session, col
from sqlmodel import select as sqlmodel_select

import protocol as P
from keys import ManagedKey
from node.city_mapping import CityMapping
from node.credentials import CREDIT_STANDING, DOMESTIC_SERVICE
from node.errors import NodeError
from node.models import Attestation, Consent, Resident, Score
from node.services import audit
from node.services._locking import hold_lock
from node.services.mapping_tables import city_mapping
from node.services.nonces import use_nonce, verify_proof
from node.services.status_lists import (
    StatusRef,
    current_status_list,
    insert_with_random_index,
    set_status,
    status_list_uri,
)
from node.services.writer import WriteBatch
from node.state import NodeState

__all__ = [
    "EVERY_MEMBER",
    "REQUIRED_CONSENTS",
    "BandChanges",
    "IssuedAttestation",
    "apply_band_changes",
    "attestation_audience",
    "attestation_expiry",
    "attestations_of",
    "certificate_of",
    "issue",
    "issue_bound",
    "require_consents",
    "resume_attestation",
    "revoke_attestation",
    "revoke_holder_key",
    "revoke_outstanding",
    "run_pending",
    "store_attestation",
    "suspend_attestation",
]

log = logging.getLogger("ccx.node")

REQUIRED_CONSENTS = ("open_score", "share_alliance")
# The consents each credential type needs, the last one naming its recipients (issue 18,
# docs/CREDENTIALS.md): the domestic-service credential has a share consent of its own.
CONSENTS_FOR = {
    CREDIT_STANDING: REQUIRED_CONSENTS,
    DOMESTIC_SERVICE: ("share_domestic_service",),
}
CREDENTIAL_OF_CONSENT = {kind: c for c, kinds in CONSENTS_FOR.items() for kind in kinds}
EVERY_MEMBER = "alliance"  # a share_alliance recipient meaning every member of the alliance
OUTSTANDING = ("valid", "suspended")


# --- times, addresses ------------------------------------------------------------------


def attestation_expiry(now: int, grace: int) -> int:
    """When an attestation issued at ``now`` expires: the next monthly recompute (the
    first second of next month, UTC) plus ``grace``, at most 35 days after ``now``."""
    today = dt.datetime.fromtimestamp(now, dt.UTC)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    recompute = calendar.timegm((year, month, 1, 0, 0, 0))
    return min(recompute + grace, now + P.MAX_ATTESTATION_LIFETIME)


def _count_after_commit(session: Session, counter: Counter, amount: int) -> None:
    # Metrics count what was committed: a revocation in a transaction the caller rolls
    # back never happened.
    pending: list[tuple[Counter, int]] | None = session.info.get("issuing.pending_metrics")
    if pending is None:
        pending = session.info["issuing.pending_metrics"] = []

        def flush(_: Session) -> None:
            for metric, value in pending:
                metric.inc(value)
            pending.clear()

        event.listen(session, "after_commit", flush)
        event.listen(session, "after_rollback", lambda _: pending.clear())
    pending.append((counter, amount))


# --- the statements (built once: building one costs more than running it) ---------------

_CONSENTS = cast(Table, Consent.__table__)  # type: ignore[attr-defined]
_SCORES = cast(Table, Score.__table__)  # type: ignore[attr-defined]
_ATTESTATIONS = cast(Table, Attestation.__table__)  # type: ignore[attr-defined]

_GRANTED_CONSENTS = select(_CONSENTS.c.kind, _CONSENTS.c.id, _CONSENTS.c.recipients).where(
    _CONSENTS.c.resident_id == bindparam("resident"),
    _CONSENTS.c.withdrawn_at.is_(None),
    _CONSENTS.c.granted_at <= bindparam("now"),
)
_RESIDENTS = cast(Table, Resident.__table__)  # type: ignore[attr-defined]
# Whether this node knows her at all: records (her resident row), a score, or a consent,
# even withdrawn. Not at all: she has most likely come to another city's node (issue 20).
_KNOWS = select(
    or_(
        exists().where(_RESIDENTS.c.id == bindparam("resident")),
        exists().where(_SCORES.c.resident_id == bindparam("resident")),
        exists().where(_CONSENTS.c.resident_id == bindparam("resident")),
    )
)
_SCORE_OF = select(_SCORES.c.score, _SCORES.c.computed_at).where(
    _SCORES.c.resident_id == bindparam("resident")
)
_OUTSTANDING_OF = select(
    _ATTESTATIONS.c.id, _ATTESTATIONS.c.status_list_id, _ATTESTATIONS.c.status_idx
).where(
    _ATTESTATIONS.c.resident_id == bindparam("resident"),
    _ATTESTATIONS.c.status.in_(OUTSTANDING),
    _ATTESTATIONS.c.credential == bindparam("credential"),
)
_OUTSTANDING_WITH_SCORES = (
    select(
        _ATTESTATIONS.c.id,
        _ATTESTATIONS.c.status_list_id,
        _ATTESTATIONS.c.status_idx,
        _ATTESTATIONS.c.resident_id,
        _ATTESTATIONS.c.band,
        _ATTESTATIONS.c.alliance_score,
        _SCORES.c.score,
    )
    .select_from(
        _ATTESTATIONS.outerjoin(_SCORES, _SCORES.c.resident_id == _ATTESTATIONS.c.resident_id)
    )
    .where(
        _ATTESTATIONS.c.status.in_(OUTSTANDING),
        _ATTESTATIONS.c.expires_at > bindparam("now"),
        _ATTESTATIONS.c.credential == CREDIT_STANDING,  # the others have no band
    )
    .order_by(_ATTESTATIONS.c.id)
)
# --- issuing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedAttestation:
    token: str  # the SD-JWT VC, ending in "~"; handed to the holder, never stored
    attestation_id: int
    status_uri: str
    status_idx: int
    band: str
    expires_at: int


class _Sharing(NamedTuple):
    consent_id: int
    audience: list[str] | None  # the attestation's aud; None: every member


def attestation_audience(recipients: Any, alliance: str) -> list[str] | None:
    """The ``aud`` of an attestation issued under a ``share_alliance`` consent naming
    ``recipients``: ``None`` (every member) when they hold "alliance" (or the alliance's
    own id, which consents recorded before recipients were checked may hold), else the
    named ids in her order. ``[]`` when the consent names no one usable (never granted
    through the API): the caller refuses to issue."""
    names = recipients if isinstance(recipients, list) else []
    if EVERY_MEMBER in names or alliance in names:
        return None
    return list(dict.fromkeys(n for n in names if isinstance(n, str) and n))[: P.MAX_AUDIENCE]


def require_consents(
    connection: Connection,
    resident_id: str,
    now: int,
    alliance: str,
    credential: str = CREDIT_STANDING,
) -> _Sharing:
    """Her consents in force at ``now`` allow an attestation of ``credential``: every
    kind it needs (:data:`CONSENTS_FOR`), and recipients named (NodeError 403
    ``consent_required`` with ``details.missing`` otherwise, its message asking whether
    this is her home node when it knows nothing of her); the share consent's id and the
    ``aud`` it gives."""
    granted = {
        row.kind: row
        for row in connection.execute(_GRANTED_CONSENTS, {"resident": resident_id, "now": now})
    }
    needed = CONSENTS_FOR[credential]
    missing = [kind for kind in needed if kind not in granted]
    if not granted and not connection.execute(_KNOWS, {"resident": resident_id}).scalar():
        raise NodeError(
            "consent_required",
            f"this node knows no score and no consent for {resident_id}: is it her home "
            "node? An attestation comes from the node of the city whose departments hold "
            f"her records (missing: {', '.join(missing)})",
            status=403,
            details={"missing": missing},
        )
    if missing:
        raise NodeError(
            "consent_required",
            (
                "an attestation needs the consents to open the score and to share it with the "
                "alliance"
                if credential == CREDIT_STANDING
                else "a domestic-service credential needs the consent to share it"
            )
            + f"; missing: {', '.join(missing)}",
            status=403,
            details={"missing": missing},
        )
    share_kind = needed[-1]
    share = granted[share_kind]
    audience = attestation_audience(share.recipients, alliance)
    if audience == []:
        raise NodeError(
            "consent_required",
            f"your {share_kind} consent names no recipient: withdraw it and grant it again, "
            'naming members of the alliance or "alliance"',
            status=403,
            details={"missing": [share_kind]},
        )
    return _Sharing(int(share.id), audience)


def issue(
    session: Session,
    state: NodeState,
    resident_id: str,
    *,
    holder_jwk: Mapping[str, Any],
    proof: str,
    now: int,
) -> IssuedAttestation:
    """Issue an attestation to ``resident_id`` for the key ``holder_jwk`` (committed), in
    the ccx dialect (``POST /v1/me/attestations``: a ``pop+jwt`` proof).

    Checks, in order: the city's mapping table is usable (503 ``mapping_table_*``); the
    holder key is a public P-256 or Ed25519 JWK (400 ``invalid_key``); the proof is a
    ``pop+jwt`` signed by that key (the protocol codes ``malformed_token``,
    ``wrong_typ``, ``alg_not_allowed``, ``forbidden_header``, ``invalid_signature``,
    ``alg_key_mismatch``; then ``invalid_proof``, ``proof_aud_mismatch``,
    ``proof_iat_out_of_window``); its nonce was given to this resident and is used up
    now (401 ``nonce_unknown``, ``nonce_used``, ``nonce_expired``); then as
    :func:`issue_bound`. A refusal after the nonce check rolls back and leaves the nonce
    unused.
    """
    pending = prepare_issue(state, resident_id, holder_jwk=holder_jwk, proof=proof, now=now)
    session.commit()
    return pending.finish(state.writer.call(pending.job))


def prepare_issue(
    state: NodeState, resident_id: str, *, holder_jwk: Mapping[str, Any], proof: str, now: int
) -> PendingIssuance:
    """:func:`issue`'s checks before anything is written (blocking: the mapping table may
    be fetched); the writer's job and what follows it."""
    settings = state.settings
    mapping = city_mapping(state, now=now)
    mapping.require_in_force(now)
    holder_key = P.public_key_from_jwk(holder_jwk)
    nonce = verify_proof(
        proof, holder_key, aud=settings.node_id, now=now, max_age=settings.nonce_lifetime
    )
    return prepare_bound(
        state,
        resident_id,
        holder_key=holder_key,
        use_proof_nonce=lambda connection: use_nonce(
            connection, state.signing_keys(), nonce, resident_id, now
        ),
        flow="ccx",
        now=now,
    )


def certificate_of(state: NodeState, kid: str, now: int) -> tuple[bytes, ...]:
    """The alliance CA's certificate of the signing key, when the registry in effect
    carries one: the attestation's ``x5c``, for verifiers outside the alliance (HAIP
    1.0 section 6.1.1; docs/PROTOCOL.md section 2). None yet: issue without it."""
    follower = state.follower
    if follower is None:
        return ()
    try:
        registry = state.registry_in_effect(now)
    except NodeError:
        return ()
    der = registry.certificate(state.settings.node_id, kid)
    return (der,) if der is not None else ()


def issue_bound(
    session: Session,
    state: NodeState,
    resident_id: str,
    *,
    holder_key: P.PublicKey,
    use_proof_nonce: Callable[[Connection], None],
    flow: str,
    now: int,
) -> IssuedAttestation:
    """Issue an attestation to ``resident_id`` bound to ``holder_key``, whose proof of
    possession the caller has verified (committed). Every way of asking for one comes
    here: the ccx dialect (:func:`issue`) and OpenID4VCI's credential endpoint
    (node.services.oid4vci), named in the audit entry by ``flow``.

    One job of the node's writer (node.services.writer), under the lock
    ``attestations:<resident>``: ``use_proof_nonce`` uses up the proof's nonce (it
    raises when the nonce is unknown, used or expired); both consents (403
    ``consent_required``); a score (409 ``score_unavailable``); a random status index;
    the audit entry. A refusal rolls back the job and leaves the nonce unused. Then,
    committed, the signature. The mapping table in force is checked first (503).
    """
    pending = prepare_bound(
        state, resident_id, holder_key=holder_key, use_proof_nonce=use_proof_nonce,
        flow=flow, now=now,
    )  # fmt: skip
    return run_pending(session, state, pending)


def run_pending(session: Session, state: NodeState, pending: PendingIssuance) -> IssuedAttestation:
    """An issuance checked, carried through: the caller's own writes committed (a DPoP
    proof's id: single use even when the issuance is refused, RFC 9449 section 11.1),
    the writer's job (its transaction decides), the signature."""
    session.commit()
    return pending.finish(state.writer.call(pending.job))


def store_attestation(
    connection: Connection, state: NodeState, row: dict[str, Any], now: int
) -> tuple[int, int, int]:
    """Insert an attestation ``row`` (without its list and index) at a random free index
    of the current status list, in a writer's job: (list id, attestation id, index). A
    list opened for it is forgotten when the insertion fails (the job rolls it back)."""
    list_id, size = current_status_list(connection, state, now)
    try:
        attestation_id, status_idx = insert_with_random_index(
            connection, {**row, "status_list_id": list_id}, size
        )
    except NodeError:
        state.memory.current_list = None
        raise
    return list_id, attestation_id, status_idx


@dataclass(frozen=True)
class PendingIssuance:
    """An issuance checked: ``job`` for the node's writer, then ``finish`` with what it
    stored (the signature)."""

    job: Callable[[WriteBatch], _Stored]
    finish: Callable[[_Stored], IssuedAttestation]


def prepare_bound(
    state: NodeState,
    resident_id: str,
    *,
    holder_key: P.PublicKey,
    use_proof_nonce: Callable[[Connection], None],
    flow: str,
    now: int,
) -> PendingIssuance:
    """:func:`issue_bound` before anything is written."""
    settings = state.settings
    mapping = city_mapping(state, now=now)
    mapping.require_in_force(now)
    holder_public = P.public_jwk(holder_key)  # exactly kty, crv, x(, y): what cnf carries
    holder_kid = P.jwk_thumbprint(holder_public)
    key = state.signing_keys().active
    expires_at = attestation_expiry(now, settings.attestation_grace)

    def job(batch: WriteBatch) -> _Stored:
        batch.lock(f"attestations:{resident_id}")
        connection = batch.connection
        use_proof_nonce(connection)
        sharing = require_consents(connection, resident_id, now, settings.alliance)
        score = connection.execute(_SCORE_OF, {"resident": resident_id}).first()
        if score is None:
            raise NodeError(
                "score_unavailable", "the resident has no score yet to attest", status=409
            )
        alliance_score = mapping.alliance_score(score.score)
        band = mapping.scale.band_of(alliance_score)
        list_id, attestation_id, status_idx = store_attestation(
            connection,
            state,
            {
                "resident_id": resident_id,
                "holder_kid": holder_kid,
                "band": band,
                "alliance_score": alliance_score,
                "issued_at": now,
                "expires_at": expires_at,
                "status": "valid",
            },
            now,
        )
        # never the token or the proof
        batch.audit(
            actor="resident",  # who she is goes in subject (ids are up to 128 characters)
            action="attestation.issued",
            subject=resident_id,
            details={
                "attestation_id": attestation_id,
                "status_list": list_id,
                "status_idx": status_idx,
                "holder_kid": holder_kid,
                "band": band,
                "expires_at": expires_at,
                "signing_kid": key.kid,
                "mapping_version": mapping.table.version,
                "share_consent_id": sharing.consent_id,  # whose recipients its aud names
                "flow": flow,
            },
            now=now,
        )
        return _Stored(attestation_id, list_id, status_idx, band, alliance_score,
                       score.score, score.computed_at, sharing.audience)  # fmt: skip

    def finish(stored: _Stored) -> IssuedAttestation:
        return _signed(state, stored, mapping, key, holder_public, expires_at, now)

    return PendingIssuance(job, finish)


def _signed(
    state: NodeState,
    stored: _Stored,
    mapping: CityMapping,
    key: ManagedKey,
    holder_public: dict[str, Any],
    expires_at: int,
    now: int,
) -> IssuedAttestation:
    """The token of an issuance the writer committed: what the token says is what the
    node keeps, and the writer's thread does no cryptography (signing takes ~0.1 ms)."""
    settings = state.settings
    uri = status_list_uri(settings.node_id, stored.list_id)
    local = stored.local_score
    claims: P.AttestationClaims = {
        "iss": settings.node_id,
        "nbf": now,
        "exp": expires_at,
        "alliance": settings.alliance,
        "mapping": mapping.reference,
        "status": {"idx": stored.status_idx, "uri": uri},
        "alliance_score": stored.alliance_score,
        "band": stored.band,
        "thresholds": mapping.scale.thresholds,
        "local_score": int(local) if float(local).is_integer() else local,
        "local_scale": mapping.table.local_scale.to_json(),
        "score_date": dt.datetime.fromtimestamp(stored.computed_at, dt.UTC).date().isoformat(),
    }
    if stored.audience is not None:  # only the members her consent names accept it
        claims["aud"] = stored.audience
    token = P.issue_attestation(
        claims, issuer_key=key.private_key, kid=key.kid, holder_jwk=holder_public, now=now,
        x5c=certificate_of(state, key.kid, now),
    )  # fmt: skip
    state.metrics.issued.inc()
    return IssuedAttestation(
        token, stored.attestation_id, uri, stored.status_idx, stored.band, expires_at
    )


class _Stored(NamedTuple):
    """What the writer's job stored for an issuance, and what the token needs of it."""

    attestation_id: int
    list_id: int
    status_idx: int
    band: str
    alliance_score: int
    local_score: float
    computed_at: int
    audience: list[str] | None


def _check_reason(reason: str) -> None:
    if not isinstance(reason, str) or not 0 < len(reason) <= 64:
        raise ValueError("a revocation reason is a short code such as 'consent_withdrawn'")


def revoke_outstanding(
    session: Session,
    state: NodeState,
    resident_id: str,
    *,
    now: int,
    reason: str,
    credential: str = CREDIT_STANDING,
) -> int:
    """Revoke every valid or suspended attestation of ``credential`` of a resident at
    once (consent withdrawn, ...; the other credential type's stay as they are); returns
    how many. Runs inside the caller's transaction and commits nothing: the status lists
    show the revocation once the caller commits.

    ``reason`` is a short code for the audit log (``"consent_withdrawn"``); raises
    ``ValueError`` for anything else.
    """
    _check_reason(reason)
    session.flush()  # the caller's pending changes go first, in order
    hold_lock(session, f"attestations:{resident_id}")
    connection = session.connection()
    refs = [
        StatusRef(*row)
        for row in connection.execute(
            _OUTSTANDING_OF, {"resident": resident_id, "credential": credential}
        )
    ]
    if not refs:
        return 0
    set_status(connection, refs, "revoked", now)
    audit.append(
        session,
        actor="node",
        action="attestations.revoked",
        subject=resident_id,
        details={
            "reason": reason,
            "credential": credential,
            "count": len(refs),
            "attestation_ids": [r.id for r in refs],
        },
        now=now,
    )
    _count_after_commit(session, state.metrics.revoked, len(refs))
    return len(refs)


def attestations_of(session: Session, resident_id: str) -> list[Attestation]:
    """Every attestation issued to her, newest first: what revoking one needs, never a
    token (the node keeps none)."""
    return list(
        session.exec(
            sqlmodel_select(Attestation)
            .where(Attestation.resident_id == resident_id)
            .order_by(col(Attestation.id).desc())
        )
    )


def _her_attestation(session: Session, resident_id: str, attestation_id: int) -> Attestation:
    row = session.get(Attestation, attestation_id)
    if row is None or row.resident_id != resident_id:
        raise NodeError("attestation_not_found", "you hold no attestation with that id", status=404)
    return row


def _holder_changes(
    session: Session,
    state: NodeState,
    resident_id: str,
    rows: list[Attestation],
    status: str,
    *,
    now: int,
    details: dict[str, Any],
) -> None:
    """Set ``rows`` (hers, under her lock) to ``status`` in their rows and status lists,
    audited under the resident, committed."""
    refs = [StatusRef(r.id, r.status_list_id, r.status_idx) for r in rows if r.id is not None]
    if refs:
        set_status(session.connection(), refs, status, now)
        audit.append(
            session,
            actor="resident",
            action=f"attestations.{_ACTIONS[status]}",
            subject=resident_id,
            details={**details, "count": len(refs), "attestation_ids": [r.id for r in refs]},
            now=now,
        )
        if status == "revoked":
            _count_after_commit(session, state.metrics.revoked, len(refs))
    session.commit()
    for row in rows:
        session.refresh(row)


_ACTIONS = {"revoked": "revoked", "suspended": "suspended", "valid": "resumed"}


def _unrevoked(
    session: Session, resident_id: str, attestation_id: int, *, final: str = ""
) -> Attestation:
    """Her attestation ``attestation_id``, under her lock, refused 409 ``already_revoked``
    if revoked (``final`` is added to that message)."""
    hold_lock(session, f"attestations:{resident_id}")
    row = _her_attestation(session, resident_id, attestation_id)
    if row.status == "revoked":
        raise NodeError(
            "already_revoked", f"attestation {attestation_id} is revoked already{final}", status=409
        )
    return row


def revoke_attestation(
    session: Session, state: NodeState, resident_id: str, attestation_id: int, *, now: int
) -> Attestation:
    """Revoke one of her attestations (she lost the phone that holds it, say): its row
    and its status list entry, audited, committed. A suspended one is revoked too.

    Raises ``NodeError`` 404 ``attestation_not_found`` unless it is hers (another's is
    not told apart from none), 409 ``already_revoked`` the second time.
    """
    row = _unrevoked(session, resident_id, attestation_id)
    _holder_changes(
        session, state, resident_id, [row], "revoked", now=now,
        details={"reason": "holder_revoked"},
    )  # fmt: skip
    return row


def suspend_attestation(
    session: Session, state: NodeState, resident_id: str, attestation_id: int, *, now: int
) -> Attestation:
    """Suspend one of her attestations (a phone mislaid, perhaps found again): status 2
    in its status list (draft-ietf-oauth-status-list, "SUSPENDED"), which every verifier
    refuses (``attestation_suspended``) until she resumes it. Audited, committed.

    Raises ``NodeError`` 404 ``attestation_not_found`` unless it is hers, 409
    ``already_revoked`` for a revoked one, 409 ``already_suspended`` the second time.
    """
    row = _unrevoked(session, resident_id, attestation_id)
    if row.status == "suspended":
        raise NodeError(
            "already_suspended", f"attestation {attestation_id} is suspended already", status=409
        )
    _holder_changes(
        session, state, resident_id, [row], "suspended", now=now,
        details={"reason": "holder_suspended"},
    )  # fmt: skip
    return row


def resume_attestation(
    session: Session, state: NodeState, resident_id: str, attestation_id: int, *, now: int
) -> Attestation:
    """Make one of her suspended attestations valid again (the phone was found): its
    status list entry back to 0. Audited, committed. Verifiers accept it again once
    their copy of the list is renewed (its ``ttl``). A revoked attestation stays revoked:
    revocation is final.

    Raises ``NodeError`` 404 ``attestation_not_found`` unless it is hers, 409
    ``already_revoked`` for a revoked one, 409 ``not_suspended`` for a valid one.
    """
    row = _unrevoked(
        session, resident_id, attestation_id,
        final=", and a revocation is final: ask for a new attestation",
    )  # fmt: skip
    if row.status != "suspended":
        raise NodeError(
            "not_suspended", f"attestation {attestation_id} is not suspended", status=409
        )
    _holder_changes(
        session, state, resident_id, [row], "valid", now=now,
        details={"reason": "holder_resumed"},
    )  # fmt: skip
    return row


def revoke_holder_key(
    session: Session, state: NodeState, resident_id: str, holder_kid: str, *, now: int
) -> list[Attestation]:
    """Revoke every valid or suspended attestation of hers bound to the wallet key
    ``holder_kid`` (the phone she lost held them all), in one audited transaction;
    returns every attestation of hers bound to that key, as they now stand. Revoking
    again revokes nothing more (an empty audit-free call).

    Raises ``NodeError`` 404 ``holder_key_not_found`` when none of hers is bound to it.
    """
    hold_lock(session, f"attestations:{resident_id}")
    rows = list(
        session.exec(
            sqlmodel_select(Attestation)
            .where(Attestation.resident_id == resident_id, Attestation.holder_kid == holder_kid)
            .order_by(col(Attestation.id).desc())
        )
    )
    if not rows:
        raise NodeError(
            "holder_key_not_found", "none of your attestations is bound to that key", status=404
        )
    outstanding = [row for row in rows if row.status in OUTSTANDING]
    _holder_changes(
        session, state, resident_id, outstanding, "revoked", now=now,
        details={"reason": "holder_key_revoked", "holder_kid": holder_kid},
    )  # fmt: skip
    return rows


# --- the monthly rescore ---------------------------------------------------------------


class BandChanges(NamedTuple):
    """What :func:`apply_band_changes` did."""

    checked: int
    revoked: int


def apply_band_changes(session: Session, state: NodeState, now: int) -> BandChanges:
    """After a rescore, revoke every outstanding attestation that now overstates its
    holder's standing (docs/PROTOCOL.md section 6, "When an issuer changes a status").

    For each valid or suspended attestation not yet expired, the holder's current
    alliance score and band come from her current score through the city's mapping
    table. A lower band, or a fall below one of the scale's thresholds the attested
    score reached (its ``score_at_least.<t>`` is now false): revoked. Otherwise left as
    it is (an understatement harms no verifier; she may ask for a new one). No score
    any more, or a band the scale no longer has: revoked, since her standing can't be
    confirmed. Runs in the caller's transaction and commits nothing.
    """
    mapping = city_mapping(state, now=now)
    session.flush()
    connection = session.connection()
    rows = connection.execute(_OUTSTANDING_WITH_SCORES, {"now": now}).all()
    scored = {row.resident_id: row.score for row in rows if row.score is not None}
    residents = list(scored)
    alliance_now = mapping.alliance_scores([scored[r] for r in residents])
    current = dict(zip(residents, mapping.bands_of(alliance_now), strict=True))
    current_score = dict(zip(residents, alliance_now.tolist(), strict=True))
    thresholds = mapping.scale.thresholds
    rank = {band.name: i for i, band in enumerate(mapping.scale.bands)}
    revoke: dict[str, tuple[str, str | None, list[StatusRef]]] = {}
    for row in rows:
        now_band = current.get(row.resident_id)
        if now_band is None:
            reason = "score_removed"
        elif row.band not in rank:
            reason = "band_unknown"
        elif rank[now_band] < rank[row.band]:
            reason = "band_lowered"
        elif row.alliance_score is not None and any(
            current_score[row.resident_id] < t <= row.alliance_score for t in thresholds
        ):
            reason = "threshold_crossed"  # a score_at_least.<t> it discloses is now false
        else:
            continue
        entry = revoke.setdefault(row.resident_id, (reason, now_band, []))
        entry[2].append(StatusRef(row.id, row.status_list_id, row.status_idx))
    refs = [ref for _, _, resident_refs in revoke.values() for ref in resident_refs]
    if refs:
        set_status(connection, refs, "revoked", now)
    for resident, (reason, now_band, resident_refs) in revoke.items():
        audit.append(
            session,
            actor="node",
            action="attestations.revoked",
            subject=resident,
            details={
                "reason": reason,
                "band": now_band,
                "count": len(resident_refs),
                "attestation_ids": [r.id for r in resident_refs],
            },
            now=now,
        )
    audit.append(
        session,
        actor="node",
        action="attestations.band_check",
        subject=None,
        details={
            "checked": len(rows),
            "revoked": len(refs),
            "mapping_version": mapping.table.version,
        },
        now=now,
    )
    _count_after_commit(session, state.metrics.revoked, len(refs))
    return BandChanges(len(rows), len(refs))
