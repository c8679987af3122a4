"""Synthetic outcomes for fitting a scorecard (issue 18): ``ccx model demo-outcomes``.

A simulated city's residents (:func:`simulator.population.generate`), each dimension's
value at :data:`OUTCOMES_AT` under the city's base model (the sum of her counting
records' points), and whether she then defaulted on pay-later, drawn from a risk that
none of the cities' models knows: a logistic function of those values, with the
dishonesty and pay-later ones weighing most, plus an unobserved part per resident (the
share of risk no record shows). None of these numbers describe real residents.

The same city, residents and seed give the same table, byte for byte (for a given
numpy), so that ``ccx model fit`` refits the committed model file exactly
(tests/model/test_demo_city.py).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from cli import InputError, reports_errors, write_atomically

__all__ = [
    "DEMO_OUTCOMES_RESIDENTS",
    "DEMO_OUTCOMES_SEED",
    "OUTCOMES_AT",
    "base_model_path",
    "demo_outcomes",
    "demo_outcomes_command",
    "learned_cities",
]

DEMO_OUTCOMES_SEED = 20261118
DEMO_OUTCOMES_RESIDENTS = 20_000
OUTCOMES_AT = 1_761_955_200  # 2025-11-01T00:00:00Z: a year before the demo's scores
CITIES_DIR = Path(__file__).parent / "cities"

# the true risk (log-odds of a default within the year): per point of each dimension's value
_INTERCEPT = -2.6
_PER_POINT = {"basic": -0.006, "positive": -0.008, "dishonesty": -0.009, "repair": -0.002}
_USAGE_BAD = -0.03  # per point below 0 (defaults weigh -40 each)
_USAGE_GOOD = -0.02  # per point above 0 (bills paid on time, +5 each)
_UNOBSERVED = 0.7  # standard deviation of the risk no record shows


def base_model_path(city: str) -> Path:
    """The model a city's outcomes are valued under: its scorecard base
    (``cities/<city>.base.toml``) where it has one, else its model file."""
    base = CITIES_DIR / f"{city}.base.toml"
    return base if base.exists() else CITIES_DIR / f"{city}.toml"


def learned_cities(cities: Sequence[str]) -> list[tuple[str, str]]:
    """``(city, model version)`` of the simulated cities among ``cities`` whose model file
    (``cities/<city>.toml``, the one their node scores with) is a scorecard, for the
    simulator's report; a city without a model file there is left out."""
    from node.scoring import load_model

    learned = []
    for city in cities:
        path = CITIES_DIR / f"{city}.toml"
        if path.exists():
            model = load_model(path)
            if model.kind.name == "scorecard":
                learned.append((city, model.version))
    return learned


def demo_outcomes(city: str, residents: int, *, seed: int, model_path: Path | None = None) -> str:
    """The outcomes CSV (node.model_fit.OUTCOME_COLUMNS) of ``residents`` residents of a
    simulated city. Raises ``ValueError`` for an unknown city or a bad number,
    ``node.scoring.ModelError`` for a model that can't be read."""
    import numpy as np  # here: `ccx model --help` starts without numpy (issue 20)

    from node.model_fit import outcomes_csv
    from node.scoring import load_model
    from simulator.population import generate, profile

    if residents < 1:
        raise ValueError("at least one resident")
    city_profile = profile(city)
    model = load_model(model_path or base_model_path(city), fitted=False)
    population = generate(city_profile, residents, seed=seed, now=OUTCOMES_AT, model=model)
    values = model.dimension_values(residents, *population.record_arrays(model), population.now)
    rng = np.random.default_rng([seed, zlib.crc32(f"{city}/outcomes".encode())])
    rows = {name: i for i, name in enumerate(model.dimensions)}
    logit = np.full(residents, _INTERCEPT) + rng.normal(0, _UNOBSERVED, residents)
    for name, weight in _PER_POINT.items():
        logit += weight * values[rows[name]]
    usage = values[rows["usage"]]
    logit += _USAGE_BAD * np.minimum(usage, 0) + _USAGE_GOOD * np.maximum(usage, 0)
    defaulted = (rng.random(residents) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return outcomes_csv(population.resident_ids, values, defaulted)


@reports_errors
def demo_outcomes_command(
    city: Annotated[str, typer.Argument(help="A simulated city: xiamen, fuzhou, hangzhou, ...")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Write the CSV here.")],
    residents: Annotated[
        int, typer.Option(help="How many residents.", min=1)
    ] = DEMO_OUTCOMES_RESIDENTS,
    seed: Annotated[int, typer.Option(help="The random seed.", min=0)] = DEMO_OUTCOMES_SEED,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Value the records under this model (default: the city's scorecard base, "
            "simulator/cities/<city>.base.toml, else its model).",
        ),
    ] = None,
) -> None:
    """Write a synthetic table of outcomes for a simulated city: each resident's dimension
    values a year before the demo and whether she then defaulted on pay-later (drawn from
    a risk of the values plus an unobserved part). For ccx model fit and report; none of
    it describes real residents. The same arguments write the same file."""
    from node.scoring import ModelError

    try:
        text = demo_outcomes(city, residents, seed=seed, model_path=model)
    except ValueError as exc:  # ModelError included
        code = "invalid_model" if isinstance(exc, ModelError) else "invalid_argument"
        raise InputError(code, "--model" if code == "invalid_model" else "city", str(exc)) from exc
    try:
        write_atomically(out, text.encode("utf-8"))
    except OSError as exc:
        raise InputError("file_error", "--out", f"cannot write {out}: {exc.strerror}") from exc
    typer.echo(f"wrote {out}: {residents} residents of {city}")
