"""Mapping tables (DESIGN section 8, docs/PROTOCOL.md section 7a): built from a city's
distribution summary, applied piecewise-linearly then rounded half up and clamped,
published as canonical claims signed by the alliance key."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import protocol as P
from mappings import (
    AllianceScale,
    Band,
    DistributionSummary,
    LocalScale,
    MappingError,
    MappingTable,
    build_table,
    choose_loglinear_degree,
    compose,
    link_equipercentile,
    loglinear_smooth,
)
from mappings._scale import round_half_up
from protocol._jws import sign_jws
from tests.conftest import ALLIANCE, NOW, ec_key, ed_key

from . import kolen_brennan as kb
from .strategies import PROPERTY, QUICK, histograms

SCALE = AllianceScale()
Q_REFERENCE = kb.InversePercentileRank(SCALE.reference.tolist())
VALID_TO = NOW + 90 * 86400
GRADES = ("D", "C", "B", "A", "AA", "AAA")


def bell(size: int, centre: float, width: float, total: float = 50_000) -> list[int]:
    """A smooth histogram with scores at every point."""
    weights = [np.exp(-0.5 * ((k - centre) / width) ** 2) for k in range(size)]
    return [1 + round(total * w / sum(weights)) for w in weights]


def summary(scale: LocalScale, counts: Any, city: str = "xiamen", **extra: Any) -> Any:
    return DistributionSummary(
        city=city,
        local_scale=scale,
        counts=np.asarray(counts, dtype=float),
        snapshot="2026-12-31",
        model_version="egret-7",
        **extra,
    )


def table_of(scale: LocalScale, counts: Any, city: str = "xiamen", **options: Any) -> MappingTable:
    return build_table(
        summary(scale, counts, city), SCALE, version=3, valid_from=NOW, valid_to=VALID_TO, **options
    )


def hand_table(knots: Any, scale: LocalScale | None = None, **fields: Any) -> MappingTable:
    """A table with knots written by hand, to check applying exactly."""
    defaults: dict[str, Any] = {
        "city": "xiamen",
        "local_scale": scale or LocalScale("ten", 0, 10),
        "knots": tuple(knots),
        "version": 1,
        "valid_from": NOW,
        "valid_to": VALID_TO,
        "scale_sha256": SCALE.sha256,
    }
    return MappingTable(**{**defaults, **fields})


LARK = LocalScale("lark", 350, 950)
STEPPED = LocalScale("stepped", 300, 900, step=10)
GRADED = LocalScale.grades("grade", GRADES)
LARK_TABLE = table_of(LARK, bell(601, 320, 90))
STEPPED_TABLE = table_of(STEPPED, bell(61, 25, 12))
GRADED_TABLE = table_of(GRADED, [120, 340, 800, 950, 600, 190])


@st.composite
def local_scales_with_counts(draw: st.DrawFn) -> tuple[LocalScale, list[int]]:
    """A histogram and a local scale of the same number of points, of any shape."""
    counts = draw(histograms(min_size=2, max_size=41))
    size = len(counts)
    shape = draw(st.sampled_from(["from-zero", "non-zero-min", "stepped", "grades"]))
    if shape == "from-zero":
        scale = LocalScale("egret", 0, size - 1)
    elif shape == "non-zero-min":
        scale = LocalScale("lark", 350, 350 + size - 1)
    elif shape == "stepped":
        scale = LocalScale("stepped", 300, 300 + 10 * (size - 1), step=10)
    else:
        scale = LocalScale.grades("grade", [f"G{i}" for i in range(size)])
    return scale, counts


def points_of(scale: LocalScale) -> list[Any]:
    """Every score point of a scale as a score (a number or a grade)."""
    return [scale.score_at(i) for i in range(scale.size)]


# --- properties --------------------------------------------------------------------------


@PROPERTY
@given(case=local_scales_with_counts())
def test_the_percentile_rank_is_preserved_on_the_reference_within_half_a_point(
    case: tuple[LocalScale, list[int]],
) -> None:
    """For each local score x, apply(x) is Q(P_X(x)) rounded, Q the inverse percentile
    rank of the alliance's reference distribution, both computed here plainly from
    K&B's definitions (eqs. 2.14, 2.18, 2.19)."""
    scale, counts = case
    table = table_of(scale, counts)
    for i, score in enumerate(points_of(scale)):
        expected = Q_REFERENCE(kb.percentile_rank(counts, i)) + SCALE.min
        assert abs(table.apply(score) - expected) <= 0.5 + 1e-6, (i, score)


