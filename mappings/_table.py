"""Mapping tables: a city's local scale linked to the alliance scale, published signed.

A table is built from a city's *distribution summary* (a histogram of its residents'
scores, never residents), holds one knot ``[local, alliance, se]`` per local score
point, and is applied piecewise-linearly between knots, rounding and clamping only at
the end. Tables are canonical JSON signed by the alliance key as ``mapping-table+jwt``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from protocol import (
    PrivateKey,
    PublicKey,
    mapping_table_hash,
    sign_mapping_table,
    verify_mapping_table,
)

from ._errors import MappingError
from ._linking import (
    FloatArray,
    Smoothing,
    bootstrap_standard_errors,
    check_counts,
    choose_loglinear_degree,
    link_chained_equipercentile,
    link_equipercentile,
    lord_standard_errors,
    smooth,
)
from ._scale import AllianceScale, LocalScale, round_half_up

__all__ = ["METHODS", "DistributionSummary", "MappingTable", "build_table", "compose"]

METHODS = ("equipercentile", "chained-equipercentile")
_SE_METHODS = ("lord", "bootstrap", None)


@dataclass(frozen=True)
class DistributionSummary:
    """What a city sends the alliance: a histogram per local score point, and for
    anchor-based linking the joint histogram of (local score, anchor score)."""

    city: str
    local_scale: LocalScale
    counts: FloatArray
    snapshot: str
    model_version: str
    anchor_name: str | None = None
    anchor_joint: FloatArray | None = None  # [local point][anchor point]

    def __post_init__(self) -> None:
        if not self.city or not isinstance(self.city, str):
            raise MappingError("city", "must be a non-empty string")
        counts = check_counts(self.counts, "counts")
        if counts.size != self.local_scale.size:
            raise MappingError(
                "counts",
                f"has {counts.size} frequencies but scale {self.local_scale.name} has {self.local_scale.size} score points",
            )
        object.__setattr__(self, "counts", counts)
        if self.anchor_joint is not None:
            try:
                joint = np.asarray(self.anchor_joint, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise MappingError(
                    "anchor.joint", "must be a table of numbers [local point][anchor point]"
                ) from exc
            if joint.ndim != 2 or joint.shape[0] != self.local_scale.size:
                raise MappingError(
                    "anchor.joint", f"must be [{self.local_scale.size} local points][anchor points]"
                )
            if not np.all(np.isfinite(joint)) or np.any(joint < 0):
                raise MappingError("anchor.joint", "frequencies must be finite and >= 0")
            if not np.allclose(joint.sum(axis=1), counts):
                raise MappingError("anchor.joint", "its row sums must equal counts")
            object.__setattr__(self, "anchor_joint", joint)

    @property
    def population(self) -> int:
        return round(float(self.counts.sum()))

    @classmethod
    def from_json(cls, data: Any) -> DistributionSummary:
        if not isinstance(data, Mapping):
            raise MappingError("summary", "must be a JSON object")
        unknown = set(data) - {
            "city",
            "local_scale",
            "counts",
            "snapshot",
            "model_version",
            "anchor",
        }
        if unknown:
            raise MappingError(sorted(unknown)[0], "is not a field of a distribution summary")
        try:
            anchor = data.get("anchor")
            if anchor is not None and (
                not isinstance(anchor, Mapping) or not {"name", "joint"} <= set(anchor)
            ):
                raise MappingError("anchor", "must be an object {name, joint}")
            return cls(
                city=data["city"],
                local_scale=LocalScale.from_json(data["local_scale"]),
                counts=np.asarray(check_counts(data["counts"], "counts")),
                snapshot=str(data["snapshot"]),
                model_version=str(data["model_version"]),
                anchor_name=anchor["name"] if anchor else None,
                anchor_joint=np.asarray(anchor["joint"], dtype=np.float64) if anchor else None,
            )
        except KeyError as exc:
            raise MappingError(str(exc.args[0]), "is required") from exc
        except (TypeError, ValueError) as exc:
            if isinstance(exc, MappingError):
                raise
            raise MappingError("summary", f"malformed: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "city": self.city,
            "local_scale": self.local_scale.to_json(),
            "counts": [_number(c) for c in self.counts],
            "snapshot": self.snapshot,
            "model_version": self.model_version,
        }
        if self.anchor_joint is not None:
            out["anchor"] = {
                "name": self.anchor_name,
                "joint": [[_number(c) for c in row] for row in self.anchor_joint],
            }
        return out


def _is_finite_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


@dataclass(frozen=True)
class MappingTable:
    """A signed-or-to-be-signed mapping table (DESIGN section 8)."""

    city: str
    local_scale: LocalScale
    knots: tuple[tuple[float, float, float | None], ...]
    version: int
    valid_from: int
    valid_to: int
    scale_sha256: str
    alliance_range: tuple[int, int] = (0, 1000)
    method: str = "equipercentile"
    smoothing: Any = None
    population: int = 0
    snapshot: str = ""
    model_version: str = ""
    anchor: str | None = None
    _local: FloatArray = field(init=False, repr=False, compare=False)
    _alliance: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.city, str) or not self.city:
            raise MappingError("city", "must be a non-empty string")
        if self.method not in METHODS:
            raise MappingError("method", f"must be one of {METHODS}")
        for name in ("version", "valid_from", "valid_to", "population"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise MappingError(name, "must be an integer")
        if self.version < 1:
            raise MappingError("version", "must be >= 1")
        if self.population < 0:
            raise MappingError("population", "must be >= 0")
        if not self.valid_from < self.valid_to:
            raise MappingError("valid_to", "must come after valid_from")
        low, high = self.alliance_range
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low < high):
            raise MappingError("alliance_range", "must be [min, max] integers with 0 <= min < max")
        if len(self.knots) < 2:
            raise MappingError("knots", "a table needs at least two knots")
        knots = []
        for i, knot in enumerate(self.knots):
            if not isinstance(knot, tuple | list) or len(knot) != 3:
                raise MappingError(f"knots[{i}]", "must be [local, alliance, se]")
            local_i, alliance_i, se = knot
            if not all(_is_finite_number(v) for v in (local_i, alliance_i)):
                raise MappingError(f"knots[{i}]", "local and alliance must be finite numbers")
            if se is not None and not (_is_finite_number(se) and se >= 0):
                raise MappingError(f"knots[{i}]", "se must be a number >= 0 or null")
            # Rounded to the precision they are published with, so that a table is
            # exactly what it publishes (and applies the same after a JSON round trip).
            knots.append(
                (
                    float(local_i),
                    round(float(alliance_i), 6),
                    None if se is None else round(float(se), 6),
                )
            )
        object.__setattr__(self, "knots", tuple(knots))
        local = np.array([k[0] for k in knots], dtype=np.float64)
        alliance = np.array([k[1] for k in knots], dtype=np.float64)
        rising = np.diff(local)
        if np.any(rising <= 0):
            raise MappingError(
                f"knots[{int(np.argmax(rising <= 0)) + 1}]", "local scores must rise strictly"
            )
        falling = np.diff(alliance) < 0
        if np.any(falling):
            raise MappingError(
                f"knots[{int(np.argmax(falling)) + 1}]",
                "alliance equivalents must never fall (the link is monotone)",
            )
        scale = self.local_scale
        ends = (scale.values[0], scale.values[-1])
        if not (math.isclose(local[0], ends[0]) and math.isclose(local[-1], ends[-1])):
            raise MappingError(
                "knots", f"must run from the scale's first point {ends[0]} to its last {ends[1]}"
            )
        object.__setattr__(self, "_local", local)
        object.__setattr__(self, "_alliance", alliance)

    # --- applying ------------------------------------------------------------------

    def _knot_units(self, scores: Any) -> Any:
        # Knots hold numeric scores as they are and grades as their index; index_of and
        # indices_of also refuse scores outside the scale.
        scale = self.local_scale
        if np.ndim(scores) == 0:
            score = scores.item() if isinstance(scores, np.generic) else scores
            index = scale.index_of(score)
            return index if scale.labels is not None else float(score)
        return (
            scale.indices_of(scores) if scale.labels is not None else scale.checked_values(scores)
        )

    def equivalent(self, scores: Any) -> Any:
        """Unrounded alliance equivalents of local scores (a number, a grade, or an array)."""
        result = np.interp(self._knot_units(scores), self._local, self._alliance)
        return float(result) if np.ndim(result) == 0 else result

    def apply(self, scores: Any) -> Any:
        """Alliance scores of local scores: interpolated, then rounded half up and clamped.

        An integer array on a unit-step integer scale (the common case: a month of a
        city's scores) takes a table look-up per score point instead of interpolating
        each score; the result is the same.
        """
        array = np.asarray(scores) if np.ndim(scores) else None
        scale = self.local_scale
        if (
            array is not None
            and array.size
            and array.dtype.kind in "iu"
            and self._rounded_by_value is not None
        ):
            if array.min() < scale.min or array.max() > scale.max:
                raise MappingError(
                    "scores", f"every score must lie within {scale.name} ({scale.min}..{scale.max})"
                )
            return self._rounded_by_value[array]
        return self._round(self.equivalent(scores))

    def _round(self, unrounded: Any) -> Any:
        low, high = self.alliance_range
        rounded = round_half_up(unrounded)
        if isinstance(unrounded, float):
            return int(min(max(rounded, low), high))
        return np.clip(rounded, low, high).astype(np.int64)

    @functools.cached_property
    def _rounded_by_value(self) -> npt.NDArray[np.int64] | None:
        # Indexed by the score itself (entries below min unused), so that applying needs
        # no subtraction: on 5 M scores that allocation alone costs more than the look-up.
        scale = self.local_scale
        if scale.labels is not None or scale.step != 1 or not float(scale.min).is_integer():
            return None
        if not scale.min >= 0 or scale.max > 10_000_000:
            return None
        by_value = np.zeros(int(scale.max) + 1, dtype=np.int64)
        by_value[int(scale.min) :] = self._round(
            np.interp(scale.values, self._local, self._alliance)
        )
        return by_value

    def to_local(self, alliance_scores: Any) -> Any:
        """Local equivalents of alliance scores (inverse of :meth:`equivalent`), rounded to
        a score point of the local scale (or its grade) and clamped to the scale: a score
        for one score, an array (a list of grades) for many."""
        # Where several local points share one alliance value the inverse is their middle.
        xp, index = np.unique(self._alliance, return_inverse=True)
        fp = np.bincount(index, weights=self._local) / np.bincount(index)
        try:
            targets = np.asarray(alliance_scores, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise MappingError("alliance_scores", "must be numbers") from exc
        if not np.all(np.isfinite(targets)):
            raise MappingError("alliance_scores", "must be finite numbers")
        values = np.interp(targets, xp, fp)
        scale = self.local_scale
        positions = values if scale.labels is not None else (values - scale.min) / scale.step
        if np.ndim(positions) == 0:
            return scale.score_at(float(positions))
        return scale.scores_at(positions)

    # --- the wire ------------------------------------------------------------------

    def to_claims(self) -> dict[str, Any]:
        """The table as JSON claims (what is signed and hashed)."""
        claims: dict[str, Any] = {
            "city": self.city,
            "local_scale": self.local_scale.to_json(),
            "method": self.method,
            "smoothing": self.smoothing,
            "population": self.population,
            "snapshot": self.snapshot,
            "model_version": self.model_version,
            "knots": [
                [_number(a), round(b, 6), None if c is None else round(c, 6)]
                for a, b, c in self.knots
            ],
            "version": self.version,
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
            "scale_sha256": self.scale_sha256,
            "alliance_range": list(self.alliance_range),
        }
        if self.anchor is not None:
            claims["anchor"] = self.anchor
        return claims

    @property
    def sha256(self) -> str:
        """The content hash: hex SHA-256 of the canonical claims."""
        return mapping_table_hash(self.to_claims())

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> MappingTable:
        """Build from claims; raises MappingError naming the bad field."""
        known = {
            "city", "local_scale", "method", "smoothing", "population", "snapshot", "model_version",
            "knots", "version", "valid_from", "valid_to", "scale_sha256", "alliance_range", "anchor",
        }  # fmt: skip
        unknown = set(claims) - known - {"iss", "iat"}
        if unknown:
            raise MappingError(sorted(unknown)[0], "is not a field of a mapping table")
        missing = [name for name in ("city", "local_scale", "knots", "version", "valid_from", "valid_to",
                                      "scale_sha256", "alliance_range") if name not in claims]  # fmt: skip
        if missing:
            raise MappingError(missing[0], "is required")
        knots = claims["knots"]
        if not isinstance(knots, list) or not all(isinstance(k, list) for k in knots):
            raise MappingError("knots", "must be a list of [local, alliance, se]")
        alliance_range = claims["alliance_range"]
        if not (isinstance(alliance_range, list) and len(alliance_range) == 2):
            raise MappingError("alliance_range", "must be [min, max]")
        for name in ("scale_sha256", "snapshot", "model_version"):
            if name in claims and not isinstance(claims[name], str):
                raise MappingError(name, "must be a string")
        return cls(
            city=claims["city"],
            local_scale=LocalScale.from_json(claims["local_scale"]),
            knots=tuple(tuple(k) for k in knots),
            version=claims["version"],
            valid_from=claims["valid_from"],
            valid_to=claims["valid_to"],
            scale_sha256=claims["scale_sha256"],
            alliance_range=(alliance_range[0], alliance_range[1]),
            method=claims.get("method", "equipercentile"),
            smoothing=claims.get("smoothing"),
            population=claims.get("population", 0),
            snapshot=claims.get("snapshot", ""),
            model_version=claims.get("model_version", ""),
            anchor=claims.get("anchor"),
        )

    def sign(self, *, alliance: str, key: PrivateKey, now: int) -> str:
        """The signed ``mapping-table+jwt``."""
        return sign_mapping_table(self.to_claims(), alliance=alliance, key=key, now=now)

    @classmethod
    def from_token(
        cls, token: str, *, key: PublicKey, alliance: str, scale: AllianceScale
    ) -> MappingTable:
        """Verify a signed table for ``alliance`` and ``scale``; raises ProtocolError for the
        signature and MappingError (field ``iss`` or ``scale_sha256``) for a table of
        another alliance or scale."""
        claims = verify_mapping_table(token, key=key)
        if claims["iss"] != alliance:
            raise MappingError(
                "iss", f"the table was signed for alliance {claims['iss']!r}, not {alliance!r}"
            )
        if claims.get("scale_sha256") != scale.sha256:
            raise MappingError("scale_sha256", "the table was built for another alliance scale")
        return cls.from_claims(claims)


def build_table(
    summary: DistributionSummary,
    scale: AllianceScale,
    *,
    version: int,
    valid_from: int,
    valid_to: int,
    smoothing: Smoothing = None,
    method: str = "equipercentile",
    reference_anchor_joint: npt.ArrayLike | None = None,
    standard_errors: str | None = "lord",
    rng: np.random.Generator | None = None,
    replications: int = 200,
) -> MappingTable:
    """Link a city's distribution summary to the alliance scale.

    ``method="equipercentile"`` links the city's histogram to the scale's reference
    distribution. ``method="chained-equipercentile"`` links through the anchor: the
    summary's joint (local, anchor) histogram in the city's population and
    ``reference_anchor_joint`` [alliance point][anchor point] in the alliance's.
    ``standard_errors``: ``"lord"`` (analytic, unsmoothed equipercentile only),
    ``"bootstrap"`` (needs ``rng``) or ``None``.
    """
    if standard_errors not in _SE_METHODS:
        raise MappingError("standard_errors", f"must be one of {_SE_METHODS}")
    reference = scale.reference_counts()
    if isinstance(smoothing, tuple) and smoothing[1] == "aic":
        # Resolve AIC on the city's histogram once, so the table records the degree used
        # and the bootstrap replications don't each choose their own.
        smoothing = ("loglinear", choose_loglinear_degree(summary.counts))
    if method == "equipercentile":
        # The reference is an exact population distribution: only the city's histogram,
        # a sample, is smoothed (and resampled, for bootstrap standard errors).
        equivalents = link_equipercentile(smooth(summary.counts, smoothing), reference)
    elif method == "chained-equipercentile":
        if summary.anchor_joint is None or reference_anchor_joint is None:
            raise MappingError(
                "anchor",
                "chained linking needs the city's and the alliance's (score, anchor) histograms",
            )
        ref_joint = np.asarray(reference_anchor_joint, dtype=np.float64)
        if ref_joint.ndim != 2 or ref_joint.shape[0] != scale.size:
            raise MappingError(
                "reference_anchor_joint", f"must be [{scale.size} alliance points][anchor points]"
            )
        equivalents = link_chained_equipercentile(
            summary.anchor_joint, ref_joint, smoothing=smoothing
        )
    else:
        raise MappingError("method", f"must be one of {METHODS}")
    equivalents = equivalents + scale.min  # indices on the alliance scale -> alliance scores
    se: Sequence[float | None]
    if standard_errors == "lord":
        if method != "equipercentile" or smoothing is not None:
            raise MappingError(
                "standard_errors",
                "Lord's analytic form is for unsmoothed equipercentile only; use 'bootstrap'",
            )
        se = list(lord_standard_errors(summary.counts, reference, y_is_population=True))
    elif standard_errors == "bootstrap":
        if rng is None:
            raise MappingError("rng", "bootstrap standard errors need a random generator")
        if method == "equipercentile":
            se = list(
                bootstrap_standard_errors(
                    summary.counts, reference, rng=rng, replications=replications,
                    smoothing=smoothing, y_is_population=True,
                )
            )  # fmt: skip
        else:
            se = list(_bootstrap_chained(summary, ref_joint, rng, replications, smoothing))
    else:
        se = [None] * summary.local_scale.size
    values = (
        summary.local_scale.values
        if summary.local_scale.labels is None
        else np.arange(summary.local_scale.size)
    )
    # Knots are rounded once, here, to the precision they are published with, so that a
    # table survives its JSON round trip unchanged (and its hash with it).
    knots = tuple(
        (
            float(v),
            round(float(e), 6),
            None if s is None or not math.isfinite(s) else round(float(s), 6),
        )
        for v, e, s in zip(values, equivalents, se, strict=True)
    )
    return MappingTable(
        city=summary.city,
        local_scale=summary.local_scale,
        knots=knots,
        version=version,
        valid_from=valid_from,
        valid_to=valid_to,
        scale_sha256=scale.sha256,
        alliance_range=(scale.min, scale.max),
        method=method,
        smoothing=list(smoothing) if isinstance(smoothing, tuple) else smoothing,
        population=summary.population,
        snapshot=summary.snapshot,
        model_version=summary.model_version,
        anchor=summary.anchor_name if method == "chained-equipercentile" else None,
    )


def _correlation(joint: FloatArray) -> float:
    """Pearson correlation of score and anchor point indices in a joint histogram."""
    total = joint.sum()
    score = np.arange(joint.shape[0], dtype=np.float64)[:, None]
    anchor = np.arange(joint.shape[1], dtype=np.float64)[None, :]
    mean_s, mean_a = (joint * score).sum() / total, (joint * anchor).sum() / total
    cov = (joint * (score - mean_s) * (anchor - mean_a)).sum() / total
    var_s = (joint * (score - mean_s) ** 2).sum() / total
    var_a = (joint * (anchor - mean_a) ** 2).sum() / total
    return float(cov / math.sqrt(var_s * var_a)) if var_s > 0 and var_a > 0 else 0.0


def _bootstrap_chained(
    summary: DistributionSummary,
    reference_joint: FloatArray,
    rng: np.random.Generator,
    replications: int,
    smoothing: Smoothing,
) -> FloatArray:
    assert summary.anchor_joint is not None
    joint = summary.anchor_joint
    n = round(float(joint.sum()))
    probabilities = (joint / joint.sum()).ravel()
    draws = np.empty((replications, joint.shape[0]))
    for r in range(replications):
        sample = rng.multinomial(n, probabilities).reshape(joint.shape).astype(np.float64)
        draws[r] = link_chained_equipercentile(sample, reference_joint, smoothing=smoothing)
    return np.asarray(draws.std(axis=0, ddof=1), dtype=np.float64)


def compose(first: MappingTable, second: MappingTable, scores: Any) -> Any:
    """Scores of the first table's city carried to the alliance scale and on to the
    equivalent scores of the second's city (rounded to its score points or grades)."""
    if first.scale_sha256 != second.scale_sha256:
        raise MappingError("scale_sha256", "the two tables link to different alliance scales")
    return second.to_local(first.equivalent(scores))
