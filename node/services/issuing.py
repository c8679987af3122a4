"""Issuing attestations and keeping their status (issue 4; DESIGN sections 5-6,
docs/PROTOCOL.md sections 3 and 6, node side in docs/ISSUING.md).

A resident asks for a proof-of-possession nonce, signs ``{"nonce", "aud", "iat"}`` with
her wallet key as a ``pop+jwt``, and sends it with the public key. The node checks the
proof, uses the nonce up, requires both consents (``open_score`` and ``share_alliance``)
and a current score, limits the attestation to the recipients her ``share_alliance``
consent names (the issuer-signed ``aud``; none when she named "alliance"), maps the score onto the alliance scale with the city's mapping
table, gives the attestation a random, never reused index in the current status list,
stores what revocation needs (never the token), writes the audit log and answers with
the SD-JWT VC.

The mapping table (``city_mapping``, the one entry point). A node that follows an
alliance registry uses the table the registry in effect lists for its city and in force
now: fetched from the entry's ``uri``, verified as a ``mapping-table+jwt`` signed by the
pinned alliance root key, its content hash the entry's ``sha256``, for this city, on the
scoring model's local scale, built for the registry's ``scale``; kept in memory per
(registry version, sha256) and saved in ``<data_dir>/tables/`` so that a restart or an
unreachable alliance host doesn't stop issuing. No usable table: 503
``mapping_table_unavailable`` (fail closed). A node that follows no registry, or one
whose registry lists no mapping tables at all (an alliance that publishes none), reads
the unsigned claims of its city's table from the JSON file named by the environment
variable ``CCX_MAPPING_TABLE``, by default ``mappings/tables/<city>.table.json`` of this
repository (a development and demo path), once per process, with the same checks
against the default alliance scale.

Concurrency: issuing and revoking for a resident take the lock
``attestations:<resident>`` (see ``_locking``), so that a consent withdrawal that
revokes her attestations can't miss one issued at the same moment.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import hashlib
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, NamedTuple, cast

import httpx
import numpy as np
import numpy.typing as npt
from prometheus_client import Counter
from sqlalchemy import Connection, Table, bindparam, delete, event, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

import protocol as P
from mappings import AllianceScale, MappingError, MappingTable
from node.app import HTTP_CLIENT, NodeState
from node.errors import NodeError
from node.files import write_atomically
from node.models import Attestation, Consent, Nonce, Score, StatusListRow
from node.scoring import ScoringModel
from node.services import audit
from node.services._locking import hold_lock
from node.services.registry import FOLLOWER, RegistryFollower
from protocol._jws import check_header, decode_jws, verify_jws_signature

__all__ = [
    "EVERY_MEMBER",
    "MAPPING_TABLE_ENV",
    "POP_TYP",
    "REQUIRED_CONSENTS",
    "BandChanges",
    "CityMapping",
    "IssuedAttestation",
    "PopNonce",
    "apply_band_changes",
    "attestation_audience",
    "attestation_expiry",
    "city_mapping",
    "create_pop_nonce",
    "issue",
    "load_mapping_table",
    "nonce_digest",
    "purge_expired_nonces",
    "registry_table",
    "revoke_outstanding",
    "status_list_token",
    "status_list_uri",
]

log = logging.getLogger("ccx.node")

MAPPING_TABLE_ENV = "CCX_MAPPING_TABLE"
POP_TYP = "pop+jwt"
POP_PURPOSE = "pop"
POP_ALGS = ("ES256", "EdDSA")
MAX_PROOF_SIZE = 4096
LEEWAY = 30  # seconds, as everywhere in the protocol (docs/PROTOCOL.md section 1)
REQUIRED_CONSENTS = ("open_score", "share_alliance")
EVERY_MEMBER = "alliance"  # a share_alliance recipient meaning every member of the alliance
STATUS_BITS = 2  # 0 valid, 1 revoked, 2 suspended
MAX_INDEX_DRAWS = 64  # a list is at most half full, so 64 collisions in a row is 2^-64
OUTSTANDING = ("valid", "suspended")
_STATUS_VALUES = {
    "valid": P.STATUS_VALID,
    "revoked": P.STATUS_REVOKED,
    "suspended": P.STATUS_SUSPENDED,
}
_MAPPING_CACHE = "issuing.city_mapping"
_REGISTRY_TABLES = "issuing.registry_tables"  # {(registry version, sha256): CityMapping}
_TABLE_FAILURES = "issuing.registry_table_failures"  # {(version, sha256): (at, NodeError)}
_TABLE_LOCK = threading.Lock()  # one fetch of a table at a time
MAX_TABLE_BYTES = 1024 * 1024
TABLE_FETCH_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
TABLE_RETRY_AFTER = 30  # seconds before a failed table fetch is tried again
_FIRST_IDS = "issuing.first_id_of_list"
_CURRENT_LIST = "issuing.current_status_list"
_SIGNED_LISTS = "issuing.signed_status_lists"
_IN_CHUNK = 500  # ids per IN (...) list


# --- the city's mapping table -------------------------------------------------------


@dataclass(frozen=True)
class CityMapping:
    """The city's mapping table, checked against the scoring model and the alliance scale."""

    table: MappingTable
    scale: AllianceScale
    source: str

    @property
    def reference(self) -> dict[str, Any]:
        """The attestation's ``mapping`` claim."""
        return {"city": self.table.city, "version": self.table.version, "sha256": self.sha256}

    @functools.cached_property
    def sha256(self) -> str:
        """The table's content hash (docs/PROTOCOL.md section 7a)."""
        return self.table.sha256

    @functools.cached_property
    def _band_lowers(self) -> npt.NDArray[np.int64]:
        return np.array([band.lower for band in self.scale.bands], dtype=np.int64)

    def require_in_force(self, now: int) -> None:
        """Raise 503 ``mapping_table_not_in_force`` outside the table's validity window."""
        if not self.table.valid_from <= now < self.table.valid_to:
            raise NodeError(
                "mapping_table_not_in_force",
                f"the {self.table.city} mapping table (version {self.table.version}) is valid "
                f"from {self.table.valid_from} to {self.table.valid_to}, not at {now}",
                status=503,
            )

    def _local_values(self, local_scores: Sequence[float]) -> Any:
        labels = self.table.local_scale.labels
        if labels is None:
            return np.asarray(local_scores, dtype=np.float64)
        # A grade scale's score is the grade's index (node.scoring keeps it as a number).
        return [labels[round(score)] for score in local_scores]

    def alliance_score(self, local_score: float) -> int:
        """The alliance score of one local score (rounded half up, clamped)."""
        labels = self.table.local_scale.labels
        return int(self.table.apply(labels[round(local_score)] if labels else float(local_score)))

    def alliance_scores(self, local_scores: Sequence[float]) -> npt.NDArray[np.int64]:
        """Vectorised :meth:`alliance_score`."""
        if not local_scores:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self.table.apply(self._local_values(local_scores)), dtype=np.int64)

    def bands_of(self, alliance_scores: npt.NDArray[np.int64]) -> list[str]:
        """The band of each alliance score (``AllianceScale.band_of``, vectorised)."""
        positions = np.searchsorted(self._band_lowers, alliance_scores, side="right") - 1
        return [self.scale.bands[max(int(p), 0)].name for p in positions]


