"""Is each city treated as the reference would treat it? Fairness per threshold (issue 18),
and grant rates of visitors and locals by home-city percentile.

Fairness per threshold is the run's headline: for each city and each published
threshold, the share of the city's residents whose alliance score reaches it beside the
reference distribution's share, and the least error any monotone table could reach
there (``mappings.threshold_shares``; docs/MAPPINGS.md section 13). It is computed from
each city's distribution summary and the table published for it, so it is exact for
the month the summary describes and needs no visits.

The rest of this module compares the visits themselves: grant rates by percentile and
the largest visitor-local difference in one cell (issue 6's "fairness gap"), which the
report keeps beside its plots.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple, TypeVar

from mappings import (
    GOAL_TOLERANCE,
    AllianceScale,
    DistributionSummary,
    MappingError,
    MappingTable,
    ThresholdShare,
    threshold_shares,
)
from simulator.observations import CityInfo, Visit

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_MIN_SAMPLES",
    "CityThresholds",
    "FairnessCell",
    "FairnessGap",
    "GrantRate",
    "Group",
    "PooledRateKey",
    "RateKey",
    "bucket_label",
    "bucket_of",
    "city_thresholds",
    "describe_thresholds",
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


# --- fairness per threshold -----------------------------------------------------------------


@dataclass(frozen=True)
class CityThresholds:
    """One city's fairness per threshold, or why it could not be measured."""

    city: str
    shares: tuple[ThresholdShare, ...]  # one per published threshold; empty with a problem
    problem: str | None = None  # "no mapping table", or why the table or summary is unusable


def city_thresholds(cities: Iterable[CityInfo], scale: AllianceScale) -> list[CityThresholds]:
    """Each city's :func:`mappings.threshold_shares` from its summary and published table.

    A city without a table or summary, or whose table or summary does not read or fit
    (another city's, another scale), gets its problem instead of shares: the report
    shows the run's evidence rather than failing on it.
    """
    out = []
    for city in cities:
        if not city.table or not city.summary:
            missing = "mapping table" if not city.table else "distribution summary"
            out.append(CityThresholds(city.city, (), f"no {missing}"))
            continue
        try:
            summary = DistributionSummary.from_json(city.summary)
            if summary.city != city.city:  # a row must be the city it names
                raise MappingError("city", f"the summary is {summary.city}'s, not {city.city}'s")
            shares = threshold_shares(summary, MappingTable.from_claims(city.table), scale)
        except MappingError as exc:
            out.append(CityThresholds(city.city, (), f"cannot be measured: {exc}"))
            continue
        out.append(CityThresholds(city.city, shares))
    return out


def describe_thresholds(measured: Sequence[CityThresholds]) -> str:
    """One line for a person: how many (city, threshold) pairs meet the goal, the misses,
    and the largest difference with its floor. The report and the terminal summary both
    print this line, so they agree."""
    pairs = [(c.city, s) for c in measured for s in c.shares]
    unmeasured = [c.city for c in measured if c.problem is not None]
    skipped = f"; not measured: {', '.join(unmeasured)}" if unmeasured else ""
    if not pairs:
        return f"n/a: no city with a table and a summary{skipped}"
    met = [share for _, share in pairs if share.meets_goal]
    within = sum(share.within_one_point for share in met)
    city, worst = max(pairs, key=lambda pair: abs(pair[1].error))  # the first of equals
    missed = [f"{c} ≥ {s.threshold} ({s.verdict})" for c, s in pairs if not s.meets_goal]
    return (
        f"{'✓' if len(met) == len(pairs) else '✗'} goal met at {len(met)} of {len(pairs)} "
        f"(city, threshold) pairs: {within} within {100 * GOAL_TOLERANCE:g} pp of the "
        f"reference share, {len(met) - within} at the least error of a coarser scale"
        + (f"; missed: {', '.join(missed)}" if missed else "")
        + f"; largest difference {100 * worst.error:+.2f} pp at {city} ≥ {worst.threshold} "
        f"(least error {100 * worst.least_error:.2f} pp: its point {worst.straddling_point} "
        f"holds {worst.straddling_share:.1%} of the city){skipped}"
    )
