"""The scorecard kind of scoring model (issue 18, docs/MODELS.md), evaluated in pure
Python and numpy: bins and their points, the scaling, monotonicity, reason codes, the
single-resident and the batch paths agreeing, and the file's errors."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from node.scoring import (
    DAY,
    ModelError,
    RecordInput,
    Scorecard,
    ScorecardScaling,
    ScoringModel,
    WeightedSum,
    load_model,
)
from tests.conftest import NOW

ROOT = Path(__file__).parent.parent.parent
FITTED = ROOT / "simulator" / "cities" / "hangzhou.toml"
BASE = ROOT / "simulator" / "cities" / "hangzhou.base.toml"


def base_data() -> dict[str, Any]:
    return tomllib.loads(BASE.read_text(encoding="utf-8"))


def card_with(points: dict[str, list[float]], **scorecard: Any) -> ScoringModel:
    """The Hangzhou base with these points per characteristic (the others: zeros)."""
    data = base_data()
    data["model"]["base"] = 600
    for name, entry in data["scorecard"]["dimensions"].items():
        entry["points"] = points.get(name, [0.0] * (len(entry["edges"]) + 1))
    data["scorecard"].update(scorecard)
    return ScoringModel.from_dict(data)


DISHONESTY = [-120.0, -80.0, -40.0, -20.0, -10.0, -5.0, 10.0]  # edges -250,-100,-60,-40,-20,0
POSITIVE = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]  # edges 1,10,20,40,60,100


def records(kind: str, n: int) -> list[RecordInput]:
    return [RecordInput(f"d/{kind}-{i}", kind, NOW - DAY) for i in range(n)]


def test_the_committed_learned_city_is_a_scorecard_and_its_hand_weighted_peers_are_not() -> None:
    model = load_model(FITTED)
    assert isinstance(model.kind, Scorecard)
    assert model.kind.name == "scorecard"
    assert isinstance(load_model().kind, WeightedSum)
    # every characteristic the base marks monotone increasing has non-decreasing points
    for c in model.kind.characteristics.values():
        assert c.monotone == "increasing"
        assert all(b >= a for a, b in zip(c.points, c.points[1:], strict=False)), c.dimension


def test_a_value_falls_in_the_bin_its_edges_say() -> None:
    model = card_with({"dishonesty": DISHONESTY})
    card = model.kind
    # bin i holds edges[i-1] <= value < edges[i]: an edge belongs to the bin above it
    for value, points in [
        (-300, -120),
        (-250, -80),
        (-100.5, -80),
        (-100, -40),
        (-1, -5),
        (0, 10),
        (500, 10),
    ]:
        assert card.part("dishonesty", value) == points, value
    assert card.part("repair", 35) == 0.0  # a characteristic with zero points everywhere


def test_the_score_is_the_base_plus_the_bins_points_on_the_scale() -> None:
    model = card_with({"dishonesty": DISHONESTY, "positive": POSITIVE})
    # one tax arrear (-80 -> bin [-100, -60): -40) and two honours (120 -> bin >= 100: 30)
    breakdown = model.score(records("tax_arrears", 1) + records("honour", 2), NOW)
    assert breakdown.values["dishonesty"] == -80
    assert breakdown.values["positive"] == 120
    assert breakdown.by_dimension["dishonesty"] == -40
    assert breakdown.by_dimension["positive"] == 30
    assert breakdown.score == 600 - 40 + 30 + 0  # usage 0 and basic 0 give 0 here
    # clamped to the scale
    assert card_with({"dishonesty": [-9000.0] * 7}).score([], NOW).score == 350


def test_reason_codes_name_the_characteristics_furthest_below_their_best_bin() -> None:
    model = card_with({"dishonesty": DISHONESTY, "positive": POSITIVE}, reasons=2)
    breakdown = model.score(records("tax_arrears", 1) + records("honour", 2), NOW)
    # dishonesty: 10 - (-40) = 50 below its best; positive at its best (30): no reason
    assert [(r.code, r.dimension, r.points_below_max) for r in breakdown.reasons] == [
        ("D1", "dishonesty", 50.0)
    ]
    none = model.score(records("honour", 2), NOW)  # dishonesty 0 -> its best bin
    assert none.reasons == ()
    worst = model.score(records("unfulfilled_judgment", 1), NOW)  # -250 -> -80: 90 below
    assert [(r.code, r.points_below_max) for r in worst.reasons] == [("D1", 90.0), ("P1", 30.0)]
    assert worst.reasons[0].text_en.startswith("Records of broken promises")
    assert worst.reasons[0].text_zh


def test_reason_codes_are_ranked_and_capped_by_the_models_count() -> None:
    many = {"dishonesty": DISHONESTY, "positive": POSITIVE, "basic": [0.0, 1.0, 2.0, 3.0]}
    one = card_with(many, reasons=1).score([], NOW)
    assert [r.code for r in one.reasons] == ["P1"]  # 30 below beats dishonesty's 0, basic's 3
    three = card_with(many, reasons=3).score(records("tax_arrears", 1), NOW)
    assert [r.code for r in three.reasons] == ["D1", "P1", "B1"]  # 50, 30, 3


@pytest.mark.parametrize("seed", range(3))
def test_the_batch_path_equals_the_single_path_bit_for_bit(seed: int) -> None:
    model = load_model(FITTED)
    rng = np.random.default_rng(seed)
    kinds = [k for k in model.kind_order if not model.kinds[k].repair]
    residents = 200
    per_resident = [
        [
            RecordInput(
                f"d/{r}-{i}", str(rng.choice(kinds)), NOW - int(rng.integers(1, 2000)) * DAY
            )
            for i in range(int(rng.integers(0, 12)))
        ]
        for r in range(residents)
    ]
    flat = [(r, rec) for r, recs in enumerate(per_resident) for rec in recs]
    order = list(model.kind_order)
    batch = model.score_batch_breakdown(
        residents,
        np.array([r for r, _ in flat], dtype=np.int64),
        np.array([order.index(rec.kind) for _, rec in flat], dtype=np.int64),
        np.array([rec.occurred_at for _, rec in flat], dtype=np.int64),
        np.array([model.points_of(rec) for _, rec in flat], dtype=np.float64),
        np.array([model.expiry_of(rec) for _, rec in flat], dtype=np.int64),
        NOW,
    )
    for r, recs in enumerate(per_resident):
        single = model.score(recs, NOW)
        assert batch.scores[r] == single.score
        assert batch.by_dimension[:, r].tolist() == list(single.by_dimension.values())


def test_more_positive_records_never_lower_a_scorecard_score() -> None:
    model = load_model(FITTED)
    for kind in (
        "volunteering",
        "honour",
        "blood_donation",
        "identity_verified",
        "pay_later_on_time",
    ):
        scores = [model.score(records(kind, n), NOW).score for n in range(0, 30)]
        assert scores == sorted(scores), kind
    harmful = [model.score(records("late_utility_payment", n), NOW).score for n in range(15)]
    assert harmful == sorted(harmful, reverse=True)


def test_the_scaling_doubles_the_odds_every_pdo_points() -> None:
    scaling = ScorecardScaling(pdo=50, base_score=650, base_odds=10)
    p = scaling.default_probability
    assert p(650) == pytest.approx(1 / 11)
    odds = [(1 - p(s)) / p(s) for s in (600, 650, 700, 750)]
    assert odds == pytest.approx([5, 10, 20, 40])
    assert scaling.offset == pytest.approx(650 - 50 / math.log(2) * math.log(10))


def test_a_dimension_cap_is_its_bins_bounds() -> None:
    model = card_with({"dishonesty": DISHONESTY})
    assert (model.dimensions["dishonesty"].min, model.dimensions["dishonesty"].max) == (-120, 10)
    assert (model.dimensions["repair"].min, model.dimensions["repair"].max) == (0, 0)


def _broken(change: Any) -> dict[str, Any]:
    data = base_data()
    for entry in data["scorecard"]["dimensions"].values():
        entry["points"] = [float(i) for i in range(len(entry["edges"]) + 1)]
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["scorecard"]["dimensions"]["usage"].update(points=[0.0]), "one per bin"),
        (lambda d: d["scorecard"]["dimensions"]["usage"]["points"].reverse(), "increasing"),
        (lambda d: d["scorecard"]["dimensions"]["basic"].update(edges=[60, 40, 100]), "rise"),
        (lambda d: d["scorecard"]["dimensions"]["basic"].update(monotone="up"), "monotone"),
        (lambda d: d["scorecard"].pop("pdo"), "lacks 'pdo'"),
        (lambda d: d["scorecard"].update(pdo=-3), "must be > 0"),
        (lambda d: d["scorecard"].update(reasons=9), "reasons"),
        (lambda d: d.pop("scorecard"), r"\[scorecard\] table"),
        (lambda d: d["model"].update(kind="forest"), "model.kind"),
        (lambda d: d["dimensions"]["basic"].update(weight=2), "take no weight"),
        (
            lambda d: d["scorecard"]["dimensions"].update(trust={"edges": [], "points": [0.0]}),
            "unknown dimensions",
        ),
        (lambda d: d["scorecard"]["dimensions"]["basic"].update(edges=["a"]), "finite numbers"),
        (
            lambda d: d["scorecard"]["dimensions"]["basic"].update(reason_code="no spaces"),
            "reason_code",
        ),
    ],
)
def test_a_bad_scorecard_is_refused_naming_the_key(change: Any, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        ScoringModel.from_dict(_broken(change))


def test_an_unfitted_base_loads_only_when_asked() -> None:
    with pytest.raises(ModelError, match="points"):
        load_model(BASE)
    base = load_model(BASE, fitted=False)
    assert base.score(records("honour", 3), NOW).score == base.base  # every part 0


def test_a_decreasing_characteristic_may_fall_and_not_rise() -> None:
    data = _broken(lambda d: None)
    entry = data["scorecard"]["dimensions"]["usage"]
    entry["monotone"] = "decreasing"
    entry["points"] = sorted(entry["points"], reverse=True)
    assert ScoringModel.from_dict(copy.deepcopy(data)).kind.name == "scorecard"
    entry["points"][-1] = 100.0
    with pytest.raises(ModelError, match="decreasing"):
        ScoringModel.from_dict(data)
