"""Scales: local scales of any shape and the alliance scale (DESIGN section 4)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mappings import AllianceScale, Band, LocalScale, MappingError, normal_reference

# --- local scales -----------------------------------------------------------------------


def test_an_integer_scale_with_a_non_zero_min() -> None:
    scale = LocalScale("lark", 350, 950)
    assert scale.size == 601
    assert scale.values[0] == 350
    assert scale.values[-1] == 950
    assert scale.index_of(350) == 0
    assert scale.index_of(950) == 600
    assert scale.score_at(17) == 367
    assert isinstance(scale.score_at(17), int)


def test_a_stepped_scale() -> None:
    scale = LocalScale("stepped", 300, 900, step=10)
    assert scale.size == 61
    np.testing.assert_array_equal(scale.values, np.arange(300, 901, 10))
    assert scale.index_of(310) == 1
    assert scale.index_of(315) == 1.5  # between two points: a fractional index
    assert scale.score_at(1.4) == 310
    assert scale.score_at(1.6) == 320
    np.testing.assert_array_equal(scale.indices_of([300, 900]), [0, 60])


def test_an_ordinal_scale_of_grades() -> None:
    scale = LocalScale.grades("grade", ["D", "C", "B", "A", "AA", "AAA"])
    assert scale.size == 6
    assert (scale.min, scale.max, scale.step) == (0, 5, 1)
    assert scale.index_of("D") == 0
    assert scale.index_of("AAA") == 5
    assert scale.score_at(3.2) == "A"
    assert scale.score_at(-4) == "D"
    assert scale.score_at(99) == "AAA"


def test_many_grades_at_once() -> None:
    scale = LocalScale.grades("grade", ["D", "C", "B", "A", "AA", "AAA"])
    np.testing.assert_array_equal(scale.indices_of(["AA", "C"]), [4, 1])
    np.testing.assert_array_equal(scale.indices_of(np.array(["D", "AAA"])), [0, 5])


def test_score_at_clamps_to_the_scale() -> None:
    scale = LocalScale("lark", 350, 950)
    assert scale.score_at(-3) == 350
    assert scale.score_at(10_000) == 950


@pytest.mark.parametrize(
    "scale",
    [
        LocalScale("egret", 0, 1000),
        LocalScale("lark", 350, 950),
        LocalScale("stepped", 300, 900, step=10),
        LocalScale("fine", 0, 1, step=0.25),
        LocalScale.grades("grade", ["D", "C", "B", "A", "AA", "AAA"]),
    ],
    ids=["egret", "lark", "stepped", "fine", "grades"],
)
def test_a_local_scale_survives_its_json(scale: LocalScale) -> None:
    assert LocalScale.from_json(scale.to_json()) == scale


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: LocalScale("x", 10, 10), "local_scale.max"),
        (lambda: LocalScale("x", 10, 5), "local_scale.max"),
        (lambda: LocalScale("x", 300, 900, step=7), "local_scale.step"),
        (lambda: LocalScale("x", 0, 10, step=0), "local_scale.step"),
        (lambda: LocalScale("x", 0, 10, step=-1), "local_scale.step"),
        (lambda: LocalScale("x", 0, math.inf), "local_scale.max"),
        (lambda: LocalScale("x", math.nan, 10), "local_scale.min"),
        (lambda: LocalScale("x", "0", 10), "local_scale.min"),  # type: ignore[arg-type]
        (lambda: LocalScale("x", True, 10), "local_scale.min"),
        (lambda: LocalScale("", 0, 10), "local_scale.name"),
        (lambda: LocalScale("x", 0, 200_000), "local_scale"),
        (lambda: LocalScale.grades("g", ["D", "C", "C", "A"]), "local_scale.labels"),
        (lambda: LocalScale.grades("g", ["D", "", "A"]), "local_scale.labels"),
        (lambda: LocalScale.grades("g", ["D"]), "local_scale.labels"),
        (lambda: LocalScale.grades("g", ["D", 2]), "local_scale.labels"),  # type: ignore[list-item]
        (lambda: LocalScale("g", 0, 3, 1, ("D", "C")), "local_scale.labels"),
        (lambda: LocalScale.from_json([0, 10]), "local_scale"),
        (lambda: LocalScale.from_json({"name": "x", "min": 0}), "local_scale.max"),
        (lambda: LocalScale.from_json({"name": "g", "labels": "DCBA"}), "local_scale.labels"),
    ],
    ids=[
        "max-equals-min",
        "max-below-min",
        "step-does-not-divide",
        "step-zero",
        "step-negative",
        "max-infinite",
        "min-nan",
        "min-text",
        "min-bool",
        "no-name",
        "too-many-points",
        "duplicate-grades",
        "empty-grade",
        "one-grade",
        "grade-not-text",
        "label-count",
        "json-not-object",
        "json-missing-max",
        "json-labels-not-list",
    ],
)
def test_bad_local_scales_are_refused(make: Any, field: str) -> None:
    with pytest.raises(MappingError) as caught:
        make()
    assert caught.value.field == field


@pytest.mark.parametrize(
    "score", [-1, 1001, 1000.5, math.nan, math.inf, "700", None, True], ids=repr
)
def test_a_score_outside_the_scale_is_refused(score: Any) -> None:
    with pytest.raises(MappingError) as caught:
        LocalScale("egret", 0, 1000).index_of(score)
    assert caught.value.field == "score"


@pytest.mark.parametrize("scores", [[0, 1001], [-0.5, 3], [1, math.nan]], ids=str)
def test_scores_outside_the_scale_are_refused(scores: list[float]) -> None:
    with pytest.raises(MappingError) as caught:
        LocalScale("egret", 0, 1000).indices_of(scores)
    assert caught.value.field == "scores"


def test_an_unknown_grade_is_refused() -> None:
    scale = LocalScale.grades("grade", ["D", "C", "B", "A"])
    with pytest.raises(MappingError) as caught:
        scale.index_of("E")
    assert caught.value.field == "score"


def test_an_unknown_grade_among_many_is_refused() -> None:
    scale = LocalScale.grades("grade", ["D", "C", "B", "A"])
    with pytest.raises(MappingError) as caught:
        scale.indices_of(["A", "E"])
    assert caught.value.field == "scores"


@pytest.mark.parametrize(
    "make",
    [
        lambda: LocalScale.grades("g", [["a"], ["b"]]),  # type: ignore[list-item]
        lambda: LocalScale.from_json({"name": "g", "labels": [["a"], ["b"]]}),
    ],
    ids=["grades", "from_json"],
)
def test_grades_that_are_lists_are_refused(make: Any) -> None:
    with pytest.raises(MappingError) as caught:
        make()
    assert caught.value.field == "local_scale.labels"


# --- the alliance scale -------------------------------------------------------------------


def test_the_default_alliance_scale_follows_design_section_4() -> None:
    scale = AllianceScale()
    assert (scale.min, scale.max, scale.size) == (0, 1000, 1001)
    assert scale.thresholds == (550, 600, 650, 700, 750)
    bands = {s: scale.band_of(s) for s in (0, 549, 550, 599, 600, 699, 700, 749, 750, 1000)}
    assert bands == {
        0: "poor",
        549: "poor",
        550: "fair",
        599: "fair",
        600: "good",
        699: "good",
        700: "very_good",
        749: "very_good",
        750: "excellent",
        1000: "excellent",
    }


def test_the_reference_distribution_is_a_discretised_normal() -> None:
    """Point k holds P(k - .5 < Z <= k + .5) for Z ~ N(600, 100), renormalised to the
    scale: an independent computation with math.erf."""
    scale = AllianceScale()

    def cdf(z: float) -> float:
        return 0.5 * (1 + math.erf((z - 600) / (100 * math.sqrt(2))))

    raw = [cdf(k + 0.5) - cdf(k - 0.5) for k in range(1001)]
    expected = np.array(raw) / sum(raw)
    np.testing.assert_allclose(scale.reference, expected, rtol=1e-9, atol=1e-15)
    assert math.isclose(scale.reference.sum(), 1.0, rel_tol=1e-12)
    assert np.all(scale.reference > 0)
    assert math.isclose(scale.reference_counts(1e9).sum(), 1e9, rel_tol=1e-12)
    # A resident at the 84th percentile gets about 700 (DESIGN section 4).
    cumulative = np.cumsum(scale.reference)
    assert abs(int(np.searchsorted(cumulative, 0.8413)) - 700) <= 1


def test_the_reference_of_a_scale_with_a_non_zero_min_is_centred_on_the_mean_score() -> None:
    """On 300..900 with mean 600, point k is the score 300 + k and holds
    P(300 + k - .5 < Z <= 300 + k + .5) for Z ~ N(600, 100), renormalised."""
    scale = AllianceScale(
        min=300, max=900, bands=(Band("low", 300), Band("high", 600)), thresholds=(600,)
    )

    def cdf(z: float) -> float:
        return 0.5 * (1 + math.erf((z - 600) / (100 * math.sqrt(2))))

    raw = [cdf(300 + k + 0.5) - cdf(300 + k - 0.5) for k in range(601)]
    np.testing.assert_allclose(scale.reference, np.array(raw) / sum(raw), rtol=1e-9, atol=1e-15)
    mean = float(np.sum(scale.reference * (300 + np.arange(601))))
    assert abs(mean - 600) < 1e-6


def test_normal_reference_refuses_a_non_positive_sd() -> None:
    with pytest.raises(MappingError) as caught:
        normal_reference(600, 0, 1001)
    assert caught.value.field == "scale.reference.sd"


def test_the_alliance_scale_survives_its_json_and_hashes_its_content() -> None:
    scale = AllianceScale()
    again = AllianceScale.from_json(scale.to_json())
    assert again == scale
    assert again.sha256 == scale.sha256
    assert len(scale.sha256) == 64
    assert AllianceScale(mean=550).sha256 != scale.sha256
    assert AllianceScale(thresholds=(550, 600, 650, 700)).sha256 != scale.sha256


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: AllianceScale(reference_kind="uniform"), "scale.reference.kind"),
        (lambda: AllianceScale(min=10, max=10), "scale.max"),
        (lambda: AllianceScale(min=-1), "scale.max"),
        (lambda: AllianceScale(bands=(Band("a", 5),)), "scale.bands"),
        (lambda: AllianceScale(bands=(Band("a", 0), Band("b", 0))), "scale.bands"),
        (lambda: AllianceScale(thresholds=(600, 550)), "scale.thresholds"),
        (lambda: AllianceScale(thresholds=(0, 550)), "scale.thresholds"),
        (lambda: AllianceScale(thresholds=(550, 1001)), "scale.thresholds"),
        (lambda: AllianceScale(sd=0), "scale.reference.sd"),
        (lambda: AllianceScale.from_json([]), "scale"),
        (lambda: AllianceScale.from_json({"min": 0}), "scale.reference"),
        (
            lambda: AllianceScale.from_json({**AllianceScale().to_json(), "max": "top"}),
            "scale",
        ),
    ],
)
def test_bad_alliance_scales_are_refused(make: Any, field: str) -> None:
    with pytest.raises(MappingError) as caught:
        make()
    assert caught.value.field == field
