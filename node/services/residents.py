"""A resident's own data (issue 4): her score and its breakdown, consents, objections (异议).

A resident reaches only her own rows: every query here is keyed by the resident id her
identity provider vouched for, never by an id taken from the request. Each public
function owns its transaction: it commits everything it changes, or (on an error)
nothing, because the session is rolled back when the request ends.

Consent rules (DESIGN section 10, seed/BRIEF.md):

- ``open_score``: 二次授权, opening the score needs her own authorisation.
- ``share_alliance``: a separate consent naming recipients and purpose (PIPL art. 23).
  The recipients are active members of the alliance registry in effect (their ids), or
  ``"alliance"`` alone for every member; every attestation issued under the consent
  names them (its ``aud``) and any other member refuses it (docs/PROTOCOL.md 3.3). A
  node that holds no registry can't check a member id: naming members is refused there
  (503 ``registry_unavailable``, fail closed); ``"alliance"`` needs no check.
- ``share_domestic_service``: the same, for the domestic-service credential (issue 18).
- Withdrawing one revokes every outstanding attestation of the credential type it
  serves (and only those), in the same transaction.
  Recipients change only that way (a consent in force can't be granted again), so no
  attestation outlives the recipients it names.
- Granting again after a withdrawal adds a new row; the history is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import update
from sqlmodel import Session, col, select

from node.errors import NodeError
from node.models import Consent, Objection, Record, Score
from node.scoring import DAY, Breakdown, ScoringModel
from node.services import audit, issuing, oid4vci, scoring
from node.services._locking import hold_lock
from node.services.mapping_tables import city_mapping
from node.state import NodeState

__all__ = [
    "CONSENT_KINDS",
    "EVERY_MEMBER",
    "AllianceStanding",
    "DimensionView",
    "ObjectionView",
    "RecordBehind",
    "ScoreView",
    "Withdrawal",
    "active_consent",
    "check_recipients",
    "file_objection",
    "grant_consent",
    "list_consents",
    "list_objections",
    "objections_by_status",
    "page_login_url",
    "require_consent",
    "resolve_objection",
    "score_view",
    "withdraw_consent",
]

CONSENT_KINDS = ("open_score", "share_alliance", "share_domestic_service")
# The consents that name recipients and a purpose (PIPL art. 23), one per credential type
# (issue 18: share_domestic_service for the domestic-service credential).
SHARE_KINDS = ("share_alliance", "share_domestic_service")
EVERY_MEMBER = issuing.EVERY_MEMBER  # the recipient "alliance": every member
# The audit actor of a resident's own acts; the entry's subject names her. (Not
# "resident:<id>": a 128-character id would not fit the 128-character actor column.)
RESIDENT_ACTOR = "resident"


@dataclass(frozen=True)
class RecordBehind:
    department: str
    record_id: str
    kind: str
    occurred_at: int
    points: float
    status: str
    objected: bool
    severity: str
    counts_until: int | None  # the end of its disclosure period (a repair: its record's)
    label_zh: str
    label_en: str
    explain_zh: str
    explain_en: str


@dataclass(frozen=True)
class DimensionView:
    name: str
    label: str
    label_en: str
    points: float
    cap: dict[str, float]
    records: list[RecordBehind]
    value: float  # the sum of its counting records' points (a scorecard bins it)


@dataclass(frozen=True)
class ReasonView:
    """A reason code of a scorecard (issue 18): a dimension that lowered her score."""

    code: str
    dimension: str
    label: str
    label_en: str
    points_below_max: float
    text_zh: str
    text_en: str


@dataclass(frozen=True)
class AllianceStanding:
    """Her score on the alliance's scale through the city's mapping table in force."""

    score: int
    band: str


@dataclass(frozen=True)
class ScoreView:
    score: float
    scale: dict[str, Any]
    model_version: str
    computed_at: int
    dimensions: list[DimensionView]
    objected_records_counted: bool
    alliance: AllianceStanding | None
    model_kind: str
    reasons: list[ReasonView]


@dataclass(frozen=True)
class Withdrawal:
    consent: Consent
    revoked_attestations: int


@dataclass(frozen=True)
class ObjectionView:
    id: int
    resident_id: str
    department: str
    record_id: str
    kind: str
    reason: str
    status: str
    created_at: int
    resolved_at: int | None
    resolution: str | None


# --- consents -----------------------------------------------------------------------


def active_consent(session: Session, resident_id: str, kind: str) -> Consent | None:
    """Her consent of ``kind`` that has not been withdrawn, if any."""
    return session.exec(
        select(Consent).where(
            Consent.resident_id == resident_id,
            Consent.kind == kind,
            col(Consent.withdrawn_at).is_(None),
        )
    ).first()


def require_consent(session: Session, resident_id: str, kind: str) -> Consent:
    """Her active consent of ``kind``; raises ``NodeError`` 403 ``consent_required``."""
    consent = active_consent(session, resident_id, kind)
    if consent is None:
        raise NodeError(
            "consent_required", f"this needs your {kind!r} consent; grant it first", status=403
        )
    return consent


def list_consents(session: Session, resident_id: str) -> list[Consent]:
    """Every consent she has given, withdrawn ones included, oldest first."""
    return list(
        session.exec(
            select(Consent).where(Consent.resident_id == resident_id).order_by(col(Consent.id))
        )
    )


def check_recipients(state: NodeState, recipients: Sequence[str], *, now: int) -> list[str]:
    """The recipients of a ``share_alliance`` consent, checked: ``["alliance"]`` (every
    member; nothing to check), or ids of members that are active in the alliance
    registry in effect at ``now``, exactly as it lists them.

    Raises ``NodeError`` 422 ``invalid_request`` (none, repeated, or "alliance" beside
    others), 422 ``recipient_not_member`` (``details``: each recipient's field and why),
    503 ``registry_unavailable`` when members are named and the node holds no registry in
    effect (it follows none, none is in effect yet, or it expired): fail closed.
    """
    names = list(recipients)
    if not names or len(set(names)) != len(names):
        raise _bad_recipients("recipients must be one or more distinct ids")
    if EVERY_MEMBER in names:
        if len(names) > 1:
            raise _bad_recipients('"alliance" already names every member: name it alone')
        return names
    try:
        registry = state.registry_in_effect(now)
    except NodeError as exc:
        raise NodeError(
            "registry_unavailable",
            "this node holds no alliance registry in effect, so it can't check that the "
            f'recipients you name are members ({exc.message}); name "alliance" to share '
            "with every member, or try again later",
            status=503,
        ) from exc
    problems = []
    for position, name in enumerate(names):
        member = registry.members.get(name)
        if name in (registry.alliance, state.settings.alliance):
            # issuing reads the alliance's own id as "every member" (older consents): a
            # recipient that is also a member's id would be ambiguous, so it is refused
            why = "the alliance's own id, not a member's: name \"alliance\" for every member"
        elif member is None:
            why = f"not a member of the alliance (registry version {registry.version})"
        elif member.status != "active":
            why = (
                f"a {member.status} member of the alliance (registry version "
                f"{registry.version}): only active members may receive it"
            )
        else:
            continue
        problems.append({"field": f"recipients.{position}", "problem": why})
    if problems:
        raise NodeError(
            "recipient_not_member",
            "every recipient must be an active member of the alliance, by its id as the "
            'registry lists it, or "alliance" alone for every member',
            status=422,
            details=problems,
        )
    return names


def _bad_recipients(problem: str) -> NodeError:
    return NodeError(
        "invalid_request",
        "the request does not match the API",
        status=422,
        details=[{"field": "recipients", "problem": problem}],
    )


def grant_consent(
    session: Session,
    state: NodeState,
    resident_id: str,
    *,
    kind: str,
    now: int,
    recipients: Sequence[str] = (),
    purpose: str | None = None,
) -> Consent:
    """Record a new consent (a new row, even after a withdrawal) and audit it.

    A ``share_alliance`` consent's recipients are checked first (:func:`check_recipients`:
    422 ``recipient_not_member``, 503 ``registry_unavailable``). Raises ``NodeError`` 409
    ``consent_active`` if one of that kind is in force: she withdraws it first (which
    revokes her attestations), so that changing whom she shares with never happens
    silently and no attestation names recipients she no longer consents to.
    """
    if kind not in CONSENT_KINDS:
        raise ValueError(f"unknown consent kind {kind!r}")
    if kind in SHARE_KINDS:
        recipients = check_recipients(state, recipients, now=now)
    elif recipients:
        raise ValueError("only a share consent names recipients")
    hold_lock(session, f"consents:{resident_id}")  # two grants at once can't both pass
    if active_consent(session, resident_id, kind) is not None:
        raise NodeError(
            "consent_active",
            f"your {kind!r} consent is already in force; withdraw it first to change it",
            status=409,
        )
    consent = Consent(
        resident_id=resident_id,
        kind=kind,
        recipients=list(recipients),
        purpose=purpose,
        granted_at=now,
    )
    session.add(consent)
    session.flush()
    audit.append(
        session,
        actor=RESIDENT_ACTOR,
        action="consent.granted",
        subject=resident_id,
        details={
            "consent_id": consent.id,
            "kind": kind,
            "recipients": list(recipients),
            "purpose": purpose,
        },
        now=now,
    )
    session.commit()
    session.refresh(consent)
    return consent


def withdraw_consent(
    session: Session, state: NodeState, resident_id: str, kind: str, *, now: int
) -> Withdrawal:
    """Withdraw her consent of ``kind``, revoke every outstanding attestation of hers of
    the credential type it serves (``open_score`` and ``share_alliance``: the credit
    standing; ``share_domestic_service``: the domestic-service credential, issue 18) and
    audit it, all in one transaction: if revoking fails, the consent stays in force.

    Raises ``NodeError`` 404 ``consent_not_found`` if none of that kind is in force.
    """
    hold_lock(session, f"consents:{resident_id}")
    consent = active_consent(session, resident_id, kind)
    if consent is None:
        raise NodeError("consent_not_found", f"you have no {kind!r} consent in force", status=404)
    consent.withdrawn_at = now
    session.add(consent)
    session.flush()
    revoked = issuing.revoke_outstanding(
        session, state, resident_id, now=now, reason=f"consent_withdrawn:{kind}",
        credential=issuing.CREDENTIAL_OF_CONSENT[kind],
    )  # fmt: skip
    audit.append(
        session,
        actor=RESIDENT_ACTOR,
        action="consent.withdrawn",
        subject=resident_id,
        details={"consent_id": consent.id, "kind": kind, "revoked_attestations": revoked},
        now=now,
    )
    session.commit()
    session.refresh(consent)
    return Withdrawal(consent, revoked)


# --- her page's login (issue 16) ---------------------------------------------------------


def page_login_url(state: NodeState, *, login_state: str, nonce: str) -> str | None:
    """Where her page sends her to log in: the identity provider's authorization endpoint
    (OpenID Connect, ``response_type=id_token``, form post back to ``/me/login``), with
    the page's own ``state`` and ``nonce``; None when the node has no login configured."""
    endpoint = oid4vci.login_endpoint(state)
    if endpoint is None:
        return None
    query = urlencode(
        {
            "response_type": "id_token",
            "response_mode": "form_post",
            "scope": "openid",
            "client_id": state.settings.idp_audience,
            "redirect_uri": f"{state.settings.node_id}/me/login",
            "state": login_state,
            "nonce": nonce,
        }
    )
    return endpoint + ("&" if "?" in endpoint else "?") + query


