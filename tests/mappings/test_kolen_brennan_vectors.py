"""The textbook's own example: Kolen & Brennan's random-groups ACT Mathematics forms.

Source: Kolen, M. J., & Brennan, R. L. (2004). *Test Equating, Scaling, and Linking:
Methods and Practices* (2nd ed.), chapter 2, as recorded with its provenance in
tests/vectors/kolen_brennan/act_math.json. Only the file's published values are used
as expected values: the two printed equipercentile equivalents (x = 20, 21; pp. 81, 85
as quoted by R. L. Brennan in Equating Recipes) and the Form X percentile ranks
(K&B p. 48). The file's ``computed_not_printed`` block is a regression by-product, not
an oracle, and is not used here except for the moments it traces to an independent
implementation (Equate.jl).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mappings import link_equipercentile, percentile_ranks

VECTOR = Path(__file__).parent.parent / "vectors" / "kolen_brennan" / "act_math.json"


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTOR.read_text(encoding="utf-8"))
    return data


ACT = load()
PRINTED_EQUIVALENTS = [
    (x, value) for x, value in enumerate(ACT["equipercentile_y_equivalents"]) if value is not None
]


def test_the_vector_file_holds_the_published_sample_sizes() -> None:
    """Table 2.5 frequencies sum to K&B's N_X = 4329 and N_Y = 4152."""
    assert sum(ACT["x_counts"]) == ACT["n_x"] == ACT["checks"]["x_counts_sum"] == 4329
    assert sum(ACT["y_counts"]) == ACT["n_y"] == ACT["checks"]["y_counts_sum"] == 4152
    assert len(ACT["x_counts"]) == len(ACT["y_counts"]) == 41
    assert [x for x, _ in PRINTED_EQUIVALENTS] == [20, 21]


@pytest.mark.parametrize(
    ("x", "printed"), PRINTED_EQUIVALENTS, ids=[f"x={x}" for x, _ in PRINTED_EQUIVALENTS]
)
def test_act_math_printed_equipercentile_equivalent(x: int, printed: float) -> None:
    """K&B (2004) ch. 2, ACT Mathematics, Form Y equipercentile equivalent of Form X
    score ``x``, printed to 4 decimals (pp. 81, 85; quoted by R. L. Brennan in Equating
    Recipes ERutilities.c, Equated_ss: X-raw 20 -> 19.1647, 21 -> 20.3676)."""
    equivalents = link_equipercentile(ACT["x_counts"], ACT["y_counts"])
    half_unit = 0.5 * 10.0 ** -ACT["printed_precision"]
    assert abs(equivalents[x] - printed) <= half_unit


@pytest.mark.parametrize(
    ("x", "printed"),
    list(enumerate(ACT["x_percentile_ranks"])),
    ids=[f"x={x}" for x in range(len(ACT["x_percentile_ranks"]))],
)
def test_act_math_printed_form_x_percentile_rank(x: int, printed: float) -> None:
    """K&B (2004) ch. 2, ACT Mathematics Form X percentile ranks printed to 2 decimals
    (K&B p. 48, as copied in Equate.jl test/testdata.jl, vector KBp48)."""
    ranks = percentile_ranks(ACT["x_counts"])
    half_unit = 0.5 * 10.0 ** -ACT["x_percentile_ranks_precision"]
    assert abs(ranks[x] - printed) <= half_unit + 1e-12


def test_act_math_percentile_ranks_of_single_scores_match_the_whole_column() -> None:
    """Asking for given scores (K&B eq. 2.14 at integer x) gives the same ranks."""
    column = percentile_ranks(ACT["x_counts"])
    one_by_one = percentile_ranks(ACT["x_counts"], [20, 21, 40])
    np.testing.assert_allclose(one_by_one, column[[20, 21, 40]], rtol=0, atol=1e-12)


def test_act_math_equated_score_moments_match_an_independent_implementation() -> None:
    """Mean and sd of the Form Y equivalents, weighted by the Form X frequencies:
    18.9799 and 8.9352, the expected values in takuizum/Equate.jl test/SGdesign.jl (an
    independent implementation; see ``moments_crosscheck`` in the vector file). The
    equated mean sits next to Form Y's own mean, 18.9798 (Equate.jl readdata.jl)."""
    equivalents = link_equipercentile(ACT["x_counts"], ACT["y_counts"])
    weights = np.asarray(ACT["x_counts"], dtype=float) / ACT["n_x"]
    mean = float(np.sum(weights * equivalents))
    sd = math.sqrt(float(np.sum(weights * (equivalents - mean) ** 2)))
    assert abs(mean - 18.9799) <= 0.00005
    assert abs(sd - 8.9352) <= 0.00005
