"""Crash consistency with a real process (issue 7): a node is killed with SIGKILL in the
middle of a burst of issuances and record pushes, and started again on the same data.

The burst: ISSUANCES requests for attestations (each with its own holder key and
nonce, so the key's thumbprint names the row it must leave) and PUSHES batches of
BATCH records (record ids are the departments' idempotency keys), CONNECTIONS at a
time. After KILL_AFTER answers the process group gets SIGKILL, with up to
CONNECTIONS - 1 requests in flight. After the restart, from the public API and the
database (opened read-only):

- every request that got a 2xx is stored exactly once: its attestation row at the
  status index its answer carries, its audit entry; every record of its batch;
- a request that got no answer is stored whole or not at all (the nonce is used up
  exactly when the attestation is stored; a batch's records all or none), and sending
  it again doesn't store it twice: a stored issuance answers 401 ``nonce_used``, a
  stored batch ``duplicate`` for every row (docs/ISSUING.md, POST /v1/records);
- a request never sent left nothing behind;
- no status index is used twice, new issuances after the restart included;
- the audit chain verifies (``GET /v1/admin/audit/verify`` and ``ccx audit verify``)
  and holds one ``attestation.issued`` entry per stored attestation;
- every resident's stored score is what a full rescore of the stored records gives (a
  batch's records and her new score were committed together);
- the node answers as before: readiness, a status list, a new push, new issuances.

On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import protocol as P
from node.services.nonces import nonce_digest
from simulator.api import Api, Unreachable, error_code
from simulator.tooling import ccx
from tests.durability.harness import (
    BACKENDS,
    PUSH_SCOPE,
    CityNode,
    Issuance,
    attestation_claims,
    create_client,
    database_for,
    enrol_residents,
    issuance_bodies,
    json_value,
    rows,
    start_node,
    status_of,
)

RESIDENTS = [f"crash-resident-{n}" for n in range(6)]
ISSUANCES = 48
PUSHES = 24
BATCH = 4
CONNECTIONS = 12
KILL_AFTER = 30  # answers before the SIGKILL, of ISSUANCES + PUSHES requests
AFTER_RESTART = 6  # new issuances once the node is back
KINDS = ("volunteering", "blood_donation", "late_utility_payment", "pay_later_on_time")
DAY = 86400


@pytest.fixture(params=BACKENDS)
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CityNode]:
    with database_for(request.param) as database_url:
        node = start_node(tmp_path_factory.mktemp("crash"), database_url)
        try:
            yield node
        finally:
            node.process.stop()


@dataclass
class Sent:
    """One request of the burst and what became of it."""

    path: str
    token: str
    body: dict[str, Any]
    issuance: Issuance | None = None  # for POST /v1/me/attestations
    # for POST /v1/records: each record's (record id, resident, kind)
    records: list[tuple[str, str, str]] = field(default_factory=list)
    sent: bool = False
    answer: tuple[int, Any] | None = None  # (status, body); None: no answer came

    @property
    def ok(self) -> bool:
        return self.answer is not None and 200 <= self.answer[0] < 300

    async def send(self, api: Api, node: CityNode) -> tuple[int, Any]:
        return await api.call("POST", node.url, self.path, body=self.body, token=self.token)


def batch(department: str, n: int) -> Sent:
    now = int(time.time())
    records: list[dict[str, Any]] = [
        {
            "record_id": f"burst-{n}-{i}",
            "resident_id": RESIDENTS[(n + i) % len(RESIDENTS)],
            "kind": KINDS[(n + i) % len(KINDS)],
            "occurred_at": now - (n + i + 1) * DAY,
        }
        for i in range(BATCH)
    ]
    return Sent(
        "/v1/records",
        department,
        {"records": records},
        records=[(r["record_id"], r["resident_id"], r["kind"]) for r in records],
    )


def issuance(request: Issuance) -> Sent:
    return Sent("/v1/me/attestations", request.token, request.body, issuance=request)


async def prepare(node: CityNode) -> tuple[list[Sent], str, dict[str, str]]:
    """The burst (issuances and pushes shuffled, seeded), the department's token and the
    residents' tokens."""
    async with Api() as api:
        tokens = await enrol_residents(api, node, RESIDENTS)
        department = await create_client(api, node, "social-feed", "social", [PUSH_SCOPE])
        issuances = await issuance_bodies(api, node, tokens, ISSUANCES)
    burst = [issuance(r) for r in issuances] + [batch(department, n) for n in range(PUSHES)]
    random.Random(7).shuffle(burst)
    return burst, department, tokens