# --- score --------------------------------------------------------------------------


def score_view(session: Session, state: NodeState, resident_id: str, *, now: int) -> ScoreView:
    """Her score with its breakdown by dimension and the records behind each part.

    Needs her ``open_score`` consent (二次授权; else ``NodeError`` 403
    ``consent_required``). The stored score is served with the model re-run at its
    ``computed_at`` over her records, which explains it. Where there is no stored score,
    or it no longer follows from her records (another model version; a record changed
    without a rescore), she is rescored now ("实时动态计算") and the new score stored.
    """
    require_consent(session, resident_id, "open_score")
    model = state.model
    score = session.get(Score, resident_id)
    rows = _records_of(session, resident_id)
    breakdown = None
    if score is not None and score.model_version == model.version:
        breakdown = model.score(scoring.scoring_inputs(model, rows), score.computed_at)
    if score is None or breakdown is None or breakdown.score != score.score:
        score = scoring.rescore_resident(session, state, resident_id, now)
        rows = _records_of(session, resident_id)  # read again under her lock
        breakdown = model.score(scoring.scoring_inputs(model, rows), score.computed_at)
    view = _score_view(state, score, breakdown, rows, _standing(state, score.score, now))
    session.commit()
    return view


def _standing(state: NodeState, score: float, now: int) -> AllianceStanding | None:
    # What an attestation would say today; none when no mapping table is in force (the
    # score itself is still hers to see).
    try:
        mapping = city_mapping(state, now=now)
        mapping.require_in_force(now)
    except NodeError:
        return None
    alliance_score = mapping.alliance_score(score)
    return AllianceStanding(alliance_score, mapping.scale.band_of(alliance_score))


