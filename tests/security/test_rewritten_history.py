"""A node's history rewritten and rehashed in its database (docs/SECURITY.md, section I).

Whoever can write to a node's database can change an audit entry and recompute every
hash after it: the chain verifies again. The alliance host witnesses each member's
audit head (node/services/witness.py, node/services/witness_host.py): it countersigned
the hash at an entry once, and a later checkpoint whose log holds another hash there is
refused as a fork, kept as evidence; `ccx audit verify` checks the log against the
countersigned checkpoints and reports the fork. Checkpoints signed with a key the
registry doesn't list, and replays of older ones, are refused; what the witness keeps
is only ever appended to.

An alliance host and a member over real HTTP on loopback, at the tests' clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session
from typer.testing import CliRunner

import protocol as P
from ccx.app import app as ccx
from keys import generate_key
from node.app import create_app, initialize_node
from node.services import audit, witness
from node.services.witness_host import member_log
from node.settings import Settings
from node.state import NodeState
from simulator.faults import rewrite_history
from tests.conftest import ALLIANCE, NOW
from tests.node.alliance_world import member_settings, run_alliance
from tests.node.servers import RunningNode, WorldClock, free_port

CHECKPOINTS = "/v1/alliance/witness/checkpoints"


@dataclass
class Witnessed:
    folder: Path
    clock: WorldClock
    host: RunningNode
    member: RunningNode
    settings: Settings

    @property
    def state(self) -> NodeState:
        state: NodeState = self.member.app.state.node
        return state

    def log(self, count: int) -> None:
        """``count`` entries appended to the member's audit log, as its services do."""
        with Session(self.state.engine) as session:
            for i in range(count):
                audit.append(
                    session, actor="admin", action="client.created", subject=f"feed-{i}",
                    details={"department": "utilities"}, now=self.clock(),
                )  # fmt: skip
            session.commit()

    def send(self) -> str:
        with httpx.Client() as http:
            return witness.send_checkpoint(self.state, http)

    def record(self) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.host.url}{CHECKPOINTS}", params={"member": self.settings.node_id}
        )
        assert answer.status_code == 200
        record: dict[str, Any] = answer.json()
        return record

    def verify(self, *args: str) -> Any:
        return CliRunner().invoke(
            ccx,
            ["audit", "verify", "--data-dir", str(self.settings.data_dir),
             "--node-id", self.settings.node_id, *args],
        )  # fmt: skip


@pytest.fixture
def witnessed(tmp_path: Path) -> Iterator[Witnessed]:
    folder = tmp_path / "alliance"
    host_port, member_port = free_port(), free_port()
    host_url = f"http://127.0.0.1:{host_port}"
    member = member_settings(tmp_path / "xiamen", "xiamen", member_port, witness_url=host_url)
    ring = initialize_node(member, now=NOW)
    jwks = tmp_path / "xiamen.jwks.json"
    jwks.write_text(json.dumps(ring.jwks(NOW)))
    run_alliance(folder, "init", "--id", ALLIANCE, "--dir", folder)
    run_alliance(
        folder, "admit", "--member-id", member.node_id, "--name", "Xiamen", "--city", "xiamen",
        "--jwks", jwks,
    )  # fmt: skip
    run_alliance(folder, "publish", "--lifetime", "30d")
    host = member_settings(tmp_path / "host", "hangzhou", host_port, alliance_dir=folder)
    initialize_node(host, now=NOW)
    clock = WorldClock(NOW + 60)
    with (
        RunningNode(create_app(host, now=clock), host_port) as host_node,
        RunningNode(create_app(member, now=clock), member_port) as member_node,
    ):
        yield Witnessed(folder, clock, host_node, member_node, member)


def test_a_history_rewritten_and_rehashed_is_caught_by_the_witness(
    witnessed: Witnessed, tmp_path: Path
) -> None:
    witnessed.log(5)
    assert witnessed.send() == "witnessed"
    witnessed.clock.advance(300)
    witnessed.log(3)
    assert witnessed.send() == "witnessed"
    assert witnessed.send() == "unchanged"  # an idle node's checkpoint appends nothing
    record = witnessed.record()
    assert [(c["n"], c["seq"]) for c in record["checkpoints"]] == [(1, 5), (2, 8)]
    before = witnessed.verify("--witness-url", witnessed.host.url)
    assert before.exit_code == 0, before.output
    assert "witnessed: 2 checkpoints up to entry 8, the history matches" in before.output

    # entry 2 says another department did it; every hash from there on recomputed
    database = witnessed.settings.data_dir / "node.db"
    assert rewrite_history(database, 2, lambda d: {**d, "department": "parking"}) == 7
    with Session(witnessed.state.engine) as session:
        assert audit.verify_chain(session).ok  # the chain alone can't tell

    witnessed.clock.advance(300)
    witnessed.log(1)
    assert witnessed.send() == "fork"
    record = witnessed.record()
    assert record["count"] == 2  # nothing countersigned since
    (evidence,) = record["forks"]
    assert evidence["witnessed"]["seq"] == 8
    assert evidence["witnessed"]["hash"] != evidence["countersigned"]["hash"]
    claim = P.verify_checkpoint(  # the member's own signature on the rewritten history
        evidence["checkpoint"],
        resolve_key=lambda iss, kid, alg: witnessed.state.keyring.resolve(kid, alg, now=NOW),
    )
    assert claim.witnessed == (8, evidence["witnessed"]["hash"])
    assert witnessed.send() == "fork"  # sent again: refused again, kept once
    assert len(witnessed.record()["forks"]) == 1

    after = witnessed.verify("--witness-url", witnessed.host.url)
    assert after.exit_code == 1
    assert "history FORKED at witnessed entry 5" in after.output
    assert "(2 witnessed entries differ)" in after.output

    # the same from the witness's record saved beside the node (no network)
    with httpx.Client() as http:
        saved = witness.fetch_witnessed(http, witnessed.host.url, witnessed.settings.node_id)
    path = tmp_path / "witnessed.json"
    path.write_text(json.dumps(saved))
    offline = witnessed.verify("--checkpoints", str(path))
    assert offline.exit_code == 1
    assert "history FORKED at witnessed entry 5" in offline.output


