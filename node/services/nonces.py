"""Single-use values: proof-of-possession nonces (docs/PROTOCOL.md section 3.4;
docs/ISSUING.md), OpenID4VCI ``c_nonce``s, verification challenges (node.services.verifying)
and the OpenID4VC flows' other secrets.

Nonces and challenges are *sealed* (issue 15): handed out without a write, as 44
characters of base64url over ``tag(4) | random(12) | expiry(5) | mac(12)``, where
``mac`` is HMAC-SHA256 over the purpose, the subject (the resident, or the scenario and
the service point), the random bytes and the expiry, truncated to 96 bits, with a key
derived (HKDF-SHA256) from one of the node's signing keys, which ``tag`` names: the key
rotates with the keyring, and a value sealed with a key still verifies while the key
does. A value is checked without the database (:func:`unseal`: unknown or expired) and
used up once by inserting its digest under the ``nonce`` table's primary key in the
transaction that acts on it (:func:`redeem`: of two requests with one value only one
insert succeeds, the other is ``used``); purged after expiry. The ``nonce`` table keeps
a digest of every value, never the value (docs/SECURITY.md, section 8).

Why by hand: this is a MAC over a few fields (the ``cryptography`` package's HMAC and
HKDF do the cryptography); a JWT library would make each value several times longer,
and a nonce travels inside every proof and presentation."""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

import protocol as P
from keys import Keyring, ManagedKey
from node.errors import NodeError
from node.models import Nonce
from node.state import NodeState
from protocol._json import b64url_decode, b64url_encode
from protocol._jws import check_header, decode_jws, verify_jws_signature

