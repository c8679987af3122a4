"""The simulated cities' scoring models list the kinds each department pushes (issue 17,
gap A) as the simulation pushes them: every kind from its department
(simulator/population.py DEPARTMENTS), a repair from the department of the record it
repairs; nothing else. A department's row of another kind would be refused
``kind_not_allowed`` and `ccx simulate` would stop on it."""

from __future__ import annotations

import pytest

from node.credentials import load_credential_rules
from node.scoring import load_model
from simulator import domestic
from simulator.population import CITIES, REPAIR_KIND


@pytest.mark.parametrize("city", sorted(CITIES))
def test_each_citys_model_lets_each_department_push_what_the_simulation_pushes(city: str) -> None:
    profile = CITIES[city]
    model = load_model(profile.model)
    assert model.departments is not None
    pushes: dict[str, set[str]] = {}
    for kind in profile.rates:
        department = profile.departments[kind]
        pushes.setdefault(department, set()).add(kind)
        if model.kinds[kind].points < 0:  # repairable: its department pushes the repair
            pushes[department].add(REPAIR_KIND)
    rules = load_credential_rules(profile.model, model)
    if rules is not None:  # issue 18: the association pushes its housekeepers' records
        pushes[domestic.DEPARTMENT] = set(rules.all_kinds)
    assert {name: set(kinds) for name, kinds in model.departments.items()} == pushes
    assert not model.may_push("services", "volunteering")  # the kiosks' clients push nothing
