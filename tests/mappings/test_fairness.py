"""Fairness per threshold (issue 18, docs/MAPPINGS.md section 13): the share of a city's
residents whose alliance score reaches each published threshold, beside the reference
distribution's share, and the least error any monotone table could reach there."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings import (
    GOAL_TOLERANCE,
    AllianceScale,
    DistributionSummary,
    LocalScale,
    MappingError,
    MappingTable,
    build_table,
    threshold_shares,
)
from tests.conftest import NOW

from .strategies import PROPERTY, histograms

SCALE = AllianceScale()
VALID_TO = NOW + 90 * 86400
TABLES = Path(__file__).parent.parent.parent / "mappings" / "tables"
THREE = LocalScale.grades("three", ["low", "middle", "high"])


def reference_share(threshold: int) -> float:
    """The default reference's mass at >= threshold, from the normal CDF itself: the
    integers' cells (k - .5, k + .5] over 0..1000, renormalised (docs/MAPPINGS.md 3)."""
    normal = NormalDist(600, 100)
    top = normal.cdf(1000.5)
    return (top - normal.cdf(threshold - 0.5)) / (top - normal.cdf(-0.5))


def summary_of(scale: LocalScale, counts: Any) -> DistributionSummary:
    return DistributionSummary(
        "sanming", scale, np.asarray(counts, dtype=float), "2026-11-01", "m1"
    )


def built(summary: DistributionSummary, **options: Any) -> MappingTable:
    return build_table(summary, SCALE, version=1, valid_from=NOW, valid_to=VALID_TO, **options)


def by_hand(scale: LocalScale, alliance: list[float]) -> MappingTable:
    """A table whose knots are written by hand: one per point of ``scale``."""
    positions = range(scale.size) if scale.labels else scale.values
    return MappingTable(
        city="sanming",
        local_scale=scale,
        knots=tuple((float(x), a, None) for x, a in zip(positions, alliance, strict=True)),
        version=1,
        valid_from=NOW,
        valid_to=VALID_TO,
        scale_sha256=SCALE.sha256,
    )


# --- hand-worked ---------------------------------------------------------------------------


def test_three_grades_by_hand() -> None:
    # 1 low, 2 middle, 1 high: the shares a monotone table can give are the upper tails
    # 1, .75, .25 and 0. The table puts low at 400, middle at 600, high at 800.
    table = by_hand(THREE, [400, 600, 800])
    shares = {s.threshold: s for s in threshold_shares(summary_of(THREE, [1, 2, 1]), table, SCALE)}
    assert list(shares) == [550, 600, 650, 700, 750]
    at_600 = shares[600]
    assert at_600.city_share == 0.75  # middle and high reach 600
    assert at_600.reference_share == pytest.approx(reference_share(600), abs=1e-12)
    assert at_600.reference_share == pytest.approx(0.5020, abs=1e-4)
    assert at_600.least_error == pytest.approx(
        0.75 - reference_share(600), abs=1e-12
    )  # .248 < .252
    assert (at_600.straddling_point, at_600.straddling_share) == ("middle", 0.5)
    assert at_600.at_floor
    assert at_600.meets_goal
    # 650: only high (800) reaches it, .25 of the city, against .31: the nearest tail is
    # .25 (the other is .75), so this table is at the floor there too.
    assert shares[650].city_share == 0.25
    assert shares[650].least_error == pytest.approx(reference_share(650) - 0.25, abs=1e-12)
    assert shares[650].error == pytest.approx(0.25 - reference_share(650), abs=1e-12)
    assert shares[650].at_floor
    # 550: middle and high reach it, .75 against .69: the floor is .75 - .69 < .31.
    assert shares[550].city_share == 0.75
    assert shares[550].at_floor


def test_a_table_that_cuts_at_the_wrong_point_is_off_the_floor() -> None:
    # The same city, but the table puts middle at 590: at 600 only high reaches it (.25),
    # .252 from the reference where .75 was .248 from it. Beyond the floor, and a coarse
    # scale's tolerance is the floor: the goal is missed.
    table = by_hand(THREE, [400, 590, 800])
    at_600 = threshold_shares(summary_of(THREE, [1, 2, 1]), table, SCALE)[1]
    assert at_600.threshold == 600
    assert at_600.city_share == 0.25
    assert at_600.least_error == pytest.approx(0.248, abs=1e-3)
    assert abs(at_600.error) > at_600.least_error
    assert at_600.tolerance == at_600.least_error > GOAL_TOLERANCE
    assert not at_600.at_floor
    assert not at_600.meets_goal


