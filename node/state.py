"""What one node app shares between its routes, services and jobs: :class:`NodeState`,
built once by ``node.app.create_app`` (or by ``ccx scheduler`` for the jobs alone).

Nothing here imports a router, a service that takes a NodeState, or the app factory, so
every one of them may import this module (issue 13: no import circle). What a worker
keeps between requests are typed fields, each owned by one part of the node.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx
import jwt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

import protocol as P
from cli import write_atomically
from keys import Keyring, WrongPassphrase
from node.city_mapping import CityMapping
from node.dev_idp import DevIdentityProvider
from node.errors import NodeError
from node.scenarios import ScenarioCatalogue
from node.scoring import ScoringModel
from node.services.rate_limit import RateLimiter
from node.services.registry import RegistryFollower
from node.services.status_cache import StatusListCache
from node.services.writer import GroupWriter
from node.settings import DEVELOPMENT_PASSPHRASE, Settings

__all__ = [
    "ClientIdentity",
    "Memory",
    "Metrics",
    "NodeState",
    "SignedStatusList",
    "load_keyring",
    "save_keyring",
    "wall_clock",
]

log = logging.getLogger("ccx.node")

KEYRING_RECHECK_SECONDS = 5.0


def wall_clock() -> int:
    """The node's clock in production: epoch seconds now (tests give ``create_app`` theirs)."""
    return int(time.time())


@dataclass(frozen=True)
class ClientIdentity:
    """A department's or service point's credentials, as ``node.auth`` found them."""

    id: str
    department: str
    scopes: frozenset[str]
    expires_at: int | None = None  # NumericDate; checked at each use (issue 17)


class SignedStatusList(NamedTuple):
    """A status list token as signed, kept while the list, the key and half its life last."""

    token: str
    data: bytes  # the list's bytes as signed
    kid: str
    iat: int


@dataclass
class Memory:
    """What one worker keeps between requests to spare work: never the truth (the
    database and the files are), and each field owned by the module named beside it."""

    idp_keys: dict[str | None, jwt.PyJWK] | None = None  # node.auth: the IdP's keys by kid
    # node.auth: a resident bearer token's SHA-256 -> (the key set it was checked with,
    # subject, exp, iat)
    resident_tokens: dict[bytes, tuple[Any, str, float, float]] = field(default_factory=dict)
    # node.auth: a token's hash -> (client, good until, time.monotonic())
    clients: dict[str, tuple[ClientIdentity, float]] = field(default_factory=dict)
    # node.auth: a client id -> (client or None once revoked, good until)
    client_ids: dict[str, tuple[ClientIdentity | None, float]] = field(default_factory=dict)
    catalogue: ScenarioCatalogue | None = None  # node.services.verifying
    # node.services.domestic: the model file's [credentials.domestic_service] rules, read
    # once ((None,): the model has none)
    credential_rules: tuple[Any, ...] | None = None
    local_mapping: CityMapping | None = None  # node.services.mapping_tables: unsigned table
    # node.services.mapping_tables: {(registry version, sha256): table}, failed fetches
    registry_tables: dict[tuple[int, str], CityMapping] = field(default_factory=dict)
    table_failures: dict[tuple[int, str], tuple[int, NodeError]] = field(default_factory=dict)
    # node.services.status_lists: the newest list, each list's first attestation id,
    # the last token signed of each list
    current_list: tuple[int, int] | None = None
    first_ids: dict[int, int] = field(default_factory=dict)
    signed_lists: dict[int, SignedStatusList] = field(default_factory=dict)
    # node.services.verifying: issuer signatures verified already, by their exact bytes
    signatures: P.VerifiedSignatures = field(default_factory=P.VerifiedSignatures)
    # node.services.oid4vp: (registry version, kid) -> (leaf DER, identity, valid from,
    # valid until): the leaf's chain checked once, not at every request
    verifier_identities: dict[tuple[int, str], tuple[bytes, Any, int, int]] = field(
        default_factory=dict
    )


