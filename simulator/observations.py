"""What a simulation run saw: plain data shared by the run, the fairness measure and the
report. Nothing here talks to a node; everything can be built by hand in a test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CityInfo", "Fault", "Invariant", "Outcome", "RunResult", "Visit"]

# granted / denied: a decision; refused: a 4xx with an error code (a bad presentation, a
# revoked or unknown attestation...); unavailable: no answer, or a 5xx (a node down).
Outcome = Literal["granted", "denied", "refused", "unavailable"]


@dataclass(frozen=True)
class Visit:
    """One presentation at a service point: a resident of ``home`` in ``city``."""

    t: float  # seconds since the visits phase began
    home: str  # the holder's home city
    city: str  # the verifying city
    scenario: str
    percentile: float  # the holder's percentile rank in her home city, 0..100
    outcome: Outcome
    code: str | None = None  # the error code (refused, unavailable) or first reason (denied)
    tier: str | None = None  # the benefit tier granted

    @property
    def local(self) -> bool:
        return self.home == self.city

    @property
    def decided(self) -> bool:
        return self.outcome in ("granted", "denied")


@dataclass(frozen=True)
class CityInfo:
    """A city of the run: its node, population and the mapping table published for it."""

    city: str
    name: str  # the local score's name, e.g. 白鹭分
    node_id: str
    residents: int
    records: int
    holders: int  # residents who consented and took a credential through an offer
    summary: Mapping[str, Any]  # the distribution summary the node gave the alliance
    table: Mapping[str, Any]  # the signed mapping table's claims


@dataclass(frozen=True)
class Fault:
    """A fault injected during the run and what the system did about it."""

    name: str
    at: float  # seconds since the visits phase began
    action: str  # what the simulator did
    observed: str  # what the alliance did about it
    ok: bool  # whether that is what should happen
    details: Sequence[str] = ()  # the cases behind a failure, one line each


@dataclass(frozen=True)
class Invariant:
    name: str
    ok: bool
    detail: str


@dataclass
class RunResult:
    """Everything the report is made of."""

    seed: int
    started_at: int  # epoch seconds
    scale: Mapping[str, Any]  # the registry's scale claim
    scenarios: Sequence[str]
    cities: list[CityInfo] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    # issue 18: housekeepers' domestic-service checks (simulator/domestic.py), apart from
    # the scenario visits (no score: no fairness measure); whether each city issues it
    domestic: list[Visit] = field(default_factory=list)
    domestic_cities: dict[str, bool] = field(default_factory=dict)
    # seconds each HTTP call took, by endpoint ("POST /v1/verifications", ...)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds per phase
    faults: list[Fault] = field(default_factory=list)
    invariants: list[Invariant] = field(default_factory=list)
    visits_seconds: float = 0.0  # wall time of the visits phase
    total_seconds: float = 0.0  # wall time of the whole run

    @property
    def visits_per_second(self) -> float:
        return len(self.visits) / self.visits_seconds if self.visits_seconds > 0 else 0.0