async def fire_and_kill(node: CityNode, burst: list[Sent]) -> None:
    """Send the burst CONNECTIONS at a time; SIGKILL the node at the KILL_AFTER-th
    answer. Requests not yet sent by then are not sent."""
    pending = iter(burst)
    answers = 0
    async with Api(connections=CONNECTIONS) as api:

        async def sender() -> None:
            nonlocal answers
            for request in pending:
                if not node.process.running:
                    return
                request.sent = True
                try:
                    request.answer = await request.send(api, node)
                except Unreachable:
                    continue
                answers += 1
                if answers == KILL_AFTER:
                    node.process.stop(kill=True)  # the others' requests are in flight

        await asyncio.gather(*(sender() for _ in range(CONNECTIONS)))


@dataclass
class Stored:
    """What the database holds, read-only."""

    attestations: dict[str, list[tuple[int, int, int]]]  # holder kid -> (id, list, index)
    records: Counter[tuple[str, str, str]]  # the department's (record id, resident, kind)
    used_nonces: set[str]
    issued_entries: list[dict[str, Any]]  # details of attestation.issued audit entries
    scores: dict[str, float]

    @classmethod
    def read(cls, node: CityNode) -> Stored:
        url = node.database_url
        attestations: dict[str, list[tuple[int, int, int]]] = {}
        for row in rows(url, "SELECT id, holder_kid, status_list_id, status_idx FROM attestation"):
            attestations.setdefault(row.holder_kid, []).append(
                (row.id, row.status_list_id, row.status_idx)
            )
        return cls(
            attestations=attestations,
            records=Counter(
                (row.record_id, row.resident_id, row.kind)
                for row in rows(
                    url,
                    "SELECT record_id, resident_id, kind FROM record WHERE department = 'social'",
                )
            ),
            used_nonces={
                row.value for row in rows(url, "SELECT value FROM nonce WHERE used_at IS NOT NULL")
            },
            issued_entries=[
                json_value(row.details)
                for row in rows(
                    url, "SELECT details FROM auditentry WHERE action = 'attestation.issued'"
                )
            ],
            scores={row.resident_id: row.score for row in rows(url, "SELECT * FROM score")},
        )

    def copies(self, request: Sent) -> list[int]:
        """How many times each part of ``request`` is stored: [n] for an issuance, one
        count per record for a batch."""
        if request.issuance is not None:
            return [len(self.attestations.get(request.issuance.holder_kid, []))]
        return [self.records[record] for record in request.records]


def check_answered(stored: Stored, answered: list[Sent]) -> set[tuple[int, int]]:
    """Every answered request stored once, where its answer says; the indexes handed out."""
    handed_out: set[tuple[int, int]] = set()
    for request in answered:
        assert request.answer is not None
        assert stored.copies(request) == [1] * len(stored.copies(request)), (
            f"{request.path} answered {request.answer[0]} but is stored "
            f"{stored.copies(request)} times"
        )
        if request.issuance is not None:
            attestation = request.answer[1]["attestation"]
            claims = attestation_claims(attestation)
            assert P.jwk_thumbprint(claims["cnf"]["jwk"]) == request.issuance.holder_kid
            ((_, *index),) = stored.attestations[request.issuance.holder_kid]
            assert tuple(index) == status_of(attestation)
            assert status_of(attestation) not in handed_out, "a status index handed out twice"
            handed_out.add(status_of(attestation))
        else:
            assert request.answer[1]["stored"] == BATCH, request.answer[1]
    return handed_out


def check_unanswered(stored: Stored, unanswered: list[Sent], unsent: list[Sent]) -> None:
    """All or nothing for a request in flight; nothing at all for one never sent."""
    for request in unanswered:
        copies = stored.copies(request)
        assert copies in ([0] * len(copies), [1] * len(copies)), (
            f"an unanswered {request.path} is stored in part: {copies}"
        )
        if request.issuance is not None:
            assert (nonce_digest(request.issuance.nonce) in stored.used_nonces) == (
                copies == [1]
            ), "a nonce used up without its attestation, or the other way round"
    for request in unsent:
        assert stored.copies(request) == [0] * len(stored.copies(request))
        if request.issuance is not None:
            assert nonce_digest(request.issuance.nonce) not in stored.used_nonces


