"""Do visitors get what locals get? Grant rates by home-city percentile, and the fairness gap.

The fairness gap (issue 6) is "the largest difference, over cities and scenarios, between
the grant rate of visitors and of locals at the same percentile". Made exact here:

- Only decided visits count: ``granted`` or ``denied``. A ``refused`` presentation (a 4xx
  with an error code) or an ``unavailable`` node says nothing about the mapping tables.
- "The same percentile" is the holder's percentile rank in her *home* city, cut into
  ``buckets`` equal buckets: ``bucket = min(floor(percentile / (100 / buckets)),
  buckets - 1)``, so 100 falls in the top bucket.
- A *cell* is one (verifying city, scenario, bucket). Its locals are the verifying city's
  own residents; its visitors are residents of every other city, pooled.
- The gap is the largest ``|visitor grant rate - local grant rate|`` over the cells where
  both groups have at least ``min_samples`` decided visits; the other cells are counted
  as skipped. With no cell to compare, the gap is ``None``, not 0: "no evidence" is not
  "fair".

Pure: visits in, numbers out. Ties between cells go to the first in (city, scenario,
bucket) order, so the same visits always give the same answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple, TypeVar

from simulator.observations import Visit

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_MIN_SAMPLES",
    "FairnessCell",
    "FairnessGap",
    "GrantRate",
    "Group",
    "PooledRateKey",
    "RateKey",
    "bucket_label",
    "bucket_of",
    "fairness_cells",
    "fairness_gap",
    "grant_rates",
    "pooled_fairness_gap",
    "pooled_grant_rates",
]

DEFAULT_BUCKETS = 10
DEFAULT_MIN_SAMPLES = 30

Group = Literal["local", "visitor"]


class RateKey(NamedTuple):
    """One cell of :func:`grant_rates`."""

    city: str  # the verifying city
    scenario: str
    group: Group
    bucket: int


class PooledRateKey(NamedTuple):
    """One cell of :func:`pooled_grant_rates`: all verifying cities together."""

    scenario: str
    group: Group
    bucket: int


_Key = TypeVar("_Key", RateKey, PooledRateKey)


@dataclass(frozen=True)
class GrantRate:
    """``granted`` of ``decided`` visits (``decided`` >= 1 in every rate this module returns)."""

    granted: int
    decided: int

    @property
    def rate(self) -> float:
        return self.granted / self.decided if self.decided else 0.0


@dataclass(frozen=True)
class FairnessCell:
    """Locals and visitors at one verifying city, scenario and percentile bucket."""

    city: str
    scenario: str
    bucket: int
    local: GrantRate
    visitor: GrantRate

    @property
    def difference(self) -> float:
        """Visitors' grant rate less locals': negative when visitors fare worse."""
        return self.visitor.rate - self.local.rate

    @property
    def gap(self) -> float:
        return abs(self.difference)


@dataclass(frozen=True)
class FairnessGap:
    """The largest visitor-local difference in grant rate (see the module docstring)."""

    gap: float | None  # 0..1; None when no cell has enough visits in both groups
    where: tuple[str, str, int] | None  # (verifying city, scenario, bucket) of the largest
    local_rate: float | None
    visitor_rate: float | None
    n_local: int  # decided visits of locals in that cell (0 when gap is None)
    n_visitor: int
    cells_compared: int
    cells_skipped: int  # cells with a decided visit but too few in one group
    buckets: int = DEFAULT_BUCKETS
    min_samples: int = DEFAULT_MIN_SAMPLES

    def describe(self) -> str:
        """One line for a person: the gap, where it is, and how much evidence there was.

        The report and the terminal summary both print this line, so they agree.
        """
        counted = (
            f"{self.cells_compared} cells compared, {self.cells_skipped} skipped "
            f"(< {self.min_samples} decided visits in a group)"
        )
        if self.gap is None or self.where is None:
            return f"n/a: no cell to compare ({counted})"
        city, scenario, bucket = self.where
        return (
            f"{self.gap:.3f} at {city} / {scenario} / "
            f"percentile {bucket_label(bucket, self.buckets)}: "
            f"visitors {self.visitor_rate:.3f} (n={self.n_visitor}) vs "
            f"locals {self.local_rate:.3f} (n={self.n_local}); {counted}"
        )


def bucket_of(percentile: float, buckets: int = DEFAULT_BUCKETS) -> int:
    """The bucket 0..buckets-1 of a percentile 0..100; 100 is in the top bucket.

    Raises ValueError for a percentile outside 0..100 (or NaN) or fewer than one bucket.
    """
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1, not {buckets}")
    if not 0 <= percentile <= 100:
        raise ValueError(f"a percentile is within 0..100, not {percentile}")
    # percentile * buckets / 100 is percentile / (100 / buckets) without the rounded
    # bucket width, so exact for integer percentiles (100 / (100 / 11) is 10.999...).
    return min(int(percentile * buckets / 100), buckets - 1)


def bucket_label(bucket: int, buckets: int = DEFAULT_BUCKETS) -> str:
    """The percentile range of a bucket, e.g. ``30–40``."""
    width = 100 / buckets
    return f"{bucket * width:g}–{(bucket + 1) * width:g}"


def _group(visit: Visit) -> Group:
    return "local" if visit.local else "visitor"


def _rates(counts: dict[_Key, list[int]]) -> dict[_Key, GrantRate]:
    return {key: GrantRate(*counts[key]) for key in sorted(counts)}


def grant_rates(
    visits: Iterable[Visit], *, buckets: int = DEFAULT_BUCKETS
) -> dict[RateKey, GrantRate]:
    """Grant rate and count of decided visits by (verifying city, scenario, local or
    visitor, home-city percentile bucket), in key order. Refused and unavailable visits
    are left out; a cell without a decided visit is absent.

    Raises ValueError as :func:`bucket_of` does.
    """
    counts: dict[RateKey, list[int]] = defaultdict(lambda: [0, 0])
    for visit in visits:
        if not visit.decided:
            continue
        key = RateKey(
            visit.city, visit.scenario, _group(visit), bucket_of(visit.percentile, buckets)
        )
        counts[key][0] += visit.outcome == "granted"
        counts[key][1] += 1
    return _rates(counts)


def pooled_grant_rates(
    visits: Iterable[Visit], *, buckets: int = DEFAULT_BUCKETS
) -> dict[PooledRateKey, GrantRate]:
    """:func:`grant_rates` summed over verifying cities: by (scenario, local or visitor,
    bucket), in key order. What the report plots."""
    counts: dict[PooledRateKey, list[int]] = defaultdict(lambda: [0, 0])
    for key, rate in grant_rates(visits, buckets=buckets).items():
        pooled = PooledRateKey(key.scenario, key.group, key.bucket)
        counts[pooled][0] += rate.granted
        counts[pooled][1] += rate.decided
    return _rates(counts)


def fairness_cells(
    visits: Iterable[Visit],
    *,
    buckets: int = DEFAULT_BUCKETS,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> tuple[list[FairnessCell], int]:
    """The cells where locals and visitors both have ``min_samples`` decided visits or
    more, largest gap first (ties in city, scenario, bucket order), and the number of
    cells skipped for too few.

    Raises ValueError for ``min_samples`` below 1, and as :func:`bucket_of` does.
    """
    if min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, not {min_samples}")
    rates = grant_rates(visits, buckets=buckets)
    places = sorted({(key.city, key.scenario, key.bucket) for key in rates})
    compared: list[FairnessCell] = []
    for city, scenario, bucket in places:
        local = rates.get(RateKey(city, scenario, "local", bucket))
        visitor = rates.get(RateKey(city, scenario, "visitor", bucket))
        if local is None or visitor is None:
            continue
        if min(local.decided, visitor.decided) >= min_samples:
            compared.append(FairnessCell(city, scenario, bucket, local, visitor))
    compared.sort(key=lambda cell: -cell.gap)  # stable: ties keep the place order
    return compared, len(places) - len(compared)


def fairness_gap(
    visits: Iterable[Visit],
    *,
    buckets: int = DEFAULT_BUCKETS,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> FairnessGap:
    """The fairness gap of the module docstring, with where it is and the evidence.

    Raises ValueError as :func:`fairness_cells` does.
    """
    cells, skipped = fairness_cells(visits, buckets=buckets, min_samples=min_samples)
    if not cells:
        return FairnessGap(
            None, None, None, None, 0, 0, 0, skipped, buckets=buckets, min_samples=min_samples
        )
    top = cells[0]
    return FairnessGap(
        gap=top.gap,
        where=(top.city, top.scenario, top.bucket),
        local_rate=top.local.rate,
        visitor_rate=top.visitor.rate,
        n_local=top.local.decided,
        n_visitor=top.visitor.decided,
        cells_compared=len(cells),
        cells_skipped=skipped,
        buckets=buckets,
        min_samples=min_samples,
    )


ALL_CITIES = "all cities"
POOLED_BUCKETS = 5
POOLED_MIN_SAMPLES = 20


def pooled_fairness_gap(
    visits: Iterable[Visit],
    *,
    buckets: int = POOLED_BUCKETS,
    min_samples: int = POOLED_MIN_SAMPLES,
) -> FairnessGap:
    """The same measure with the verifying cities pooled (locals of every city against
    visitors of every city) and coarser buckets: what a run too small for the issue's
    gap can still say. Its ``where`` names the city as ``"all cities"``."""
    pooled = [replace(v, city=ALL_CITIES, home=ALL_CITIES if v.local else v.home) for v in visits]
    return fairness_gap(pooled, buckets=buckets, min_samples=min_samples)
