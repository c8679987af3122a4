"""Checkpoints of a node's audit head, and the alliance host's countersignature on them
(issue 17, gap I; docs/PROTOCOL.md section "Witnessed checkpoints").

A node signs ``{iss, seq, hash, at, witnessed}`` with its active signing key: its audit
log's last entry number and hash, its clock, and the last checkpoint the witness
countersigned for it (``{seq, hash}``: the hash the node's log holds *today* at that
number, or null for its first). The witness, the alliance host, checks the signature
against the member's keys in the registry, checks that ``witnessed`` is what it
countersigned last (the consistency check of a hash chain: the history up to there is
unchanged), and countersigns: ``{iss: witness, sub: member, n, seq, hash, at,
witnessed_at, checkpoint, prev}`` where ``checkpoint`` is the SHA-256 of the node's token
and ``prev`` that of the witness's previous countersigned token for the member, so that
the witness's own record is a chain too. The audit entries never leave the node.

Pure: keys, the clock and key look-ups are parameters.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import InvalidClaim, MissingClaim
from ._json import canonical_json
from ._jwk import PrivateKey, PublicKey
from ._jws import check_header, decode_jws, sign_jws, verify_jws_signature

__all__ = [
    "CHECKPOINT_TYP",
    "WITNESSED_TYP",
    "Checkpoint",
    "WitnessedCheckpoint",
    "checkpoint_hash",
    "cosign_checkpoint",
    "sign_checkpoint",
    "verify_checkpoint",
    "verify_witnessed",
]

CHECKPOINT_TYP = "ccx-checkpoint+jwt"
WITNESSED_TYP = "ccx-witnessed-checkpoint+jwt"
MAX_CHECKPOINT_SIZE = 4096
_HEX64 = re.compile(r"[0-9a-f]{64}")

# (iss, kid, alg) -> the public key; raises a ProtocolError for an unknown one
KeyResolver = Callable[[str, str, str], PublicKey]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A node's signed claim: its audit head is ``(seq, hash)`` at ``at``, and its log
    holds ``witnessed[1]`` at ``witnessed[0]`` (None: nothing witnessed yet)."""

    token: str
    node: str
    seq: int
    hash: str
    at: int
    witnessed: tuple[int, str] | None


@dataclass(frozen=True, slots=True)
class WitnessedCheckpoint:
    """The witness's countersignature on a checkpoint: the ``n``-th it keeps for ``member``."""

    token: str
    witness: str
    member: str
    n: int
    seq: int
    hash: str
    at: int
    witnessed_at: int
    checkpoint: str  # SHA-256 hex of the node's checkpoint token
    prev: str | None  # SHA-256 hex of the witness's previous countersigned token


def checkpoint_hash(token: str) -> str:
    """Lower-case hex SHA-256 of a token's ASCII (what ``checkpoint`` and ``prev`` hold)."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _int(claims: Mapping[str, Any], name: str, what: str, *, least: int = 0) -> int:
    value = claims.get(name)
    if value is None:
        raise MissingClaim(f"{what} lacks {name!r}")
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidClaim(f"{what} {name!r} must be an integer >= {least}")
    return value


def _str(claims: Mapping[str, Any], name: str, what: str) -> str:
    value = claims.get(name)
    if value is None:
        raise MissingClaim(f"{what} lacks {name!r}")
    if not isinstance(value, str) or not value or len(value) > 512:
        raise InvalidClaim(f"{what} {name!r} must be a non-empty string")
    return value


def _hex(claims: Mapping[str, Any], name: str, what: str) -> str:
    value = _str(claims, name, what)
    if not _HEX64.fullmatch(value):
        raise InvalidClaim(f"{what} {name!r} must be 64 lower-case hex digits (SHA-256)")
    return value


def sign_checkpoint(
    *,
    node: str,
    seq: int,
    head_hash: str,
    witnessed: tuple[int, str] | None,
    key: PrivateKey,
    kid: str,
    now: int,
) -> str:
    """The node's checkpoint token (``typ`` ccx-checkpoint+jwt), signed with ``key``."""
    payload = {
        "iss": node,
        "seq": seq,
        "hash": head_hash,
        "at": now,
        "witnessed": None if witnessed is None else {"seq": witnessed[0], "hash": witnessed[1]},
    }
    return sign_jws({"typ": CHECKPOINT_TYP, "kid": kid}, canonical_json(payload), key)


