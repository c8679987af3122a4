"""Client credentials of departments and service points (DESIGN section 10).

The token is shown once, when the credentials are created; the node keeps only its
SHA-256 (``node.auth.hash_token``), so a copy of the database can't push records.
Creating and revoking credentials goes into the audit log, in the same transaction.

Credentials expire (issue 17, docs/SECURITY.md section 13): at most
``CLIENT_MAX_LIFETIME`` after they are made, by default then; ``node.auth`` refuses
them from that second on, like revoked ones. No client is an admin: the ``admin`` scope
is refused here, and the admin routes take the admin token alone.
"""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from node.auth import hash_token
from node.errors import NodeError
from node.models import Client
from node.services import audit

__all__ = [
    "CLIENT_MAX_LIFETIME",
    "REFUSED_SCOPES",
    "create_client",
    "list_clients",
    "revoke_client",
]

# Two years: a yearly renewal of a department's or service point's credentials has a
# year's margin, and a token forgotten in a script stops working by itself.
CLIENT_MAX_LIFETIME = 2 * 365 * 86400
# The admin token (CCX_ADMIN_TOKEN_HASH) is the node's only admin: a client holding
# "admin" would outlive a change of that token (known gap H, closed in issue 17).
REFUSED_SCOPES = frozenset({"admin"})


def client_expiry(now: int, *, expires_in: int | None, expires_at: int | None) -> int:
    """When credentials made at ``now`` expire: ``expires_at``, or ``now + expires_in``,
    or by default ``now + CLIENT_MAX_LIFETIME``.

    Raises ``NodeError`` 422 ``invalid_expiry`` for both given or a time not after
    ``now``, 422 ``client_lifetime_too_long`` past ``CLIENT_MAX_LIFETIME``."""
    if expires_in is not None and expires_at is not None:
        raise NodeError(
            "invalid_expiry", "give expires_in or expires_at, not both", status=422,
            details={"field": "expires_in"},
        )  # fmt: skip
    expiry = (
        expires_at
        if expires_at is not None
        else now + (expires_in if expires_in is not None else CLIENT_MAX_LIFETIME)
    )
    if expiry <= now:
        raise NodeError(
            "invalid_expiry", "the credentials would expire before they are made", status=422,
            details={"field": "expires_at" if expires_at is not None else "expires_in"},
        )  # fmt: skip
    if expiry - now > CLIENT_MAX_LIFETIME:
        raise NodeError(
            "client_lifetime_too_long",
            f"credentials live at most {CLIENT_MAX_LIFETIME // 86400} days: make new ones then",
            status=422,
            details={"field": "expires_at" if expires_at is not None else "expires_in"},
        )
    return expiry


def create_client(
    session: Session,
    *,
    client_id: str,
    department: str,
    scopes: list[str],
    actor: str,
    now: int,
    expires_in: int | None = None,
    expires_at: int | None = None,
) -> tuple[Client, str]:
    """Create credentials and commit; returns the row and the token (its only copy). They
    expire as :func:`client_expiry` says (by default ``CLIENT_MAX_LIFETIME`` from now).

    Raises ``NodeError`` 422 ``scope_not_granted`` for the ``admin`` scope, the errors of
    :func:`client_expiry`, 409 ``client_exists`` if the id is taken (revoked ids too:
    an id names one party for good, so audit entries stay unambiguous)."""
    refused = sorted(REFUSED_SCOPES.intersection(scopes))
    if refused:
        raise NodeError(
            "scope_not_granted",
            "no client is an admin: the admin routes take the admin token alone "
            "(CCX_ADMIN_TOKEN_HASH)",
            status=422,
            details={"field": "scopes", "refused": refused},
        )
    expiry = client_expiry(now, expires_in=expires_in, expires_at=expires_at)
    token = secrets.token_urlsafe(32)
    client = Client(
        id=client_id,
        department=department,
        token_hash=hash_token(token),
        scopes=sorted(set(scopes)),
        created_at=now,
        expires_at=expiry,
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
            details={"department": department, "scopes": client.scopes, "expires_at": expiry},
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


def list_clients(session: Session, *, now: int, revoked: bool = False) -> list[Client]:
    """Every client's credentials in force at ``now`` (never a token: only its hash is
    stored), by id; the revoked and expired ones too when ``revoked``. An operator's view
    of who may push or verify (docs/SECURITY.md, section 13)."""
    query = select(Client).order_by(col(Client.id))
    if not revoked:
        query = query.where(
            col(Client.revoked_at).is_(None),
            col(Client.expires_at).is_(None) | (col(Client.expires_at) > now),
        )
    return list(session.exec(query).all())
