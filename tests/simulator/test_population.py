"""The simulated cities (simulator/cities/*.toml) and their residents' records
(simulator/population.py): reproducible, valid as departments push them, repairs that
the node accepts, scores spread over each city's own scale, and cities that differ."""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from mappings import LocalScale
from node.app import create_app, initialize_node
from node.models import Score
from node.scoring import DAY, RecordInput, ScoringModel, load_model
from node.services.records import RESIDENT_ID_PATTERN, RecordIn
from node.settings import Settings
from simulator.population import (
    CITIES,
    DEPARTMENTS,
    HISTORY_DAYS,
    Population,
    generate,
    profile,
)
from tests.conftest import NOW
from tests.node.pushing import admin_settings, credentials, state_of

ROOT = Path(__file__).parent.parent.parent
TABLES = ROOT / "mappings" / "tables"


@cache
def population(city: str, residents: int, seed: int = 7) -> Population:
    return generate(profile(city), residents, seed=seed, now=NOW)


@cache
def model(city: str) -> ScoringModel:
    return load_model(profile(city).model)


def all_rows(pop: Population, size: int = 500) -> list[tuple[int, str, dict[str, Any]]]:
    """(batch number, department, row) for every row, in push order."""
    return [
        (n, department, row)
        for n, (department, rows) in enumerate(pop.batches(size))
        for row in rows
    ]


# --- the cities -----------------------------------------------------------------------


def test_the_cities_come_in_the_alliance_order_and_profile_finds_each() -> None:
    assert list(CITIES) == ["xiamen", "fuzhou", "hangzhou", "quanzhou", "zhangzhou"]
    assert [p.prefix for p in CITIES.values()] == ["xm", "fz", "hz", "qz", "zz"]
    for city, p in CITIES.items():
        assert profile(city) is p


def test_an_unknown_city_is_a_value_error_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'shanghai'.*xiamen, fuzhou"):
        profile("shanghai")


@pytest.mark.parametrize("city", list(CITIES))
def test_each_city_model_loads_with_the_scale_of_its_summary(city: str) -> None:
    summary = json.loads((TABLES / f"{city}.summary.json").read_text(encoding="utf-8"))
    scale = model(city).scale
    assert scale == LocalScale.from_json(summary["local_scale"])
    assert scale.to_json() == {"step": 1, **summary["local_scale"]}
    assert scale.name == profile(city).name


def test_the_cities_share_the_demo_kinds_but_not_their_versions() -> None:
    demo = load_model()
    for city in CITIES:
        assert model(city).kinds == demo.kinds, city
    versions = [model(city).version for city in CITIES]
    assert len(set(versions)) == len(versions)


def test_the_model_files_ship_with_the_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'simulator = ["cities/*.toml"]' in pyproject
    for city, p in CITIES.items():  # so that cities/*.toml covers them
        assert p.model == ROOT / "simulator" / "cities" / f"{city}.toml"
        assert p.model.is_file()


# --- generating ---------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_population_and_another_seed_another() -> None:
    first = generate(profile("quanzhou"), 500, seed=3, now=NOW)
    again = generate(profile("quanzhou"), 500, seed=3, now=NOW)
    other = generate(profile("quanzhou"), 500, seed=4, now=NOW)
    assert list(first.batches(100)) == list(again.batches(100))
    assert list(first.batches(100)) != list(other.batches(100))
    assert not np.array_equal(
        first.expected_scores(model("quanzhou")), other.expected_scores(model("quanzhou"))
    )


def test_two_cities_drawn_with_one_seed_do_not_share_their_draws() -> None:
    xiamen, fuzhou = population("xiamen", 2000), population("fuzhou", 2000)
    # the same seed must not give the same record times (the city is in the seed)
    assert not np.array_equal(np.sort(xiamen.occurred_at)[:100], np.sort(fuzhou.occurred_at)[:100])


def test_resident_and_record_ids_are_unique_and_well_formed() -> None:
    pop = population("hangzhou", 3000)
    assert pop.resident_ids[:2] == ["hz-r0000000", "hz-r0000001"]
    assert len(set(pop.resident_ids)) == 3000
    assert all(re.fullmatch(RESIDENT_ID_PATTERN, r) for r in pop.resident_ids)
    record_ids = [row["record_id"] for _, _, row in all_rows(pop)]
    assert len(record_ids) == pop.records
    assert len(set(record_ids)) == len(record_ids)
    assert all(re.fullmatch(r"hz-\d{8}", r) for r in record_ids)


