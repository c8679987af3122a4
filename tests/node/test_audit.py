"""The hash-chained audit log: appending, checking, tampering, the admin API and the CLI."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from ccx.app import app as ccx
from node.auth import hash_token
from node.models import AuditEntry
from node.services import audit
from tests.conftest import NOW, ec_key
from tests.node.issuing_helpers import (
    bearer,
    make_proof,
    new_nonce,
    request_attestation,
    seed_resident,
    session,
)

ADMIN_TOKEN = "an admin token for tests only"


@pytest.fixture
def admin_client(make_client: Any) -> TestClient:
    client: TestClient = make_client(admin_token_hash=hash_token(ADMIN_TOKEN))
    return client


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def append_some(client: TestClient, count: int, *, start: int = 0) -> None:
    with session(client) as db:
        for n in range(start, start + count):
            audit.append(
                db,
                actor="admin",
                action="test.event",
                subject=f"resident-{n}",
                details={"n": n, "note": "第" + str(n)},
                now=NOW + n,
            )
        db.commit()


def tamper(client: TestClient, sql: str, **params: Any) -> None:
    with session(client) as db:
        db.connection().execute(text(sql), params)
        db.commit()


def check(client: TestClient) -> audit.ChainCheck:
    with session(client) as db:
        return audit.verify_chain(db)


# --- the chain ------------------------------------------------------------------------------


def test_entries_link_each_to_the_one_before(client: TestClient) -> None:
    append_some(client, 3)
    with session(client) as db:
        entries = audit.entries_after(db, after=0, limit=10)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == audit.GENESIS_HASH
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:2]]
    first = entries[0]
    assert first.hash == audit.entry_hash(
        seq=1,
        at=NOW,
        actor="admin",
        action="test.event",
        subject="resident-0",
        details={"n": 0, "note": "第0"},
        prev_hash=audit.GENESIS_HASH,
    )
    assert check(client) == (True, None, 3)


def test_an_empty_log_verifies(client: TestClient) -> None:
    assert check(client) == (True, None, 0)


def test_append_returns_what_it_wrote(client: TestClient) -> None:
    with session(client) as db:
        written = audit.append(
            db, actor="node", action="test.event", subject=None, details={"k": 1}, now=NOW
        )
        db.commit()
        [stored] = audit.entries_after(db, after=0, limit=1)
    assert written.model_dump() == stored.model_dump()


def test_details_are_hashed_as_they_read_back(client: TestClient) -> None:
    # Integer keys and tuples don't survive JSON; the entry must verify all the same.
    with session(client) as db:
        audit.append(
            db, actor="node", action="test.event", subject=None, details={1: (2, 3)}, now=NOW
        )
        db.commit()
        [entry] = audit.entries_after(db, after=0, limit=1)
    assert entry.details == {"1": [2, 3]}
    assert check(client).ok


@pytest.mark.parametrize(
    ("sql", "bad_seq"),
    [
        ('UPDATE auditentry SET details = \'{"n": 99, "note": "第1"}\' WHERE seq = 2', 2),
        ("UPDATE auditentry SET actor = 'someone else' WHERE seq = 3", 3),
        ("UPDATE auditentry SET at = at + 1 WHERE seq = 1", 1),
        # Rewriting an entry's hash too moves the break to the entry after it.
        ("UPDATE auditentry SET hash = '" + "ab" * 32 + "' WHERE seq = 2", 2),
        ("DELETE FROM auditentry WHERE seq = 2", 3),  # a hole shows at the next entry
        ("UPDATE auditentry SET seq = 10 WHERE seq = 4", 10),
    ],
    ids=["details", "actor", "time", "hash", "deleted", "renumbered"],
)
def test_tampering_is_found_at_the_entry_changed(
    client: TestClient, sql: str, bad_seq: int
) -> None:
    append_some(client, 4)
    tamper(client, sql)
    ok, first_bad, count = check(client)
    assert not ok
    assert first_bad == bad_seq
    assert count == (3 if sql.startswith("DELETE") else 4)


def test_rehashing_a_changed_entry_still_breaks_the_next_link(client: TestClient) -> None:
    append_some(client, 3)
    with session(client) as db:
        second = audit.entries_after(db, after=1, limit=1)[0]
    forged = {"n": 1, "note": "forged"}
    forged_hash = audit.entry_hash(
        seq=2,
        at=second.at,
        actor=second.actor,
        action=second.action,
        subject=second.subject,
        details=forged,
        prev_hash=second.prev_hash,
    )
    tamper(
        client,
        "UPDATE auditentry SET details = :d, hash = :h WHERE seq = 2",
        d=json.dumps(forged),
        h=forged_hash,
    )
    assert check(client) == (False, 3, 3)


def test_a_long_log_verifies_in_batches(client: TestClient) -> None:
    append_some(client, 1100)  # more than one batch of 1000
    assert check(client) == (True, None, 1100)


def test_two_writers_never_fork_the_chain(client: TestClient) -> None:
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def writer(offset: int) -> None:
        start.wait()
        try:
            for n in range(25):
                with session(client) as db:
                    audit.append(
                        db,
                        actor="node",
                        action="test.concurrent",
                        subject=None,
                        details={"writer": offset, "n": n},
                        now=NOW,
                    )
                    db.commit()
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert check(client) == (True, None, 100)


# --- what details may carry ------------------------------------------------------------------


@pytest.mark.parametrize(
    "details",
    [
        {"token": "abc"},
        {"nested": {"Proof": "abc"}},
        {"attestation": "x"},
        {"d": "private key material"},
    ],
)
def test_secrets_are_refused(client: TestClient, details: dict[str, Any]) -> None:
    with session(client) as db, pytest.raises(ValueError, match="must not carry"):
        audit.append(db, actor="node", action="test.event", subject=None, details=details, now=NOW)


TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
PRESENTATION = "eyJhbGciOiJFUzI1NiJ9.e30.sig~WyJzYWx0Il0~"


def test_a_token_shaped_value_is_kept_as_its_digest(client: TestClient) -> None:
    details = {"note": TOKEN, "list": ["fine", PRESENTATION], "record": "tax/eyJhbGciOiJ.x.1"}
    with session(client) as db:
        entry = audit.append(
            db, actor="node", action="test.event", subject=None, details=details, now=NOW
        )
        db.commit()
    digest = "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest()
    assert entry.details["note"] == digest
    assert entry.details["list"] == [
        "fine",
        "sha256:" + hashlib.sha256(PRESENTATION.encode()).hexdigest(),
    ]
    assert entry.details["record"].startswith("sha256:")
    assert TOKEN not in json.dumps(entry.details)
    assert check(client) == (True, None, 1)


def test_oversized_details_are_kept_as_their_digest(client: TestClient) -> None:
    long_text = "y" * 9000
    many = {f"k{i}": "z" * 500 for i in range(40)}
    with session(client) as db:
        one = audit.append(
            db, actor="node", action="test", subject=None, details={"x": long_text}, now=NOW
        )
        other = audit.append(db, actor="node", action="test", subject=None, details=many, now=NOW)
        db.commit()
    assert one.details["x"].startswith("y" * audit.MAX_TEXT + "... (sha256:")
    assert one.details["x"].endswith(hashlib.sha256(long_text.encode()).hexdigest() + ")")
    assert other.details["oversized"]["keys"] == sorted(many)
    assert other.details["oversized"]["bytes"] > audit.MAX_DETAILS_BYTES
    assert check(client) == (True, None, 2)


@pytest.mark.parametrize(
    "fields",
    [{"actor": ""}, {"action": "a" * 65}, {"subject": "s" * 129}],
)
def test_overlong_names_are_refused(client: TestClient, fields: dict[str, Any]) -> None:
    arguments = {"actor": "node", "action": "test", "subject": None, **fields}
    with session(client) as db, pytest.raises(ValueError, match="audit"):
        audit.append(db, details={}, now=NOW, **arguments)


def test_the_log_never_holds_the_attestation_the_proof_or_the_score(
    client: TestClient,
) -> None:
    seed_resident(client)
    headers = bearer(client)
    holder = ec_key(5)
    nonce = new_nonce(client, headers)
    proof = make_proof(holder, nonce)
    response = request_attestation(client, headers, holder, proof=proof)
    assert response.status_code == 201
    token = response.json()["attestation"]
    with session(client) as db:
        entries = audit.entries_after(db, after=0, limit=100)
    [issued] = [e for e in entries if e.action == "attestation.issued"]
    assert issued.actor == "resident"
    assert issued.subject == "resident-1"
    assert issued.details["band"] == "good"
    dumped = json.dumps([e.model_dump() for e in entries], ensure_ascii=False)
    for part in (*token.split("~")[0].split("."), *token.split("~")[1:-1], *proof.split(".")):
        assert part not in dumped
    assert nonce not in dumped
    for name in ("alliance_score", "local_score", "score"):
        assert name not in issued.details


# --- admin API --------------------------------------------------------------------------------


def test_admin_verifies_the_chain_over_http(admin_client: TestClient) -> None:
    append_some(admin_client, 3)
    body = admin_client.get("/v1/admin/audit/verify", headers=ADMIN).json()
    with session(admin_client) as db:
        head = audit.head(db)
    assert head is not None
    assert body == {
        "ok": True,
        "first_bad_seq": None,
        "count": 3,
        "head_seq": 3,
        "head_hash": head.hash,
    }
    tamper(admin_client, "UPDATE auditentry SET subject = 'x' WHERE seq = 2")
    body = admin_client.get("/v1/admin/audit/verify", headers=ADMIN).json()
    assert (body["ok"], body["first_bad_seq"]) == (False, 2)


def test_admin_pages_through_the_log(admin_client: TestClient) -> None:
    append_some(admin_client, 5)
    first = admin_client.get("/v1/admin/audit?after=0&limit=2", headers=ADMIN).json()
    assert [e["seq"] for e in first["entries"]] == [1, 2]
    assert first["next_after"] == 2
    rest = admin_client.get("/v1/admin/audit?after=2&limit=10", headers=ADMIN).json()
    assert [e["seq"] for e in rest["entries"]] == [3, 4, 5]
    assert rest["next_after"] is None
    assert rest["entries"][0]["details"] == {"n": 2, "note": "第2"}


@pytest.mark.parametrize("path", ["/v1/admin/audit/verify", "/v1/admin/audit"])
def test_the_audit_log_is_for_admins_only(admin_client: TestClient, path: str) -> None:
    assert admin_client.get(path).status_code == 401
    resident = bearer(admin_client, "resident-1")
    refused = admin_client.get(path, headers=resident)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"


def test_admin_page_size_is_bounded(admin_client: TestClient) -> None:
    response = admin_client.get("/v1/admin/audit?limit=100000", headers=ADMIN)
    assert response.status_code == 422


# --- the CLI ----------------------------------------------------------------------------------


def test_ccx_audit_verify(client: TestClient, node_settings: Any) -> None:
    append_some(client, 3)
    runner = CliRunner()
    data_dir = str(node_settings.data_dir)
    ok = runner.invoke(ccx, ["audit", "verify", "--data-dir", data_dir])
    assert ok.exit_code == 0, ok.output
    assert "audit chain ok: 3 entries" in ok.output
    tamper(client, "UPDATE auditentry SET action = 'x' WHERE seq = 2")
    broken = runner.invoke(ccx, ["audit", "verify", "--data-dir", data_dir])
    assert broken.exit_code == 1
    assert "BROKEN at entry 2" in broken.output


def test_audit_entry_model_is_what_the_table_holds(client: TestClient) -> None:
    append_some(client, 1)
    with session(client) as db:
        row = db.get(AuditEntry, 1)
    assert row is not None
    assert row.subject == "resident-0"
