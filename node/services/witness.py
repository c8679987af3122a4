"""This node's side of the witness (issue 17, gap I): checkpoints of its audit head sent
to the alliance host (``CCX_WITNESS_URL``), and its history checked against what the
host countersigned (``ccx audit verify``).

:func:`send_checkpoint` reads the head, and the hash the log holds today at the last
witnessed entry (kept in ``<data_dir>/witness.json``, else asked of the host), checks
that the entries between the two still link (:func:`node.services.audit.verify_chain`
from there), signs the checkpoint with the active key and posts it. Only hashes and
numbers leave the node, never an entry. A refusal is logged and the next interval tries
again; nothing here blocks the node. A checkpoint appends nothing to the audit log
(each would move the head it reports).

:func:`check_history` compares the local log with the countersigned checkpoints: the
hash at each witnessed ``seq`` must be the witnessed one; another hash is a fork (the
history was rewritten), a missing entry a history cut short.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import httpx
from sqlalchemy import Table
from sqlalchemy import select as core_select
from sqlmodel import Session

import protocol as P
from cli import write_atomically
from keys import ManagedKey
from node.models import AuditEntry
from node.services import audit
from node.settings import Settings
from node.state import NodeState

__all__ = [
    "CHECKPOINTS_PATH",
    "WITNESS_FILE",
    "HistoryCheck",
    "WitnessRecordError",
    "check_history",
    "fetch_witnessed",
    "make_checkpoint",
    "send_checkpoint",
    "verify_witness_record",
]

log = logging.getLogger("ccx.witness")

CHECKPOINTS_PATH = "/v1/alliance/witness/checkpoints"
WITNESS_FILE = "witness.json"
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
_AUDIT = cast(Table, AuditEntry.__table__)  # type: ignore[attr-defined]
_HASH_AT = core_select(_AUDIT.c.seq, _AUDIT.c.hash)

Outcome = Literal["witnessed", "unchanged", "refused", "fork", "unreachable", "broken"]


class WitnessRecordError(ValueError):
    """What the witness answered does not hold together (a bad countersignature, a gap
    or a broken link between its lines): ``code`` stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _witness_file(settings: Settings) -> Path:
    return settings.data_dir / WITNESS_FILE


def _last_witnessed(settings: Settings) -> dict[str, Any] | None:
    try:
        found = json.loads(_witness_file(settings).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("seq"), int) else None


def _remember(settings: Settings, line: dict[str, Any]) -> None:
    write_atomically(_witness_file(settings), json.dumps(line).encode("ascii"))


def _hashes_at(session: Session, seqs: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(seqs))
    found: dict[int, str] = {}
    connection = session.connection()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = connection.execute(_HASH_AT.where(_AUDIT.c.seq.in_(chunk))).all()
        found.update({seq: digest for seq, digest in rows})
    return found


@dataclass(frozen=True)
class Made:
    """A signed checkpoint and what it says."""

    token: str
    seq: int
    hash: str
    witnessed: tuple[int, str] | None
    diverged: bool  # the log's hash at the witnessed entry is not the countersigned one


def make_checkpoint(
    session: Session, *, node: str, key: ManagedKey, last: dict[str, Any] | None, now: int
) -> Made:
    """The checkpoint of the log's head, linked to ``last`` (the last countersigned line,
    or None). Raises WitnessRecordError ``audit_history_truncated`` when the log no longer
    holds the witnessed entry, ``audit_chain_broken`` when the entries after it do not
    link (the node must not vouch for them)."""
    seq, head = audit.read_head(session.connection())
    witnessed: tuple[int, str] | None = None
    diverged = False
    if last is not None:
        held = _hashes_at(session, [last["seq"]]).get(last["seq"]) if last["seq"] else None
        if last["seq"] and held is None:
            raise WitnessRecordError(
                "audit_history_truncated",
                f"the audit log no longer holds entry {last['seq']}, which was witnessed",
            )
        witnessed = (last["seq"], held or audit.GENESIS_HASH)
        diverged = witnessed[1] != last["hash"]
    check = audit.verify_chain(session, start=witnessed or (0, audit.GENESIS_HASH))
    if not check.ok:
        raise WitnessRecordError(
            "audit_chain_broken", f"the audit chain is broken at entry {check.first_bad_seq}"
        )
    token = P.sign_checkpoint(
        node=node, seq=seq, head_hash=head, witnessed=witnessed,
        key=key.private_key, kid=key.kid, now=now,
    )  # fmt: skip
    return Made(token, seq, head, witnessed, diverged)


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"http_{response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else f"http_{response.status_code}"


