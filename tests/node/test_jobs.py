"""The scheduled jobs: which run when, and that the monthly one does its work."""

from __future__ import annotations

from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from node.jobs import build_scheduler, monthly_rescore, purge_nonces
from node.models import DistributionSnapshot, Nonce, Record, Resident
from tests.conftest import NOW


def test_the_scheduler_runs_the_monthly_rescore_and_the_nonce_purge(client: TestClient) -> None:
    scheduler = build_scheduler(client.app.state.node)  # type: ignore[attr-defined]
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"monthly_rescore", "purge_nonces"}
    assert isinstance(jobs["monthly_rescore"].trigger, CronTrigger)
    assert str(jobs["monthly_rescore"].trigger) == "cron[day='1', hour='2']"
    assert isinstance(jobs["purge_nonces"].trigger, IntervalTrigger)
    assert all(job.max_instances == 1 and job.coalesce for job in jobs.values())


def test_monthly_rescore_keeps_the_month_snapshot(client: TestClient) -> None:
    state: Any = client.app.state.node  # type: ignore[attr-defined]
    with Session(state.engine) as session:
        session.add(Resident(id="r1", created_at=NOW - 100))
        session.add(
            Record(
                department="tax", record_id="1", resident_id="r1", kind="identity_verified",
                occurred_at=NOW - 100, recorded_at=NOW - 100,
            )
        )  # fmt: skip
        session.commit()
    monthly_rescore(state)
    with Session(state.engine) as session:
        snapshots = session.exec(select(DistributionSnapshot)).all()
    assert [s.month for s in snapshots] == ["2027-01"]
    assert sum(snapshots[0].counts) == 1


def test_purge_removes_only_expired_nonces(client: TestClient) -> None:
    state: Any = client.app.state.node  # type: ignore[attr-defined]
    with Session(state.engine) as session:
        session.add(Nonce(value="old", purpose="pop", expires_at=NOW - 3600))
        session.add(Nonce(value="fresh", purpose="pop", expires_at=NOW + 60))
        session.commit()
    purge_nonces(state)
    with Session(state.engine) as session:
        assert [n.value for n in session.exec(select(Nonce)).all()] == ["fresh"]
