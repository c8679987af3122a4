"""Client credentials of departments and service points (DESIGN section 10).

The token is shown once, when the credentials are created; the node keeps only its
SHA-256 (``node.auth.hash_token``), so a copy of the database can't push records.
Creating and revoking credentials goes into the audit log, in the same transaction.
"""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from node.auth import hash_token
from node.errors import NodeError
from node.models import Client
from node.services import audit

__all__ = ["create_client", "list_clients", "revoke_client"]


def create_client(
    session: Session,
    *,
    client_id: str,
    department: str,
    scopes: list[str],
    actor: str,
    now: int,
) -> tuple[Client, str]:
    """Create credentials and commit; returns the row and the token (its only copy).

    Raises ``NodeError`` 409 ``client_exists`` if the id is taken (revoked ids too: an
    id names one party for good, so audit entries stay unambiguous)."""
    token = secrets.token_urlsafe(32)
    client = Client(
        id=client_id,
        department=department,
        token_hash=hash_token(token),
        scopes=sorted(set(scopes)),
        created_at=now,
    )
    if session.get(Client, client_id) is not None:
        raise NodeError("client_exists", f"client {client_id!r} exists already", status=409)
    session.add(client)
    try:
        audit.append(
            session,
            actor=actor,
            action="client.created",
            subject=client_id,
            details={"department": department, "scopes": client.scopes},
            now=now,
        )
        session.commit()
    except IntegrityError as exc:  # created at the same moment by another request
        session.rollback()
        raise NodeError(
            "client_exists", f"client {client_id!r} exists already", status=409
        ) from exc
    session.refresh(client)
    return client, token


def revoke_client(session: Session, client_id: str, *, actor: str, now: int) -> Client:
    """Revoke credentials at once and commit (revoking twice keeps the first time).

    Raises ``NodeError`` 404 ``client_not_found``."""
    client = session.get(Client, client_id)
    if client is None:
        raise NodeError("client_not_found", f"no client {client_id!r}", status=404)
    if client.revoked_at is None:
        client.revoked_at = now
        session.add(client)
        audit.append(
            session,
            actor=actor,
            action="client.revoked",
            subject=client_id,
            details={"department": client.department},
            now=now,
        )
        session.commit()
        session.refresh(client)
    return client


def list_clients(session: Session, *, revoked: bool = False) -> list[Client]:
    """Every client's credentials (never a token: only its hash is stored), by id; the
    revoked ones too when ``revoked``. An operator's view of who may push, verify or act
    as an admin (docs/SECURITY.md, section 13)."""
    query = select(Client).order_by(col(Client.id))
    if not revoked:
        query = query.where(col(Client.revoked_at).is_(None))
    return list(session.exec(query).all())
