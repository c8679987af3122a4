"""Which kinds a department may push, and who pushed what (issue 17, gaps A and B of
docs/SECURITY.md): the scoring model's ``[departments.<name>] kinds``, each record's
client, one audit entry per push, and withdrawing a client's records since a time.

The demo model's figures (tests/node/test_records.py): base 500, tax_arrears -80,
honour +60, volunteering +8; a repair of a tax arrear restores half (40)."""

from __future__ import annotations

import hashlib
import json
import logging
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from ccx.app import app as ccx
from node.models import AuditEntry, Objection, Record
from node.scoring import ModelError, ScoringModel, load_model
from node.services import audit
from tests.conftest import NOW
from tests.node.pushing import (
    ADMIN,
    DAY,
    admin_settings,
    credentials,
    record,
    score_of,
    state_of,
    stored_records,
)

DEMO = resources.files("node").joinpath("scoring_demo.toml").read_text(encoding="utf-8")
DEPARTMENTS = """
[departments.tax]
kinds = ["tax_arrears", "repair_completed"]

[departments.civil-affairs]
kinds = ["volunteering", "honour"]
"""


def model_with_departments(folder: Path, table: str = DEPARTMENTS) -> Path:
    """The demo model with a departments table, written to ``folder``."""
    path = folder / "model.toml"
    path.write_text(DEMO + table, encoding="utf-8")
    return path


@pytest.fixture
def node(make_client: Any) -> TestClient:
    return make_client(**admin_settings())  # type: ignore[no-any-return]


@pytest.fixture
def listed(make_client: Any, tmp_path: Path) -> TestClient:
    """A node whose model lists its departments' kinds."""
    model = model_with_departments(tmp_path)
    return make_client(**admin_settings(scoring_model=model))  # type: ignore[no-any-return]


def push(node: TestClient, headers: dict[str, str], *rows: dict[str, Any]) -> dict[str, Any]:
    response = node.post("/v1/records", json={"records": list(rows)}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def entries(node: TestClient, action: str) -> list[AuditEntry]:
    with Session(state_of(node).engine) as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.action == action))
        return list(rows.all())


def chain_ok(node: TestClient) -> bool:
    with Session(state_of(node).engine) as session:
        return audit.verify_chain(session).ok


def withdraw(node: TestClient, client_id: str, since: int) -> Any:
    return node.post(
        f"/v1/admin/clients/{client_id}/withdraw-records", json={"since": since}, headers=ADMIN
    )


# --- kinds per department (gap A) ----------------------------------------------------------


def test_a_department_pushes_only_the_kinds_the_model_lists_for_it(listed: TestClient) -> None:
    tax = credentials(listed, "tax")
    body = push(
        listed,
        tax,
        record("t-1"),
        record("h-1", kind="honour"),
        record("fix-1", kind="repair_completed", repairs="t-1"),
    )
    assert [r["status"] for r in body["results"]] == ["stored", "refused", "stored"]
    refused = body["results"][1]
    assert refused["code"] == "kind_not_allowed"
    assert "'tax'" in refused["message"]
    assert "'honour'" in refused["message"]
    assert [r.record_id for r in stored_records(listed)] == ["t-1", "fix-1"]
    score = score_of(listed, "alice")
    assert score is not None
    assert score.score == 460


def test_a_department_the_model_does_not_list_pushes_nothing(listed: TestClient) -> None:
    library = credentials(listed, "library")
    body = push(listed, library, record("v-1", kind="volunteering"), record("t-1"))
    assert [r["code"] for r in body["results"]] == ["kind_not_allowed", "kind_not_allowed"]
    assert stored_records(listed) == []


def test_an_unknown_kind_is_still_unknown_kind(listed: TestClient) -> None:
    body = push(listed, credentials(listed, "tax"), record("p-1", kind="parking_fine"))
    assert body["results"][0]["code"] == "unknown_kind"


