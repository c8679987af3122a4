"""Table models (SQLModel). API bodies live with their routers; these are rows only.

Times are integer seconds since the epoch (UTC), as everywhere in the protocol. Every
change to these tables goes with an Alembic migration in node/migrations/versions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = [
    "Attestation",
    "AuditEntry",
    "Client",
    "Consent",
    "DistributionSnapshot",
    "Nonce",
    "Objection",
    "RateBucket",
    "Record",
    "Resident",
    "Score",
    "ScoreSnapshot",
    "StatusListRow",
]


# What a text column can hold: PostgreSQL refuses NUL (U+0000) in text, so free text from
# a request (a note, a purpose, a reason) is refused with this pattern (422) before it
# reaches a row, rather than failing at the database (a 500; the fuzz tests found it).
STORABLE_TEXT = r"^[^\x00]*$"


class Resident(SQLModel, table=True):
    """A resident known to this node (by the subject her identity provider gives)."""

    id: str = Field(primary_key=True, max_length=128)
    created_at: int = Field(sa_type=BigInteger)


class Record(SQLModel, table=True):
    """A credit record pushed by a department. Raw records never leave the node."""

    __table_args__ = (
        UniqueConstraint("department", "record_id", name="uq_record_department_id"),
        Index("ix_record_client_recorded", "client_id", "recorded_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    department: str = Field(max_length=64, index=True)
    # the client credentials it was pushed with (null before migration 0006)
    client_id: str | None = Field(default=None, max_length=64)
    record_id: str = Field(max_length=128)
    resident_id: str = Field(max_length=128, index=True)
    kind: str = Field(max_length=64)
    occurred_at: int = Field(sa_type=BigInteger)
    recorded_at: int = Field(sa_type=BigInteger)
    points: float | None = None  # overrides the kind's points where the model allows it
    repairs: str | None = Field(default=None, max_length=128)  # record_id this repairs
    # A repair's: the department of the record it repairs, resolved and checked when it
    # was pushed (null before migration 0003 where that could not be told: it repairs
    # nothing). With ``repairs`` it names one row for good (node.services.scoring).
    repairs_department: str | None = Field(default=None, max_length=64)
    status: str = Field(default="active", max_length=16)  # active | objected | removed
    note: str | None = Field(default=None, max_length=500)


class Score(SQLModel, table=True):
    """A resident's current score, kept up to date on every new record."""

    resident_id: str = Field(primary_key=True, max_length=128)
    score: float
    by_dimension: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    computed_at: int = Field(sa_type=BigInteger)
    model_version: str = Field(max_length=64)


class ScoreSnapshot(SQLModel, table=True):
    """The monthly snapshot of every resident's score."""

    month: str = Field(primary_key=True, max_length=7)  # YYYY-MM
    resident_id: str = Field(primary_key=True, max_length=128)
    score: float


class DistributionSnapshot(SQLModel, table=True):
    """The monthly distribution summary the alliance needs (a histogram, no residents)."""

    month: str = Field(primary_key=True, max_length=7)
    model_version: str = Field(max_length=64)
    counts: list[int] = Field(sa_column=Column(JSON, nullable=False))
    created_at: int = Field(sa_type=BigInteger)


class Consent(SQLModel, table=True):
    """A consent: ``open_score``, or ``share_alliance`` naming recipients and purpose."""

    id: int | None = Field(default=None, primary_key=True)
    resident_id: str = Field(max_length=128, index=True)
    kind: str = Field(max_length=32)
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    purpose: str | None = Field(default=None, max_length=500)
    granted_at: int = Field(sa_type=BigInteger)
    withdrawn_at: int | None = Field(default=None, sa_type=BigInteger)


class StatusListRow(SQLModel, table=True):
    """One status list: its bytes as draft-ietf-oauth-status-list lays them out."""

    id: int = Field(primary_key=True)
    bits: int
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: int = Field(sa_type=BigInteger)


class Attestation(SQLModel, table=True):
    """An issued attestation: what is needed to revoke it, never the token itself."""

    __table_args__ = (
        UniqueConstraint("status_list_id", "status_idx", name="uq_attestation_status_idx"),
    )

    id: int | None = Field(default=None, primary_key=True)
    resident_id: str = Field(max_length=128, index=True)
    status_list_id: int
    status_idx: int
    holder_kid: str = Field(max_length=64)
    band: str = Field(max_length=32)
    # The attested score on the alliance scale (null before migration 0002): a fall
    # across one of the scale's thresholds revokes, as a fall of band does.
    alliance_score: int | None = None
    issued_at: int = Field(sa_type=BigInteger)
    expires_at: int = Field(sa_type=BigInteger)
    status: str = Field(default="valid", max_length=16)  # valid | revoked | suspended
    # credit_standing | domestic_service (issue 18, migration 0008): a withdrawn consent
    # revokes its own type's attestations only, the band check the credit standing's
    credential: str = Field(
        default="credit_standing",
        max_length=32,
        sa_column_kwargs={"server_default": "credit_standing"},
    )


class Nonce(SQLModel, table=True):
    """A single-use, short-lived secret, kept as its SHA-256 (proof-of-possession nonces,
    verification challenges, OpenID4VCI's codes, c_nonces and access tokens), with what
    its grant needs beside it in ``data``."""

    value: str = Field(primary_key=True, max_length=64)
    purpose: str = Field(max_length=32)
    subject: str | None = Field(default=None, max_length=128)
    expires_at: int = Field(sa_type=BigInteger)
    used_at: int | None = Field(default=None, sa_type=BigInteger)
    data: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class Client(SQLModel, table=True):
    """Client credentials of a department or service point; the token is stored hashed."""

    id: str = Field(primary_key=True, max_length=64)
    department: str = Field(max_length=64)
    token_hash: str = Field(max_length=64, unique=True)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: int = Field(sa_type=BigInteger)
    revoked_at: int | None = Field(default=None, sa_type=BigInteger)
    expires_at: int | None = Field(default=None, sa_type=BigInteger)  # null: no expiry


class RateBucket(SQLModel, table=True):
    """A token bucket shared by every worker and process of a node (issue 17, gap F):
    ``tokens`` left at ``updated_at``. ``key`` is the SHA-256 of the audience and the
    caller (a resident, a client, an address), so the table names no one. Workers lease
    tokens from it in small batches (node/services/rate_limit.py)."""

    __tablename__ = "rate_bucket"

    key: str = Field(primary_key=True, max_length=64)
    tokens: float
    updated_at: int = Field(sa_type=BigInteger, index=True)


class Objection(SQLModel, table=True):
    """A resident's objection (异议) to a record; the record is flagged until resolved."""

    id: int | None = Field(default=None, primary_key=True)
    resident_id: str = Field(max_length=128, index=True)
    record_pk: int = Field(index=True)
    reason: str = Field(max_length=1000)
    status: str = Field(default="open", max_length=16)  # open | upheld | rejected
    created_at: int = Field(sa_type=BigInteger)
    resolved_at: int | None = Field(default=None, sa_type=BigInteger)
    resolution: str | None = Field(default=None, max_length=1000)


class AuditEntry(SQLModel, table=True):
    """One entry of the hash-chained audit log (``ccx audit verify`` checks the chain)."""

    # a service point's day of decisions (GET /v1/presentation-requests, the kiosk)
    __table_args__ = (Index("ix_auditentry_actor_at", "actor", "at"),)

    seq: int = Field(primary_key=True)
    at: int = Field(sa_type=BigInteger)
    actor: str = Field(max_length=128)
    action: str = Field(max_length=64)
    subject: str | None = Field(default=None, max_length=128)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
