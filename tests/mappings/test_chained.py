"""Chained equipercentile linking through an anchor (K&B section 5.4.2)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings import MappingError, link_chained_equipercentile, link_equipercentile

from . import kolen_brennan as kb
from .strategies import PROPERTY, histograms


@PROPERTY
@given(
    x=histograms(min_size=3, empty_points=False),
    y=histograms(min_size=3, empty_points=False),
    anchor=histograms(min_size=3, max_size=25, empty_points=False),
    p_size=st.integers(1, 9),
    smoothing=st.sampled_from([None, "bump"]),
)
def test_a_perfectly_correlated_anchor_with_one_distribution_gives_the_direct_link(
    x: list[int], y: list[int], anchor: list[int], p_size: int, smoothing: Any
) -> None:
    """The anchor ranks people exactly as X does in P and as Y does in Q (the joint
    histograms are comonotone), and it is distributed alike in both populations (random
    groups): linking X to V in P then V to Y in Q is linking X to Y."""
    xv = kb.comonotone_joint(x, anchor)
    yv = kb.comonotone_joint(y, [p_size * a for a in anchor])
    chained = link_chained_equipercentile(xv, yv, smoothing=smoothing)
    direct = link_equipercentile(x, y, smoothing=smoothing)
    np.testing.assert_allclose(chained, direct, rtol=0, atol=1e-7)


# An ability-shifted population with a known true link. Every score is a fixed,
# increasing function of one ability: X = 20 + 5 t on 0..40, Y = 18 + 6 t + t^2 / 2 on
# 0..50 (curved), the anchor V = 10 + 3 t on 0..20. In P ability is N(0.6, 1), in Q
# N(0, 1). A person's X and Y scores are then equivalent exactly when they come from
# one ability: the true link is Y(X^-1(x)) = 18 + 6 t + t^2 / 2 with t = (x - 20) / 5.
ABILITY = np.linspace(-6.0, 6.0, 24_001)


def _ability_weights(mean: float) -> np.ndarray:
    density = np.exp(-0.5 * (ABILITY - mean) ** 2)
    return 100_000 * density / density.sum()


def _score(values: np.ndarray, size: int) -> np.ndarray:
    return np.clip(np.floor(values + 0.5), 0, size - 1).astype(int)


def _joint(score: np.ndarray, size: int, mean: float) -> np.ndarray:
    anchor = _score(10 + 3 * ABILITY, 21)
    joint = np.zeros((size, 21))
    np.add.at(joint, (_score(score, size), anchor), _ability_weights(mean))
    return joint


def _true_link(x: np.ndarray) -> np.ndarray:
    t = (x - 20) / 5
    return np.asarray(18 + 6 * t + t**2 / 2)


def test_chained_linking_recovers_the_true_link_across_an_ability_shift() -> None:
    xv = _joint(20 + 5 * ABILITY, 41, mean=0.6)  # population P
    yv = _joint(18 + 6 * ABILITY + ABILITY**2 / 2, 51, mean=0.0)  # population Q
    chained = link_chained_equipercentile(xv, yv)
    direct = link_equipercentile(xv.sum(axis=1), yv.sum(axis=1))
    x = np.arange(41)
    inside = np.abs((x - 20) / 5) <= 2  # away from the clipped ends of the scales
    truth = _true_link(x)
    chained_error = np.abs(chained - truth)[inside]
    direct_error = np.abs(direct - truth)[inside]
    assert chained_error.max() < 0.25
    assert direct_error.min() > 2.0  # direct linking mistakes P's ability for X's ease
    assert np.all(chained_error < direct_error)


def test_without_an_ability_shift_chained_and_direct_both_find_the_true_link() -> None:
    xv = _joint(20 + 5 * ABILITY, 41, mean=0.0)
    yv = _joint(18 + 6 * ABILITY + ABILITY**2 / 2, 51, mean=0.0)
    inside = np.abs((np.arange(41) - 20) / 5) <= 2
    truth = _true_link(np.arange(41))
    for equivalents in (
        link_chained_equipercentile(xv, yv),
        link_equipercentile(xv.sum(axis=1), yv.sum(axis=1)),
    ):
        assert np.max(np.abs(equivalents - truth)[inside]) < 0.25


@PROPERTY
@given(x=histograms(min_size=3), y=histograms(min_size=3), anchor=histograms(min_size=3))
def test_the_chained_link_is_monotone(x: list[int], y: list[int], anchor: list[int]) -> None:
    chained = link_chained_equipercentile(
        kb.comonotone_joint(x, anchor), kb.comonotone_joint(y, anchor[::-1])
    )
    assert chained.shape == (len(x),)
    assert np.all(np.isfinite(chained))
    assert np.all(np.diff(chained) >= -1e-9)
    assert chained.min() >= -0.5 - 1e-9
    assert chained.max() <= len(y) - 0.5 + 1e-9


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xv", "yv", "field"),
    [
        ([1, 2, 3], [[1, 2], [3, 4]], "anchor"),
        ([[1, 2], [3, 4]], [[[1]]], "anchor"),
        ([[1, 2, 3], [3, 4, 5]], [[1, 2], [3, 4]], "anchor"),
        ([[0, 0], [0, 0]], [[1, 2], [3, 4]], "xv_counts"),
        ([[1, -2], [3, 4]], [[1, 2], [3, 4]], "xv_counts"),
        ([[1, 2], [3, 4]], [[1, math.nan], [3, 4]], "yv_counts"),
        ([[1, 2], [3, 4]], [[1, 2], [math.inf, 4]], "yv_counts"),
    ],
    ids=[
        "x-one-dimensional",
        "y-three-dimensional",
        "anchor-sizes-differ",
        "x-empty",
        "x-negative",
        "y-nan",
        "y-inf",
    ],
)
def test_bad_joint_histograms_are_refused(xv: Any, yv: Any, field: str) -> None:
    with pytest.raises(MappingError) as caught:
        link_chained_equipercentile(xv, yv)
    assert caught.value.field == field


def test_bad_smoothing_is_refused_in_chained_linking() -> None:
    with pytest.raises(MappingError) as caught:
        link_chained_equipercentile([[1, 2], [3, 4]], [[1, 2], [3, 4]], smoothing="smooth")
    assert caught.value.field == "smoothing"


@pytest.mark.parametrize("xv", [[[1, 2], [3]], [["a", "b"], ["c", "d"]]], ids=["ragged", "text"])
def test_a_joint_histogram_that_is_not_a_table_of_numbers_is_refused(xv: Any) -> None:
    with pytest.raises(MappingError) as caught:
        link_chained_equipercentile(xv, [[1, 2], [3, 4]])
    assert caught.value.field == "xv_counts"
