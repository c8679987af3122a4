"""Departments push records (issue 4): rows checked one by one, idempotent by
(department, record_id), the department from the credentials, a rescore on each record.

The demo model (node/scoring_demo.toml) sets the figures: base 500; tax_arrears -80
(general: 1095 days, repair restores half); late_utility_payment -20 (minor: 365 days,
restores all); unfulfilled_judgment -250 (serious: 1825 days, restores a quarter);
volunteering 8, its points may be overridden.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from node.models import AuditEntry, Client, Resident
from node.services import audit
from node.services import records as records_service
from node.services.clients import CLIENT_MAX_LIFETIME
from tests.conftest import METRICS, NOW
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


@pytest.fixture
def node(make_client: Any) -> TestClient:
    return make_client(**admin_settings())  # type: ignore[no-any-return]


@pytest.fixture
def tax(node: TestClient) -> dict[str, str]:
    return credentials(node, "tax")


def push(node: TestClient, headers: dict[str, str], *rows: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"records": list(rows)} if len(rows) != 1 else rows[0]
    response = node.post("/v1/records", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# --- storing ------------------------------------------------------------------------------


def test_one_record_is_stored_and_rescores_her_at_once(
    node: TestClient, tax: dict[str, str]
) -> None:
    body = push(node, tax, record("t-1"))
    assert body == {
        "stored": 1,
        "duplicate": 0,
        "refused": 0,
        "results": [{"index": 0, "record_id": "t-1", "status": "stored"}],
    }
    [row] = stored_records(node)
    assert (row.department, row.record_id, row.resident_id, row.kind) == (
        "tax",
        "t-1",
        "alice",
        "tax_arrears",
    )
    assert (row.recorded_at, row.status) == (NOW, "active")
    score = score_of(node, "alice")
    assert score is not None
    assert score.score == 420
    assert score.by_dimension["dishonesty"] == -80
    assert (score.computed_at, score.model_version) == (NOW, "demo-2026.11")
    with Session(state_of(node).engine) as session:
        assert session.get(Resident, "alice") is not None


def test_each_new_record_rescores_her(node: TestClient, tax: dict[str, str]) -> None:
    expected = [
        (record("t-1"), 420),
        (record("v-1", kind="volunteering"), 428),
        (record("v-2", kind="volunteering", points=2.5), 431),  # 430.5: half up to the step
        (record("t-2", kind="late_utility_payment"), 411),  # 410.5
    ]
    for row, score in expected:
        push(node, tax, row)
        stored = score_of(node, "alice")
        assert stored is not None
        assert stored.score == score


def test_a_batch_stores_the_good_rows_and_refuses_the_bad_ones_each_with_its_result(
    node: TestClient, tax: dict[str, str]
) -> None:
    body = push(
        node,
        tax,
        record("good-1"),
        record("bad-kind", kind="parking_fine"),
        record("good-2", resident_id="bob", kind="honour"),
        {**record("bad-type"), "occurred_at": "yesterday"},
        record("good-3", resident_id="carol", kind="volunteering", points=4),
    )
    assert [r["status"] for r in body["results"]] == [
        "stored",
        "refused",
        "stored",
        "refused",
        "stored",
    ]
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert body["results"][1]["code"] == "unknown_kind"
    assert body["results"][3]["code"] == "invalid_record"
    assert "occurred_at" in body["results"][3]["message"]
    assert (body["stored"], body["duplicate"], body["refused"]) == (3, 0, 2)
    assert [r.record_id for r in stored_records(node)] == ["good-1", "good-2", "good-3"]
    assert {r: score_of(node, r).score for r in ("alice", "bob", "carol")} == {  # type: ignore[union-attr]
        "alice": 420,
        "bob": 560,
        "carol": 504,
    }


BAD_ROWS = {
    "unknown_kind": (record("x", kind="parking_fine"), "unknown_kind"),
    "resident_id_with_a_space": (record("x", resident_id="ali ce"), "invalid_resident_id"),
    "resident_id_too_long": (record("x", resident_id="a" * 129), "invalid_resident_id"),
    "resident_id_empty": (record("x", resident_id=""), "invalid_resident_id"),
    "occurred_in_the_future": (record("x", occurred_at=NOW + 3600), "occurred_in_future"),
    "repairs_an_unknown_record": (
        record("x", kind="repair_completed", repairs="nothing-here"),
        "unknown_repaired_record",
    ),
    "repairs_a_positive_record": (
        record("x", kind="repair_completed", repairs="base-honour"),
        "not_repairable",
    ),
    "repair_without_repairs": (record("x", kind="repair_completed"), "invalid_repair"),
    "repairs_on_a_plain_record": (record("x", repairs="base-tax"), "invalid_repair"),
    "repairs_department_on_a_plain_record": (
        record("x", repairs_department="tax"),
        "invalid_repair",
    ),
    "repairs_department_malformed": (
        record("x", kind="repair_completed", repairs="base-tax", repairs_department="Tax Office"),
        "invalid_record",
    ),
    "repairs_department_of_no_such_record": (
        record("x", kind="repair_completed", repairs="base-tax", repairs_department="police"),
        "repair_not_allowed",  # another department's, named without the scope: not looked up
    ),
    "record_id_shaped_like_a_token": (record("eyJhbGciOiJ.x.1"), "invalid_record"),
    "repairs_shaped_like_a_token": (
        record("x", kind="repair_completed", repairs="eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig"),
        "invalid_record",
    ),
    "points_where_not_overridable": (record("x", points=-1), "points_not_overridable"),
    "occurred_at_as_text": ({**record("x"), "occurred_at": "1799000000"}, "invalid_record"),
    "occurred_at_as_float": ({**record("x"), "occurred_at": 1799000000.5}, "invalid_record"),
    "occurred_at_as_bool": ({**record("x"), "occurred_at": True}, "invalid_record"),
    "occurred_at_negative": (record("x", occurred_at=-1), "invalid_record"),
    "points_as_text": (record("x", kind="volunteering", points="3"), "invalid_record"),
    "points_out_of_bounds": (record("x", kind="volunteering", points=1e9), "invalid_record"),
    "record_id_as_number": ({**record("x"), "record_id": 7}, "invalid_record"),
    "record_id_with_a_slash": (record("a/b"), "invalid_record"),
    "record_id_too_long": (record("x" * 129), "invalid_record"),
    "note_too_long": (record("x", note="n" * 501), "invalid_record"),
    "unknown_field": ({**record("x"), "department": "police"}, "invalid_record"),
    "missing_field": (
        {"record_id": "x", "resident_id": "alice", "kind": "honour"},
        "invalid_record",
    ),
    "not_an_object": (["x", "alice"], "invalid_record"),
}


@pytest.mark.parametrize(("row", "code"), BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_a_bad_row_is_refused_with_its_code_and_costs_the_good_ones_nothing(
    node: TestClient, tax: dict[str, str], row: Any, code: str
) -> None:
    push(node, tax, record("base-tax"), record("base-honour", kind="honour"))
    body = push(
        node,
        tax,
        record("good-before", resident_id="bob"),
        row,
        record("good-after", resident_id="bob"),
    )
    before, bad, after = body["results"]
    assert (before["status"], after["status"]) == ("stored", "stored")
    assert bad["status"] == "refused"
    assert bad["code"] == code
    assert bad["message"]
    assert "x" not in {r.record_id for r in stored_records(node)}
    assert score_of(node, "bob").score == 340  # type: ignore[union-attr]


def test_a_refusal_never_echoes_the_values_it_refused(
    node: TestClient, tax: dict[str, str]
) -> None:
    body = push(node, tax, record("x", resident_id="secret id 110101199001011234"), record("y"))
    assert "110101199001011234" not in json.dumps(body)


def test_a_record_occurring_within_the_leeway_is_stored_and_counts_once_it_has_occurred(
    node: TestClient, tax: dict[str, str], clock: Any
) -> None:
    body = push(node, tax, record("soon", occurred_at=NOW + records_service.FUTURE_LEEWAY))
    assert body["results"][0]["status"] == "stored"
    assert score_of(node, "alice").score == 500  # type: ignore[union-attr]
    clock.now = NOW + records_service.FUTURE_LEEWAY
    push(node, tax, record("later", kind="honour"))
    assert score_of(node, "alice").score == 480  # type: ignore[union-attr]


# --- files --------------------------------------------------------------------------------

CSV = (
    "record_id,resident_id,kind,occurred_at,points,repairs,note\n"
    f"c-1,alice,tax_arrears,{NOW - DAY},,,arrears 2026\n"
    f"c-2,bob,volunteering,{NOW - DAY},2.5,,\n"
    f"c-3,bob,volunteering,yesterday,,,\n"
    "\n"
    f"c-4,alice,repair_completed,{NOW},,c-1,paid\n"
)


def test_csv_upload_stores_each_line_on_its_own(node: TestClient, tax: dict[str, str]) -> None:
    response = node.post(
        "/v1/records/upload", files={"file": ("records.csv", CSV.encode(), "text/csv")}, headers=tax
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(r["index"], r["record_id"], r["status"]) for r in body["results"]] == [
        (0, "c-1", "stored"),
        (1, "c-2", "stored"),
        (2, "c-3", "refused"),
        (3, "c-4", "stored"),
    ]
    assert body["results"][2]["code"] == "invalid_record"
    rows = {r.record_id: r for r in stored_records(node)}
    assert rows["c-2"].points == 2.5
    assert rows["c-1"].note == "arrears 2026"
    assert rows["c-4"].repairs == "c-1"
    assert score_of(node, "alice").score == 460  # type: ignore[union-attr]  # -80, half restored
    assert score_of(node, "bob").score == 503  # type: ignore[union-attr]  # 502.5 rounds up


def test_csv_with_a_byte_order_mark_and_crlf_is_read(node: TestClient, tax: dict[str, str]) -> None:
    data = ("\ufeff" + CSV.replace("\n", "\r\n")).encode()
    response = node.post(
        "/v1/records/upload",
        files={"file": ("export.CSV", data, "application/octet-stream")},
        headers=tax,
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 3


def test_csv_line_with_too_many_cells_is_refused_alone(
    node: TestClient, tax: dict[str, str]
) -> None:
    data = f"record_id,resident_id,kind,occurred_at\nc-1,alice,honour,{NOW},extra\nc-2,alice,honour,{NOW}\n"
    body = node.post(
        "/v1/records/upload", files={"file": ("r.csv", data.encode(), "text/csv")}, headers=tax
    ).json()
    assert [(r["record_id"], r["status"]) for r in body["results"]] == [
        (None, "refused"),
        ("c-2", "stored"),
    ]


def test_jsonl_upload_refuses_a_broken_line_alone(node: TestClient, tax: dict[str, str]) -> None:
    lines = [
        json.dumps(record("j-1")),
        "{not json",
        "",
        json.dumps(record("j-2", resident_id="bob", kind="honour")),
        json.dumps({**record("j-3"), "occurred_at": "1799000000"}),  # JSON keeps its types
    ]
    response = node.post(
        "/v1/records/upload",
        files={"file": ("push", "\n".join(lines).encode(), "application/x-ndjson")},
        headers=tax,
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["index"], r["status"], r.get("code")) for r in results] == [
        (0, "stored", None),
        (1, "refused", "invalid_json"),
        (2, "stored", None),
        (3, "refused", "invalid_record"),
    ]
    assert [r.record_id for r in stored_records(node)] == ["j-1", "j-2"]


FILE_REFUSALS = {
    "unknown_type": (
        ("records.xlsx", b"PK\x03\x04", "application/vnd.ms-excel"),
        415,
        "unsupported_file_type",
    ),
    "not_utf8": (
        ("records.csv", "record_id,resident_id\n甲".encode("gbk"), "text/csv"),
        400,
        "invalid_encoding",
    ),
    "empty_csv": (("records.csv", b"", "text/csv"), 400, "invalid_csv"),
    "unknown_column": (
        (
            "records.csv",
            f"record_id,resident_id,kind,occurred_at,department\nc,a,honour,{NOW},x\n".encode(),
            "text/csv",
        ),
        400,
        "invalid_csv",
    ),
    "missing_column": (
        ("records.csv", b"record_id,resident_id,kind\nc,a,honour\n", "text/csv"),
        400,
        "invalid_csv",
    ),
    "column_twice": (
        (
            "records.csv",
            f"record_id,resident_id,kind,occurred_at,kind\nc,a,honour,{NOW},honour\n".encode(),
            "text/csv",
        ),
        400,
        "invalid_csv",
    ),
}


@pytest.mark.parametrize(
    ("file", "status", "code"), FILE_REFUSALS.values(), ids=FILE_REFUSALS.keys()
)
def test_an_unreadable_file_is_refused_whole_and_writes_nothing(
    node: TestClient, tax: dict[str, str], file: tuple[str, bytes, str], status: int, code: str
) -> None:
    response = node.post("/v1/records/upload", files={"file": file}, headers=tax)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert stored_records(node) == []


def test_upload_without_a_file_is_an_invalid_request(node: TestClient, tax: dict[str, str]) -> None:
    response = node.post("/v1/records/upload", data={"x": "1"}, headers=tax)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


# --- idempotency --------------------------------------------------------------------------


def test_pushing_the_same_record_again_is_a_duplicate_and_changes_nothing(
    node: TestClient, tax: dict[str, str], clock: Any
) -> None:
    push(node, tax, record("t-1"))
    clock.now = NOW + 60
    body = push(node, tax, record("t-1"))
    assert body["results"] == [{"index": 0, "record_id": "t-1", "status": "duplicate"}]
    [row] = stored_records(node)
    assert row.recorded_at == NOW
    assert score_of(node, "alice").computed_at == NOW  # type: ignore[union-attr]


def test_the_same_record_twice_in_one_batch_is_stored_once(
    node: TestClient, tax: dict[str, str]
) -> None:
    body = push(node, tax, record("t-1"), record("t-1"), record("t-1", kind="honour"))
    assert [(r["status"], r.get("code")) for r in body["results"]] == [
        ("stored", None),
        ("duplicate", None),
        ("refused", "record_id_conflict"),
    ]
    assert len(stored_records(node)) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"resident_id": "bob"},
        {"kind": "honour", "points": None},
        {"occurred_at": NOW - 11 * DAY},
        {"note": "a different note"},
        {"kind": "volunteering", "points": 3},
    ],
    ids=["resident", "kind", "occurred_at", "note", "points"],
)
def test_another_body_under_the_same_id_is_a_conflict_and_changes_nothing(
    node: TestClient, tax: dict[str, str], change: dict[str, Any]
) -> None:
    push(node, tax, record("t-1", kind="volunteering", points=2))
    body = push(node, tax, {**record("t-1", kind="volunteering", points=2), **change})
    assert body["results"][0]["status"] == "refused"
    assert body["results"][0]["code"] == "record_id_conflict"
    [row] = stored_records(node)
    assert (row.resident_id, row.kind, row.points, row.note) == ("alice", "volunteering", 2.0, None)


def test_a_push_that_loses_a_race_is_checked_again_and_finds_the_record(
    node: TestClient, tax: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pushes of one record at once: both see it missing, one insert fails on the
    unique (department, record_id); that request is checked again, and says duplicate."""
    push(node, tax, record("t-1"))
    real = records_service._known_records
    calls = {"n": 0}

    def stale_on_first_call(*args: Any) -> Any:
        calls["n"] += 1
        return {} if calls["n"] == 1 else real(*args)

    monkeypatch.setattr(records_service, "_known_records", stale_on_first_call)
    body = push(node, tax, record("t-2", resident_id="bob"), record("t-1"))
    assert [r["status"] for r in body["results"]] == ["stored", "duplicate"]
    assert calls["n"] == 2
    assert sorted(r.record_id for r in stored_records(node)) == ["t-1", "t-2"]
    assert score_of(node, "bob").score == 420  # type: ignore[union-attr]


