"""Fitting a scorecard from past outcomes, and judging a model on them (issue 18,
docs/MODELS.md): what ``ccx model fit`` and ``ccx model report`` do.

Only these commands import scikit-learn (the ``model`` extra); the node scores with the
fitted file alone (:class:`node.scoring.Scorecard`, pure Python and numpy).

The fit, for each characteristic (a dimension the base's ``[scorecard.dimensions]``
names), on a table of residents' dimension values and whether each defaulted:

1. cut the values into the base's candidate bins (``edges``); merge a bin with fewer
   than ``min_bin`` residents into its smaller neighbour;
2. where the base says ``monotone``, merge bins until their weights of evidence
   (WoE, ``ln(share of goods / share of bads)``, with half a resident added to each count
   so that no bin's is infinite) run that way: isotonic regression (scikit-learn's, the
   pool-adjacent-violators algorithm) over the bins' WoE, weighted by their residents,
   and bins it gives one value merged, until none is out of order;
3. a logistic regression (scikit-learn, unpenalised) of "did not default" on every
   characteristic's WoE; a characteristic whose coefficient comes out negative (or that
   is left one bin) is dropped and the rest refitted, so that each bin's points,
   ``factor * coefficient * WoE``, run the way its WoE does: monotone where asked;
4. scaled by points to double the odds: ``base = offset + factor * intercept``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from node.scoring import (
    DIMENSIONS,
    ModelError,
    Scorecard,
    ScoringModel,
    scorecard_from_dict,
)

__all__ = [
    "OUTCOME_COLUMNS",
    "Calibration",
    "Outcomes",
    "Report",
    "fit_scorecard",
    "outcomes_csv",
    "read_outcomes",
    "render_report",
    "report",
]

# the outcomes table: a resident, each dimension's value (the sum of her counting records'
# points at the time), and whether she defaulted on pay-later in the following year
OUTCOME_COLUMNS = ("resident", *DIMENSIONS, "defaulted")
SMOOTHING = 0.5  # residents added to each bin's goods and bads before the WoE
DECIMALS = 2  # points and base in the fitted file

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Outcomes:
    """A table of outcomes: ``values`` has one row per dimension (in :data:`DIMENSIONS`
    order), one column per resident; ``defaulted`` is 1 for a default, else 0."""

    values: FloatArray
    defaulted: IntArray
    digest: str  # SHA-256 of the file, hex

    @property
    def residents(self) -> int:
        return len(self.defaulted)


def read_outcomes(data: bytes) -> Outcomes:
    """Parse an outcomes CSV (header row :data:`OUTCOME_COLUMNS`, in any order).

    Raises :class:`ModelError` naming the row and column of a value that is not a
    finite number or a ``defaulted`` that is not 0 or 1, a missing column, or a table
    without both outcomes."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ModelError("the outcomes file is not UTF-8 text") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in OUTCOME_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ModelError(f"the outcomes file lacks the columns {missing} (header row first)")
    columns: list[list[float]] = [[] for _ in DIMENSIONS]
    defaulted: list[int] = []
    for line, row in enumerate(reader, start=2):
        for i, name in enumerate(DIMENSIONS):
            try:
                value = float(row[name])
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                raise ModelError(f"line {line}, {name}: {row[name]!r} is not a finite number")
            columns[i].append(value)
        if row["defaulted"] not in ("0", "1"):
            raise ModelError(f"line {line}, defaulted: {row['defaulted']!r} is not 0 or 1")
        defaulted.append(int(row["defaulted"]))
    outcome = np.array(defaulted, dtype=np.int64)
    if outcome.sum() == 0 or outcome.sum() == len(outcome):
        raise ModelError("the outcomes need residents who defaulted and residents who did not")
    return Outcomes(np.array(columns, dtype=np.float64), outcome, hashlib.sha256(data).hexdigest())


