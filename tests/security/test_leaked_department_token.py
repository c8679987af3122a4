"""A leaked department token, found out afterwards (docs/SECURITY.md, "Compromised
department token"; issue 17, gap B).

The tax bureau pushes with two clients: its nightly feed and a clerk's laptop, whose
token leaks. The thief pushes in the bureau's name: a repair that erases a friend's tax
arrear, an arrear on a stranger, an honour (refused: not a tax kind, gap A). The
bureau's feed keeps pushing, before and after the leak. Each push is in the audit
chain under the client that made it; the operator revokes the laptop's token and
withdraws its records since the leak: the residents' scores are what they were, and
every record of the feed, the same department's, is untouched."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from node.models import AuditEntry
from node.services import audit
from simulator.population import CITIES
from tests.conftest import NOW
from tests.node.pushing import (
    ADMIN,
    admin_settings,
    credentials,
    record,
    score_of,
    state_of,
    stored_records,
)

LEAK = NOW + 3600


def push(node: TestClient, headers: dict[str, str], rows: list[dict[str, Any]]) -> Any:
    response = node.post("/v1/records", json={"records": rows}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def scores(node: TestClient, *residents: str) -> dict[str, float | None]:
    return {r: getattr(score_of(node, r), "score", None) for r in residents}


def test_a_leaked_tokens_pushes_are_audited_and_withdrawn_and_the_scores_restored(
    make_client: Any, clock: Any
) -> None:
    node: TestClient = make_client(**admin_settings(scoring_model=CITIES["xiamen"].model))
    feed = credentials(node, "tax", client_id="tax-feed")
    laptop = credentials(node, "tax", client_id="tax-laptop")
    push(node, feed, [record("t-1", resident_id="friend"), record("t-2", resident_id="bob")])
    before = scores(node, "friend", "bob", "stranger")
    assert before == {"friend": 470, "bob": 470, "stranger": None}  # Xiamen's base 550 - 80

    clock.now = LEAK + 60  # the thief, with the laptop's token
    stolen_rows = [
        record("fix-1", resident_id="friend", kind="repair_completed", repairs="t-1"),
        record("t-666", resident_id="stranger"),
        record("h-1", resident_id="friend", kind="honour"),
    ]
    stolen = push(node, laptop, stolen_rows)
    assert (stolen["stored"], stolen["refused"]) == (2, 1)
    assert stolen["results"][2]["code"] == "kind_not_allowed"
    clock.now = LEAK + 120  # the feed goes on
    push(node, feed, [record("t-3", resident_id="bob")])
    during = scores(node, "friend", "bob", "stranger")
    assert during == {"friend": 510, "bob": 390, "stranger": 470}

    with Session(state_of(node).engine) as session:
        pushes = session.exec(select(AuditEntry).where(AuditEntry.action == "records.pushed"))
        logged = [(e.actor, e.subject, e.at, e.details) for e in pushes]
    sent = json.dumps(stolen_rows, sort_keys=True, separators=(",", ":")).encode()
    assert [(actor, at) for actor, _, at, _ in logged] == [
        ("client:tax-feed", NOW),
        ("client:tax-laptop", LEAK + 60),
        ("client:tax-feed", LEAK + 120),
    ]
    assert logged[1][3] == {
        "department": "tax",
        "stored": 2,
        "duplicate": 0,
        "refused": 1,
        "rows_sha256": hashlib.sha256(sent).hexdigest(),  # what the thief sent, not kept
        "received": "records",
    }

    clock.now = LEAK + 7200  # found out: revoke, then withdraw since the leak
    assert node.delete("/v1/admin/clients/tax-laptop", headers=ADMIN).status_code == 200
    withdrawn = node.post(
        "/v1/admin/clients/tax-laptop/withdraw-records", json={"since": LEAK}, headers=ADMIN
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert (withdrawn.json()["withdrawn"], withdrawn.json()["residents"]) == (2, 2)

    assert scores(node, "friend", "bob", "stranger") == {
        "friend": before["friend"],
        "bob": during["bob"],  # the feed's arrear pushed after the leak still counts
        "stranger": 550,  # the base: nothing of hers counts
    }
    assert {(r.client_id, r.record_id): r.status for r in stored_records(node)} == {
        ("tax-feed", "t-1"): "active",
        ("tax-feed", "t-2"): "active",
        ("tax-feed", "t-3"): "active",
        ("tax-laptop", "fix-1"): "removed",
        ("tax-laptop", "t-666"): "removed",
    }
    with Session(state_of(node).engine) as session:
        assert audit.verify_chain(session).ok
        last = audit.head(session)
    assert last is not None
    assert (last.actor, last.action, last.subject) == ("admin", "records.withdrawn", "tax-laptop")