@PROPERTY
@given(case=local_scales_with_counts())
def test_a_table_maps_ends_into_the_alliance_range_and_never_falls(
    case: tuple[LocalScale, list[int]],
) -> None:
    scale, counts = case
    table = table_of(scale, counts)
    points = points_of(scale)
    applied = [table.apply(score) for score in points]
    assert all(isinstance(a, int) for a in applied)
    assert SCALE.min <= applied[0] <= applied[-1] <= SCALE.max
    assert table.equivalent(points[0]) <= table.equivalent(points[-1])
    assert applied == sorted(applied)
    knots = np.array([k[1] for k in table.knots])
    assert np.all(np.diff(knots) >= 0)


@PROPERTY
@given(case=local_scales_with_counts())
def test_there_and_back_returns_the_score_where_the_curve_rises(
    case: tuple[LocalScale, list[int]],
) -> None:
    """A -> alliance -> A, through compose(table, table, x), returns x within one local
    step wherever the alliance equivalents rise strictly around x."""
    scale, counts = case
    table = table_of(scale, counts)
    alliance = [k[1] for k in table.knots]
    for i, score in enumerate(points_of(scale)):
        rises_before = i == 0 or alliance[i - 1] < alliance[i]
        rises_after = i == scale.size - 1 or alliance[i] < alliance[i + 1]
        if rises_before and rises_after:
            back = compose(table, table, score)
            assert abs(scale.index_of(back) - i) <= 1, (i, score, back)


@PROPERTY
@given(case=local_scales_with_counts())
def test_canonical_claims_round_trip(case: tuple[LocalScale, list[int]]) -> None:
    scale, counts = case
    table = table_of(scale, counts)
    claims = table.to_claims()
    again = MappingTable.from_claims(json.loads(json.dumps(claims)))
    assert again == table
    assert again.to_claims() == claims
    assert again.sha256 == table.sha256 == P.mapping_table_hash(claims)


@QUICK
@given(counts=histograms(min_size=2, max_size=41), min_score=st.sampled_from([0, 1, 350]))
def test_the_integer_fast_path_gives_the_float_path_results(
    counts: list[int], min_score: int
) -> None:
    scale = LocalScale("city", min_score, min_score + len(counts) - 1)
    table = table_of(scale, counts)
    scores = np.arange(min_score, min_score + len(counts))
    by_int = table.apply(scores)
    by_float = table.apply(scores.astype(np.float64))
    one_by_one = [table.apply(int(s)) for s in scores]
    np.testing.assert_array_equal(by_int, by_float)
    assert by_int.tolist() == one_by_one
    assert by_int.dtype == by_float.dtype == np.int64


# --- scales of any shape -------------------------------------------------------------------


def test_a_table_for_a_scale_with_a_non_zero_min() -> None:
    table = LARK_TABLE
    assert len(table.knots) == 601
    assert table.knots[0][0] == 350
    assert table.knots[-1][0] == 950
    assert table.apply(350) >= 0
    assert table.apply(950) <= 1000
    # The city's median maps near the reference's median (600), its 84th percentile
    # near 700 (DESIGN section 4).
    assert abs(table.apply(350 + 320) - 600) <= 2
    assert abs(table.apply(350 + 320 + 90) - 700) <= 3
    scores = np.array([350, 500, 670, 950])
    np.testing.assert_array_equal(table.apply(scores), [table.apply(int(s)) for s in scores])
    np.testing.assert_array_equal(table.apply(scores.astype(float)), table.apply(scores))
    assert table.to_local(600) == 670
    assert isinstance(table.to_local(600), int)
    np.testing.assert_array_equal(table.to_local(np.array([0, 1000])), [350, 950])


def test_a_table_for_a_stepped_scale() -> None:
    table = STEPPED_TABLE
    assert [k[0] for k in table.knots] == list(range(300, 901, 10))
    applied = table.apply(np.array([300, 310, 550, 900]))
    assert applied.tolist() == [table.apply(s) for s in (300, 310, 550, 900)]
    assert applied.tolist() == sorted(applied.tolist())
    # A score between two points is interpolated between their knots.
    halfway = (table.equivalent(550) + table.equivalent(560)) / 2
    assert table.equivalent(555) == pytest.approx(halfway, abs=1e-9)
    assert table.to_local(table.apply(550)) == 550


def test_a_table_for_ordinal_grades() -> None:
    table = GRADED_TABLE
    applied = [table.apply(grade) for grade in GRADES]
    assert applied == sorted(applied)
    assert len(set(applied)) == len(GRADES)
    assert [k[0] for k in table.knots] == [0, 1, 2, 3, 4, 5]
    assert table.to_local(table.apply("A")) == "A"
    assert table.to_local(0) == "D"
    assert table.to_local(1000) == "AAA"
    assert table.to_local(np.array([0, 1000])) == ["D", "AAA"]
    assert all(table.to_local(s) in GRADES for s in range(0, 1001, 50))
    with pytest.raises(MappingError) as caught:
        table.apply("E")
    assert caught.value.field == "score"
    with pytest.raises(MappingError) as caught:
        table.apply(3)
    assert caught.value.field == "score"