async def send_again(
    node: CityNode,
    stored: Stored,
    unanswered: list[Sent],
    unsent: list[Sent],
    tokens: dict[str, str],
) -> set[tuple[int, int]]:
    """Retry the unanswered requests as a client would, then send the unsent ones and
    AFTER_RESTART new issuances; the status indexes handed out."""
    handed_out: set[tuple[int, int]] = set()
    async with Api() as api:
        for request in unanswered:
            was_stored = stored.copies(request)[0] == 1
            status, answer = await request.send(api, node)
            if request.issuance is not None:
                expected = (401, "nonce_used") if was_stored else (201, None)
                assert (status, error_code(answer)) == expected, (status, answer)
                if status == 201:
                    handed_out.add(status_of(answer["attestation"]))
            else:
                assert status == 200, (status, answer)
                outcome = "duplicate" if was_stored else "stored"
                assert [row["status"] for row in answer["results"]] == [outcome] * BATCH, answer
        fresh = await issuance_bodies(api, node, tokens, AFTER_RESTART)
        for request in [*unsent, *(issuance(r) for r in fresh)]:
            status, answer = await request.send(api, node)
            assert status in (200, 201), (request.path, status, answer)
            if request.issuance is not None:
                handed_out.add(status_of(answer["attestation"]))
    return handed_out


def test_a_node_killed_mid_burst_keeps_every_answered_request_once(node: CityNode) -> None:
    burst, department, tokens = asyncio.run(prepare(node))
    asyncio.run(fire_and_kill(node, burst))
    assert not node.process.running, f"the node was not killed: {KILL_AFTER} answers never came"
    answered = [r for r in burst if r.answer is not None]
    unanswered = [r for r in burst if r.sent and r.answer is None]
    unsent = [r for r in burst if not r.sent]
    refused = [(r.path, r.answer) for r in answered if not r.ok]
    assert not refused, f"refused during the burst: {refused[:3]}"
    assert unanswered, "no request was in flight when the node was killed"

    node.restart()
    stored = Stored.read(node)
    handed_out = check_answered(stored, answered)
    check_unanswered(stored, unanswered, unsent)
    new_indexes = asyncio.run(send_again(node, stored, unanswered, unsent, tokens))
    assert not handed_out & new_indexes, "an index handed out before the crash was handed out again"

    after = Stored.read(node)
    issuances = [r for r in burst if r.issuance is not None]
    assert all(after.copies(r) == [1] for r in issuances), "an issuance is missing or doubled"
    assert sum(map(len, after.attestations.values())) == len(issuances) + AFTER_RESTART
    indexes = [(lst, idx) for held in after.attestations.values() for _, lst, idx in held]
    assert len(set(indexes)) == len(indexes), "two attestations share a status index"
    assert after.records == Counter(record for r in burst for record in r.records), (
        "a record is missing, doubled or changed"
    )
    ids = sorted(id_ for held in after.attestations.values() for id_, _, _ in held)
    assert sorted(entry["attestation_id"] for entry in after.issued_entries) == ids

    admin = {"token": node.admin_token}

    async def the_node_answers() -> None:
        async with Api() as api:
            chain = await api.ok("GET", node.url, "/v1/admin/audit/verify", **admin)
            assert chain["ok"] is True, chain
            await api.ok("GET", node.url, "/readyz")
            await api.ok("GET", node.url, "/v1/status-lists/1")
            pushed = await api.ok(
                "POST", node.url, "/v1/records", body=batch(department, PUSHES).body,
                token=department,
            )  # fmt: skip
            assert pushed["stored"] == BATCH, pushed

    asyncio.run(the_node_answers())
    assert "audit chain ok" in ccx("audit", "verify", "--database-url", node.database_url)
    scores = Stored.read(node).scores

    async def rescore() -> None:
        async with Api() as api:
            await api.ok("POST", node.url, "/v1/admin/rescore", **admin)

    asyncio.run(rescore())
    assert Stored.read(node).scores == pytest.approx(scores), "a score disagrees with the records"