def test_concurrent_pushes_of_overlapping_batches_store_each_record_once(
    node: TestClient, tax: dict[str, str]
) -> None:
    state = state_of(node)
    rows = [
        record(f"t-{i}", resident_id=f"r{i % 7}", kind="late_utility_payment") for i in range(40)
    ]
    outcomes: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(offset: int) -> None:
        try:
            mine = rows[offset:] + rows[:offset]
            barrier.wait()
            with Session(state.engine) as session:
                result = records_service.push_records(session, state, "tax", mine, now=NOW)
            outcomes.append([r.status for r in result.results])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k * 10,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(o.count("stored") for o in outcomes) == 40
    assert sum(o.count("duplicate") for o in outcomes) == 120
    assert len(stored_records(node)) == 40
    for i in range(7):
        n = len([k for k in range(40) if k % 7 == i])
        assert score_of(node, f"r{i}").score == 500 - 20 * n  # type: ignore[union-attr]


# --- who may push what --------------------------------------------------------------------


def test_the_department_comes_from_the_credentials(node: TestClient) -> None:
    police = credentials(node, "police")
    push(node, police, record("p-1"))
    [row] = stored_records(node)
    assert row.department == "police"


def test_a_department_cannot_name_another_department_in_the_body(
    node: TestClient, tax: dict[str, str]
) -> None:
    response = node.post("/v1/records", json={**record("t-1"), "department": "police"}, headers=tax)
    assert response.status_code == 422
    body = push(node, tax, {**record("t-1"), "department": "police"}, record("t-2"))
    assert body["results"][0]["code"] == "invalid_record"
    assert [(r.department, r.record_id) for r in stored_records(node)] == [("tax", "t-2")]


