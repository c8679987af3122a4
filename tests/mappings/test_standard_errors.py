"""Standard errors of equipercentile equivalents: Lord's analytic form (K&B eq. 7.12,
random groups) and the bootstrap (K&B section 7.2). Randomness is a seeded Generator."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given

from mappings import (
    MappingError,
    bootstrap_standard_errors,
    lord_standard_errors,
    percentile_ranks,
)

from . import kolen_brennan as kb
from .strategies import PROPERTY, histograms
from .test_kolen_brennan_vectors import ACT

SEED = 20270115


def normal_histogram(size: int, mean: float, sd: float, total: float) -> np.ndarray:
    """Rounded frequencies of a normal on the points 0..size-1, one score more at each."""
    density = [math.exp(-0.5 * ((k - mean) / sd) ** 2) for k in range(size)]
    return np.round(total * np.array(density) / sum(density)) + 1


# A large random-groups sample: every score point holds scores.
LARGE_X = normal_histogram(31, 16.0, 6.0, 40_000)
LARGE_Y = normal_histogram(31, 14.0, 7.0, 40_000)


def interior(x_counts: Any) -> np.ndarray:
    """Score points away from the tails, where asymptotic formulas are meant to hold."""
    ranks = percentile_ranks(x_counts)
    return np.asarray((ranks > 5) & (ranks < 95))


def lord_by_the_book(x_counts: list[float], y_counts: list[float]) -> list[float]:
    """K&B (2004) p. 248, unsmoothed random-groups SE, plainly: with p = P(x)/100, y*_U
    the smallest Y score with G(y*_U) > p and g = G(y*_U) - G(y*_U - 1),
    var = [p (1 - p) (N_X + N_Y) / (N_X N_Y) - (G(y*_U) - p)(p - G(y*_U - 1)) / (N_Y g)] / g^2."""
    n_x, n_y = sum(x_counts), sum(y_counts)
    G = kb.cumulative(y_counts)
    out = []
    for x in range(len(x_counts)):
        p = kb.percentile_rank(x_counts, x) / 100
        upper = 0
        while upper < len(G) - 1 and G[upper] <= p:
            upper += 1
        below = G[upper - 1] if upper > 0 else 0.0
        g = G[upper] - below
        variance = (
            p * (1 - p) * (n_x + n_y) / (n_x * n_y) - (G[upper] - p) * (p - below) / (n_y * g)
        ) / g**2
        out.append(math.sqrt(max(variance, 0.0)))
    return out


def test_lord_standard_errors_follow_the_formula_on_act_math() -> None:
    """Where there are data (0 < P(x) < 100); ACT Form X score 0 has rank 0."""
    expected = np.array(lord_by_the_book(ACT["x_counts"], ACT["y_counts"]))
    actual = lord_standard_errors(ACT["x_counts"], ACT["y_counts"])
    inside = (percentile_ranks(ACT["x_counts"]) > 0) & (percentile_ranks(ACT["x_counts"]) < 100)
    assert inside.sum() == 40
    np.testing.assert_allclose(actual[inside], expected[inside], rtol=1e-9, atol=1e-12)


@PROPERTY
@given(x=histograms(), y=histograms(empty_points=False))
def test_four_times_the_data_halves_lords_standard_errors(x: list[int], y: list[int]) -> None:
    """Same relative distributions, 4x the counts: every variance term is over N."""
    small = lord_standard_errors(x, y)
    large = lord_standard_errors([4 * c for c in x], [4 * c for c in y])
    np.testing.assert_allclose(large, small / 2, rtol=1e-9, atol=1e-12)
    population_small = lord_standard_errors(x, y, y_is_population=True)
    population_large = lord_standard_errors([4 * c for c in x], y, y_is_population=True)
    np.testing.assert_allclose(population_large, population_small / 2, rtol=1e-9, atol=1e-12)


@PROPERTY
@given(x=histograms(empty_points=False), y=histograms(empty_points=False))
def test_a_population_y_gives_smaller_standard_errors_than_a_sampled_y(
    x: list[int], y: list[int]
) -> None:
    """With Y known exactly only X's sampling error is left (N_Y -> infinity)."""
    sampled = lord_standard_errors(x, y)
    population = lord_standard_errors(x, y, y_is_population=True)
    assert np.all(population <= sampled + 1e-15)
    assert np.all(population < sampled)  # every rank is strictly inside (0, 100)


