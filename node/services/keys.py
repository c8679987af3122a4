"""Rotating the node's signing key (DESIGN section 7, docs/PROTOCOL.md "Key rotation").

The keyring holds an active key (signs), a next key (published ahead, in the JWKS and,
with issue 5, in the alliance registry) and retired keys (verify until the last
attestation they signed has expired). A rotation promotes next to active, retires the
active key for ``overlap`` seconds (by default an attestation's longest life plus a
day), makes a new next key, writes the keyring file atomically and logs the kids in
the audit log. Worker processes pick the new file up within seconds
(``NodeState.signing_keys``).

Verifiers in the alliance take keys only from the registry, so the next key must be in
a registry version in effect before a rotation; until the node follows a registry
(issue 5) that is the operator's check, stated in the endpoint's documentation.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlmodel import Session

from keys import DEFAULT_OVERLAP, Keyring
from node.errors import NodeError
from node.services import audit
from node.services._locking import hold_lock
from node.services.registry import RegistryFollower
from node.settings import Settings
from node.state import NodeState, load_keyring, save_keyring

__all__ = ["Rotation", "require_next_key_in_registry", "rotate_node_key", "rotate_signing_key"]

log = logging.getLogger("ccx.node")


@dataclass(frozen=True, slots=True)
class Rotation:
    active_kid: str
    next_kid: str
    retired_kid: str
    retired_until: int


def rotate_signing_key(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    now: int,
    overlap: int = DEFAULT_OVERLAP,
) -> tuple[Keyring, Rotation]:
    """Rotate the node's keyring file and log it (committed); returns the new keyring
    and what changed.

    Two rotations at once take turns (the lock ``keys``), each starting from the file
    as the other left it. The file is replaced before the audit entry commits: a failed
    write leaves both as they were; a commit failing after the write (the database gone
    at that instant) would leave a rotation unlogged, which ``ccx audit verify`` can't
    see, so the kids also go to the structured log first.
    """
    hold_lock(session, "keys")
    keyring = load_keyring(settings)
    rotated = keyring.rotate(now=now, overlap=overlap)
    done = Rotation(
        active_kid=rotated.active.kid,
        next_kid=rotated.next.kid if rotated.next else "",
        retired_kid=keyring.active.kid,
        retired_until=now + overlap,
    )
    details = {
        "active_kid": done.active_kid,
        "next_kid": done.next_kid,
        "retired_kid": done.retired_kid,
        "retired_until": done.retired_until,
    }
    log.info(json.dumps({"event": "keys_rotated", **details}))
    save_keyring(settings, rotated)
    audit.append(
        session, actor=actor, action="keys.rotated", subject=None, details=details, now=now
    )
    session.commit()
    return rotated, done


def require_next_key_in_registry(
    follower: RegistryFollower | None, node_id: str, next_kid: str | None, *, now: int
) -> None:
    """Refuse a rotation (409 ``next_key_not_in_registry``) while the registry in effect
    does not list this node's next key: verifiers take issuer keys from the registry
    alone, so attestations signed by an unlisted key would be refused everywhere. A node
    that follows no registry (``follower`` None: no pinned root key) is not checked."""
    if follower is None:
        return
    registry = follower.in_effect(now)
    if registry is None:
        raise NodeError(
            "registry_unavailable", "no alliance registry is in effect to check against", status=503
        )
    member = registry.members.get(node_id)
    if member is None or next_kid is None or next_kid not in member.keys:
        missing = "this node" if member is None else f"the next key {next_kid}"
        raise NodeError(
            "next_key_not_in_registry",
            f"{missing} is not in registry version {registry.version}: have the alliance "
            "publish it first (ccx alliance keys, then publish), then rotate",
            status=409,
        )


def rotate_node_key(session: Session, state: NodeState, *, actor: str, now: int) -> Rotation:
    """Rotate the running node's key (:func:`rotate_signing_key`) and sign with the new
    keyring in this process at once; other workers follow within seconds. Refused while
    the registry in effect does not list the next key (:func:`require_next_key_in_registry`)."""
    upcoming = state.signing_keys().next
    require_next_key_in_registry(
        state.follower,
        state.settings.node_id,
        upcoming.kid if upcoming else None,
        now=now,
    )
    state.keyring, done = rotate_signing_key(session, state.settings, actor=actor, now=now)
    return done
