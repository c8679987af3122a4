"""Score linking: the alliance scale, equipercentile and chained linking, mapping tables.

Pure: histograms in, tables out; the clock, keys and randomness are parameters.
See docs/MAPPINGS.md for which method to use and what the standard errors mean.
"""

from ._errors import MappingError
from ._fairness import GOAL_TOLERANCE, ThresholdShare, threshold_shares
from ._linking import (
    Smoothing,
    bootstrap_standard_errors,
    choose_loglinear_degree,
    inverse_percentile_rank,
    link_chained_equipercentile,
    link_equipercentile,
    loglinear_smooth,
    lord_standard_errors,
    percentile_ranks,
)
from ._scale import AllianceScale, Band, LocalScale, normal_reference
from ._table import METHODS, DistributionSummary, MappingTable, build_table, compose

__all__ = [
    "GOAL_TOLERANCE",
    "METHODS",
    "AllianceScale",
    "Band",
    "DistributionSummary",
    "LocalScale",
    "MappingError",
    "MappingTable",
    "Smoothing",
    "ThresholdShare",
    "bootstrap_standard_errors",
    "build_table",
    "choose_loglinear_degree",
    "compose",
    "inverse_percentile_rank",
    "link_chained_equipercentile",
    "link_equipercentile",
    "loglinear_smooth",
    "lord_standard_errors",
    "normal_reference",
    "percentile_ranks",
    "threshold_shares",
]
