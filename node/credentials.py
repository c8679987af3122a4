"""Which records feed which credential (issue 18; docs/CREDENTIALS.md): pure, no I/O
but reading the model file.

A node issues two credential types: the credit standing (its score, through the
mapping table: every scored record kind feeds it) and the domestic-service (家政)
credential, whose claims come from records of the kinds its table in the scoring model
file names::

    [credentials.domestic_service]
    background_check_passed = ["background_check_passed"]
    background_check_failed = ["background_check_failed"]
    training_certificate = ["training_certificate"]
    service_rating = ["service_rating"]     # a record's points are its stars, 1..5
    complaint_upheld = ["complaint_upheld"]
    rating_thresholds = [3, 4, 5]           # rating_at_least.<t>, each disclosable alone
    min_ratings = 3                          # fewer: no rating_at_least is true
    complaint_window_days = 365              # no_upheld_complaints_12m looks this far back
    background_check_valid_days = 1095       # an older passed check no longer counts

Every kind named must be a kind of the model (``[kinds.<name>]``, pushed by the
departments its ``[departments]`` table names); a kind with ``scored = false`` feeds the
credential only, never the score. A model without the table issues the credit standing
alone. The table is read beside :mod:`node.scoring` (which ignores it), so that the two
model kinds (hand-weighted, scorecard) share it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.scoring import DAY, ModelError, ScoringModel, model_data

__all__ = [
    "CREDENTIAL_TYPES",
    "CREDIT_STANDING",
    "DOMESTIC_SERVICE",
    "CredentialRecord",
    "DomesticServiceRules",
    "domestic_claims",
    "load_credential_rules",
    "parse_credential_rules",
]

CREDIT_STANDING = "credit_standing"
DOMESTIC_SERVICE = "domestic_service"
CREDENTIAL_TYPES = (CREDIT_STANDING, DOMESTIC_SERVICE)
_ROLES = (
    "background_check_passed",
    "background_check_failed",
    "training_certificate",
    "service_rating",
    "complaint_upheld",
)
_NUMBERS = {
    "min_ratings": 3,
    "complaint_window_days": 365,
    "background_check_valid_days": 1095,
}
MAX_STARS = 5


@dataclass(frozen=True, slots=True)
class DomesticServiceRules:
    """The ``[credentials.domestic_service]`` table: the record kinds of each role."""

    kinds: Mapping[str, frozenset[str]]  # role -> record kinds
    rating_thresholds: tuple[int, ...]
    min_ratings: int
    complaint_window_days: int
    background_check_valid_days: int

    @property
    def all_kinds(self) -> frozenset[str]:
        return frozenset().union(*self.kinds.values())


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    """What the claims need of a record of hers (a counting one: active or objected)."""

    kind: str
    occurred_at: int
    points: float | None


def parse_credential_rules(
    data: Mapping[str, Any], model: ScoringModel
) -> DomesticServiceRules | None:
    """The domestic-service rules of a parsed model file, None when it has no
    ``[credentials.domestic_service]`` table. Raises :class:`ModelError` naming the key:
    an unknown credential or key, a kind the model lacks or a repair kind, thresholds
    that are not 1..5 stars."""
    tables = data.get("credentials", {})
    if not isinstance(tables, Mapping):
        raise ModelError("credentials must be a table of [credentials.<type>] tables")
    unknown = sorted(set(tables) - {DOMESTIC_SERVICE})
    if unknown:
        raise ModelError(f"credentials.{unknown[0]}: not a credential type this node issues")
    table = tables.get(DOMESTIC_SERVICE)
    if table is None:
        return None
    where = f"credentials.{DOMESTIC_SERVICE}"
    if not isinstance(table, Mapping):
        raise ModelError(f"{where} must be a table")
    extra = sorted(set(table) - set(_ROLES) - set(_NUMBERS) - {"rating_thresholds"})
    if extra:
        raise ModelError(f"{where}.{extra[0]}: unknown key")
    kinds: dict[str, frozenset[str]] = {}
    for role in _ROLES:
        names = table.get(role, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ModelError(f"{where}.{role} must be a list of record kinds")
        for name in names:
            kind = model.kinds.get(name)
            if kind is None:
                raise ModelError(f"{where}.{role}: {name!r} is not a record kind of the model")
            if kind.repair:
                raise ModelError(f"{where}.{role}: {name!r} is a repair kind")
        kinds[role] = frozenset(names)
    if not any(kinds.values()):
        raise ModelError(f"{where} names no record kind")
    thresholds = table.get("rating_thresholds", [3, 4, 5])
    if (
        not isinstance(thresholds, list)
        or not thresholds
        or not all(
            isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= MAX_STARS
            for t in thresholds
        )
        or len(set(thresholds)) != len(thresholds)
    ):
        raise ModelError(f"{where}.rating_thresholds must be distinct whole stars 1..{MAX_STARS}")
    numbers = {}
    for name, default in _NUMBERS.items():
        value = table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"{where}.{name} must be a whole number of at least 1")
        numbers[name] = value
    return DomesticServiceRules(kinds, tuple(sorted(thresholds)), **numbers)


def load_credential_rules(path: Path | None, model: ScoringModel) -> DomesticServiceRules | None:
    """:func:`parse_credential_rules` of the model file at ``path`` (the demo model when
    None), checked against ``model``, the one loaded from it. Raises :class:`ModelError`."""
    data = model_data(path)
    return parse_credential_rules(data, model)


def _date(moment: int) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).date().isoformat()


def domestic_claims(
    rules: DomesticServiceRules, records: Iterable[CredentialRecord], *, now: int
) -> dict[str, Any] | None:
    """Her domestic-service claims at ``now`` from her counting records (docs/CREDENTIALS.md),
    the keys of :class:`protocol.DomesticServiceClaims` they fill; None when she has no
    record of the credential's kinds (she is not a housekeeper this node knows).

    - ``background_check_passed``: her latest check (passed or failed) passed, no more
      than ``background_check_valid_days`` ago; ``background_check_date`` its day;
    - ``certified_since``: the day of her first training certificate, and how many;
    - ``rating``: the mean of her ratings' stars (1..5; others ignored), None below
      ``min_ratings``; ``rating_count`` how many counted;
    - ``no_upheld_complaints_12m``: no upheld complaint within ``complaint_window_days``.
    """
    role_of = {kind: role for role, kinds in rules.kinds.items() for kind in kinds}
    by_role: dict[str, list[CredentialRecord]] = {role: [] for role in _ROLES}
    for record in records:
        role = role_of.get(record.kind)
        if role is not None and record.occurred_at <= now:
            by_role[role].append(record)
    if not any(by_role.values()):
        return None
    checks = sorted(
        by_role["background_check_passed"] + by_role["background_check_failed"],
        key=lambda r: r.occurred_at,
    )
    claims: dict[str, Any] = {"background_check_passed": False}
    if checks:
        latest = checks[-1]
        if (
            latest.kind in rules.kinds["background_check_passed"]
            and now - latest.occurred_at <= rules.background_check_valid_days * DAY
        ):
            claims["background_check_passed"] = True
            claims["background_check_date"] = _date(latest.occurred_at)
    certificates = by_role["training_certificate"]
    claims["training_certificates"] = len(certificates)
    if certificates:
        claims["certified_since"] = _date(min(r.occurred_at for r in certificates))
    stars = [
        float(r.points)
        for r in by_role["service_rating"]
        if r.points is not None and 1 <= r.points <= MAX_STARS
    ]
    claims["rating_count"] = len(stars)
    claims["rating"] = sum(stars) / len(stars) if len(stars) >= rules.min_ratings else None
    claims["rating_thresholds"] = list(rules.rating_thresholds)
    window = now - rules.complaint_window_days * DAY
    claims["no_upheld_complaints_12m"] = not any(
        r.occurred_at > window for r in by_role["complaint_upheld"]
    )
    return claims
