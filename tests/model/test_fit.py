"""ccx model fit, report and demo-outcomes (issue 18, docs/MODELS.md): the fit's bins,
monotonicity and coefficients, the committed learned city refitted byte for byte, the
report's figures against their definitions, and the commands' one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from ccx.app import app
from node.model_fit import Outcomes, fit_scorecard, outcomes_csv, read_outcomes, report
from node.scoring import DIMENSIONS, ModelError, ScoringModel, load_model
from simulator.outcomes import DEMO_OUTCOMES_RESIDENTS, DEMO_OUTCOMES_SEED, demo_outcomes

ROOT = Path(__file__).parent.parent.parent
CITIES = ROOT / "simulator" / "cities"


def ccx(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), prog_name="ccx")


def base() -> dict[str, Any]:
    return tomllib.loads((CITIES / "hangzhou.base.toml").read_text(encoding="utf-8"))


def table(values: dict[str, np.ndarray], defaulted: np.ndarray) -> Outcomes:
    n = len(defaulted)
    rows = np.array([values.get(name, np.zeros(n)) for name in DIMENSIONS], dtype=np.float64)
    text = outcomes_csv([f"r{i}" for i in range(n)], rows, defaulted)
    return read_outcomes(text.encode())


def test_refitting_the_learned_city_from_its_seed_gives_the_committed_file(
    tmp_path: Path,
) -> None:
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text(
        demo_outcomes("hangzhou", DEMO_OUTCOMES_RESIDENTS, seed=DEMO_OUTCOMES_SEED),
        encoding="utf-8",
    )
    fitted = tmp_path / "hangzhou.toml"
    result = ccx(
        "model",
        "fit",
        str(outcomes),
        "--model",
        str(CITIES / "hangzhou.base.toml"),
        "-o",
        str(fitted),
    )
    assert result.exit_code == 0, result.output
    assert fitted.read_bytes() == (CITIES / "hangzhou.toml").read_bytes()


def test_demo_outcomes_are_the_same_for_the_same_seed_and_differ_for_another() -> None:
    one = demo_outcomes("hangzhou", 300, seed=1)
    assert one == demo_outcomes("hangzhou", 300, seed=1)
    assert one != demo_outcomes("hangzhou", 300, seed=2)
    parsed = read_outcomes(one.encode())
    assert parsed.residents == 300
    assert 0 < parsed.defaulted.sum() < 300


def test_bins_are_merged_until_the_points_rise_and_left_alone_without_monotone() -> None:
    rng = np.random.default_rng(5)
    n = 6000
    positive = rng.choice([0.0, 15.0, 30.0, 50.0, 80.0, 120.0], n)
    # default rates by bin: falling, except the 20..40 bin, which is worse than 10..20
    rate = {0.0: 0.3, 15.0: 0.1, 30.0: 0.25, 50.0: 0.08, 80.0: 0.05, 120.0: 0.02}
    defaulted = (rng.random(n) < np.vectorize(rate.get)(positive)).astype(np.int64)
    outcomes = table({"positive": positive}, defaulted)
    data = base()
    fitted = fit_scorecard(data, outcomes)
    entry = fitted["scorecard"]["dimensions"]["positive"]
    assert entry["points"] == sorted(entry["points"])
    assert len(entry["points"]) < 7  # the 10..20 and 20..40 bins were merged
    assert 20 not in entry["edges"]
    data["scorecard"]["dimensions"]["positive"]["monotone"] = "none"
    free = fit_scorecard(data, outcomes)["scorecard"]["dimensions"]["positive"]
    assert free["points"] != sorted(free["points"])  # the dip is kept
    ScoringModel.from_dict(fitted)  # and the fitted file is a model the node loads


def test_a_characteristic_with_a_negative_coefficient_is_dropped() -> None:
    rng = np.random.default_rng(9)
    n = 8000
    dishonesty = rng.choice([0.0, -30.0, -80.0, -300.0], n)
    defaulted = (rng.random(n) < np.where(dishonesty < 0, 0.3, 0.05)).astype(np.int64)
    # usage is dishonesty again, exactly: alone it would be monotone and predictive, but
    # beside dishonesty it explains nothing more; its coefficient must not turn negative
    outcomes = table({"dishonesty": dishonesty, "usage": dishonesty / 4}, defaulted)
    fitted = fit_scorecard(base(), outcomes)["scorecard"]["dimensions"]
    assert all(entry["coefficient"] >= 0 for entry in fitted.values())
    assert fitted["dishonesty"]["coefficient"] > 0 or fitted["usage"]["coefficient"] > 0
    for entry in fitted.values():
        assert entry["points"] == sorted(entry["points"])


def test_the_base_is_the_intercept_at_the_scaling() -> None:
    outcomes = read_outcomes(demo_outcomes("hangzhou", 3000, seed=3).encode())
    fitted = fit_scorecard(base(), outcomes)
    card = fitted["scorecard"]
    factor = card["pdo"] / np.log(2)
    offset = card["base_score"] - factor * np.log(card["base_odds"])
    assert fitted["model"]["base"] == pytest.approx(offset + factor * card["intercept"], abs=0.01)


def test_the_report_figures_follow_their_definitions() -> None:
    model = load_model(CITIES / "hangzhou.toml")
    outcomes = read_outcomes(demo_outcomes("hangzhou", 4000, seed=11).encode())
    result = report(model, outcomes, bands=5)
    scores = model.score_values(outcomes.values).scores
    bad, good = scores[outcomes.defaulted == 1], scores[outcomes.defaulted == 0]
    # AUC: the chance a defaulter scores below a non-defaulter (ties count half)
    below = (bad[:, None] < good[None, :]).mean() + 0.5 * (bad[:, None] == good[None, :]).mean()
    assert result.auc == pytest.approx(below)
    assert result.gini == pytest.approx(2 * below - 1)
    # KS: the widest gap between the two groups' score distributions
    cuts = np.unique(scores)
    gaps = [abs((bad <= c).mean() - (good <= c).mean()) for c in cuts]
    assert result.ks == pytest.approx(max(gaps))
    assert sum(band.residents for band in result.bands) == 4000
    assert result.bands[0].observed > result.bands[-1].observed  # low scores default more
    for band in result.bands:
        assert band.predicted is not None
        assert abs(band.predicted - band.observed) < 0.08


def test_ccx_model_report_prints_the_figures_and_draws_the_plot(tmp_path: Path) -> None:
    outcomes = tmp_path / "o.csv"
    outcomes.write_text(demo_outcomes("hangzhou", 2000, seed=4), encoding="utf-8")
    plot = tmp_path / "report.png"
    result = ccx(
        "model", "report", str(CITIES / "hangzhou.toml"), str(outcomes), "--plot", str(plot)
    )
    assert result.exit_code == 0, result.output
    assert "AUC 0." in result.output
    assert "KS 0." in result.output
    assert "predicted" in result.output
    assert plot.read_bytes().startswith(b"\x89PNG")
    weighted = ccx("model", "report", str(CITIES / "xiamen.toml"), str(outcomes))
    assert weighted.exit_code == 0, weighted.output  # a hand-weighted model: no prediction
    assert "(weighted)" in weighted.output


@pytest.mark.parametrize(
    ("text", "code", "says"),
    [
        ("resident,basic\nr1,3\n", "invalid_outcomes", "lacks the columns"),
        (
            "resident,basic,positive,dishonesty,repair,usage,defaulted\nr1,1,2,x,0,0,1\n",
            "invalid_outcomes",
            "line 2, dishonesty",
        ),
        (
            "resident,basic,positive,dishonesty,repair,usage,defaulted\nr1,1,2,3,0,0,2\n",
            "invalid_outcomes",
            "not 0 or 1",
        ),
        (
            "resident,basic,positive,dishonesty,repair,usage,defaulted\nr1,1,2,3,0,0,0\n",
            "invalid_outcomes",
            "defaulted and residents who did not",
        ),
    ],
)
def test_bad_outcomes_are_one_line_errors(tmp_path: Path, text: str, code: str, says: str) -> None:
    outcomes = tmp_path / "o.csv"
    outcomes.write_text(text, encoding="utf-8")
    result = ccx(
        "model",
        "fit",
        str(outcomes),
        "--model",
        str(CITIES / "hangzhou.base.toml"),
        "-o",
        str(tmp_path / "f.toml"),
    )
    assert result.exit_code == 2
    assert result.output.startswith(f"error [{code}] OUTCOMES: ")
    assert says in result.output
    assert not (tmp_path / "f.toml").exists()


def test_a_base_that_is_not_a_scorecard_is_refused(tmp_path: Path) -> None:
    outcomes = tmp_path / "o.csv"
    outcomes.write_text(demo_outcomes("hangzhou", 200, seed=1), encoding="utf-8")
    result = ccx(
        "model",
        "fit",
        str(outcomes),
        "--model",
        str(CITIES / "xiamen.toml"),
        "-o",
        str(tmp_path / "f.toml"),
    )
    assert result.exit_code == 2
    assert result.output.startswith("error [invalid_model] --model: ")
    assert 'kind = "scorecard"' in result.output
    missing = ccx(
        "model",
        "fit",
        str(tmp_path / "none.csv"),
        "--model",
        str(CITIES / "hangzhou.base.toml"),
        "-o",
        str(tmp_path / "f.toml"),
    )
    assert missing.output.startswith("error [file_not_found] OUTCOMES: ")


def test_demo_outcomes_of_an_unknown_city_is_a_one_line_error(tmp_path: Path) -> None:
    result = ccx("model", "demo-outcomes", "atlantis", "-o", str(tmp_path / "o.csv"))
    assert result.exit_code == 2
    assert result.output.startswith("error [invalid_argument] city: unknown city 'atlantis'")


def test_read_outcomes_round_trips_the_values_exactly() -> None:
    values = {"usage": np.array([0.1, -40.0, 1e-9]), "positive": np.array([1 / 3, 2.0, 7.5])}
    parsed = table(values, np.array([0, 1, 0]))
    assert parsed.values[DIMENSIONS.index("usage")].tolist() == [0.1, -40.0, 1e-9]
    assert parsed.values[DIMENSIONS.index("positive")].tolist() == [1 / 3, 2.0, 7.5]
    with pytest.raises(ModelError, match="UTF-8"):
        read_outcomes(b"\xff\xfe")


def test_the_simulators_report_names_the_learned_city(tmp_path: Path) -> None:
    import json

    from simulator.observations import CityInfo, RunResult
    from simulator.outcomes import learned_cities
    from simulator.report import write_report

    assert learned_cities(["xiamen", "hangzhou", "atlantis"]) == [
        ("hangzhou", load_model(CITIES / "hangzhou.toml").version)
    ]
    tables = ROOT / "mappings" / "tables"

    def city(name: str, score: str) -> CityInfo:
        return CityInfo(
            city=name,
            name=score,
            node_id=f"https://{name}.ccx.example",
            residents=100,
            records=300,
            holders=80,
            summary=json.loads((tables / f"{name}.summary.json").read_text(encoding="utf-8")),
            table=json.loads((tables / f"{name}.table.json").read_text(encoding="utf-8")),
        )

    scale = json.loads((tables / "xiamen.table.json").read_text(encoding="utf-8"))
    result = RunResult(
        seed=1,
        started_at=1_800_000_000,
        scale=scale.get("scale", {}),
        scenarios=[],
        cities=[city("xiamen", "白鹭分"), city("hangzhou", "钱江分")],
    )
    text = write_report(result, tmp_path).read_text(encoding="utf-8")
    [line] = [line for line in text.splitlines() if "Learned scorecard" in line]
    assert "hangzhou (`qianjiang-card-1`)" in line
    assert "xiamen" not in line
    only_weighted = RunResult(
        seed=1,
        started_at=1_800_000_000,
        scale=scale.get("scale", {}),
        scenarios=[],
        cities=[city("xiamen", "白鹭分")],
    )
    assert "Learned scorecard" not in write_report(only_weighted, tmp_path / "w").read_text(
        encoding="utf-8"
    )


def test_without_the_model_extra_fit_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises
    outcomes = tmp_path / "o.csv"
    outcomes.write_text(demo_outcomes("hangzhou", 100, seed=1), encoding="utf-8")
    result = ccx(
        "model",
        "fit",
        str(outcomes),
        "--model",
        str(CITIES / "hangzhou.base.toml"),
        "-o",
        str(tmp_path / "f.toml"),
    )
    assert result.exit_code == 2
    assert result.output.startswith("error [missing_extra] model: ")
    assert "sklearn is missing" in result.output
    assert "pip install 'ccx[model]'" in result.output
