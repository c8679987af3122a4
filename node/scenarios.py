"""The city's service-point scenarios (issue 5; DESIGN section 10, docs/VERIFYING.md).

A scenario is a benefit a service point grants on a resident's credit standing: a
deposit-free library card, parking paid later, treatment first and payment later up to
a credit limit. The catalogue is data: ``node/scenarios_demo.toml`` by default, or the
TOML file named by ``CCX_SCENARIOS``. It is read strictly: an unknown key, a missing
one or a value of the wrong type is refused with the field named.

Thresholds in the catalogue are on the city's **local** scale (what its own scoring
model gives). :func:`requirements` carries them onto the alliance scale, where every
decision is made, for locals and visitors alike (one flow, one scale):

- a tier's alliance minimum is its local threshold through the city's own mapping
  table, rounded **up** to the nearest threshold the registry publishes (a presentation
  can disclose only ``score_at_least.<published threshold>``); when no published
  threshold is that high, the tier needs ``alliance_score`` disclosed instead;
- where the registry policy sets ``scenarios.<kind>.min_alliance_score``, that value
  is the lowest tier's minimum (the alliance-wide rule: a city may ask less of
  visitors, never more), and no higher tier asks less than it.

A scenario may instead decide on the domestic-service (家政) credential (issue 18,
docs/CREDENTIALS.md): ``credential = "domestic_service"``, and each tier lists the
boolean claims it ``requires`` true (``background_check_passed``,
``no_upheld_complaints_12m``, ``rating_at_least.<t>``) instead of a local threshold;
``shows`` names claims the service point sees besides (``certified_since``, ...). No
score, no mapping table: the claims are the same in every city.

This module is pure: the mapping is passed in as a function.
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "CREDIT_STANDING",
    "DOMESTIC_SERVICE",
    "SCENARIO_PATTERN",
    "CatalogueError",
    "Requirement",
    "Scenario",
    "ScenarioCatalogue",
    "Tier",
    "disclosures_for",
    "domestic_disclosures",
    "domestic_requirements",
    "load_catalogue",
    "parse_catalogue",
    "requirements",
]

# A scenario names a client scope ``verify:<kind>`` (routers/departments.SCOPE_PATTERN
# allows 32 characters after the colon) and matches the registry policy's kinds.
SCENARIO_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
DEMO_CATALOGUE = "scenarios_demo.toml"
MAX_TIERS = 8

Disclosure = Literal["threshold", "band", "score"]
CREDIT_STANDING, DOMESTIC_SERVICE = "credit_standing", "domestic_service"
CredentialType = Literal["credit_standing", "domestic_service"]
# what a domestic-service tier may require true, and a scenario may be shown
_DOMESTIC_BOOLEANS = re.compile(
    r"^(background_check_passed|no_upheld_complaints_12m|rating_at_least\.[1-5])$"
)
_DOMESTIC_SHOWN = re.compile(
    r"^(background_check_date|certified_since|training_certificates|rating_count)$"
)


class CatalogueError(ValueError):
    """A catalogue that can't be used: ``field`` names where (dotted path), ``message`` why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Tier:
    """One benefit level: granted from ``local_threshold`` (local scale) up."""

    name: str
    local_threshold: float
    benefit: str
    benefit_zh: str | None = None
    credit_limit_cny: int | None = None
    requires: tuple[str, ...] = ()  # a domestic-service tier's claims, each true


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario: its kind (the stable id), names, what it must see, its tiers (rising)."""

    kind: str
    name_zh: str
    name_en: str
    discloses: Disclosure
    tiers: tuple[Tier, ...]
    credential: str = CREDIT_STANDING
    shows: tuple[str, ...] = ()  # a domestic-service scenario's claims seen besides


@dataclass(frozen=True, slots=True)
class ScenarioCatalogue:
    scenarios: Mapping[str, Scenario]
    source: str
    version: str | None = None

    def get(self, kind: str) -> Scenario | None:
        return self.scenarios.get(kind)


# --- strict loading ----------------------------------------------------------------------


class _TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(min_length=1, max_length=64)]
    local_threshold: float | None = None
    requires: Annotated[list[str], Field(min_length=1, max_length=8)] | None = None
    benefit: Annotated[str, Field(min_length=1, max_length=500)]
    benefit_zh: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    credit_limit_cny: Annotated[int, Field(ge=0)] | None = None

    @field_validator("local_threshold")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
            raise ValueError("must be a finite number on the city's local scale")
        return value

    @field_validator("requires")
    @classmethod
    def _booleans(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not _DOMESTIC_BOOLEANS.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not a claim a tier may require: background_check_passed, "
                    "no_upheld_complaints_12m or rating_at_least.<1-5>"
                )
        if value is not None and len(set(value)) != len(value):
            raise ValueError("names a claim twice")
        return value


class _ScenarioIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name_zh: Annotated[str, Field(min_length=1, max_length=100)]
    name_en: Annotated[str, Field(min_length=1, max_length=100)]
    discloses: Disclosure = "threshold"
    credential: CredentialType = "credit_standing"
    shows: Annotated[list[str], Field(max_length=4)] = []
    tiers: Annotated[list[_TierIn], Field(min_length=1, max_length=MAX_TIERS)]


class _CatalogueIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    scenarios: Annotated[dict[str, _ScenarioIn], Field(min_length=1)]


def _field_of(location: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in location)


def parse_catalogue(data: Mapping[str, Any], *, source: str = "<data>") -> ScenarioCatalogue:
    """A catalogue from its parsed TOML. Raises :class:`CatalogueError` naming the field:
    unknown keys, missing or mistyped values, a kind that is not ``lower_snake_case`` of
    at most 32 characters, tiers whose local thresholds or names do not rise strictly."""
    try:
        parsed = _CatalogueIn.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown key (no such field)"
        raise CatalogueError(_field_of(first["loc"]), message) from None
    scenarios: dict[str, Scenario] = {}
    for kind, raw in parsed.scenarios.items():
        where = f"scenarios.{kind}"
        if not re.fullmatch(SCENARIO_PATTERN, kind):
            raise CatalogueError(
                where, "a scenario kind is lower_snake_case, at most 32 characters"
            )
        _check_credential(where, raw)
        tiers = tuple(
            Tier(
                name=t.name,
                local_threshold=float(t.local_threshold or 0),
                benefit=t.benefit,
                benefit_zh=t.benefit_zh,
                credit_limit_cny=t.credit_limit_cny,
                requires=tuple(t.requires or ()),
            )
            for t in raw.tiers
        )
        for index, (lower, upper) in enumerate(itertools.pairwise(tiers), start=1):
            if raw.credential == DOMESTIC_SERVICE:
                if not set(lower.requires) < set(upper.requires):
                    raise CatalogueError(
                        f"{where}.tiers.{index}.requires",
                        "tiers are listed lowest first, each requiring more than the one before",
                    )
                continue
            if upper.local_threshold <= lower.local_threshold:
                raise CatalogueError(
                    f"{where}.tiers.{index}.local_threshold",
                    "tiers are listed lowest first, each threshold above the one before",
                )
        names = [tier.name for tier in tiers]
        if len(set(names)) != len(names):
            raise CatalogueError(f"{where}.tiers", "tier names must differ")
        scenarios[kind] = Scenario(
            kind=kind,
            name_zh=raw.name_zh,
            name_en=raw.name_en,
            discloses=raw.discloses,
            tiers=tiers,
            credential=raw.credential,
            shows=tuple(raw.shows),
        )
    return ScenarioCatalogue(scenarios=scenarios, source=source, version=parsed.version)


def _check_credential(where: str, raw: _ScenarioIn) -> None:
    """A credit scenario's tiers name local thresholds; a domestic-service one's the
    claims they require (and it sees no band or score)."""
    domestic = raw.credential == DOMESTIC_SERVICE
    for index, tier in enumerate(raw.tiers):
        if domestic and (tier.requires is None or tier.local_threshold is not None):
            raise CatalogueError(
                f"{where}.tiers.{index}.requires",
                "a domestic_service tier lists the claims it requires, not a local_threshold",
            )
        if not domestic and (tier.local_threshold is None or tier.requires is not None):
            raise CatalogueError(
                f"{where}.tiers.{index}.local_threshold",
                "a credit_standing tier has a local_threshold (requires is for domestic_service)",
            )
    if domestic and raw.discloses != "threshold":
        raise CatalogueError(
            f"{where}.discloses", "a domestic_service scenario sees no band or score"
        )
    if not domestic and raw.shows:
        raise CatalogueError(f"{where}.shows", "only a domestic_service scenario shows claims")
    for index, name in enumerate(raw.shows):
        if not _DOMESTIC_SHOWN.fullmatch(name):
            raise CatalogueError(
                f"{where}.shows.{index}",
                "one of background_check_date, certified_since, training_certificates, "
                "rating_count",
            )


def load_catalogue(path: Path | None = None) -> ScenarioCatalogue:
    """The catalogue from the TOML file ``path``, or the demo catalogue shipped with the
    node. Raises :class:`CatalogueError` (the file can't be read, is not TOML, or any
    check of :func:`parse_catalogue` fails)."""
    if path is None:
        where = f"node/{DEMO_CATALOGUE}"
        try:
            text = resources.files("node").joinpath(DEMO_CATALOGUE).read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogueError("", f"the demo catalogue can't be read: {exc}") from exc
    else:
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogueError("", f"{path} can't be read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError("", f"{where} is not valid TOML: {exc}") from exc
    try:
        return parse_catalogue(data, source=where)
    except CatalogueError as exc:
        raise CatalogueError(exc.field, f"{exc.message} (in {where})") from None


# --- the rule ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requirement:
    """What one tier needs on the alliance scale, and the disclosure that proves it:
    ``score_at_least.<alliance_min>`` when ``alliance_min`` is a published threshold,
    else ``alliance_score``."""

    tier: Tier
    alliance_min: int
    disclose: str


def _disclosure_for(alliance_min: int, thresholds: Sequence[int]) -> tuple[int, str]:
    """Round ``alliance_min`` up to the nearest published threshold, or keep it and ask
    for the score itself when none is that high."""
    above = [t for t in thresholds if t >= alliance_min]
    if above:
        rounded = min(above)
        return rounded, f"score_at_least.{rounded}"
    return alliance_min, "alliance_score"


def requirements(
    scenario: Scenario,
    *,
    thresholds: Sequence[int],
    policy_min: int | None,
    to_alliance: Callable[[float], int],
) -> tuple[Requirement, ...]:
    """Each tier's alliance minimum, lowest tier first (module docstring for the rule).

    ``thresholds`` are the registry scale's published thresholds, ``policy_min`` the
    registry policy's ``min_alliance_score`` for this kind (None: not set), and
    ``to_alliance`` the city's mapping of a local score onto the alliance scale."""
    published = sorted(int(t) for t in thresholds)
    result: list[Requirement] = []
    floor: int | None = None
    for index, tier in enumerate(scenario.tiers):
        if index == 0 and policy_min is not None:
            needed, path = _disclosure_for(policy_min, published)
        else:
            needed, path = _disclosure_for(to_alliance(tier.local_threshold), published)
        if floor is not None and needed < floor:
            needed, path = floor, result[0].disclose
        if floor is None:
            floor = needed
        result.append(Requirement(tier=tier, alliance_min=needed, disclose=path))
    return tuple(result)


