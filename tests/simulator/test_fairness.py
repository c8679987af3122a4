"""Fairness per threshold of a run's cities (from their summaries and tables), and the
grant rates and fairness gap on hand-built visits whose rates are known exactly."""

from __future__ import annotations

import pytest

from mappings import AllianceScale, LocalScale
from simulator.fairness import (
    CityThresholds,
    FairnessGap,
    GrantRate,
    PooledRateKey,
    RateKey,
    bucket_of,
    city_thresholds,
    describe_thresholds,
    fairness_cells,
    fairness_gap,
    grant_rates,
    pooled_grant_rates,
)
from simulator.observations import CityInfo, Outcome, Visit

SCALE = AllianceScale()


def _visits(
    count: int,
    granted: int,
    *,
    home: str,
    city: str,
    scenario: str = "library",
    percentile: float = 35.0,
    rest: Outcome = "denied",
) -> list[Visit]:
    """``count`` visits of which the first ``granted`` are granted and the rest ``rest``."""
    return [
        Visit(
            t=float(i),
            home=home,
            city=city,
            scenario=scenario,
            percentile=percentile,
            outcome="granted" if i < granted else rest,
        )
        for i in range(count)
    ]


def _cell(
    city: str,
    scenario: str,
    percentile: float,
    local: tuple[int, int],
    visitor: tuple[int, int],
) -> list[Visit]:
    """Locals and visitors (from another city) of one cell: (count, granted) each."""
    visitor_home = "hangzhou" if city == "fuzhou" else "fuzhou"
    return _visits(
        *local, home=city, city=city, scenario=scenario, percentile=percentile
    ) + _visits(*visitor, home=visitor_home, city=city, scenario=scenario, percentile=percentile)


def test_the_gap_is_the_largest_visitor_local_difference_and_says_where() -> None:
    visits = (
        _cell("xiamen", "library", 35.0, local=(40, 32), visitor=(30, 15))  # 0.8 vs 0.5
        + _cell("xiamen", "parking", 35.0, local=(30, 15), visitor=(30, 18))  # 0.5 vs 0.6
        + _cell("hangzhou", "library", 72.5, local=(50, 40), visitor=(50, 45))  # 0.8 vs 0.9
    )

    gap = fairness_gap(visits)

    assert gap.gap == pytest.approx(0.3)
    assert gap.where == ("xiamen", "library", 3)
    assert gap.local_rate == pytest.approx(0.8)
    assert gap.visitor_rate == pytest.approx(0.5)
    assert (gap.n_local, gap.n_visitor) == (40, 30)
    assert (gap.cells_compared, gap.cells_skipped) == (3, 0)


def test_a_gap_in_favour_of_visitors_counts_as_much_as_one_against_them() -> None:
    visits = _cell("xiamen", "library", 5.0, local=(30, 3), visitor=(30, 30))  # 0.1 vs 1.0

    gap = fairness_gap(visits)

    assert gap.gap == pytest.approx(0.9)
    assert fairness_cells(visits)[0][0].difference == pytest.approx(0.9)


def test_visitors_from_every_other_city_are_pooled_in_one_group() -> None:
    visits = (
        _visits(30, 30, home="xiamen", city="xiamen")
        + _visits(15, 15, home="fuzhou", city="xiamen")
        + _visits(15, 0, home="hangzhou", city="xiamen")
    )

    gap = fairness_gap(visits)

    assert gap.n_visitor == 30
    assert gap.visitor_rate == pytest.approx(0.5)
    assert gap.gap == pytest.approx(0.5)


def test_cells_under_min_samples_are_skipped_and_counted() -> None:
    visits = (
        _cell("xiamen", "library", 35.0, local=(30, 30), visitor=(29, 0))  # gap 1.0, too few
        + _cell("xiamen", "library", 55.0, local=(29, 0), visitor=(30, 30))  # gap 1.0, too few
        + _visits(80, 0, home="xiamen", city="xiamen", percentile=95.0)  # no visitors at all
        + _cell("fuzhou", "library", 35.0, local=(30, 21), visitor=(30, 18))  # 0.7 vs 0.6
    )

    gap = fairness_gap(visits)

    assert gap.gap == pytest.approx(0.1)
    assert gap.where == ("fuzhou", "library", 3)
    assert (gap.cells_compared, gap.cells_skipped) == (1, 3)
    assert fairness_gap(visits, min_samples=29).gap == pytest.approx(1.0)


def test_refused_and_unavailable_visits_are_ignored() -> None:
    decided = _cell("xiamen", "library", 35.0, local=(30, 24), visitor=(30, 15))
    undecided = _visits(100, 0, home="fuzhou", city="xiamen", rest="refused") + _visits(
        100, 0, home="xiamen", city="xiamen", rest="unavailable"
    )

    assert fairness_gap(decided + undecided) == fairness_gap(decided)
    assert grant_rates(decided + undecided) == grant_rates(decided)
    only_undecided = _visits(50, 0, home="fuzhou", city="xiamen", rest="refused")
    assert grant_rates(only_undecided) == {}