def test_a_history_cut_short_is_reported(witnessed: Witnessed) -> None:
    witnessed.log(4)
    assert witnessed.send() == "witnessed"
    with Session(witnessed.state.engine) as session:
        session.connection().exec_driver_sql("DELETE FROM auditentry WHERE seq >= 3")
        session.commit()
    assert witnessed.send() == "broken"  # the node won't vouch for a log without entry 4
    result = witnessed.verify("--witness-url", witnessed.host.url)
    assert result.exit_code == 1
    assert "history FORKED at witnessed entry 4: the log no longer holds it" in result.output


def _post(witnessed: Witnessed, token: str) -> httpx.Response:
    return httpx.post(f"{witnessed.host.url}{CHECKPOINTS}", json={"checkpoint": token})


def test_a_checkpoint_signed_with_a_key_not_in_the_registry_is_refused(
    witnessed: Witnessed,
) -> None:
    witnessed.log(2)
    with Session(witnessed.state.engine) as session:
        seq, head = audit.read_head(session.connection())
    stranger = generate_key()
    forged = P.sign_checkpoint(
        node=witnessed.settings.node_id, seq=seq, head_hash=head, witnessed=None,
        key=stranger, kid=P.jwk_thumbprint(P.public_jwk(stranger)), now=witnessed.clock(),
    )  # fmt: skip
    answer = _post(witnessed, forged)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unknown_kid"
    # the member's own key, but a kid that claims another node
    active = witnessed.state.keyring.active
    impostor = P.sign_checkpoint(
        node="https://elsewhere.example", seq=seq, head_hash=head, witnessed=None,
        key=active.private_key, kid=active.kid, now=witnessed.clock(),
    )  # fmt: skip
    refused = _post(witnessed, impostor)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "issuer_not_member"
    assert not member_log(witnessed.folder, witnessed.settings.node_id).exists()
    assert witnessed.record()["count"] == 0


def test_a_replayed_older_checkpoint_is_refused(witnessed: Witnessed) -> None:
    witnessed.log(3)
    assert witnessed.send() == "witnessed"
    first = witnessed.record()["checkpoints"][0]["checkpoint"]
    witnessed.clock.advance(60)
    witnessed.log(2)
    assert witnessed.send() == "witnessed"
    answer = _post(witnessed, first)
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "checkpoint_replayed"
    assert witnessed.record()["count"] == 2


def test_a_checkpoint_that_skips_the_last_witnessed_one_is_unlinked(
    witnessed: Witnessed,
) -> None:
    witnessed.log(3)
    assert witnessed.send() == "witnessed"
    witnessed.log(2)
    with Session(witnessed.state.engine) as session:
        seq, head = audit.read_head(session.connection())
    active = witnessed.state.keyring.active
    unlinked = P.sign_checkpoint(
        node=witnessed.settings.node_id, seq=seq, head_hash=head, witnessed=None,
        key=active.private_key, kid=active.kid, now=witnessed.clock(),
    )  # fmt: skip
    answer = _post(witnessed, unlinked)
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "checkpoint_unlinked"
    # the node that lost its note of the last one takes the witness's and links to it
    (witnessed.settings.data_dir / witness.WITNESS_FILE).unlink()
    assert witnessed.send() == "witnessed"
    assert witnessed.record()["count"] == 2


def test_what_the_witness_keeps_is_only_appended_to(witnessed: Witnessed) -> None:
    path = member_log(witnessed.folder, witnessed.settings.node_id)
    seen = b""
    for round_ in range(4):
        witnessed.log(round_ + 1)
        assert witnessed.send() == "witnessed"
        kept = path.read_bytes()
        assert kept.startswith(seen)
        assert len(kept) > len(seen)
        seen = kept
    replay = witnessed.record()["checkpoints"][0]["checkpoint"]
    assert _post(witnessed, replay).status_code == 409
    assert path.read_bytes() == seen  # a refusal changes nothing
    # a line cut short by a crash mid-write stays, unread; the next starts a line of its own
    with path.open("ab") as file:
        file.write(seen.splitlines()[-1][:40])
    torn = path.read_bytes()
    witnessed.log(1)
    assert witnessed.send() == "witnessed"
    assert path.read_bytes().startswith(torn + b"\n")
    assert witnessed.record()["count"] == 5
    # each countersigned line names the one before: the record is a chain of its own
    with httpx.Client() as http:
        record = witness.fetch_witnessed(http, witnessed.host.url, witnessed.settings.node_id)
    chain = witness.verify_witness_record(record, member=witnessed.settings.node_id)
    assert [c.n for c in chain] == [1, 2, 3, 4, 5]
    # a line taken out of the record is found out
    record["checkpoints"].pop(1)
    with pytest.raises(witness.WitnessRecordError, match="not the next"):
        witness.verify_witness_record(record, member=witnessed.settings.node_id)


def test_the_node_sends_its_head_at_shutdown(witnessed: Witnessed) -> None:
    # the scheduler's process (here the node's own) sends a last checkpoint as it stops,
    # after what its writer queued; the interval's job would wait an hour
    witnessed.log(3)
    settings = witnessed.settings.model_copy(update={"scheduler": True, "witness_interval": 3600})
    with RunningNode(create_app(settings, now=witnessed.clock)):
        pass
    assert witnessed.record()["latest"]["seq"] == 3
