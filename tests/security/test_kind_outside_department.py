"""A department pushing a kind that is not its own (docs/SECURITY.md, "Compromised
department token"; issue 17, gap A).

A city's scoring model lists the kinds each department may push
(``[departments.<name>] kinds``; here Xiamen's simulated model: the tax bureau pushes
tax arrears and their repairs). A tax token, stolen or misused, that pushes an honour
for a friend has that row refused ``kind_not_allowed``; the batch's other rows are
kept, as with every refusal of one row."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from simulator.population import CITIES
from tests.node.pushing import admin_settings, credentials, record, score_of, stored_records


def test_a_tax_department_pushing_an_honour_is_refused_and_its_other_rows_kept(
    make_client: Any,
) -> None:
    node: TestClient = make_client(**admin_settings(scoring_model=CITIES["xiamen"].model))
    tax = credentials(node, "tax")
    rows = [
        record("t-1", resident_id="alice"),
        record("h-1", resident_id="friend", kind="honour"),
        record("t-2", resident_id="bob"),
    ]
    response = node.post("/v1/records", json={"records": rows}, headers=tax)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["stored"], body["refused"]) == (2, 1)
    refused = body["results"][1]
    assert (refused["status"], refused["code"]) == ("refused", "kind_not_allowed")
    assert refused["message"].startswith("department 'tax' may not push records of kind 'honour'")
    assert [(r.record_id, r.kind) for r in stored_records(node)] == [
        ("t-1", "tax_arrears"),
        ("t-2", "tax_arrears"),
    ]
    assert score_of(node, "friend") is None  # no honour, not even a score row
    alice = score_of(node, "alice")
    assert alice is not None
    assert alice.by_dimension["dishonesty"] == -80
    assert alice.by_dimension["positive"] == 0
