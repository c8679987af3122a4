"""Status lists, public (draft-ietf-oauth-status-list; docs/PROTOCOL.md section 6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from node.deps import NowDep, SessionDep, StateDep
from node.errors import error_responses
from node.guards import GuardedRoute
from node.services import status_lists

router = APIRouter(route_class=GuardedRoute, tags=["status"])

STATUS_LIST_MEDIA_TYPE = "application/statuslist+jwt"


@router.get(
    "/v1/status-lists/{list_id}",
    summary="A signed status list token (statuslist+jwt)",
    response_class=Response,
    responses={
        200: {"content": {STATUS_LIST_MEDIA_TYPE: {}}},
        **error_responses(404, 422, 503),  # 503: the node's keys are unavailable
    },
)
def status_list(
    list_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: SessionDep,
    state: StateDep,
    now: NowDep,
) -> Response:
    token = status_lists.status_list_token(session, state, list_id, now=now)
    return Response(
        token,
        media_type=STATUS_LIST_MEDIA_TYPE,
        headers={"Cache-Control": f"max-age={state.settings.status_list_ttl}"},
    )