@pytest.mark.parametrize("city", list(CITIES))
def test_every_row_is_a_record_the_node_reads(city: str) -> None:
    pop, city_model = population(city, 1000), model(city)
    seen: Counter[str] = Counter()
    for _, _, row in all_rows(pop):
        assert None not in row.values()
        record = RecordIn.model_validate(row)
        kind = city_model.kinds[record.kind]
        assert (record.points is not None) == kind.points_overridable
        assert (record.repairs is not None) == kind.repair
        assert NOW - HISTORY_DAYS * DAY <= record.occurred_at <= NOW
        seen[record.kind] += 1
    # every scored kind, repairs among them; the domestic-service credential's kinds
    # (scored = false) come from simulator/domestic.py, for housekeepers only (issue 18)
    assert set(seen) == {name for name, kind in city_model.kinds.items() if kind.scored}
    assert json.loads(json.dumps(next(pop.batches(10))[1])) == next(pop.batches(10))[1]


def test_volunteering_carries_its_hours_as_points() -> None:
    hours = [
        row["points"]
        for _, _, row in all_rows(population("xiamen", 1000))
        if row["kind"] == "volunteering"
    ]
    assert hours
    assert min(hours) >= 4
    assert max(hours) <= 20
    assert len(set(hours)) > 10
    assert all(isinstance(h, float) for h in hours)


def test_some_records_are_too_old_to_count_any_more() -> None:
    pop, city_model = population("xiamen", 1000), model("xiamen")
    minor = [
        row["occurred_at"]
        for _, _, row in all_rows(pop)
        if city_model.kinds[row["kind"]].severity == "minor"
        and not city_model.kinds[row["kind"]].repair
    ]
    expired = sum(t + city_model.disclosure_days["minor"] * DAY <= NOW for t in minor)
    assert 0.4 < expired / len(minor) < 0.9


@pytest.mark.parametrize("city", list(CITIES))
def test_a_repair_names_an_earlier_negative_record_of_hers_from_its_department(
    city: str,
) -> None:
    city_model = model(city)
    seen: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    repaired: Counter[tuple[str, str]] = Counter()
    for batch, department, row in all_rows(population(city, 1000), size=64):
        seen[department, row["record_id"]] = (batch, row)
        if "repairs" not in row:
            continue
        key = (department, row["repairs"])
        assert key in seen, f"{row} comes before the record it repairs"
        original_batch, original = seen[key]
        assert original_batch <= batch
        assert original["resident_id"] == row["resident_id"]
        assert original["occurred_at"] < row["occurred_at"]
        assert (
            city_model.points_of(RecordInput("", original["kind"], 0, original.get("points"))) < 0
        )
        repaired[key] += 1
    assert repaired, "no repairs at all"
    assert max(repaired.values()) == 1  # a record is repaired once (already_repaired)


def test_batches_hold_at_most_their_size_of_one_department() -> None:
    pop = population("fuzhou", 2000)
    sizes: Counter[int] = Counter()
    departments: list[str] = []
    for department, rows in pop.batches(77):
        assert 1 <= len(rows) <= 77
        sizes[len(rows)] += 1
        if not departments or departments[-1] != department:
            departments.append(department)
        for row in rows:
            if row["kind"] in DEPARTMENTS:
                assert DEPARTMENTS[row["kind"]] == department
    assert len(departments) == len(set(departments)) == len(set(DEPARTMENTS.values()))
    assert sizes[77] > 0
    assert sum(n * count for n, count in sizes.items()) == pop.records
    with pytest.raises(ValueError, match="at least one"):
        next(pop.batches(0))


def test_generate_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="residents"):
        generate(profile("xiamen"), -1, seed=0, now=NOW)
    with pytest.raises(ValueError, match="after the epoch"):
        generate(profile("xiamen"), 10, seed=0, now=HISTORY_DAYS * DAY - 1)


def test_no_residents_make_an_empty_population() -> None:
    pop = generate(profile("zhangzhou"), 0, seed=0, now=NOW)
    assert (pop.records, pop.resident_ids, list(pop.batches(10))) == (0, [], [])
    assert pop.expected_scores(model("zhangzhou")).shape == (0,)


# --- scores -------------------------------------------------------------------------------


