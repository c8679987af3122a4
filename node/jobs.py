"""Scheduled jobs (APScheduler): the monthly rescoring, and housekeeping.

In development they run inside the node process (``CCX_SCHEDULER=true``); in production
one ``ccx scheduler`` process runs them, so that N web workers don't run each job N
times (DESIGN section 11).
"""

from __future__ import annotations

import json
import logging

import httpx
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlmodel import Session

from node.services import domestic, issuing, nonces, scoring, witness
from node.state import NodeState

__all__ = ["build_scheduler", "checkpoint_audit_head", "monthly_rescore", "purge_nonces"]

log = logging.getLogger("ccx.jobs")


def monthly_rescore(state: NodeState) -> None:
    """Rescore everyone, keep the month's snapshot and distribution summary, then revoke
    the attestations that now overstate their holder's band (PROTOCOL.md section 6), and
    the domestic-service ones whose true claims no longer hold (docs/CREDENTIALS.md)."""
    now = int(state.now())
    summary = scoring.rescore_everyone(state, now)
    with Session(state.engine) as session:
        changes = issuing.apply_band_changes(session, state, now)
        claims = domestic.apply_claim_changes(session, state, now)
        session.commit()
    log.info(
        json.dumps(
            {"event": "monthly_rescore", "summary": str(summary), "band_changes": str(changes),
             "claim_changes": str(claims)}
        )
    )  # fmt: skip


def purge_nonces(state: NodeState) -> None:
    """Delete proof-of-possession nonces that expired (they can never be used again)."""
    with Session(state.engine) as session:
        purged = nonces.purge_expired_nonces(session, now=int(state.now()))
    log.info(json.dumps({"event": "purge_nonces", "purged": purged}))


def checkpoint_audit_head(state: NodeState) -> None:
    """Send the witness (``CCX_WITNESS_URL``) a checkpoint of the audit head
    (node.services.witness); its failures are logged, and the next run tries again."""
    with httpx.Client(follow_redirects=False) as http:
        witness.send_checkpoint(state, http)


def build_scheduler(state: NodeState, *, blocking: bool = False) -> BaseScheduler:
    """The node's jobs: the rescoring at 02:00 UTC on the first of each month, the nonce
    purge every 10 minutes, a checkpoint of the audit head for the witness every
    ``CCX_WITNESS_INTERVAL`` seconds (when ``CCX_WITNESS_URL`` is set). A missed run is
    run once when the process is back (coalesced), never twice at once."""
    scheduler: BaseScheduler = (
        BlockingScheduler(timezone="UTC") if blocking else BackgroundScheduler(timezone="UTC")
    )
    common = {
        "args": [state],
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": 24 * 3600,
    }
    scheduler.add_job(
        monthly_rescore, CronTrigger(day=1, hour=2, timezone="UTC"), id="monthly_rescore", **common
    )
    scheduler.add_job(purge_nonces, IntervalTrigger(minutes=10), id="purge_nonces", **common)
    if state.settings.witness_url:
        scheduler.add_job(
            checkpoint_audit_head,
            IntervalTrigger(seconds=state.settings.witness_interval),
            id="checkpoint_audit_head",
            **{**common, "misfire_grace_time": state.settings.witness_interval},
        )
    return scheduler
