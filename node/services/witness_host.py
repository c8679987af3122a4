"""The alliance host as the witness of its members' audit heads (issue 17, gap I).

A member sends a checkpoint (protocol.sign_checkpoint): its audit head, signed with its
active key, naming the last checkpoint the witness countersigned for it and the hash
its log holds at that number today. :func:`receive_checkpoint` verifies the signature
against the member's keys in the registry the host publishes (``registry/current.jwt``
of the alliance folder, checked against ``root.jwk``), checks consistency with the last
countersigned checkpoint, countersigns with the host's own signing key and appends the
pair to ``<alliance_dir>/witness/<member>.jsonl`` (one line each, fsync'd, never
rewritten; ``n`` counts the lines and each countersigned token names the SHA-256 of the
one before, so the file is a chain of its own). Consistency, for a hash chain: the
member's log must hold, at the last witnessed ``seq``, the hash the witness
countersigned there; rewritten history changes it (every hash after a changed entry
changes), and the checkpoint is refused as ``checkpoint_fork``, its signed claim kept in
``<member>.forks.jsonl`` as evidence. The entries themselves never leave the member.

Refusals: an unknown member, a key not in the registry or a bad signature (the
protocol's codes), ``checkpoint_replayed`` (409: older than the last countersigned),
``checkpoint_unlinked`` (409: it does not name the last countersigned checkpoint; the
answer carries it, so the member can link to it and send again), ``checkpoint_fork``
(409). A checkpoint of the same head as the last countersigned one is answered with that
one, 200, and nothing is appended (an idle node's checkpoints do not grow the file).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import protocol as P
from keys import ManagedKey
from node.errors import NodeError

__all__ = [
    "FUTURE_LEEWAY",
    "WITNESS_FOLDER",
    "member_log",
    "receive_checkpoint",
    "witnessed_checkpoints",
]

WITNESS_FOLDER = "witness"
FUTURE_LEEWAY = 300  # seconds a member's clock may run ahead of the host's
MAX_PAGE = 1000
MAX_FORKS_SHOWN = 20
_TAIL = 16 * 1024  # bytes read from the end of a log to find its last line (lines < 4 KiB)


def member_log(folder: Path, member: str) -> Path:
    """The witness's append-only file for ``member`` (its node id, hashed: a file name)."""
    name = hashlib.sha256(member.encode("utf-8")).hexdigest()[:32]
    return folder / WITNESS_FOLDER / f"{name}.jsonl"


def _registry(folder: Path, now: int) -> P.Registry:
    try:
        root = P.public_key_from_jwk(json.loads((folder / "root.jwk").read_text("utf-8")))
        token = (folder / "registry" / "current.jwt").read_text("ascii").strip()
    except (OSError, ValueError, UnicodeDecodeError, P.ProtocolError) as exc:
        raise NodeError(
            "registry_unavailable",
            "the alliance host has no published registry to check members' keys against",
            status=503,
        ) from exc
    return P.verify_registry(token, root_key=root, now=now)