def disclosures_for(scenario: Scenario, reqs: Sequence[Requirement]) -> list[str]:
    """What a presentation may disclose to decide ``scenario``: each tier's disclosure
    (deduplicated, lowest tier first; the holder shows those she chooses, usually one
    boolean), plus ``band`` when the scenario must see it. A scenario that must see the
    score asks for ``alliance_score`` alone: it decides every tier."""
    wanted: list[str] = []
    for req in reqs:
        if req.disclose not in wanted:
            wanted.append(req.disclose)
    if scenario.discloses == "band":
        wanted.append("band")
    if scenario.discloses == "score":
        wanted = [w for w in wanted if not w.startswith("score_at_least.")]
        if "alliance_score" not in wanted:
            wanted.insert(0, "alliance_score")
    return wanted


def domestic_requirements(scenario: Scenario) -> tuple[Requirement, ...]:
    """A domestic-service scenario's tiers as requirements, lowest first: no alliance
    score (``alliance_min`` 0), the claims each requires true as ``disclose``
    (comma-separated)."""
    return tuple(
        Requirement(tier=tier, alliance_min=0, disclose=",".join(tier.requires))
        for tier in scenario.tiers
    )


def domestic_disclosures(scenario: Scenario) -> list[str]:
    """Every claim a domestic-service scenario may ask for: its tiers' (lowest first,
    each once), then what it shows."""
    wanted: list[str] = []
    for tier in scenario.tiers:
        wanted += [name for name in tier.requires if name not in wanted]
    return wanted + [name for name in scenario.shows if name not in wanted]
