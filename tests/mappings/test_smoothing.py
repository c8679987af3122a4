"""Presmoothing (K&B ch. 3): the bump, polynomial log-linear fits, and AIC's choice."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings import (
    MappingError,
    choose_loglinear_degree,
    link_equipercentile,
    loglinear_smooth,
)
from mappings._linking import BUMP

from . import kolen_brennan as kb
from .strategies import PROPERTY, QUICK, histograms
from .test_kolen_brennan_vectors import ACT

# --- the bump ----------------------------------------------------------------------------


@PROPERTY
@given(x=histograms(max_count=500), y=histograms(empty_points=False, max_count=500))
def test_the_bump_changes_equivalents_only_slightly(x: list[int], y: list[int]) -> None:
    """Adding a relative mass of 1e-6 to each of n points moves every cumulative
    proportion by at most n * 1e-6, so an equivalent by at most 2 n 1e-6 / min g(y)."""
    plain = link_equipercentile(x, y)
    bumped = link_equipercentile(x, y, smoothing="bump")
    smallest_density = min(y) / sum(y)
    bound = 2 * max(len(x), len(y)) * BUMP / smallest_density
    # x's empty points get a rank of their own with the bump: compare the others.
    held = np.asarray(x) > 0
    assert np.max(np.abs(bumped - plain)[held]) <= bound + 1e-9


def test_the_bump_barely_moves_the_act_math_equivalents() -> None:
    """On K&B's ACT Mathematics data (tests/vectors/kolen_brennan/act_math.json)."""
    plain = link_equipercentile(ACT["x_counts"], ACT["y_counts"])
    bumped = link_equipercentile(ACT["x_counts"], ACT["y_counts"], smoothing="bump")
    assert np.max(np.abs(bumped - plain)) < 1e-3


@PROPERTY
@given(x=histograms(), y=histograms())
def test_with_the_bump_the_link_rises_strictly_despite_empty_points(
    x: list[int], y: list[int]
) -> None:
    """Every point holds some mass after the bump: no flat stretch from empty X points,
    no jump across empty Y points."""
    bumped = link_equipercentile(x, y, smoothing="bump")
    assert np.all(np.diff(bumped) > 0)


@pytest.mark.parametrize(
    "counts", [[0, 0, 3, 4, 0, 0, 5, 0], [1, 1, 0, 1], [0, 0, 0, 9, 9, 0, 0, 0, 2, 0, 0]]
)
def test_the_bump_removes_the_effect_of_empty_points_on_the_identity(counts: list[int]) -> None:
    """Unsmoothed, a run of empty points collapses to the middle of its plateau; with
    the bump each point keeps a rank of its own, and a distribution links to itself."""
    np.testing.assert_allclose(
        link_equipercentile(counts, counts, smoothing="bump"),
        np.arange(len(counts)),
        rtol=0,
        atol=1e-6,
    )


# --- log-linear --------------------------------------------------------------------------


@PROPERTY
@given(counts=histograms(min_size=5, empty_points=False), data=st.data())
def test_loglinear_keeps_the_first_k_moments(counts: list[int], data: st.DataObject) -> None:
    """A degree-k log-linear fit matches the first k moments of the data (Holland &
    Thayer 1987; K&B section 3.2), and its total."""
    degree = data.draw(st.integers(1, min(6, len(counts) - 2)), label="degree")
    fitted = loglinear_smooth(np.asarray(counts, dtype=float), degree)
    assert np.all(np.isfinite(fitted))
    assert np.all(fitted > 0)
    assert math.isclose(fitted.sum(), sum(counts), rel_tol=1e-9)
    np.testing.assert_allclose(
        kb.raw_moments(fitted.tolist(), degree), kb.raw_moments(counts, degree), rtol=1e-6
    )


@pytest.mark.parametrize("degree", [1, 2, 3, 4, 6, 10, 20])
def test_loglinear_keeps_the_moments_of_the_act_math_distributions(degree: int) -> None:
    for counts in (ACT["x_counts"], ACT["y_counts"]):
        fitted = loglinear_smooth(np.asarray(counts, dtype=float), degree)
        np.testing.assert_allclose(
            kb.raw_moments(fitted.tolist(), degree), kb.raw_moments(counts, degree), rtol=1e-6
        )


def test_loglinear_of_full_degree_reproduces_the_histogram() -> None:
    counts = np.array([3.0, 8.0, 20.0, 11.0, 4.0])
    np.testing.assert_allclose(loglinear_smooth(counts, 4), counts, rtol=1e-6)


def test_loglinear_converges_on_a_histogram_with_a_long_empty_tail() -> None:
    """An undamped Newton-Raphson fit diverged here (all mass on points 4..8, where the
    data has none); the maximum-likelihood fit exists and keeps the moments."""
    counts = [0] * 20 + [3, 2, 1, 3, 6, 9, 10, 12, 10, 9, 4, 4]
    fitted = loglinear_smooth(np.asarray(counts, dtype=float), 9)
    np.testing.assert_allclose(
        kb.raw_moments(fitted.tolist(), 9), kb.raw_moments(counts, 9), rtol=1e-6
    )


