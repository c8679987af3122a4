"""Which mapping table the node applies (DESIGN section 8; docs/ISSUING.md).

A node that follows an alliance registry uses the table the registry in effect lists
for its city and in force now: fetched from the entry's ``uri``, verified as a
``mapping-table+jwt`` signed by the pinned alliance root key, its content hash the
entry's ``sha256``, for this city, on the scoring model's local scale, built for the
registry's ``scale``; kept in memory per (registry version, sha256) and saved in
``<data_dir>/tables/`` so that a restart or an unreachable alliance host doesn't stop
issuing. No usable table: 503 ``mapping_table_unavailable`` (fail closed). A node that
follows no registry, or one whose registry lists no mapping tables at all (an alliance
that publishes none), reads the unsigned claims of its city's table from the JSON file
named by the environment variable ``CCX_MAPPING_TABLE``, by default
``mappings/tables/<city>.table.json`` of this repository (a development and demo path),
once per process, with the same checks against the default alliance scale.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

import protocol as P
from cli import write_atomically
from mappings import AllianceScale, MappingError, MappingTable
from node.city_mapping import CityMapping, check_table, load_mapping_table, log_loaded
from node.errors import NodeError
from node.services.registry import FetchRefused, RegistryFollower, fetch_alliance_text
from node.state import NodeState

__all__ = ["MAPPING_TABLE_ENV", "city_mapping", "registry_table"]

log = logging.getLogger("ccx.node")

MAPPING_TABLE_ENV = "CCX_MAPPING_TABLE"
_TABLE_LOCK = threading.Lock()  # one fetch of a table at a time
MAX_TABLE_BYTES = 1024 * 1024
TABLE_RETRY_AFTER = 30  # seconds before a failed table fetch is tried again


def _local_mapping(state: NodeState) -> CityMapping:
    """The unsigned local table (no registry followed: development and demos)."""
    cached = state.memory.local_mapping
    if cached is None:
        override = os.environ.get(MAPPING_TABLE_ENV)
        cached = load_mapping_table(
            state.settings.city, state.model, source=Path(override) if override else None
        )
        state.memory.local_mapping = cached
        log_loaded(cached)
    return cached


def city_mapping(state: NodeState, *, now: int | None = None) -> CityMapping:
    """The node's checked mapping table at ``now`` (default: the node's clock).

    Following a registry (a follower holding a version in effect at ``now``): the signed
    table that version lists for this city, in force at ``now`` (see
    :func:`registry_table`). Following none, or a registry that lists no mapping tables
    at all: the unsigned local table (``CCX_MAPPING_TABLE`` or the repository's table for
    the city), read at first use and kept for the life of the process. Raises NodeError
    503 ``mapping_table_unavailable``.
    """
    follower = state.follower
    if follower is None:
        return _local_mapping(state)
    if now is None:
        now = state.now()
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
    (at most ``MAX_TABLE_BYTES``, within ``FETCH_DEADLINE``), verified and saved. Verified
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
    cache = state.memory.registry_tables
    mapping = cache.get(key)
    if mapping is not None:
        return mapping
    with _TABLE_LOCK:
        mapping = cache.get(key)
        if mapping is not None:
            return mapping
        failures = state.memory.table_failures
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
    log_loaded(mapping)
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
        check_table(table, city, state.model, scale, unavailable)
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
    http = state.http
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
    """GET ``uri`` as registry fetches do (``fetch_alliance_text``: no content coding, at
    most ``MAX_TABLE_BYTES``, within its overall deadline), ASCII (a compact JWS)."""
    try:
        return fetch_alliance_text(client, uri, max_bytes=MAX_TABLE_BYTES).text
    except FetchRefused as exc:
        raise unavailable(str(exc)) from exc
    except httpx.HTTPError as exc:
        raise unavailable(f"fetching it failed: {exc}") from exc