@dataclass
class Metrics:
    """Per-app Prometheus metrics (a registry of its own, so many apps can share a process)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "ccx_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ccx_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.issued = Counter(
            "ccx_attestations_issued_total", "attestations issued", registry=self.registry
        )
        self.revoked = Counter(
            "ccx_attestations_revoked_total", "attestations revoked", registry=self.registry
        )
        self.records = Counter(
            "ccx_records_total", "records pushed, by outcome", ["outcome"], registry=self.registry
        )
        self.verifications = Counter(
            "ccx_verifications_total",
            "service-point verifications by scenario and outcome (granted, denied, or the "
            "refusal's error code)",
            ["scenario", "outcome"],
            registry=self.registry,
        )
        self.registry_version = Gauge(
            "ccx_registry_version",
            "the alliance registry version in effect (0: none)",
            registry=self.registry,
        )
        self.registry_stale_seconds = Gauge(
            "ccx_registry_stale_seconds",
            "seconds since the alliance registry was last fetched successfully (-1: never)",
            registry=self.registry,
        )
        self.rescore_seconds = Gauge(
            "ccx_last_full_rescore_seconds",
            "duration of the last full rescoring",
            registry=self.registry,
        )


@dataclass
class NodeState:
    """What the routes, services and jobs of one node app share, built once per app."""

    settings: Settings
    engine: Engine
    keyring: Keyring
    model: ScoringModel
    metrics: Metrics
    now: Callable[[], int] = wall_clock  # the node's clock: tests give theirs
    follower: RegistryFollower | None = None  # the alliance registry followed (root key pinned)
    http: httpx.Client | None = None  # outgoing HTTP (registry, tables, status lists): lifespan
    dev_idp: DevIdentityProvider | None = None  # CCX_DEV_IDP only
    status_cache: StatusListCache = field(init=False)  # other cities' status lists
    rate_limiter: RateLimiter = field(init=False)  # service points' verifications
    writer: GroupWriter = field(init=False)  # the hot paths' writes, committed in groups
    memory: Memory = field(default_factory=Memory)
    started_at: float = field(default_factory=time.time)
    _keyring_seen: tuple[float, int | None] = (0.0, None)  # (checked at, file mtime)

    def __post_init__(self) -> None:
        self.status_cache = StatusListCache(min_ttl=self.settings.status_cache_min_ttl)
        self.rate_limiter = RateLimiter(self.settings.verify_rate, self.settings.verify_burst)
        self.writer = GroupWriter(self.engine)
        self.metrics.registry.register(_StatusCacheCollector(self.status_cache))

    def signing_keys(self) -> Keyring:
        """The node's keyring, current within a few seconds of a rotation.

        A rotation (``POST /v1/admin/keys/rotate`` or ``ccx node rotate-keys``) rewrites
        the keyring file; every worker process sees the new file here, checking its
        modification time at most every ``KEYRING_RECHECK_SECONDS``, so that N workers
        agree without a restart. Use this, not ``keyring``, wherever a key is used.
        """
        checked, mtime = self._keyring_seen
        moment = time.monotonic()
        if moment - checked < KEYRING_RECHECK_SECONDS:
            return self.keyring
        current: int | None
        try:
            current = self.settings.keyring_path.stat().st_mtime_ns
        except OSError:  # the file went away: keep signing with what was loaded
            current = mtime
        if mtime is not None and current != mtime:
            self.keyring = load_keyring(self.settings)
            log.info(json.dumps({"event": "keyring_reloaded", "active": self.keyring.active.kid}))
        self._keyring_seen = (moment, current)
        return self.keyring

    def registry_in_effect(self, now: int) -> P.Registry:
        """The registry version in effect for this node, or NodeError 503
        ``registry_unavailable`` (fail closed: no registry, no visitors) or
        ``registry_stale`` (no fetch has succeeded for ``CCX_REGISTRY_MAX_STALENESS``)."""
        follower = self.follower
        registry = follower.in_effect(now) if follower is not None else None
        if registry is None:
            reason = (
                "this node pins no alliance root key (CCX_ALLIANCE_ROOT_JWK)"
                if follower is None
                else "no registry version is in effect yet"
            )
            raise NodeError(
                "registry_unavailable",
                f"the alliance registry is unavailable: {reason}",
                status=503,
            )
        if now > registry.expires_at:
            raise NodeError(
                "registry_unavailable",
                f"the newest registry in effect (version {registry.version}) expired at "
                f"{registry.expires_at}; the alliance host has not been reached since",
                status=503,
            )
        # issue 17: a blocked alliance host freezes the registry this long at most
        stale = follower.stale_reason(now) if follower is not None else None
        if stale is not None:
            raise NodeError(
                "registry_stale", f"the alliance registry is stale: {stale}", status=503
            )
        return registry

    def idp_jwks(self) -> str | None:
        """The identity provider's key set: the development one's, or ``CCX_IDP_JWKS``."""
        return self.dev_idp.jwks() if self.dev_idp is not None else self.settings.idp_jwks


def load_keyring(settings: Settings) -> Keyring:
    """The node's keyring from its encrypted file (``ccx node init`` writes it). Raises
    ``WrongPassphrase`` naming CCX_KEYRING_PASSPHRASE, unset or set to another passphrase,
    when it does not decrypt the file; ``KeyringError`` (as ``Settings.keyring_secret``)."""
    path = settings.keyring_path
    if not path.exists():
        raise FileNotFoundError(
            f"no keyring at {path}: run `ccx node init --city {settings.city}` first"
        )
    secret = settings.keyring_secret()
    try:
        return Keyring.load(path.read_bytes(), secret)
    except WrongPassphrase as exc:  # issue 20: say which passphrase was tried
        if "keyring_passphrase" not in settings.model_fields_set:
            tried = "is unset, and the built-in development passphrase does not decrypt it"
        elif secret == DEVELOPMENT_PASSPHRASE.encode("utf-8"):
            tried = "is the built-in development passphrase, which does not decrypt it"
        else:
            tried = "is set, but not to the passphrase it was made with"
        raise WrongPassphrase(
            f"the keyring at {path} does not open: CCX_KEYRING_PASSPHRASE {tried}; "
            "export the passphrase `ccx node init` made it with"
        ) from exc


def save_keyring(settings: Settings, ring: Keyring) -> None:
    """Write the keyring file atomically, readable by the node's user alone (0600)."""
    data = ring.dump(settings.keyring_secret())
    write_atomically(settings.keyring_path, data, mode=0o600)


class _StatusCacheCollector(Collector):
    """Exports the counters of the cache of other cities' status lists, read at scrape
    time (the cache counts; Prometheus only looks)."""

    def __init__(self, cache: StatusListCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        stats = self.cache.snapshot()
        counters = CounterMetricFamily(
            "ccx_status_cache_events",
            "other cities' status lists: hits, fetches, fetch_failures, stale_served, "
            "refused, unavailable (failed closed)",
            labels=["event"],
        )
        for event in (
            "hits",
            "fetches",
            "fetch_failures",
            "stale_served",
            "refused",
            "unavailable",
        ):
            counters.add_metric([event], getattr(stats, event))
        yield counters
        yield GaugeMetricFamily(
            "ccx_status_cache_entries", "status lists held in the cache", value=stats.entries
        )
