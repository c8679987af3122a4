"""The development identity provider's token endpoint (only with CCX_DEV_IDP=true)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from node.deps import NowDep, StateDep
from node.dev_idp import DevIdentityProvider

router = APIRouter(prefix="/dev-idp", tags=["development identity provider"])


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = Field(min_length=1, max_length=128, description="the resident id to log in as")


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105  (the OAuth token type, not a secret)
    expires_in: int


@router.post("/token", summary="Log in as a resident (development only: no real-name check)")
def token(body: TokenRequest, state: StateDep, now: NowDep) -> TokenResponse:
    provider: DevIdentityProvider = state.extra["dev_idp"]
    return TokenResponse(access_token=provider.token(body.subject, now=now), expires_in=900)