def _score_view(
    state: NodeState,
    score: Score,
    breakdown: Breakdown,
    rows: list[Record],
    standing: AllianceStanding | None,
) -> ScoreView:
    by_key = {_key(row): row for row in rows}
    dimensions = [
        DimensionView(
            name=name,
            label=dimension.label,
            label_en=dimension.label_en or name,
            points=breakdown.by_dimension[name],
            cap={"min": dimension.min, "max": dimension.max},
            records=[
                _record_behind(state.model, by_key, by_key[entry["record"]], entry["points"])
                for entry in breakdown.records.get(name, [])
            ],
            value=breakdown.values.get(name, 0.0),
        )
        for name, dimension in state.model.dimensions.items()
    ]
    reasons = [
        ReasonView(
            code=reason.code,
            dimension=reason.dimension,
            label=state.model.dimensions[reason.dimension].label,
            label_en=state.model.dimensions[reason.dimension].label_en or reason.dimension,
            points_below_max=reason.points_below_max,
            text_zh=reason.text_zh,
            text_en=reason.text_en,
        )
        for reason in breakdown.reasons
    ]
    scale = state.model.scale
    return ScoreView(
        score=score.score,
        scale={"name": scale.name, "min": scale.min, "max": scale.max, "step": scale.step},
        model_version=score.model_version,
        computed_at=score.computed_at,
        dimensions=dimensions,
        objected_records_counted=any(r.objected for d in dimensions for r in d.records),
        alliance=standing,
        model_kind=state.model.kind.name,
        reasons=reasons,
    )


