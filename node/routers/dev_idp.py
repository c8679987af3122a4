"""The development identity provider's token endpoint (only with CCX_DEV_IDP=true)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from node.deps import NowDep, StateDep
from node.errors import error_responses
from node.guards import GuardedRoute
from node.routers import BODY_ERRORS
from node.services.records import RESIDENT_ID_PATTERN

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