def test_grant_rates_count_by_city_scenario_group_and_bucket() -> None:
    visits = (
        _visits(4, 3, home="xiamen", city="xiamen", percentile=0.0)
        + _visits(5, 1, home="fuzhou", city="xiamen", percentile=9.99)
        + _visits(2, 2, home="xiamen", city="fuzhou", scenario="parking", percentile=100.0)
    )

    rates = grant_rates(visits)

    assert rates == {
        RateKey("fuzhou", "parking", "visitor", 9): GrantRate(2, 2),
        RateKey("xiamen", "library", "local", 0): GrantRate(3, 4),
        RateKey("xiamen", "library", "visitor", 0): GrantRate(1, 5),
    }
    assert list(rates) == sorted(rates)
    assert rates[RateKey("xiamen", "library", "local", 0)].rate == 0.75


def test_pooled_rates_sum_over_verifying_cities() -> None:
    visits = (
        _visits(10, 10, home="xiamen", city="xiamen", percentile=50.0)
        + _visits(10, 0, home="fuzhou", city="fuzhou", percentile=50.0)
        + _visits(4, 1, home="fuzhou", city="xiamen", percentile=50.0)
        + _visits(6, 2, home="xiamen", city="fuzhou", percentile=50.0)
    )

    assert pooled_grant_rates(visits) == {
        PooledRateKey("library", "local", 5): GrantRate(10, 20),
        PooledRateKey("library", "visitor", 5): GrantRate(3, 10),
    }


@pytest.mark.parametrize(
    ("percentile", "buckets", "bucket"),
    [
        (0.0, 10, 0),
        (9.999, 10, 0),
        (10.0, 10, 1),
        (35.0, 10, 3),
        (99.99, 10, 9),
        (100.0, 10, 9),
        (100.0, 11, 10),
        (50.0, 6, 3),
        (100.0, 1, 0),
    ],
)
def test_percentile_buckets(percentile: float, buckets: int, bucket: int) -> None:
    assert bucket_of(percentile, buckets) == bucket


def test_a_percentile_of_100_lands_in_the_last_bucket_of_the_gap() -> None:
    visits = _cell("xiamen", "library", 100.0, local=(30, 30), visitor=(30, 27))

    assert fairness_gap(visits).where == ("xiamen", "library", 9)
    assert fairness_gap(visits, buckets=4).where == ("xiamen", "library", 3)


@pytest.mark.parametrize("percentile", [-0.1, 100.1, float("nan")])
def test_a_percentile_outside_0_to_100_is_refused(percentile: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        grant_rates(_visits(1, 1, home="xiamen", city="xiamen", percentile=percentile))


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="buckets"):
        bucket_of(50.0, 0)
    with pytest.raises(ValueError, match="min_samples"):
        fairness_gap([], min_samples=0)


def test_no_qualifying_cell_gives_none_not_zero() -> None:
    visits = _cell("xiamen", "library", 35.0, local=(10, 10), visitor=(10, 0))

    gap = fairness_gap(visits)

    assert gap == FairnessGap(
        gap=None,
        where=None,
        local_rate=None,
        visitor_rate=None,
        n_local=0,
        n_visitor=0,
        cells_compared=0,
        cells_skipped=1,
    )
    assert gap.describe().startswith("n/a: no cell to compare (0 cells compared, 1 skipped")
    assert fairness_gap([]).gap is None
    assert fairness_gap([]).cells_skipped == 0


def test_a_tie_goes_to_the_first_cell_in_city_scenario_bucket_order() -> None:
    visits = (
        _cell("xiamen", "library", 35.0, local=(30, 30), visitor=(30, 15))
        + _cell("fuzhou", "parking", 85.0, local=(30, 15), visitor=(30, 30))
        + _cell("fuzhou", "library", 85.0, local=(30, 30), visitor=(30, 15))
    )

    assert fairness_gap(visits).where == ("fuzhou", "library", 8)
    assert fairness_gap(list(reversed(visits))).where == ("fuzhou", "library", 8)


def test_describe_names_the_gap_its_place_and_its_evidence() -> None:
    visits = _cell("xiamen", "library", 35.0, local=(40, 32), visitor=(30, 15))

    assert fairness_gap(visits).describe() == (
        "0.300 at xiamen / library / percentile 30–40: visitors 0.500 (n=30) vs "
        "locals 0.800 (n=40); 1 cells compared, 0 skipped (< 30 decided visits in a group)"
    )


