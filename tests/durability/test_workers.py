"""Two workers of one node at once (issue 7, "Concurrency"): ``ccx node serve --workers
2``, each worker a process of its own with its own memory, one database between them.

- Many issuances at once, half on connections each worker holds: no status index is
  handed out twice (the answers' ``status`` claims, the database's rows and the audit
  log agree), with the smallest status list the node allows (1024 entries), so that
  random draws collide within a worker and across the two.
- One proof-of-possession nonce sent by several requests at once, to both workers:
  exactly one attestation, the others 401 ``nonce_used``.
- One service-point challenge answered by several presentations at once, to both
  workers: exactly one decision, the others 401 ``nonce_used``; one decision in the
  audit log per challenge.
- A worker that answers its supervisor's health check late (a slow start on a loaded
  machine) is kept, not killed and replaced (a regression, node/cli.py).

Which worker served each request is read from the kernel (harness.PinnedConnection),
and every test checks that both served some. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

import protocol as P
from keys import generate_key
from simulator.api import Api
from simulator.holders import fetch_attestation
from simulator.tooling import ccx
from tests.durability.harness import (
    BACKENDS,
    PASSPHRASE,
    SCENARIO,
    CityNode,
    Issuance,
    PinnedConnection,
    at_once,
    create_client,
    database_for,
    enrol_residents,
    issuance_bodies,
    json_value,
    paused,
    pin_connections,
    rows,
    start_node,
    status_of,
    worker_pids,
)

WORKERS = 2
STATUS_LIST_SIZE = 1024  # the least the node allows: random indexes collide often
ISSUANCES = 160
CONNECTIONS_PER_WORKER = 4
ROUNDS = 3  # of each nonce race
PAUSE = 7.0  # seconds a worker answers nothing, beyond uvicorn's default health check (5 s)
RESIDENTS = [f"worker-resident-{n}" for n in range(6)]


@pytest.fixture(scope="module", params=BACKENDS)
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CityNode]:
    with database_for(request.param) as database_url:
        node = start_node(
            tmp_path_factory.mktemp("workers"),
            database_url,
            workers=WORKERS,
            registry=True,
            env={"CCX_STATUS_LIST_SIZE": str(STATUS_LIST_SIZE)},
        )
        try:
            yield node
        finally:
            node.process.stop()


@pytest.fixture(scope="module")
def workers(node: CityNode) -> set[int]:
    return worker_pids(node)


@pytest.fixture(scope="module")
def tokens(node: CityNode) -> dict[str, str]:
    """Residents with a score and both consents: bearer token by id."""

    async def enrol() -> dict[str, str]:
        async with Api() as api:
            return await enrol_residents(api, node, RESIDENTS)

    return asyncio.run(enrol())


@pytest.fixture
def connections(node: CityNode, workers: set[int]) -> Iterator[list[PinnedConnection]]:
    """CONNECTIONS_PER_WORKER connections held by each worker, the workers' in turn."""
    pinned = pin_connections(node, workers, CONNECTIONS_PER_WORKER)
    by_worker = list(pinned.values())
    try:
        yield [held[n] for n in range(CONNECTIONS_PER_WORKER) for held in by_worker]
    finally:
        for held in by_worker:
            for connection in held:
                connection.close()


def prepared(node: CityNode, tokens: dict[str, str], count: int) -> list[Issuance]:
    async def prepare() -> list[Issuance]:
        async with Api() as api:
            return await issuance_bodies(api, node, tokens, count)

    return asyncio.run(prepare())


def code_of(response: httpx.Response) -> str:
    if response.status_code < 400:
        return str(response.status_code)
    return f"{response.status_code} {response.json()['error']['code']}"