@pytest.mark.parametrize("grades", [["D", "AAA"], np.array(["D", "AAA"])], ids=["list", "array"])
def test_a_graded_table_applies_to_many_grades(grades: Any) -> None:
    np.testing.assert_array_equal(
        GRADED_TABLE.apply(grades), [GRADED_TABLE.apply("D"), GRADED_TABLE.apply("AAA")]
    )


def test_compose_carries_one_citys_scores_to_anothers_scale() -> None:
    egret = table_of(LocalScale("egret", 0, 1000), bell(1001, 520, 140), city="egret")
    scores = np.arange(0, 1001, 50)
    on_lark = compose(egret, LARK_TABLE, scores)
    assert np.all((on_lark >= 350) & (on_lark <= 950))
    assert np.all(np.diff(on_lark) >= 0)
    assert compose(egret, GRADED_TABLE, 1000) == "AAA"
    assert compose(egret, LARK_TABLE, 520) == pytest.approx(670, abs=2)  # median to median


def test_compose_refuses_tables_of_different_alliance_scales() -> None:
    other = build_table(
        summary(LARK, bell(601, 320, 90)),
        AllianceScale(mean=550),
        version=1,
        valid_from=NOW,
        valid_to=VALID_TO,
    )
    with pytest.raises(MappingError) as caught:
        compose(LARK_TABLE, other, 600)
    assert caught.value.field == "scale_sha256"


# --- applying: rounding and clamping ------------------------------------------------------


@pytest.mark.parametrize(
    "scores",
    [5, 5.0, np.int64(5), np.array([5]), np.array([5.0]), [5]],
    ids=["int", "float", "numpy-int", "int-array", "float-array", "list"],
)
def test_applying_rounds_half_up_on_every_input_type(scores: Any) -> None:
    """600.5 becomes 601 (half up; banker's rounding would give 600)."""
    table = hand_table([(0, 600.0, None), (10, 601.0, None)])
    result = table.apply(scores)
    assert np.ravel(result).tolist() == [601]


def test_applying_rounds_half_up_at_knots() -> None:
    table = hand_table([(0, 2.5, None), (10, 610.5, None)])
    assert table.apply(0) == 3
    assert table.apply(10) == 611
    assert table.apply(np.array([0, 10])).tolist() == [3, 611]
    assert table.apply(np.array([0.0, 10.0])).tolist() == [3, 611]
    assert table.apply(np.array([9.0])).tolist() == [table.apply(9)] == [table.apply(9.0)]


def test_rounding_happens_only_after_interpolating() -> None:
    """Knots 600.3 and 601.3: at 2 the line is at 600.5, so 601; rounding the knots
    first (600, 601) would give 600.2, so 600."""
    table = hand_table([(0, 600.3, None), (10, 601.3, None)])
    assert table.equivalent(2) == pytest.approx(600.5)
    assert table.apply(2) == 601
    assert table.apply(np.array([2])).tolist() == [601]


def test_clamping_happens_only_at_the_end() -> None:
    """Knots outside the alliance range are interpolated as they are; only the result
    is clamped. Clamping the knots first would give 50 at 5 and 940 at 4."""
    low = hand_table([(0, -100.0, None), (10, 100.0, None)])
    assert [low.apply(s) for s in (0, 4, 5, 6, 10)] == [0, 0, 0, 20, 100]
    assert low.apply(np.array([0, 4, 5, 6, 10])).tolist() == [0, 0, 0, 20, 100]
    high = hand_table([(0, 900.0, None), (10, 1100.0, None)])
    assert [high.apply(s) for s in (0, 4, 5, 6, 10)] == [900, 980, 1000, 1000, 1000]
    assert high.apply(np.array([0.0, 4.0, 5.0, 6.0, 10.0])).tolist() == [
        900,
        980,
        1000,
        1000,
        1000,
    ]
    narrow = hand_table([(0, 0.0, None), (10, 1000.0, None)], alliance_range=(300, 850))
    assert [narrow.apply(s) for s in (0, 5, 10)] == [300, 500, 850]


def test_applying_interpolates_between_uneven_knots() -> None:
    table = hand_table([(0, 100.0, None), (2, 300.0, None), (10, 700.0, None)])
    assert [table.apply(s) for s in (0, 1, 2, 6, 10)] == [100, 200, 300, 500, 700]


def test_just_below_one_half_rounds_down() -> None:
    # Knots are kept at the 6 decimals they are published with, so the largest value
    # below one half a knot can hold is 0.499999.
    table = hand_table([(0, 0.499999, None), (10, 1000.0, None)])
    assert table.apply(0) == 0
    assert table.apply(np.array([0.0])).tolist() == [0]
    # The rounding itself: floor(x + 0.5) would round this one up, the addition rounding to 1.0.
    assert round_half_up(0.49999999999999994) == 0
    assert round_half_up(np.array([0.49999999999999994, 0.5, 2.5, -0.5])).tolist() == [0, 1, 3, 0]