def test_the_pooled_gap_compares_all_locals_with_all_visitors_in_coarser_buckets() -> None:
    from simulator.fairness import ALL_CITIES, pooled_fairness_gap

    # 20 locals per city at percentile 10 (bucket 0 of 5), all granted; 20 visitors from
    # each city elsewhere, granted one time in four: pooled, 40 locals vs 40 visitors.
    visits = []
    for home, away in (("xiamen", "fuzhou"), ("fuzhou", "xiamen")):
        visits += [Visit(0, home, home, "bike", 10.0, "granted") for _ in range(20)]
        visits += [
            Visit(0, home, away, "bike", 10.0, "granted" if i % 4 == 0 else "denied")
            for i in range(20)
        ]
    per_city = fairness_gap(visits)
    pooled = pooled_fairness_gap(visits)
    assert per_city.gap is None  # 20 locals per city: under 30
    assert pooled.where == (ALL_CITIES, "bike", 0)
    assert pooled.gap == pytest.approx(0.75)
    assert (pooled.n_local, pooled.n_visitor, pooled.buckets) == (40, 40, 5)


# --- fairness per threshold -----------------------------------------------------------------


def _graded_city(city: str, counts: list[int], alliance: list[float]) -> CityInfo:
    """A city on three grades whose table puts them at ``alliance`` (claims by hand)."""
    scale = LocalScale.grades("three", ["low", "middle", "high"])
    summary = {
        "city": city,
        "local_scale": scale.to_json(),
        "counts": counts,
        "snapshot": "2026-11-01",
        "model_version": "m1",
    }
    table = {
        "city": city,
        "local_scale": scale.to_json(),
        "knots": [[i, a, None] for i, a in enumerate(alliance)],
        "version": 1,
        "valid_from": 0,
        "valid_to": 1,
        "scale_sha256": SCALE.sha256,
        "alliance_range": [0, 1000],
    }
    return CityInfo(city, "three", f"https://{city}.example", 4, 0, 0, summary, table)


def test_each_city_is_measured_from_its_summary_and_table() -> None:
    # 1 low, 2 middle, 1 high; middle at 600: 75% reach 600 against the reference's 50.2%,
    # which is the nearest a table can come (the other choice, 25%, is further).
    measured = city_thresholds([_graded_city("sanming", [1, 2, 1], [400, 600, 700])], SCALE)
    assert [c.city for c in measured] == ["sanming"]
    assert measured[0].problem is None
    at_600 = measured[0].shares[1]
    assert (at_600.threshold, at_600.city_share, at_600.straddling_point) == (600, 0.75, "middle")
    assert at_600.meets_goal


def test_a_city_without_a_table_or_summary_or_with_a_bad_one_says_why() -> None:
    good = _graded_city("sanming", [1, 2, 1], [400, 600, 700])
    no_table = CityInfo("longyan", "x", "https://l.example", 0, 0, 0, good.summary, {})
    no_summary = CityInfo("putian", "x", "https://p.example", 0, 0, 0, {}, good.table)
    other_city = CityInfo("ningde", "x", "https://n.example", 0, 0, 0, good.summary, good.table)
    measured = city_thresholds([no_table, no_summary, other_city], SCALE)
    assert [(c.city, c.shares) for c in measured] == [
        ("longyan", ()), ("putian", ()), ("ningde", ()),
    ]  # fmt: skip
    assert [c.problem for c in measured] == [
        "no mapping table",
        "no distribution summary",
        "cannot be measured: city: the summary is sanming's, not ningde's",
    ]


def test_describe_thresholds_counts_the_goal_and_names_the_misses() -> None:
    fair = _graded_city("sanming", [1, 2, 1], [400, 600, 700])
    unfair = _graded_city("longyan", [1, 2, 1], [400, 590, 700])  # middle short of 600
    line = describe_thresholds(city_thresholds([fair, unfair], SCALE))
    assert line.startswith(
        "✗ goal met at 9 of 10 (city, threshold) pairs: 0 within 1 pp of the reference "
        "share, 9 at the least error of a coarser scale; "
    )
    assert "missed: longyan ≥ 600 (MISSED by 0.40 pp)" in line
    # the largest |difference|: 25.2 pp at longyan's 600 (25% against 50.2%)
    assert "largest difference -25.20 pp at longyan ≥ 600 (least error 24.80 pp: its point " in line
    assert line.endswith("middle holds 50.0% of the city)")


def test_describe_thresholds_with_nothing_measured() -> None:
    assert describe_thresholds([]) == "n/a: no city with a table and a summary"
    unmeasured = [CityThresholds("longyan", (), "no mapping table")]
    assert describe_thresholds(unmeasured) == (
        "n/a: no city with a table and a summary; not measured: longyan"
    )
