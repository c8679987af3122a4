"""`ccx model`: fit a city's scorecard from past outcomes and judge a model on them
(issue 18, docs/MODELS.md). scikit-learn (the ``model`` extra) and matplotlib are
imported inside the commands; the node never imports this module."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import InputError, columns, read_bytes, reports_errors, write_atomically

if TYPE_CHECKING:
    from node.model_fit import Outcomes, Report

__all__ = ["model_app"]

model_app = typer.Typer(
    help="Scoring models: fit a scorecard from a table of past outcomes, and report how "
    "well a model tells defaulters apart (AUC, KS, Gini) and how its predicted default "
    "rates match the observed ones. See docs/MODELS.md.",
    no_args_is_help=True,
    add_completion=False,
)


def _outcomes(path: Path) -> Outcomes:
    from node.model_fit import read_outcomes
    from node.scoring import ModelError

    try:
        return read_outcomes(read_bytes(path, "OUTCOMES"))
    except ModelError as exc:
        raise InputError("invalid_outcomes", "OUTCOMES", str(exc)) from exc


def _sklearn() -> None:
    """The model extra's libraries, or a one-line error saying how to install them."""
    try:
        import sklearn  # noqa: F401
        import tomli_w  # noqa: F401
    except ImportError as exc:
        raise InputError(
            "missing_extra",
            "model",
            f"ccx model needs the model extra ({exc.name} is missing): pip install 'ccx[model]'",
        ) from exc


@model_app.command("fit")
@reports_errors
def fit(
    outcomes: Annotated[
        Path,
        typer.Argument(
            metavar="OUTCOMES.csv",
            help="Past outcomes: resident, basic, positive, dishonesty, repair, usage, "
            "defaulted (0 or 1).",
        ),
    ],
    model: Annotated[
        Path,
        typer.Option(
            "--model", help='The base model file: kind = "scorecard", candidate bins, no points.'
        ),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Write the fitted model file here.")],
    min_bin_share: Annotated[
        float,
        typer.Option(
            help="The least share of residents a bin keeps (else merged).", min=0, max=0.5
        ),
    ] = 0.02,
) -> None:
    """Fit a scorecard: bin each dimension, merge bins until monotone where the model says
    so, fit a logistic regression on the bins' weights of evidence, and scale the points
    by points to double the odds. Writes a model file the node scores with
    (CCX_SCORING_MODEL). The same base and outcomes write the same file."""
    _sklearn()
    import tomli_w

    from node.model_fit import fit_scorecard
    from node.scoring import ModelError

    try:
        base = tomllib.loads(read_bytes(model, "--model").decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError("invalid_model", "--model", f"not a TOML file: {exc}") from exc
    data = _outcomes(outcomes)
    try:
        fitted = fit_scorecard(base, data, min_bin_share=min_bin_share)
    except ModelError as exc:
        raise InputError("invalid_model", "--model", str(exc)) from exc
    header = (
        f"# Fitted by `ccx model fit` from {model.name} and {data.residents} outcomes "
        f"(sha256 {data.digest[:16]}...): do not edit, refit (docs/MODELS.md).\n\n"
    )
    try:
        write_atomically(out, (header + tomli_w.dumps(fitted)).encode("utf-8"))
    except OSError as exc:
        raise InputError("file_error", "--out", f"cannot write {out}: {exc.strerror}") from exc
    card = fitted["scorecard"]["dimensions"]
    rows = [["dimension", "bins", "coefficient", "points"]]
    for name, entry in card.items():
        points = entry["points"]
        rows.append(
            [
                name,
                str(len(points)),
                f"{entry['coefficient']:.3f}",
                f"{min(points):g}..{max(points):g}",
            ]
        )
    typer.echo(f"wrote {out}: base {fitted['model']['base']:g}")
    for line in columns(rows, left=(0,)):
        typer.echo(line)


@model_app.command("report")
@reports_errors
def report_command(
    model: Annotated[Path, typer.Argument(metavar="MODEL.toml", help="A model file.")],
    outcomes: Annotated[
        Path, typer.Argument(metavar="OUTCOMES.csv", help="Outcomes to judge it on.")
    ],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG: ROC curve and calibration.")
    ] = None,
    bands: Annotated[int, typer.Option(help="Score bands for calibration.", min=2, max=50)] = 10,
) -> None:
    """How well a model tells who defaulted apart: AUC, KS and Gini, and by score band the
    default rate it predicts (a scorecard: from its scaling) beside the rate observed.
    Judge it on outcomes it was not fitted on (ccx model demo-outcomes --seed)."""
    _sklearn()
    from node.model_fit import render_report, report
    from node.scoring import ModelError, load_model

    try:
        scoring_model = load_model(model)
    except ModelError as exc:
        raise InputError("invalid_model", "MODEL.toml", str(exc)) from exc
    result = report(scoring_model, _outcomes(outcomes), bands=bands)
    for line in _lines(result):
        typer.echo(line)
    if plot is not None:
        try:
            write_atomically(plot, render_report(result))
        except OSError as exc:
            raise InputError(
                "file_error", "--plot", f"cannot write {plot}: {exc.strerror}"
            ) from exc
        typer.echo(f"wrote {plot}")


def _lines(result: Report) -> list[str]:
    lines = [
        f"model {result.model_version} ({result.kind}): {result.residents} residents, "
        f"{result.defaults} defaults ({result.defaults / result.residents:.1%})",
        f"AUC {result.auc:.3f}  KS {result.ks:.3f}  Gini {result.gini:.3f}",
        "",
    ]
    rows = [["score band", "residents", "predicted", "observed"]]
    for band in result.bands:
        rows.append(
            [
                f"{band.low:g}..{band.high:g}",
                str(band.residents),
                "-" if band.predicted is None else f"{band.predicted:.1%}",
                f"{band.observed:.1%}",
            ]
        )
    return lines + columns(rows, left=(0,))
