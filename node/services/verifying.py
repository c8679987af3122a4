"""Service points: challenges and verifications (issue 5; DESIGN sections 5 and 10,
docs/PROTOCOL.md "Service points", operators' guide in docs/VERIFYING.md).

A service point (client credentials with the scope ``verify:<scenario>``) asks for a
challenge for one scenario and gets a single-use nonce, this node's id as ``aud`` and
the disclosures that decide the scenario. The holder presents her attestation with a
KB-JWT over that nonce and aud; the service point sends the presentation back. The node

1. checks the challenge (unknown, used or expired: 401) without using it up yet;
2. verifies the presentation (docs/PROTOCOL.md section 5) with issuer keys from the
   registry in effect only, and this node's id as ``aud``: an attestation whose ``aud``
   names its recipients and not this node is refused (403 ``recipient_not_named``: the
   holder's consent did not name this city, PROTOCOL.md 3.3); on an unknown key or
   member it asks the alliance host for a newer registry once (at most one fetch per
   cooldown) and tries again;
3. refuses an attestation of another alliance (401 ``alliance_mismatch``), one whose
   ``mapping`` names a table the registry doesn't list for the issuer's city (401
   ``mapping_table_unknown``; an issuer city without tables in the registry is
   accepted: an alliance that publishes none), one older than the policy's
   ``max_attestation_age`` (denied), one revoked or suspended (denied); a status that
   can't be read fails closed (503 ``status_unavailable``);
4. decides on the alliance scale (:mod:`node.scenarios`), for locals and visitors alike;
5. in one write transaction, uses the challenge up (whatever the outcome; of two
   requests with one challenge only one gets here, the other 401 ``nonce_used``) and
   writes the decision (or the refusal's code) to the audit log: never the
   presentation, nor any token.

A scenario may decide on the domestic-service credential instead (issue 18,
docs/CREDENTIALS.md): the same steps with that credential's verification (its vct; a
credit standing is refused, and the other way round), no mapping table, and tiers met
when every claim they require is disclosed true. Either way the issuer must be a member
the registry lists for that credential type (``credentials``; none listed: the credit
standing alone): else 401 ``credential_not_issued_by_member``, fail closed.

One flow, one scale: a resident of this city presents the attestation this node
issued her and is decided by the same alliance-scale rule as a visitor, so a service
point can't treat visitors differently from locals with the same standing, and it
learns no more about a local (one boolean) than about a visitor.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from sqlalchemy import Table, bindparam, select

import protocol as P
from node.errors import NodeError
from node.models import Nonce, StatusListRow
from node.scenarios import (
    DOMESTIC_SERVICE,
    CatalogueError,
    Requirement,
    Scenario,
    ScenarioCatalogue,
    disclosures_for,
    domestic_disclosures,
    domestic_requirements,
    load_catalogue,
    requirements,
)
from node.services.mapping_tables import city_mapping
from node.services.nonces import SecretRefused, redeem, seal, unseal
from node.services.status_lists import status_list_uri
from node.services.writer import WriteBatch
from node.state import ClientIdentity, NodeState

__all__ = [
    "MAX_NONCE_LENGTH",
    "VERIFY_PURPOSE",
    "Challenge",
    "Checked",
    "Decision",
    "OpenChallenge",
    "Reason",
    "asked",
    "catalogue",
    "check",
    "check_mapping",
    "check_member_issues",
    "check_rate",
    "create_challenge",
    "decide",
    "decide_domestic",
    "outcome",
    "record",
    "scenario_requirements",
    "verify",
]

log = logging.getLogger("ccx.node")

VERIFY_PURPOSE = "verify"  # Nonce.purpose of a challenge
MAX_NONCE_LENGTH = 64

_NONCES = cast(Table, Nonce.__table__)  # type: ignore[attr-defined]
_STATUS_LISTS = cast(Table, StatusListRow.__table__)  # type: ignore[attr-defined]
_STATUS_LIST = select(_STATUS_LISTS.c.size, _STATUS_LISTS.c.bits, _STATUS_LISTS.c.data).where(
    _STATUS_LISTS.c.id == bindparam("id")
)
# --- the catalogue, scopes, rates ------------------------------------------------------


def catalogue(state: NodeState) -> ScenarioCatalogue:
    """The node's scenario catalogue (``CCX_SCENARIOS`` or the demo one), read at first
    use and kept. Raises NodeError 503 ``scenarios_unavailable`` naming the bad field."""
    cached = state.memory.catalogue
    if cached is None:
        try:
            cached = load_catalogue(state.settings.scenarios)
        except CatalogueError as exc:
            raise NodeError(
                "scenarios_unavailable",
                f"the scenario catalogue can't be used: {exc}",
                status=503,
                details={"field": exc.field},
            ) from exc
        state.memory.catalogue = cached
    return cached


def _scenario(state: NodeState, client: ClientIdentity, kind: str) -> Scenario:
    if f"verify:{kind}" not in client.scopes:
        raise NodeError(
            "forbidden", f"these credentials lack the 'verify:{kind}' scope", status=403
        )
    scenario = catalogue(state).get(kind)
    if scenario is None:
        raise NodeError("unknown_scenario", f"this node has no scenario {kind!r}", status=404)
    return scenario


def check_rate(state: NodeState, client: ClientIdentity, now: int) -> None:
    """Count one verification request of ``client``; raises NodeError 429
    ``rate_limited`` with a ``Retry-After`` header when its bucket is empty."""
    wait = state.rate_limiter.take(client.id, float(now))
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise NodeError(
            "rate_limited",
            f"too many verification requests from {client.id!r}: try again in {seconds} s",
            status=429,
            headers={"Retry-After": str(seconds)},
        )


# --- the rule on this node ---------------------------------------------------------------


def _policy_min(registry: P.Registry, kind: str) -> int | None:
    rules = registry.policy.get("scenarios")
    rule = rules.get(kind) if isinstance(rules, Mapping) else None
    value = rule.get("min_alliance_score") if isinstance(rule, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _thresholds(registry: P.Registry) -> list[int]:
    raw = registry.scale.get("thresholds")
    if not isinstance(raw, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in raw
    ):
        from mappings import AllianceScale

        return list(AllianceScale().thresholds)  # the default scale's (DESIGN section 4)
    return list(raw)


def scenario_requirements(
    state: NodeState, registry: P.Registry, scenario: Scenario, *, now: int | None = None
) -> tuple[Requirement, ...]:
    """Each tier's alliance minimum on this node under ``registry`` (node.scenarios),
    through the city's mapping table in use at ``now`` (default: the node's clock)."""
    return requirements(
        scenario,
        thresholds=_thresholds(registry),
        policy_min=_policy_min(registry, scenario.kind),
        to_alliance=city_mapping(state, now=now).alliance_score,
    )


# --- challenges ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    nonce: str
    aud: str
    expires_at: int
    scenario: Scenario
    disclose: list[str]
    requirements: tuple[Requirement, ...]


def _subject(kind: str, client_id: str) -> str:
    return f"{kind} {client_id}"  # neither holds a space (SCENARIO_PATTERN, NAME_PATTERN)


def create_challenge(state: NodeState, client: ClientIdentity, kind: str, *, now: int) -> Challenge:
    """A single-use challenge for scenario ``kind``: sealed (node.services.nonces), so
    nothing is written until it is used.

    Raises NodeError 403 ``forbidden`` (no ``verify:<kind>`` scope), 404
    ``unknown_scenario``, 503 ``registry_unavailable`` / ``mapping_table_unavailable`` /
    ``scenarios_unavailable`` (the node can't decide, so it asks for nothing)."""
    scenario, reqs, disclose = asked(state, client, kind, now=now)
    expires_at = now + state.settings.challenge_lifetime
    nonce = seal(state.signing_keys(), VERIFY_PURPOSE, _subject(kind, client.id), expires_at)
    return Challenge(
        nonce=nonce,
        aud=state.settings.node_id,
        expires_at=expires_at,
        scenario=scenario,
        disclose=disclose,
        requirements=reqs,
    )


def asked(
    state: NodeState, client: ClientIdentity, kind: str, *, now: int
) -> tuple[Scenario, tuple[Requirement, ...], list[str]]:
    """What a challenge of ``client`` for scenario ``kind`` asks: the scenario, its
    tiers' alliance minimums, the claims that decide them. Raises as
    :func:`create_challenge`."""
    scenario = _scenario(state, client, kind)
    registry = state.registry_in_effect(now)
    if scenario.credential == DOMESTIC_SERVICE:  # no score, no mapping table
        return scenario, domestic_requirements(scenario), domestic_disclosures(scenario)
    reqs = scenario_requirements(state, registry, scenario, now=now)
    return scenario, reqs, disclosures_for(scenario, reqs)


@dataclass(frozen=True, slots=True)
class OpenChallenge:
    """A challenge checked, not yet used up (:func:`record` uses it up): a sealed one of
    :func:`create_challenge`, or an OpenID4VP request's nonce (node.services.oid4vp)."""

    kind: str
    nonce: str
    expires_at: int


def _challenge(state: NodeState, client: ClientIdentity, nonce: str, now: int) -> OpenChallenge:
    """The challenge's scenario, checked (sealed by this node for this client and one of
    its scenarios, not expired) without the database; :func:`record` uses it up."""
    ring = state.signing_keys()
    refused = "unknown"
    for scope in sorted(client.scopes):
        kind = scope.removeprefix("verify:")
        if kind == scope:
            continue
        try:
            expires_at = unseal(ring, nonce, VERIFY_PURPOSE, _subject(kind, client.id), now=now)
        except SecretRefused as exc:
            if exc.why == "expired":
                refused = "expired"
                break
            continue
        return OpenChallenge(kind, nonce, expires_at)
    if refused == "expired":
        raise NodeError("nonce_expired", "the challenge has expired: ask for a new one", status=401)
    raise NodeError(
        "nonce_unknown", "this node gave no such challenge to these credentials", status=401
    )


# --- verifications -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    scenario: Scenario
    granted: bool
    tier: Requirement | None
    reasons: tuple[Reason, ...]
    issuer: str
    issuer_city: str | None
    band: str | None = None  # only when the scenario must see it
    alliance_score: int | None = None  # only when the scenario must see it
    audit_seq: int = 0  # the audit entry that records the decision
    kid: str | None = None  # the issuer key that signed the attestation (audited)
    shown: Mapping[str, Any] | None = None  # a domestic-service scenario's ``shows``


def _meets(verified: P.VerifiedPresentation, alliance_min: int) -> bool | None:
    """Whether the disclosed claims prove ``alliance_score >= alliance_min`` (True), prove
    the opposite (False), or can't tell (None)."""
    score = verified.alliance_score
    if score is not None:
        return score >= alliance_min
    for threshold, reached in verified.score_at_least.items():
        if reached and threshold >= alliance_min:
            return True
        if not reached and threshold <= alliance_min:
            return False
    return None


def decide(
    scenario: Scenario, reqs: Sequence[Requirement], verified: P.VerifiedPresentation
) -> tuple[Requirement | None, tuple[Reason, ...]]:
    """The highest tier the disclosed claims prove, and why (pure). No tier: denied,
    ``below_threshold`` when the lowest tier is disproved, else ``disclosure_missing``."""
    if scenario.discloses == "band" and verified.band is None:
        return None, (Reason("disclosure_missing", "this scenario must see the band"),)
    if scenario.discloses == "score" and verified.alliance_score is None:
        return None, (Reason("disclosure_missing", "this scenario must see the alliance score"),)
    for req in reversed(reqs):
        if _meets(verified, req.alliance_min):
            return req, (
                Reason(
                    "threshold_met",
                    f"alliance score at least {req.alliance_min}: tier {req.tier.name!r}",
                ),
            )
    lowest = reqs[0]
    if _meets(verified, lowest.alliance_min) is False:
        return None, (Reason("below_threshold", f"alliance score below {lowest.alliance_min}"),)
    return None, (
        Reason(
            "disclosure_missing",
            f"the presentation discloses nothing that decides alliance score "
            f">= {lowest.alliance_min} (disclose {lowest.disclose})",
        ),
    )


def decide_domestic(
    scenario: Scenario, verified: P.VerifiedDomesticPresentation
) -> tuple[Requirement | None, tuple[Reason, ...]]:
    """The highest tier whose every required claim is disclosed true (pure). No tier:
    denied, ``requirement_unmet`` naming the lowest tier's claims disclosed false, else
    ``disclosure_missing`` naming those not disclosed."""
    reqs = domestic_requirements(scenario)
    for req in reversed(reqs):
        if all(verified.claim(name) is True for name in req.tier.requires):
            return req, (Reason("requirement_met", f"{req.disclose}: tier {req.tier.name!r}"),)
    lowest = reqs[0].tier.requires
    false = [name for name in lowest if verified.claim(name) is False]
    if false:
        return None, (Reason("requirement_unmet", f"not met: {', '.join(false)}"),)
    missing = [name for name in lowest if verified.claim(name) is None]
    return None, (
        Reason("disclosure_missing", f"the presentation does not disclose {', '.join(missing)}"),
    )


def _resolver(registry: P.Registry, now: int) -> P.IssuerKeyResolver:
    def resolve(iss: str, kid: str | None, alg: str) -> P.PublicKey:
        return registry.resolve_issuer_key(iss, kid, alg, now=now)

    return resolve


def _refresh_registry(state: NodeState, now: int) -> bool:
    """Ask the alliance host for a newer registry (at most once a cooldown); whether a
    new version was taken."""
    follower, http, url = state.follower, state.http, state.settings.registry_url
    if follower is None or http is None or not url:
        return False
    result = follower.refresh_unless_recent(
        http, url, now=now, cooldown=state.settings.registry_refetch_cooldown
    )
    return result is not None and bool(result.accepted)


_Verified = P.VerifiedPresentation | P.VerifiedDomesticPresentation


def _verified(
    state: NodeState,
    presentation: str,
    nonce: str,
    now: int,
    kb_aud: str | None = None,
    credential: str = "credit_standing",
) -> tuple[P.Registry, _Verified]:
    node_id = state.settings.node_id
    registry = state.registry_in_effect(now)
    verify = (
        P.verify_domestic_presentation if credential == DOMESTIC_SERVICE else P.verify_presentation
    )

    def attempt(reg: P.Registry) -> _Verified:
        return verify(
            presentation, resolve_issuer_key=_resolver(reg, now), aud=kb_aud or node_id,
            nonce=nonce, now=now, recipient=node_id, signatures=state.memory.signatures,
        )  # fmt: skip

    try:
        return registry, attempt(registry)
    except (P.UnknownKid, P.IssuerNotMember):
        if not _refresh_registry(state, now):
            raise
    registry = state.registry_in_effect(now)
    return registry, attempt(registry)


def _local_status(state: NodeState, ref: P.StatusReference) -> int:
    node_id = state.settings.node_id
    number = ref.uri.removeprefix(status_list_uri(node_id, 0)[:-1])
    if not number.isdigit() or status_list_uri(node_id, int(number)) != ref.uri:
        raise NodeError(
            "status_uri_not_allowed",
            f"status list uri {ref.uri[:200]!r} is not one of this node's lists",
            status=422,
        )
    with state.engine.connect() as connection:  # one read; the pool's rollback ends it
        row = connection.execute(_STATUS_LIST, {"id": int(number)}).first()
    if row is None:
        raise NodeError(
            "status_unavailable", f"this node holds no status list {number}", status=503
        )
    try:
        return P.status_at(P.StatusList(row.size, row.bits, data=row.data), ref.idx)
    except P.StatusIndexOutOfRange as exc:
        raise NodeError(exc.code, exc.message, status=exc.http_status) from exc


def _status_of(
    state: NodeState,
    registry: P.Registry,
    verified: _Verified,
    now: int,
) -> int:
    """The attestation's status value: this node's own list (its database) for a local
    resident, else the issuer's list through the status cache (fail closed: 503)."""
    if verified.issuer == state.settings.node_id:
        return _local_status(state, verified.status)
    http = state.http
    if http is None:  # only an app whose lifespan never ran
        raise NodeError(
            "status_unavailable", "this node has no HTTP client to fetch status lists", status=503
        )
    value: int = state.status_cache.status_of(
        http, registry, verified.status, verified.issuer, now=now
    )
    return value


_STATUS_REASONS = {
    P.STATUS_REVOKED: Reason("attestation_revoked", "the issuer has revoked this attestation"),
    P.STATUS_SUSPENDED: Reason(
        "attestation_suspended", "the issuer has suspended this attestation"
    ),
}


def check_mapping(registry: P.Registry, verified: P.VerifiedPresentation) -> None:
    """The attestation's ``mapping`` (city, version, sha256) must name a table ``registry``
    lists for the issuer member's city (same sha256), else NodeError 401
    ``mapping_table_unknown``. A city for which the registry lists no table at all is
    accepted (an alliance that doesn't publish tables for it)."""
    member = registry.members.get(verified.issuer)
    city = member.city if member is not None else None
    listed = [
        entry
        for entry in registry.mapping_tables
        if isinstance(entry, Mapping) and entry.get("city") == city
    ]
    if not listed:
        return
    ref = verified.mapping
    if ref.city == city and any(
        entry.get("sha256") == ref.sha256 and entry.get("version") == ref.version
        for entry in listed
    ):
        return
    raise NodeError(
        "mapping_table_unknown",
        f"the attestation was mapped with {ref.city!r} table version {ref.version} "
        f"(sha256 {str(ref.sha256)[:16]}...), which registry version {registry.version} "
        f"does not list for {city!r}: ask the home city for a fresh attestation",
        status=401,
    )


def check_member_issues(registry: P.Registry, issuer: str, credential: str) -> None:
    """The registry lists ``credential`` among the types member ``issuer`` issues (a
    member listing none: the credit standing alone), else NodeError 401
    ``credential_not_issued_by_member``: fail closed (issue 18)."""
    member = registry.members.get(issuer)
    if member is None or not member.issues(credential):
        raise NodeError(
            "credential_not_issued_by_member",
            f"registry version {registry.version} does not list {credential} among the "
            f"credentials {issuer[:200]!r} issues",
            status=401,
        )


def _decide_verified(
    state: NodeState,
    registry: P.Registry,
    scenario: Scenario,
    verified: _Verified,
    now: int,
) -> tuple[Requirement | None, tuple[Reason, ...]]:
    if verified.alliance != registry.alliance:
        raise NodeError(
            "alliance_mismatch",
            f"the attestation is of alliance {verified.alliance!r}, this node follows "
            f"{registry.alliance!r}",
            status=401,
        )
    check_member_issues(registry, verified.issuer, scenario.credential)
    if isinstance(verified, P.VerifiedPresentation):
        check_mapping(registry, verified)
    max_age = registry.policy.get("max_attestation_age")
    if (
        isinstance(max_age, int)
        and not isinstance(max_age, bool)
        and now - verified.issued_at > max_age
    ):
        return None, (
            Reason(
                "attestation_too_old",
                f"issued {now - verified.issued_at} s ago; the alliance accepts at most "
                f"{max_age} s: ask the home city for a fresh one",
            ),
        )
    status = _status_of(state, registry, verified, now)
    if status != P.STATUS_VALID:
        return None, (
            _STATUS_REASONS.get(
                status, Reason("attestation_status_unknown", f"status value {status}")
            ),
        )
    if isinstance(verified, P.VerifiedDomesticPresentation):
        return decide_domestic(scenario, verified)
    return decide(scenario, scenario_requirements(state, registry, scenario, now=now), verified)


@dataclass(frozen=True, slots=True)
class Checked:
    """A presentation checked against its challenge, before anything is written: the
    decision (its ``audit_seq`` not known yet), or the refusal to record and raise."""

    client: ClientIdentity
    kind: str
    challenge: OpenChallenge | None  # None: the challenge itself was refused (nothing to use up)
    decision: Decision | None
    refusal: NodeError | P.ProtocolError | None

    def audit_entry(self) -> tuple[str, dict[str, Any]]:
        """The audit entry's action and details (never the presentation nor a token)."""
        details: dict[str, Any] = {"scenario": self.kind, "client": self.client.id}
        if self.refusal is not None:
            return "verification.refused", {**details, "code": self.refusal.code}
        decision = cast(Decision, self.decision)
        return "verification.decided", {
            **details,
            "issuer": decision.issuer,
            "kid": decision.kid,
            "decision": "granted" if decision.granted else "denied",
            "tier": decision.tier.tier.name if decision.tier is not None else None,
            "reasons": [reason.code for reason in decision.reasons],
        }


def check(
    state: NodeState,
    client: ClientIdentity,
    *,
    nonce: str,
    presentation: str,
    now: int,
    kb_aud: str | None = None,
    challenge: OpenChallenge | None = None,
) -> Checked:
    """Steps 1-4 of the module docstring: checks, nothing written (a local resident's
    status list is read in a connection of its own). Raises the challenge's refusals (401 ``nonce_unknown`` /
    ``nonce_expired``), which use nothing up; every later refusal is returned in
    ``refusal``, to be recorded with the challenge used up (:func:`record`, which finds
    a challenge used already). ``challenge``: the nonce's challenge, opened already by
    the caller (an OpenID4VP request's)."""
    if challenge is None:
        challenge = _challenge(state, client, nonce, now)
    kind = challenge.kind
    try:
        scenario = _scenario(state, client, kind)
        registry, verified = _verified(
            state, presentation, nonce, now, kb_aud, credential=scenario.credential
        )
        tier, reasons = _decide_verified(state, registry, scenario, verified, now)
    except (P.ProtocolError, NodeError) as exc:
        return Checked(client, kind, challenge, None, exc)
    member = registry.members.get(verified.issuer)
    credit = verified if isinstance(verified, P.VerifiedPresentation) else None
    decision = Decision(
        scenario=scenario,
        granted=tier is not None,
        tier=tier,
        reasons=reasons,
        issuer=verified.issuer,
        issuer_city=member.city if member is not None else None,
        band=credit.band if credit is not None and scenario.discloses == "band" else None,
        alliance_score=(
            credit.alliance_score if credit is not None and scenario.discloses == "score" else None
        ),
        kid=verified.kid,
        shown=(
            {name: verified.claim(name) for name in scenario.shows}
            if isinstance(verified, P.VerifiedDomesticPresentation)
            else None
        ),
    )
    return Checked(client, kind, challenge, decision, None)


def record(batch: WriteBatch, checked: Checked, now: int) -> int:
    """Step 5, a job of the node's writer: use the challenge up (whatever the outcome)
    and audit the decision or the refusal's code; the entry's ``seq``. Of two jobs with
    one challenge only one inserts its digest; the other raises NodeError 401
    ``nonce_used`` and writes nothing."""
    challenge = checked.challenge
    if challenge is None:
        raise ValueError("a refused challenge is not recorded")
    try:
        redeem(batch.connection, challenge.nonce, VERIFY_PURPOSE, challenge.expires_at, now)
    except SecretRefused:
        raise NodeError(
            "nonce_used", "the challenge was used already: ask for a new one", status=401
        ) from None
    action, details = checked.audit_entry()
    return batch.audit(
        actor=f"client:{checked.client.id}",
        action=action,
        subject=checked.kind,
        details=details,
        now=now,
    )


def outcome(state: NodeState, checked: Checked, seq: int) -> Decision:
    """The decision recorded as audit entry ``seq``, counted in the metrics; a refusal
    is raised."""
    if checked.refusal is not None:
        state.metrics.verifications.labels(checked.kind, checked.refusal.code).inc()
        raise checked.refusal
    decision = replace(cast(Decision, checked.decision), audit_seq=seq)
    state.metrics.verifications.labels(
        checked.kind, "granted" if decision.granted else "denied"
    ).inc()
    return decision


def verify(
    state: NodeState,
    client: ClientIdentity,
    *,
    nonce: str,
    presentation: str,
    now: int,
    kb_aud: str | None = None,
) -> Decision:
    """Decide a presentation made for the challenge ``nonce`` (steps in the module
    docstring): :func:`check`, :func:`record` through the node's writer (committed before
    this returns), :func:`outcome`. ``kb_aud`` is the KB-JWT's audience when it is not
    this node's id (an OpenID4VP client identifier, node/services/oid4vp.py); the
    attestation's recipients are checked against the node id either way.

    Raises NodeError 401 ``nonce_unknown`` / ``nonce_used`` / ``nonce_expired`` /
    ``alliance_mismatch`` / ``mapping_table_unknown``, 403 ``forbidden`` (the scope was
    withdrawn since the challenge), 503 ``registry_unavailable`` / ``status_unavailable``;
    every protocol error of the presentation with its code and HTTP hint
    (docs/PROTOCOL.md section 8), 403 ``recipient_not_named`` among them (the attestation
    names its recipients, and this node is not one). A refusal after the nonce is used is
    audited with its code."""
    checked = check(state, client, nonce=nonce, presentation=presentation, now=now, kb_aud=kb_aud)
    seq = state.writer.call(lambda batch: record(batch, checked, now))
    return outcome(state, checked, seq)
