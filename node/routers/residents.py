"""Routes for residents (issue 4): ``/v1/me/...`` with her identity provider's bearer
token, and the admins' side of objections under ``/v1/admin/objections``.

There is no resident id in any path: a resident reaches her own data only, the id
coming from her token (``ResidentDep``). Routes parse, call ``node.services.residents``
and return; the rules and the transactions live there.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
)

from node.auth import AdminDep, ResidentDep
from node.deps import NowDep, SessionDep, StateDep
from node.errors import error_responses
from node.guards import GuardedRoute
from node.routers import ADMIN_ERRORS, BODY_ERRORS, RESIDENT_ERRORS
from node.services import residents as service
from node.services.audit import TOKEN_SHAPE

__all__ = ["router"]

ConsentKind = Literal["open_score", "share_alliance"]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # an Integer primary key
# Stored text: no NUL (models.STORABLE_TEXT) and, the document says so too, at least one
# character that is not a space (surrounding spaces are stripped).
Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$"),
]


class _Body(BaseModel):
    # Unknown fields and type coercions are refused (422 invalid_request), never ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


# --- bodies -------------------------------------------------------------------------


def _recipient(value: str) -> str:
    return value if value == service.EVERY_MEMBER else value.rstrip("/")


def _recipient_list(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("recipients must be distinct")
    if service.EVERY_MEMBER in values and len(values) > 1:
        raise ValueError(
            'recipients: "alliance" already names every member; name it alone, or name '
            "members without it"
        )
    return values


Recipient = Annotated[
    str,
    # said in the document (it was checked in code alone): "alliance", or an http(s) URL
    # of printable ASCII without spaces, quotes or backslashes (a node id as the registry
    # lists it). Whether it is a member is checked against the registry (the service).
    StringConstraints(min_length=1, max_length=200, pattern=r"^(alliance|https?://[!#-\[\]-~]+)$"),
    AfterValidator(_recipient),
]

# What a purpose may not hold: controls (Cc: line breaks, tabs, escapes), format
# characters (Cf: bidirectional overrides, zero-width characters), lone surrogates (Cs),
# line and paragraph separators (Zl, Zp). Spaces of any script (Zs, the ideographic
# space too) and the letters, digits, punctuation and symbols of every script are fine.
_NOT_PLAIN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# A compact JWS (a token, a proof of possession, an attestation; audit.TOKEN_SHAPE) has
# no place in a purpose: never paste one there.
PURPOSE_RULE = (
    "1..500 characters of plain text, at least one not a space: no control or format "
    "character (Unicode categories Cc, Cf, Cs, Zl, Zp; spaces of any script are fine), and "
    "nothing shaped like a token (a compact JWS: eyJ...)"
)


def _plain_text(value: str) -> str:
    for position, char in enumerate(value):
        category = unicodedata.category(char)
        if category in _NOT_PLAIN:
            raise ValueError(
                f"purpose must be plain text: the character at position {position} is of "
                f"Unicode category {category} (control or format characters, line breaks "
                "and tabs are refused)"
            )
    if TOKEN_SHAPE.search(value):
        raise ValueError(
            "purpose must not hold text shaped like a token (a compact JWS, eyJ...): "
            "never paste a token, a proof or an attestation into it"
        )
    return value


Purpose = Annotated[Text, StringConstraints(max_length=500), AfterValidator(_plain_text)]


class OpenScoreGrant(_Body):
    """二次授权: she authorises the node to open her score to her."""

    kind: Literal["open_score"]


class ShareAllianceGrant(_Body):
    """A separate consent to share her credit standing with the recipients she names, for
    the purpose she states (PIPL art. 23).

    Recipients are member nodes of the alliance, by their ids as the alliance registry
    lists them, each an active member when she consents; or "alliance" alone, for every
    member. Every attestation issued under this consent names the same recipients (its
    ``aud``), and a member not named refuses it: her home city's own service points too,
    unless she names her home node as well. To change the recipients she withdraws the
    consent, which revokes every attestation she holds at once, and grants a new one;
    attestations issued after that name the new recipients."""

    kind: Literal["share_alliance"]
    recipients: Annotated[
        list[Recipient],
        Field(min_length=1, max_length=16, json_schema_extra={"uniqueItems": True}),
        AfterValidator(_recipient_list),
    ] = Field(
        description="the member node ids (their base URLs) of the alliance registry that may "
        'receive her standing, each an active member; or "alliance" alone for every member. '
        "Her attestations name them (aud), and any other member refuses them"
    )
    purpose: Purpose = Field(description=f"why she shares it: {PURPOSE_RULE}")


ConsentGrant = Annotated[OpenScoreGrant | ShareAllianceGrant, Field(discriminator="kind")]


class ObjectionFiling(_Body):
    record: Annotated[
        str,
        StringConstraints(pattern=r"^[^/\x00]{1,64}/[^\s\x00][^\x00]{0,127}$", max_length=193),
    ] = Field(description="the record, as <department>/<record_id> (from the score breakdown)")
    reason: Annotated[Text, StringConstraints(max_length=1000)]


class ObjectionDecision(_Body):
    decision: Literal["upheld", "rejected"]
    note: Annotated[Text, StringConstraints(max_length=1000)]


# --- responses ----------------------------------------------------------------------


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ConsentPublic(_Public):
    id: int
    kind: str
    recipients: list[str] = Field(
        description="share_alliance: the member ids her attestations name (their aud), or "
        '"alliance" for every member; empty for open_score'
    )
    purpose: str | None
    granted_at: int
    withdrawn_at: int | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def active(self) -> bool:
        return self.withdrawn_at is None


class ConsentList(BaseModel):
    consents: list[ConsentPublic]


class WithdrawalPublic(_Public):
    consent: ConsentPublic
    revoked_attestations: int = Field(description="outstanding attestations revoked at once")


class RecordBehindPublic(_Public):
    department: str
    record_id: str
    kind: str
    occurred_at: int
    points: float = Field(description="what the model gives this record, before the cap")
    status: str
    objected: bool = Field(description="an objection is open; the record counts until resolved")


class DimensionPublic(_Public):
    name: str
    label: str
    points: float = Field(description="the dimension's part of the score, after weight and cap")
    cap: dict[str, float] = Field(description="the bounds of the dimension's part: min, max")
    records: list[RecordBehindPublic]


class ScorePublic(_Public):
    score: float
    scale: dict[str, str | float]
    model_version: str
    computed_at: int
    dimensions: list[DimensionPublic]
    objected_records_counted: bool = Field(
        description="some records behind the score are objected to: they still count until "
        "the objection is resolved (DESIGN section 9)"
    )


class ObjectionPublic(_Public):
    id: int
    department: str
    record_id: str
    kind: str
    reason: str
    status: str
    created_at: int
    resolved_at: int | None
    resolution: str | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def record(self) -> str:
        return f"{self.department}/{self.record_id}"


class ObjectionList(BaseModel):
    objections: list[ObjectionPublic]


class AdminObjectionPublic(ObjectionPublic):
    resident_id: str


class AdminObjectionList(BaseModel):
    objections: list[AdminObjectionPublic]


# --- the resident's routes ------------------------------------------------------------

me = APIRouter(
    route_class=GuardedRoute,
    prefix="/v1/me",
    tags=["residents"],
    responses=error_responses(*RESIDENT_ERRORS),
)


@me.get(
    "/score",
    summary="My score, its breakdown and the records behind it",
    responses=error_responses(403),
)
def my_score(
    resident: ResidentDep, state: StateDep, session: SessionDep, now: NowDep
) -> ScorePublic:
    """Needs my ``open_score`` consent (二次授权); 403 ``consent_required`` without it."""
    view = service.score_view(session, state, resident, now=now)
    return ScorePublic.model_validate(view)


@me.get("/consents", summary="My consents, withdrawn ones included")
def my_consents(resident: ResidentDep, session: SessionDep) -> ConsentList:
    consents = service.list_consents(session, resident)
    return ConsentList(consents=[ConsentPublic.model_validate(c) for c in consents])


@me.post(
    "/consents",
    status_code=201,
    summary="Grant a consent",
    responses=error_responses(*BODY_ERRORS, 409),
)
def grant_consent(
    body: Annotated[ConsentGrant, Body()],
    resident: ResidentDep,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
) -> ConsentPublic:
    """``open_score``, or ``share_alliance`` naming recipients and purpose.

    The recipients bind what is issued: each attestation names them (``aud``), and every
    other member refuses it. 422 ``invalid_request`` for a body that breaks a rule
    (``details`` names the field and the rule: a recipient that is not "alliance" alone
    or a node URL, a purpose with a control or format character, or shaped like a token);
    422 ``recipient_not_member`` for a recipient that is not an active member in the
    alliance registry in effect (``details`` names each); 503 ``registry_unavailable``
    when members are named and this node holds no registry to check them ("alliance"
    alone needs none); 409 ``consent_active`` if one of that kind is in force (withdraw
    it first: that revokes her attestations)."""
    shared = body if isinstance(body, ShareAllianceGrant) else None
    consent = service.grant_consent(
        session,
        state,
        resident,
        kind=body.kind,
        recipients=shared.recipients if shared else (),
        purpose=shared.purpose if shared else None,
        now=now,
    )
    return ConsentPublic.model_validate(consent)


@me.delete(
    "/consents/{kind}",
    summary="Withdraw a consent (revokes my attestations)",
    responses=error_responses(404),
)
def withdraw_consent(
    kind: ConsentKind, resident: ResidentDep, state: StateDep, session: SessionDep, now: NowDep
) -> WithdrawalPublic:
    """Revokes every outstanding attestation of mine at once (so none outlives a change of
    the recipients: grant a new consent afterwards). 404 ``consent_not_found`` if none of
    that kind is in force."""
    withdrawal = service.withdraw_consent(session, state, resident, kind, now=now)
    return WithdrawalPublic.model_validate(withdrawal)


@me.post(
    "/objections",
    status_code=201,
    summary="Object to one of my records",
    responses=error_responses(*BODY_ERRORS, 404, 409),
)
def file_objection(
    body: ObjectionFiling, resident: ResidentDep, session: SessionDep, now: NowDep
) -> ObjectionPublic:
    """The record is flagged until an admin resolves the objection; it still counts
    meanwhile. 404 ``record_not_found`` unless the record is mine."""
    department, record_id = body.record.split("/", 1)
    view = service.file_objection(
        session, resident, department=department, record_id=record_id, reason=body.reason, now=now
    )
    return ObjectionPublic.model_validate(view)


@me.get("/objections", summary="My objections")
def my_objections(resident: ResidentDep, session: SessionDep) -> ObjectionList:
    views = service.list_objections(session, resident)
    return ObjectionList(objections=[ObjectionPublic.model_validate(v) for v in views])


# --- the admins' side of objections ---------------------------------------------------

admin = APIRouter(
    route_class=GuardedRoute,
    prefix="/v1/admin/objections",
    tags=["admin"],
    responses=error_responses(*ADMIN_ERRORS),
)


@admin.get("", summary="Objections to decide (open ones by default)")
def list_objections(
    _: AdminDep,
    session: SessionDep,
    status: Literal["open", "upheld", "rejected"] = "open",
    after: Annotated[
        int, Query(ge=0, le=2**31 - 1, description="only ids above this (paging)")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AdminObjectionList:
    views = service.objections_by_status(session, status, after=after, limit=limit)
    return AdminObjectionList(objections=[AdminObjectionPublic.model_validate(v) for v in views])


@admin.post(
    "/{objection_id}/resolve",
    summary="Uphold (remove the record) or reject",
    responses=error_responses(*BODY_ERRORS, 404, 409),
)
def resolve_objection(
    objection_id: RowId,
    body: ObjectionDecision,
    actor: AdminDep,
    state: StateDep,
    session: SessionDep,
    now: NowDep,
) -> AdminObjectionPublic:
    """``upheld`` removes the record and rescores the resident; ``rejected`` puts the
    record back to ``active``. 409 ``already_resolved`` the second time."""
    view = service.resolve_objection(
        session, state, objection_id, decision=body.decision, note=body.note, actor=actor, now=now
    )
    return AdminObjectionPublic.model_validate(view)


router = APIRouter(route_class=GuardedRoute)
router.include_router(me)
router.include_router(admin)