def verify_audit_chain(node: CityNode) -> None:
    answer = httpx.get(
        f"{node.url}/v1/admin/audit/verify",
        headers={"Authorization": f"Bearer {node.admin_token}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is True, answer.json()


def test_two_workers_issuing_at_once_never_hand_out_one_status_index_twice(
    node: CityNode, workers: set[int], tokens: dict[str, str], connections: list[PinnedConnection]
) -> None:
    requests = prepared(node, tokens, ISSUANCES)
    shares = [requests[n :: len(connections)] for n in range(len(connections))]

    def send_share(connection: PinnedConnection, share: list[Issuance]) -> list[Any]:
        return [
            (issuance, *connection.request(
                "POST", "/v1/me/attestations", token=issuance.token, body=issuance.body
            ))
            for issuance in share
        ]  # fmt: skip

    answers = [
        answer
        for sent in at_once(
            [partial(send_share, c, s) for c, s in zip(connections, shares, strict=True)]
        )
        for answer in sent
    ]

    refused = Counter(
        code_of(response) for _, response, _ in answers if response.status_code != 201
    )
    assert not refused, f"issuances refused under load: {dict(refused)}"
    served = Counter(worker for _, _, worker in answers)
    assert set(served) == workers, f"not every worker issued: {dict(served)}"
    handed_out = {
        issuance.holder_kid: status_of(response.json()["attestation"])
        for issuance, response, _ in answers
    }
    twice = [index for index, n in Counter(handed_out.values()).items() if n > 1]
    assert not twice, f"status indexes handed out twice: {twice}"

    stored = rows(
        node.database_url, "SELECT id, holder_kid, status_list_id, status_idx FROM attestation"
    )
    indexes = Counter((row.status_list_id, row.status_idx) for row in stored)
    assert max(indexes.values()) == 1, "two stored attestations share a status index"
    ours = [row for row in stored if row.holder_kid in handed_out]
    assert {row.holder_kid: (row.status_list_id, row.status_idx) for row in ours} == handed_out
    assert len(ours) == ISSUANCES, "an issuance answered 201 is stored twice"
    logged = [
        json_value(row.details)
        for row in rows(
            node.database_url,
            "SELECT details FROM auditentry WHERE action = 'attestation.issued'",
        )
    ]
    assert sorted(
        (entry["attestation_id"], entry["status_list"], entry["status_idx"])
        for entry in logged
        if entry["holder_kid"] in handed_out
    ) == sorted((row.id, row.status_list_id, row.status_idx) for row in ours)
    verify_audit_chain(node)


def test_a_proof_nonce_is_single_use_across_workers(
    node: CityNode, workers: set[int], tokens: dict[str, str], connections: list[PinnedConnection]
) -> None:
    for issuance in prepared(node, tokens, ROUNDS):
        answers = at_once(
            [
                partial(
                    c.request,
                    "POST",
                    "/v1/me/attestations",
                    token=issuance.token,
                    body=issuance.body,
                )
                for c in connections
            ]
        )
        codes = Counter(code_of(response) for response, _ in answers)
        assert codes == {"201": 1, "401 nonce_used": len(connections) - 1}, dict(codes)
        assert {worker for _, worker in answers} == workers
        stored = rows(
            node.database_url,
            "SELECT id FROM attestation WHERE holder_kid = :kid",
            kid=issuance.holder_kid,
        )
        assert len(stored) == 1, f"{len(stored)} attestations for one proof of possession"


def test_a_challenge_nonce_is_single_use_across_workers(
    node: CityNode, workers: set[int], tokens: dict[str, str], connections: list[PinnedConnection]
) -> None:
    async def holders_and_service_point() -> tuple[list[tuple[str, Any]], str]:
        async with Api() as api:
            desk = await create_client(api, node, "library-desk", "culture", [f"verify:{SCENARIO}"])
            held = []
            for n in range(len(connections)):
                key = generate_key("ES256")
                token = tokens[RESIDENTS[n % len(RESIDENTS)]]
                held.append((await fetch_attestation(api, node.url, token, key), key))
            return held, desk

    holders, desk = asyncio.run(holders_and_service_point())
    for _ in range(ROUNDS):
        response, _ = connections[0].request(
            "POST", "/v1/verifications/challenge", token=desk, body={"scenario": SCENARIO}
        )
        assert response.status_code == 201, response.text
        challenge = response.json()
        bodies = [
            {
                "nonce": challenge["nonce"],
                "presentation": P.present(
                    attestation,
                    disclose=challenge["disclose"],
                    holder_key=key,
                    aud=challenge["aud"],
                    nonce=challenge["nonce"],
                    now=int(time.time()),
                ),
            }
            for attestation, key in holders
        ]
        answers = at_once(
            [
                partial(c.request, "POST", "/v1/verifications", token=desk, body=b)
                for c, b in zip(connections, bodies, strict=True)
            ]
        )
        codes = Counter(code_of(response) for response, _ in answers)
        assert codes == {"200": 1, "401 nonce_used": len(connections) - 1}, dict(codes)
        assert {worker for _, worker in answers} == workers
    decisions = Counter(
        row.action
        for row in rows(
            node.database_url,
            "SELECT action FROM auditentry WHERE actor = 'client:library-desk'",
        )
    )
    assert decisions == {"verification.decided": ROUNDS}, dict(decisions)
    verify_audit_chain(node)


def test_a_worker_that_answers_nothing_for_a_while_is_kept(
    node: CityNode, workers: set[int]
) -> None:
    """A worker busy starting up answers its supervisor's health check late: for
    PAUSE seconds, longer than uvicorn's default 5 s, one answers nothing at all (paused)
    and is then still the same worker, serving (regression: under load, ``--workers 2``
    killed its workers while they started, node/cli.py). The same on any database."""
    if not node.database_url.startswith("sqlite"):
        pytest.skip("the supervisor does not depend on the database")
    quiet = min(workers)
    with paused({quiet}):
        time.sleep(PAUSE)
    assert worker_pids(node) == workers, node.process.log_tail()
    pinned = pin_connections(node, workers, 1)  # it serves again
    for held in pinned.values():
        held[0].close()


def test_serve_gives_workers_half_a_minute_to_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``ccx node serve`` asks of uvicorn's supervisor (the regression above,
    without processes)."""
    import uvicorn

    from node.app import initialize_node
    from node.settings import Settings

    asked: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *_, **options: asked.update(options))
    monkeypatch.setenv("CCX_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CCX_KEYRING_PASSPHRASE", PASSPHRASE)
    initialize_node(Settings())  # serve opens the keyring before it starts uvicorn
    ccx("node", "serve", "--workers", "2")
    assert asked["workers"] == 2
    assert asked["timeout_worker_healthcheck"] >= 30


def test_every_worker_still_runs_as_it_started(node: CityNode, workers: set[int]) -> None:
    """The pauses that pinned connections were short and always ended: no worker is
    left stopped, and uvicorn replaced none (its health check kills a worker that
    doesn't answer in time)."""
    assert worker_pids(node) == workers
    for pid in workers:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state != "T", f"worker {pid} is still stopped"
