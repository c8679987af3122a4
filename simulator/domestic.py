"""Housekeepers and domestic-service checks in the simulation (issue 18,
docs/CREDENTIALS.md).

In every city whose scoring model has a ``[credentials.domestic_service]`` table, a
share of the residents who hold a credit standing are housekeepers: the city's
domestic-service association (department ``domestic-services``) pushes their background
checks, training certificates, clients' ratings and upheld complaints; each consents to
share the domestic-service credential (``share_domestic_service``) and takes it through
an offer. During the visits a share of them meet an agency hiring or a family checking
them in any member city: the same OpenID4VP flow, the wallet answering with the
domestic-service credential. These checks are kept apart from the scenario visits (they
have no score, so no fairness measure). The report's section: :func:`report_lines`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import protocol as P
from simulator.api import Api
from simulator.holders import Holder, fetch_credential, login
from simulator.observations import Visit

__all__ = [
    "CONFIGURATION",
    "DEPARTMENT",
    "HOUSEKEEPER_SHARE",
    "SCENARIOS",
    "VISIT_SHARE",
    "available_claims",
    "enrol",
    "records",
    "report_lines",
]

DEPARTMENT = "domestic-services"
CONFIGURATION = "ccx_domestic_service"
SCENARIOS = ("domestic_agency_hiring", "domestic_family_check")
HOUSEKEEPER_SHARE = 0.15  # of a city's holders, where its model feeds the credential
VISIT_SHARE = 0.1  # chance a worker's next step is a housekeeper's check, not a visit
PURPOSE = "家政机构与雇主核验 / agencies and families checking my domestic-service record"
DAY = 86400


def records(
    residents: Sequence[str], rng: random.Random, *, now: int, prefix: str
) -> list[dict[str, Any]]:
    """The association's rows for ``residents`` (shaped like a push's ``records``): a
    background check each (one in ten failed; some checked twice), zero to three
    training certificates, zero to eight ratings of 1..5 stars (most 4 or 5), and for
    one in eight an upheld complaint within the last two years."""
    rows: list[dict[str, Any]] = []

    def add(resident: str, kind: str, days_ago: int, points: float | None = None) -> None:
        row: dict[str, Any] = {"record_id": f"{prefix}-dom-{len(rows) + 1:07d}",
                               "resident_id": resident, "kind": kind,
                               "occurred_at": now - days_ago * DAY}  # fmt: skip
        if points is not None:
            row["points"] = points
        rows.append(row)

    for resident in residents:
        for _ in range(rng.choice((1, 1, 1, 2))):
            passed = rng.random() >= 0.1
            add(resident, "background_check_passed" if passed else "background_check_failed",
                rng.randint(10, 900))  # fmt: skip
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            add(resident, "training_certificate", rng.randint(30, 1500))
        for _ in range(rng.randint(0, 8)):
            stars = rng.choices((1, 2, 3, 4, 5), weights=(2, 3, 10, 35, 50))[0]
            add(resident, "service_rating", rng.randint(1, 700), float(stars))
        if rng.random() < 1 / 8:
            add(resident, "complaint_upheld", rng.randint(1, 730))
    return rows


async def enrol(api: Api, holder: Holder) -> None:
    """She consents to share the credential with every member and takes it through an
    offer, bound to her wallet key: kept in ``holder.extra["domestic"]``."""
    token = await login(api, holder.node, holder.resident)
    await api.ok(
        "POST", holder.node, "/v1/me/consents", token=token,
        body={"kind": "share_domestic_service", "recipients": ["alliance"], "purpose": PURPOSE},
        label="POST /v1/me/consents",
    )  # fmt: skip
    holder.extra["domestic"] = await fetch_credential(
        api, holder.node, token, holder.key, CONFIGURATION
    )


def available_claims(credential: str) -> dict[str, Any]:
    """Her domestic-service credential's disclosable claims by the names a DCQL query's
    paths make (``background_check_passed``, ``rating_at_least.4``, ...)."""
    claims: dict[str, Any] = {}
    for disclosure in credential.split("~")[1:]:
        if not disclosure:
            continue
        decoded = json.loads(P.b64url_decode(disclosure))
        if len(decoded) == 3:
            _, name, value = decoded
            claims[f"rating_at_least.{name}" if name.isdigit() else name] = value
    return claims


def report_lines(checks: Sequence[Visit], cities: Mapping[str, bool]) -> list[str]:
    """The report's section: the checks by scenario and outcome, locals and visitors,
    and the codes of those not granted. ``cities``: whether each city's model feeds the
    credential (its housekeepers took one)."""
    lines = ["## Domestic-service checks", ""]
    issuing = [city for city, feeds in cities.items() if feeds]
    lines += [
        "Housekeepers of " + (", ".join(issuing) or "no city") + " hold a domestic-service "
        "(家政) credential beside their credit standing; agencies hiring and families "
        "checking them decide on it through the same OpenID4VP flow in every member city "
        "(docs/CREDENTIALS.md). No score is disclosed, so these checks are not part of the "
        "fairness measure above.",
        "",
    ]
    if not checks:
        return [*lines, "No domestic-service checks in this run.", ""]
    rows = []
    for scenario in sorted({c.scenario for c in checks}):
        mine = [c for c in checks if c.scenario == scenario]
        outcomes = Counter(c.outcome for c in mine)
        tiers = Counter(c.tier for c in mine if c.outcome == "granted")
        rows.append(
            f"| {scenario} | {len(mine):,} | {sum(1 for c in mine if not c.local):,} | "
            f"{outcomes['granted']:,} | {outcomes['denied']:,} | "
            f"{outcomes['refused'] + outcomes['unavailable']:,} | "
            + (", ".join(f"{t} {n:,}" for t, n in sorted(tiers.items()) if t) or "-")
            + " |"
        )
    lines += [
        "| scenario | checks | by visitors | granted | denied | refused or unavailable | tiers granted |",
        "|---|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
    ]
    codes = Counter((c.outcome, c.code) for c in checks if c.outcome != "granted" and c.code)
    if codes:
        lines += ["| outcome | code | checks |", "|---|---|---:|"]
        lines += [f"| {o} | {code} | {n:,} |" for (o, code), n in codes.most_common()]
        lines.append("")
    return lines
