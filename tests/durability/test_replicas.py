"""Two node processes of one node on one PostgreSQL (issue 15, "replicas"): the same data
folder (the same keyring) and database, two ``ccx node serve`` processes on two ports,
as a round-robin proxy would use them. Each has its own group writer, memory and caches.

- Issuances sent to both at once: no status index is handed out twice, one
  ``attestation.issued`` entry per attestation, and the audit chain verifies: one chain,
  whichever process appended; a nonce asked of one is redeemed on the other.
- A challenge made on one, answered by several presentations at once on both: exactly
  one decision, the other answers 401 ``nonce_used``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest

import protocol as P
from keys import generate_key
from simulator.api import Api
from simulator.cluster import NodeProcess, free_port
from simulator.holders import fetch_attestation
from tests.durability.harness import (
    SCENARIO,
    CityNode,
    Issuance,
    at_once,
    create_client,
    database_for,
    enrol_residents,
    issuance_bodies,
    json_value,
    rows,
    start_node,
    status_of,
)

STATUS_LIST_SIZE = 1024  # the least the node allows: random indexes collide often
ISSUANCES = 96
CONNECTIONS = 8  # half to each process
ROUNDS = 3
RESIDENTS = [f"replica-resident-{n}" for n in range(6)]


@dataclasses.dataclass
class Replicas:
    node: CityNode  # the first process: the admin API, the node id
    other: NodeProcess  # the second, same data folder and database

    @property
    def urls(self) -> list[str]:
        return [self.node.url, self.other.url]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    folder = tmp_path_factory.mktemp("replicas")
    with database_for("postgresql") as database_url:
        node = start_node(
            folder, database_url, registry=True,
            env={"CCX_STATUS_LIST_SIZE": str(STATUS_LIST_SIZE)},
        )  # fmt: skip
        other = dataclasses.replace(
            node.process, name="xiamen-2", port=free_port(), log_path=folder / "replica.log",
            process=None, starts=0, _log=None,
        )  # fmt: skip
        try:
            other.start()
            other.wait_ready(60)
            yield Replicas(node, other)
        finally:
            other.stop()
            node.process.stop()


@pytest.fixture(scope="module")
def tokens(replicas: Replicas) -> dict[str, str]:
    async def enrol() -> dict[str, str]:
        async with Api() as api:
            return await enrol_residents(api, replicas.node, RESIDENTS)

    return asyncio.run(enrol())


def post(url: str, path: str, token: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def present(attestation: str, key: Any, challenge: dict[str, Any]) -> str:
    return P.present(
        attestation, disclose=challenge["disclose"], holder_key=key, aud=challenge["aud"],
        nonce=challenge["nonce"], now=int(time.time()),
    )  # fmt: skip


def code_of(response: httpx.Response) -> str:
    if response.status_code < 400:
        return str(response.status_code)
    return f"{response.status_code} {response.json()['error']['code']}"


def audit_chain_holds(url: str, admin_token: str) -> bool:
    answer = httpx.get(
        f"{url}/v1/admin/audit/verify",
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["ok"])


def test_two_processes_on_one_postgresql_keep_one_chain_and_never_reuse_a_status_index(
    replicas: Replicas, tokens: dict[str, str]
) -> None:
    async def prepare() -> list[Issuance]:
        async with Api() as api:  # every nonce asked of the first process
            return await issuance_bodies(api, replicas.node, tokens, ISSUANCES)

    requests = asyncio.run(prepare())
    shares = [requests[n::CONNECTIONS] for n in range(CONNECTIONS)]

    def send_share(n: int, share: list[Issuance]) -> list[tuple[Issuance, httpx.Response]]:
        url = replicas.urls[n % 2]  # half the connections to each process
        return [(i, post(url, "/v1/me/attestations", i.token, i.body)) for i in share]

    answers = [
        answer
        for sent in at_once([partial(send_share, n, s) for n, s in enumerate(shares)])
        for answer in sent
    ]
    refused = Counter(code_of(r) for _, r in answers if r.status_code != 201)
    assert not refused, f"issuances refused: {dict(refused)}"
    handed_out = {i.holder_kid: status_of(r.json()["attestation"]) for i, r in answers}
    assert len(set(handed_out.values())) == ISSUANCES, "a status index handed out twice"

    stored = rows(
        replicas.node.database_url,
        "SELECT id, holder_kid, status_list_id, status_idx FROM attestation",
    )
    assert max(Counter((r.status_list_id, r.status_idx) for r in stored).values()) == 1
    ours = {r.holder_kid: (r.status_list_id, r.status_idx) for r in stored}
    assert ours == handed_out
    logged = [
        json_value(row.details)["holder_kid"]
        for row in rows(
            replicas.node.database_url,
            "SELECT details FROM auditentry WHERE action = 'attestation.issued'",
        )
    ]
    assert sorted(logged) == sorted(handed_out)
    seqs = [row.seq for row in rows(replicas.node.database_url, "SELECT seq FROM auditentry")]
    assert sorted(seqs) == list(range(1, len(seqs) + 1))
    for url in replicas.urls:  # either process verifies the one chain
        assert audit_chain_holds(url, replicas.node.admin_token)


def test_a_challenge_made_on_one_process_is_redeemed_once_across_both(
    replicas: Replicas, tokens: dict[str, str]
) -> None:
    async def holders_and_desk() -> tuple[list[tuple[str, Any]], str]:
        async with Api() as api:
            desk = await create_client(
                api, replicas.node, "library-desk", "culture", [f"verify:{SCENARIO}"]
            )
            held = []
            for n in range(CONNECTIONS):
                key = generate_key("ES256")
                token = tokens[RESIDENTS[n % len(RESIDENTS)]]
                held.append((await fetch_attestation(api, replicas.node.url, token, key), key))
            return held, desk

    holders, desk = asyncio.run(holders_and_desk())
    for round_ in range(ROUNDS):
        maker = replicas.urls[round_ % 2]
        made = post(maker, "/v1/verifications/challenge", desk, {"scenario": SCENARIO})
        assert made.status_code == 201, made.text
        challenge = made.json()
        bodies = [
            {"nonce": challenge["nonce"], "presentation": present(a, key, challenge)}
            for a, key in holders
        ]
        answers = at_once(
            [
                partial(post, replicas.urls[n % 2], "/v1/verifications", desk, body)
                for n, body in enumerate(bodies)
            ]
        )
        codes = Counter(code_of(response) for response in answers)
        assert codes == {"200": 1, "401 nonce_used": CONNECTIONS - 1}, dict(codes)
    decisions = Counter(
        row.action
        for row in rows(
            replicas.node.database_url,
            "SELECT action FROM auditentry WHERE actor = 'client:library-desk'",
        )
    )
    assert decisions == {"verification.decided": ROUNDS}, dict(decisions)
    assert audit_chain_holds(replicas.other.url, replicas.node.admin_token)


def test_the_processes_are_two(replicas: Replicas) -> None:
    """Not vacuous: two live processes, each answering on its own port."""
    assert replicas.node.process.process is not None
    assert replicas.other.process is not None
    assert replicas.node.process.process.pid != replicas.other.process.pid
    for url in replicas.urls:
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
