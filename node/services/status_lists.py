"""Token status lists (draft-ietf-oauth-status-list; DESIGN section 6, docs/PROTOCOL.md
section 6): each attestation gets a random, never reused index in the current list; a
list is served signed (``statuslist+jwt``) and its entries change when attestations are
revoked or suspended. A new list opens once the newest is half full, so that random
draws collide less than half the time and a list's entries stay a crowd (herd privacy).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

import protocol as P
from node.errors import NodeError
from node.models import Attestation, StatusListRow
from node.state import NodeState, SignedStatusList

__all__ = [
    "STATUS_BITS",
    "StatusRef",
    "current_status_list",
    "insert_with_random_index",
    "set_status",
    "status_list_token",
    "status_list_uri",
]

log = logging.getLogger("ccx.node")

STATUS_BITS = 2  # 0 valid, 1 revoked, 2 suspended
MAX_INDEX_DRAWS = 64  # a list is at most half full, so 64 collisions in a row is 2^-64
_STATUS_VALUES = {
    "valid": P.STATUS_VALID,
    "revoked": P.STATUS_REVOKED,
    "suspended": P.STATUS_SUSPENDED,
}
_IN_CHUNK = 500  # ids per IN (...) list

_LISTS = cast(Table, StatusListRow.__table__)  # type: ignore[attr-defined]
_ATTESTATIONS = cast(Table, Attestation.__table__)  # type: ignore[attr-defined]
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
_SET_STATUS = (
    update(_ATTESTATIONS)
    .where(_ATTESTATIONS.c.id.in_(bindparam("ids", expanding=True)))
    .values(status=bindparam("new_status"))
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


def status_list_uri(node_id: str, list_id: int) -> str:
    """Where the node serves status list ``list_id`` (the token's ``sub``)."""
    return f"{node_id}/v1/status-lists/{list_id}"


def _below_half(connection: Connection, state: NodeState, list_id: int, size: int) -> bool:
    """Whether list ``list_id`` holds fewer than ``size // 2`` attestations.

    Counting a list's entries takes time in proportion to them (5 ms at 65,536 on
    SQLite), so the ids give a bound first: new indexes go only to the newest list, so
    every attestation in it has an id from its first one on, and it holds at most
    ``max(id) - first id + 1``. Only when that bound reaches half are they counted.
    """
    half = size // 2
    first_ids = state.memory.first_ids
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


def current_status_list(connection: Connection, state: NodeState, now: int) -> tuple[int, int]:
    """(id, size) of the list new indexes go to: the newest, or a new one once the newest
    is half full (random draws then collide less than half the time, and a list's
    entries stay a crowd: herd privacy, DESIGN section 6)."""
    # The newest list is remembered between issuances; another worker opening a newer
    # one only does so once this one is half full, which the check below then sees.
    newest = state.memory.current_list
    for _ in range(3):
        if newest is None:
            newest = connection.execute(_NEWEST_LIST).first()
        if newest is not None and _below_half(connection, state, newest[0], newest[1]):
            state.memory.current_list = (newest[0], newest[1])
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
            state.memory.current_list = (list_id, size)
            return list_id, size
        newest = None  # another writer opened this list first: read which is newest
    raise NodeError("status_list_unavailable", "no status list could be opened", status=503)


def insert_with_random_index(
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
    cache = state.memory.signed_lists
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
    cache[list_id] = SignedStatusList(token, row.data, key.kid, now)
    return token


class StatusRef(NamedTuple):
    id: int
    status_list_id: int
    status_idx: int


def set_status(connection: Connection, refs: Sequence[StatusRef], status: str, now: int) -> None:
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
