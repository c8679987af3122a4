"""What the alliance dashboard shows (issue 16), on the alliance host (``CCX_ALLIANCE_DIR``).

:func:`alliance_overview` reads the alliance folder's public part (``root.jwk``,
``registry/v<N>.jwt``, ``tables/``) and verifies it as a node would: every version
against the root key and the one before it (the chain), every attached mapping table
against the root key and the hash the registry lists. The page shows the verdicts; it
verifies nothing itself. ``alliance.json`` (the administrators' working state) is not
read: the dashboard is public and shows only what has been published.

:class:`ReadinessProbe` asks each member's ``/readyz``, all at once under one short
deadline, and keeps the answer for ``ttl`` seconds, so that the public page cannot make
the host hammer its members: however often it is asked, a member is asked once a ttl.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
from cryptography import x509
from pydantic import BaseModel

import protocol as P
from mappings import AllianceScale, MappingError, MappingTable

__all__ = [
    "AllianceOverview",
    "MemberReadiness",
    "ReadinessProbe",
    "ReadinessReport",
    "alliance_overview",
]

CURVE_POINTS = 101  # enough for a smooth line on any screen, small enough to send
READY_BODY_BYTES = 64 * 1024
_CITY = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_VERSION_FILE = re.compile(r"v([1-9][0-9]{0,8})\.jwt")


class Problem(BaseModel):
    code: str
    message: str


class KeyView(BaseModel):
    kid: str
    alg: str
    not_before: int | None
    expires_at: int | None
    valid_now: bool


class CertificateView(BaseModel):
    kid: str
    not_before: int | None
    not_after: int | None
    valid_now: bool


class MemberView(BaseModel):
    id: str
    name: str
    city: str
    status: str
    keys: list[KeyView]
    certificates: list[CertificateView]
    local_scale: dict[str, Any] | None


class VersionView(BaseModel):
    version: int
    sha256: str
    prev: str | None
    iat: int | None
    valid_from: int | None
    exp: int | None
    in_effect: bool
    expired: bool
    verified: bool  # the root key's signature and the registry's shape
    links: bool | None  # its prev is the hash of the version before (None: the first)
    problem: Problem | None


class ScenarioView(BaseModel):
    kind: str
    min_alliance_score: int | None


class PolicyView(BaseModel):
    max_attestation_age: int | None
    status_stale_limit: int | None
    scenarios: list[ScenarioView]


class ScaleView(BaseModel):
    min: int
    max: int
    thresholds: list[int]
    bands: list[dict[str, Any]]


class CurvePoint(BaseModel):
    local: float | str  # a score of the city's scale, or its grade
    position: float  # where on the city's own scale: 0 lowest, 1 highest
    alliance: int  # the alliance score it maps to (rounded and clamped, as issued)


class TableView(BaseModel):
    city: str
    version: int
    sha256: str
    valid_from: int
    valid_to: int
    uri: str
    verified: bool
    signed_by: str | None  # the kid of the alliance root key that signed it
    local_scale: dict[str, Any] | None
    points: list[CurvePoint]
    problem: Problem | None


class AllianceOverview(BaseModel):
    alliance: str | None
    root_kid: str | None
    now: int
    current_version: int | None  # what registry/current.jwt holds
    chain_intact: bool
    versions: list[VersionView]
    members: list[MemberView]
    scale: ScaleView | None
    policy: PolicyView | None
    tables: list[TableView]


# --- the overview ---------------------------------------------------------------------------


def alliance_overview(folder: Path, *, now: int) -> AllianceOverview:
    """The published state of the alliance in ``folder`` at ``now``, verified.

    Never raises for a bad file: a version or table that does not verify is listed with
    its problem, and ``chain_intact`` is False. Members, scale, policy and tables are
    those of the newest version that verifies.
    """
    root_jwk = _read_json(folder / "root.jwk")
    root_kid = root_jwk.get("kid") if isinstance(root_jwk, dict) else None
    try:
        root_key: P.PublicKey | None = P.public_key_from_jwk(root_jwk)
    except (P.ProtocolError, TypeError, ValueError):
        root_key = None
    versions, newest = _versions(folder / "registry", root_key, now)
    current = _read_text(folder / "registry" / "current.jwt")
    current_version = next(
        (
            v.version
            for v in versions
            if current is not None and P.registry_hash(current) == v.sha256
        ),
        None,
    )
    intact = bool(versions) and all(v.verified and v.links is not False for v in versions)
    if newest is None:
        return AllianceOverview(
            alliance=None, root_kid=root_kid if isinstance(root_kid, str) else None, now=now,
            current_version=current_version, chain_intact=False, versions=versions,
            members=[], scale=None, policy=None, tables=[],
        )  # fmt: skip
    return AllianceOverview(
        alliance=newest.alliance,
        root_kid=root_kid if isinstance(root_kid, str) else None,
        now=now,
        current_version=current_version,
        chain_intact=intact,
        versions=versions,
        members=[_member(m, now) for m in newest.members.values()],
        scale=_scale(newest.scale),
        policy=_policy(newest.policy),
        tables=[
            _table(folder / "tables", entry, newest, root_key, root_kid)
            for entry in newest.mapping_tables
        ],
    )


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_json(path: Path) -> Any:
    text = _read_text(path)
    try:
        return None if text is None else json.loads(text)
    except ValueError:
        return None


def _versions(
    registry: Path, root_key: P.PublicKey | None, now: int
) -> tuple[list[VersionView], P.Registry | None]:
    """Every ``v<N>.jwt``, oldest first, each verified against the one before it."""
    files = sorted(
        (int(match.group(1)), path)
        for path in (registry.glob("v*.jwt") if registry.is_dir() else ())
        if (match := _VERSION_FILE.fullmatch(path.name))
    )
    views: list[VersionView] = []
    previous: P.Registry | None = None
    newest: P.Registry | None = None
    for number, path in files:
        token = _read_text(path) or ""
        problem: Problem | None = None
        links: bool | None = None
        found: P.Registry | None = None
        try:
            if root_key is None:
                raise P.InvalidClaim("root.jwk is not a public key the alliance can use")
            found = P.verify_registry(token, root_key=root_key, now=now, check_expiry=False)
            if found.version != number:
                raise P.InvalidClaim(f"{path.name} holds version {found.version}")
            if previous is not None or number > 1:
                links = previous is not None and _links(token, root_key, now, previous)
                if not links:
                    problem = Problem(
                        code="registry_chain_broken",
                        message=f"version {number} does not continue version {number - 1}",
                    )
        except P.ProtocolError as exc:
            problem, found = Problem(code=exc.code, message=str(exc)), None
        views.append(
            VersionView(
                version=number,
                sha256=P.registry_hash(token),
                prev=found.prev if found else None,
                iat=found.issued_at if found else None,
                valid_from=found.valid_from if found else None,
                exp=found.expires_at if found else None,
                in_effect=found.in_effect(now) if found else False,
                expired=found is not None and now > found.expires_at,
                verified=found is not None,
                links=links,
                problem=problem,
            )
        )
        previous = found  # the next version is judged against this one, as a node would
        newest = found or newest
    return views, newest


def _links(token: str, root_key: P.PublicKey, now: int, previous: P.Registry) -> bool:
    try:
        P.verify_registry(token, root_key=root_key, now=now, previous=previous, check_expiry=False)
    except P.ProtocolError:
        return False
    return True


def _member(member: P.Member, now: int) -> MemberView:
    keys = [
        KeyView(
            kid=key.kid,
            alg=key.alg,
            not_before=key.not_before,
            expires_at=key.expires_at,
            valid_now=(key.not_before is None or key.not_before <= now)
            and (key.expires_at is None or now <= key.expires_at),
        )
        for key in member.keys.values()
    ]
    certificates = []
    raw_certificates = member.raw.get("certificates") or {}
    for kid, value in raw_certificates.items():
        start: int | None
        end: int | None
        try:
            certificate = x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
            start = int(certificate.not_valid_before_utc.timestamp())
            end = int(certificate.not_valid_after_utc.timestamp())
        except (ValueError, TypeError, AttributeError):
            start = end = None
        certificates.append(
            CertificateView(
                kid=kid,
                not_before=start,
                not_after=end,
                valid_now=start is not None and end is not None and start <= now <= end,
            )
        )
    scale = member.raw.get("local_scale")
    return MemberView(
        id=member.id,
        name=member.name,
        city=member.city,
        status=member.status,
        keys=keys,
        certificates=certificates,
        local_scale=dict(scale) if isinstance(scale, Mapping) else None,
    )


def _scale(scale: Any) -> ScaleView | None:
    try:
        checked = AllianceScale.from_json(scale).to_json()
    except MappingError:
        return None
    return ScaleView(
        min=checked["min"],
        max=checked["max"],
        thresholds=list(checked.get("thresholds", [])),
        bands=list(checked.get("bands", [])),
    )


def _policy(policy: Any) -> PolicyView | None:
    if not isinstance(policy, Mapping):
        return None
    scenarios = policy.get("scenarios")
    if not isinstance(scenarios, Mapping):
        scenarios = {}
    return PolicyView(
        max_attestation_age=_int_or_none(policy.get("max_attestation_age")),
        status_stale_limit=_int_or_none(policy.get("status_stale_limit")),
        scenarios=[
            ScenarioView(
                kind=kind,
                min_alliance_score=_int_or_none(
                    rule.get("min_alliance_score") if isinstance(rule, Mapping) else None
                ),
            )
            for kind, rule in scenarios.items()
        ],
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _table(
    tables: Path,
    entry: Any,
    registry: P.Registry,
    root_key: P.PublicKey | None,
    root_kid: Any,
) -> TableView:
    city, version = str(entry.get("city", "")), int(entry.get("version", 0))
    view = TableView(
        city=city,
        version=version,
        sha256=str(entry.get("sha256", "")),
        valid_from=int(entry.get("valid_from", 0)),
        valid_to=int(entry.get("valid_to", 0)),
        uri=str(entry.get("uri", "")),
        verified=False,
        signed_by=None,
        local_scale=None,
        points=[],
        problem=None,
    )
    # the name ``ccx alliance table`` gave the copy; a city id is [a-z0-9_-] (state.admit)
    token = _read_text(tables / f"{city}.v{version}.table.jwt") if _CITY.fullmatch(city) else None
    if token is None:
        view.problem = Problem(code="table_missing", message="the alliance folder has no copy")
        return view
    try:
        if root_key is None:
            raise P.InvalidClaim("root.jwk is not a public key the alliance can use")
        table = MappingTable.from_token(
            token,
            key=root_key,
            alliance=registry.alliance,
            scale=AllianceScale.from_json(registry.scale),
        )
    except (P.ProtocolError, MappingError) as exc:
        code = getattr(exc, "code", "invalid_table")
        view.problem = Problem(code=str(code), message=str(exc))
        return view
    if table.sha256 != view.sha256:
        view.problem = Problem(
            code="table_mismatch", message="the table's hash is not the one the registry lists"
        )
        return view
    view.verified = True
    view.signed_by = root_kid if isinstance(root_kid, str) else None
    view.local_scale = table.local_scale.to_json()
    view.points = _curve(table)
    return view


def _curve(table: MappingTable) -> list[CurvePoint]:
    """At most ``CURVE_POINTS`` of the table's knots, evenly spread, both ends kept."""
    knots = table.knots
    count = len(knots)
    picks = sorted({round(i * (count - 1) / (CURVE_POINTS - 1)) for i in range(CURVE_POINTS)})
    if count <= CURVE_POINTS:
        picks = list(range(count))
    first, last = knots[0][0], knots[-1][0]
    low, high = table.alliance_range
    labels = table.local_scale.labels
    points = []
    for index in picks:
        local, alliance, _ = knots[index]
        rounded = int(min(max(int(alliance + 0.5) if alliance >= 0 else 0, low), high))
        points.append(
            CurvePoint(
                local=labels[int(local)] if labels is not None else local,
                position=round((local - first) / (last - first), 6),
                alliance=rounded,
            )
        )
    return points