def _verified(
    token: str, *, typ: str, what: str, resolve_key: KeyResolver, allowed_algs: Collection[str]
) -> dict[str, Any]:
    jws = decode_jws(token, what=what, max_size=MAX_CHECKPOINT_SIZE)
    alg = check_header(jws.header, typ=typ, allowed_algs=allowed_algs, what=what, require_kid=True)
    iss = _str(jws.payload, "iss", what)
    key = resolve_key(iss, jws.header["kid"], alg)
    verify_jws_signature(alg, key, jws.signing_input, jws.signature, what=what)
    return jws.payload


def verify_checkpoint(
    token: str, *, resolve_key: KeyResolver, allowed_algs: Collection[str] = ("ES256", "EdDSA")
) -> Checkpoint:
    """Verify a node's checkpoint: header rules (PROTOCOL.md section 2), the signature
    with the key ``resolve_key`` finds for its ``iss`` and ``kid`` (the registry's), and
    the claims' shapes. Whether it extends what was witnessed is the witness's to judge.
    Raises a :class:`ProtocolError` subclass."""
    what = "checkpoint"
    claims = _verified(
        token, typ=CHECKPOINT_TYP, what=what, resolve_key=resolve_key, allowed_algs=allowed_algs
    )
    seq, at = _int(claims, "seq", what), _int(claims, "at", what)
    head_hash = _hex(claims, "hash", what)
    if "witnessed" not in claims:
        raise MissingClaim("checkpoint lacks 'witnessed' (null for a node's first)")
    raw = claims["witnessed"]
    witnessed: tuple[int, str] | None = None
    if raw is not None:
        if not isinstance(raw, dict):
            raise InvalidClaim("checkpoint 'witnessed' must be {seq, hash} or null")
        witnessed = (_int(raw, "seq", "checkpoint witnessed"), _hex(raw, "hash", "checkpoint"))
        if witnessed[0] > seq:
            raise InvalidClaim("checkpoint 'witnessed' is past its own head: it cannot extend it")
    return Checkpoint(token, claims["iss"], seq, head_hash, at, witnessed)


def cosign_checkpoint(
    checkpoint: Checkpoint,
    *,
    witness: str,
    n: int,
    prev: str | None,
    key: PrivateKey,
    kid: str,
    now: int,
) -> str:
    """The witness's countersignature (``typ`` ccx-witnessed-checkpoint+jwt) on a
    checkpoint it verified and found consistent: the ``n``-th it keeps for the node,
    after the one whose token hashes to ``prev``."""
    payload = {
        "iss": witness,
        "sub": checkpoint.node,
        "n": n,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "at": checkpoint.at,
        "witnessed_at": now,
        "checkpoint": checkpoint_hash(checkpoint.token),
        "prev": prev,
    }
    return sign_jws({"typ": WITNESSED_TYP, "kid": kid}, canonical_json(payload), key)


def verify_witnessed(
    token: str, *, resolve_key: KeyResolver, allowed_algs: Collection[str] = ("ES256", "EdDSA")
) -> WitnessedCheckpoint:
    """Verify a countersigned checkpoint with the witness's key (``resolve_key``).
    Raises a :class:`ProtocolError` subclass."""
    what = "witnessed checkpoint"
    claims = _verified(
        token, typ=WITNESSED_TYP, what=what, resolve_key=resolve_key, allowed_algs=allowed_algs
    )
    prev = claims.get("prev")
    if prev is not None and not (isinstance(prev, str) and _HEX64.fullmatch(prev)):
        raise InvalidClaim("witnessed checkpoint 'prev' must be SHA-256 hex or null")
    return WitnessedCheckpoint(
        token=token,
        witness=claims["iss"],
        member=_str(claims, "sub", what),
        n=_int(claims, "n", what, least=1),
        seq=_int(claims, "seq", what),
        hash=_hex(claims, "hash", what),
        at=_int(claims, "at", what),
        witnessed_at=_int(claims, "witnessed_at", what),
        checkpoint=_hex(claims, "checkpoint", what),
        prev=prev,
    )
