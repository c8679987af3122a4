"""The hash-chained audit log (DESIGN section 10: "audit log (hash-chained)").

Entry ``seq`` holds ``hash = sha256(canonical JSON of {seq, at, actor, action, subject,
details, prev_hash})`` where ``prev_hash`` is the hash of entry ``seq - 1`` (64 zeros for
the first). Changing, inserting or deleting an entry in the middle breaks the chain at
that point, which :func:`verify_chain` finds; cutting entries off the end does not, so an
operator who needs that anchors the head hash elsewhere (``GET /v1/admin/audit/verify``
reports it).

Two writers never fork the chain: :func:`append` takes the ``audit`` lock (the write
lock on SQLite, an advisory lock on PostgreSQL) before reading the head, and the
primary key on ``seq`` refuses a second entry with the same number if anything slips
past. The lock is held until the caller's transaction ends, so append as late as you
can in it.

What details may carry (issue 19, item 1). Never a secret: a key that names one
(``token``, ``proof``, ``attestation``, ...) is the caller's bug and refused with
``ValueError``. Values often come from a request (a record id, a purpose), so a value can
never make an append fail: a string shaped like a compact JWS (a token) is kept as its
digest, ``sha256:<hex>``, which still lets an auditor match it against a value she holds
without the log holding it; a string over ``MAX_TEXT`` characters is kept as its first
``MAX_TEXT`` characters and its digest; and details still over 8 KiB are kept as the
digest of their canonical JSON with their size and top-level keys. The entry is written
whatever the request carried, and the request goes on.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, insert
from sqlalchemy import select as core_select
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from node.models import AuditEntry
from node.services._locking import hold_lock
from protocol import canonical_json

__all__ = [
    "GENESIS_HASH",
    "TOKEN_SHAPE",
    "ChainCheck",
    "append",
    "entries_after",
    "entry_hash",
    "entry_values",
    "head",
    "insert_after",
    "read_head",
    "verify_chain",
]

GENESIS_HASH = "0" * 64
MAX_DETAILS_BYTES = 8192
MAX_TEXT = 512  # characters of one string value kept whole
_BATCH = 1000
_ENTRIES = cast(Table, AuditEntry.__table__)  # type: ignore[attr-defined]
_HEAD = core_select(_ENTRIES.c.seq, _ENTRIES.c.hash).order_by(_ENTRIES.c.seq.desc()).limit(1)
_INSERT = insert(_ENTRIES)
_BATCH_AFTER = (
    core_select(
        _ENTRIES.c.seq,
        _ENTRIES.c.at,
        _ENTRIES.c.actor,
        _ENTRIES.c.action,
        _ENTRIES.c.subject,
        _ENTRIES.c.details,
        _ENTRIES.c.prev_hash,
        _ENTRIES.c.hash,
    )
    .where(_ENTRIES.c.seq > bindparam("after"))
    .order_by(_ENTRIES.c.seq)
    .limit(_BATCH)
)

# Names under which a secret would travel; a details key equal to one of them is refused.
_SECRET_KEYS = frozenset(
    {
        "access_token",
        "attestation",
        "authorization",
        "d",
        "passphrase",
        "password",
        "presentation",
        "private_key",
        "proof",
        "secret",
        "token",
    }
)
# "eyJ" is base64url of '{"': the start of every JOSE header, so of every JWT, JWS,
# attestation and proof of possession. Public: record ids are refused in this shape too
# (node.services.records), so that no stored id is ever one the audit log refuses.
TOKEN_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.")


class ChainCheck(NamedTuple):
    """What :func:`verify_chain` found: ``ok``, the first entry that breaks the chain
    (``None`` when ok), and how many entries the log holds. A tuple: ``ok, bad, n =``."""

    ok: bool
    first_bad_seq: int | None
    entries: int


def entry_hash(
    *,
    seq: int,
    at: int,
    actor: str,
    action: str,
    subject: str | None,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """Hex SHA-256 of the canonical JSON of an entry's fields and its predecessor's hash."""
    fields = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(fields)).hexdigest()


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _storable(value: Any, path: str) -> Any:
    """``value`` as the log may hold it: secrets' names refused (the caller's bug),
    token-shaped and over-long strings digested (the request's content)."""
    if isinstance(value, Mapping):
        kept = {}
        for key, item in value.items():
            if str(key).lower() in _SECRET_KEYS:
                raise ValueError(f"audit details must not carry {path}{key!s} (a secret)")
            kept[key] = _storable(item, f"{path}{key!s}.")
        return kept
    if isinstance(value, list | tuple):
        return [_storable(item, path) for item in value]
    if isinstance(value, str):
        if TOKEN_SHAPE.search(value):
            return _digest(value)
        if len(value) > MAX_TEXT:
            return f"{value[:MAX_TEXT]}... ({_digest(value)})"
    return value


def _checked_details(details: Mapping[str, Any]) -> dict[str, Any]:
    encoded = canonical_json(_storable(details, ""))
    if len(encoded) > MAX_DETAILS_BYTES:
        whole = hashlib.sha256(encoded).hexdigest()
        encoded = canonical_json(
            {"oversized": {"sha256": whole, "bytes": len(encoded), "keys": sorted(details)}}
        )
    # Stored as it will read back (int keys become strings, tuples lists), so that the
    # hash computed now is the hash recomputed from the row later.
    checked: dict[str, Any] = json.loads(encoded)
    return checked


def _check_length(name: str, value: str | None, limit: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ValueError(f"audit {name} must be a string of 1..{limit} characters")


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: str | None,
    details: Mapping[str, Any],
    now: int,
) -> AuditEntry:
    """Append an entry to the chain, in the caller's transaction (nothing is committed);
    returns a copy of what was written.

    ``actor`` is who acted (``"resident:<id>"``, ``"admin"``, ``"node"``), ``action`` a
    stable dotted name (``"attestation.issued"``), ``subject`` the resident or object
    concerned. ``details`` are kept as the module docstring says (tokens and long text
    digested, never refused). Raises ``ValueError`` for details under a secret's name or
    not JSON, and for over-long names: a programming error, never the caller's input.
    """
    values = entry_values(actor=actor, action=action, subject=subject, details=details, now=now)
    session.flush()  # the caller's pending changes go first, in order
    hold_lock(session, "audit")
    connection = session.connection()
    return AuditEntry.model_construct(**insert_after(connection, read_head(connection), values))


def entry_values(
    *, actor: str, action: str, subject: str | None, details: Mapping[str, Any], now: int
) -> dict[str, Any]:
    """An entry's fields before it has a place in the chain (``seq``, ``prev_hash``,
    ``hash``): checked and stored as :func:`append` says. Raises ``ValueError`` as it."""
    _check_length("actor", actor, 128)
    _check_length("action", action, 64)
    _check_length("subject", subject, 128, optional=True)
    if not isinstance(details, Mapping):
        raise ValueError("audit details must be a JSON object")
    return {
        "at": now,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": _checked_details(details),
    }


def read_head(connection: Connection) -> tuple[int, str]:
    """The chain's last ``seq`` and hash (0 and the genesis hash for an empty log). Read
    it with the ``audit`` lock held, or another writer may append in between."""
    last = connection.execute(_HEAD).first()
    return (last.seq, last.hash) if last is not None else (0, GENESIS_HASH)


def insert_after(
    connection: Connection, head: tuple[int, str], values: Mapping[str, Any]
) -> dict[str, Any]:
    """Insert the entry of :func:`entry_values` after ``head``; the row written (plain
    values: the group writer's thread touches no ORM)."""
    row: dict[str, Any] = {**values, "seq": head[0] + 1, "prev_hash": head[1]}
    row["hash"] = entry_hash(**row)
    connection.execute(_INSERT, row)
    return row


def verify_chain(session: Session, *, start: tuple[int, str] = (0, GENESIS_HASH)) -> ChainCheck:
    """Recompute every entry's hash and link, in ``seq`` order, from the first entry (or
    from the one after ``start``, an entry's ``(seq, hash)`` taken as given: the witness's
    consistency check, node.services.witness).

    Returns ``ChainCheck(True, None, count)`` for an intact log, else ``ok`` False and
    the first ``seq`` whose content, link or number does not follow from its
    predecessor (a deleted entry shows as a break at the entry after it).
    """
    after, prev_hash = start
    expected_seq, count, first_bad = after + 1, 0, None
    connection = session.connection()
    while True:
        # Plain rows, not entities: a long log must not pile up in the session.
        rows = connection.execute(_BATCH_AFTER, {"after": after}).all()
        if not rows:
            break
        for seq, at, actor, action, subject, details, row_prev, row_hash in rows:
            count += 1
            if first_bad is None and (
                seq != expected_seq
                or row_prev != prev_hash
                or row_hash
                != entry_hash(
                    seq=seq,
                    at=at,
                    actor=actor,
                    action=action,
                    subject=subject,
                    details=details,
                    prev_hash=row_prev,
                )
            ):
                first_bad = seq
            expected_seq, prev_hash = seq + 1, row_hash
        after = rows[-1][0]
    return ChainCheck(first_bad is None, first_bad, count)


def entries_after(session: Session, *, after: int, limit: int) -> list[AuditEntry]:
    """Up to ``limit`` entries with ``seq > after``, oldest first."""
    return list(
        session.exec(
            select(AuditEntry)
            .where(AuditEntry.seq > after)
            .order_by(col(AuditEntry.seq))
            .limit(limit)
        ).all()
    )


def head(session: Session) -> AuditEntry | None:
    """The last entry (its ``hash`` is what an operator anchors outside the node)."""
    return session.exec(select(AuditEntry).order_by(col(AuditEntry.seq).desc()).limit(1)).first()