def _scaled_moments(counts: list[float], degree: int) -> list[float]:
    """E[t^i], i = 1..degree, with the points mapped onto t in [-1, 1] (well conditioned
    up to high degrees, and spanning the same polynomials as the raw moments)."""
    f = kb.relative(counts)
    last = len(counts) - 1
    return [sum(p * (2 * x / last - 1) ** i for x, p in enumerate(f)) for i in range(1, degree + 1)]


@PROPERTY
@given(counts=histograms(min_size=3, max_size=60), data=st.data())
def test_a_loglinear_fit_keeps_its_moments_or_is_refused(
    counts: list[int], data: st.DataObject
) -> None:
    """Lumpy histograms with empty stretches, any degree AIC may try: the fit either
    keeps the first k moments or is refused naming the degree, never silently wrong."""
    degree = data.draw(st.integers(1, min(10, len(counts) - 1)), label="degree")
    refused: MappingError | None = None
    try:
        with np.errstate(divide="ignore"):
            fitted = loglinear_smooth(np.asarray(counts, dtype=float), degree)
    except MappingError as error:
        refused = error
    if refused is not None:
        assert refused.field == "smoothing.degree"
        return
    assert np.all(np.isfinite(fitted))
    assert np.all(fitted >= 0)
    assert math.isclose(fitted.sum(), sum(counts), rel_tol=1e-9)
    np.testing.assert_allclose(
        _scaled_moments(fitted.tolist(), degree), _scaled_moments(counts, degree), atol=1e-7
    )


def _aic(counts: list[float], fitted: list[float], degree: int) -> float:
    total = sum(counts)
    loglik = sum(c * math.log(m / total) for c, m in zip(counts, fitted, strict=True) if c > 0)
    return 2 * (degree + 1) - 2 * loglik


@QUICK
@given(counts=histograms(min_size=6, max_size=30, empty_points=False))
def test_aic_picks_the_degree_with_the_least_aic(counts: list[int]) -> None:
    """("loglinear", "aic") returns the fit of degree 1..10 with the smallest
    AIC = 2 (parameters) - 2 log-likelihood, a positive distribution of the same total."""
    array = np.asarray(counts, dtype=float)
    chosen = loglinear_smooth(array, "aic")
    assert np.all(chosen > 0)
    assert math.isclose(chosen.sum(), sum(counts), rel_tol=1e-9)
    fits = {d: loglinear_smooth(array, d) for d in range(1, min(10, len(counts) - 1) + 1)}
    best = min(fits, key=lambda d: _aic(counts, fits[d].tolist(), d))
    assert choose_loglinear_degree(counts) == best
    np.testing.assert_allclose(chosen, fits[best], rtol=1e-12)


def test_aic_picks_degree_two_for_a_discretised_normal() -> None:
    """Frequencies proportional to exp(quadratic) are fitted exactly by degree 2; every
    higher degree only adds parameters."""
    points = np.arange(31)
    counts = 1e5 * np.exp(-0.5 * ((points - 14.0) / 5.0) ** 2)
    np.testing.assert_allclose(loglinear_smooth(counts, "aic"), counts, rtol=1e-6)
    np.testing.assert_allclose(loglinear_smooth(counts, "aic"), loglinear_smooth(counts, 2))
    assert choose_loglinear_degree(counts) == 2


def test_choose_loglinear_degree_refuses_an_empty_histogram() -> None:
    with pytest.raises(MappingError) as caught:
        choose_loglinear_degree([0, 0, 0])
    assert caught.value.field == "counts"


def test_aic_smoothing_links_the_act_math_forms() -> None:
    equivalents = link_equipercentile(
        ACT["x_counts"], ACT["y_counts"], smoothing=("loglinear", "aic")
    )
    assert np.all(np.diff(equivalents) > 0)
    plain = link_equipercentile(ACT["x_counts"], ACT["y_counts"])
    assert np.max(np.abs(equivalents - plain)[5:36]) < 1.0


# --- bad smoothing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("smoothing", "field"),
    [
        ("smooth", "smoothing"),
        ("BUMP", "smoothing"),
        (("loglinear",), "smoothing"),
        (("loglinear", 2, 3), "smoothing"),
        (("kernel", 2), "smoothing"),
        (["loglinear", 2], "smoothing"),
        (3, "smoothing"),
        (("loglinear", 0), "smoothing.degree"),
        (("loglinear", -1), "smoothing.degree"),
        (("loglinear", 21), "smoothing.degree"),
        (("loglinear", 9), "smoothing.degree"),  # more than the 8 points allow
        (("loglinear", 2.5), "smoothing.degree"),
        (("loglinear", True), "smoothing.degree"),
        (("loglinear", "AIC"), "smoothing.degree"),
        (("loglinear", None), "smoothing.degree"),
    ],
)
def test_bad_smoothing_is_refused(smoothing: Any, field: str) -> None:
    counts = [1, 4, 9, 12, 9, 4, 1, 1]
    with pytest.raises(MappingError) as caught:
        link_equipercentile(counts, counts, smoothing=smoothing)
    assert caught.value.field == field