def _records_of(session: Session, resident_id: str) -> list[Record]:
    # In id order, as node.services.scoring reads them, so that both link repairs alike.
    return list(
        session.exec(
            select(Record).where(Record.resident_id == resident_id).order_by(col(Record.id))
        )
    )


def _key(row: Record) -> str:
    return f"{row.department}/{row.record_id}"


def _record_behind(
    model: ScoringModel, by_key: dict[str, Record], row: Record, points: Any
) -> RecordBehind:
    kind = model.kinds[row.kind]
    counted = row
    if kind.repair and row.repairs_department and row.repairs:
        # a repair counts while the record it repairs does
        counted = by_key.get(f"{row.repairs_department}/{row.repairs}", row)
    counted_kind = model.kinds.get(counted.kind, kind)
    counts_until = (
        None
        if counted_kind.repair
        else counted.occurred_at + model.disclosure_days[counted_kind.severity] * DAY
    )
    return RecordBehind(
        department=row.department,
        record_id=row.record_id,
        kind=row.kind,
        occurred_at=row.occurred_at,
        points=float(points),
        status=row.status,
        objected=row.status == "objected",
        severity=counted_kind.severity,
        counts_until=counts_until,
        label_zh=kind.label_zh or row.kind,
        label_en=kind.label_en or row.kind,
        explain_zh=kind.explain_zh,
        explain_en=kind.explain_en,
    )


# --- objections (异议) ----------------------------------------------------------------


