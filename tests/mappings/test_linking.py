"""Equipercentile linking (K&B ch. 2): properties, against plain re-implementations of
the textbook's definitions (tests/mappings/kolen_brennan.py), and bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mappings import (
    MappingError,
    inverse_percentile_rank,
    link_equipercentile,
    percentile_ranks,
)

from . import kolen_brennan as kb
from .strategies import PROPERTY, histograms, histograms_with_isolated_empty_points

SMOOTHINGS: list[Any] = [None, "bump", ("loglinear", 2)]

# --- properties ------------------------------------------------------------------------


@PROPERTY
@given(x=histograms(min_size=3), y=histograms(min_size=3), smoothing=st.sampled_from(SMOOTHINGS))
def test_the_link_is_monotone(x: list[int], y: list[int], smoothing: Any) -> None:
    """Equivalents never fall as the X score rises, whatever the histograms."""
    equivalents = link_equipercentile(x, y, smoothing=smoothing)
    assert equivalents.shape == (len(x),)
    assert np.all(np.isfinite(equivalents))
    assert np.all(np.diff(equivalents) >= -1e-9)


@PROPERTY
@given(x=histograms(), y=histograms())
def test_equivalents_stay_within_the_continuised_y_range(x: list[int], y: list[int]) -> None:
    equivalents = link_equipercentile(x, y)
    assert np.all(equivalents >= -0.5 - 1e-12)
    assert np.all(equivalents <= len(y) - 0.5 + 1e-12)


@PROPERTY
@given(counts=histograms())
def test_percentile_ranks_of_the_continuised_ends_are_0_and_100(counts: list[int]) -> None:
    """The uniform spread puts the whole distribution on [-.5, K + .5] (K&B eq. 2.14)."""
    size = len(counts)
    ranks = percentile_ranks(counts, [-0.5, size - 0.5, -3.0, size + 2.0])
    assert ranks.tolist() == [0.0, 100.0, 0.0, 100.0]


@PROPERTY
@given(counts=histograms(empty_points=False))
def test_inverse_percentile_rank_of_0_and_100_are_the_continuised_ends(
    counts: list[int],
) -> None:
    """With end points that hold scores, the inverse of 0 is -.5 and of 100 is K + .5."""
    ends = inverse_percentile_rank(counts, [0.0, 100.0])
    assert ends.tolist() == [-0.5, len(counts) - 0.5]


def test_inverse_at_the_ends_of_a_distribution_with_empty_end_points_averages_the_forms() -> None:
    """With empty end points the two forms disagree at 0 and 100: the lower form gives
    -.5 at 0 and the upper K + .5 at 100 (K&B eqs. 2.18, 2.19), the other form the edge
    of the first or last point that holds scores; the result is their average."""
    counts = [0, 0, 3, 4, 0]
    assert inverse_percentile_rank(counts, [0.0, 100.0]).tolist() == [
        (-0.5 + 1.5) / 2,
        (4.5 + 3.5) / 2,
    ]


@PROPERTY
@given(counts=histograms(), scores=st.lists(st.floats(-2, 45), min_size=1, max_size=10))
def test_percentile_ranks_follow_kolen_brennan_eq_2_14(
    counts: list[int], scores: list[float]
) -> None:
    expected = [kb.percentile_rank(counts, x) for x in scores]
    np.testing.assert_allclose(percentile_ranks(counts, scores), expected, rtol=0, atol=1e-9)


@PROPERTY
@given(counts=histograms(), ranks=st.lists(st.floats(0, 100), min_size=1, max_size=10))
# A rank a hair below 100 over an empty top point: it must not be snapped onto the end.
@example(counts=[1, 0], ranks=[99.99999999999999])
def test_inverse_percentile_rank_follows_kolen_brennan_eqs_2_18_and_2_19(
    counts: list[int], ranks: list[float]
) -> None:
    expected = [kb.inverse_percentile_rank(counts, p) for p in ranks]
    np.testing.assert_allclose(inverse_percentile_rank(counts, ranks), expected, atol=1e-7)


@PROPERTY
@given(x=histograms(), y=histograms(empty_points=False))
def test_the_link_is_the_inverse_of_y_at_the_percentile_ranks_of_x(
    x: list[int], y: list[int]
) -> None:
    expected = [kb.inverse_percentile_rank(y, kb.percentile_rank(x, i)) for i in range(len(x))]
    np.testing.assert_allclose(link_equipercentile(x, y), expected, rtol=0, atol=1e-7)


@PROPERTY
@given(counts=histograms(empty_points=False))
def test_identical_distributions_give_the_identity(counts: list[int]) -> None:
    """Linking a distribution to itself returns every score."""
    np.testing.assert_allclose(
        link_equipercentile(counts, counts), np.arange(len(counts)), rtol=0, atol=1e-9
    )


IDENTITY_WITH_EMPTY_POINTS = [
    pytest.param([0, 3, 0, 4, 0, 5, 0], id="alternate-empty"),
    pytest.param([0, 7, 2, 9], id="empty-first"),
    pytest.param([4, 7, 2, 0], id="empty-last"),
    # 100 * F(1) / 100 lands one ulp below F(1) = 2/3: the rank must still be seen on
    # the plateau, or both forms give 1.5.
    pytest.param([1, 1, 0, 1], id="plateau-edge"),
    pytest.param([431, 42, 490, 413, 0, 180, 75], id="plateau-edge-2"),
]


@pytest.mark.parametrize("counts", IDENTITY_WITH_EMPTY_POINTS)
def test_identical_distributions_with_empty_points_give_the_identity(counts: list[int]) -> None:
    """An isolated empty point x has P(x) = F(x - 1), the lower edge of Y's plateau; the
    upper form gives x + .5 and the lower x - .5, whose average is x (K&B eqs. 2.18, 2.19)."""
    np.testing.assert_allclose(
        link_equipercentile(counts, counts), np.arange(len(counts)), rtol=0, atol=1e-9
    )


@PROPERTY
@example(counts=[1, 1, 0, 1])
@given(counts=histograms_with_isolated_empty_points())
def test_identical_distributions_with_isolated_empty_points_give_the_identity(
    counts: list[int],
) -> None:
    np.testing.assert_allclose(
        link_equipercentile(counts, counts), np.arange(len(counts)), rtol=0, atol=1e-9
    )


@PROPERTY
@given(counts=histograms(empty_points=False), factor=st.integers(2, 50))
def test_identity_does_not_depend_on_sample_size(counts: list[int], factor: int) -> None:
    scaled = [c * factor for c in counts]
    np.testing.assert_allclose(
        link_equipercentile(counts, scaled), np.arange(len(counts)), rtol=0, atol=1e-9
    )


def test_a_run_of_empty_points_maps_to_the_middle_of_its_plateau() -> None:
    """Points of an empty run share one percentile rank, so no equipercentile link can
    separate them; averaging the upper and lower forms puts them mid-plateau."""
    counts = [0, 0, 3, 4, 0, 0, 5, 0]
    assert link_equipercentile(counts, counts).tolist() == [0.5, 0.5, 2, 3, 4.5, 4.5, 6, 7]


def test_a_shifted_distribution_links_by_the_shift() -> None:
    """Y is X moved up three points: every X score with scores below it maps to x + 3."""
    x = [5, 9, 14, 20, 14, 9, 5, 0, 0, 0]
    y = [0, 0, 0, 5, 9, 14, 20, 14, 9, 5]
    np.testing.assert_allclose(link_equipercentile(x, y)[:7], np.arange(7) + 3, atol=1e-12)


def test_scores_are_linked_to_the_equivalent_on_a_different_length_scale() -> None:
    """A uniform X on 0..9 linked to a uniform Y on 0..19: x maps to 2x + .5."""
    equivalents = link_equipercentile([1] * 10, [1] * 20)
    np.testing.assert_allclose(equivalents, 2 * np.arange(10) + 0.5, atol=1e-12)


# --- bad input ---------------------------------------------------------------------------


def _field_of(call: Any) -> str:
    with pytest.raises(MappingError) as caught:
        call()
    return str(caught.value.field)


@pytest.mark.parametrize(
    ("x_counts", "y_counts", "field"),
    [
        ([0, 0, 0, 0], [1, 2, 3, 4], "x_counts"),
        ([1, 2, 3, 4], [0, 0, 0], "y_counts"),
        ([1, 2, 3, -1], [1, 2, 3, 4], "x_counts[3]"),
        ([1, 2, 3, 4], [1, -2, 3, 4], "y_counts[1]"),
        ([1, math.nan, 3, 4], [1, 2, 3, 4], "x_counts[1]"),
        ([1, 2, 3, 4], [1, 2, math.inf, 4], "y_counts[2]"),
        ([1, 2, -math.inf, 4], [1, 2, 3, 4], "x_counts[2]"),
        ([5], [1, 2, 3, 4], "x_counts"),
        ([], [1, 2, 3, 4], "x_counts"),
        ([[1, 2], [3, 4]], [1, 2, 3, 4], "x_counts"),
        (["a", "b"], [1, 2, 3, 4], "x_counts"),
        (None, [1, 2, 3, 4], "x_counts"),
        ([1, 2, 3, 4], "1234", "y_counts"),
    ],
    ids=[
        "x-empty",
        "y-empty",
        "x-negative",
        "y-negative",
        "x-nan",
        "y-inf",
        "x-minus-inf",
        "x-one-point",
        "x-no-points",
        "x-two-dimensional",
        "x-strings",
        "x-none",
        "y-a-string",
    ],
)
def test_bad_histograms_are_refused_naming_the_field(
    x_counts: Any, y_counts: Any, field: str
) -> None:
    assert _field_of(lambda: link_equipercentile(x_counts, y_counts)) == field


@pytest.mark.parametrize("bad", [[0, 0], [-1, 3], [math.nan, 1]], ids=["empty", "neg", "nan"])
def test_percentile_ranks_and_inverse_refuse_bad_histograms(bad: list[float]) -> None:
    assert _field_of(lambda: percentile_ranks(bad)).startswith("counts")
    assert _field_of(lambda: inverse_percentile_rank(bad, [50])).startswith("y_counts")


def test_percentile_ranks_refuse_a_nan_score() -> None:
    with pytest.raises(MappingError) as caught:
        percentile_ranks([1, 2, 3, 4], [math.nan])
    assert caught.value.field.startswith("scores")


def test_inverse_percentile_rank_refuses_a_nan_rank() -> None:
    with pytest.raises(MappingError) as caught:
        inverse_percentile_rank([1, 2, 3, 4], [math.nan])
    assert caught.value.field.startswith("ranks")
