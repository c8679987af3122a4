"""Routes for residents (issue 4): ``/v1/me/...`` with her identity provider's bearer
token, and the admins' side of objections under ``/v1/admin/objections``; her page's
login (``/me/login``, issue 16).

There is no resident id in any path: a resident reaches her own data only, the id
coming from her token (``ResidentDep``). Routes parse, call ``node.services.residents``
and return; the rules and the transactions live there.
"""

from __future__ import annotations

import re
import unicodedata
from html import escape
from typing import Annotated, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
)

from node.auth import AdminDep, ResidentDep, verify_idp_token
from node.deps import NowDep, SessionDep, StateDep
from node.errors import NodeError, error_responses
from node.guards import SMALL_BODY_BYTES, GuardedRoute, read_body
from node.routers import ADMIN_ERRORS, BODY_ERRORS, RESIDENT_ERRORS, form_body
from node.services import residents as service
from node.services.audit import TOKEN_SHAPE
from node.web import page_headers

__all__ = ["router"]

ConsentKind = Literal["open_score", "share_alliance", "share_domestic_service"]
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

    # share_domestic_service: the same, for her domestic-service credential (issue 18)
    kind: Literal["share_alliance", "share_domestic_service"]
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
    severity: str = Field(description="minor, general or serious: how long it counts")
    counts_until: int | None = Field(
        description="when its disclosure period ends and it stops counting (a repair: the "
        "repaired record's)"
    )
    label_zh: str = Field(description="the record kind's name in Chinese (its code without one)")
    label_en: str = Field(description="the record kind's name in English")
    explain_zh: str = Field(description="why a record of this kind counts, in Chinese")
    explain_en: str = Field(description="the same in English (PIPL art. 24)")


class DimensionPublic(_Public):
    name: str
    label: str
    label_en: str
    points: float = Field(
        description="the dimension's part of the score: after weight and cap (a hand-weighted "
        "model), or the points of the bin its value falls in (a scorecard)"
    )
    cap: dict[str, float] = Field(description="the bounds of the dimension's part: min, max")
    records: list[RecordBehindPublic]
    value: float = Field(description="the sum of its counting records' points")


class ReasonPublic(_Public):
    code: str = Field(description="the reason code, stable for the model's characteristic")
    dimension: str
    label: str = Field(description="the dimension's name in Chinese")
    label_en: str
    points_below_max: float = Field(
        description="how far the dimension's part lies below the most it can give"
    )
    text_zh: str = Field(description="the reason in plain words, in Chinese")
    text_en: str = Field(description="the same in English")