def scores_one_by_one(pop: Population, city_model: ScoringModel) -> list[float]:
    """Each resident scored by ScoringModel.score from her pushed rows, linked as the
    node links them (a repair to the record of that id in its own department)."""
    inputs: dict[str, list[RecordInput]] = {r: [] for r in pop.resident_ids}
    plain: dict[tuple[str, str], RecordInput] = {}
    repairs: list[tuple[str, dict[str, Any]]] = []
    for _, department, row in all_rows(pop):
        if "repairs" in row:
            repairs.append((department, row))
            continue
        record = RecordInput(
            f"{department}/{row['record_id']}", row["kind"], row["occurred_at"], row.get("points")
        )
        plain[department, row["record_id"]] = record
        inputs[row["resident_id"]].append(record)
    for department, row in repairs:
        inputs[row["resident_id"]].append(
            RecordInput(
                f"{department}/{row['record_id']}",
                row["kind"],
                row["occurred_at"],
                repairs=plain[department, row["repairs"]],
            )
        )
    return [city_model.score(inputs[r], NOW).score for r in pop.resident_ids]


@pytest.mark.parametrize("city", list(CITIES))
def test_expected_scores_are_the_model_scoring_each_resident_from_her_rows(city: str) -> None:
    pop, city_model = population(city, 1000), model(city)
    assert pop.expected_scores(city_model).tolist() == scores_one_by_one(pop, city_model)


@pytest.mark.parametrize("city", list(CITIES))
def test_scores_spread_over_the_city_scale(city: str) -> None:
    city_model = model(city)
    scores = population(city, 5000).expected_scores(city_model)
    assert scores.min() >= city_model.scale.min
    assert scores.max() <= city_model.scale.max
    values, counts = np.unique(scores, return_counts=True)
    if city_model.scale.labels is not None:
        assert len(values) >= 4, dict(zip(values, counts, strict=True))
        assert counts.max() / len(scores) <= 0.6
    else:
        assert counts.max() / len(scores) <= 0.4
        assert len(values) >= 20


def test_the_cities_score_distributions_differ() -> None:
    positions = {}
    for city in CITIES:
        scale = model(city).scale
        scores = population(city, 5000).expected_scores(model(city))
        positions[city] = (np.median(scores) - scale.min) / (scale.max - scale.min)
    assert max(positions.values()) - min(positions.values()) > 0.05, positions
    assert all(0.4 < p < 0.8 for p in positions.values()), positions


def test_the_cities_differ_in_the_records_their_residents_collect() -> None:
    def per_resident(city: str, *kinds: str) -> float:
        pop = population(city, 5000)
        wanted = [pop.kinds.index(k) for k in kinds]
        return float(np.isin(pop.kind_idx, wanted).sum()) / len(pop.resident_ids)

    def highest(*kinds: str) -> str:
        return max(CITIES, key=lambda city: per_resident(city, *kinds))

    assert highest("volunteering", "honour") == "xiamen"
    assert highest("late_utility_payment", "tax_arrears") == "fuzhou"
    assert highest("pay_later_on_time", "pay_later_default") == "hangzhou"
    assert highest("unfulfilled_judgment") == "quanzhou"
    assert highest("repair_completed") == "quanzhou"
    assert min(CITIES, key=lambda city: population(city, 5000).records) == "zhangzhou"


# --- through a node ---------------------------------------------------------------------


@pytest.mark.parametrize("city", ["hangzhou", "zhangzhou"])
def test_a_node_with_the_city_model_stores_every_row_and_scores_as_expected(
    city: str, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "node",
        node_id=f"http://{city}.ccx.test",
        city=city,
        dev_idp=True,
        scheduler=False,
        keyring_passphrase="a passphrase for tests only",  # type: ignore[arg-type]
        scoring_model=profile(city).model,
        **admin_settings(),
    )
    initialize_node(settings, now=NOW)
    pop = population(city, 100)
    assert any("repairs" in row for _, _, row in all_rows(pop))
    with TestClient(create_app(settings, now=lambda: NOW)) as node:
        headers = {d: credentials(node, d) for d in dict.fromkeys(DEPARTMENTS.values())}
        for department, rows in pop.batches(200):
            response = node.post("/v1/records", json={"records": rows}, headers=headers[department])
            assert response.status_code == 200, response.text
            assert response.json()["stored"] == len(rows), response.json()
        with Session(state_of(node).engine) as session:
            stored = {s.resident_id: s.score for s in session.exec(select(Score))}
    expected = pop.expected_scores(model(city))
    scored = [stored.get(r, model(city).base) for r in pop.resident_ids]  # no record: no row
    assert scored == expected.tolist()