def outcomes_csv(
    resident_ids: Sequence[str], values: FloatArray, defaulted: npt.NDArray[Any]
) -> str:
    """The outcomes CSV :func:`read_outcomes` reads (values as ``repr`` of floats, so
    they round-trip exactly)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(OUTCOME_COLUMNS)
    for n, rid in enumerate(resident_ids):
        writer.writerow([rid, *(repr(float(v)) for v in values[:, n]), int(defaulted[n])])
    return out.getvalue()


# --- the fit ---------------------------------------------------------------------------


def _woe(goods: FloatArray, bads: FloatArray) -> FloatArray:
    g = goods + SMOOTHING
    b = bads + SMOOTHING
    return np.asarray(np.log((g / g.sum()) / (b / b.sum())), dtype=np.float64)


def _merge(edges: list[float], goods: list[float], bads: list[float], i: int) -> None:
    """Merge bin ``i`` with bin ``i + 1`` (dropping the edge between them)."""
    goods[i : i + 2] = [goods[i] + goods[i + 1]]
    bads[i : i + 2] = [bads[i] + bads[i + 1]]
    del edges[i]


def _bins(
    edges: Sequence[float], x: FloatArray, bad: IntArray, monotone: str, min_bin: int
) -> tuple[list[float], FloatArray]:
    """The merged edges and each merged bin's WoE (steps 1 and 2 of the module)."""
    from sklearn.isotonic import IsotonicRegression

    cut = list(edges)
    index = np.searchsorted(np.asarray(cut, dtype=np.float64), x, side="right")
    counts = np.bincount(index, minlength=len(cut) + 1)
    bad_counts = np.bincount(index, weights=bad, minlength=len(cut) + 1)
    goods = [float(c - b) for c, b in zip(counts, bad_counts, strict=True)]
    bads = [float(b) for b in bad_counts]
    while len(goods) > 1:
        sizes = [g + b for g, b in zip(goods, bads, strict=True)]
        small = next((i for i, n in enumerate(sizes) if n < min_bin), None)
        if small is None:
            break
        if small == 0 or (small < len(sizes) - 1 and sizes[small + 1] < sizes[small - 1]):
            _merge(cut, goods, bads, small)
        else:
            _merge(cut, goods, bads, small - 1)
    while monotone != "none" and len(goods) > 1:
        woe = _woe(np.array(goods), np.array(bads))
        steps = np.diff(woe)
        if (monotone == "increasing" and (steps >= 0).all()) or (
            monotone == "decreasing" and (steps <= 0).all()
        ):
            break
        weights = np.array(goods) + np.array(bads)
        fitted = IsotonicRegression(increasing=monotone == "increasing").fit_transform(
            np.arange(len(woe), dtype=np.float64), woe, sample_weight=weights
        )
        # the first pair the regression pools (ties within rounding): merge it, and look
        # again; the merged bin's own WoE can differ from the pooled value
        pooled = next(
            (i for i in range(len(fitted) - 1) if math.isclose(fitted[i], fitted[i + 1])),
            None,
        )
        _merge(cut, goods, bads, pooled if pooled is not None else int(np.argmin(np.abs(steps))))
    return cut, _woe(np.array(goods), np.array(bads))


