"""A city's scoring model (DESIGN section 9): pure functions over records, no I/O.

The model is data, a TOML file: the local scale, a base, five dimensions with weights
and caps, record kinds (dimension, points, severity), how long each severity keeps
counting (its disclosure period), how repair restores points, and which department may
push which kinds (``[departments.<name>] kinds = [...]``, issue 17: a department's
stolen token can then push only its own kinds; see :attr:`ScoringModel.departments`).

    score = clamp(base + sum over dimensions d of clamp(weight_d * points_d, min_d, max_d))

where points_d sums the records of dimension d still inside their disclosure period. A
repair record names the record it repairs and adds back a share of that record's
(negative) points, by the repaired record's severity, while that record still counts.

One implementation serves both the single resident (a new record rescoring her at
once, her breakdown) and the monthly batch over everyone (numpy, one pass per
dimension), so the two can't disagree.

Two kinds of model (issue 18, docs/MODELS.md), told apart by ``[model] kind``; they share
everything above but how a dimension's value (the sum of its counting records' points)
becomes its part of the score, which is the :class:`ModelKind` interface:

- ``"weighted"`` (the default, :class:`WeightedSum`): the part is
  ``clamp(weight_d * points_d, min_d, max_d)``, weights set by hand;
- ``"scorecard"`` (:class:`Scorecard`): the part is the points of the bin the value falls
  in, fitted from past outcomes by ``ccx model fit`` (logistic regression on the bins'
  weights of evidence, scaled by points to double the odds); the model names the
  dimensions that lowered her score most (reason codes, :meth:`ScoringModel.score`).

Either way ``score = clamp(base + sum of the parts)`` on the scale's steps.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tomllib
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mappings import LocalScale

__all__ = [
    "MODEL_KINDS",
    "MONOTONE",
    "BatchScores",
    "Breakdown",
    "Characteristic",
    "Dimension",
    "ModelError",
    "ModelKind",
    "Reason",
    "RecordInput",
    "RecordKind",
    "Scorecard",
    "ScorecardScaling",
    "ScoringModel",
    "WeightedSum",
    "load_model",
    "model_data",
]

log = logging.getLogger("ccx.node")

DAY = 86400
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"  # a record kind's name (fits Record.kind)
# a department's name, as client credentials name it (fits Record.department)
DEPARTMENT_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
DIMENSIONS = ("basic", "positive", "dishonesty", "repair", "usage")
SEVERITIES = ("minor", "general", "serious")
MODEL_KINDS = ("weighted", "scorecard")
# how a scorecard characteristic's points must run as its value grows: "increasing" says
# more points for a higher value (more positive-trust records never lower the score)
MONOTONE = ("increasing", "decreasing", "none")
FloatArray = npt.NDArray[np.float64]


class ModelError(ValueError):
    """The scoring model file is not valid; the message names the key."""


MAX_EXPLANATION = 500


def _text(table: Mapping[str, Any], key: str) -> str:
    """An optional text of the model (a label, an explanation): a string of at most
    ``MAX_EXPLANATION`` characters, "" when absent."""
    value = table.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_EXPLANATION:
        raise ModelError(f"{key} must be text of at most {MAX_EXPLANATION} characters")
    return value


@dataclass(frozen=True)
class Dimension:
    name: str
    label: str
    weight: float
    min: float
    max: float
    label_en: str = ""  # the label in English, for the resident's page (optional)


@dataclass(frozen=True)
class RecordKind:
    name: str
    dimension: str
    points: float
    severity: str
    repair: bool = False
    points_overridable: bool = False
    # Why a record of this kind counts, in plain words for the resident (PIPL art. 24:
    # the explanation of an automated decision); optional, shown on her page.
    label_zh: str = ""
    label_en: str = ""
    explain_zh: str = ""
    explain_en: str = ""
    # False: records of the kind feed a credential only (issue 18, node/credentials.py:
    # a service rating's stars), never the score; their points are 0 to it.
    scored: bool = True


@dataclass(frozen=True)
class RecordInput:
    """What scoring needs of a record (the node's rows carry more)."""

    key: str  # department/record_id, for the breakdown
    kind: str
    occurred_at: int
    points: float | None = None
    repairs: RecordInput | None = None


@dataclass(frozen=True)
class Reason:
    """A reason code: a dimension that lowered her score, and by how much (the points
    below the most its characteristic can give; credit bureaus' adverse-action reasons)."""

    code: str
    dimension: str
    points_below_max: float
    text_zh: str
    text_en: str


@dataclass(frozen=True)
class Breakdown:
    """A score with each dimension's part (``by_dimension``; ``base`` plus their sum,
    clamped and stepped, is the score), each dimension's value (the sum of its counting
    records' points), the records behind each and, for a scorecard, the reason codes."""

    score: float
    by_dimension: dict[str, float]
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    reasons: tuple[Reason, ...] = ()


class ModelKind(Protocol):
    """What differs between the kinds of model: how a dimension's value (the sum of its
    counting records' points) becomes its part of the score. :class:`ScoringModel`
    scores one resident and everyone through this alone, so that both paths agree."""

    @property
    def name(self) -> str:
        """The kind, as ``[model] kind`` names it (:data:`MODEL_KINDS`)."""
        ...

    def part(self, dimension: str, value: float) -> float:
        """The dimension's part of the score for this value."""
        ...

    def parts(self, dimension: str, values: FloatArray) -> FloatArray:
        """:meth:`part` of many values at once, equal to it bit for bit."""
        ...

    def bounds(self, dimension: str) -> tuple[float, float]:
        """The least and the most the dimension's part can be."""
        ...

    def reasons(self, parts: Mapping[str, float]) -> tuple[Reason, ...]:
        """The reason codes for these parts, the dimension that lowered the score most
        first (none for a kind that gives none)."""
        ...


@dataclass(frozen=True)
class WeightedSum:
    """The hand-weighted kind: a dimension's part is ``clamp(weight * value, min, max)``.
    Its explanation is the records behind each part; it gives no reason codes."""

    dimensions: Mapping[str, Dimension]
    name: str = "weighted"

    def part(self, dimension: str, value: float) -> float:
        d = self.dimensions[dimension]
        return float(min(max(d.weight * value, d.min), d.max))

    def parts(self, dimension: str, values: FloatArray) -> FloatArray:
        d = self.dimensions[dimension]
        return np.asarray(np.clip(d.weight * values, d.min, d.max), dtype=np.float64)

    def bounds(self, dimension: str) -> tuple[float, float]:
        d = self.dimensions[dimension]
        return d.min, d.max

    def reasons(self, parts: Mapping[str, float]) -> tuple[Reason, ...]:
        return ()


@dataclass(frozen=True)
class Characteristic:
    """A scorecard's characteristic: one dimension's value cut into bins at ``edges``
    (bin ``i`` holds ``edges[i-1] <= value < edges[i]``; the first is open below, the
    last above), each bin with its ``points``. ``woe`` and ``coefficient`` are what the
    fit found (the bins' weights of evidence, ln(good share / bad share), and the
    regression's coefficient on them): the points follow from them, kept for the report."""

    dimension: str
    edges: tuple[float, ...]
    points: tuple[float, ...]
    monotone: str = "none"
    reason_code: str = ""
    reason_zh: str = ""
    reason_en: str = ""
    woe: tuple[float, ...] = ()
    coefficient: float | None = None

    def bin_of(self, value: float) -> int:
        return bisect_right(self.edges, value)


@dataclass(frozen=True)
class ScorecardScaling:
    """How log-odds become points: ``base_score`` points at good:bad odds of
    ``base_odds``, and ``pdo`` points more each time the odds double (points to double
    the odds). ``score = offset + factor * ln(odds)`` with ``factor = pdo / ln 2``."""

    pdo: float
    base_score: float
    base_odds: float

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        return self.base_score - self.factor * math.log(self.base_odds)

    def default_probability(self, score: float) -> float:
        """The probability of a default (a bad outcome) the scaling puts on a score."""
        return 1.0 / (1.0 + math.exp((score - self.offset) / self.factor))


@dataclass(frozen=True)
class Scorecard:
    """The learned kind: a dimension's part is the points of the bin its value falls in
    (a dimension without a characteristic gives 0). Reason codes: the characteristics
    whose points lie below the most they can give, the furthest first, at most
    ``reasons`` of them."""

    scaling: ScorecardScaling
    characteristics: Mapping[str, Characteristic]
    reasons_shown: int = 4
    intercept: float | None = None
    name: str = "scorecard"

    def part(self, dimension: str, value: float) -> float:
        c = self.characteristics.get(dimension)
        return 0.0 if c is None else c.points[c.bin_of(value)]

    def parts(self, dimension: str, values: FloatArray) -> FloatArray:
        c = self.characteristics.get(dimension)
        if c is None:
            return np.zeros(len(values), dtype=np.float64)
        bins = np.searchsorted(np.asarray(c.edges, dtype=np.float64), values, side="right")
        return np.asarray(c.points, dtype=np.float64)[bins]

    def bounds(self, dimension: str) -> tuple[float, float]:
        c = self.characteristics.get(dimension)
        return (0.0, 0.0) if c is None else (min(c.points), max(c.points))

    def reasons(self, parts: Mapping[str, float]) -> tuple[Reason, ...]:
        below = [
            (max(c.points) - parts[name], i, c)
            for i, (name, c) in enumerate(self.characteristics.items())
            if max(c.points) - parts[name] > 0
        ]
        below.sort(key=lambda entry: (-entry[0], entry[1]))
        return tuple(
            Reason(c.reason_code, c.dimension, lost, c.reason_zh, c.reason_en)
            for lost, _, c in below[: self.reasons_shown]
        )


@dataclass(frozen=True)
class BatchScores:
    """Scores of everyone, and each dimension's part of them (rows in dimension order)."""

    scores: npt.NDArray[np.float64]
    by_dimension: npt.NDArray[np.float64]  # shape (len(dimensions), residents)


@dataclass(frozen=True)
class ScoringModel:
    version: str
    scale: LocalScale
    base: float
    dimensions: Mapping[str, Dimension]
    kinds: Mapping[str, RecordKind]
    disclosure_days: Mapping[str, int]
    restore: Mapping[str, float]
    # The kinds each department may push (``[departments.<name>] kinds``); a department
    # not listed may push none. ``None``: the model has no departments table, and every
    # department may push every kind (the demo model, models written before issue 17).
    departments: Mapping[str, frozenset[str]] | None = None
    # How a dimension's value becomes its part of the score (``[model] kind``); None:
    # the hand-weighted sum of ``dimensions``.
    rule: ModelKind | None = None

    @property
    def kind(self) -> ModelKind:
        """The model's kind, through which it scores (:class:`ModelKind`)."""
        return self.rule if self.rule is not None else WeightedSum(self.dimensions)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, fitted: bool = True) -> ScoringModel:
        """The model a parsed model file describes. ``fitted=False`` takes a scorecard
        whose bins have no points yet (the base ``ccx model fit`` starts from: it then
        scores every resident ``base``). Raises :class:`ModelError` naming the key that is
        missing or wrong."""
        try:
            model = data["model"]
            scale = LocalScale.from_json(model["scale"])
            kind = model.get("kind", "weighted")
            if kind not in MODEL_KINDS:
                raise ModelError(f"model.kind must be one of {MODEL_KINDS}, not {kind!r}")
            card = (
                scorecard_from_dict(data.get("scorecard"), fitted=fitted)
                if kind == "scorecard"
                else None
            )
            dimensions = {name: _dimension(name, d, card) for name, d in data["dimensions"].items()}
            kinds = {
                name: RecordKind(
                    name,
                    k["dimension"],
                    float(k.get("points", 0)),
                    k.get("severity", "minor"),
                    bool(k.get("repair", False)),
                    bool(k.get("points_overridable", False)),
                    _text(k, "label_zh"),
                    _text(k, "label_en"),
                    _text(k, "explain_zh"),
                    _text(k, "explain_en"),
                    bool(k.get("scored", True)),
                )
                for name, k in data["kinds"].items()
            }
            days = {s: int(data["severity"][s]) for s in SEVERITIES}
            restore = {s: float(data["repair"]["restore"][s]) for s in SEVERITIES}
            built = cls(
                str(model["version"]),
                scale,
                float(model["base"]),
                dimensions,
                kinds,
                days,
                restore,
                _departments(data["departments"]) if "departments" in data else None,
                card if card is not None else WeightedSum(dimensions),
            )
        except ModelError:
            raise
        except KeyError as exc:
            raise ModelError(f"scoring model lacks {exc.args[0]!r}") from exc
        except (AttributeError, TypeError, ValueError) as exc:
            # AttributeError: a table where the file has a plain value (``kinds = 3``)
            raise ModelError(f"scoring model is malformed: {exc}") from exc
        built._check()
        return built

    def _check(self) -> None:
        if set(self.dimensions) != set(DIMENSIONS):
            raise ModelError(f"the model needs exactly the dimensions {DIMENSIONS}")
        for d in self.dimensions.values():
            if not all(math.isfinite(v) for v in (d.weight, d.min, d.max)):
                raise ModelError(f"dimension {d.name}: weight, min and max must be finite")
            if d.min > d.max:
                raise ModelError(f"dimension {d.name}: min must not exceed max")
        if not self.kinds:
            raise ModelError("the model needs at least one record kind")
        for k in self.kinds.values():
            if not re.fullmatch(KIND_PATTERN, k.name):
                raise ModelError(f"kind {k.name!r}: a name of a-z, 0-9 and _, at most 64")
            if k.dimension not in self.dimensions:
                raise ModelError(f"kind {k.name}: unknown dimension {k.dimension!r}")
            if k.severity not in SEVERITIES:
                raise ModelError(f"kind {k.name}: severity must be one of {SEVERITIES}")
            if not math.isfinite(k.points):
                raise ModelError(f"kind {k.name}: points must be finite")
        for severity, days in self.disclosure_days.items():
            if days <= 0:
                raise ModelError(f"severity.{severity}: the disclosure period must be > 0 days")
        for severity, share in self.restore.items():
            if not 0 <= share <= 1:
                raise ModelError(f"repair.restore.{severity}: the share must lie in 0..1")
        if not math.isfinite(self.base):
            raise ModelError("the base must be finite")
        # a scorecard's base is its intercept's points, which may lie off the scale
        scorecard = isinstance(self.rule, Scorecard)
        if not scorecard and not self.scale.min <= self.base <= self.scale.max:
            raise ModelError("the base must lie on the scale")
        if isinstance(self.rule, Scorecard):
            unknown = sorted(set(self.rule.characteristics) - set(self.dimensions))
            if unknown:
                raise ModelError(f"scorecard.dimensions: unknown dimensions {unknown}")
        for department, kinds in (self.departments or {}).items():
            if not re.fullmatch(DEPARTMENT_PATTERN, department):
                raise ModelError(
                    f"departments.{department}: a name of a-z, 0-9, '_', '.' and '-', at most 64"
                )
            unknown = sorted(kinds - set(self.kinds))
            if unknown:
                raise ModelError(f"departments.{department}: unknown kinds {unknown}")

    def may_push(self, department: str, kind: str) -> bool:
        """Whether ``department`` may push records of ``kind`` (a kind of this model):
        the kinds its ``[departments.<name>]`` table lists; any kind when the model has
        no departments table."""
        if self.departments is None:
            return True
        return kind in self.departments.get(department, frozenset())

    # --- one resident -------------------------------------------------------------

    def counts(self, record: RecordInput, now: int) -> bool:
        """Whether a record still counts at ``now`` (inside its disclosure period)."""
        kind = self.kinds[record.kind]
        if kind.repair:
            return (
                record.repairs is not None
                and self.counts(record.repairs, now)
                and record.occurred_at <= now
            )
        return (
            record.occurred_at
            <= now
            < record.occurred_at + self.disclosure_days[kind.severity] * DAY
        )

    def points_of(self, record: RecordInput) -> float:
        kind = self.kinds[record.kind]
        if not kind.scored:
            return 0.0
        if kind.repair:
            repaired = record.repairs
            if repaired is None:
                return 0.0
            repaired_kind = self.kinds[repaired.kind]
            return -min(self.points_of(repaired), 0.0) * self.restore[repaired_kind.severity]
        if record.points is not None and kind.points_overridable:
            return record.points
        return kind.points

    def score(self, records: Sequence[RecordInput], now: int) -> Breakdown:
        """The score with its breakdown by dimension, the records behind each part and,
        for a scorecard, its reason codes."""
        raw = dict.fromkeys(self.dimensions, 0.0)
        behind: dict[str, list[dict[str, Any]]] = {name: [] for name in self.dimensions}
        for record in records:
            if not self.counts(record, now):
                continue
            kind = self.kinds[record.kind]
            points = self.points_of(record)
            raw[kind.dimension] += points
            behind[kind.dimension].append(
                {"record": record.key, "kind": record.kind, "points": points}
            )
        rule = self.kind
        by_dimension = {name: rule.part(name, total) for name, total in raw.items()}
        # Summed in dimension order from 0.0, exactly as score_batch does, so that the two
        # paths agree to the last bit (sum() is compensated from Python 3.12 on; numpy is not).
        dimensions_total = 0.0
        for name in self.dimensions:
            dimensions_total += by_dimension[name]
        return Breakdown(
            self._total(dimensions_total), by_dimension, behind, raw, rule.reasons(by_dimension)
        )

    def _total(self, dimension_sum: float) -> float:
        value = min(max(self.base + dimension_sum, self.scale.min), self.scale.max)
        steps = math.floor((value - self.scale.min) / self.scale.step + 0.5)
        return float(self.scale.min + steps * self.scale.step)

    # --- everyone at once -----------------------------------------------------------

    def score_batch(
        self,
        residents: int,
        resident_idx: npt.NDArray[np.int64],
        kind_idx: npt.NDArray[np.int64],
        occurred_at: npt.NDArray[np.int64],
        points: npt.NDArray[np.float64],
        expires_at: npt.NDArray[np.int64],
        now: int,
    ) -> npt.NDArray[np.float64]:
        """Scores of ``residents`` residents from record arrays (the monthly rescoring).

        ``kind_idx`` indexes :attr:`kind_order`; ``points`` are each record's effective
        points (:meth:`points_of`) and ``expires_at`` the end of its counting period
        (for a repair, that of the record it repairs), both prepared by the caller.
        Equal, bit for bit, to :meth:`score` over the same records in the same order.
        """
        return self.score_batch_breakdown(
            residents, resident_idx, kind_idx, occurred_at, points, expires_at, now
        ).scores

    def score_batch_breakdown(
        self,
        residents: int,
        resident_idx: npt.NDArray[np.int64],
        kind_idx: npt.NDArray[np.int64],
        occurred_at: npt.NDArray[np.int64],
        points: npt.NDArray[np.float64],
        expires_at: npt.NDArray[np.int64],
        now: int,
    ) -> BatchScores:
        """:meth:`score_batch` with each dimension's part (what a Score row keeps).

        Raises ``ValueError`` if the record arrays differ in length.
        """
        return self.score_values(
            self.dimension_values(
                residents, resident_idx, kind_idx, occurred_at, points, expires_at, now
            )
        )

    def dimension_values(
        self,
        residents: int,
        resident_idx: npt.NDArray[np.int64],
        kind_idx: npt.NDArray[np.int64],
        occurred_at: npt.NDArray[np.int64],
        points: npt.NDArray[np.float64],
        expires_at: npt.NDArray[np.int64],
        now: int,
    ) -> FloatArray:
        """Each dimension's value for everyone, rows in dimension order: the sum of the
        points of its records counting at ``now`` (arrays as :meth:`score_batch` takes
        them; what ``ccx model demo-outcomes`` writes). Raises ``ValueError`` if the
        record arrays differ in length."""
        n = len(resident_idx)
        if not all(len(a) == n for a in (kind_idx, occurred_at, points, expires_at)):
            raise ValueError("the record arrays must all have the same length")
        dimension_of_kind = np.array(
            [self.dim_index(self.kinds[k].dimension) for k in self.kind_order], dtype=np.int64
        )
        active = (occurred_at <= now) & (now < expires_at)
        dims = dimension_of_kind[kind_idx]
        values = np.empty((len(self.dimensions), residents), dtype=np.float64)
        for i in range(len(self.dimensions)):
            mask = active & (dims == i)
            values[i] = np.bincount(resident_idx[mask], weights=points[mask], minlength=residents)
        return values

    def score_values(self, values: FloatArray) -> BatchScores:
        """Scores from dimension values (rows in dimension order, as
        :meth:`dimension_values` gives them): each dimension's part by the model's kind,
        then the base plus the parts on the scale. ``ccx model report`` scores a table of
        outcomes with it. Raises ``ValueError`` unless there is one row per dimension."""
        if values.ndim != 2 or values.shape[0] != len(self.dimensions):
            raise ValueError(f"one row of values per dimension ({len(self.dimensions)})")
        residents = values.shape[1]
        by_dimension = np.empty((len(self.dimensions), residents), dtype=np.float64)
        dimensions_total = np.zeros(residents, dtype=np.float64)
        rule = self.kind
        for i, name in enumerate(self.dimensions):
            by_dimension[i] = rule.parts(name, values[i])
            dimensions_total += by_dimension[i]
        total = np.clip(self.base + dimensions_total, self.scale.min, self.scale.max)
        steps = np.floor((total - self.scale.min) / self.scale.step + 0.5)
        scores = np.asarray(self.scale.min + steps * self.scale.step, dtype=np.float64)
        return BatchScores(scores, by_dimension)

    @property
    def kind_order(self) -> tuple[str, ...]:
        return tuple(self.kinds)

    def dim_index(self, name: str) -> int:
        return list(self.dimensions).index(name)

    def expiry_of(self, record: RecordInput) -> int:
        """When a record stops counting (for a repair: when the repaired record does)."""
        kind = self.kinds[record.kind]
        if kind.repair:
            return (
                self.expiry_of(record.repairs) if record.repairs is not None else record.occurred_at
            )
        return record.occurred_at + self.disclosure_days[kind.severity] * DAY


