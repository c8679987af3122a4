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
"""

from __future__ import annotations

import json
import logging
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mappings import LocalScale

__all__ = [
    "BatchScores",
    "Breakdown",
    "Dimension",
    "ModelError",
    "RecordInput",
    "RecordKind",
    "ScoringModel",
    "load_model",
]

log = logging.getLogger("ccx.node")

DAY = 86400
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"  # a record kind's name (fits Record.kind)
# a department's name, as client credentials name it (fits Record.department)
DEPARTMENT_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
DIMENSIONS = ("basic", "positive", "dishonesty", "repair", "usage")
SEVERITIES = ("minor", "general", "serious")


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


@dataclass(frozen=True)
class RecordInput:
    """What scoring needs of a record (the node's rows carry more)."""

    key: str  # department/record_id, for the breakdown
    kind: str
    occurred_at: int
    points: float | None = None
    repairs: RecordInput | None = None


@dataclass(frozen=True)
class Breakdown:
    score: float
    by_dimension: dict[str, float]
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchScores:
    """Scores of everyone, and each dimension's capped points (rows in dimension order)."""

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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoringModel:
        try:
            model = data["model"]
            scale = LocalScale.from_json(model["scale"])
            dimensions = {
                name: Dimension(
                    name,
                    str(d.get("label", name)),
                    float(d["weight"]),
                    float(d["min"]),
                    float(d["max"]),
                    _text(d, "label_en"),
                )
                for name, d in data["dimensions"].items()
            }
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
        if not math.isfinite(self.base) or not self.scale.min <= self.base <= self.scale.max:
            raise ModelError("the base must lie on the scale")
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
        """The score with its breakdown by dimension and the records behind each part."""
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
        by_dimension = {name: self._capped(name, total) for name, total in raw.items()}
        # Summed in dimension order from 0.0, exactly as score_batch does, so that the two
        # paths agree to the last bit (sum() is compensated from Python 3.12 on; numpy is not).
        dimensions_total = 0.0
        for name in self.dimensions:
            dimensions_total += by_dimension[name]
        return Breakdown(self._total(dimensions_total), by_dimension, behind)

    def _capped(self, name: str, total: float) -> float:
        d = self.dimensions[name]
        return float(min(max(d.weight * total, d.min), d.max))

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
        """:meth:`score_batch` with each dimension's capped points (what a Score row keeps).

        Raises ``ValueError`` if the record arrays differ in length.
        """
        n = len(resident_idx)
        if not all(len(a) == n for a in (kind_idx, occurred_at, points, expires_at)):
            raise ValueError("the record arrays must all have the same length")
        dimension_of_kind = np.array(
            [self.dim_index(self.kinds[k].dimension) for k in self.kind_order], dtype=np.int64
        )
        active = (occurred_at <= now) & (now < expires_at)
        dims = dimension_of_kind[kind_idx]
        by_dimension = np.empty((len(self.dimensions), residents), dtype=np.float64)
        dimensions_total = np.zeros(residents, dtype=np.float64)
        for i, name in enumerate(self.dimensions):
            mask = active & (dims == i)
            sums = np.bincount(resident_idx[mask], weights=points[mask], minlength=residents)
            d = self.dimensions[name]
            by_dimension[i] = np.clip(d.weight * sums, d.min, d.max)
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


def load_model(path: Path | None = None) -> ScoringModel:
    """The model at ``path``, or the demo model that ships with the node. Logs a
    warning when the model at ``path`` lists no departments (any department may then
    push any kind).

    Raises :class:`ModelError` for a file that can't be read or isn't a valid model."""
    if path is None:
        text = resources.files("node").joinpath("scoring_demo.toml").read_text(encoding="utf-8")
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelError(f"cannot read the scoring model {path}: {exc.strerror}") from exc
    try:
        model = ScoringModel.from_dict(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"the scoring model is not valid TOML: {exc}") from exc
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
