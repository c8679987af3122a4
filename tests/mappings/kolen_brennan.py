"""Independent oracles for the tests: Kolen & Brennan's definitions, written plainly.

Kolen, M. J., & Brennan, R. L. (2004). *Test Equating, Scaling, and Linking* (2nd ed.),
chapter 2. Scores are the integer points 0..K; each is spread uniformly over
[x - .5, x + .5]. These loops deliberately share no code with ``mappings/`` so that a
mistake there cannot hide in the expected value of a test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def relative(counts: Sequence[float]) -> list[float]:
    total = 0.0
    for c in counts:
        total += float(c)
    return [float(c) / total for c in counts]


def cumulative(counts: Sequence[float]) -> list[float]:
    """F(x) for x = 0..K, the proportion at or below x."""
    out = []
    running = 0.0
    for f in relative(counts):
        running += f
        out.append(running)
    out[-1] = 1.0
    return out


def percentile_rank(counts: Sequence[float], x: float) -> float:
    """K&B eq. 2.14: P(x) = 100 [F(x* - 1) + (x - x* + .5) f(x*)], x* the integer nearest x."""
    size = len(counts)
    if x < -0.5:
        return 0.0
    if x >= size - 0.5:
        return 100.0
    f = relative(counts)
    nearest = math.floor(x + 0.5)
    below = 0.0
    for i in range(nearest):
        below += f[i]
    return 100.0 * (below + (x - nearest + 0.5) * f[nearest])


def inverse_percentile_rank(counts: Sequence[float], rank: float) -> float:
    """K&B eqs. 2.18 (upper form) and 2.19 (lower form), averaged (K&B's recommendation)."""
    return InversePercentileRank(counts)(rank)


class InversePercentileRank:
    """Q, the inverse percentile rank of one distribution (its cumulative computed once).

    Upper form (eq. 2.18): the smallest score j with F(j) > p, K + .5 at p = 1. Lower
    form (eq. 2.19): the largest score k with F(k) < p (k = -1, F = 0 when none), -.5 at
    p = 0. The result is their average, which differs from either only on a plateau of F.
    """

    def __init__(self, counts: Sequence[float]) -> None:
        self.counts = list(counts)
        self.f = relative(self.counts)
        self.F = cumulative(self.counts)

    def __call__(self, rank: float) -> float:
        size, f, F = len(self.f), self.f, self.F
        # Ranks lie in [0, 100] by definition; a rank computed in floating point can
        # land a hair outside (100.00000000000001), as the library also allows for.
        p = min(max(rank / 100.0, 0.0), 1.0)
        if p >= 1.0:
            upper = size - 0.5
        else:
            j = 0
            while F[j] <= p:
                j += 1
            upper = (p - (F[j - 1] if j > 0 else 0.0)) / f[j] + j - 0.5
        if p <= 0.0:
            lower = -0.5
        else:
            k = size - 1
            while k >= 0 and F[k] >= p:
                k -= 1
            lower = (p - (F[k] if k >= 0 else 0.0)) / f[k + 1] + k + 0.5
        return (upper + lower) / 2.0


def raw_moments(counts: Sequence[float], degree: int) -> list[float]:
    """E[X^i] for i = 1..degree, X the score point index."""
    f = relative(counts)
    return [sum(p * x**i for x, p in enumerate(f)) for i in range(1, degree + 1)]


def comonotone_joint(rows: Sequence[float], columns: Sequence[float]) -> list[list[float]]:
    """A joint histogram with the given margins and perfect rank correlation (the
    Frechet upper bound, filled by the north-west corner rule). ``columns`` is rescaled
    to the total of ``rows``."""
    total = sum(rows)
    column_total = sum(columns)
    remaining_rows = [float(r) for r in rows]
    remaining_columns = [float(c) * total / column_total for c in columns]
    joint = [[0.0] * len(columns) for _ in rows]
    i = j = 0
    while i < len(rows) and j < len(columns):
        mass = min(remaining_rows[i], remaining_columns[j])
        joint[i][j] += mass
        remaining_rows[i] -= mass
        remaining_columns[j] -= mass
        if remaining_rows[i] <= 1e-12 * total:
            i += 1
        else:
            j += 1
    return joint