@contextmanager
def _locked(path: Path) -> Iterator[IO[bytes]]:
    """The log open for appending, held exclusively (workers of one host take turns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield file
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _parsed(raw: bytes) -> dict[str, Any] | None:
    # a line cut short by a crash mid-write is never answered nor counted: skipped
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    return line if isinstance(line, dict) else None


def _last_line(file: IO[bytes]) -> dict[str, Any] | None:
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - _TAIL))
    for raw in reversed(file.read().split(b"\n")):
        line = _parsed(raw) if raw.strip() else None
        if line is not None:
            return line
    return None


def _append(file: IO[bytes], line: dict[str, Any]) -> None:
    size = file.seek(0, os.SEEK_END)
    if size:  # after a torn last line, start a new one (the fragment stays, unread)
        file.seek(size - 1)
        torn = file.read(1) != b"\n"
        file.seek(0, os.SEEK_END)
        if torn:
            file.write(b"\n")
    file.write(json.dumps(line, separators=(",", ":")).encode("ascii") + b"\n")
    file.flush()
    os.fsync(file.fileno())


def _keep_evidence(
    folder: Path, checkpoint: P.Checkpoint, last: dict[str, Any], *, reason: str, now: int
) -> None:
    witnessed = checkpoint.witnessed
    evidence = {
        "received_at": now,
        "reason": reason,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "witnessed": None if witnessed is None else {"seq": witnessed[0], "hash": witnessed[1]},
        "countersigned": {"n": last["n"], "seq": last["seq"], "hash": last["hash"]},
        "checkpoint": checkpoint.token,  # signed by the member: its own word, kept
    }
    path = member_log(folder, checkpoint.node).with_suffix(".forks.jsonl")
    with _locked(path) as file:
        before = _last_line(file)
        # the same conflicting claim, sent again every interval, is kept once
        same = ("seq", "hash", "witnessed")
        if before is None or any(before[k] != evidence[k] for k in same):
            _append(file, evidence)


def _summary(line: dict[str, Any]) -> dict[str, Any]:
    return {k: line[k] for k in ("n", "seq", "hash", "at", "witnessed_at")}


def receive_checkpoint(
    folder: Path, token: str, *, witness: str, key: ManagedKey, now: int
) -> tuple[dict[str, Any], bool]:
    """Verify, check and countersign a member's checkpoint (the module docstring says
    how); the witnessed line (``n``, ``seq``, ``hash``, ``at``, ``witnessed_at``,
    ``checkpoint``, ``cosigned``) and whether it was appended now (False: the same head
    as the last one, answered again). Raises a ProtocolError for a bad token or key,
    NodeError 409 ``checkpoint_replayed`` / ``checkpoint_unlinked`` / ``checkpoint_fork``,
    NodeError 422 ``invalid_checkpoint`` for a time ahead of the host's clock."""
    registry = _registry(folder, now)
    checkpoint = P.verify_checkpoint(
        token,
        resolve_key=lambda iss, kid, alg: registry.resolve_issuer_key(iss, kid, alg, now=now),
    )
    if checkpoint.at > now + FUTURE_LEEWAY:
        raise NodeError(
            "invalid_checkpoint",
            f"the checkpoint is dated {checkpoint.at - now} s ahead of the witness's clock",
            status=422,
        )
    member = checkpoint.node
    with _locked(member_log(folder, member)) as file:
        last = _last_line(file)
        if last is not None:
            refusal = _inconsistency(checkpoint, last)
            if refusal is not None:
                code, message = refusal
                if code == "checkpoint_fork":
                    _keep_evidence(folder, checkpoint, last, reason=message, now=now)
                raise NodeError(code, message, status=409, details={"last": _summary(last)})
            if (checkpoint.seq, checkpoint.hash) == (last["seq"], last["hash"]):
                return last, False
        n = 1 if last is None else last["n"] + 1
        prev = None if last is None else P.checkpoint_hash(last["cosigned"])
        cosigned = P.cosign_checkpoint(
            checkpoint, witness=witness, n=n, prev=prev, key=key.private_key, kid=key.kid, now=now
        )
        line = {
            "n": n,
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "at": checkpoint.at,
            "witnessed_at": now,
            "checkpoint": checkpoint.token,
            "cosigned": cosigned,
        }
        _append(file, line)
    return line, True


def _inconsistency(checkpoint: P.Checkpoint, last: dict[str, Any]) -> tuple[str, str] | None:
    seq, head = last["seq"], last["hash"]
    if checkpoint.seq < seq:
        return (
            "checkpoint_replayed",
            f"the checkpoint's head {checkpoint.seq} is older than the last one countersigned "
            f"({seq}): a replay, or a history cut short",
        )
    if checkpoint.seq == seq and checkpoint.hash != head:
        return (
            "checkpoint_fork",
            f"the checkpoint's entry {seq} has another hash than the one countersigned: the "
            "history was rewritten",
        )
    if checkpoint.seq == seq:
        return None
    if checkpoint.witnessed is None or checkpoint.witnessed[0] != seq:
        return (
            "checkpoint_unlinked",
            f"the checkpoint must name the last one countersigned (entry {seq}) as witnessed",
        )
    if checkpoint.witnessed[1] != head:
        return (
            "checkpoint_fork",
            f"the member's log holds another hash at entry {seq} than the one countersigned "
            "there: its history was rewritten",
        )
    return None


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open("rb") as file:
            for raw in file:
                line = _parsed(raw) if raw.strip() else None
                if line is not None:
                    yield line
    except FileNotFoundError:
        return


def witnessed_checkpoints(folder: Path, member: str, *, after: int, limit: int) -> dict[str, Any]:
    """What the witness holds for ``member``: up to ``limit`` countersigned checkpoints
    with ``n > after`` (oldest first), the latest one, how many, and the last refused
    forks (their signed claims: evidence anyone can check)."""
    limit = max(0, min(limit, MAX_PAGE))
    page: list[dict[str, Any]] = []
    latest: dict[str, Any] | None = None
    more = False
    for line in _lines(member_log(folder, member)):
        latest = line
        if line["n"] > after:
            if len(page) < limit:
                page.append(line)
            else:
                more = True
    forks = list(_lines(member_log(folder, member).with_suffix(".forks.jsonl")))
    return {
        "member": member,
        "count": 0 if latest is None else latest["n"],
        "latest": latest,
        "checkpoints": page,
        "next_after": page[-1]["n"] if more and page else None,
        "forks": forks[-MAX_FORKS_SHOWN:],
    }
