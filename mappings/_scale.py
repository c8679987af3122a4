"""Scales: a city's local scale of any shape, and the alliance scale (DESIGN section 4).

Every scale is a finite, ordered list of *score points*. Linking works on point
indices 0..n-1 (Kolen & Brennan's integer scores); a scale turns indices back into its
own values: ``min + index * step`` for numeric scales, a label for ordinal grades.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from protocol import canonical_json

from ._errors import MappingError

__all__ = ["AllianceScale", "Band", "LocalScale", "normal_reference"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LocalScale:
    """A city's score scale: numeric ``min..max`` by ``step``, or ordered ``labels``.

    ``LocalScale("egret", 0, 1000)``; ``LocalScale("jasmine", 0, 1000)`` (a base of 500
    is a property of the model, not the scale); ``LocalScale("pct", 0, 100)``;
    ``LocalScale("stepped", 300, 900, step=10)``;
    ``LocalScale.grades("grade", ["D", "C", "B", "A", "AA", "AAA"])`` (lowest first).
    """

    name: str
    min: float
    max: float
    step: float = 1
    labels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise MappingError("local_scale.name", "must be a non-empty string")
        for name in ("min", "max", "step"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise MappingError(f"local_scale.{name}", "must be a finite number")
        if self.step <= 0:
            raise MappingError("local_scale.step", "must be > 0")
        if self.max <= self.min:
            raise MappingError("local_scale.max", f"must be above min ({self.min})")
        points = (self.max - self.min) / self.step
        if abs(points - round(points)) > 1e-9:
            raise MappingError("local_scale.step", "max - min must be a whole number of steps")
        if round(points) + 1 > 100_000:
            raise MappingError("local_scale", "more than 100,000 score points")
        if self.labels is not None:
            if len(self.labels) != round(points) + 1:
                raise MappingError(
                    "local_scale.labels", f"needs {round(points) + 1} labels, one per score point"
                )
            if not all(isinstance(x, str) and x for x in self.labels) or len(
                set(self.labels)
            ) != len(self.labels):
                raise MappingError(
                    "local_scale.labels", "must be distinct non-empty strings, lowest first"
                )

    @classmethod
    def grades(cls, name: str, labels: Sequence[str]) -> LocalScale:
        """An ordinal scale of grades, given lowest first."""
        if not isinstance(labels, Sequence) or len(labels) < 2:
            raise MappingError("local_scale.labels", "an ordinal scale needs at least two grades")
        if not all(isinstance(label, str) and label for label in labels):
            raise MappingError(
                "local_scale.labels", "grades must be non-empty strings, lowest first"
            )
        return cls(name, 0, len(labels) - 1, 1, tuple(labels))

    @property
    def size(self) -> int:
        """The number of score points."""
        return round((self.max - self.min) / self.step) + 1

    @property
    def values(self) -> FloatArray:
        """The numeric value of each score point (the index for ordinal scales)."""
        return self.min + self.step * np.arange(self.size, dtype=np.float64)

    def index_of(self, score: Any) -> float:
        """The (possibly fractional) point index of a score or a grade label."""
        if self.labels is not None:
            if score not in self.labels:
                raise MappingError(
                    "score", f"{score!r} is not a grade of {self.name} ({', '.join(self.labels)})"
                )
            return float(self.labels.index(score))
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
        ):
            raise MappingError("score", f"{score!r} is not a number")
        if not self.min <= score <= self.max:
            raise MappingError("score", f"{score} is outside {self.name} ({self.min}..{self.max})")
        return (score - self.min) / self.step

    def indices_of(self, scores: npt.ArrayLike) -> FloatArray:
        """Vectorised :meth:`index_of`: numbers, or grade labels for ordinal scales."""
        if self.labels is not None:
            lookup = {label: i for i, label in enumerate(self.labels)}
            try:
                return np.array([lookup[s] for s in np.asarray(scores).ravel()], dtype=np.float64)
            except KeyError as exc:
                raise MappingError(
                    "scores", f"{exc.args[0]!r} is not a grade of {self.name}"
                ) from exc
        return (self.checked_values(scores) - self.min) / self.step

    def checked_values(self, scores: npt.ArrayLike) -> FloatArray:
        """Numeric scores as a float array, refused unless all lie within the scale."""
        try:
            array = np.asarray(scores, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise MappingError("scores", "must be numbers") from exc
        # min() and max() propagate NaN, so one comparison each also refuses NaN.
        if array.size and not (array.min() >= self.min and array.max() <= self.max):
            raise MappingError(
                "scores", f"every score must lie within {self.name} ({self.min}..{self.max})"
            )
        return array

    def score_at(self, index: float) -> float | str:
        """The score at a point index, rounded to the nearest point and clamped to the scale."""
        i: int = min(max(int(round_half_up(index)), 0), self.size - 1)  # half up, as apply rounds
        if self.labels is not None:
            return self.labels[i]
        value = self.min + i * self.step
        return int(value) if float(value).is_integer() else value

    def scores_at(self, indices: npt.ArrayLike) -> Any:
        """Vectorised :meth:`score_at`: an array of scores, or a list of grades."""
        points = np.clip(
            round_half_up(np.asarray(indices, dtype=np.float64)), 0, self.size - 1
        ).astype(np.int64)
        if self.labels is not None:
            return [self.labels[i] for i in points.ravel()]
        values = self.min + points * self.step
        integral = float(self.min).is_integer() and float(self.step).is_integer()
        return values.astype(np.int64) if integral else values

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "min": self.min,
            "max": self.max,
            "step": self.step,
        }
        if self.labels is not None:
            out["labels"] = list(self.labels)
        return out

    @classmethod
    def from_json(cls, data: Any) -> LocalScale:
        if not isinstance(data, Mapping):
            raise MappingError("local_scale", "must be an object {name, min, max, step, labels?}")
        unknown = set(data) - {"name", "min", "max", "step", "labels"}
        if unknown:
            raise MappingError(
                f"local_scale.{sorted(unknown)[0]}", "is not a field of a local scale"
            )
        if "labels" in data and data["labels"] is not None:
            labels = data["labels"]
            if not isinstance(labels, list):
                raise MappingError("local_scale.labels", "must be a list of grades, lowest first")
            return cls.grades(str(data.get("name", "")), labels)
        try:
            return cls(data["name"], data["min"], data["max"], data.get("step", 1))
        except KeyError as exc:
            raise MappingError(f"local_scale.{exc.args[0]}", "is required") from exc


def round_half_up(value: Any) -> Any:
    """Round half up (2.5 -> 3, -2.5 -> -2), exactly: ``floor(x + 0.5)`` would round
    0.49999999999999994 up, because the addition itself rounds to 1.0."""
    if isinstance(value, float | int):
        floor = math.floor(value)
        return floor + (1 if value - floor >= 0.5 else 0)
    floor_array = np.floor(value)
    return floor_array + (value - floor_array >= 0.5)


def normal_reference(mean: float, sd: float, size: int) -> FloatArray:
    """A normal distribution discretised on the integers 0..size-1 and renormalised.

    Point k gets the probability of (k - 0.5, k + 0.5]; the tails beyond the ends are
    dropped and the rest rescaled, so no end point gets a spike.
    """
    if sd <= 0:
        raise MappingError("scale.reference.sd", "must be > 0")
    edges = (np.arange(size + 1, dtype=np.float64) - 0.5 - mean) / (sd * math.sqrt(2))
    cdf = 0.5 * (1 + np.array([math.erf(e) for e in edges]))
    probabilities = np.diff(cdf)
    total = probabilities.sum()
    if total <= 0:
        raise MappingError("scale.reference", "the normal distribution has no mass on the scale")
    return np.asarray(probabilities / total, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Band:
    name: str
    lower: int  # the band holds scores >= lower, up to the next band's lower


@dataclass(frozen=True)
class AllianceScale:
    """The shared scale: integers ``min..max``, a reference distribution, bands, thresholds.

    All of it is data carried in the registry's ``scale`` claim, not code.
    """

    reference_kind: str = "normal"
    mean: float = 600.0
    sd: float = 100.0
    min: int = 0
    max: int = 1000
    bands: tuple[Band, ...] = (
        Band("poor", 0),
        Band("fair", 550),
        Band("good", 600),
        Band("very_good", 700),
        Band("excellent", 750),
    )
    thresholds: tuple[int, ...] = (550, 600, 650, 700, 750)
    reference: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.reference_kind != "normal":
            raise MappingError("scale.reference.kind", "only 'normal' is defined")
        if not 0 <= self.min < self.max:
            raise MappingError("scale.max", "must be above min, and min >= 0")
        lowers = [b.lower for b in self.bands]
        if not self.bands or lowers[0] != self.min or lowers != sorted(set(lowers)):
            raise MappingError("scale.bands", "must start at min and rise strictly")
        if list(self.thresholds) != sorted(set(self.thresholds)) or not all(
            self.min < t <= self.max for t in self.thresholds
        ):
            raise MappingError("scale.thresholds", "must be distinct, rising, and within the scale")
        # The reference lives on point indices 0..size-1: centre it on the mean's index.
        object.__setattr__(
            self, "reference", normal_reference(self.mean - self.min, self.sd, self.size)
        )

    @property
    def size(self) -> int:
        return self.max - self.min + 1

    def band_of(self, score: int) -> str:
        """The band a score on this scale falls in."""
        name = self.bands[0].name
        for band in self.bands:
            if score >= band.lower:
                name = band.name
        return name

    def reference_counts(self, total: float = 1e9) -> FloatArray:
        """The reference distribution as (fractional) frequencies summing to ``total``."""
        return self.reference * total

    def to_json(self) -> dict[str, Any]:
        """The registry's ``scale`` claim."""
        return {
            "min": self.min,
            "max": self.max,
            "reference": {"kind": self.reference_kind, "mean": self.mean, "sd": self.sd},
            "bands": [{"name": b.name, "min": b.lower} for b in self.bands],
            "thresholds": list(self.thresholds),
        }

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the canonical ``scale`` claim: what a mapping table is built for."""
        return hashlib.sha256(canonical_json(self.to_json())).hexdigest()

    @classmethod
    def from_json(cls, data: Any) -> AllianceScale:
        """Read the registry's ``scale`` claim; raises MappingError naming the bad field."""
        if not isinstance(data, Mapping):
            raise MappingError("scale", "must be an object")
        try:
            reference = data["reference"]
            bands = tuple(Band(str(b["name"]), int(b["min"])) for b in data["bands"])
            return cls(
                reference_kind=reference["kind"],
                mean=float(reference["mean"]),
                sd=float(reference["sd"]),
                min=int(data["min"]),
                max=int(data["max"]),
                bands=bands,
                thresholds=tuple(int(t) for t in data["thresholds"]),
            )
        except KeyError as exc:
            raise MappingError(f"scale.{exc.args[0]}", "is required") from exc
        except (TypeError, ValueError) as exc:
            if isinstance(exc, MappingError):
                raise
            raise MappingError("scale", f"malformed: {exc}") from exc
