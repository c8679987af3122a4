"""Hypothesis strategies and settings shared by the mappings tests."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st

# Modest and reproducible: the whole mappings suite should stay well under 20 s.
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True)
QUICK = settings(max_examples=15, deadline=None, derandomize=True)


def histograms(
    min_size: int = 2, max_size: int = 41, *, empty_points: bool = True, max_count: int = 500
) -> st.SearchStrategy[list[int]]:
    """Frequencies of score points 0..K, never all zero; with ``empty_points`` a point
    is often 0 (including runs of empty points and empty ends)."""
    count = (
        st.one_of(st.just(0), st.integers(1, max_count))
        if empty_points
        else st.integers(1, max_count)
    )
    return st.lists(count, min_size=min_size, max_size=max_size).filter(lambda c: sum(c) > 0)


@st.composite
def histograms_with_isolated_empty_points(draw: st.DrawFn) -> list[int]:
    """Positive frequencies with some points emptied, never two neighbours (a run of
    empty points shares one percentile rank, so no link can tell its points apart)."""
    counts = draw(st.lists(st.integers(1, 500), min_size=3, max_size=41))
    empty = draw(st.lists(st.booleans(), min_size=len(counts), max_size=len(counts)))
    for i, make_empty in enumerate(empty):
        if make_empty and (i == 0 or counts[i - 1] != 0) and sum(counts) > counts[i]:
            counts[i] = 0
    return counts