def send_checkpoint(state: NodeState, http: httpx.Client) -> Outcome:
    """Send one checkpoint to the witness and remember what it countersigned; the outcome.
    Never raises for the witness's or the network's failures: they are logged."""
    settings = state.settings
    assert settings.witness_url is not None
    base = settings.witness_url.rstrip("/")
    last = _last_witnessed(settings)
    for attempt in range(2):
        now = int(state.now())
        try:
            with Session(state.engine) as session:
                made = make_checkpoint(
                    session, node=settings.node_id, key=state.signing_keys().active,
                    last=last, now=now,
                )  # fmt: skip
        except WitnessRecordError as exc:
            _log("error", "witness_not_sent", code=exc.code, message=str(exc))
            return "broken"
        if made.diverged:
            _log("error", "witness_history_diverged", seq=made.witnessed and made.witnessed[0],
                 message="the audit log holds another hash at the last witnessed entry than "
                 "the witness countersigned: the history was rewritten")  # fmt: skip
        try:
            response = http.post(
                base + CHECKPOINTS_PATH, json={"checkpoint": made.token}, timeout=HTTP_TIMEOUT
            )
        except httpx.HTTPError as exc:
            _log("warning", "witness_unreachable", message=type(exc).__name__)
            return "unreachable"
        if response.status_code in (200, 201):
            try:
                line = response.json()
                if not isinstance(line, dict):
                    raise ValueError("not a JSON object")
                _remember(settings, line)
            except (ValueError, OSError) as exc:
                _log("warning", "witness_answer_unusable", message=type(exc).__name__)
                return "refused"
            _log("info", "witness_checkpoint", seq=made.seq, n=line.get("n"))
            return "witnessed" if response.status_code == 201 else "unchanged"
        code = _error_code(response)
        if code == "checkpoint_unlinked" and attempt == 0:
            # our note of the last countersigned one is missing or old: take the host's
            latest = _latest(http, base, settings.node_id)
            if latest is not None:
                _remember(settings, latest)
                last = latest
                continue
        level = "error" if code == "checkpoint_fork" else "warning"
        _log(level, "witness_refused", code=code, seq=made.seq)
        return "fork" if code == "checkpoint_fork" else "refused"
    return "refused"


def _latest(http: httpx.Client, base: str, member: str) -> dict[str, Any] | None:
    try:
        response = http.get(
            base + CHECKPOINTS_PATH, params={"member": member, "limit": "0"}, timeout=HTTP_TIMEOUT
        )
        found = response.json().get("latest") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) else None


def _log(level: str, event: str, **fields: Any) -> None:
    getattr(log, level)(json.dumps({"event": event, **fields}))


# --- checking the history against the witness ------------------------------------------


def fetch_witnessed(http: httpx.Client, witness_url: str, member: str) -> dict[str, Any]:
    """Everything the witness holds for ``member`` (every page), with the witness's keys
    (its ``/.well-known/jwks.json``) under ``witness_keys``: the document
    ``ccx audit verify --checkpoints`` reads. Raises httpx.HTTPError, ValueError."""
    base = witness_url.rstrip("/")
    lines: list[dict[str, Any]] = []
    after = 0
    while True:
        response = http.get(
            base + CHECKPOINTS_PATH,
            params={"member": member, "after": str(after), "limit": "1000"},
            timeout=HTTP_TIMEOUT,
        )
        response.raise_for_status()
        page: dict[str, Any] = response.json()
        lines += page["checkpoints"]
        if page.get("next_after") is None:
            break
        after = page["next_after"]
    keys = http.get(base + "/.well-known/jwks.json", timeout=HTTP_TIMEOUT)
    keys.raise_for_status()
    return {**page, "checkpoints": lines, "next_after": None, "witness_keys": keys.json()}


def verify_witness_record(record: dict[str, Any], *, member: str) -> list[P.WitnessedCheckpoint]:
    """The countersigned checkpoints of ``record`` (as :func:`fetch_witnessed` returns
    it), each verified with the witness's keys, for ``member``, numbered 1, 2, ... with
    no gap and each linked to the one before. Raises WitnessRecordError."""
    try:
        keys = {jwk["kid"]: P.public_key_from_jwk(jwk) for jwk in record["witness_keys"]["keys"]}
        lines = record["checkpoints"]
    except (KeyError, TypeError, P.ProtocolError) as exc:
        raise WitnessRecordError("invalid_witness_record", f"not a witness record: {exc}") from exc

    def resolve(iss: str, kid: str, alg: str) -> P.PublicKey:
        if kid not in keys:
            raise P.UnknownKid(f"the witness {iss} has no key {kid!r}")
        return keys[kid]

    found: list[P.WitnessedCheckpoint] = []
    prev: str | None = None
    for index, line in enumerate(lines, start=1):
        try:
            cosigned = P.verify_witnessed(line["cosigned"], resolve_key=resolve)
        except (KeyError, TypeError, P.ProtocolError) as exc:
            raise WitnessRecordError(
                "invalid_witness_record", f"countersigned checkpoint {index}: {exc}"
            ) from exc
        if cosigned.member != member or cosigned.n != index or cosigned.prev != prev:
            raise WitnessRecordError(
                "invalid_witness_record",
                f"countersigned checkpoint {index} is not the next of {member}'s record "
                "(another member's, a gap, or a line replaced)",
            )
        if cosigned.checkpoint != P.checkpoint_hash(line.get("checkpoint", "")):
            raise WitnessRecordError(
                "invalid_witness_record",
                f"countersigned checkpoint {index} does not name the checkpoint beside it",
            )
        prev = P.checkpoint_hash(cosigned.token)
        found.append(cosigned)
    return found


@dataclass
class HistoryCheck:
    """What :func:`check_history` found: forks (``seq``, witnessed hash, the log's hash
    or None when the entry is missing), in ``seq`` order."""

    checkpoints: int
    latest_seq: int | None
    forks: list[tuple[int, str, str | None]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.forks


def check_history(session: Session, witnessed: Sequence[P.WitnessedCheckpoint]) -> HistoryCheck:
    """Compare the local log with the witnessed checkpoints: at each witnessed ``seq``
    the log must hold the witnessed hash."""
    held = _hashes_at(session, (c.seq for c in witnessed if c.seq))
    check = HistoryCheck(len(witnessed), max((c.seq for c in witnessed), default=None))
    seen: set[int] = set()
    for cosigned in sorted(witnessed, key=lambda c: c.seq):
        if cosigned.seq in seen:
            continue
        seen.add(cosigned.seq)
        local = held.get(cosigned.seq) if cosigned.seq else audit.GENESIS_HASH
        if local != cosigned.hash:
            check.forks.append((cosigned.seq, cosigned.hash, local))
    return check
