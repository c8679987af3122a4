"""The development identity provider of a node with two workers (issue 17, a smaller
gap of docs/SECURITY.md): one key for the whole node (``<data_dir>/dev-idp-key.pem``,
0600), so a resident's token from one worker is accepted by the other. Before, each
worker made its own key and half of the resident calls failed with two workers."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.dev_idp import DEV_IDP_KEY_FILE
from tests.durability.harness import CityNode, pin_connections, start_node, worker_pids


@pytest.fixture
def node(tmp_path: Path) -> Iterator[CityNode]:
    started = start_node(tmp_path, None, workers=2, env={"CCX_DEV_IDP": "true"})
    try:
        yield started
    finally:
        started.process.stop()


def test_a_token_from_one_worker_is_accepted_by_the_other(node: CityNode) -> None:
    workers = worker_pids(node)
    pinned = pin_connections(node, workers, 1)
    first, second = (pinned[pid][0] for pid in sorted(workers))
    try:
        for issuer, verifier in ((first, second), (second, first)):
            answer, served = issuer.request(
                "POST", "/dev-idp/token", body={"subject": "two-workers-resident"}
            )
            assert answer.status_code == 200, answer.text
            assert served in workers
            token = answer.json()["access_token"]
            mine, other = verifier.request("GET", "/v1/me/consents", token=token)
            assert mine.status_code == 200, mine.text
            assert other in workers - {served}  # really the other worker
    finally:
        for held in pinned.values():
            for connection in held:
                connection.close()
    key_file = node.process.data_dir / DEV_IDP_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