def file_objection(
    session: Session,
    resident_id: str,
    *,
    department: str,
    record_id: str,
    reason: str,
    now: int,
) -> ObjectionView:
    """Object to one of her records: the record is flagged ``objected`` (it keeps
    counting until resolved) and an open objection is stored and audited.

    Raises ``NodeError`` 404 ``record_not_found`` when no record of hers has that
    reference, whether it does not exist or is someone else's (existence is not
    leaked); 409 ``objection_open`` if one is open already; 409 ``record_removed``.
    """
    record = session.exec(
        select(Record).where(
            Record.resident_id == resident_id,
            Record.department == department,
            Record.record_id == record_id,
        )
    ).first()
    if record is None:
        raise NodeError("record_not_found", "you have no record with that reference", status=404)
    # A conditional update, so that two objections filed at once can't both open.
    flagged = session.exec(
        update(Record)
        .where(col(Record.id) == record.id, col(Record.status) == "active")
        .values(status="objected")
    )
    if flagged.rowcount != 1:
        session.refresh(record)
        if record.status == "objected":
            raise NodeError(
                "objection_open", "an objection to this record is already open", status=409
            )
        raise NodeError("record_removed", "this record has been removed already", status=409)
    assert record.id is not None
    objection = Objection(
        resident_id=resident_id, record_pk=record.id, reason=reason, created_at=now
    )
    session.add(objection)
    session.flush()
    audit.append(
        session,
        actor=RESIDENT_ACTOR,
        action="objection.filed",
        subject=resident_id,
        # References only: the reason is free text and may hold personal data.
        details={"objection_id": objection.id, "record": _key(record)},
        now=now,
    )
    session.commit()
    session.refresh(objection)
    session.refresh(record)
    return _objection_view(objection, record)


def list_objections(session: Session, resident_id: str) -> list[ObjectionView]:
    """Every objection she has filed, oldest first."""
    return _objection_views(session, col(Objection.resident_id) == resident_id)


def objections_by_status(
    session: Session, status: str, *, after: int = 0, limit: int = 100
) -> list[ObjectionView]:
    """Objections of every resident in ``status`` (``open`` for the admins' queue),
    by id, from ``after`` on."""
    return _objection_views(
        session, col(Objection.status) == status, col(Objection.id) > after, limit=limit
    )


def resolve_objection(
    session: Session,
    state: NodeState,
    objection_id: int,
    *,
    decision: str,
    note: str,
    actor: str,
    now: int,
) -> ObjectionView:
    """Decide an open objection. ``upheld``: the record is removed and the resident
    rescored. ``rejected``: the record counts as before (``active``). Audited.

    Raises ``NodeError`` 404 ``objection_not_found``; 409 ``already_resolved``.
    """
    if decision not in ("upheld", "rejected"):
        raise ValueError(f"unknown decision {decision!r}")
    objection = session.get(Objection, objection_id)
    if objection is None:
        raise NodeError("objection_not_found", "no objection with that id", status=404)
    # Her lock first, as every rescoring path takes it: a push rescoring her at the same
    # time then waits, and reads the record's new status (node.services.scoring).
    scoring.lock_residents(session, [objection.resident_id], now=now)
    # A conditional update, so that two admins deciding at once can't both succeed.
    claimed = session.exec(
        update(Objection)
        .where(col(Objection.id) == objection_id, col(Objection.status) == "open")
        .values(status=decision, resolved_at=now, resolution=note)
    )
    if claimed.rowcount != 1:
        raise NodeError("already_resolved", "this objection has been resolved", status=409)
    session.refresh(objection)
    record = session.get(Record, objection.record_pk)
    assert record is not None  # records are never deleted, only marked removed
    record.status = "removed" if decision == "upheld" else "active"
    session.add(record)
    session.flush()
    if decision == "upheld":
        scoring.rescore_resident(session, state, objection.resident_id, now)
    audit.append(
        session,
        actor=actor,
        action="objection.resolved",
        subject=objection.resident_id,
        details={"objection_id": objection_id, "record": _key(record), "decision": decision},
        now=now,
    )
    session.commit()
    session.refresh(objection)
    session.refresh(record)
    return _objection_view(objection, record)


def _objection_views(
    session: Session, *where: Any, limit: int | None = None
) -> list[ObjectionView]:
    statement = (
        select(Objection, Record)
        .join(Record, col(Record.id) == col(Objection.record_pk))
        .where(*where)
        .order_by(col(Objection.id))
    )
    if limit is not None:
        statement = statement.limit(limit)
    return [_objection_view(objection, record) for objection, record in session.exec(statement)]


def _objection_view(objection: Objection, record: Record) -> ObjectionView:
    assert objection.id is not None
    return ObjectionView(
        id=objection.id,
        resident_id=objection.resident_id,
        department=record.department,
        record_id=record.record_id,
        kind=record.kind,
        reason=objection.reason,
        status=objection.status,
        created_at=objection.created_at,
        resolved_at=objection.resolved_at,
        resolution=objection.resolution,
    )