@pytest.mark.parametrize(
    ("scores", "field"),
    [
        (-1, "score"),
        (1001, "score"),
        (1000.5, "score"),
        (float("nan"), "score"),
        (float("inf"), "score"),
        ("700", "score"),
        (True, "score"),
        (None, "score"),
        (np.array([0, 1001]), "scores"),
        (np.array([-1, 5]), "scores"),
        (np.array([0.0, 1000.5]), "scores"),
        (np.array([0.0, np.nan]), "scores"),
        ([1, 2000], "scores"),
    ],
    ids=repr,
)
def test_applying_a_score_outside_the_local_scale_is_refused(scores: Any, field: str) -> None:
    table = hand_table([(0, 0.0, None), (1000, 1000.0, None)], LocalScale("egret", 0, 1000))
    with pytest.raises(MappingError) as caught:
        table.apply(scores)
    assert caught.value.field == field


def test_applying_outside_a_non_zero_min_scale_is_refused_on_the_fast_path() -> None:
    with pytest.raises(MappingError) as caught:
        LARK_TABLE.apply(np.array([349, 500]))
    assert caught.value.field == "scores"
    with pytest.raises(MappingError) as caught:
        LARK_TABLE.apply(349)
    assert caught.value.field == "score"


def test_applying_text_scores_is_refused() -> None:
    with pytest.raises(MappingError) as caught:
        hand_table([(0, 0.0, None), (10, 1000.0, None)]).apply(["a", "b"])
    assert caught.value.field == "scores"


# --- the way back -----------------------------------------------------------------------------


def test_to_local_takes_the_middle_of_a_flat_stretch_and_clamps() -> None:
    table = hand_table(
        [(0, 0.0, None), (1, 500.0, None), (2, 500.0, None), (3, 500.0, None), (4, 1000.0, None)],
        LocalScale("five", 0, 4),
    )
    assert table.to_local(500) == 2
    assert table.to_local(260) == 1  # 0.52 of the way from 0 to the flat stretch
    assert table.to_local(-50) == 0
    assert table.to_local(5000) == 4
    np.testing.assert_array_equal(table.to_local(np.array([0, 1000])), [0, 4])


def test_to_local_rounds_half_up_as_apply_does() -> None:
    """Alliance 500 sits halfway between local points 0 and 1: half up gives 1."""
    table = hand_table([(0, 0.0, None), (1, 1000.0, None)], LocalScale("two", 0, 1))
    assert table.to_local(500) == 1
    np.testing.assert_array_equal(table.to_local(np.array([499.0, 500.0])), [0, 1])
    stepped = hand_table([(300, 0.0, None), (900, 1000.0, None)], STEPPED)
    assert stepped.to_local(25) == 320  # local 315, halfway between 310 and 320


def test_a_table_on_an_alliance_scale_with_a_non_zero_min() -> None:
    alliance = AllianceScale(
        min=300,
        max=850,
        mean=600,
        sd=100,
        bands=(Band("low", 300), Band("high", 600)),
        thresholds=(600,),
    )
    counts = bell(41, 20, 7)
    table = build_table(
        summary(LocalScale("forty", 0, 40), counts),
        alliance,
        version=1,
        valid_from=NOW,
        valid_to=VALID_TO,
    )
    assert table.alliance_range == (300, 850)
    assert 300 <= table.apply(0) <= table.apply(40) <= 850
    assert abs(table.apply(20) - 600) <= 2  # the city's median at the reference's
    q = kb.InversePercentileRank(alliance.reference.tolist())
    for x in range(41):
        expected = q(kb.percentile_rank(counts, x)) + alliance.min
        assert abs(table.apply(x) - expected) <= 0.5 + 1e-6


@pytest.mark.parametrize("alliance_score", [float("nan"), "abc"], ids=repr)
def test_to_local_refuses_a_score_that_is_not_a_number(alliance_score: Any) -> None:
    with pytest.raises(MappingError):
        LARK_TABLE.to_local(alliance_score)


# --- building -----------------------------------------------------------------------------------


def test_a_built_table_carries_its_provenance() -> None:
    table = LARK_TABLE
    claims = table.to_claims()
    assert claims["city"] == "xiamen"
    assert claims["local_scale"] == {"name": "lark", "min": 350, "max": 950, "step": 1}
    assert claims["method"] == "equipercentile"
    assert claims["smoothing"] is None
    assert claims["population"] == round(sum(bell(601, 320, 90)))
    assert (claims["snapshot"], claims["model_version"]) == ("2026-12-31", "egret-7")
    assert (claims["version"], claims["valid_from"], claims["valid_to"]) == (3, NOW, VALID_TO)
    assert claims["scale_sha256"] == SCALE.sha256
    assert claims["alliance_range"] == [0, 1000]
    assert "anchor" not in claims
    assert all(isinstance(se, float) and se >= 0 for _, _, se in claims["knots"])