def test_four_times_the_data_gives_smaller_bootstrap_standard_errors() -> None:
    """Bootstrap SEs shrink like 1/sqrt(N): 4x the counts, about half (seeded)."""
    x = normal_histogram(31, 16.0, 6.0, 2_000)
    y = normal_histogram(31, 14.0, 7.0, 2_000)
    small = bootstrap_standard_errors(x, y, rng=np.random.default_rng(SEED), replications=300)
    large = bootstrap_standard_errors(
        4 * x, 4 * y, rng=np.random.default_rng(SEED + 1), replications=300
    )
    keep = interior(x)
    assert np.mean(large[keep]) < np.mean(small[keep])
    assert 0.4 < np.mean(large[keep]) / np.mean(small[keep]) < 0.6
    assert np.all(large[keep] < small[keep])


def test_lord_and_bootstrap_standard_errors_agree_on_a_large_sample() -> None:
    lord = lord_standard_errors(LARGE_X, LARGE_Y)
    bootstrap = bootstrap_standard_errors(
        LARGE_X, LARGE_Y, rng=np.random.default_rng(SEED), replications=400
    )
    keep = interior(LARGE_X)
    assert keep.sum() >= 8
    ratio = bootstrap[keep] / lord[keep]
    assert np.all(np.abs(ratio - 1) < 0.2), ratio


def test_lord_and_bootstrap_agree_when_y_is_the_population() -> None:
    lord = lord_standard_errors(LARGE_X, LARGE_Y, y_is_population=True)
    bootstrap = bootstrap_standard_errors(
        LARGE_X,
        LARGE_Y,
        rng=np.random.default_rng(SEED),
        replications=400,
        y_is_population=True,
    )
    keep = interior(LARGE_X)
    ratio = bootstrap[keep] / lord[keep]
    assert np.all(np.abs(ratio - 1) < 0.2), ratio
    sampled = bootstrap_standard_errors(
        LARGE_X, LARGE_Y, rng=np.random.default_rng(SEED), replications=400
    )
    assert np.mean(bootstrap[keep]) < np.mean(sampled[keep])


def test_the_bootstrap_is_reproducible_from_its_generator() -> None:
    def run(seed: int) -> np.ndarray:
        return bootstrap_standard_errors(
            ACT["x_counts"], ACT["y_counts"], rng=np.random.default_rng(seed), replications=50
        )

    np.testing.assert_array_equal(run(SEED), run(SEED))
    assert not np.array_equal(run(SEED), run(SEED + 1))


def test_bootstrap_standard_errors_with_smoothing_are_finite() -> None:
    se = bootstrap_standard_errors(
        ACT["x_counts"],
        ACT["y_counts"],
        rng=np.random.default_rng(SEED),
        replications=30,
        smoothing="bump",
    )
    assert se.shape == (41,)
    assert np.all(np.isfinite(se))
    assert np.all(se >= 0)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("replications", [1, 0, -5])
def test_too_few_replications_are_refused(replications: int) -> None:
    with pytest.raises(MappingError) as caught:
        bootstrap_standard_errors(
            [1, 2, 3], [3, 2, 1], rng=np.random.default_rng(SEED), replications=replications
        )
    assert caught.value.field == "replications"


@pytest.mark.parametrize(
    ("x_counts", "y_counts", "field"),
    [([0, 0, 0], [1, 2, 3], "x_counts"), ([1, 2, 3], [1, -2, 3], "y_counts[1]")],
)
def test_standard_errors_refuse_bad_histograms(x_counts: Any, y_counts: Any, field: str) -> None:
    with pytest.raises(MappingError) as caught:
        lord_standard_errors(x_counts, y_counts)
    assert caught.value.field == field
    with pytest.raises(MappingError) as caught:
        bootstrap_standard_errors(x_counts, y_counts, rng=np.random.default_rng(SEED))
    assert caught.value.field == field


@pytest.mark.parametrize("y_counts", [[5, 5, 0], [5, 5, 1], [0, 5, 5]], ids=str)
def test_ranks_0_and_100_get_the_same_standard_error(y_counts: list[int]) -> None:
    """Scores below or above every observed X score (ranks 0 and 100) carry no data:
    both ends are treated alike, whatever Y's end points hold (an earlier version gave 0
    at rank 0 but NaN at rank 100 when Y's top point was empty)."""
    se = lord_standard_errors([0, 5, 5, 0], y_counts)
    assert np.isnan(se[0]) == np.isnan(se[3])
    if not np.isnan(se[0]):
        assert se[0] == se[3] == 0.0
    assert np.all(np.isfinite(se[1:3]))


@pytest.mark.parametrize("replications", ["5", 2.5])
def test_a_replication_count_that_is_not_an_integer_is_refused(replications: Any) -> None:
    with pytest.raises(MappingError) as caught:
        bootstrap_standard_errors(
            [1, 2, 3], [3, 2, 1], rng=np.random.default_rng(SEED), replications=replications
        )
    assert caught.value.field == "replications"