def _scale_shape(scale: Any) -> tuple[float, float, float, tuple[str, ...] | None]:
    return (float(scale.min), float(scale.max), float(scale.step), scale.labels)


def _default_table(city: str) -> Traversable:
    return resources.files("mappings").joinpath("tables", f"{city}.table.json")


def _check_table(
    table: MappingTable,
    city: str,
    model: ScoringModel,
    scale: AllianceScale,
    unavailable: Any,
) -> None:
    """The checks every table the node uses passes (raises ``unavailable(reason)``)."""
    if table.city != city:
        raise unavailable(f"it is {table.city}'s table, and this node serves {city}")
    if _scale_shape(table.local_scale) != _scale_shape(model.scale):
        raise unavailable(
            f"its local scale {table.local_scale.to_json()} is not the scoring model's "
            f"{model.scale.to_json()} (min, max, step and labels must agree)"
        )
    if table.scale_sha256 != scale.sha256:
        raise unavailable("it was built for another alliance scale")


def load_mapping_table(
    city: str,
    model: ScoringModel,
    *,
    source: Traversable | Path | None = None,
    scale: AllianceScale | None = None,
) -> CityMapping:
    """Read and check the city's mapping table (its JSON claims, docs/PROTOCOL.md 7a).

    ``source`` defaults to ``mappings/tables/<city>.table.json``. Raises NodeError 503
    ``mapping_table_unavailable`` when the file can't be read or parsed, is for another
    city, has a local scale other than the scoring model's (min, max, step, labels), or
    was built for another alliance scale than ``scale`` (default: the default scale).
    """
    scale = scale or AllianceScale()
    where = source if source is not None else _default_table(city)

    def unavailable(reason: str) -> NodeError:
        return NodeError(
            "mapping_table_unavailable",
            f"the mapping table {where} can't be used: {reason}",
            status=503,
        )

    try:
        claims = json.loads(where.read_text(encoding="utf-8"))
        if not isinstance(claims, dict):
            raise unavailable("it is not a JSON object")
        table = MappingTable.from_claims(claims)
    except OSError as exc:
        raise unavailable(exc.strerror or "it can't be read") from exc
    except MappingError as exc:
        raise unavailable(str(exc)) from exc
    except (ValueError, TypeError) as exc:
        raise unavailable("it is not valid JSON claims of a mapping table") from exc
    _check_table(table, city, model, scale, unavailable)
    return CityMapping(table=table, scale=scale, source=str(where))


def _log_loaded(mapping: CityMapping) -> None:
    log.info(
        json.dumps(
            {
                "event": "mapping_table_loaded",
                "city": mapping.table.city,
                "version": mapping.table.version,
                "sha256": mapping.sha256,
                "source": mapping.source,
            }
        )
    )


def _local_mapping(state: NodeState) -> CityMapping:
    """The unsigned local table (no registry followed: development and demos)."""
    cached = state.extra.get(_MAPPING_CACHE)
    if cached is None:
        override = os.environ.get(MAPPING_TABLE_ENV)
        cached = load_mapping_table(
            state.settings.city, state.model, source=Path(override) if override else None
        )
        state.extra[_MAPPING_CACHE] = cached
        _log_loaded(cached)
    mapping: CityMapping = cached
    return mapping


def city_mapping(state: NodeState, *, now: int | None = None) -> CityMapping:
    """The node's checked mapping table at ``now`` (default: the node's clock).

    Following a registry (a follower holding a version in effect at ``now``): the signed
    table that version lists for this city, in force at ``now`` (see
    :func:`registry_table`). Following none, or a registry that lists no mapping tables
    at all: the unsigned local table (``CCX_MAPPING_TABLE`` or the repository's table for
    the city), read at first use and kept for the life of the process. Raises NodeError
    503 ``mapping_table_unavailable``.
    """
    follower: RegistryFollower | None = state.extra.get(FOLLOWER)
    if follower is None:
        return _local_mapping(state)
    if now is None:
        clock = state.extra.get("now")
        now = int(clock()) if clock is not None else int(time.time())
    registry = follower.in_effect(now)
    if registry is None:
        raise NodeError(
            "mapping_table_unavailable",
            "this node follows an alliance registry and holds no version in effect yet, so "
            "it has no mapping table it may use",
            status=503,
        )
    if not registry.mapping_tables:  # an alliance that publishes no tables
        return _local_mapping(state)
    return registry_table(state, follower, registry, now=now)