def test_knots_are_the_equipercentile_equivalents_on_the_reference() -> None:
    counts = bell(41, 22, 7)
    table = table_of(LocalScale("forty", 0, 40), counts)
    expected = link_equipercentile(counts, SCALE.reference_counts())
    np.testing.assert_allclose([k[1] for k in table.knots], expected, atol=5e-7)


def test_standard_errors_none_leaves_them_out_and_smoothing_is_recorded() -> None:
    table = table_of(LARK, bell(601, 320, 90), smoothing=("loglinear", 4), standard_errors=None)
    assert all(se is None for _, _, se in table.knots)
    assert table.to_claims()["smoothing"] == ["loglinear", 4]
    assert MappingTable.from_claims(table.to_claims()) == table


def test_only_the_citys_histogram_is_smoothed_and_aic_is_resolved_once() -> None:
    """The reference is an exact population: a smoothed table links the smoothed city
    histogram to the reference as it is, and records the degree AIC chose."""
    counts = bell(41, 22, 7, total=2_000)
    table = table_of(
        LocalScale("forty", 0, 40), counts, smoothing=("loglinear", "aic"), standard_errors=None
    )
    degree = choose_loglinear_degree(counts)
    assert table.smoothing == ["loglinear", degree]
    expected = link_equipercentile(
        loglinear_smooth(np.asarray(counts, dtype=float), degree), SCALE.reference_counts()
    )
    np.testing.assert_allclose([k[1] for k in table.knots], expected, atol=5e-7)


def test_bootstrap_standard_errors_in_a_table_are_reproducible() -> None:
    def build(seed: int) -> MappingTable:
        return table_of(
            STEPPED,
            bell(61, 25, 12, total=3000),
            smoothing="bump",
            standard_errors="bootstrap",
            rng=np.random.default_rng(seed),
            replications=20,
        )

    first, again = build(7), build(7)
    assert first == again
    assert first.sha256 == again.sha256
    assert all(se is not None and se >= 0 for _, _, se in first.knots)
    assert build(8).sha256 != first.sha256


ANCHOR_P = [30, 80, 150, 220, 260, 220, 150, 80, 30, 10, 5]


def test_a_chained_table_through_an_anchor_distributed_alike_equals_the_direct_one() -> None:
    """With the anchor perfectly correlated and alike in the city and the reference
    population, chained linking gives the direct link (see test_chained.py)."""
    counts = bell(41, 22, 7)
    city_joint = np.array(kb.comonotone_joint(counts, ANCHOR_P))
    reference_joint = np.array(kb.comonotone_joint(SCALE.reference_counts(1e6).tolist(), ANCHOR_P))
    chained = build_table(
        summary(LocalScale("forty", 0, 40), counts, anchor_name="bills", anchor_joint=city_joint),
        SCALE,
        version=1,
        valid_from=NOW,
        valid_to=VALID_TO,
        method="chained-equipercentile",
        reference_anchor_joint=reference_joint,
        standard_errors="bootstrap",
        rng=np.random.default_rng(5),
        replications=10,
    )
    direct = table_of(LocalScale("forty", 0, 40), counts, standard_errors=None)
    assert chained.method == "chained-equipercentile"
    assert chained.anchor == "bills"
    assert chained.to_claims()["anchor"] == "bills"
    np.testing.assert_allclose(
        [k[1] for k in chained.knots], [k[1] for k in direct.knots], atol=1e-5
    )
    assert all(se is not None and se >= 0 for _, _, se in chained.knots)
    assert MappingTable.from_claims(chained.to_claims()) == chained


def test_a_summary_survives_its_json() -> None:
    joint = np.array(kb.comonotone_joint(bell(41, 22, 7), ANCHOR_P))
    original = summary(
        LocalScale("forty", 0, 40), bell(41, 22, 7), anchor_name="bills", anchor_joint=joint
    )
    again = DistributionSummary.from_json(json.loads(json.dumps(original.to_json())))
    assert again.to_json() == original.to_json()
    assert again.population == original.population == sum(bell(41, 22, 7))
    graded = summary(GRADED, [1, 2, 3, 4, 5, 6])
    assert DistributionSummary.from_json(graded.to_json()).local_scale == GRADED


# --- the wire: claims, hash, signature -------------------------------------------------------


def test_the_content_hash_is_stable_and_ignores_the_envelope() -> None:
    claims = LARK_TABLE.to_claims()
    rebuilt = table_of(LARK, bell(601, 320, 90))
    assert rebuilt.sha256 == LARK_TABLE.sha256 == P.mapping_table_hash(claims)
    assert P.mapping_table_hash({**claims, "iss": ALLIANCE, "iat": NOW}) == LARK_TABLE.sha256
    assert MappingTable.from_claims({**claims, "iss": ALLIANCE, "iat": NOW}) == LARK_TABLE
    later = table_of(LARK, bell(601, 320, 90))
    assert later.sha256 == LARK_TABLE.sha256
    bumped = build_table(
        summary(LARK, bell(601, 320, 90)), SCALE, version=4, valid_from=NOW, valid_to=VALID_TO
    )
    assert bumped.sha256 != LARK_TABLE.sha256


