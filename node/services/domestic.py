"""Issuing the domestic-service (家政) credential (issue 18; docs/CREDENTIALS.md).

The second credential type a node issues, through the same doors as the credit standing
(OpenID4VCI's credential endpoint, node.services.oid4vci) and with the same machinery:
a proof of possession whose nonce is used up in the writer's job, her consent in force
(``share_domestic_service``, naming recipients and purpose: its own, so that sharing one
credential never shares the other), a random index in the node's status list, the
attestation row (``credential = "domestic_service"``), the audit entry, then the
signature. Its claims come from her records of the kinds the scoring model's
``[credentials.domestic_service]`` table names (node.credentials), read in the job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, bindparam, select
from sqlmodel import Session

import protocol as P
from node.credentials import (
    DOMESTIC_SERVICE,
    CredentialRecord,
    DomesticServiceRules,
    domestic_claims,
    load_credential_rules,
)
from node.errors import NodeError
from node.models import Attestation, Record
from node.scoring import ModelError
from node.services import audit
from node.services.issuing import (
    IssuedAttestation,
    PendingIssuance,
    attestation_expiry,
    certificate_of,
    require_consents,
    run_pending,
    store_attestation,
)
from node.services.scoring import COUNTING_STATUSES
from node.services.status_lists import StatusRef, set_status, status_list_uri
from node.services.writer import WriteBatch
from node.state import NodeState

__all__ = [
    "ClaimChanges",
    "apply_claim_changes",
    "credential_rules",
    "issue_domestic_bound",
    "prepare_domestic",
]

_RECORDS = cast(Table, Record.__table__)  # type: ignore[attr-defined]
_HER_RECORDS = select(
    _RECORDS.c.kind, _RECORDS.c.occurred_at, _RECORDS.c.points, _RECORDS.c.recorded_at
).where(
    _RECORDS.c.resident_id == bindparam("resident"),
    _RECORDS.c.status.in_(COUNTING_STATUSES),
    _RECORDS.c.kind.in_(bindparam("kinds", expanding=True)),
)


_ATTESTATIONS = cast(Table, Attestation.__table__)  # type: ignore[attr-defined]
_OUTSTANDING = (
    select(
        _ATTESTATIONS.c.id,
        _ATTESTATIONS.c.status_list_id,
        _ATTESTATIONS.c.status_idx,
        _ATTESTATIONS.c.resident_id,
        _ATTESTATIONS.c.issued_at,
    )
    .where(
        _ATTESTATIONS.c.credential == DOMESTIC_SERVICE,
        _ATTESTATIONS.c.status.in_(("valid", "suspended")),
        _ATTESTATIONS.c.expires_at > bindparam("now"),
    )
    .order_by(_ATTESTATIONS.c.id)
)


def credential_rules(state: NodeState) -> DomesticServiceRules | None:
    """The scoring model file's ``[credentials.domestic_service]`` rules (read once),
    None when it has none. NodeError 503 ``model_unavailable`` for a table that does not
    hold (the message names the key)."""
    kept = state.memory.credential_rules
    if kept is None:
        try:
            rules = load_credential_rules(state.settings.scoring_model, state.model)
        except ModelError as exc:
            raise NodeError(
                "model_unavailable", f"the domestic-service rules can't be used: {exc}", status=503
            ) from exc
        kept = state.memory.credential_rules = (rules,)
    return cast(DomesticServiceRules | None, kept[0])


def _rules_or_refuse(state: NodeState) -> DomesticServiceRules:
    rules = credential_rules(state)
    if rules is None:
        raise NodeError(
            "credential_not_issued",
            "this node issues no domestic-service credential (its scoring model has no "
            "[credentials.domestic_service] table)",
            status=404,
        )
    return rules


class _Stored(NamedTuple):
    attestation_id: int
    list_id: int
    status_idx: int
    claims: dict[str, Any]
    audience: list[str] | None


def prepare_domestic(
    state: NodeState,
    resident_id: str,
    *,
    holder_key: P.PublicKey,
    use_proof_nonce: Callable[[Connection], None],
    flow: str,
    now: int,
) -> PendingIssuance:
    """A domestic-service issuance checked before anything is written: the writer's job
    (her lock, the proof's nonce used up, the ``share_domestic_service`` consent: 403
    ``consent_required``, her records: 409 ``credential_unavailable`` when she has none
    of its kinds, a random status index, the audit entry) and the signature after it.
    404 ``credential_not_issued`` when the model names no rules for it."""
    settings = state.settings
    rules = _rules_or_refuse(state)
    holder_public = P.public_jwk(holder_key)
    holder_kid = P.jwk_thumbprint(holder_public)
    key = state.signing_keys().active
    expires_at = attestation_expiry(now, settings.attestation_grace)
    kinds = sorted(rules.all_kinds)

    def job(batch: WriteBatch) -> _Stored:
        batch.lock(f"attestations:{resident_id}")
        connection = batch.connection
        use_proof_nonce(connection)
        sharing = require_consents(
            connection, resident_id, now, settings.alliance, DOMESTIC_SERVICE
        )
        rows = connection.execute(_HER_RECORDS, {"resident": resident_id, "kinds": kinds})
        claims = domestic_claims(
            rules, (CredentialRecord(r.kind, r.occurred_at, r.points) for r in rows), now=now
        )
        if claims is None:
            raise NodeError(
                "credential_unavailable",
                "this node holds no domestic-service record of yours (background check, "
                "training, ratings, complaints): nothing to attest",
                status=409,
            )
        list_id, attestation_id, status_idx = store_attestation(
            connection,
            state,
            {
                "resident_id": resident_id,
                "holder_kid": holder_kid,
                "band": "",  # a credit standing's; this credential has none
                "alliance_score": None,
                "issued_at": now,
                "expires_at": expires_at,
                "status": "valid",
                "credential": DOMESTIC_SERVICE,
            },
            now,
        )
        batch.audit(
            actor="resident",
            action="attestation.issued",
            subject=resident_id,
            details={
                "credential": DOMESTIC_SERVICE,
                "attestation_id": attestation_id,
                "status_list": list_id,
                "status_idx": status_idx,
                "holder_kid": holder_kid,
                "expires_at": expires_at,
                "signing_kid": key.kid,
                "share_consent_id": sharing.consent_id,
                "flow": flow,
            },
            now=now,
        )
        return _Stored(attestation_id, list_id, status_idx, claims, sharing.audience)

    def finish(stored: _Stored) -> IssuedAttestation:
        uri = status_list_uri(settings.node_id, stored.list_id)
        claims: dict[str, Any] = {
            **stored.claims,
            "iss": settings.node_id,
            "nbf": now,
            "exp": expires_at,
            "alliance": settings.alliance,
            "status": {"idx": stored.status_idx, "uri": uri},
        }
        if stored.audience is not None:
            claims["aud"] = stored.audience
        token = P.issue_domestic_attestation(
            cast(P.DomesticServiceClaims, claims), issuer_key=key.private_key, kid=key.kid,
            holder_jwk=holder_public, now=now, x5c=certificate_of(state, key.kid, now),
        )  # fmt: skip
        state.metrics.issued.inc()
        return IssuedAttestation(
            token, stored.attestation_id, uri, stored.status_idx, "", expires_at
        )

    return PendingIssuance(job, finish)  # type: ignore[arg-type]


def issue_domestic_bound(
    session: Session,
    state: NodeState,
    resident_id: str,
    *,
    holder_key: P.PublicKey,
    use_proof_nonce: Callable[[Connection], None],
    flow: str,
    now: int,
) -> IssuedAttestation:
    """:func:`node.services.issuing.issue_bound` for the domestic-service credential:
    :func:`prepare_domestic`, the caller's writes committed, the writer's job, the
    signature."""
    pending = prepare_domestic(
        state, resident_id, holder_key=holder_key, use_proof_nonce=use_proof_nonce,
        flow=flow, now=now,
    )  # fmt: skip
    return run_pending(session, state, pending)


def _true_claims(claims: dict[str, Any] | None) -> set[str]:
    """The boolean claims a credential with ``claims`` attests true, by path."""
    if claims is None:
        return set()
    true = {name for name in ("background_check_passed", "no_upheld_complaints_12m")
            if claims.get(name) is True}  # fmt: skip
    rating = claims.get("rating")
    true |= {f"rating_at_least.{t}" for t in claims["rating_thresholds"]
             if rating is not None and rating >= t}  # fmt: skip
    return true


class ClaimChanges(NamedTuple):
    """What :func:`apply_claim_changes` did."""

    checked: int
    revoked: int


def apply_claim_changes(session: Session, state: NodeState, now: int) -> ClaimChanges:
    """After the monthly rescore, revoke every outstanding domestic-service attestation
    that now overstates its holder (the band check's counterpart, docs/CREDENTIALS.md):
    a claim it attested true (the background check passed, no upheld complaint in 12
    months, a rating threshold), as the records the node held when it issued it give it,
    is false at ``now`` (a newer failed check or upheld complaint, a check grown too old, ratings
    fallen). A claim turned true harms no verifier: left as it is. Runs in the caller's
    transaction and commits nothing; a node whose model names no rules checks nothing."""
    rules = credential_rules(state)
    if rules is None:
        return ClaimChanges(0, 0)
    session.flush()
    connection = session.connection()
    rows = connection.execute(_OUTSTANDING, {"now": now}).all()
    kinds = sorted(rules.all_kinds)
    records: dict[str, list[tuple[int, CredentialRecord]]] = {}  # (recorded_at, record)
    revoke: dict[str, tuple[list[str], list[StatusRef]]] = {}
    for row in rows:
        if row.resident_id not in records:
            found = connection.execute(_HER_RECORDS, {"resident": row.resident_id, "kinds": kinds})
            records[row.resident_id] = [
                (r.recorded_at, CredentialRecord(r.kind, r.occurred_at, r.points)) for r in found
            ]
        hers = records[row.resident_id]
        # what it attested: her records as the node held them when it was issued
        known = [record for recorded_at, record in hers if recorded_at <= row.issued_at]
        attested = _true_claims(domestic_claims(rules, known, now=row.issued_at))
        current = domestic_claims(rules, [record for _, record in hers], now=now)
        lost = sorted(attested - _true_claims(current))
        if lost:
            entry = revoke.setdefault(row.resident_id, ([], []))
            entry[0].extend(c for c in lost if c not in entry[0])
            entry[1].append(StatusRef(row.id, row.status_list_id, row.status_idx))
    refs = [ref for _, resident_refs in revoke.values() for ref in resident_refs]
    if refs:
        set_status(connection, refs, "revoked", now)
    for resident, (lost, resident_refs) in revoke.items():
        audit.append(
            session, actor="node", action="attestations.revoked", subject=resident,
            details={"reason": "claim_no_longer_true", "credential": DOMESTIC_SERVICE,
                     "claims": lost, "count": len(resident_refs),
                     "attestation_ids": [r.id for r in resident_refs]},
            now=now,
        )  # fmt: skip
    audit.append(
        session, actor="node", action="attestations.claim_check", subject=None,
        details={"credential": DOMESTIC_SERVICE, "checked": len(rows), "revoked": len(refs)},
        now=now,
    )  # fmt: skip
    if refs:
        state.metrics.revoked.inc(len(refs))  # the monthly job commits right after
    return ClaimChanges(len(rows), len(refs))