def _table_entry(registry: P.Registry, city: str, now: int) -> Mapping[str, Any] | None:
    """The registry's entry for ``city`` in force at ``now`` (the highest version)."""
    best: Mapping[str, Any] | None = None
    for entry in registry.mapping_tables:
        if not isinstance(entry, Mapping) or entry.get("city") != city:
            continue
        numbers = [entry.get(k) for k in ("version", "valid_from", "valid_to")]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in numbers):
            continue
        if not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("uri"), str):
            continue
        version, start, end = (int(v) for v in numbers)  # type: ignore[arg-type]
        if start <= now < end and (best is None or version > best["version"]):
            best = entry
    return best


def _tables_folder(state: NodeState) -> Path:
    return state.settings.data_dir / "tables"


def _saved_path(state: NodeState, city: str, version: int, sha256: str) -> Path:
    return _tables_folder(state) / f"{city}.v{version}.{sha256}.table.jwt"


def registry_table(
    state: NodeState, follower: RegistryFollower, registry: P.Registry, *, now: int
) -> CityMapping:
    """The signed table ``registry`` lists for this node's city, in force at ``now``.

    Taken from memory (per registry version and sha256), else from ``<data_dir>/tables/``
    (verified again), else fetched from the entry's ``uri`` with the node's HTTP client
    (at most ``MAX_TABLE_BYTES``, ``TABLE_FETCH_TIMEOUT``), verified and saved. Verified
    means: signed by the pinned alliance root key for the registry's alliance, built for
    the registry's ``scale``, content hash equal to the entry's ``sha256``, for this city
    and the scoring model's local scale. A failed fetch is not tried again for
    ``TABLE_RETRY_AFTER`` seconds. Raises NodeError 503 ``mapping_table_unavailable``.
    """
    city = state.settings.city
    entry = _table_entry(registry, city, now)
    if entry is None:
        raise NodeError(
            "mapping_table_unavailable",
            f"registry version {registry.version} lists no mapping table for {city} in force "
            f"at {now}: no attestations until the alliance publishes one",
            status=503,
        )
    sha256, version, uri = str(entry["sha256"]), int(entry["version"]), str(entry["uri"])
    key = (registry.version, sha256)
    cache: dict[tuple[int, str], CityMapping] = state.extra.setdefault(_REGISTRY_TABLES, {})
    mapping = cache.get(key)
    if mapping is not None:
        return mapping
    with _TABLE_LOCK:
        mapping = cache.get(key)
        if mapping is not None:
            return mapping
        failures: dict[tuple[int, str], tuple[int, NodeError]] = state.extra.setdefault(
            _TABLE_FAILURES, {}
        )
        failed = failures.get(key)
        if failed is not None and 0 <= now - failed[0] < TABLE_RETRY_AFTER:
            raise failed[1]
        try:
            mapping = _obtain_table(state, follower, registry, city, version, sha256, uri)
        except NodeError as exc:
            failures[key] = (now, exc)
            raise
        failures.pop(key, None)
        for older in [k for k in cache if k[0] < registry.version]:
            del cache[older]
        cache[key] = mapping
    _log_loaded(mapping)
    return mapping


def _obtain_table(
    state: NodeState,
    follower: RegistryFollower,
    registry: P.Registry,
    city: str,
    version: int,
    sha256: str,
    uri: str,
) -> CityMapping:
    def unavailable(reason: str) -> NodeError:
        return NodeError(
            "mapping_table_unavailable",
            f"the {city} mapping table version {version} listed by registry version "
            f"{registry.version} ({uri}) can't be used: {reason}",
            status=503,
        )

    try:
        scale = AllianceScale.from_json(registry.scale)
    except MappingError as exc:
        raise unavailable(f"the registry's scale claim can't be read ({exc})") from exc

    def verified(token: str) -> MappingTable:
        try:
            table = MappingTable.from_token(
                token, key=follower.root_key, alliance=registry.alliance, scale=scale
            )
        except (P.ProtocolError, MappingError) as exc:
            raise unavailable(str(exc)) from exc
        except (ValueError, TypeError) as exc:
            raise unavailable("it is not a valid mapping table") from exc
        if table.sha256 != sha256:
            raise unavailable(f"its content hash {table.sha256} is not the registry's {sha256}")
        _check_table(table, city, state.model, scale, unavailable)
        return table

    saved = _saved_path(state, city, version, sha256)
    try:
        token = saved.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        token = None
    if token is not None:
        try:
            return CityMapping(table=verified(token), scale=scale, source=str(saved))
        except NodeError as exc:  # a damaged copy: fetch it again
            log.warning("saved mapping table %s not taken: %s", saved.name, exc.message)
    http: httpx.Client | None = state.extra.get(HTTP_CLIENT)
    if http is None:
        raise unavailable("this node has no HTTP client to fetch it, and holds no saved copy")
    token = _fetch_table(http, uri, unavailable)
    table = verified(token)
    try:
        saved.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(saved, token.encode("ascii"))
    except OSError as exc:  # still usable now; a restart will fetch it again
        log.warning("mapping table not saved to %s: %s", saved, exc)
    return CityMapping(table=table, scale=scale, source=uri)