SIGNERS = [pytest.param(ed_key(70), id="EdDSA"), pytest.param(ec_key(70), id="ES256")]


@pytest.mark.parametrize("key", SIGNERS)
def test_a_signed_table_verifies_with_the_alliance_key(key: Any) -> None:
    token = STEPPED_TABLE.sign(alliance=ALLIANCE, key=key, now=NOW)
    table = MappingTable.from_token(token, key=key.public_key(), alliance=ALLIANCE, scale=SCALE)
    assert table == STEPPED_TABLE
    assert table.sha256 == STEPPED_TABLE.sha256
    verified = P.verify_mapping_table(token, key=key.public_key())
    assert verified["iss"] == ALLIANCE
    assert verified["iat"] == NOW
    assert P.mapping_table_hash(verified) == table.sha256


@pytest.mark.parametrize("key", SIGNERS)
def test_a_table_signed_by_another_key_is_refused(key: Any) -> None:
    token = STEPPED_TABLE.sign(alliance=ALLIANCE, key=key, now=NOW)
    for other in (ed_key(71), ec_key(71)):
        with pytest.raises(P.ProtocolError):
            MappingTable.from_token(token, key=other.public_key(), alliance=ALLIANCE, scale=SCALE)
    same_kind = ed_key(71) if isinstance(key, type(ed_key(0))) else ec_key(71)
    with pytest.raises((P.InvalidSignature, P.UnknownKid)):
        MappingTable.from_token(token, key=same_kind.public_key(), alliance=ALLIANCE, scale=SCALE)


def test_a_table_signed_without_a_kid_by_another_key_has_an_invalid_signature() -> None:
    payload = P.canonical_json({**STEPPED_TABLE.to_claims(), "iss": ALLIANCE, "iat": NOW})
    token = sign_jws({"typ": P.MAPPING_TABLE_TYP}, payload, ed_key(71))
    with pytest.raises(P.InvalidSignature):
        MappingTable.from_token(token, key=ed_key(70).public_key(), alliance=ALLIANCE, scale=SCALE)


def test_a_table_for_another_alliance_is_refused() -> None:
    token = STEPPED_TABLE.sign(alliance="https://other.ccx.example", key=ed_key(70), now=NOW)
    with pytest.raises(MappingError) as caught:
        MappingTable.from_token(token, key=ed_key(70).public_key(), alliance=ALLIANCE, scale=SCALE)
    assert caught.value.field == "iss"


def test_a_table_for_another_alliance_scale_is_refused() -> None:
    token = STEPPED_TABLE.sign(alliance=ALLIANCE, key=ed_key(70), now=NOW)
    with pytest.raises(MappingError) as caught:
        MappingTable.from_token(
            token, key=ed_key(70).public_key(), alliance=ALLIANCE, scale=AllianceScale(mean=550)
        )
    assert caught.value.field == "scale_sha256"


def test_a_tampered_table_is_refused() -> None:
    """An attacker raises one city's knots after signing: the signature no longer holds."""
    token = STEPPED_TABLE.sign(alliance=ALLIANCE, key=ed_key(70), now=NOW)
    header, payload, signature = token.split(".")
    claims = json.loads(P.b64url_decode(payload))
    claims["knots"][30][1] += 50
    forged_payload = P.b64url_encode(P.canonical_json(claims))
    with pytest.raises(P.InvalidSignature):
        MappingTable.from_token(
            f"{header}.{forged_payload}.{signature}",
            key=ed_key(70).public_key(),
            alliance=ALLIANCE,
            scale=SCALE,
        )
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(P.ProtocolError):
        MappingTable.from_token(
            f"{header}.{payload}.{flipped}",
            key=ed_key(70).public_key(),
            alliance=ALLIANCE,
            scale=SCALE,
        )


# --- bad input --------------------------------------------------------------------------------


def _field(make: Any) -> str:
    with pytest.raises(MappingError) as caught:
        make()
    return str(caught.value.field)


@pytest.mark.parametrize(
    ("counts", "field"),
    [
        ([0] * 11, "counts"),
        ([1, 2, 3, -4, 5, 6, 7, 8, 9, 10, 11], "counts[3]"),
        ([1, float("nan"), 3, 4, 5, 6, 7, 8, 9, 10, 11], "counts[1]"),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, float("inf")], "counts[10]"),
        ([1, 2, 3], "counts"),
        ([1] * 12, "counts"),
    ],
    ids=["empty", "negative", "nan", "inf", "too-short", "too-long"],
)
def test_a_bad_histogram_in_a_summary_is_refused(counts: list[float], field: str) -> None:
    assert _field(lambda: summary(LocalScale("ten", 0, 10), counts)) == field


