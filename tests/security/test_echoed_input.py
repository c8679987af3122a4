"""Validation errors that echo the input (docs/SECURITY.md section 9; issue 19, item 9):
``{"kind": "SECRET-TOKEN-abc123"}`` came back in the message ("Input tag
'SECRET-TOKEN-abc123' found using 'kind' ..."), and an unknown field's name came back in
``details.field``. An error names the field and the rule, never what was sent."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.node.pushing import admin_settings, credentials

SECRET = "SECRET-TOKEN-abc123"


@pytest.mark.parametrize(
    "body",
    [
        {"kind": SECRET},
        {"kind": "open_score", SECRET: 1},
        {"kind": "share_alliance", "recipients": [SECRET], "purpose": "p"},
        {"kind": "share_alliance", "recipients": ["alliance"], "purpose": 12345, SECRET: SECRET},
        [SECRET],
    ],
)
def test_a_validation_error_names_the_field_not_the_value(client: TestClient, body: Any) -> None:
    token = client.post("/dev-idp/token", json={"subject": "r-1"}).json()["access_token"]
    response = client.post(
        "/v1/me/consents", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert SECRET not in response.text
    assert "SECRET" not in response.text


def test_a_discriminator_error_names_the_allowed_values(client: TestClient) -> None:
    token = client.post("/dev-idp/token", json={"subject": "r-1"}).json()["access_token"]
    response = client.post(
        "/v1/me/consents", json={"kind": SECRET}, headers={"Authorization": f"Bearer {token}"}
    )
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "kind"
    assert "open_score" in detail["problem"]
    assert "share_alliance" in detail["problem"]


def test_a_refused_record_row_names_the_field_not_the_value(make_client: Any) -> None:
    client = make_client(**admin_settings())
    row = {
        "record_id": "t-1",
        "resident_id": "r-1",
        "kind": "tax_arrears",
        "occurred_at": 1,
        SECRET: "x",
    }
    response = client.post(
        "/v1/records",
        json={"records": [row, {**row, "kind": 7}]},
        headers=credentials(client, "tax"),
    )
    assert response.status_code == 200, response.text
    assert [r["code"] for r in response.json()["results"]] == ["invalid_record"] * 2
    assert "SECRET" not in response.text