def test_record_ids_are_per_department(node: TestClient, tax: dict[str, str]) -> None:
    police = credentials(node, "police")
    push(node, tax, record("r-1"))
    body = push(node, police, record("r-1", kind="honour"))
    assert body["results"][0]["status"] == "stored"
    assert sorted((r.department, r.kind) for r in stored_records(node)) == [
        ("police", "honour"),
        ("tax", "tax_arrears"),
    ]


def test_credentials_without_the_push_scope_are_forbidden(node: TestClient) -> None:
    library = credentials(node, "library", scopes=("verifications:create",))
    response = node.post("/v1/records", json=record("t-1"), headers=library)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    upload = node.post(
        "/v1/records/upload", files={"file": ("r.csv", CSV.encode(), "text/csv")}, headers=library
    )
    assert upload.status_code == 403
    assert stored_records(node) == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic dGF4OnRheA=="}],
    ids=["none", "unknown_token", "not_bearer"],
)
def test_pushing_without_valid_credentials_is_unauthorized(
    node: TestClient, headers: dict[str, str]
) -> None:
    response = node.post("/v1/records", json=record("t-1"), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert stored_records(node) == []


def test_revoked_credentials_push_nothing(node: TestClient, tax: dict[str, str]) -> None:
    assert node.delete("/v1/admin/clients/tax-client", headers=ADMIN).status_code == 200
    response = node.post("/v1/records", json=record("t-1"), headers=tax)
    assert response.status_code == 401
    assert stored_records(node) == []


def test_a_revocation_reaches_the_worker_that_made_it_at_once_and_others_soon(
    node: TestClient, tax: dict[str, str], make_client: Any
) -> None:
    other = make_client(**admin_settings())  # a second worker on the same database
    assert other.post("/v1/records", json=record("t-1"), headers=tax).status_code == 200
    assert node.post("/v1/records", json=record("t-2"), headers=tax).status_code == 200
    assert node.delete("/v1/admin/clients/tax-client", headers=ADMIN).status_code == 200
    assert node.post("/v1/records", json=record("t-3"), headers=tax).status_code == 401
    # The other worker remembers the client for CLIENT_CACHE_SECONDS, then looks again.
    cache = other.app.state.node.memory.clients  # type: ignore[attr-defined]
    assert len(cache) == 1
    for token_hash, (identity, _) in list(cache.items()):
        cache[token_hash] = (identity, 0.0)  # the time has passed
    assert other.post("/v1/records", json=record("t-4"), headers=tax).status_code == 401
    assert {r.record_id for r in stored_records(node)} == {"t-1", "t-2"}


# --- refused requests ---------------------------------------------------------------------

REQUEST_REFUSALS = {
    "malformed_json": (b'{"record_id": "t-1",', 422, "invalid_request"),
    "unknown_field_in_a_single_record": (
        json.dumps({**record("t-1"), "x": 1}).encode(),
        422,
        "invalid_request",
    ),
    "record_id_shaped_like_a_token_in_a_single_record": (
        json.dumps(record("eyJhbGciOiJ.x.1")).encode(),
        422,
        "invalid_request",
    ),
    "wrong_type_in_a_single_record": (
        json.dumps({**record("t-1"), "occurred_at": "1799000000"}).encode(),
        422,
        "invalid_request",
    ),
    "unknown_field_beside_records": (
        json.dumps({"records": [record("t-1")], "department": "police"}).encode(),
        422,
        "invalid_request",
    ),
    "records_not_a_list": (json.dumps({"records": record("t-1")}).encode(), 422, "invalid_request"),
    "empty_batch": (b'{"records": []}', 422, "invalid_request"),
    "a_list_at_the_top": (json.dumps([record("t-1")]).encode(), 422, "invalid_request"),
    "oversized_batch": (
        json.dumps({"records": [record(f"t-{i}") for i in range(4)]}).encode(),
        413,
        "batch_too_large",
    ),
}


@pytest.mark.parametrize(
    ("content", "status", "code"), REQUEST_REFUSALS.values(), ids=REQUEST_REFUSALS.keys()
)
def test_a_malformed_request_is_refused_whole_with_a_code_and_writes_nothing(
    make_client: Any, content: bytes, status: int, code: str
) -> None:
    node = make_client(**admin_settings(max_batch_rows=3))
    tax = credentials(node, "tax")
    response = node.post(
        "/v1/records", content=content, headers={**tax, "Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert stored_records(node) == []
    assert score_of(node, "alice") is None


def test_an_oversized_upload_is_refused_whole(make_client: Any) -> None:
    node = make_client(**admin_settings(max_batch_rows=2))
    tax = credentials(node, "tax")
    response = node.post(
        "/v1/records/upload", files={"file": ("r.csv", CSV.encode(), "text/csv")}, headers=tax
    )
    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"rows": 4, "max_batch_rows": 2}
    assert stored_records(node) == []


def test_the_batch_limit_counts_rows_not_bytes(make_client: Any) -> None:
    node = make_client(**admin_settings(max_batch_rows=3))
    tax = credentials(node, "tax")
    assert push(node, tax, *(record(f"t-{i}") for i in range(3)))["stored"] == 3


# --- metrics ------------------------------------------------------------------------------


def test_outcomes_are_counted_in_the_metrics(node: TestClient, tax: dict[str, str]) -> None:
    push(node, tax, record("t-1"), record("t-2", kind="nope"))
    push(node, tax, record("t-1"))
    text = node.get("/metrics", headers=METRICS).text
    assert 'ccx_records_total{outcome="stored"} 1.0' in text
    assert 'ccx_records_total{outcome="refused"} 1.0' in text
    assert 'ccx_records_total{outcome="duplicate"} 1.0' in text


# --- repair -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "before", "restored", "after"),
    [
        ("late_utility_payment", 480, 20, 500),  # minor: all of 20 back
        ("tax_arrears", 420, 40, 460),  # general: half of 80
        ("unfulfilled_judgment", 250, 62.5, 313),  # serious: a quarter of 250; half up
    ],
    ids=["minor", "general", "serious"],
)
def test_repair_restores_points_by_the_severity_of_the_record(
    node: TestClient, tax: dict[str, str], kind: str, before: int, restored: float, after: int
) -> None:
    push(node, tax, record("t-1", kind=kind))
    assert score_of(node, "alice").score == before  # type: ignore[union-attr]
    body = push(node, tax, record("fix-1", kind="repair_completed", repairs="t-1", occurred_at=NOW))
    assert body["results"][0]["status"] == "stored"
    score = score_of(node, "alice")
    assert score is not None
    assert score.score == after
    assert score.by_dimension["repair"] == restored


def test_a_record_is_repaired_once(node: TestClient, tax: dict[str, str]) -> None:
    push(node, tax, record("t-1"), record("fix-1", kind="repair_completed", repairs="t-1"))
    body = push(node, tax, record("fix-2", kind="repair_completed", repairs="t-1"))
    assert body["results"][0]["code"] == "already_repaired"
    assert score_of(node, "alice").score == 460  # type: ignore[union-attr]


def test_a_repair_in_the_same_batch_as_its_record_is_linked(
    node: TestClient, tax: dict[str, str]
) -> None:
    body = push(
        node,
        tax,
        record("fix-early", kind="repair_completed", repairs="t-1"),
        record("t-1"),
        record("fix-1", kind="repair_completed", repairs="t-1"),
        record("fix-2", kind="repair_completed", repairs="t-1"),
    )
    assert [(r["status"], r.get("code")) for r in body["results"]] == [
        ("refused", "unknown_repaired_record"),
        ("stored", None),
        ("stored", None),
        ("refused", "already_repaired"),
    ]
    assert score_of(node, "alice").score == 460  # type: ignore[union-attr]


def test_a_repair_cannot_name_another_residents_record(
    node: TestClient, tax: dict[str, str]
) -> None:
    push(node, tax, record("t-1", resident_id="bob"))
    body = push(node, tax, record("fix-1", kind="repair_completed", repairs="t-1"))
    assert body["results"][0]["code"] == "unknown_repaired_record"


def test_a_repair_cannot_precede_the_record(node: TestClient, tax: dict[str, str]) -> None:
    push(node, tax, record("t-1"))
    body = push(
        node,
        tax,
        record("fix-1", kind="repair_completed", repairs="t-1", occurred_at=NOW - 20 * DAY),
    )
    assert body["results"][0]["code"] == "invalid_repair"


CREDIT_CENTRE_SCOPES = ("records:push", "records:repair")


def test_the_credit_centre_may_repair_another_departments_record(
    node: TestClient, tax: dict[str, str]
) -> None:
    centre = credentials(node, "credit-centre", scopes=CREDIT_CENTRE_SCOPES)
    push(node, tax, record("t-1"))
    body = push(node, centre, record("fix-1", kind="repair_completed", repairs="t-1"))
    assert body["results"][0]["status"] == "stored"
    assert score_of(node, "alice").score == 460  # type: ignore[union-attr]


def test_a_repair_naming_records_of_two_other_departments_is_refused(
    node: TestClient, tax: dict[str, str]
) -> None:
    police = credentials(node, "police")
    centre = credentials(node, "credit-centre", scopes=CREDIT_CENTRE_SCOPES)
    push(node, tax, record("x-1"))
    push(node, police, record("x-1", kind="late_utility_payment"))
    body = push(node, centre, record("fix-1", kind="repair_completed", repairs="x-1"))
    assert body["results"][0]["code"] == "unknown_repaired_record"
    assert "several departments" in body["results"][0]["message"]
    assert (
        push(node, police, record("fix-1", kind="repair_completed", repairs="x-1"))["stored"] == 1
    )
    assert score_of(node, "alice").score == 420  # type: ignore[union-attr]  # -80 -20 +20


def test_a_repair_stores_the_department_of_the_record_it_repairs(
    node: TestClient, tax: dict[str, str]
) -> None:
    centre = credentials(node, "credit-centre", scopes=CREDIT_CENTRE_SCOPES)
    push(
        node,
        tax,
        record("t-1"),
        record("t-2"),
        record("fix-1", kind="repair_completed", repairs="t-1"),
    )
    push(node, centre, record("fix-2", kind="repair_completed", repairs="t-2"))
    rows = {r.record_id: r for r in stored_records(node)}
    assert (rows["fix-1"].repairs, rows["fix-1"].repairs_department) == ("t-1", "tax")
    assert (rows["fix-2"].repairs, rows["fix-2"].repairs_department) == ("t-2", "tax")
    assert rows["t-1"].repairs_department is None
    assert score_of(node, "alice").score == 420  # type: ignore[union-attr]  # -80 -80 +40 +40


def test_a_repair_may_name_the_department_of_the_record_it_repairs(
    node: TestClient, tax: dict[str, str]
) -> None:
    police = credentials(node, "police")
    centre = credentials(node, "credit-centre", scopes=CREDIT_CENTRE_SCOPES)
    push(node, tax, record("x-1"))
    push(node, police, record("x-1", kind="late_utility_payment"))
    fix = record("fix-1", kind="repair_completed", repairs="x-1")
    assert push(node, centre, fix)["results"][0]["code"] == "unknown_repaired_record"
    body = push(node, centre, {**fix, "repairs_department": "tax"})
    assert body["results"][0]["status"] == "stored"
    assert score_of(node, "alice").score == 440  # type: ignore[union-attr]  # -80 -20 +40
    unknown = push(node, centre, {**fix, "record_id": "fix-2", "repairs_department": "court"})
    assert unknown["results"][0]["code"] == "unknown_repaired_record"
    # the police may name its own department, as the one its own id would name anyway
    own = push(node, police, {**fix, "repairs_department": "police"})
    assert own["results"][0]["status"] == "stored"
    assert score_of(node, "alice").score == 460  # type: ignore[union-attr]  # and +20


def test_a_repair_pushed_again_is_a_duplicate_unless_it_names_another_department(
    node: TestClient, tax: dict[str, str]
) -> None:
    push(node, tax, record("t-1"), record("fix-1", kind="repair_completed", repairs="t-1"))
    fix = record("fix-1", kind="repair_completed", repairs="t-1")
    body = push(node, tax, fix, {**fix, "repairs_department": "tax"})
    assert [r["status"] for r in body["results"]] == ["duplicate", "duplicate"]
    body = push(node, tax, {**fix, "repairs_department": "police"})
    assert [(r["status"], r.get("code")) for r in body["results"]] == [
        ("refused", "record_id_conflict")
    ]
    # within one batch too: the first row's department was resolved, then compared
    body = push(
        node,
        tax,
        record("t-2"),
        record("fix-2", kind="repair_completed", repairs="t-2"),
        record("fix-2", kind="repair_completed", repairs="t-2", repairs_department="tax"),
        record("fix-2", kind="repair_completed", repairs="t-2", repairs_department="police"),
    )
    assert [(r["status"], r.get("code")) for r in body["results"]] == [
        ("stored", None),
        ("stored", None),
        ("duplicate", None),
        ("refused", "record_id_conflict"),
    ]


def test_a_repair_names_departments_as_client_credentials_do() -> None:
    from node.routers import departments

    assert records_service.DEPARTMENT_PATTERN == departments.NAME_PATTERN


def test_csv_may_name_the_department_of_the_record_a_repair_repairs(
    node: TestClient, tax: dict[str, str]
) -> None:
    centre = credentials(node, "credit-centre", scopes=CREDIT_CENTRE_SCOPES)
    push(node, tax, record("t-1"))
    data = (
        "record_id,resident_id,kind,occurred_at,repairs,repairs_department\n"
        f"c-1,alice,repair_completed,{NOW},t-1,tax\n"
    )
    response = node.post(
        "/v1/records/upload", files={"file": ("r.csv", data.encode(), "text/csv")}, headers=centre
    )
    assert response.json()["stored"] == 1, response.text
    assert {r.record_id: r.repairs_department for r in stored_records(node)}["c-1"] == "tax"


def test_a_department_without_the_repair_scope_repairs_only_its_own_records(
    node: TestClient, tax: dict[str, str]
) -> None:
    library = credentials(node, "library")
    push(node, tax, record("t-1"))
    push(node, library, record("l-1"))
    body = push(node, library, record("fix-1", kind="repair_completed", repairs="t-1"))
    assert body["results"][0]["code"] == "repair_not_allowed"
    assert "records:repair" in body["results"][0]["message"]
    assert score_of(node, "alice").score == 340  # type: ignore[union-attr]  # -80 -80: both count
    named = push(
        node,
        library,
        record("fix-3", kind="repair_completed", repairs="t-1", repairs_department="tax"),
    )
    assert named["results"][0]["code"] == "repair_not_allowed"
    assert (
        push(node, library, record("fix-2", kind="repair_completed", repairs="l-1"))["stored"] == 1
    )
    assert score_of(node, "alice").score == 380  # type: ignore[union-attr]  # its own: half back


# --- expiry -------------------------------------------------------------------------------


def test_a_record_stops_counting_after_its_disclosure_period(
    node: TestClient, tax: dict[str, str], clock: Any
) -> None:
    push(node, tax, record("t-1", kind="late_utility_payment", occurred_at=NOW))
    assert score_of(node, "alice").score == 480  # type: ignore[union-attr]
    clock.now = NOW + 365 * DAY - 1  # minor: counts 365 days
    push(node, tax, record("h-1", kind="honour", occurred_at=clock.now))
    assert score_of(node, "alice").score == 540  # type: ignore[union-attr]
    clock.now = NOW + 365 * DAY
    push(node, tax, record("h-2", kind="honour", occurred_at=clock.now))
    assert score_of(node, "alice").score == 620  # type: ignore[union-attr]


# --- admin: client credentials ------------------------------------------------------------


def test_client_token_is_shown_once_and_stored_only_hashed(node: TestClient) -> None:
    response = node.post(
        "/v1/admin/clients",
        json={"id": "tax-1", "department": "tax", "scopes": ["records:push", "records:push"]},
        headers=ADMIN,
    )
    assert response.status_code == 201
    body = response.json()
    token = body.pop("token")
    assert len(token) >= 43
    assert body == {
        "id": "tax-1",
        "department": "tax",
        "scopes": ["records:push"],
        "created_at": NOW,
        "revoked_at": None,
        "expires_at": NOW + CLIENT_MAX_LIFETIME,  # the default: the longest allowed
    }
    with Session(state_of(node).engine) as session:
        [row] = session.exec(select(Client)).all()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(row.model_dump())
    assert push(node, {"Authorization": f"Bearer {token}"}, record("t-1"))["stored"] == 1


def test_the_admin_lists_every_client_in_force_and_no_token(node: TestClient, clock: Any) -> None:
    pushing = credentials(node, "tax", client_id="tax-1")
    credentials(node, "ops", scopes=("records:repair",), client_id="ops-1")
    credentials(node, "tax", client_id="tax-2")
    clock.now = NOW + 60
    assert node.delete("/v1/admin/clients/tax-2", headers=ADMIN).status_code == 200
    listed = node.get("/v1/admin/clients", headers=ADMIN)
    assert listed.status_code == 200
    expiry = NOW + CLIENT_MAX_LIFETIME
    assert listed.json() == {
        "clients": [
            {"id": "ops-1", "department": "ops", "scopes": ["records:repair"], "created_at": NOW, "revoked_at": None, "expires_at": expiry},
            {"id": "tax-1", "department": "tax", "scopes": ["records:push"], "created_at": NOW, "revoked_at": None, "expires_at": expiry},
        ]
    }  # fmt: skip
    every = node.get("/v1/admin/clients", params={"revoked": "true"}, headers=ADMIN).json()
    assert [(c["id"], c["revoked_at"]) for c in every["clients"]] == [
        ("ops-1", None),
        ("tax-1", None),
        ("tax-2", NOW + 60),
    ]
    token = pushing["Authorization"].removeprefix("Bearer ")
    assert token not in listed.text
    assert node.get("/v1/admin/clients", headers=pushing).status_code == 403


def test_client_ids_are_never_reused(node: TestClient) -> None:
    credentials(node, "tax", client_id="c-1")
    node.delete("/v1/admin/clients/c-1", headers=ADMIN)
    response = node.post(
        "/v1/admin/clients",
        json={"id": "c-1", "department": "tax", "scopes": ["records:push"]},
        headers=ADMIN,
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "client_exists"


def test_managing_credentials_is_audited_without_the_token(node: TestClient) -> None:
    response = node.post(
        "/v1/admin/clients",
        json={"id": "tax-1", "department": "tax", "scopes": ["records:push"]},
        headers=ADMIN,
    )
    token = response.json()["token"]
    node.delete("/v1/admin/clients/tax-1", headers=ADMIN)
    with Session(state_of(node).engine) as session:
        entries = session.exec(select(AuditEntry).order_by(AuditEntry.seq)).all()  # type: ignore[arg-type]
        assert audit.verify_chain(session).ok
    assert [(e.actor, e.action, e.subject) for e in entries] == [
        ("admin", "client.created", "tax-1"),
        ("admin", "client.revoked", "tax-1"),
    ]
    assert entries[0].details == {
        "department": "tax",
        "scopes": ["records:push"],
        "expires_at": NOW + CLIENT_MAX_LIFETIME,
    }
    assert token not in json.dumps([e.model_dump() for e in entries])
    assert hashlib.sha256(token.encode()).hexdigest() not in json.dumps(
        [e.model_dump() for e in entries]
    )


def test_revoking_twice_keeps_the_first_time(node: TestClient, clock: Any) -> None:
    credentials(node, "tax", client_id="c-1")
    first = node.delete("/v1/admin/clients/c-1", headers=ADMIN).json()
    clock.now = NOW + 60
    second = node.delete("/v1/admin/clients/c-1", headers=ADMIN).json()
    assert first["revoked_at"] == second["revoked_at"] == NOW


def test_revoking_an_unknown_client_is_not_found(node: TestClient) -> None:
    response = node.delete("/v1/admin/clients/nobody", headers=ADMIN)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "client_not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"id": "c-1", "department": "tax", "scopes": []},
        {"id": "c-1", "department": "tax"},
        {"id": "C 1", "department": "tax", "scopes": ["records:push"]},
        {"id": "c-1", "department": "tax", "scopes": ["records push"]},
        {"id": "c-1", "department": "tax", "scopes": ["records:push"], "token": "mine"},
    ],
    ids=["no_scopes", "scopes_missing", "bad_id", "bad_scope", "own_token"],
)
def test_malformed_client_requests_are_refused(node: TestClient, body: dict[str, Any]) -> None:
    response = node.post("/v1/admin/clients", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_only_admins_manage_clients(node: TestClient, tax: dict[str, str]) -> None:
    body = {"id": "c-2", "department": "police", "scopes": ["records:push"]}
    assert node.post("/v1/admin/clients", json=body).status_code == 401
    denied = node.post("/v1/admin/clients", json=body, headers=tax)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "forbidden"
    assert node.delete("/v1/admin/clients/tax-client", headers=tax).status_code == 403
    assert push(node, tax, record("t-1"))["stored"] == 1  # still valid
