"""The demo alliance's five cities: synthetic score distributions, made to differ.

None of these numbers describe real residents. Each city's histogram is drawn from a
shape chosen to exercise one thing the linking has to get right (DESIGN section 8):

- Xiamen, 白鹭分 0..1000: most residents between 600 and 800, a long tail below
  (negative records) — a skewed distribution on a wide scale.
- Fuzhou, 茉莉分 0..1000 with a base of 500: everyone starts at 500, so a spike sits
  exactly on 500 (residents with no records yet) and mass piles up just above it; few
  fall below. A spike is the hard case for percentile ranks.
- Hangzhou, 钱江分 350..950: built to be roughly normal — a scale that does not start at 0.
  (These histograms are shapes, not a model's output: in `ccx simulate` Hangzhou's node
  scores with a learned scorecard, simulator/cities/hangzhou.toml, docs/MODELS.md, and
  its table is built from the histogram that node reports.)
- Quanzhou, 刺桐分 0..100: a short scale with heaping on multiples of 5 and 10 (the
  model's rounding). Linked unsmoothed: the summary is the whole city, so the heaps are
  real residents, and presmoothing them away (log-linear degree 6, as this city was
  linked before issue 18) put 48.1% of them at or above 600 against the reference's
  50.2% (docs/MAPPINGS.md section 13).
- Zhangzhou, 水仙等级 D..AAA: six grades, lowest first — an ordinal scale.

Histograms are drawn with a fixed seed, so `ccx mapping demo-tables` regenerates the
committed files byte for byte (for a given numpy: its generator streams are stable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mappings import DistributionSummary, LocalScale, Smoothing

__all__ = [
    "DEMO_CITIES",
    "DEMO_SEED",
    "DEMO_SNAPSHOT",
    "DEMO_VALID_FROM",
    "DEMO_VALID_TO",
    "DEMO_VERSION",
    "DemoCity",
    "demo_summaries",
]

DEMO_SEED = 20261101
DEMO_SNAPSHOT = "2026-11-01"
DEMO_VALID_FROM = "2026-11-01"
DEMO_VALID_TO = "2027-11-01"
DEMO_VERSION = 1

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DemoCity:
    """One synthetic city: its scale, the shape of its scores and how its table is built."""

    city: str
    local_scale: LocalScale
    population: int
    model_version: str
    shape: Callable[[FloatArray], FloatArray]  # relative frequency per score value
    smoothing: Smoothing = None
    standard_errors: str | None = "lord"


def _normal(values: FloatArray, mean: float, sd: float) -> FloatArray:
    density = np.exp(-0.5 * ((values - mean) / sd) ** 2)
    return np.asarray(density / density.sum(), dtype=np.float64)


def _gamma(distance: FloatArray, shape: float, scale: float) -> FloatArray:
    """A gamma density over distances > 0 (zero elsewhere), normalised to sum to 1."""
    positive = np.clip(distance, 1e-12, None)
    density = np.where(distance > 0, positive ** (shape - 1) * np.exp(-positive / scale), 0.0)
    return np.asarray(density / density.sum(), dtype=np.float64)


def _xiamen(values: FloatArray) -> FloatArray:
    return 0.9 * _normal(values, 705, 65) + 0.1 * _normal(values, 520, 110)


def _fuzhou(values: FloatArray) -> FloatArray:
    no_records = np.where(values == 500, 1.0, 0.0)
    above = _gamma(values - 500, 1.6, 55)
    below = _gamma(500 - values, 1.2, 45)
    return 0.14 * no_records + 0.80 * above + 0.06 * below


def _hangzhou(values: FloatArray) -> FloatArray:
    return _normal(values, 650, 85)


def _quanzhou(values: FloatArray) -> FloatArray:
    smooth = _normal(values, 74, 11) * 0.93 + _normal(values, 45, 14) * 0.07
    heaps = np.where(values % 10 == 0, 2.2, np.where(values % 5 == 0, 1.6, 1.0))
    return smooth * heaps


def _zhangzhou(values: FloatArray) -> FloatArray:
    return np.array([0.02, 0.05, 0.15, 0.38, 0.28, 0.12])  # D, C, B, A, AA, AAA


DEMO_CITIES: tuple[DemoCity, ...] = (
    DemoCity("xiamen", LocalScale("白鹭分", 0, 1000), 480_000, "bailu-2026.2", _xiamen),
    DemoCity("fuzhou", LocalScale("茉莉分", 0, 1000), 620_000, "moli-v4", _fuzhou),
    DemoCity("hangzhou", LocalScale("钱江分", 350, 950), 900_000, "qianjiang-2.1", _hangzhou),
    DemoCity(
        "quanzhou",
        LocalScale("刺桐分", 0, 100),
        150_000,
        "citong-v1",
        _quanzhou,
    ),
    DemoCity(
        "zhangzhou",
        LocalScale.grades("水仙等级", ["D", "C", "B", "A", "AA", "AAA"]),
        60_000,
        "shuixian-2025",
        _zhangzhou,
    ),
)


def demo_summaries(seed: int = DEMO_SEED) -> list[DistributionSummary]:
    """The five cities' distribution summaries, drawn from one generator in a fixed order."""
    rng = np.random.default_rng(seed)
    summaries = []
    for city in DEMO_CITIES:
        shape = city.shape(city.local_scale.values)
        counts = rng.multinomial(city.population, shape / shape.sum())
        summaries.append(
            DistributionSummary(
                city=city.city,
                local_scale=city.local_scale,
                counts=counts.astype(np.float64),
                snapshot=DEMO_SNAPSHOT,
                model_version=city.model_version,
            )
        )
    return summaries