def _fetch_table(client: httpx.Client, uri: str, unavailable: Any) -> str:
    """GET ``uri``: at most ``MAX_TABLE_BYTES``, ASCII (a compact JWS)."""
    try:
        with client.stream("GET", uri, timeout=TABLE_FETCH_TIMEOUT) as response:
            if response.status_code != 200:
                raise unavailable(f"fetching it answered {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_TABLE_BYTES:
                    raise unavailable(f"it is larger than {MAX_TABLE_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise unavailable(f"fetching it failed: {exc}") from exc
    try:
        return body.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise unavailable("it holds non-ASCII bytes, not a compact JWS") from exc


# --- times, addresses ------------------------------------------------------------------


def attestation_expiry(now: int, grace: int) -> int:
    """When an attestation issued at ``now`` expires: the next monthly recompute (the
    first second of next month, UTC) plus ``grace``, at most 35 days after ``now``."""
    today = dt.datetime.fromtimestamp(now, dt.UTC)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    recompute = calendar.timegm((year, month, 1, 0, 0, 0))
    return min(recompute + grace, now + P.MAX_ATTESTATION_LIFETIME)


def status_list_uri(node_id: str, list_id: int) -> str:
    """Where the node serves status list ``list_id`` (the token's ``sub``)."""
    return f"{node_id}/v1/status-lists/{list_id}"


def _count_after_commit(session: Session, counter: Counter, amount: int) -> None:
    # Metrics count what was committed: a revocation in a transaction the caller rolls
    # back never happened.
    pending: list[tuple[Counter, int]] | None = session.info.get("issuing.pending_metrics")
    if pending is None:
        pending = session.info["issuing.pending_metrics"] = []

        def flush(_: Session) -> None:
            for metric, value in pending:
                metric.inc(value)
            pending.clear()

        event.listen(session, "after_commit", flush)
        event.listen(session, "after_rollback", lambda _: pending.clear())
    pending.append((counter, amount))


# --- the statements (built once: building one costs more than running it) ---------------

_NONCES = cast(Table, Nonce.__table__)  # type: ignore[attr-defined]
_CONSENTS = cast(Table, Consent.__table__)  # type: ignore[attr-defined]
_SCORES = cast(Table, Score.__table__)  # type: ignore[attr-defined]
_LISTS = cast(Table, StatusListRow.__table__)  # type: ignore[attr-defined]
_ATTESTATIONS = cast(Table, Attestation.__table__)  # type: ignore[attr-defined]

_INSERT_NONCE = insert(_NONCES)
_USE_NONCE = (
    update(_NONCES)
    .where(
        _NONCES.c.value == bindparam("nonce"),
        _NONCES.c.purpose == POP_PURPOSE,
        _NONCES.c.subject == bindparam("resident"),
        _NONCES.c.used_at.is_(None),
        _NONCES.c.expires_at >= bindparam("now"),
    )
    .values(used_at=bindparam("used_now"))
)
_NONCE_STATE = select(_NONCES.c.purpose, _NONCES.c.subject, _NONCES.c.used_at).where(
    _NONCES.c.value == bindparam("nonce")
)
# Every nonce has an expiry, whatever its purpose (proofs of possession, verification
# challenges): all of them are purged the same way.
_PURGE_NONCES = delete(_NONCES).where(_NONCES.c.expires_at < bindparam("before"))
_GRANTED_CONSENTS = select(_CONSENTS.c.kind, _CONSENTS.c.id, _CONSENTS.c.recipients).where(
    _CONSENTS.c.resident_id == bindparam("resident"),
    _CONSENTS.c.withdrawn_at.is_(None),
    _CONSENTS.c.granted_at <= bindparam("now"),
)
_SCORE_OF = select(_SCORES.c.score, _SCORES.c.computed_at).where(
    _SCORES.c.resident_id == bindparam("resident")
)
_NEWEST_LIST = select(_LISTS.c.id, _LISTS.c.size).order_by(_LISTS.c.id.desc()).limit(1)
_LIST_FILL = (
    select(func.count())
    .select_from(_ATTESTATIONS)
    .where(_ATTESTATIONS.c.status_list_id == bindparam("list_id"))
)
_FIRST_ID_IN_LIST = select(func.min(_ATTESTATIONS.c.id)).where(
    _ATTESTATIONS.c.status_list_id == bindparam("list_id")
)
_LAST_ID = select(func.coalesce(func.max(_ATTESTATIONS.c.id), 0))
_LIST_ROW = select(_LISTS.c.size, _LISTS.c.bits, _LISTS.c.data).where(
    _LISTS.c.id == bindparam("list_id")
)
# FOR UPDATE on PostgreSQL (a read-modify-write of the bytes); SQLite ignores it and
# relies on the write lock its caller already holds.
_LIST_ROW_FOR_UPDATE = _LIST_ROW.with_for_update()
_WRITE_LIST = (
    update(_LISTS)
    .where(_LISTS.c.id == bindparam("list_id"))
    .values(data=bindparam("new_data"), updated_at=bindparam("changed_at"))
)
_OUTSTANDING_OF = select(
    _ATTESTATIONS.c.id, _ATTESTATIONS.c.status_list_id, _ATTESTATIONS.c.status_idx
).where(
    _ATTESTATIONS.c.resident_id == bindparam("resident"),
    _ATTESTATIONS.c.status.in_(OUTSTANDING),
)
_SET_STATUS = (
    update(_ATTESTATIONS)
    .where(_ATTESTATIONS.c.id.in_(bindparam("ids", expanding=True)))
    .values(status=bindparam("new_status"))
)
_OUTSTANDING_WITH_SCORES = (
    select(
        _ATTESTATIONS.c.id,
        _ATTESTATIONS.c.status_list_id,
        _ATTESTATIONS.c.status_idx,
        _ATTESTATIONS.c.resident_id,
        _ATTESTATIONS.c.band,
        _ATTESTATIONS.c.alliance_score,
        _SCORES.c.score,
    )
    .select_from(
        _ATTESTATIONS.outerjoin(_SCORES, _SCORES.c.resident_id == _ATTESTATIONS.c.resident_id)
    )
    .where(_ATTESTATIONS.c.status.in_(OUTSTANDING), _ATTESTATIONS.c.expires_at > bindparam("now"))
    .order_by(_ATTESTATIONS.c.id)
)
# INSERT ... ON CONFLICT DO NOTHING, which SQLite and PostgreSQL both speak: a taken
# status index (or a list another writer opened first) is a skipped row, not an error
# that would abort the caller's transaction.
_IGNORING_CONFLICTS: dict[str, Any] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
_INSERT_ATTESTATION = {
    name: make(_ATTESTATIONS)
    .on_conflict_do_nothing(index_elements=["status_list_id", "status_idx"])
    .returning(_ATTESTATIONS.c.id)
    for name, make in _IGNORING_CONFLICTS.items()
}
_OPEN_LIST = {
    name: make(_LISTS).on_conflict_do_nothing(index_elements=["id"])
    for name, make in _IGNORING_CONFLICTS.items()
}


def _dialect(connection: Connection) -> str:
    name = connection.dialect.name
    if name not in _IGNORING_CONFLICTS:
        raise NotImplementedError(f"issuing supports SQLite and PostgreSQL, not {name}")
    return name


# --- proof of possession -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PopNonce:
    value: str
    expires_at: int


def nonce_digest(nonce: str) -> str:
    """What the ``nonce`` table keeps of a nonce, of either purpose: its SHA-256 (hex), so
    that a copy of the database holds no live nonce (docs/SECURITY.md, section 8)."""
    return hashlib.sha256(nonce.encode("utf-8")).hexdigest()


def create_pop_nonce(session: Session, state: NodeState, resident_id: str, *, now: int) -> PopNonce:
    """A fresh single-use proof-of-possession nonce for ``resident_id`` (committed; the
    table keeps its digest)."""
    nonce = PopNonce(secrets.token_urlsafe(32), now + state.settings.nonce_lifetime)
    session.connection().execute(
        _INSERT_NONCE,
        {
            "value": nonce_digest(nonce.value),
            "purpose": POP_PURPOSE,
            "subject": resident_id,
            "expires_at": nonce.expires_at,
            "used_at": None,
        },
    )
    session.commit()
    return nonce


def purge_expired_nonces(session: Session, *, now: int) -> int:
    """Delete nonces (proofs of possession, verification challenges) expired for more
    than the leeway (a job for the scheduler); returns how many. A replay of a purged
    nonce still fails, as unknown."""
    result = session.connection().execute(_PURGE_NONCES, {"before": now - LEEWAY})
    session.commit()
    return int(result.rowcount)


def _refused_proof(message: str, code: str = "invalid_proof", status: int = 400) -> NodeError:
    return NodeError(code, message, status=status)


def _verify_proof(proof: str, holder_key: P.PublicKey, *, aud: str, now: int, max_age: int) -> str:
    """Check the proof of possession; return the nonce it signs (not yet used up)."""
    what = "proof of possession"
    jws = decode_jws(proof, what=what, max_size=MAX_PROOF_SIZE)
    alg = check_header(jws.header, typ=POP_TYP, allowed_algs=POP_ALGS, what=what, require_kid=False)
    verify_jws_signature(alg, holder_key, jws.signing_input, jws.signature, what=what)
    claims = jws.payload
    nonce, proof_aud, iat = claims.get("nonce"), claims.get("aud"), claims.get("iat")
    if not isinstance(nonce, str) or not 0 < len(nonce) <= 64:
        raise _refused_proof("the proof's nonce must be the string the node gave")
    if not isinstance(proof_aud, str):
        raise _refused_proof("the proof's aud must be this node's id, one string")
    if proof_aud != aud:
        raise _refused_proof(
            f"the proof is meant for {proof_aud!r}, not this node ({aud})",
            "proof_aud_mismatch",
            401,
        )
    if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
        raise _refused_proof("the proof's iat must be a NumericDate")
    if not now - max_age - LEEWAY <= iat <= now + LEEWAY:
        raise _refused_proof(
            f"the proof's iat {iat} is not within {max_age} s before now ({now})",
            "proof_iat_out_of_window",
            401,
        )
    return nonce


def _use_nonce(connection: Connection, value: str, resident_id: str, now: int) -> None:
    # Single use, atomically: of two requests with one nonce only one UPDATE matches.
    digest = nonce_digest(value)
    used = connection.execute(
        _USE_NONCE, {"nonce": digest, "resident": resident_id, "now": now, "used_now": now}
    )
    if used.rowcount == 1:
        return
    row = connection.execute(_NONCE_STATE, {"nonce": digest}).first()
    if row is None or row.purpose != POP_PURPOSE or row.subject != resident_id:
        raise NodeError(
            "nonce_unknown", "this node gave no such nonce to this resident", status=401
        )
    if row.used_at is not None:
        raise NodeError("nonce_used", "the nonce was used already: ask for a new one", status=401)
    raise NodeError("nonce_expired", "the nonce has expired: ask for a new one", status=401)


# --- issuing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedAttestation:
    token: str  # the SD-JWT VC, ending in "~"; handed to the holder, never stored
    attestation_id: int
    status_uri: str
    status_idx: int
    band: str
    expires_at: int


class _Sharing(NamedTuple):
    consent_id: int
    audience: list[str] | None  # the attestation's aud; None: every member


def attestation_audience(recipients: Any, alliance: str) -> list[str] | None:
    """The ``aud`` of an attestation issued under a ``share_alliance`` consent naming
    ``recipients``: ``None`` (every member) when they hold "alliance" (or the alliance's
    own id, which consents recorded before recipients were checked may hold), else the
    named ids in her order. ``[]`` when the consent names no one usable (never granted
    through the API): the caller refuses to issue."""
    names = recipients if isinstance(recipients, list) else []
    if EVERY_MEMBER in names or alliance in names:
        return None
    return list(dict.fromkeys(n for n in names if isinstance(n, str) and n))[: P.MAX_AUDIENCE]


def _require_consents(
    connection: Connection, resident_id: str, now: int, alliance: str
) -> _Sharing:
    granted = {
        row.kind: row
        for row in connection.execute(_GRANTED_CONSENTS, {"resident": resident_id, "now": now})
    }
    missing = [kind for kind in REQUIRED_CONSENTS if kind not in granted]
    if missing:
        raise NodeError(
            "consent_required",
            "an attestation needs the consents to open the score and to share it with the "
            f"alliance; missing: {', '.join(missing)}",
            status=403,
            details={"missing": missing},
        )
    share = granted["share_alliance"]
    audience = attestation_audience(share.recipients, alliance)
    if audience == []:
        raise NodeError(
            "consent_required",
            "your share_alliance consent names no recipient: withdraw it and grant it again, "
            'naming members of the alliance or "alliance"',
            status=403,
            details={"missing": ["share_alliance"]},
        )
    return _Sharing(int(share.id), audience)


def _below_half(connection: Connection, state: NodeState, list_id: int, size: int) -> bool:
    """Whether list ``list_id`` holds fewer than ``size // 2`` attestations.

    Counting a list's entries takes time in proportion to them (5 ms at 65,536 on
    SQLite), so the ids give a bound first: new indexes go only to the newest list, so
    every attestation in it has an id from its first one on, and it holds at most
    ``max(id) - first id + 1``. Only when that bound reaches half are they counted.
    """
    half = size // 2
    first_ids: dict[int, int] = state.extra.setdefault(_FIRST_IDS, {})
    first = first_ids.get(list_id)
    if first is None:
        first = connection.execute(_FIRST_ID_IN_LIST, {"list_id": list_id}).scalar()
        if first is None:
            return half > 0
        first_ids[list_id] = first
    if connection.execute(_LAST_ID).scalar_one() - first + 1 < half:
        return True
    used: int = connection.execute(_LIST_FILL, {"list_id": list_id}).scalar_one()
    return used < half


def _current_status_list(connection: Connection, state: NodeState, now: int) -> tuple[int, int]:
    """(id, size) of the list new indexes go to: the newest, or a new one once the newest
    is half full (random draws then collide less than half the time, and a list's
    entries stay a crowd: herd privacy, DESIGN section 6)."""
    # The newest list is remembered between issuances; another worker opening a newer
    # one only does so once this one is half full, which the check below then sees.
    newest = state.extra.get(_CURRENT_LIST)
    for _ in range(3):
        if newest is None:
            newest = connection.execute(_NEWEST_LIST).first()
        if newest is not None and _below_half(connection, state, newest[0], newest[1]):
            state.extra[_CURRENT_LIST] = (newest[0], newest[1])
            return newest[0], newest[1]
        list_id = 1 if newest is None else newest[0] + 1
        size = state.settings.status_list_size
        opened = connection.execute(
            _OPEN_LIST[_dialect(connection)],
            {
                "id": list_id,
                "bits": STATUS_BITS,
                "size": size,
                "data": bytes((size * STATUS_BITS + 7) // 8),
                "updated_at": now,
            },
        )
        if opened.rowcount == 1:
            log.info(json.dumps({"event": "status_list_opened", "id": list_id, "size": size}))
            state.extra[_CURRENT_LIST] = (list_id, size)
            return list_id, size
        newest = None  # another writer opened this list first: read which is newest
    raise NodeError("status_list_unavailable", "no status list could be opened", status=503)


def _insert_with_random_index(
    connection: Connection, row: dict[str, Any], size: int
) -> tuple[int, int]:
    """Insert the attestation row at a random free index; returns (id, index)."""
    statement = _INSERT_ATTESTATION[_dialect(connection)]
    for _ in range(MAX_INDEX_DRAWS):
        # Random, so that an index says nothing about when or for whom it was issued;
        # the unique constraint (list, index) keeps "never used again" true under
        # concurrent writers, and a taken index just means drawing again.
        idx = secrets.randbelow(size)
        inserted = connection.execute(statement, {**row, "status_idx": idx}).first()
        if inserted is not None:
            return int(inserted.id), idx
    raise NodeError("status_list_unavailable", "no free status index was found", status=503)


def issue(
    session: Session,
    state: NodeState,
    resident_id: str,
    *,
    holder_jwk: Mapping[str, Any],
    proof: str,
    now: int,
) -> IssuedAttestation:
    """Issue an attestation to ``resident_id`` for the key ``holder_jwk`` (committed).

    Checks, in order: the city's mapping table is usable (503 ``mapping_table_*``); the
    holder key is a public P-256 or Ed25519 JWK (400 ``invalid_key``); the proof is a
    ``pop+jwt`` signed by that key (the protocol codes ``malformed_token``,
    ``wrong_typ``, ``alg_not_allowed``, ``forbidden_header``, ``invalid_signature``,
    ``alg_key_mismatch``; then ``invalid_proof``, ``proof_aud_mismatch``,
    ``proof_iat_out_of_window``); its nonce was given to this resident and is used up
    now (401 ``nonce_unknown``, ``nonce_used``, ``nonce_expired``); both consents
    (403 ``consent_required``); a score (409 ``score_unavailable``). A refusal after
    the nonce check rolls back and leaves the nonce unused.
    """
    settings = state.settings
    mapping = city_mapping(state, now=now)
    mapping.require_in_force(now)
    holder_key = P.public_key_from_jwk(holder_jwk)
    nonce = _verify_proof(
        proof, holder_key, aud=settings.node_id, now=now, max_age=settings.nonce_lifetime
    )
    holder_public = P.public_jwk(holder_key)  # exactly kty, crv, x(, y): what cnf carries
    holder_kid = P.jwk_thumbprint(holder_public)

    hold_lock(session, f"attestations:{resident_id}")
    connection = session.connection()
    _use_nonce(connection, nonce, resident_id, now)
    sharing = _require_consents(connection, resident_id, now, settings.alliance)
    score = connection.execute(_SCORE_OF, {"resident": resident_id}).first()
    if score is None:
        raise NodeError("score_unavailable", "the resident has no score yet to attest", status=409)
    alliance_score = mapping.alliance_score(score.score)
    band = mapping.scale.band_of(alliance_score)
    expires_at = attestation_expiry(now, settings.attestation_grace)
    list_id, size = _current_status_list(connection, state, now)
    attestation_id, status_idx = _insert_with_random_index(
        connection,
        {
            "resident_id": resident_id,
            "status_list_id": list_id,
            "holder_kid": holder_kid,
            "band": band,
            "alliance_score": alliance_score,
            "issued_at": now,
            "expires_at": expires_at,
            "status": "valid",
        },
        size,
    )
    uri = status_list_uri(settings.node_id, list_id)
    key = state.signing_keys().active
    claims: P.AttestationClaims = {
        "iss": settings.node_id,
        "nbf": now,
        "exp": expires_at,
        "alliance": settings.alliance,
        "mapping": mapping.reference,
        "status": {"idx": status_idx, "uri": uri},
        "alliance_score": alliance_score,
        "band": band,
        "thresholds": mapping.scale.thresholds,
        "local_score": int(score.score) if float(score.score).is_integer() else score.score,
        "local_scale": mapping.table.local_scale.to_json(),
        "score_date": dt.datetime.fromtimestamp(score.computed_at, dt.UTC).date().isoformat(),
    }
    if sharing.audience is not None:  # only the members her consent names accept it
        claims["aud"] = sharing.audience
    token = P.issue_attestation(
        claims, issuer_key=key.private_key, kid=key.kid, holder_jwk=holder_public, now=now
    )
    # Last, because the audit lock is held until commit. Never the token or the proof.
    audit.append(
        session,
        actor="resident",  # who she is goes in subject (ids are up to 128 characters)
        action="attestation.issued",
        subject=resident_id,
        details={
            "attestation_id": attestation_id,
            "status_list": list_id,
            "status_idx": status_idx,
            "holder_kid": holder_kid,
            "band": band,
            "expires_at": expires_at,
            "signing_kid": key.kid,
            "mapping_version": mapping.table.version,
            "share_consent_id": sharing.consent_id,  # whose recipients its aud names
        },
        now=now,
    )
    session.commit()
    state.metrics.issued.inc()
    return IssuedAttestation(token, attestation_id, uri, status_idx, band, expires_at)


# --- status lists ----------------------------------------------------------------------


def status_list_token(session: Session, state: NodeState, list_id: int, *, now: int) -> str:
    """The signed ``statuslist+jwt`` of list ``list_id`` as of ``now`` (PROTOCOL section 6).

    Raises NodeError 404 ``status_list_not_found``.
    """
    row = session.connection().execute(_LIST_ROW, {"list_id": list_id}).first()
    if row is None:
        raise NodeError("status_list_not_found", f"there is no status list {list_id}", status=404)
    settings, key = state.settings, state.signing_keys().active
    # Signing compresses the whole list (2^17 entries or more); a token is reused while
    # the list is unchanged, the signing key the same, and less than half its lifetime
    # has passed, so a verifier's copy always has at least half a lifetime left.
    cache: dict[int, _SignedList] = state.extra.setdefault(_SIGNED_LISTS, {})
    signed = cache.get(list_id)
    if (
        signed is not None
        and signed.data == row.data  # not updated_at: two changes may share a second
        and signed.kid == key.kid
        and signed.iat <= now < signed.iat + settings.status_list_lifetime // 2
    ):
        return signed.token
    token = P.sign_status_list(
        P.StatusList(row.size, row.bits, data=row.data),
        uri=status_list_uri(settings.node_id, list_id),
        issuer=settings.node_id,
        issuer_key=key.private_key,
        kid=key.kid,
        now=now,
        exp=now + settings.status_list_lifetime,
        ttl=settings.status_list_ttl,
    )
    cache[list_id] = _SignedList(token, row.data, key.kid, now)
    return token


class _SignedList(NamedTuple):
    token: str
    data: bytes  # the list's bytes as signed
    kid: str
    iat: int


class _StatusRef(NamedTuple):
    id: int
    status_list_id: int
    status_idx: int


def _set_status(connection: Connection, refs: Sequence[_StatusRef], status: str, now: int) -> None:
    """Set attestations' status in their rows and in their status lists' bytes."""
    # The rows first: on SQLite that takes the write lock (if the caller did not hold
    # it yet), so the bytes read below are current. On PostgreSQL the lists are locked
    # row by row for the read-modify-write, in id order so that writers can't deadlock.
    ids = [ref.id for ref in refs]
    for start in range(0, len(ids), _IN_CHUNK):
        connection.execute(
            _SET_STATUS, {"ids": ids[start : start + _IN_CHUNK], "new_status": status}
        )
    by_list: dict[int, list[int]] = {}
    for ref in refs:
        by_list.setdefault(ref.status_list_id, []).append(ref.status_idx)
    value = _STATUS_VALUES[status]
    for list_id in sorted(by_list):
        row = connection.execute(_LIST_ROW_FOR_UPDATE, {"list_id": list_id}).one()
        entries = P.StatusList(row.size, row.bits, data=row.data)
        for idx in by_list[list_id]:
            entries[idx] = value
        connection.execute(
            _WRITE_LIST, {"list_id": list_id, "new_data": entries.to_bytes(), "changed_at": now}
        )


def _check_reason(reason: str) -> None:
    if not isinstance(reason, str) or not 0 < len(reason) <= 64:
        raise ValueError("a revocation reason is a short code such as 'consent_withdrawn'")


def revoke_outstanding(
    session: Session, state: NodeState, resident_id: str, *, now: int, reason: str
) -> int:
    """Revoke every valid or suspended attestation of a resident at once (consent
    withdrawn, ...); returns how many. Runs inside the caller's transaction and commits
    nothing: the status lists show the revocation once the caller commits.

    ``reason`` is a short code for the audit log (``"consent_withdrawn"``); raises
    ``ValueError`` for anything else.
    """
    _check_reason(reason)
    session.flush()  # the caller's pending changes go first, in order
    hold_lock(session, f"attestations:{resident_id}")
    connection = session.connection()
    refs = [
        _StatusRef(*row) for row in connection.execute(_OUTSTANDING_OF, {"resident": resident_id})
    ]
    if not refs:
        return 0
    _set_status(connection, refs, "revoked", now)
    audit.append(
        session,
        actor="node",
        action="attestations.revoked",
        subject=resident_id,
        details={"reason": reason, "count": len(refs), "attestation_ids": [r.id for r in refs]},
        now=now,
    )
    _count_after_commit(session, state.metrics.revoked, len(refs))
    return len(refs)


# --- the monthly rescore ---------------------------------------------------------------


class BandChanges(NamedTuple):
    """What :func:`apply_band_changes` did."""

    checked: int
    revoked: int


def apply_band_changes(session: Session, state: NodeState, now: int) -> BandChanges:
    """After a rescore, revoke every outstanding attestation that now overstates its
    holder's standing (docs/PROTOCOL.md section 6, "When an issuer changes a status").

    For each valid or suspended attestation not yet expired, the holder's current
    alliance score and band come from her current score through the city's mapping
    table. A lower band, or a fall below one of the scale's thresholds the attested
    score reached (its ``score_at_least.<t>`` is now false): revoked. Otherwise left as
    it is (an understatement harms no verifier; she may ask for a new one). No score
    any more, or a band the scale no longer has: revoked, since her standing can't be
    confirmed. Runs in the caller's transaction and commits nothing.
    """
    mapping = city_mapping(state, now=now)
    session.flush()
    connection = session.connection()
    rows = connection.execute(_OUTSTANDING_WITH_SCORES, {"now": now}).all()
    scored = {row.resident_id: row.score for row in rows if row.score is not None}
    residents = list(scored)
    alliance_now = mapping.alliance_scores([scored[r] for r in residents])
    current = dict(zip(residents, mapping.bands_of(alliance_now), strict=True))
    current_score = dict(zip(residents, alliance_now.tolist(), strict=True))
    thresholds = mapping.scale.thresholds
    rank = {band.name: i for i, band in enumerate(mapping.scale.bands)}
    revoke: dict[str, tuple[str, str | None, list[_StatusRef]]] = {}
    for row in rows:
        now_band = current.get(row.resident_id)
        if now_band is None:
            reason = "score_removed"
        elif row.band not in rank:
            reason = "band_unknown"
        elif rank[now_band] < rank[row.band]:
            reason = "band_lowered"
        elif row.alliance_score is not None and any(
            current_score[row.resident_id] < t <= row.alliance_score for t in thresholds
        ):
            reason = "threshold_crossed"  # a score_at_least.<t> it discloses is now false
        else:
            continue
        entry = revoke.setdefault(row.resident_id, (reason, now_band, []))
        entry[2].append(_StatusRef(row.id, row.status_list_id, row.status_idx))
    refs = [ref for _, _, resident_refs in revoke.values() for ref in resident_refs]
    if refs:
        _set_status(connection, refs, "revoked", now)
    for resident, (reason, now_band, resident_refs) in revoke.items():
        audit.append(
            session,
            actor="node",
            action="attestations.revoked",
            subject=resident,
            details={
                "reason": reason,
                "band": now_band,
                "count": len(resident_refs),
                "attestation_ids": [r.id for r in resident_refs],
            },
            now=now,
        )
    audit.append(
        session,
        actor="node",
        action="attestations.band_check",
        subject=None,
        details={
            "checked": len(rows),
            "revoked": len(refs),
            "mapping_version": mapping.table.version,
        },
        now=now,
    )
    _count_after_commit(session, state.metrics.revoked, len(refs))
    return BandChanges(len(rows), len(refs))
