"""Rate limits: token buckets (issue 5: the service points' verifications; issue 17, gap
F: residents, clients, unauthenticated callers and failed authentications).

:class:`RateLimiter` is one worker's bucket per key, in memory (the service points'
verifications, ``CCX_VERIFY_RATE``). :class:`SharedRateLimits` holds the node's limits
for every worker and process at once, in the database (``rate_bucket``), without a
database write per request: a worker **leases** a few tokens at a time from the shared
bucket (one transaction: refill by the time passed, take at most the lease, write back)
and spends them from memory. Tokens are only ever taken from the shared bucket, so the
whole node never lets more through than ``burst + rate * t`` over any ``t`` seconds
(no overshoot); the price is an undershoot: a lease a worker has not spent within
``LEASE_SECONDS`` is dropped, so at most ``workers * lease`` tokens a key may be out of
reach for a second. A lease is ``ceil(rate * LEASE_SECONDS)`` tokens, at most a quarter
of the burst: a caller at its full rate costs each worker about one transaction a
second, whatever the rate (docs/PERFORMANCE.md). A refused lease is remembered until the
bucket would hold a token again, so a flooding caller costs each worker one transaction
per wait, not one per request.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from node.models import RateBucket
from node.services._locking import lock_connection

__all__ = ["LEASE_SECONDS", "NEED_LEASE", "Limit", "NeedLease", "RateLimiter", "SharedRateLimits"]

LEASE_SECONDS = 1  # how long a worker may spend what it leased
PURGE_EVERY = 1000  # leases between two deletions of idle buckets, per worker
IDLE_SECONDS = 3600  # a bucket untouched this long is deleted (it would be full again)
_MEMORY_MAX = 100_000  # keys remembered per worker before the memory is cleared
_TABLE = cast(Table, RateBucket.__table__)  # type: ignore[attr-defined]


@dataclass
class RateLimiter:
    """A token bucket per client, in this process's memory: ``burst`` requests at once,
    refilled at ``rate`` a second. ``take`` returns None, or the seconds to wait."""

    rate: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # tokens, at
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, key: str, now: float) -> float | None:
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


@dataclass(frozen=True, slots=True)
class Limit:
    """``burst`` requests at once, refilled at ``rate`` a second."""

    rate: float
    burst: int

    @property
    def lease(self) -> int:
        """Tokens a worker takes from the shared bucket at a time."""
        return max(1, min(self.burst // 4, math.ceil(self.rate * LEASE_SECONDS)))


class NeedLease:
    """What :meth:`SharedRateLimits.take_local` answers when a new lease is needed."""


NEED_LEASE = NeedLease()


class SharedRateLimits:
    """The node's token buckets, shared through the database by every worker and
    process; per audience (``resident``, ``client``, ...) a :class:`Limit`.

    :meth:`take_local` answers from this worker's memory (no I/O: call it from the
    event loop); when it answers ``NEED_LEASE``, :meth:`take_leased` asks the database
    (blocking: call it from a thread). Both return None (go on) or the seconds to wait.
    """

    def __init__(self, engine: Engine, limits: Mapping[str, Limit]) -> None:
        self.engine, self.limits = engine, dict(limits)
        self._leases: dict[str, tuple[int, int]] = {}  # key -> (tokens left, good until)
        self._blocked: dict[str, int] = {}  # key -> refused until (node clock)
        self._leased = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(audience: str, caller: str) -> str:
        """The bucket's row key: a digest, so the table names no resident or address."""
        return hashlib.sha256(f"{audience}\x00{caller}".encode("utf-8", "replace")).hexdigest()

    def blocked(self, audience: str, caller: str, now: int) -> int | None:
        """Seconds until ``caller``'s bucket holds a token again, as this worker last
        learnt; None when it did not learn it was empty."""
        until = self._blocked.get(self.key(audience, caller))
        return None if until is None or until <= now else until - now

    def take_local(self, audience: str, caller: str, now: int) -> float | NeedLease | None:
        """One token from this worker's lease of ``caller``'s bucket."""
        key = self.key(audience, caller)
        with self._lock:
            until = self._blocked.get(key)
            if until is not None:
                if until > now:
                    return float(until - now)
                del self._blocked[key]
            left, good_until = self._leases.get(key, (0, 0))
            if left > 0 and now <= good_until:
                self._leases[key] = (left - 1, good_until)
                return None
        return NEED_LEASE

    def take_leased(self, audience: str, caller: str, now: int) -> float | None:
        """One token, with a new lease from the shared bucket (a database transaction)."""
        limit = self.limits[audience]
        key = self.key(audience, caller)
        granted, tokens = self._lease(key, limit, now)
        with self._lock:
            if len(self._leases) > _MEMORY_MAX or len(self._blocked) > _MEMORY_MAX:
                self._leases.clear()
                self._blocked.clear()
            if granted == 0:
                wait = max(1, math.ceil((1.0 - tokens) / limit.rate))
                self._blocked[key] = now + wait
                return float(wait)
            self._leases[key] = (granted - 1, now + LEASE_SECONDS)
            self._leased += 1
            purge = self._leased % PURGE_EVERY == 0
        if purge:
            self._purge(now)
        return None

    def _lease(self, key: str, limit: Limit, now: int) -> tuple[int, float]:
        """Refill ``key``'s shared bucket to ``now``, take up to a lease: (granted, the
        tokens there were). One transaction; the row is locked while it runs."""
        with self.engine.begin() as connection:
            dialect = connection.dialect.name
            if dialect == "sqlite":  # one writer at a time: take the lock before reading
                lock_connection(connection, "rate_bucket")
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            connection.execute(
                insert(_TABLE)
                .values(key=key, tokens=float(limit.burst), updated_at=now)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            row = connection.execute(
                select(_TABLE.c.tokens, _TABLE.c.updated_at)
                .where(_TABLE.c.key == key)
                .with_for_update()
            ).one()
            elapsed = max(0, now - row.updated_at)  # another process's clock may be ahead
            tokens = min(float(limit.burst), row.tokens + elapsed * limit.rate)
            granted = min(limit.lease, math.floor(tokens))
            connection.execute(
                update(_TABLE)
                .where(_TABLE.c.key == key)
                .values(tokens=tokens - granted, updated_at=max(now, row.updated_at))
            )
        return granted, tokens

    def _purge(self, now: int) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(_TABLE).where(_TABLE.c.updated_at < now - IDLE_SECONDS))
