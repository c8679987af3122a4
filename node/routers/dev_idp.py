"""The development identity provider (only with CCX_DEV_IDP=true): a token endpoint for
scripts, and a login page in the browser for the OpenID4VCI authorization code flow
(OpenID Connect, response_type id_token by form post, to this node only) and for the
resident's page."""

from __future__ import annotations

import re
from collections.abc import Mapping
from html import escape
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from node.deps import NowDep, StateDep
from node.errors import NodeError, error_responses
from node.guards import SMALL_BODY_BYTES, GuardedRoute, read_body
from node.pages import auto_post, form_page, message_page
from node.routers import BODY_ERRORS, form_body
from node.services.records import RESIDENT_ID_PATTERN
from node.state import NodeState

router = APIRouter(
    route_class=GuardedRoute, prefix="/dev-idp", tags=["development identity provider"]
)


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # a resident id as departments' records name her (printable ASCII): a subject no record
    # could name, or one with a NUL no database column can hold, is refused here
    subject: str = Field(pattern=RESIDENT_ID_PATTERN, description="the resident id to log in as")


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105  (the OAuth token type, not a secret)
    expires_in: int


@router.post(
    "/token",
    summary="Log in as a resident (development only: no real-name check)",
    responses=error_responses(*BODY_ERRORS),
)
def token(body: TokenRequest, state: StateDep, now: NowDep) -> TokenResponse:
    provider = state.dev_idp
    assert provider is not None  # the router is included only with the dev IdP on
    return TokenResponse(access_token=provider.token(body.subject, now=now), expires_in=900)


# --- the login pages (OpenID Connect, response_type id_token, form post) ----------------------


def _this_node(state: NodeState) -> dict[str, str]:
    return {
        "response_type": "id_token",
        "response_mode": "form_post",
        "client_id": state.settings.idp_audience,
    }


# Where the node takes a login back (a real provider registers each client's redirect
# URIs): the authorization code flow's, and the resident's page (issue 16).
REDIRECT_PATHS = ("/oid4vci/login", "/me/login")


def _login_request(params: Mapping[str, str], state: NodeState) -> dict[str, str]:
    """The parameters of a login request from this node (its authorization endpoint or
    the resident's page); the development provider answers only its own node, at one of
    its registered redirect URIs (a real one knows its clients)."""
    expected = _this_node(state)
    for name, value in expected.items():
        if params.get(name) != value:
            raise NodeError("invalid_request", f"{name} must be {value}", status=400)
    registered = [f"{state.settings.node_id}{path}" for path in REDIRECT_PATHS]
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in registered:
        raise NodeError(
            "invalid_request", f"redirect_uri must be one of {', '.join(registered)}", status=400
        )
    for name in ("state", "nonce"):
        if not re.fullmatch(r"[A-Za-z0-9_-]{16,128}", params.get(name, "")):
            raise NodeError("invalid_request", f"{name} is missing or malformed", status=400)
    return {
        **expected,
        "redirect_uri": redirect_uri,
        "state": params["state"],
        "nonce": params["nonce"],
    }


def _refused(exc: NodeError) -> Response:
    return message_page(
        "无法登录", "Cannot log in", "请回到原来的页面重新开始。", exc.message, status=exc.status
    )


@router.get(
    "/authorize",
    summary="Log in as a resident, in a browser (development only: no real-name check)",
    response_class=HTMLResponse,
    responses={400: {"description": "a page that says why", "content": {"text/html": {}}}},
)
def login_page(request: Request, state: StateDep) -> Response:
    try:
        login = _login_request(request.query_params, state)
    except NodeError as exc:
        return _refused(exc)
    hint = request.query_params.get("login_hint", "")
    fields = (
        '<label for="subject">居民编号 / Resident id</label>'
        f'<input type="text" id="subject" name="subject" value="{escape(hint[:128])}" '
        'required maxlength="128" autocomplete="username">'
    )
    intro = (
        '<p class="zh">开发用身份认证：不做实名核验，任何人都可以用任意编号登录。</p>'
        '<p lang="en">Development identity provider: no real-name check; anyone may log in '
        "as anyone.</p>"
    )
    return form_page(
        "登录",
        "Log in",
        intro,
        action=f"{state.settings.node_id}/dev-idp/authorize",
        hidden={k: login[k] for k in ("redirect_uri", "state", "nonce")},
        fields_html=fields,
        buttons=(("login", "yes", "登录 / Log in"), ("login", "cancel", "取消 / Cancel")),
    )


@router.post(
    "/authorize",
    summary="The login form's answer: the ID token, posted to the node (form post)",
    response_class=HTMLResponse,
    openapi_extra=form_body(
        {
            "redirect_uri": {},
            "state": {},
            "nonce": {},
            "subject": {},
            "login": {"enum": ["yes", "cancel"]},
        },
        ["redirect_uri", "state", "nonce", "login"],
    ),
    responses={400: {"description": "a page that says why", "content": {"text/html": {}}}},
)
async def login(request: Request, state: StateDep, now: NowDep) -> Response:
    try:
        raw = await read_body(request, SMALL_BODY_BYTES)
        form = dict(parse_qsl(raw.decode("ascii", "replace"), keep_blank_values=True))
        # the form carries the redirect URI, state and nonce (checked again: a form can
        # be forged); the rest is this node's
        login = _login_request({**form, **_this_node(state)}, state)
    except NodeError as exc:
        return _refused(exc)
    answer = {"state": login["state"]}
    if form.get("login") == "yes":
        subject = form.get("subject", "")
        if not re.fullmatch(RESIDENT_ID_PATTERN, subject):
            return _refused(
                NodeError("invalid_request", "a resident id is printable ASCII, 1-128", status=400)
            )
        provider = state.dev_idp
        assert provider is not None  # the router is included only with the dev IdP on
        answer["id_token"] = provider.token(subject, now=now, nonce=login["nonce"])
    else:  # OpenID Connect Core section 3.1.2.6
        answer.update(error="access_denied", error_description="the resident cancelled")
    return auto_post(login["redirect_uri"], answer)