def test_a_histogram_that_does_not_fit_a_stepped_scale_is_refused() -> None:
    """300..900 by 10 has 61 points, not 601."""
    assert _field(lambda: summary(STEPPED, [1] * 601)) == "counts"
    assert _field(lambda: summary(GRADED, [1] * 5)) == "counts"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"city": ""}, "city"),
        ({"counts": [0] * 11}, "counts"),
        ({"counts": [1, 2, -3] + [1] * 8}, "counts[2]"),
        ({"local_scale": {"name": "ten", "min": 10, "max": 0}}, "local_scale.max"),
        ({"anchor": {"name": "bills", "joint": [[1, 2]] * 3}}, "anchor.joint"),
        ({"anchor": {"name": "bills", "joint": [[1, 2]] * 11}}, "anchor.joint"),
        ({"anchor": {"name": "bills", "joint": [[1, -2]] * 11}}, "anchor.joint"),
        ({"anchor": {"name": "bills", "joint": [[1, 2], [3]] + [[1, 2]] * 9}}, "summary"),
    ],
    ids=[
        "unknown-field",
        "no-city",
        "empty",
        "negative",
        "bad-scale",
        "anchor-rows",
        "anchor-row-sums",
        "anchor-negative",
        "anchor-ragged",
    ],
)
def test_a_bad_summary_is_refused(change: dict[str, Any], field: str) -> None:
    data = {**summary(LocalScale("ten", 0, 10), [1] * 11).to_json(), **change}
    assert _field(lambda: DistributionSummary.from_json(data)) == field


@pytest.mark.parametrize("missing", ["city", "local_scale", "counts", "snapshot", "model_version"])
def test_a_summary_missing_a_field_is_refused(missing: str) -> None:
    data = summary(LocalScale("ten", 0, 10), [1] * 11).to_json()
    del data[missing]
    assert _field(lambda: DistributionSummary.from_json(data)) == missing


GOOD_KNOTS = [(0, 100.0, 1.0), (5, 500.0, 0.5), (10, 900.0, None)]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"knots": ((0, 100.0, None), (5, 600.0, None), (10, 500.0, None))}, "knots[2]"),
        ({"knots": ((0, 100.0, None), (0, 600.0, None), (10, 700.0, None))}, "knots[1]"),
        (
            {"knots": ((0, 100.0, None), (6, 600.0, None), (5, 700.0, None), (10, 800.0, None))},
            "knots[2]",
        ),
        ({"knots": ((0, 100.0, None), (9, 900.0, None))}, "knots"),
        ({"knots": ((1, 100.0, None), (10, 900.0, None))}, "knots"),
        (
            {"knots": ((0, 100.0, None), (5, 500.0, None), (10, 900.0, None), (11, 950.0, None))},
            "knots",
        ),
        ({"knots": ((0, 100.0, None),)}, "knots"),
        ({"knots": ((0, 100.0, -1.0), (10, 900.0, None))}, "knots[0]"),
        ({"knots": ((0, 100.0, None), (10, 900.0, float("nan")))}, "knots[1]"),
        ({"knots": ((0, float("nan"), None), (10, 900.0, None))}, "knots[0]"),
        ({"knots": ((0, 100.0), (10, 900.0))}, "knots[0]"),
        ({"knots": (0, 10)}, "knots[0]"),
        ({"version": 0}, "version"),
        ({"version": -2}, "version"),
        ({"version": True}, "version"),
        ({"version": 1.0}, "version"),
        ({"valid_to": NOW}, "valid_to"),
        ({"valid_to": NOW - 1}, "valid_to"),
        ({"method": "linear"}, "method"),
        ({"method": "Equipercentile"}, "method"),
    ],
    ids=[
        "alliance-falls",
        "local-repeats",
        "local-falls",
        "short-of-the-top",
        "above-the-bottom",
        "beyond-the-top",
        "one-knot",
        "negative-se",
        "nan-se",
        "nan-alliance",
        "knot-of-two",
        "knots-not-lists",
        "version-0",
        "version-negative",
        "version-bool",
        "version-float",
        "valid-to-equals-from",
        "valid-to-before-from",
        "unknown-method",
        "method-case",
    ],
)
def test_a_bad_table_is_refused(fields: dict[str, Any], field: str) -> None:
    knots = fields.pop("knots", GOOD_KNOTS)
    assert _field(lambda: hand_table(knots, **fields)) == field


def test_claims_with_an_unknown_field_are_refused() -> None:
    claims = {**hand_table(GOOD_KNOTS).to_claims(), "colour": "red"}
    assert _field(lambda: MappingTable.from_claims(claims)) == "colour"