__all__ = [
    "LEEWAY",
    "MAX_PROOF_SIZE",
    "POP_TYP",
    "Opened",
    "PopNonce",
    "SecretRefused",
    "create_pop_nonce",
    "derive",
    "nonce_digest",
    "open_sealed",
    "peek_secret",
    "purge_expired_nonces",
    "redeem",
    "reseal",
    "seal",
    "store_secret",
    "store_secret_once",
    "take_secret",
    "unseal",
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


def create_pop_nonce(state: NodeState, resident_id: str, *, now: int) -> PopNonce:
    """A fresh single-use proof-of-possession nonce for ``resident_id`` (sealed: nothing
    is written until it is used)."""
    expires_at = now + state.settings.nonce_lifetime
    return PopNonce(seal(state.signing_keys(), POP_PURPOSE, resident_id, expires_at), expires_at)


# --- sealed single-use values ------------------------------------------------------------------

SEALED_LENGTH = 44  # characters: 33 bytes of base64url
_TAG, _RANDOM, _EXPIRY, _MAC = 4, 12, 5, 12
_HKDF_INFO = b"ccx single-use values v1"


@functools.lru_cache(maxsize=32)
def _value_key(managed: ManagedKey) -> tuple[bytes, bytes]:
    """(tag, MAC key) derived from a signing key (never used to sign)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    secret = managed.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = HKDF(hashes.SHA256(), 32, salt=None, info=_HKDF_INFO).derive(secret)
    return hashlib.sha256(b"tag" + key).digest()[:_TAG], key


def _mac(key: bytes, purpose: str, subject: str, body: bytes) -> bytes:
    message = b"\0".join((purpose.encode(), subject.encode("utf-8", "surrogatepass"), body))
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC]


def seal(ring: Keyring, purpose: str, subject: str, expires_at: int, payload: bytes = b"") -> str:
    """A fresh value for ``purpose`` and ``subject``, good until ``expires_at``, sealed
    with the keyring's active key; ``payload`` rides along, authenticated, not secret
    (an OpenID4VP request's scenario and service point)."""
    tag, key = _value_key(ring.active)
    body = secrets.token_bytes(_RANDOM) + expires_at.to_bytes(_EXPIRY, "big") + payload
    return b64url_encode(tag + body + _mac(key, purpose, subject, body))


@dataclass(frozen=True, slots=True)
class Opened:
    """A sealed value that holds: when it expires, what it carries, the signing key
    whose value key sealed it."""

    expires_at: int
    payload: bytes
    kid: str
    body: bytes


MAX_SEALED_LENGTH = 256  # characters: a payload of up to ~150 bytes


def open_sealed(
    ring: Keyring, value: str, purpose: str, subject: str, *, now: int, expired: bool = False
) -> Opened:
    """Check a sealed value (not yet used up). Raises :class:`SecretRefused` ``unknown``
    (not sealed by this node's keys still in force, for this purpose and subject) or
    ``expired`` (unless ``expired``: the caller reads its expiry)."""
    if not SEALED_LENGTH <= len(value) <= MAX_SEALED_LENGTH:
        raise SecretRefused("unknown")
    try:
        raw = b64url_decode(value)
    except ValueError:
        raise SecretRefused("unknown") from None
    tag, body, mac = raw[:_TAG], raw[_TAG:-_MAC], raw[-_MAC:]
    for managed in ring.keys:
        key_tag, key = _value_key(managed)
        if (
            key_tag == tag
            and managed.verifies_at(now)
            and hmac.compare_digest(mac, _mac(key, purpose, subject, body))
        ):
            break
    else:
        raise SecretRefused("unknown")
    expires_at = int.from_bytes(body[_RANDOM : _RANDOM + _EXPIRY], "big")
    if expires_at < now and not expired:
        raise SecretRefused("expired")
    return Opened(expires_at, body[_RANDOM + _EXPIRY :], managed.kid, body)


def unseal(ring: Keyring, value: str, purpose: str, subject: str, *, now: int) -> int:
    """:func:`open_sealed` for a value without payload: its expiry."""
    if len(value) != SEALED_LENGTH:
        raise SecretRefused("unknown")
    return open_sealed(ring, value, purpose, subject, now=now).expires_at


def reseal(ring: Keyring, opened: Opened, purpose: str, subject: str) -> str:
    """The value of the same body sealed for another purpose, with the same key: what
    only this node can derive from a value it opened (an OpenID4VP request's
    transaction id from its request id). Raises :class:`SecretRefused` ``unknown`` when
    the keyring no longer holds the key."""
    for managed in ring.keys:
        if managed.kid == opened.kid:
            tag, key = _value_key(managed)
            return b64url_encode(tag + opened.body + _mac(key, purpose, subject, opened.body))
    raise SecretRefused("unknown")


def derive(ring: Keyring, kid: str, label: str, value: str) -> bytes:
    """32 bytes only this node can compute from ``value``, with the value key of its
    signing key ``kid`` (HMAC-SHA256; ``label`` keeps uses apart): what an OpenID4VP
    transaction's state and encryption key are made of, so that the database holds
    neither. Raises :class:`SecretRefused` ``unknown`` when the keyring no longer holds
    ``kid``."""
    for managed in ring.keys:
        if managed.kid == kid:
            key = _value_key(managed)[1]
            return hmac.new(key, label.encode() + b"\0" + value.encode(), hashlib.sha256).digest()
    raise SecretRefused("unknown")


def redeem(
    connection: Connection,
    value: str,
    purpose: str,
    expires_at: int,
    now: int,
    *,
    subject: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Use up a value :func:`unseal` accepted, in the caller's transaction: its digest
    inserted under the primary key, used at ``now`` (with ``data`` beside it: an
    OpenID4VP answer). Raises :class:`SecretRefused` ``used`` when it was (the insert
    conflicts; the caller's transaction is not aborted)."""
    if not store_secret_once(
        connection, purpose=purpose, value=value, expires_at=expires_at, used_at=now,
        subject=subject, data=data,
    ):  # fmt: skip
        raise SecretRefused("used")


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


def use_nonce(
    connection: Connection, ring: Keyring, value: str, resident_id: str, now: int
) -> None:
    """Use up a proof-of-possession nonce of ``resident_id`` in the caller's transaction.
    NodeError 401 ``nonce_unknown`` / ``nonce_expired`` / ``nonce_used``."""
    try:
        expires_at = unseal(ring, value, POP_PURPOSE, resident_id, now=now)
        redeem(connection, value, POP_PURPOSE, expires_at, now)
    except SecretRefused as refused:
        code, message = _NONCE_REFUSALS[refused.why]
        raise NodeError(code, message, status=401) from None


_NONCE_REFUSALS = {
    "unknown": ("nonce_unknown", "this node gave no such nonce to this resident"),
    "used": ("nonce_used", "the nonce was used already: ask for a new one"),
    "expired": ("nonce_expired", "the nonce has expired: ask for a new one"),
}


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


def store_secret_once(
    connection: Connection,
    *,
    purpose: str,
    value: str,
    expires_at: int,
    used_at: int | None = None,
    subject: str | None = None,
    data: dict[str, Any] | None = None,
) -> bool:
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
        "subject": subject,
        "expires_at": expires_at,
        "used_at": used_at,
        "data": data,
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