def fit_scorecard(
    base: Mapping[str, Any], outcomes: Outcomes, *, min_bin_share: float = 0.02
) -> dict[str, Any]:
    """The fitted model file's data (for ``tomli_w``) from a base model file's data (a
    scorecard model whose characteristics carry candidate ``edges``, no points) and a
    table of outcomes. Deterministic: the same base and outcomes give the same data.

    Raises :class:`ModelError` if the base is not a scorecard model or the fitted model
    does not validate."""
    from sklearn.linear_model import LogisticRegression

    if base.get("model", {}).get("kind") != "scorecard":
        raise ModelError('the base model must say [model] kind = "scorecard"')
    card = scorecard_from_dict(base.get("scorecard"), fitted=False)
    min_bin = max(1, math.ceil(min_bin_share * outcomes.residents))
    good = 1 - outcomes.defaulted
    row = {name: i for i, name in enumerate(DIMENSIONS)}
    binned: dict[str, tuple[list[float], FloatArray]] = {}
    for name, c in card.characteristics.items():
        if name not in row:
            raise ModelError(f"scorecard.dimensions.{name}: not a dimension {DIMENSIONS}")
        binned[name] = _bins(
            c.edges, outcomes.values[row[name]], outcomes.defaulted, c.monotone, min_bin
        )

    def features(names: list[str]) -> FloatArray:
        columns = []
        for name in names:
            edges, woe = binned[name]
            index = np.searchsorted(
                np.asarray(edges, dtype=np.float64), outcomes.values[row[name]], side="right"
            )
            columns.append(woe[index])
        return np.column_stack(columns) if columns else np.zeros((outcomes.residents, 0))

    used = [name for name in card.characteristics if len(binned[name][0]) > 0]
    coefficients: dict[str, float] = {}
    intercept = math.log(good.sum() / outcomes.defaulted.sum())
    while used:
        regression = LogisticRegression(C=np.inf, max_iter=1000).fit(features(used), good)
        found = dict(zip(used, (float(b) for b in regression.coef_[0]), strict=True))
        negative = [name for name in used if found[name] < 0]
        if not negative:
            coefficients, intercept = found, float(regression.intercept_[0])
            break
        used.remove(min(negative, key=lambda name: found[name]))
    factor = card.scaling.factor
    fitted: dict[str, Any] = _copy(base)
    table = fitted["scorecard"]
    table["intercept"] = round(intercept, 6)
    table["fitted"] = {
        "outcomes_sha256": outcomes.digest,
        "residents": outcomes.residents,
        "defaults": int(outcomes.defaulted.sum()),
        "min_bin": min_bin,
    }
    for name in card.characteristics:
        edges, woe = binned[name]
        b = coefficients.get(name, 0.0)
        entry = table["dimensions"][name]
        entry["edges"] = [_number(e) for e in edges]
        entry["woe"] = [round(float(w), 6) for w in woe]
        entry["coefficient"] = round(b, 6)
        entry["points"] = [round(factor * b * float(w), DECIMALS) + 0.0 for w in woe]
    fitted["model"]["base"] = round(card.scaling.offset + factor * intercept, DECIMALS)
    ScoringModel.from_dict(fitted)  # raises ModelError if it does not validate
    return fitted


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {key: _copy(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_copy(value) for value in data]
    return data


# --- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """One score band: its residents, the default rate the model predicts (the mean of
    its scaling's probability over their scores) and the rate observed."""

    low: float
    high: float
    residents: int
    predicted: float | None
    observed: float


@dataclass(frozen=True)
class Report:
    """How well a model tells defaulters apart (AUC, KS, Gini: higher scores should
    default less) and, for a scorecard, how its predicted default rates match the
    observed ones by score band."""

    model_version: str
    kind: str
    residents: int
    defaults: int
    auc: float
    ks: float
    gini: float
    bands: tuple[Calibration, ...]
    roc: tuple[FloatArray, FloatArray]  # false and true positive rates


def report(model: ScoringModel, outcomes: Outcomes, *, bands: int = 10) -> Report:
    """Score the outcomes' residents with ``model`` (from their dimension values) and
    judge it. Bands hold about equal numbers of residents (score quantiles; equal
    scores stay in one band)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = model.score_values(outcomes.values).scores
    risk = -scores  # a higher score should mean fewer defaults
    auc = float(roc_auc_score(outcomes.defaulted, risk))
    fpr, tpr, _ = roc_curve(outcomes.defaulted, risk)
    ks = float(np.max(tpr - fpr))
    card = model.kind if isinstance(model.kind, Scorecard) else None
    cuts = np.unique(np.quantile(scores, np.linspace(0, 1, bands + 1)[1:-1]))
    index = np.searchsorted(cuts, scores, side="right")
    rows = []
    for band in range(len(cuts) + 1):
        mine = index == band
        if not mine.any():
            continue
        predicted = (
            float(np.mean([card.scaling.default_probability(float(s)) for s in scores[mine]]))
            if card is not None
            else None
        )
        rows.append(
            Calibration(
                float(scores[mine].min()),
                float(scores[mine].max()),
                int(mine.sum()),
                predicted,
                float(outcomes.defaulted[mine].mean()),
            )
        )
    return Report(
        model.version,
        model.kind.name,
        outcomes.residents,
        int(outcomes.defaulted.sum()),
        auc,
        ks,
        2 * auc - 1,
        tuple(rows),
        (np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)),
    )


def render_report(result: Report) -> bytes:
    """A PNG: the ROC curve (with AUC, KS and Gini), and by score band the predicted
    beside the observed default rate. matplotlib's Agg canvas on a bare Figure, as
    alliance/plot.py draws."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10.5, 4.6))
    FigureCanvasAgg(figure)
    roc, calibration = figure.subplots(1, 2)
    fpr, tpr = result.roc
    roc.plot(fpr, tpr, color="tab:blue", linewidth=1.6)
    roc.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
    roc.set_xlabel("false positive rate (non-defaulters flagged)")
    roc.set_ylabel("true positive rate")
    roc.set_title(
        f"{result.model_version}: AUC {result.auc:.3f}, KS {result.ks:.3f}, Gini {result.gini:.3f}",
        fontsize=10,
    )
    positions = np.arange(len(result.bands))
    observed = [band.observed * 100 for band in result.bands]
    calibration.bar(positions + 0.2, observed, width=0.4, label="observed", color="tab:orange")
    if all(band.predicted is not None for band in result.bands):
        predicted = [(band.predicted or 0.0) * 100 for band in result.bands]
        calibration.bar(positions - 0.2, predicted, width=0.4, label="predicted", color="tab:blue")
    calibration.set_xticks(
        positions, [f"{band.low:g}–{band.high:g}" for band in result.bands], rotation=45, fontsize=7
    )
    calibration.set_xlabel("score band")
    calibration.set_ylabel("default rate (%)")
    calibration.set_title("calibration by score band", fontsize=10)
    calibration.legend(fontsize=8)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=110, metadata={"Software": None})
    return out.getvalue()