def test_the_upload_checks_the_kinds_too(listed: TestClient) -> None:
    csv = (
        "record_id,resident_id,kind,occurred_at\n"
        f"t-1,alice,tax_arrears,{NOW - DAY}\n"
        f"h-1,alice,honour,{NOW - DAY}\n"
    )
    response = listed.post(
        "/v1/records/upload",
        files={"file": ("tax.csv", csv.encode(), "text/csv")},
        headers=credentials(listed, "tax"),
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["status"], r.get("code")) for r in results] == [
        ("stored", None),
        ("refused", "kind_not_allowed"),
    ]


def test_without_a_departments_table_every_department_pushes_every_kind(
    node: TestClient,
) -> None:
    body = push(node, credentials(node, "library"), record("h-1", kind="honour"), record("t-1"))
    assert body["stored"] == 2
    assert state_of(node).model.departments is None  # the demo model's


def test_a_citys_model_without_a_departments_table_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ccx.node"):
        load_model()  # the demo model: its comments say it
    assert caplog.records == []
    (tmp_path / "old.toml").write_text(DEMO, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="ccx.node"):
        model = load_model(tmp_path / "old.toml")
    assert model.departments is None
    [warning] = [json.loads(r.getMessage()) for r in caplog.records]
    assert warning["event"] == "model_without_departments"
    with caplog.at_level(logging.WARNING, logger="ccx.node"):
        load_model(model_with_departments(tmp_path))
    assert len(caplog.records) == 1  # nothing more


@pytest.mark.parametrize(
    ("departments", "says"),
    [
        ({"tax": {"kinds": ["parking_fine"]}}, "departments.tax: unknown kinds ['parking_fine']"),
        ({"tax": {"kinds": []}}, "departments.tax.kinds must be a list of record kinds"),
        ({"tax": {"kinds": "tax_arrears"}}, "departments.tax.kinds must be a list of record"),
        ({"tax": {"kinds": [3]}}, "departments.tax.kinds must be a list of record kinds"),
        ({"tax": {"kinds": ["tax_arrears"], "all": True}}, "departments.tax: only kinds"),
        ({"Tax": {"kinds": ["tax_arrears"]}}, "departments.Tax: a name of a-z"),
        ({"tax": ["tax_arrears"]}, "departments.tax.kinds must be a list of record kinds"),
        (3, "departments must be tables"),
        ({}, "departments must be tables"),
    ],
    ids=[
        "unknown_kind",
        "no_kinds",
        "not_a_list",
        "not_names",
        "other_key",
        "bad_name",
        "list_not_table",
        "number",
        "empty",
    ],
)
def test_a_departments_table_that_does_not_hold_is_refused(departments: Any, says: str) -> None:
    data = tomllib.loads(DEMO)
    data["departments"] = departments
    with pytest.raises(ModelError) as refused:
        ScoringModel.from_dict(data)
    assert str(refused.value).startswith(says)


def test_may_push_reads_the_table() -> None:
    data = tomllib.loads(DEMO + DEPARTMENTS)
    model = ScoringModel.from_dict(data)
    assert model.departments == {
        "tax": frozenset({"tax_arrears", "repair_completed"}),
        "civil-affairs": frozenset({"volunteering", "honour"}),
    }
    assert model.may_push("civil-affairs", "honour")
    assert not model.may_push("civil-affairs", "tax_arrears")
    assert not model.may_push("police", "honour")


# --- who pushed what (gap B) ---------------------------------------------------------------


def test_each_stored_record_keeps_its_client(node: TestClient) -> None:
    feed = credentials(node, "tax", client_id="tax-feed")
    laptop = credentials(node, "tax", client_id="tax-laptop")
    push(node, feed, record("t-1"))
    push(node, laptop, record("t-2"))
    assert [(r.record_id, r.department, r.client_id) for r in stored_records(node)] == [
        ("t-1", "tax", "tax-feed"),
        ("t-2", "tax", "tax-laptop"),
    ]


