"""Issuing attestations and keeping their status (issue 4). Filled in by the issuing work."""

from __future__ import annotations

from sqlmodel import Session

from node.app import NodeState

__all__ = ["revoke_outstanding"]


def revoke_outstanding(
    session: Session, state: NodeState, resident_id: str, *, now: int, reason: str
) -> int:
    """Revoke every outstanding attestation of a resident at once (consent withdrawn);
    returns how many. Runs inside the caller's transaction."""
    raise NotImplementedError
