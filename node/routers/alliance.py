"""The alliance registry, as this node serves it (DESIGN section 10): the copy it follows,
or, on the alliance host (``CCX_ALLIANCE_DIR``), the alliance folder's published versions
and mapping tables. Public: a registry is signed and meant to be copied."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from node.deps import NowDep, StateDep
from node.errors import NodeError, error_responses
from node.guards import GuardedRoute
from node.services import witness_host
from node.services.alliance_dashboard import (
    AllianceOverview,
    MemberView,
    ReadinessProbe,
    ReadinessReport,
    alliance_overview,
)
from node.services.registry import REGISTRY_MEDIA_TYPE

router = APIRouter(route_class=GuardedRoute, prefix="/v1/alliance", tags=["alliance"])

TABLE_MEDIA_TYPE = "application/mapping-table+jwt"
_TABLE_NAME = re.compile(r"[a-z0-9_-]{1,64}\.v[0-9]{1,9}\.table\.jwt")
_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "not modified"}}
_JWT: dict[int | str, dict[str, Any]] = {
    200: {"content": {REGISTRY_MEDIA_TYPE: {}}},
    **_NOT_MODIFIED,
}
IfNoneMatch = Annotated[str | None, Header(include_in_schema=False)]


def _not_found(what: str) -> NodeError:
    return NodeError("registry_not_found", f"this node has no {what}", status=404)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _not_found(what) from exc


def _signed(token: str, media_type: str, if_none_match: str | None) -> Response:
    etag = '"' + hashlib.sha256(token.encode("ascii")).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "max-age=60"}
    if if_none_match == etag:
        return Response(status_code=304, headers=headers)
    return Response(token, media_type=media_type, headers=headers)


def _held(state: StateDep, version: int | None) -> str:
    follower = state.follower
    versions = follower.versions if follower is not None else []
    if version is None:
        if not versions:
            raise _not_found("alliance registry yet")
        return versions[-1].token
    for registry in versions:
        if registry.version == version:
            return registry.token
    raise _not_found(f"registry version {version}")


@router.get(
    "/registry",
    summary="The newest alliance registry version (signed; ETag)",
    response_class=Response,
    responses={**_JWT, **error_responses(404, 422)},  # 422: as for any header parameter
)
def registry(state: StateDep, if_none_match: IfNoneMatch = None) -> Response:
    """On the alliance host, the newest version published; on any other node, the newest
    version it has accepted (possibly not yet in effect: see its ``valid_from``)."""
    folder = state.settings.alliance_dir
    if folder is not None:
        token = _read(folder / "registry" / "current.jwt", "published alliance registry")
    else:
        token = _held(state, None)
    return _signed(token, REGISTRY_MEDIA_TYPE, if_none_match)


@router.get(
    "/registry/versions/{version}",
    summary="One alliance registry version, for nodes bridging skipped versions",
    response_class=Response,
    responses={**_JWT, **error_responses(404, 422)},
)
def registry_version(
    state: StateDep,
    version: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
    if_none_match: IfNoneMatch = None,
) -> Response:
    folder = state.settings.alliance_dir
    if folder is not None:
        token = _read(folder / "registry" / f"v{version}.jwt", f"registry version {version}")
    else:
        token = _held(state, version)
    return _signed(token, REGISTRY_MEDIA_TYPE, if_none_match)


@router.get(
    "/tables/{name}",
    summary="A signed mapping table attached to the alliance (alliance host only)",
    response_class=Response,
    responses={
        200: {"content": {TABLE_MEDIA_TYPE: {}}},
        **_NOT_MODIFIED,
        **error_responses(404, 422),
    },
)
def mapping_table(
    state: StateDep,
    name: Annotated[str, PathParam(max_length=90)],
    if_none_match: IfNoneMatch = None,
) -> Response:
    """``<city>.v<N>.table.jwt``, as ``ccx alliance table`` copied it into the folder."""
    folder = state.settings.alliance_dir
    if folder is None or not _TABLE_NAME.fullmatch(name):
        raise _not_found(f"mapping table {name!r}")
    return _signed(
        _read(folder / "tables" / name, f"mapping table {name!r}"), TABLE_MEDIA_TYPE, if_none_match
    )


# --- the alliance dashboard (issue 16): the host's published state, verified, and its
# members' readiness. Public, like the registry they come from.


def _alliance_folder(state: StateDep) -> Path:
    folder = state.settings.alliance_dir
    if folder is None:
        raise NodeError("not_found", "only the alliance host has an alliance dashboard", status=404)
    return folder


AllianceFolderDep = Annotated[Path, Depends(_alliance_folder)]


async def _readiness_probe(request: Request) -> ReadinessProbe:
    # one per app, made at first use: only the alliance host ever needs one
    probe = getattr(request.app.state, "alliance_readiness", None)
    if probe is None:
        probe = request.app.state.alliance_readiness = ReadinessProbe()
    return probe


ProbeDep = Annotated[ReadinessProbe, Depends(_readiness_probe)]


@router.get(
    "/overview",
    summary="The alliance as published, verified: versions and chain, members, policy, tables",
    responses=error_responses(404),
)
def overview(folder: AllianceFolderDep, now: NowDep, response: Response) -> AllianceOverview:
    """Every registry version checked against the root key and the version before it;
    members, scale, policy and mapping tables (with each curve's points) of the newest
    version that verifies. Alliance host only."""
    response.headers["Cache-Control"] = "max-age=15"
    return alliance_overview(folder, now=now)


@router.get(
    "/readiness",
    summary="Which members are ready: their /readyz, asked at most every 15 s",
    responses=error_responses(404),
)
async def readiness(
    folder: AllianceFolderDep, now: NowDep, probe: ProbeDep, response: Response
) -> ReadinessReport:
    """Each member of the newest registry version asked at once, redirects not followed,
    under a deadline of a few seconds; the answer is kept for ``fresh_until`` - now
    seconds, so asking again sooner asks no member. Alliance host only."""

    async def members() -> list[MemberView]:
        return (await run_in_threadpool(alliance_overview, folder, now=now)).members

    report = await probe.report(members, now=now)
    response.headers["Cache-Control"] = f"max-age={max(0, report.fresh_until - now)}"
    return report


# --- the witness (issue 17, gap I): members' checkpoints of their audit heads, verified
# against the registry, countersigned, kept append-only. Alliance host only.


class CheckpointBody(BaseModel):
    checkpoint: str = Field(max_length=4096, description="the member's signed checkpoint")


@router.post(
    "/witness/checkpoints",
    summary="Witness a member's audit head: verify, check it extends the last, countersign",
    status_code=201,
    responses={200: {"description": "the same head as the last: answered again"},
               **error_responses(400, 401, 404, 409, 422, 503)},
)  # fmt: skip
def witness_checkpoint(
    body: CheckpointBody, folder: AllianceFolderDep, state: StateDep, now: NowDep,
    response: Response,
) -> dict[str, Any]:  # fmt: skip
    """201 with the countersigned line; 200 when the head is the last one's. 409
    ``checkpoint_fork`` (the member's history changed: kept as evidence),
    ``checkpoint_replayed``, ``checkpoint_unlinked`` (with the last one in ``details``)."""
    line, appended = witness_host.receive_checkpoint(
        folder, body.checkpoint, witness=state.settings.node_id,
        key=state.signing_keys().active, now=now,
    )  # fmt: skip
    response.status_code = 201 if appended else 200
    return line


@router.get(
    "/witness/checkpoints",
    summary="A member's countersigned checkpoints and refused forks (for `ccx audit verify`)",
    responses=error_responses(404, 422),
)
def witnessed(
    folder: AllianceFolderDep,
    member: Annotated[str, Query(min_length=1, max_length=512, description="the node id")],
    after: Annotated[int, Query(ge=0, le=2**53)] = 0,
    limit: Annotated[int, Query(ge=0, le=witness_host.MAX_PAGE)] = 100,
) -> dict[str, Any]:
    """Countersigned checkpoints with ``n > after``, oldest first; ``latest``; ``forks``."""
    return witness_host.witnessed_checkpoints(folder, member, after=after, limit=limit)
