"""Fairness per threshold: does a table grant a city's residents what the reference would?

A service point decides on the alliance scale: "alliance score >= t" for a published
threshold t. Percentile linking promises that the share of a city's residents who reach
t is the share of the reference distribution at or above t, whichever city they live
in. This module measures that promise for one city's table and histogram, and the
floor below which no table can go.

The floor: any monotone table (a higher local score never gets a lower alliance score)
grants "reaches t" to an *upper set* of the local scale, every score point from some
point up, so the only shares it can reach are the histogram's upper-tail sums
``U_j = share of residents at point j or above`` (with ``U_0 = 1`` and 0 for nobody).
Residents who share one local score point share one alliance score: a table cannot
split them. The least error is the distance from the reference share to the nearest
``U_j``; the point whose residents straddle the reference share holds the mass that
cannot be split, and the least error is at most half of it. On a fine scale that mass
is tiny; on a coarse one (grades, a 0..100 scale) it is the whole story.

Unsmoothed equipercentile linking reaches the floor at every threshold when the
histogram is the one the table was built from: a point is granted exactly when its
mid-point percentile rank reaches the reference's share below t, which picks the nearer
of the two upper-tail sums around it (docs/MAPPINGS.md, section 13).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._errors import MappingError
from ._scale import AllianceScale
from ._table import DistributionSummary, MappingTable

__all__ = ["GOAL_TOLERANCE", "ThresholdShare", "threshold_shares"]

GOAL_TOLERANCE = 0.01  # one percentage point (issue 18): the goal where the scale is fine
# Shares are sums of float64 frequencies; a table that reaches the floor can miss it by
# rounding in the last digits. A millionth of a percentage point is far below anything
# a city could see and far above float error.
_SLACK = 1e-8


@dataclass(frozen=True, slots=True)
class ThresholdShare:
    """One city at one published threshold: shares are fractions 0..1 of residents."""

    threshold: int  # on the alliance scale
    city_share: float  # residents whose alliance score, by the table, is >= threshold
    reference_share: float  # the reference distribution's mass at >= threshold
    least_error: float  # the smallest |city_share - reference_share| any monotone table reaches
    straddling_point: float | str  # the local score point (or grade) that cannot be split
    straddling_share: float  # its share of residents

    @property
    def error(self) -> float:
        """``city_share - reference_share``: positive when the city's residents reach the
        threshold more often than the reference says they should."""
        return self.city_share - self.reference_share

    @property
    def tolerance(self) -> float:
        """What the goal allows here: one percentage point, or the least error where the
        scale is too coarse for that."""
        return max(GOAL_TOLERANCE, self.least_error)

    @property
    def meets_goal(self) -> bool:
        """Whether ``|error|`` is within :attr:`tolerance`."""
        return abs(self.error) <= self.tolerance + _SLACK

    @property
    def within_one_point(self) -> bool:
        """Whether ``|error|`` is within :data:`GOAL_TOLERANCE`, whatever the floor."""
        return abs(self.error) <= GOAL_TOLERANCE + _SLACK

    @property
    def at_floor(self) -> bool:
        """Whether the table reaches the least error (no monotone table does better)."""
        return abs(self.error) <= self.least_error + _SLACK

    @property
    def verdict(self) -> str:
        """The goal in a few words, as the CLI and the simulator's report print it:
        ``met: within 1 pp``, ``met: at the floor`` (a coarse scale, the least error
        above 1 pp, reached) or ``MISSED by 1.07 pp`` (beyond the tolerance)."""
        if not self.meets_goal:
            return f"MISSED by {100 * (abs(self.error) - self.tolerance):.2f} pp"
        if self.within_one_point:
            return f"met: within {100 * GOAL_TOLERANCE:g} pp"
        return "met: at the floor"


def threshold_shares(
    summary: DistributionSummary, table: MappingTable, scale: AllianceScale
) -> tuple[ThresholdShare, ...]:
    """For each of ``scale.thresholds``, the share of the summary's residents whose
    alliance score (``table.apply`` of their local score) reaches it, beside the reference
    distribution's share and the least error any monotone table could reach there.

    Pure and exact: the histogram's counts, not a sample of residents. Raises
    MappingError when the table was built for another scale (field ``scale_sha256``), is
    another city's (field ``city``), or the summary's local scale is not the table's
    (field ``local_scale``).
    """
    if table.scale_sha256 != scale.sha256:
        raise MappingError("scale_sha256", "the table was built for another alliance scale")
    if summary.city != table.city:
        raise MappingError("city", f"the summary is {summary.city}'s, the table {table.city}'s")
    local = summary.local_scale
    if local != table.local_scale:
        raise MappingError(
            "local_scale",
            f"the summary's scale {local.name} is not the table's ({table.local_scale.name})",
        )
    shares = summary.counts / summary.counts.sum()
    if local.labels is not None:
        points: list[float | str] = list(local.labels)
        alliance = np.array([table.apply(label) for label in local.labels])
    else:
        points = [float(v) for v in local.values]
        alliance = np.asarray(table.apply(local.values))
    # upper[j]: the share at point j or above; upper[n] = 0 (nobody reaches).
    upper = np.append(np.cumsum(shares[::-1])[::-1], 0.0)
    out = []
    for threshold in scale.thresholds:
        reference = float(scale.reference[threshold - scale.min :].sum())
        # The straddling point j: upper[j] >= reference > upper[j + 1].
        j = max(int(np.searchsorted(-upper, -reference, side="right")) - 1, 0)
        j = min(j, len(points) - 1)
        out.append(
            ThresholdShare(
                threshold=threshold,
                city_share=float(shares[alliance >= threshold].sum()),
                reference_share=reference,
                least_error=float(np.min(np.abs(upper - reference))),
                straddling_point=_score(points[j]),
                straddling_share=float(shares[j]),
            )
        )
    return tuple(out)


def _score(point: float | str) -> float | str:
    return int(point) if isinstance(point, float) and point.is_integer() else point