# --- readiness -----------------------------------------------------------------------------


class MemberReadiness(BaseModel):
    id: str
    name: str
    city: str
    status: str  # in the registry: active or suspended
    state: Literal["ready", "not_ready", "unreachable"]
    # why it is not ready or unreachable: timeout, connect_failed, redirect, bad_answer,
    # checks_failed (then ``failing_checks``)
    reason: str | None = None
    failing_checks: list[str] = []
    http_status: int | None = None
    registry_version: int | None = None  # the version in effect at the member
    detail: str | None = None  # the reason in words (English), for people and logs


class ReadinessReport(BaseModel):
    checked_at: int
    fresh_until: int
    members: list[MemberReadiness]


class ReadinessProbe:
    """Asks members' ``/readyz`` at most once per ``ttl`` seconds (of the node's clock).

    ``deadline`` bounds a whole round: every member is asked at once, and one that has
    not answered by then is ``unreachable`` (``timeout``). Redirects are never followed.
    """

    def __init__(self, *, ttl: int = 15, deadline: float = 3.0) -> None:
        self.ttl = ttl
        self.deadline = deadline
        self._report: ReadinessReport | None = None
        self._lock = asyncio.Lock()

    def fresh(self, *, now: int) -> ReadinessReport | None:
        """The last round's report while it is younger than ``ttl``, else None."""
        report = self._report
        return report if report is not None and now < report.fresh_until else None

    async def report(
        self, members: Callable[[], Awaitable[Sequence[MemberView]]], *, now: int
    ) -> ReadinessReport:
        """The members' readiness, asked now or at most ``ttl`` seconds ago; ``members``
        is called only when they are asked (it reads and verifies the registry)."""
        async with self._lock:  # callers meanwhile wait for this round, not start another
            cached = self.fresh(now=now)
            if cached is not None:
                return cached
            asked = await members()
            timeout = httpx.Timeout(self.deadline)
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
                answers = await asyncio.gather(*(self._ask(client, m) for m in asked))
            self._report = ReadinessReport(
                checked_at=now, fresh_until=now + self.ttl, members=list(answers)
            )
            return self._report

    async def _ask(self, client: httpx.AsyncClient, member: MemberView) -> MemberReadiness:
        found = MemberReadiness(
            id=member.id, name=member.name, city=member.city, status=member.status,
            state="unreachable",
        )  # fmt: skip
        url = f"{member.id.rstrip('/')}/readyz"
        try:
            status, body = await asyncio.wait_for(_get_json(client, url), self.deadline)
        except TimeoutError:
            found.reason, found.detail = "timeout", f"no answer within {self.deadline:g} s"
            return found
        except httpx.TimeoutException:
            found.reason, found.detail = "timeout", f"no answer within {self.deadline:g} s"
            return found
        except httpx.HTTPError as exc:
            found.reason = "connect_failed"
            found.detail = f"could not connect to {url}: {exc or type(exc).__name__}"
            return found
        found.http_status = status
        if 300 <= status < 400:
            found.reason, found.detail = "redirect", f"{url} answered a redirect (not followed)"
            return found
        checks = body.get("checks") if isinstance(body, dict) else None
        registry = body.get("registry") if isinstance(body, dict) else None
        if isinstance(registry, dict):
            found.registry_version = _int_or_none(registry.get("version"))
        if status == 200 and isinstance(body, dict) and body.get("status") == "ready":
            found.state = "ready"
            return found
        found.state = "not_ready"
        if isinstance(checks, dict) and any(v is False for v in checks.values()):
            found.reason = "checks_failed"
            found.failing_checks = sorted(str(k) for k, v in checks.items() if v is False)
            found.detail = "failing checks: " + ", ".join(found.failing_checks)
        else:
            found.reason, found.detail = "bad_answer", f"{url} answered HTTP {status}"
        return found


async def _get_json(client: httpx.AsyncClient, url: str) -> tuple[int, Any]:
    """GET ``url``, reading at most ``READY_BODY_BYTES`` of its body (JSON or None)."""
    async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
        data = b""
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > READY_BODY_BYTES:
                return response.status_code, None
        try:
            return response.status_code, json.loads(data)
        except ValueError:
            return response.status_code, None