def _dimension(name: str, table: Mapping[str, Any], card: Scorecard | None) -> Dimension:
    label = str(table.get("label", name))
    if card is None:
        return Dimension(
            name,
            label,
            float(table["weight"]),
            float(table["min"]),
            float(table["max"]),
            _text(table, "label_en"),
        )
    # a scorecard's dimension: its bins' points bound its part (no weight, no cap)
    extra = sorted(set(table) & {"weight", "min", "max"})
    if extra:
        raise ModelError(
            f"dimensions.{name}: a scorecard's dimensions take no {', '.join(extra)} "
            "(their bins' points say what each part can be)"
        )
    low, high = card.bounds(name)
    return Dimension(name, label, 1.0, low, high, _text(table, "label_en"))


def _numbers(table: Mapping[str, Any], key: str, where: str) -> tuple[float, ...]:
    values = table.get(key)
    if not isinstance(values, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise ModelError(f"{where}.{key} must be a list of finite numbers")
    return tuple(float(v) for v in values)


def scorecard_from_dict(table: Any, *, fitted: bool) -> Scorecard:
    """The ``[scorecard]`` table of a model file. ``fitted``: each characteristic must
    carry its bins' ``points`` (a model the node scores with); otherwise its candidate
    ``edges`` suffice (the base ``ccx model fit`` starts from), and points are 0.

    Raises :class:`ModelError` naming the key: bins whose edges don't rise, points that
    are not one more than the edges, points against the characteristic's ``monotone``."""
    if not isinstance(table, Mapping):
        raise ModelError("a scorecard model needs a [scorecard] table (docs/MODELS.md)")
    try:
        scaling = ScorecardScaling(
            float(table["pdo"]), float(table["base_score"]), float(table["base_odds"])
        )
    except KeyError as exc:
        raise ModelError(f"scorecard lacks {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"scorecard: pdo, base_score and base_odds must be numbers: {exc}"
        ) from exc
    if not (scaling.pdo > 0 and scaling.base_odds > 0 and math.isfinite(scaling.base_score)):
        raise ModelError("scorecard: pdo and base_odds must be > 0, base_score finite")
    shown = table.get("reasons", 4)
    if not isinstance(shown, int) or isinstance(shown, bool) or not 0 <= shown <= len(DIMENSIONS):
        raise ModelError(f"scorecard.reasons must be a whole number in 0..{len(DIMENSIONS)}")
    entries = table.get("dimensions")
    if not isinstance(entries, Mapping) or not entries:
        raise ModelError("scorecard needs [scorecard.dimensions.<name>] tables, at least one")
    characteristics = {
        str(name): _characteristic(str(name), entry, fitted=fitted)
        for name, entry in entries.items()
    }
    intercept = table.get("intercept")
    if intercept is not None and not isinstance(intercept, int | float):
        raise ModelError("scorecard.intercept must be a number")
    return Scorecard(
        scaling,
        characteristics,
        shown,
        None if intercept is None else float(intercept),
    )


def _characteristic(name: str, entry: Any, *, fitted: bool) -> Characteristic:
    where = f"scorecard.dimensions.{name}"
    if not isinstance(entry, Mapping):
        raise ModelError(f"{where} must be a table")
    edges = _numbers(entry, "edges", where)
    if any(b <= a for a, b in pairwise(edges)):
        raise ModelError(f"{where}.edges must rise strictly")
    if fitted or "points" in entry:
        points = _numbers(entry, "points", where)
        if len(points) != len(edges) + 1:
            raise ModelError(
                f"{where}.points: one per bin, {len(edges) + 1} for {len(edges)} edges"
            )
    else:
        points = (0.0,) * (len(edges) + 1)
    monotone = entry.get("monotone", "none")
    if monotone not in MONOTONE:
        raise ModelError(f"{where}.monotone must be one of {MONOTONE}")
    steps = [b - a for a, b in pairwise(points)]
    if (monotone == "increasing" and any(s < 0 for s in steps)) or (
        monotone == "decreasing" and any(s > 0 for s in steps)
    ):
        raise ModelError(f"{where}.points must be {monotone} from bin to bin")
    woe = _numbers(entry, "woe", where) if "woe" in entry else ()
    coefficient = entry.get("coefficient")
    if coefficient is not None and not isinstance(coefficient, int | float):
        raise ModelError(f"{where}.coefficient must be a number")
    code = entry.get("reason_code", "")
    if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{0,16}", code):
        raise ModelError(f"{where}.reason_code: at most 16 of A-Z, a-z, 0-9, '_', '.', '-'")
    return Characteristic(
        name,
        edges,
        points,
        monotone,
        code,
        _text(entry, "reason_zh"),
        _text(entry, "reason_en"),
        woe,
        None if coefficient is None else float(coefficient),
    )


def _departments(table: Any) -> dict[str, frozenset[str]]:
    if not isinstance(table, Mapping) or not table:
        raise ModelError(
            "departments must be tables, [departments.<name>] kinds = [...], at least one "
            "(without the table every department may push every kind)"
        )
    departments = {}
    for name, entry in table.items():
        kinds = entry.get("kinds") if isinstance(entry, Mapping) else None
        if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
            raise ModelError(
                f"departments.{name}.kinds must be a list of record kinds, at least one"
            )
        if set(entry) - {"kinds"}:
            raise ModelError(f"departments.{name}: only kinds may be given")
        departments[str(name)] = frozenset(kinds)
    return departments


def model_data(path: Path | None = None) -> dict[str, Any]:
    """The parsed TOML of the model file at ``path``, or of the demo model: what
    :func:`load_model` reads, and node.credentials the credential tables beside it.

    Raises :class:`ModelError` for a file that can't be read or isn't TOML."""
    if path is None:
        text = resources.files("node").joinpath("scoring_demo.toml").read_text(encoding="utf-8")
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelError(f"cannot read the scoring model {path}: {exc.strerror}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"the scoring model is not valid TOML: {exc}") from exc


def load_model(path: Path | None = None, *, fitted: bool = True) -> ScoringModel:
    """The model at ``path``, or the demo model that ships with the node. Logs a
    warning when the model at ``path`` lists no departments (any department may then
    push any kind). ``fitted=False``: as :meth:`ScoringModel.from_dict`.

    Raises :class:`ModelError` for a file that can't be read or isn't a valid model."""
    model = ScoringModel.from_dict(model_data(path), fitted=fitted)
    # Said at each start of a node whose own model (CCX_SCORING_MODEL) predates the
    # table; the demo model, for development and tests, says so in its comments.
    if model.departments is None and path is not None:
        log.warning(
            json.dumps(
                {
                    "event": "model_without_departments",
                    "model": model.version,
                    "message": "the scoring model has no [departments.<name>] kinds table: "
                    "every department may push every record kind (docs/SECURITY.md, "
                    "section 4)",
                }
            )
        )
    return model
