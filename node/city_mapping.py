"""A city's mapping table as its node applies it (DESIGN section 8; docs/PROTOCOL.md
section 7a): the table, checked against the city's scoring model and the alliance scale,
and the alliance score and band of a local score. Where the node takes its table from
(a registry's signed table or the local file) is ``node.services.mapping_tables``."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mappings import AllianceScale, MappingError, MappingTable
from node.errors import NodeError
from node.scoring import ScoringModel

__all__ = ["CityMapping", "check_table", "load_mapping_table", "log_loaded"]

log = logging.getLogger("ccx.node")


@dataclass(frozen=True)
class CityMapping:
    """The city's mapping table, checked against the scoring model and the alliance scale."""

    table: MappingTable
    scale: AllianceScale
    source: str

    @property
    def reference(self) -> dict[str, Any]:
        """The attestation's ``mapping`` claim."""
        return {"city": self.table.city, "version": self.table.version, "sha256": self.sha256}

    @functools.cached_property
    def sha256(self) -> str:
        """The table's content hash (docs/PROTOCOL.md section 7a)."""
        return self.table.sha256

    @functools.cached_property
    def _band_lowers(self) -> npt.NDArray[np.int64]:
        return np.array([band.lower for band in self.scale.bands], dtype=np.int64)

    def require_in_force(self, now: int) -> None:
        """Raise 503 ``mapping_table_not_in_force`` outside the table's validity window."""
        if not self.table.valid_from <= now < self.table.valid_to:
            raise NodeError(
                "mapping_table_not_in_force",
                f"the {self.table.city} mapping table (version {self.table.version}) is valid "
                f"from {self.table.valid_from} to {self.table.valid_to}, not at {now}",
                status=503,
            )

    def _local_values(self, local_scores: Sequence[float]) -> Any:
        labels = self.table.local_scale.labels
        if labels is None:
            return np.asarray(local_scores, dtype=np.float64)
        # A grade scale's score is the grade's index (node.scoring keeps it as a number).
        return [labels[round(score)] for score in local_scores]

    def alliance_score(self, local_score: float) -> int:
        """The alliance score of one local score (rounded half up, clamped)."""
        labels = self.table.local_scale.labels
        return int(self.table.apply(labels[round(local_score)] if labels else float(local_score)))

    def alliance_scores(self, local_scores: Sequence[float]) -> npt.NDArray[np.int64]:
        """Vectorised :meth:`alliance_score`."""
        if not local_scores:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self.table.apply(self._local_values(local_scores)), dtype=np.int64)

    def bands_of(self, alliance_scores: npt.NDArray[np.int64]) -> list[str]:
        """The band of each alliance score (``AllianceScale.band_of``, vectorised)."""
        positions = np.searchsorted(self._band_lowers, alliance_scores, side="right") - 1
        return [self.scale.bands[max(int(p), 0)].name for p in positions]


def _scale_shape(scale: Any) -> tuple[float, float, float, tuple[str, ...] | None]:
    return (float(scale.min), float(scale.max), float(scale.step), scale.labels)


def _default_table(city: str) -> Traversable:
    return resources.files("mappings").joinpath("tables", f"{city}.table.json")


def check_table(
    table: MappingTable,
    city: str,
    model: ScoringModel,
    scale: AllianceScale,
    unavailable: Any,
) -> None:
    """The checks every table the node uses passes (raises ``unavailable(reason)``)."""
    if table.city != city:
        raise unavailable(f"it is {table.city}'s table, and this node serves {city}")
    if _scale_shape(table.local_scale) != _scale_shape(model.scale):
        raise unavailable(
            f"its local scale {table.local_scale.to_json()} is not the scoring model's "
            f"{model.scale.to_json()} (min, max, step and labels must agree)"
        )
    if table.scale_sha256 != scale.sha256:
        raise unavailable("it was built for another alliance scale")


def load_mapping_table(
    city: str,
    model: ScoringModel,
    *,
    source: Traversable | Path | None = None,
    scale: AllianceScale | None = None,
) -> CityMapping:
    """Read and check the city's mapping table (its JSON claims, docs/PROTOCOL.md 7a).

    ``source`` defaults to ``mappings/tables/<city>.table.json``. Raises NodeError 503
    ``mapping_table_unavailable`` when the file can't be read or parsed, is for another
    city, has a local scale other than the scoring model's (min, max, step, labels), or
    was built for another alliance scale than ``scale`` (default: the default scale).
    """
    scale = scale or AllianceScale()
    where = source if source is not None else _default_table(city)

    def unavailable(reason: str) -> NodeError:
        return NodeError(
            "mapping_table_unavailable",
            f"the mapping table {where} can't be used: {reason}",
            status=503,
        )

    try:
        claims = json.loads(where.read_text(encoding="utf-8"))
        if not isinstance(claims, dict):
            raise unavailable("it is not a JSON object")
        table = MappingTable.from_claims(claims)
    except OSError as exc:
        raise unavailable(exc.strerror or "it can't be read") from exc
    except MappingError as exc:
        raise unavailable(str(exc)) from exc
    except (ValueError, TypeError) as exc:
        raise unavailable("it is not valid JSON claims of a mapping table") from exc
    check_table(table, city, model, scale, unavailable)
    return CityMapping(table=table, scale=scale, source=str(where))


def log_loaded(mapping: CityMapping) -> None:
    log.info(
        json.dumps(
            {
                "event": "mapping_table_loaded",
                "city": mapping.table.city,
                "version": mapping.table.version,
                "sha256": mapping.sha256,
                "source": mapping.source,
            }
        )
    )
