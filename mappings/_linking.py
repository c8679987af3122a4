"""Equipercentile linking (Kolen & Brennan, *Test Equating, Scaling, and Linking*, ch. 2).

A score on scale X and a score on scale Y are equivalent when they have the same
percentile rank in their populations. Scores are the integer points 0..K of each
scale (a scale object maps its own values to these indices). Each score x is spread
uniformly over [x - .5, x + .5] (the continuisation), which makes the percentile rank
function continuous and piecewise linear; its inverse on Y gives the equivalent.

Every function here is pure: counts in, numpy arrays out; randomness (bootstrap) comes
in as a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from ._errors import MappingError

__all__ = [
    "Smoothing",
    "bootstrap_standard_errors",
    "check_counts",
    "inverse_percentile_rank",
    "link_chained_equipercentile",
    "link_equipercentile",
    "loglinear_smooth",
    "lord_standard_errors",
    "percentile_ranks",
    "smooth",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
Smoothing: TypeAlias = Literal["bump"] | tuple[Literal["loglinear"], int | Literal["aic"]] | None
BUMP = 1e-6  # relative mass added to every point by smoothing="bump" (K&B section 3.1)


def check_counts(counts: npt.ArrayLike, field: str) -> FloatArray:
    """Frequencies as a float array: one-dimensional, finite, non-negative, not all zero."""
    try:
        array = np.asarray(counts, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MappingError(field, "must be a list of numbers") from exc
    if array.ndim != 1 or array.size < 2:
        raise MappingError(field, "must be a list of at least two frequencies, one per score point")
    bad = np.flatnonzero(~np.isfinite(array) | (array < 0))
    if bad.size:
        raise MappingError(
            f"{field}[{bad[0]}]", f"must be a finite number >= 0, got {array[bad[0]]}"
        )
    if array.sum() <= 0:
        raise MappingError(field, "is empty: every frequency is zero")
    return array


def _cumulative(counts: FloatArray) -> FloatArray:
    cumulative = np.cumsum(counts)
    out: FloatArray = cumulative / cumulative[-1]
    out[-1] = 1.0  # exactly, whatever the rounding of the sum
    return out


def percentile_ranks(counts: npt.ArrayLike, scores: npt.ArrayLike | None = None) -> FloatArray:
    """Percentile ranks (0..100) of ``scores`` (default: every integer point), K&B eq. 2.14.

    For x* the integer nearest x, P(x) = 100 [F(x* - 1) + (x - x* + .5) f(x*)], 0 below
    -.5 and 100 from K + .5 up.
    """
    f = check_counts(counts, "counts")
    x = np.arange(f.size, dtype=np.float64) if scores is None else _finite(scores, "scores")
    return np.asarray(100.0 * _fractions(f, x), dtype=np.float64)


def inverse_percentile_rank(counts: npt.ArrayLike, ranks: npt.ArrayLike) -> FloatArray:
    """The scores of Y at percentile ranks ``ranks`` (0..100), K&B eqs. 2.17 to 2.19.

    The upper form uses the smallest score with G(y) > p, the lower form the largest with
    G(y) < p; they differ only where a rank falls on a plateau of G (empty Y points, and
    the ends), and the result is their average (K&B's recommendation, and what Equating
    Recipes does), so that an empty point does not pull the equivalent to one side.
    """
    g = check_counts(counts, "y_counts")
    return _inverse(g, _finite(ranks, "ranks") / 100.0)


def _table(values: npt.ArrayLike, field: str) -> FloatArray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MappingError(field, "must be a table of numbers [score][anchor]") from exc


def _finite(values: npt.ArrayLike, field: str) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MappingError(field, "must be numbers") from exc
    if not np.all(np.isfinite(array)):
        raise MappingError(field, "must be finite numbers")
    return array


def _fractions(f: FloatArray, x: FloatArray) -> FloatArray:
    """Percentile ranks as fractions 0..1 (the internal form: no x100 / /100 round trip,
    whose float noise would decide which side of a plateau of G a rank falls)."""
    F = _cumulative(f)
    relative = f / f.sum()
    nearest = np.clip(np.floor(x + 0.5), 0, f.size - 1).astype(np.int64)
    below = np.where(nearest > 0, F[np.maximum(nearest - 1, 0)], 0.0)
    within = np.clip(x - nearest + 0.5, 0.0, 1.0)
    p = below + within * relative[nearest]
    return np.asarray(
        np.where(x < -0.5, 0.0, np.where(x >= f.size - 0.5, 1.0, p)), dtype=np.float64
    )


def _inverse(g: FloatArray, fractions: FloatArray) -> FloatArray:
    G = _cumulative(g)
    relative = g / g.sum()
    p = np.clip(fractions, 0.0, 1.0)
    # A rank within rounding error of a cumulative value is that value, so that a rank on
    # a plateau of G is seen as on it.
    nearest = np.clip(np.searchsorted(G, p), 0, g.size - 1)
    interior = (G[nearest] > 0.0) & (G[nearest] < 1.0)  # never snap onto the ends
    p = np.where(interior & (np.abs(G[nearest] - p) < 1e-12), G[nearest], p)
    size = g.size
    # Upper: smallest j with G[j] > p.
    j = np.minimum(np.searchsorted(G, p, side="right"), size - 1)
    below_j = np.where(j > 0, G[np.maximum(j - 1, 0)], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = np.where(relative[j] > 0, (p - below_j) / relative[j], 1.0) + j - 0.5
    upper = np.where(p >= 1.0, size - 0.5, upper)
    # Lower: largest k with G[k] < p (k = -1 when none, with G[-1] = 0).
    k = np.searchsorted(G, p, side="left") - 1
    at_k = np.where(k >= 0, G[np.maximum(k, 0)], 0.0)
    nxt = np.minimum(k + 1, size - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(relative[nxt] > 0, (p - at_k) / relative[nxt], 0.0) + k + 0.5
    lower = np.where(p <= 0.0, -0.5, np.where(p >= 1.0, lower_at_top(relative), lower))
    return np.asarray((upper + lower) / 2, dtype=np.float64)


def lower_at_top(relative: FloatArray) -> float:
    """The lower form at p = 1: the top of the highest non-empty Y point."""
    return float(np.flatnonzero(relative > 0)[-1]) + 0.5


def link_equipercentile(
    x_counts: npt.ArrayLike, y_counts: npt.ArrayLike, *, smoothing: Smoothing = None
) -> FloatArray:
    """For every X score point 0..len(x_counts)-1, its unrounded Y equivalent.

    ``x_counts[i]``, ``y_counts[j]``: frequencies of the integer score points of X and Y.
    ``smoothing``: ``None``; ``"bump"`` (a tiny mass added everywhere, renormalised); or
    ``("loglinear", degree)`` / ``("loglinear", "aic")``, polynomial log-linear
    presmoothing of both distributions. Raises MappingError for bad counts.
    """
    x = smooth(check_counts(x_counts, "x_counts"), smoothing)
    y = smooth(check_counts(y_counts, "y_counts"), smoothing)
    return _inverse(y, _fractions(x, np.arange(x.size, dtype=np.float64)))


def link_chained_equipercentile(
    xv_counts: npt.ArrayLike, yv_counts: npt.ArrayLike, *, smoothing: Smoothing = None
) -> FloatArray:
    """Chained equipercentile linking through an anchor V (K&B section 5.4.2).

    ``xv_counts[x, v]``: the joint histogram of (X score, anchor) in population P;
    ``yv_counts[y, v]``: of (Y score, anchor) in population Q. X is linked to V in P,
    then V to Y in Q, and the two composed; the anchor's continuised percentile ranks
    carry fractional anchor scores between the two links.
    """
    xv, yv = _table(xv_counts, "xv_counts"), _table(yv_counts, "yv_counts")
    if xv.ndim != 2 or yv.ndim != 2:
        raise MappingError("anchor", "joint histograms must be two-dimensional [score][anchor]")
    if xv.shape[1] != yv.shape[1]:
        raise MappingError(
            "anchor", f"the anchor has {xv.shape[1]} points in P and {yv.shape[1]} in Q"
        )
    for name, joint in (("xv_counts", xv), ("yv_counts", yv)):
        if not np.all(np.isfinite(joint)) or np.any(joint < 0) or joint.sum() <= 0:
            raise MappingError(name, "frequencies must be finite, >= 0 and not all zero")
    x_marginal, v_in_p = smooth(xv.sum(axis=1), smoothing), smooth(xv.sum(axis=0), smoothing)
    y_marginal, v_in_q = smooth(yv.sum(axis=1), smoothing), smooth(yv.sum(axis=0), smoothing)
    anchor_equivalents = _inverse(
        v_in_p, _fractions(x_marginal, np.arange(x_marginal.size, dtype=np.float64))
    )
    return _inverse(y_marginal, _fractions(v_in_q, anchor_equivalents))


# --- smoothing ----------------------------------------------------------------------------


def smooth(counts: FloatArray, smoothing: Smoothing) -> FloatArray:
    """Apply a smoothing choice to frequencies (see :func:`link_equipercentile`)."""
    if smoothing is None:
        return counts
    if smoothing == "bump":
        relative = counts / counts.sum() + BUMP
        return np.asarray(relative / relative.sum() * counts.sum(), dtype=np.float64)
    if isinstance(smoothing, tuple) and len(smoothing) == 2 and smoothing[0] == "loglinear":
        return loglinear_smooth(counts, smoothing[1])
    raise MappingError(
        "smoothing",
        f"unknown smoothing {smoothing!r}; use None, 'bump' or ('loglinear', degree|'aic')",
    )


class _NoConvergence(Exception):
    pass


def _fit_loglinear(counts: FloatArray, degree: int) -> tuple[FloatArray, float]:
    """Maximum-likelihood polynomial log-linear fit (Holland & Thayer 1987; K&B section 3.2).

    log m_j = b0 + sum_i b_i x_j^i, fitted by Newton-Raphson on a Legendre basis of x
    scaled to [-1, 1] (numerically stable up to high degrees), halving a step until the
    likelihood rises. At the optimum the fitted frequencies keep the first ``degree``
    moments of the data; the fit is accepted only when they do (relative 1e-8), else
    :class:`_NoConvergence`. Returns (fitted counts, multinomial log-likelihood).
    """
    size = counts.size
    total = counts.sum()
    basis = np.polynomial.legendre.legvander(np.linspace(-1.0, 1.0, size), degree)
    target = basis.T @ counts
    scale = np.abs(target) + total

    def poisson_loglik(beta: FloatArray) -> float:
        eta = basis @ beta
        if np.max(eta) > 700:
            return -math.inf
        return float(counts @ eta - np.exp(eta).sum())

    beta = np.zeros(degree + 1)
    beta[0] = math.log(total / size)
    current = poisson_loglik(beta)
    for _ in range(200):
        fitted = np.exp(basis @ beta)
        gradient = target - basis.T @ fitted
        if np.max(np.abs(gradient) / scale) < 1e-10:
            break
        hessian = basis.T @ (basis * fitted[:, None])
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        for _ in range(60):  # halve the step until the likelihood rises
            candidate = poisson_loglik(beta + step)
            if candidate >= current:
                break
            step /= 2
        else:
            break
        beta, current = beta + step, candidate
    fitted = np.exp(basis @ beta)
    if not np.all(np.isfinite(fitted)) or np.max(np.abs(target - basis.T @ fitted) / scale) > 1e-8:
        raise _NoConvergence
    fitted *= total / fitted.sum()
    positive = counts > 0
    loglik = float(np.sum(counts[positive] * np.log(fitted[positive] / total)))
    return np.asarray(fitted, dtype=np.float64), loglik


MAX_AIC_DEGREE = 10


def choose_loglinear_degree(counts: npt.ArrayLike) -> int:
    """The log-linear degree (1..10) with the smallest AIC for these frequencies."""
    f = check_counts(counts, "counts")
    best: tuple[float, int] = (math.inf, 0)
    for degree in range(1, min(MAX_AIC_DEGREE, f.size - 1) + 1):
        try:
            _, loglik = _fit_loglinear(f, degree)
        except _NoConvergence:
            continue  # a degree the data can't support is simply not a candidate
        aic = 2 * (degree + 1) - 2 * loglik  # degree c has c + 1 parameters
        if aic < best[0]:
            best = (aic, degree)
    if best[1] == 0:
        raise MappingError("smoothing", "no log-linear degree could be fitted to this histogram")
    return best[1]


def loglinear_smooth(counts: FloatArray, degree: int | str) -> FloatArray:
    """Log-linear presmoothing of ``degree`` (1..20), or the degree by AIC (1..10)."""
    if degree == "aic":
        degree = choose_loglinear_degree(counts)
    if (
        isinstance(degree, bool)
        or not isinstance(degree, int)
        or not 1 <= degree <= min(20, counts.size - 1)
    ):
        raise MappingError("smoothing.degree", f"must be 1..{min(20, counts.size - 1)} or 'aic'")
    try:
        return _fit_loglinear(counts, degree)[0]
    except _NoConvergence:
        raise MappingError(
            "smoothing.degree",
            f"a log-linear fit of degree {degree} does not converge on this histogram; use a lower degree or 'aic'",
        ) from None


# --- standard errors ------------------------------------------------------------------------


def lord_standard_errors(
    x_counts: npt.ArrayLike, y_counts: npt.ArrayLike, *, y_is_population: bool = False
) -> FloatArray:
    """Analytic standard errors of unsmoothed equipercentile equivalents (Lord 1982;
    K&B eq. 7.12, random groups), one per X score point.

    With ``y_is_population`` the Y distribution is known exactly (the alliance's
    reference distribution), and only X's sampling error counts (N_Y -> infinity).
    """
    x = check_counts(x_counts, "x_counts")
    y = check_counts(y_counts, "y_counts")
    n_x = x.sum()
    n_y = math.inf if y_is_population else y.sum()
    p = percentile_ranks(x) / 100.0
    G = _cumulative(y)
    relative = y / y.sum()
    j = np.minimum(np.searchsorted(G, p, side="right"), y.size - 1)
    g_upper = G[j]
    g_below = np.where(j > 0, G[np.maximum(j - 1, 0)], 0.0)
    density = relative[j]
    both = (1.0 / n_x + (0.0 if math.isinf(n_y) else 1.0 / n_y)) * p * (1 - p)
    y_term = (
        0.0
        if math.isinf(n_y)
        else (g_upper - p) * (p - g_below) / (n_y * np.where(density > 0, density, 1.0))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(density > 0, (both - y_term) / density**2, np.nan)
    # At ranks 0 and 100 (below or above every observed X score) there are no data; the
    # formula gives 0 there, which would claim perfect precision. Say "unknown" instead.
    variance = np.where((p <= 0) | (p >= 1), np.nan, variance)
    return np.asarray(np.sqrt(np.maximum(variance, 0.0)), dtype=np.float64)


def bootstrap_standard_errors(
    x_counts: npt.ArrayLike,
    y_counts: npt.ArrayLike,
    *,
    rng: np.random.Generator,
    replications: int = 500,
    smoothing: Smoothing = None,
    y_is_population: bool = False,
) -> FloatArray:
    """Bootstrap standard errors (K&B section 7.2): resample the histograms
    multinomially, relink, and take the standard deviation per X score point.

    ``rng`` makes the result reproducible. Y is resampled and smoothed like X unless it
    is a population (the alliance's reference distribution), which is exact: it is then
    used as it is, neither resampled nor smoothed, as :func:`mappings.build_table` does.
    """
    x = check_counts(x_counts, "x_counts")
    y = check_counts(y_counts, "y_counts")
    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 2:
        raise MappingError("replications", "must be an integer >= 2")
    n_x, n_y = round(x.sum()), round(y.sum())
    if n_x < 1 or (n_y < 1 and not y_is_population):
        raise MappingError("counts", "too few observations to bootstrap")
    px, py = x / x.sum(), y / y.sum()
    draws = np.empty((replications, x.size))
    points = np.arange(x.size, dtype=np.float64)
    for r in range(replications):
        xs = smooth(rng.multinomial(n_x, px).astype(np.float64), smoothing)
        ys = (
            y if y_is_population else smooth(rng.multinomial(n_y, py).astype(np.float64), smoothing)
        )
        draws[r] = _inverse(ys, _fractions(xs, points))
    return np.asarray(draws.std(axis=0, ddof=1), dtype=np.float64)
