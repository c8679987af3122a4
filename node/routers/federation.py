"""Public federation endpoints: issuer metadata, keys, status lists, health; and the
metrics, for the operator's scraper alone (``node.auth.metrics_reader``)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from node.auth import MetricsReaderDep
from node.deps import NowDep, StateDep
from node.errors import NodeError, error_responses
from node.guards import GuardedRoute

router = APIRouter(route_class=GuardedRoute, tags=["federation"])

KEYS_UNAVAILABLE = error_responses(503)  # the keyring file can't be read again


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, bool] = Field(
        description="keys, database; registry on a node that pins an alliance root key"
    )
    registry: dict[str, Any] | None = Field(
        None,
        description="on a node that follows a registry: the version in effect, the newest "
        "held, seconds since the last good fetch, the most it may be (null: no limit), the "
        "last error; when not ready, the code decisions are refused with (refused) and why "
        "(reason)",
    )


@router.get(
    "/.well-known/jwks.json",
    summary="The node's issuing keys (public only)",
    responses=KEYS_UNAVAILABLE,
)
def jwks(state: StateDep, now: NowDep) -> dict[str, Any]:
    """Every key that verifies now: the active key, the next key (published ahead of a
    rotation) and retired keys until their last attestation has expired."""
    return state.signing_keys().jwks(now)


@router.get(
    "/.well-known/jwt-vc-issuer", summary="SD-JWT VC issuer metadata", responses=KEYS_UNAVAILABLE
)
def issuer_metadata(state: StateDep, now: NowDep) -> dict[str, Any]:
    """draft-ietf-oauth-sd-jwt-vc section 5: the issuer and its keys. Verifiers in the
    alliance take keys only from the registry; this is for everyone else."""
    return {"issuer": state.settings.node_id, "jwks": state.signing_keys().jwks(now)}


@router.get("/healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database answers, the keys are loaded, a registry is in effect",
    response_model_exclude_unset=True,
    responses={503: {"model": Readiness, "description": "not ready"}},
)
def readyz(state: StateDep, now: NowDep, response: Response) -> Readiness:
    """Not ready (503) when the database does not answer, or when the node pins an
    alliance root key and holds no registry version in effect, or one gone stale (it
    would refuse every visitor). ``registry`` says which version is in effect, how stale
    it is and, when not ready, why."""
    checks: dict[str, Any] = {"keys": bool(state.signing_keys().active)}
    follower = state.follower
    registry: dict[str, Any] | None = None
    if follower is not None:
        in_effect = follower.in_effect(now)
        registry = {
            "version": in_effect.version if in_effect else None,
            "newest_held": follower.newest.version if follower.newest else None,
            "stale_seconds": follower.staleness(now),
            "max_staleness": follower.max_staleness,
            "last_error": follower.last_error[0] if follower.last_error else None,
        }
        try:  # the same rule as every decision's (fail closed)
            state.registry_in_effect(now)
            checks["registry"] = True
        except NodeError as exc:
            checks["registry"] = False
            registry["refused"] = exc.code
            registry["reason"] = exc.message
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:  # any failure means not ready; the reason goes to the log, not out
        checks["database"] = False
    ready = all(checks.values())
    response.status_code = 200 if ready else 503
    return Readiness(
        status="ready" if ready else "not_ready",
        checks=checks,
        **({"registry": registry} if registry is not None else {}),
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (with CCX_METRICS_TOKEN_HASH's bearer token)",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
        **error_responses(401, 403, 404),  # no token; another token; metrics off
    },
)
def metrics(state: StateDep, _: MetricsReaderDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