def test_each_push_is_one_audit_entry_with_its_counts_and_the_digest_of_its_rows(
    node: TestClient, clock: Any
) -> None:
    feed = credentials(node, "tax", client_id="tax-feed")
    push(node, feed, record("t-1"))
    rows = [record("t-1"), record("t-2", resident_id="bob"), record("x-1", kind="parking_fine")]
    clock.now = NOW + 60
    push(node, feed, *rows)
    first, second = entries(node, "records.pushed")
    assert (second.actor, second.subject, second.at) == ("client:tax-feed", "tax", NOW + 60)
    sent = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert second.details == {
        "department": "tax",
        "stored": 1,
        "duplicate": 1,
        "refused": 1,
        "rows_sha256": hashlib.sha256(sent.encode()).hexdigest(),
        "received": "records",
    }
    assert first.details["stored"] == 1
    assert "alice" not in json.dumps(second.details)
    assert "bob" not in json.dumps(second.details)
    assert chain_ok(node)


def test_a_single_record_push_is_digested_as_a_list_of_what_was_sent(node: TestClient) -> None:
    row = record("t-1")
    response = node.post("/v1/records", json=row, headers=credentials(node, "tax"))
    assert response.status_code == 200
    [entry] = entries(node, "records.pushed")
    sent = json.dumps([row], sort_keys=True, separators=(",", ":"))
    assert entry.details["rows_sha256"] == hashlib.sha256(sent.encode()).hexdigest()


def test_an_upload_is_audited_with_the_files_sha256(node: TestClient) -> None:
    data = f"record_id,resident_id,kind,occurred_at\nt-1,alice,tax_arrears,{NOW - DAY}\n".encode()
    response = node.post(
        "/v1/records/upload",
        files={"file": ("tax.csv", data, "text/csv")},
        headers=credentials(node, "tax", client_id="tax-batch"),
    )
    assert response.status_code == 200, response.text
    [entry] = entries(node, "records.pushed")
    assert entry.actor == "client:tax-batch"
    assert entry.details["rows_sha256"] == hashlib.sha256(data).hexdigest()
    assert (entry.details["received"], entry.details["stored"]) == ("file", 1)


def test_a_push_refused_whole_is_not_audited(node: TestClient) -> None:
    too_many = [record(f"t-{i}") for i in range(state_of(node).settings.max_batch_rows + 1)]
    response = node.post(
        "/v1/records", json={"records": too_many}, headers=credentials(node, "tax")
    )
    assert response.status_code == 413
    assert entries(node, "records.pushed") == []


# --- withdrawing a client's records --------------------------------------------------------


def test_withdrawing_a_clients_records_removes_them_and_rescores_those_residents(
    node: TestClient, clock: Any
) -> None:
    feed = credentials(node, "tax", client_id="tax-feed")
    laptop = credentials(node, "tax", client_id="tax-laptop")
    push(node, laptop, record("early", resident_id="carol"))  # before the leak: kept
    clock.now = NOW + 100
    push(node, laptop, record("t-1"), record("t-2", resident_id="bob"))
    push(node, feed, record("t-3", resident_id="bob"))
    clock.now = NOW + 200
    response = withdraw(node, "tax-laptop", NOW + 100)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "client_id": "tax-laptop",
        "since": NOW + 100,
        "withdrawn": 2,
        "residents": 2,
        "objections_closed": 0,
    }
    status = {r.record_id: r.status for r in stored_records(node)}
    assert status == {"early": "active", "t-1": "removed", "t-2": "removed", "t-3": "active"}
    scores = {rid: getattr(score_of(node, rid), "score", None) for rid in ("alice", "bob")}
    assert scores == {"alice": 500, "bob": 420}  # bob keeps tax-feed's arrear
    [entry] = entries(node, "records.withdrawn")
    assert (entry.actor, entry.subject, entry.at) == ("admin", "tax-laptop", NOW + 200)
    assert entry.details == {
        "client": "tax-laptop",
        "since": NOW + 100,
        "withdrawn": 2,
        "residents": 2,
        "objections_closed": 0,
    }
    again = withdraw(node, "tax-laptop", NOW + 100).json()
    assert (again["withdrawn"], again["residents"]) == (0, 0)
    assert chain_ok(node)