class AllianceStandingPublic(_Public):
    score: int = Field(description="her score on the alliance's scale")
    band: str = Field(description="the alliance band it falls in")


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
    alliance: AllianceStandingPublic | None = Field(
        description="what an attestation would say today, through the city's mapping table "
        "in force; null when none is"
    )
    model_kind: str = Field(description='the kind of scoring model: "weighted" or "scorecard"')
    reasons: list[ReasonPublic] = Field(
        description="a scorecard's reason codes (PIPL art. 24): the dimensions that lowered "
        "her score most, the most first; empty for a hand-weighted model"
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


# --- the resident's page: logging in through the identity provider (issue 16) ----------

page = APIRouter(route_class=GuardedRoute, tags=["resident's page"])

LOGIN_VALUE = r"^[A-Za-z0-9_-]{16,128}$"  # a state or nonce the page made (base64url)


@page.get(
    "/me/login",
    summary="The resident's page sends her to the identity provider's login",
    response_class=HTMLResponse,
    responses={
        303: {"description": "to the identity provider (OpenID Connect, id_token form post)"},
        400: {"description": "a page: state or nonce malformed", "content": {"text/html": {}}},
        404: {"description": "a page: no login is configured", "content": {"text/html": {}}},
    },
    openapi_extra={
        "parameters": [
            {"name": name, "in": "query", "required": True,
             "schema": {"type": "string", "pattern": LOGIN_VALUE}}
            for name in ("state", "nonce")
        ]
    },
)  # fmt: skip
def begin_page_login(request: Request, state: StateDep) -> Response:
    """The page made ``state`` and ``nonce`` and keeps them (sessionStorage); they come
    back in the form post and in the ID token, where the page checks them. A browser
    is answered with a page, not JSON, when they are malformed."""
    login_state = request.query_params.get("state", "")
    nonce = request.query_params.get("nonce", "")
    if not (re.fullmatch(LOGIN_VALUE, login_state) and re.fullmatch(LOGIN_VALUE, nonce)):
        return landing_page("malformed", status=400)
    location = service.page_login_url(state, login_state=login_state, nonce=nonce)
    if location is None:
        return landing_page("no_login", status=404)
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


@page.post(
    "/me/login",
    summary="The identity provider's answer (form post): a page that hands the ID token "
    "to the resident's page",
    response_class=HTMLResponse,
    openapi_extra=form_body(
        {"id_token": {}, "state": {}, "error": {}, "error_description": {}}, ["state"]
    ),
    responses={
        400: {"description": "a page that says why", "content": {"text/html": {}}},
        401: {"description": "a page: the token is not valid", "content": {"text/html": {}}},
    },
)
async def finish_page_login(request: Request, state: StateDep, now: NowDep) -> Response:
    """The ID token is checked as every resident's bearer token is (signature, issuer,
    audience, times); the page's script then checks ``state`` and the token's ``nonce``
    against what it kept, stores the token in sessionStorage and opens ``/me/``. A
    cancelled login (``error=access_denied``) shows a message."""
    try:
        raw = await read_body(request, SMALL_BODY_BYTES)
    except NodeError:
        return landing_page("malformed", status=400)
    form = dict(parse_qsl(raw.decode("ascii", "replace"), keep_blank_values=True))
    login_state, token = form.get("state", ""), form.get("id_token", "")
    if form.get("error") == "access_denied":
        return landing_page("cancelled", status=200)
    if form.get("error") or not re.fullmatch(LOGIN_VALUE, login_state) or not token:
        return landing_page("malformed", status=400)
    try:
        verify_idp_token(state, token, now=now)
    except NodeError:
        return landing_page("invalid_token", status=401)
    return landing_page("ok", status=200, token=token, login_state=login_state)


_LANDING_TEXT = {
    "ok": ("正在登录……", "Logging in…"),
    "cancelled": ("登录已取消。", "The login was cancelled."),
    "invalid_token": (
        "身份认证的回应未通过验证，请重新登录。",
        "The identity provider's answer could not be verified: please log in again.",
    ),
    "malformed": (
        "登录的回应不完整，请重新登录。",
        "The login's answer is incomplete: please log in again.",
    ),
    "no_login": (
        "本节点没有配置身份认证服务，无法登录。",
        "This node has no identity provider configured: logging in is not possible.",
    ),
}


def landing_page(
    outcome: str, *, status: int, token: str | None = None, login_state: str | None = None
) -> HTMLResponse:
    """The page the login comes back to: with a token, its script (``/me/landing.js``)
    takes it to the resident's page; otherwise it says why, in both languages, with a way
    back. The token is in the page, so the page is never stored (no-store)."""
    zh, en = _LANDING_TEXT[outcome]
    data = (
        f' data-id-token="{escape(token)}" data-state="{escape(login_state or "")}"'
        if token
        else ""
    )
    script = '<script type="module" src="/me/landing.js"></script>' if token else ""
    document = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<title>登录 / Log in</title><link rel="stylesheet" href="/common/ccx.css">'
        f"{script}</head><body>"
        '<header class="bar"><h1>我的信用 / My credit</h1></header>'
        f'<main id="landing" data-outcome="{outcome}"{data}>'
        f'<p class="notice{"" if token else " warn"}" id="landing-message" role="status">'
        f'<span lang="zh-CN">{escape(zh)}</span><br><span lang="en">{escape(en)}</span></p>'
        '<p><a class="button" href="/me/">返回我的信用页 / Back to my page</a></p>'
        "</main></body></html>"
    )
    headers = {**page_headers(), "Cache-Control": "no-store"}
    return HTMLResponse(document, status_code=status, headers=headers)


router = APIRouter(route_class=GuardedRoute)
router.include_router(me)
router.include_router(admin)
router.include_router(page)