def test_unsmoothed_linking_reaches_the_floor_on_a_coarse_scale() -> None:
    # Grades whose every point holds more than 2% of the city: the floor is above 1
    # percentage point at most thresholds, and the equipercentile table reaches it.
    grades = LocalScale.grades("g", ["D", "C", "B", "A", "AA", "AAA"])
    summary = summary_of(grades, [2, 5, 15, 38, 28, 12])
    shares = threshold_shares(summary, built(summary), SCALE)
    # The upper tails are 1, .98, .93, .78 (A and up), .40 (AA and up), .12 (AAA) and 0;
    # e.g. 600: the reference's .502 lies between .40 and .78, nearer .40.
    r = reference_share
    assert [s.least_error for s in shares] == pytest.approx(
        [0.78 - r(550), r(600) - 0.40, 0.40 - r(650), r(700) - 0.12, 0.12 - r(750)], abs=1e-12
    )
    assert all(s.least_error > GOAL_TOLERANCE for s in shares)
    assert all(s.at_floor and s.meets_goal for s in shares)
    assert [s.straddling_point for s in shares] == ["A", "A", "AA", "AA", "AAA"]


def test_a_fine_scale_has_a_floor_near_zero_and_meets_one_point() -> None:
    scale = LocalScale("egret", 0, 1000)
    values = scale.values
    counts = np.rint(1e6 * np.exp(-0.5 * ((values - 640) / 70) ** 2) / 175.5)
    summary = summary_of(scale, counts)
    for share in threshold_shares(summary, built(summary), SCALE):
        assert share.least_error < 0.003  # no point holds more than ~0.6% of the city
        assert share.straddling_share < 0.006
        assert share.tolerance == GOAL_TOLERANCE
        assert abs(share.error) <= share.least_error + 1e-12
        assert share.meets_goal


def test_a_shifted_table_misses_the_goal_on_a_fine_scale() -> None:
    scale = LocalScale("pct", 0, 100)
    counts = np.rint(1e5 * np.exp(-0.5 * ((scale.values - 60) / 15) ** 2))
    summary = summary_of(scale, counts)
    good = built(summary)
    shifted = by_hand(scale, [min(a + 25, 1000) for _, a, _ in good.knots])  # 25 points generous
    for share in threshold_shares(summary, shifted, SCALE):
        assert share.error > GOAL_TOLERANCE  # a quarter SD up: 7-10 points more reach it
        assert not share.meets_goal


def test_smoothing_a_heaped_population_misses_a_threshold_that_the_plain_link_meets() -> None:
    # Quanzhou's demo histogram is heaped on multiples of 5 and 10, and it is the whole
    # city, not a sample: log-linear presmoothing moves the heaps' mass to their
    # neighbours, so the cut at 600 no longer falls where the residents are.
    summary = DistributionSummary.from_json(
        json.loads((TABLES / "quanzhou.summary.json").read_text(encoding="utf-8"))
    )
    smoothed = threshold_shares(
        summary, built(summary, smoothing=("loglinear", 6), standard_errors=None), SCALE
    )
    plain = threshold_shares(summary, built(summary), SCALE)
    assert not all(s.meets_goal for s in smoothed)
    missed = next(s for s in smoothed if not s.meets_goal)
    assert missed.threshold == 600
    assert abs(missed.error) > 0.02
    assert all(s.at_floor and s.meets_goal for s in plain)


def test_a_point_above_the_reference_share_can_leave_a_floor_of_zero() -> None:
    # When an upper tail equals the reference share exactly, the floor is 0 and the
    # straddling point is the lowest point of that tail.
    scale = LocalScale("two", 0, 1)
    shares = threshold_shares(
        summary_of(scale, [1 - reference_share(600), reference_share(600)]),
        by_hand(scale, [500, 700]),
        SCALE,
    )
    at_600 = shares[1]
    assert at_600.least_error == pytest.approx(0, abs=1e-12)
    assert at_600.straddling_point == 1
    assert at_600.at_floor


