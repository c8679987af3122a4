"""Every model survives a round trip through the database, on SQLite and on PostgreSQL:
JSON columns, bytes, 64-bit times and the unique constraints behave the same on both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

from node.models import (
    Attestation,
    AuditEntry,
    Client,
    Consent,
    DistributionSnapshot,
    Nonce,
    Objection,
    RateBucket,
    Record,
    Resident,
    Score,
    ScoreSnapshot,
    StatusListRow,
)

T = 2**33  # a time far past 2038: needs 64 bits
BLOB = bytes(range(256)) * 64 + b"\x00\xff\x00"  # every byte value, NULs included


def record(**overrides: Any) -> Record:
    values: dict[str, Any] = {
        "department": "人社局",
        "record_id": "r-1",
        "resident_id": "res-1",
        "kind": "volunteer_hours",
        "occurred_at": T,
        "recorded_at": T + 1,
    }
    values.update(overrides)
    return Record(**values)


def attestation(**overrides: Any) -> Attestation:
    values: dict[str, Any] = {
        "resident_id": "res-1",
        "status_list_id": 1,
        "status_idx": 4242,
        "holder_kid": "kid-1",
        "band": "good",
        "issued_at": T,
        "expires_at": T + 30 * 86400,
    }
    values.update(overrides)
    return Attestation(**values)


def client(**overrides: Any) -> Client:
    values: dict[str, Any] = {
        "id": "client-1",
        "department": "hr",
        "token_hash": "ab" * 32,
        "scopes": ["records:write"],
        "created_at": T,
    }
    values.update(overrides)
    return Client(**values)


SAMPLES: dict[str, Callable[[], SQLModel]] = {
    "Resident": lambda: Resident(id="res-1", created_at=T),
    "Record": lambda: record(
        points=-12.5,
        repairs="r-0",
        status="objected",
        note="逾期还款 · late repayment",
        client_id="tax-feed",
    ),
    "Score": lambda: Score(
        resident_id="res-1",
        score=731.25,
        by_dimension={
            "守信": {"points": 12.5, "records": 3, "items": [1, 2.5, None, True, "文字"]},
            "empty": {},
        },
        computed_at=T,
        model_version="xiamen-2026.1",
    ),
    "ScoreSnapshot": lambda: ScoreSnapshot(month="2026-12", resident_id="res-1", score=672.0),
    "DistributionSnapshot": lambda: DistributionSnapshot(
        month="2026-12", model_version="v3", counts=[0, 5, 2**40, 7], created_at=T
    ),
    "Consent": lambda: Consent(
        resident_id="res-1",
        kind="share_alliance",
        recipients=["https://fuzhou.ccx.example", "https://hangzhou.ccx.example"],
        purpose="图书馆免押金借阅",
        granted_at=T,
        withdrawn_at=T + 5,
    ),
    "StatusListRow": lambda: StatusListRow(id=7, bits=2, size=2**17, data=BLOB, updated_at=T),
    "Attestation": lambda: attestation(status="revoked"),
    "Nonce": lambda: Nonce(
        value="n" * 64, purpose="pop", subject="res-1", expires_at=T, used_at=T + 1
    ),
    "Client": lambda: client(
        scopes=["records:write", "records:read"], revoked_at=T + 9, expires_at=T + 86400
    ),
    "RateBucket": lambda: RateBucket(key="b" * 64, tokens=2.75, updated_at=T),
    "Objection": lambda: Objection(
        resident_id="res-1",
        record_pk=1,
        reason="这条记录不是我的",
        status="upheld",
        created_at=T,
        resolved_at=T + 86400,
        resolution="removed",
    ),
    "AuditEntry": lambda: AuditEntry(
        seq=1,
        at=T,
        actor="admin",
        action="record.remove",
        subject="res-1",
        details={"record": {"department": "hr", "ids": [1, 2]}, "note": "异议成立"},
        prev_hash="0" * 64,
        hash="f" * 64,
    ),
}


def test_every_model_has_a_sample() -> None:
    import node.models

    assert set(SAMPLES) == set(node.models.__all__)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip(session: Session, name: str) -> None:
    row = SAMPLES[name]()
    model = type(row)
    expected = row.model_dump()  # before the database has seen it
    session.add(row)
    session.commit()
    identity = inspect(row).identity
    assert identity is not None
    session.expunge_all()  # read it back from the database, not from the session

    found = session.get(model, identity[0] if len(identity) == 1 else identity)
    assert found is not None
    assert found is not row
    got = found.model_dump()
    if expected.get("id", 0) is None:  # an autoincrement key: the database chose it
        assert isinstance(got["id"], int)
        expected["id"] = got["id"]
    assert got == expected


def test_json_columns_keep_types_and_unicode(session: Session) -> None:
    session.add(SAMPLES["Score"]())
    session.commit()
    session.expunge_all()
    score = session.exec(select(Score)).one()
    dimension = score.by_dimension["守信"]
    assert dimension["records"] == 3
    assert isinstance(dimension["records"], int)
    assert dimension["points"] == 12.5
    assert dimension["items"] == [1, 2.5, None, True, "文字"]
    assert score.by_dimension["empty"] == {}


def test_large_binary_is_byte_exact(session: Session) -> None:
    session.add(SAMPLES["StatusListRow"]())
    session.commit()
    session.expunge_all()
    data = session.exec(select(StatusListRow.data)).one()
    assert bytes(data) == BLOB
    assert len(data) == len(BLOB)


def test_64_bit_times_compare_and_sort(session: Session) -> None:
    for i, at in enumerate([2**31 - 1, 2**31, 2**33, 2**62]):
        session.add(Resident(id=f"res-{i}", created_at=at))
    session.commit()
    later = session.exec(select(Resident.created_at).where(Resident.created_at > 2**32)).all()
    assert sorted(later) == [2**33, 2**62]
    newest = session.exec(select(Resident).order_by(Resident.created_at.desc())).first()  # type: ignore[attr-defined]
    assert newest is not None
    assert newest.created_at == 2**62


def _add_and_commit(session: Session, *rows: SQLModel) -> None:
    for row in rows:
        session.add(row)
    session.commit()


def test_record_unique_per_department(session: Session) -> None:
    _add_and_commit(session, record(), record(department="公积金", record_id="r-1"))
    with pytest.raises(IntegrityError):
        _add_and_commit(session, record(resident_id="someone-else"))
    session.rollback()
    assert len(session.exec(select(Record)).all()) == 2


def test_attestation_status_index_unique_per_list(session: Session) -> None:
    _add_and_commit(session, attestation(), attestation(status_list_id=2))
    with pytest.raises(IntegrityError):
        _add_and_commit(session, attestation(resident_id="res-2", holder_kid="kid-2"))
    session.rollback()
    assert len(session.exec(select(Attestation)).all()) == 2


def test_client_token_hash_unique(session: Session) -> None:
    _add_and_commit(session, client())
    with pytest.raises(IntegrityError):
        _add_and_commit(session, client(id="client-2", department="police"))
    session.rollback()
    assert session.exec(select(Client.id)).all() == ["client-1"]


def test_primary_keys_unique(session: Session) -> None:
    _add_and_commit(session, Resident(id="res-1", created_at=T))
    with pytest.raises(IntegrityError):
        _add_and_commit(session, Resident(id="res-1", created_at=T + 1))
    session.rollback()