@pytest.mark.parametrize(
    "missing", ["city", "local_scale", "knots", "version", "valid_from", "valid_to", "scale_sha256"]
)
def test_claims_missing_a_field_are_refused(missing: str) -> None:
    claims = hand_table(GOOD_KNOTS).to_claims()
    del claims[missing]
    assert _field(lambda: MappingTable.from_claims(claims)) == missing


BAD_BUILDS: list[Any] = [
    ({"method": "linear"}, "method"),
    ({"smoothing": "bump"}, "standard_errors"),  # Lord is the default
    ({"smoothing": ("loglinear", 3), "standard_errors": "lord"}, "standard_errors"),
    ({"standard_errors": "jackknife"}, "standard_errors"),
    ({"standard_errors": "bootstrap"}, "rng"),
    ({"smoothing": "smooth", "standard_errors": None}, "smoothing"),
    ({"smoothing": ("loglinear", 0), "standard_errors": None}, "smoothing.degree"),
    ({"method": "chained-equipercentile", "standard_errors": None}, "anchor"),
]


@pytest.mark.parametrize(("options", "field"), BAD_BUILDS)
def test_a_bad_build_is_refused(options: dict[str, Any], field: str) -> None:
    assert _field(lambda: table_of(LocalScale("ten", 0, 10), [1] * 11, **options)) == field


def test_lord_standard_errors_are_refused_for_chained_linking() -> None:
    joint = np.array(kb.comonotone_joint([1] * 11, ANCHOR_P))
    reference = np.array(kb.comonotone_joint(SCALE.reference_counts(1e6).tolist(), ANCHOR_P))
    city = summary(LocalScale("ten", 0, 10), [1] * 11, anchor_name="bills", anchor_joint=joint)
    common = {"version": 1, "valid_from": NOW, "valid_to": VALID_TO}
    with pytest.raises(MappingError) as caught:
        build_table(
            city, SCALE, method="chained-equipercentile", reference_anchor_joint=reference, **common
        )
    assert caught.value.field == "standard_errors"
    with pytest.raises(MappingError) as caught:
        build_table(
            city,
            SCALE,
            method="chained-equipercentile",
            reference_anchor_joint=reference[:10],
            standard_errors=None,
            **common,
        )
    assert caught.value.field == "reference_anchor_joint"


# --- bugs in checking a table's fields ------------------------------------------------------


def test_a_standard_error_that_is_not_a_number_is_refused() -> None:
    assert _field(lambda: hand_table([(0, 100.0, "x"), (10, 900.0, None)])) == "knots[0]"


def test_a_validity_that_is_not_a_time_is_refused() -> None:
    assert _field(lambda: hand_table(GOOD_KNOTS, valid_from=None)) == "valid_from"


@pytest.mark.parametrize(
    ("change", "field"),
    [({"valid_from": None}, "valid_from"), ({"alliance_range": "x"}, "alliance_range")],
    ids=["valid_from", "alliance_range"],
)
def test_claims_with_a_malformed_field_name_that_field(change: dict[str, Any], field: str) -> None:
    claims = {**hand_table(GOOD_KNOTS).to_claims(), **change}
    assert _field(lambda: MappingTable.from_claims(claims)) == field


@pytest.mark.parametrize("where", ["table", "summary"])
def test_an_unknown_field_in_a_local_scale_is_refused(where: str) -> None:
    scale = {"name": "ten", "min": 0, "max": 10, "step": 1, "colour": "red"}
    if where == "table":
        claims = {**hand_table(GOOD_KNOTS).to_claims(), "local_scale": scale}
        assert _field(lambda: MappingTable.from_claims(claims)) == "local_scale.colour"
    else:
        data = {**summary(LocalScale("ten", 0, 10), [1] * 11).to_json(), "local_scale": scale}
        assert _field(lambda: DistributionSummary.from_json(data)) == "local_scale.colour"


def test_a_hand_built_table_is_what_it_publishes() -> None:
    table = hand_table([(0, 600.4999996, None), (10, 900.0, None)])
    published = MappingTable.from_claims(table.to_claims())
    assert published == table
    assert published.apply(0) == table.apply(0)


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"alliance_range": (1000, 0)}, "alliance_range"), ({"city": ""}, "city")],
    ids=["alliance-range-reversed", "no-city"],
)
def test_a_table_with_a_bad_range_or_city_is_refused(fields: dict[str, Any], field: str) -> None:
    assert _field(lambda: hand_table(GOOD_KNOTS, **fields)) == field


def test_a_ragged_anchor_joint_is_refused() -> None:
    ragged = [[1]] * 10 + [[1, 2]]
    made = lambda: summary(  # noqa: E731
        LocalScale("ten", 0, 10), [1] * 11, anchor_name="bills", anchor_joint=ragged
    )
    assert _field(made) == "anchor.joint"
