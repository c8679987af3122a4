"""Proof-of-possession nonces (docs/PROTOCOL.md section 3.4; docs/ISSUING.md): a
resident asks for a nonce, signs ``{"nonce", "aud", "iat"}`` with her wallet key as a
``pop+jwt``, and the node checks the proof and uses the nonce up, once, atomically. The
``nonce`` table keeps a digest of every nonce, never the nonce (docs/SECURITY.md, section
8); verification challenges (``node.services.verifying``) live in the same table."""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

import protocol as P
from node.errors import NodeError
from node.models import Nonce
from node.state import NodeState
from protocol._jws import check_header, decode_jws, verify_jws_signature

__all__ = [
    "LEEWAY",
    "MAX_PROOF_SIZE",
    "POP_TYP",
    "PopNonce",
    "SecretRefused",
    "create_pop_nonce",
    "nonce_digest",
    "peek_secret",
    "purge_expired_nonces",
    "store_secret",
    "store_secret_once",
    "take_secret",
    "use_nonce",
    "verify_proof",
]

POP_TYP = "pop+jwt"
POP_PURPOSE = "pop"
POP_ALGS = ("ES256", "EdDSA")
MAX_PROOF_SIZE = 4096
LEEWAY = 30  # seconds, as everywhere in the protocol (docs/PROTOCOL.md section 1)

_NONCES = cast(Table, Nonce.__table__)  # type: ignore[attr-defined]
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


def verify_proof(proof: str, holder_key: P.PublicKey, *, aud: str, now: int, max_age: int) -> str:
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


def use_nonce(connection: Connection, value: str, resident_id: str, now: int) -> None:
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


# --- single-use secrets of any purpose (OpenID4VCI: offers, codes, c_nonces, tokens) ------


class SecretRefused(Exception):
    """A secret is not usable: ``why`` is ``unknown``, ``used`` or ``expired``."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


_TAKE = (
    update(_NONCES)
    .where(
        _NONCES.c.value == bindparam("digest"),
        _NONCES.c.purpose == bindparam("want_purpose"),
        _NONCES.c.used_at.is_(None),
        _NONCES.c.expires_at >= bindparam("now"),
    )
    .values(used_at=bindparam("used_now"))
    .returning(_NONCES.c.subject, _NONCES.c.data)
)
_PEEK = select(
    _NONCES.c.purpose, _NONCES.c.subject, _NONCES.c.used_at, _NONCES.c.expires_at, _NONCES.c.data
).where(_NONCES.c.value == bindparam("digest"))


def store_secret(
    connection: Connection,
    *,
    purpose: str,
    value: str,
    expires_at: int,
    subject: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Keep a new secret of ``purpose`` by its digest, with ``data`` beside it (nothing
    committed)."""
    connection.execute(
        _INSERT_NONCE,
        {
            "value": nonce_digest(value),
            "purpose": purpose,
            "subject": subject,
            "expires_at": expires_at,
            "used_at": None,
            "data": data,
        },
    )


# RETURNING tells a row stored from a conflict skipped: psycopg's rowcount for an INSERT
# ... ON CONFLICT DO NOTHING is -1 through SQLAlchemy, whatever happened.
_INSERT_ONCE = {
    "sqlite": sqlite_insert(_NONCES)
    .on_conflict_do_nothing(index_elements=["value"])
    .returning(_NONCES.c.value),
    "postgresql": postgresql_insert(_NONCES)
    .on_conflict_do_nothing(index_elements=["value"])
    .returning(_NONCES.c.value),
}


def store_secret_once(connection: Connection, *, purpose: str, value: str, expires_at: int) -> bool:
    """Keep a secret that must be new (a DPoP proof's id): False when it is kept already,
    which a replay is. Nothing committed; never aborts the caller's transaction."""
    statement = _INSERT_ONCE.get(connection.dialect.name)
    if statement is None:
        raise NotImplementedError(
            f"nonces support SQLite and PostgreSQL, not {connection.dialect.name}"
        )
    row = {
        "value": nonce_digest(value),
        "purpose": purpose,
        "subject": None,
        "expires_at": expires_at,
        "used_at": None,
        "data": None,
    }
    return connection.execute(statement, row).first() is not None


def take_secret(
    connection: Connection, *, purpose: str, value: str, now: int
) -> tuple[str | None, dict[str, Any]]:
    """Use up a secret of ``purpose``, atomically (of two requests with one secret only
    one takes it); its subject and data. Raises :class:`SecretRefused`."""
    digest = nonce_digest(value)
    taken = connection.execute(
        _TAKE, {"digest": digest, "want_purpose": purpose, "now": now, "used_now": now}
    ).first()
    if taken is not None:
        return taken.subject, dict(taken.data or {})
    raise SecretRefused(_why_not(connection, digest, purpose, now))


def peek_secret(
    connection: Connection, *, purpose: str, value: str, now: int
) -> tuple[str | None, dict[str, Any]]:
    """A secret of ``purpose`` still usable, left as it is (an access token used for
    several requests); its subject and data. Raises :class:`SecretRefused`."""
    digest = nonce_digest(value)
    row = connection.execute(_PEEK, {"digest": digest}).first()
    if row is None or row.purpose != purpose:
        raise SecretRefused("unknown")
    if row.used_at is not None:
        raise SecretRefused("used")
    if row.expires_at < now:
        raise SecretRefused("expired")
    return row.subject, dict(row.data or {})


def _why_not(connection: Connection, digest: str, purpose: str, now: int) -> str:
    row = connection.execute(_PEEK, {"digest": digest}).first()
    if row is None or row.purpose != purpose:
        return "unknown"
    return "used" if row.used_at is not None else "expired"
