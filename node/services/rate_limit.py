"""Rate limits: a token bucket per key (issue 5: the service points' verifications).

In this process's memory; several workers each keep their own (docs/SECURITY.md,
known gap F)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["RateLimiter"]


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
