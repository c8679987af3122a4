"""Synthetic residents and the records their city's departments push, city by city.

Pure: no network, and no file but the city's scoring model (read with
:func:`node.scoring.load_model`). Each city is a :class:`CityProfile`, plain data: how
many records of each kind a resident collects over :data:`HISTORY_DAYS` (Poisson
means), a troubled minority whose negative records come several times as often, the
share of negative records later repaired, and the department each kind comes from. The
cities differ on purpose (Xiamen volunteers, Fuzhou pays its bills late, Hangzhou lives
on pay-later, Quanzhou has a larger troubled minority, Zhangzhou records little), so
their score distributions, and the mapping tables built from them, differ too.

:func:`generate` draws a whole city with numpy at once (200,000 residents take well
under a second); :meth:`Population.batches` builds the rows a department pushes only
when asked; :meth:`Population.expected_scores` says what the node must compute.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from node.scoring import DAY, ScoringModel, load_model

__all__ = [
    "CITIES",
    "DEPARTMENTS",
    "HISTORY_DAYS",
    "CityProfile",
    "Population",
    "generate",
    "profile",
]

HISTORY_DAYS = 3 * 365  # records reach back three years before ``now``
REPAIR_WITHIN_DAYS = 365  # a repair follows the record it repairs within a year
REPAIR_KIND = "repair_completed"
# At most one record each per resident: the profile's rate is a probability.
ONCE_KINDS = frozenset({"identity_verified", "stable_residence"})
# Kinds whose records carry their own points (points_overridable): an inclusive range.
OWN_POINTS = MappingProxyType({"volunteering": (4, 20)})  # volunteering hours
# The department each kind comes from, in the order the simulation pushes them. A repair
# comes from the department of the record it repairs: the node looks the repaired
# record up among the pushing department's own records first (repair_candidates).
DEPARTMENTS: Mapping[str, str] = MappingProxyType(
    {
        "identity_verified": "public-security",
        "stable_residence": "housing",
        "volunteering": "civil-affairs",
        "honour": "civil-affairs",
        "blood_donation": "health",
        "late_utility_payment": "utilities",
        "tax_arrears": "tax",
        "unfulfilled_judgment": "courts",
        "pay_later_on_time": "transport",
        "pay_later_default": "transport",
    }
)
CITY_MODELS = Path(__file__).parent / "cities"

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CityProfile:
    """How one city's residents and records are drawn.

    ``rates`` maps each record kind to the records a resident collects over
    :data:`HISTORY_DAYS` (a Poisson mean; a probability for :data:`ONCE_KINDS`). A
    ``troubled_share`` of residents get the negative kinds (negative points in the
    city's model) ``troubled_factor`` times as often; each negative record has been
    repaired with probability ``repair_share``. Raises ``ValueError`` if a number is
    out of range or a kind has no department.
    """

    city: str
    name: str  # the local score's name, as in the city's scale
    model: Path  # the city's scoring model (TOML)
    prefix: str  # two letters: resident and record ids start with it
    rates: Mapping[str, float]
    troubled_share: float
    troubled_factor: float
    repair_share: float
    departments: Mapping[str, str] = field(default_factory=lambda: DEPARTMENTS)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z]{2}", self.prefix):
            raise ValueError(
                f"{self.city}: the prefix must be two letters a-z, not {self.prefix!r}"
            )
        for kind, rate in self.rates.items():
            if kind not in self.departments:
                raise ValueError(f"{self.city}: kind {kind!r} has no department")
            if not 0 <= rate <= (1 if kind in ONCE_KINDS else 1_000):
                raise ValueError(f"{self.city}: rate of {kind!r} out of range: {rate}")
        for what in ("troubled_share", "repair_share"):
            if not 0 <= getattr(self, what) <= 1:
                raise ValueError(f"{self.city}: {what} must lie in 0..1")
        if self.troubled_factor < 0:
            raise ValueError(f"{self.city}: troubled_factor must be >= 0")


def _city(city: str, name: str, prefix: str, **numbers: Any) -> CityProfile:
    return CityProfile(city, name, CITY_MODELS / f"{city}.toml", prefix, **numbers)


CITIES: dict[str, CityProfile] = {
    p.city: p
    for p in (
        _city(
            "xiamen",
            "白鹭分",
            "xm",
            rates={
                "identity_verified": 0.95,
                "stable_residence": 0.75,
                "volunteering": 3.0,
                "honour": 0.3,
                "blood_donation": 0.35,
                "late_utility_payment": 0.4,
                "tax_arrears": 0.05,
                "unfulfilled_judgment": 0.01,
                "pay_later_on_time": 1.5,
                "pay_later_default": 0.05,
            },
            troubled_share=0.06,
            troubled_factor=8.0,
            repair_share=0.5,
        ),
        _city(
            "fuzhou",
            "茉莉分",
            "fz",
            rates={
                "identity_verified": 0.9,
                "stable_residence": 0.65,
                "volunteering": 0.8,
                "honour": 0.08,
                "blood_donation": 0.15,
                "late_utility_payment": 1.6,
                "tax_arrears": 0.3,
                "unfulfilled_judgment": 0.02,
                "pay_later_on_time": 1.5,
                "pay_later_default": 0.1,
            },
            troubled_share=0.1,
            troubled_factor=4.0,
            repair_share=0.35,
        ),
        _city(
            "hangzhou",
            "钱江分",
            "hz",
            rates={
                "identity_verified": 0.95,
                "stable_residence": 0.6,
                "volunteering": 0.6,
                "honour": 0.05,
                "blood_donation": 0.1,
                "late_utility_payment": 0.5,
                "tax_arrears": 0.05,
                "unfulfilled_judgment": 0.01,
                "pay_later_on_time": 4.0,
                "pay_later_default": 0.3,
            },
            troubled_share=0.08,
            troubled_factor=6.0,
            repair_share=0.4,
        ),
        _city(
            "quanzhou",
            "刺桐分",
            "qz",
            rates={
                "identity_verified": 0.9,
                "stable_residence": 0.7,
                "volunteering": 0.8,
                "honour": 0.1,
                "blood_donation": 0.2,
                "late_utility_payment": 0.6,
                "tax_arrears": 0.15,
                "unfulfilled_judgment": 0.05,
                "pay_later_on_time": 1.2,
                "pay_later_default": 0.1,
            },
            troubled_share=0.2,
            troubled_factor=6.0,
            repair_share=0.6,
        ),
        _city(
            "zhangzhou",
            "水仙等级",
            "zz",
            rates={
                "identity_verified": 0.8,
                "stable_residence": 0.5,
                "volunteering": 0.4,
                "honour": 0.05,
                "blood_donation": 0.1,
                "late_utility_payment": 0.3,
                "tax_arrears": 0.05,
                "unfulfilled_judgment": 0.01,
                "pay_later_on_time": 0.5,
                "pay_later_default": 0.05,
            },
            troubled_share=0.08,
            troubled_factor=6.0,
            repair_share=0.3,
        ),
    )
}


def profile(city: str) -> CityProfile:
    """The profile of a demo city; raises ``ValueError`` naming the known cities."""
    try:
        return CITIES[city]
    except KeyError:
        raise ValueError(
            f"unknown city {city!r}; the simulated cities are {', '.join(CITIES)}"
        ) from None


@dataclass(frozen=True, eq=False)
class Population:
    """A city's residents and their records, as arrays in push order: by department
    (in the order their kinds first come in the profile), then by ``occurred_at``.
    Record ``i`` has the id ``f"{prefix}-{i + 1:08d}"``, unique across departments."""

    city: str
    prefix: str
    now: int
    resident_ids: list[str]
    kinds: tuple[str, ...]  # kind names, indexed by kind_idx
    departments: tuple[str, ...]  # department names, indexed by department_idx
    resident_idx: IntArray = field(repr=False)
    kind_idx: IntArray = field(repr=False)
    department_idx: IntArray = field(repr=False)
    occurred_at: IntArray = field(repr=False)
    points: FloatArray = field(repr=False)  # NaN: the kind's own points
    repairs: IntArray = field(repr=False)  # the repaired record's index, -1 for none

    @property
    def records(self) -> int:
        return len(self.kind_idx)

    def record_id(self, index: int) -> str:
        return f"{self.prefix}-{index + 1:08d}"

    def batches(self, size: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """``(department, rows)`` pushes of at most ``size`` rows, each from one
        department, rows shaped like ``node.services.records.RecordIn`` (only the fields
        set). A repair comes after the record it repairs, in the same batch or a later
        one. Raises ``ValueError`` if ``size`` < 1."""
        if size < 1:
            raise ValueError("a batch holds at least one record")
        bounds = np.searchsorted(self.department_idx, np.arange(len(self.departments) + 1))
        for d, department in enumerate(self.departments):
            for start in range(int(bounds[d]), int(bounds[d + 1]), size):
                yield department, self._rows(start, min(start + size, int(bounds[d + 1])))

    def _rows(self, start: int, stop: int) -> list[dict[str, Any]]:
        span = slice(start, stop)
        rows: list[dict[str, Any]] = []
        for i, resident, kind, occurred_at, points, repairs in zip(
            range(start, stop),
            self.resident_idx[span].tolist(),
            self.kind_idx[span].tolist(),
            self.occurred_at[span].tolist(),
            self.points[span].tolist(),
            self.repairs[span].tolist(),
            strict=True,
        ):
            row: dict[str, Any] = {
                "record_id": self.record_id(i),
                "resident_id": self.resident_ids[resident],
                "kind": self.kinds[kind],
                "occurred_at": occurred_at,
            }
            if not math.isnan(points):
                row["points"] = points
            if repairs >= 0:
                row["repairs"] = self.record_id(repairs)
            rows.append(row)
        return rows

    def expected_scores(self, model: ScoringModel) -> FloatArray:
        """Every resident's score at ``now`` under ``model`` (in ``resident_ids`` order):
        what the node must compute once all batches are pushed. Raises ``ValueError`` if
        the model lacks one of the population's kinds."""
        return model.score_batch(len(self.resident_ids), *self.record_arrays(model), self.now)

    def record_arrays(
        self, model: ScoringModel
    ) -> tuple[IntArray, IntArray, IntArray, FloatArray, IntArray]:
        """The record arrays :meth:`ScoringModel.score_batch` takes for this population
        (``resident_idx, kind_idx, occurred_at, points, expires_at``). Raises
        ``ValueError`` if the model lacks one of the population's kinds."""
        missing = [k for k in self.kinds if k not in model.kinds]
        if missing:
            raise ValueError(f"the model {model.version} has no kind {missing[0]!r}")
        of_kind = [model.kinds[k] for k in self.kinds]
        kind = self.kind_idx
        points = np.array([k.points for k in of_kind], dtype=np.float64)[kind]
        own = ~np.isnan(self.points) & np.array([k.points_overridable for k in of_kind])[kind]
        points[own] = self.points[own]
        lasts = np.array([model.disclosure_days[k.severity] * DAY for k in of_kind])
        expires_at = self.occurred_at + lasts[kind]
        # a repair gives back a share of the repaired record's negative points, and counts
        # while that record does (ScoringModel.points_of, expiry_of)
        repair = np.array([k.repair for k in of_kind])[kind]
        repaired = self.repairs[repair]
        restore = np.array([model.restore[k.severity] for k in of_kind])
        points[repair] = -np.minimum(points[repaired], 0.0) * restore[kind[repaired]]
        expires_at[repair] = expires_at[repaired]
        order = {name: i for i, name in enumerate(model.kind_order)}
        model_kind = np.array([order[k] for k in self.kinds], dtype=np.int64)[kind]
        return self.resident_idx, model_kind, self.occurred_at, points, expires_at


def generate(
    city: CityProfile,
    residents: int,
    *,
    seed: int,
    now: int,
    model: ScoringModel | None = None,
) -> Population:
    """``residents`` residents of ``city`` and their records up to ``now`` (epoch
    seconds), the same for the same arguments. Records occurred within
    :data:`HISTORY_DAYS` before ``now``, so some no longer count. ``model``: the
    city's record kinds, if not its model file's (a scorecard's base, before the fit).

    Raises ``ValueError`` if ``residents`` or ``seed`` is negative, ``now`` lies less
    than the history after the epoch, or the profile names a kind the city's model
    lacks; ``node.scoring.ModelError`` if the model can't be read.
    """
    if residents < 0 or seed < 0:
        raise ValueError("residents and seed must be >= 0")
    if now < HISTORY_DAYS * DAY:
        raise ValueError(f"now must lie at least {HISTORY_DAYS} days after the epoch")
    if model is None:
        model = load_model(city.model)
    kinds = (*city.rates, REPAIR_KIND)
    for kind in kinds:
        if kind not in model.kinds:
            raise ValueError(f"{city.city}: the model {model.version} has no kind {kind!r}")
    if not model.kinds[REPAIR_KIND].repair:
        raise ValueError(f"{city.city}: {REPAIR_KIND!r} is not a repair kind in the model")
    negative = [k for k in city.rates if model.kinds[k].points < 0]
    # the city in the seed: two cities drawn with one seed don't share their randomness
    rng = np.random.default_rng([seed, zlib.crc32(city.city.encode())])
    everyone = np.arange(residents, dtype=np.int64)
    troubled = rng.random(residents) < city.troubled_share

    owners: list[IntArray] = []
    kind_of: list[IntArray] = []
    for k, (kind, rate) in enumerate(city.rates.items()):
        if kind in ONCE_KINDS:
            counts = (rng.random(residents) < rate).astype(np.int64)
        else:
            mean = (
                np.where(troubled, rate * city.troubled_factor, rate) if kind in negative else rate
            )
            counts = rng.poisson(mean, residents)
        owners.append(np.repeat(everyone, counts))
        kind_of.append(np.full(int(counts.sum()), k, dtype=np.int64))
    resident_idx = np.concatenate(owners)
    kind_idx = np.concatenate(kind_of)
    occurred_at = now - rng.integers(1, HISTORY_DAYS * DAY, len(kind_idx), endpoint=True)
    points = np.full(len(kind_idx), np.nan)
    for kind, (low, high) in OWN_POINTS.items():
        if kind in city.rates and model.kinds[kind].points_overridable:
            mine = kind_idx == kinds.index(kind)
            points[mine] = rng.integers(low, high, int(mine.sum()), endpoint=True)

    # repairs: a share of the negative records, each repaired once, strictly later
    negative_idx = np.array([kinds.index(k) for k in negative], dtype=np.int64)
    candidates = np.flatnonzero(np.isin(kind_idx, negative_idx))
    repaired = candidates[rng.random(len(candidates)) < city.repair_share]
    plain = len(kind_idx)
    room = np.minimum(REPAIR_WITHIN_DAYS * DAY, now - occurred_at[repaired])  # >= 1
    delay = 1 + np.floor(rng.random(len(repaired)) * room).astype(np.int64)
    resident_idx = np.concatenate([resident_idx, resident_idx[repaired]])
    kind_idx = np.concatenate([kind_idx, np.full(len(repaired), len(kinds) - 1)])
    occurred_at = np.concatenate([occurred_at, occurred_at[repaired] + delay])
    points = np.concatenate([points, np.full(len(repaired), np.nan)])
    repairs = np.concatenate([np.full(plain, -1, dtype=np.int64), repaired])

    departments = tuple(dict.fromkeys(city.departments[k] for k in city.rates))
    department_of_kind = np.array([departments.index(city.departments[k]) for k in city.rates])
    department_idx = department_of_kind[kind_idx[:plain]]
    department_idx = np.concatenate([department_idx, department_idx[repaired]])

    # push order: by department, then by time (a repair after what it repairs)
    # (one key: np.lexsort takes three times as long; times stay below 2**40 s, year 36812)
    order = np.argsort((department_idx << 40) | occurred_at, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    repairs = repairs[order]
    repairs[repairs >= 0] = position[repairs[repairs >= 0]]
    return Population(
        city=city.city,
        prefix=city.prefix,
        now=now,
        resident_ids=[f"{city.prefix}-r{i:07d}" for i in range(residents)],
        kinds=kinds,
        departments=departments,
        resident_idx=resident_idx[order],
        kind_idx=kind_idx[order],
        department_idx=department_idx[order],
        occurred_at=occurred_at[order],
        points=points[order],
        repairs=repairs,
    )