def test_withdrawing_upholds_an_open_objection_to_a_withdrawn_record(node: TestClient) -> None:
    push(node, credentials(node, "tax", client_id="tax-laptop"), record("t-1"))
    login = node.post("/dev-idp/token", json={"subject": "alice"}).json()["access_token"]
    objected = node.post(
        "/v1/me/objections",
        json={"record": "tax/t-1", "reason": "never owed"},
        headers={"Authorization": f"Bearer {login}"},
    )
    assert objected.status_code == 201, objected.text
    assert withdraw(node, "tax-laptop", NOW).json()["objections_closed"] == 1
    with Session(state_of(node).engine) as session:
        [objection] = session.exec(select(Objection)).all()
    assert (objection.status, objection.resolved_at) == ("upheld", NOW)
    assert objection.resolution == "withdrawn with the records of client tax-laptop"
    # a later decision can't bring the record back: the objection is no longer open
    decided = node.post(
        f"/v1/admin/objections/{objection.id}/resolve",
        json={"decision": "rejected", "note": "x"},
        headers=ADMIN,
    )
    assert decided.status_code == 409
    assert [r.status for r in stored_records(node)] == ["removed"]


def test_withdrawing_a_client_this_node_never_had_is_not_found(node: TestClient) -> None:
    response = withdraw(node, "nobody", NOW)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "client_not_found"


def test_only_the_admin_withdraws(node: TestClient) -> None:
    tax = credentials(node, "tax", client_id="tax-feed")
    push(node, tax, record("t-1"))
    response = node.post(
        "/v1/admin/clients/tax-feed/withdraw-records", json={"since": 0}, headers=tax
    )
    assert response.status_code == 403
    assert [r.status for r in stored_records(node)] == ["active"]


@pytest.mark.parametrize("since", [-1, "yesterday", 1.5, None])
def test_a_bad_since_is_refused(node: TestClient, since: Any) -> None:
    credentials(node, "tax", client_id="tax-feed")
    assert withdraw(node, "tax-feed", since).status_code == 422


def test_the_command_withdraws_a_clients_records(node: TestClient) -> None:
    settings = state_of(node).settings
    push(node, credentials(node, "tax", client_id="tax-laptop"), record("t-1"))
    result = CliRunner().invoke(
        ccx,
        [
            "node",
            "withdraw-records",
            "--client",
            "tax-laptop",
            "--since",
            "2020-01-01",
            "--data-dir",
            str(settings.data_dir),
            "--now",
            str(NOW + 60),
        ],
        env={"CCX_KEYRING_PASSPHRASE": settings.keyring_passphrase.get_secret_value()},
    )
    assert result.exit_code == 0, result.output
    assert "withdrew 1 records of client tax-laptop" in result.output
    assert "1 residents rescored" in result.output
    assert [r.status for r in stored_records(node)] == ["removed"]
    score = score_of(node, "alice")
    assert score is not None
    assert (score.score, score.computed_at) == (500, NOW + 60)
    [entry] = entries(node, "records.withdrawn")
    assert entry.details["since"] == 1577836800  # 2020-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("client_id", "since", "says"),
    [
        ("tax-laptop", "last week", "error [invalid_time] --since:"),
        ("nobody", "2020-01-01", "error [client_not_found] --client:"),
    ],
)
def test_the_command_says_what_is_wrong_in_one_line(
    node: TestClient, client_id: str, since: str, says: str
) -> None:
    settings = state_of(node).settings
    push(node, credentials(node, "tax", client_id="tax-laptop"), record("t-1"))
    result = CliRunner().invoke(
        ccx,
        [
            "node",
            "withdraw-records",
            "--client",
            client_id,
            "--since",
            since,
            "--data-dir",
            str(settings.data_dir),
            "--now",
            str(NOW),
        ],
        env={"CCX_KEYRING_PASSPHRASE": settings.keyring_passphrase.get_secret_value()},
    )
    assert result.exit_code == 2, result.output
    assert says in result.output
    with Session(state_of(node).engine) as session:
        assert session.exec(select(Record).where(col(Record.status) == "removed")).all() == []