# --- refusals -------------------------------------------------------------------------------


def test_a_table_for_another_alliance_scale_is_refused() -> None:
    summary = summary_of(THREE, [1, 2, 1])
    other = AllianceScale(mean=500)
    with pytest.raises(MappingError) as caught:
        threshold_shares(summary, built(summary), other)
    assert caught.value.field == "scale_sha256"


def test_another_city_s_summary_is_refused() -> None:
    other = DistributionSummary("longyan", THREE, np.array([1.0, 2, 1]), "2026-11-01", "m1")
    with pytest.raises(MappingError) as caught:
        threshold_shares(other, by_hand(THREE, [400, 600, 800]), SCALE)
    assert caught.value.field == "city"
    assert str(caught.value) == "city: the summary is longyan's, the table sanming's"


def test_a_summary_on_another_local_scale_is_refused() -> None:
    table = by_hand(THREE, [400, 600, 800])
    with pytest.raises(MappingError) as caught:
        threshold_shares(summary_of(LocalScale("pct", 0, 2), [1, 2, 1]), table, SCALE)
    assert caught.value.field == "local_scale"
    assert "pct" in str(caught.value)
    assert "three" in str(caught.value)


# --- properties -----------------------------------------------------------------------------


@st.composite
def histograms_and_monotone_tables(draw: st.DrawFn) -> tuple[DistributionSummary, MappingTable]:
    counts = draw(histograms())
    scale = LocalScale("k", 0, len(counts) - 1)
    steps = draw(st.lists(st.floats(0, 80), min_size=len(counts), max_size=len(counts)))
    start = draw(st.floats(200, 600))
    return summary_of(scale, counts), by_hand(scale, list(start + np.cumsum(steps)))


@PROPERTY
@given(case=histograms_and_monotone_tables())
def test_no_monotone_table_beats_the_floor(case: tuple[DistributionSummary, MappingTable]) -> None:
    summary, table = case
    tails = np.append(np.cumsum((summary.counts / summary.counts.sum())[::-1])[::-1], 0)
    for share in threshold_shares(summary, table, SCALE):
        assert abs(share.error) >= share.least_error - 1e-12
        # what the table grants is one of the upper tails: it cannot split a point
        assert np.min(np.abs(tails - share.city_share)) < 1e-12
        # the unsplittable point bounds the floor: at most half its mass
        assert share.least_error <= share.straddling_share / 2 + 1e-12


@PROPERTY
@given(counts=histograms())
def test_unsmoothed_equipercentile_always_reaches_the_floor(counts: list[int]) -> None:
    summary = summary_of(LocalScale("k", 0, len(counts) - 1), counts)
    for share in threshold_shares(summary, built(summary), SCALE):
        assert share.at_floor, share
        assert share.meets_goal


def test_the_verdict_says_which_goal_was_met_or_by_how_much_it_was_missed() -> None:
    table = by_hand(THREE, [400, 600, 800])
    shares = threshold_shares(summary_of(THREE, [1, 2, 1]), table, SCALE)
    assert shares[1].verdict == "met: at the floor"  # .248 off, the floor
    missed = threshold_shares(summary_of(THREE, [1, 2, 1]), by_hand(THREE, [400, 590, 800]), SCALE)
    beyond = abs(missed[1].error) - missed[1].least_error  # .252 - .248
    assert missed[1].verdict == f"MISSED by {100 * beyond:.2f} pp"
    assert missed[1].verdict == "MISSED by 0.40 pp"
    scale = LocalScale("egret", 0, 1000)
    fine = summary_of(scale, np.rint(1e6 * np.exp(-0.5 * ((scale.values - 640) / 70) ** 2)))
    shares = threshold_shares(fine, built(fine), SCALE)
    assert {s.verdict for s in shares} == {"met: within 1 pp"}
    assert all(s.within_one_point for s in shares)
    assert not threshold_shares(summary_of(THREE, [1, 2, 1]), table, SCALE)[1].within_one_point
