"""A replayed presentation (docs/SECURITY.md, "Replayed presentation").

A presentation is bound to one challenge of one verifier: the KB-JWT signs the
challenge's nonce and the verifier's id, and the node uses a challenge up whatever the
outcome. These show a captured presentation failing under a fresh challenge, and one
challenge deciding exactly once when requests race."""

from __future__ import annotations

import threading

from node.auth import ClientIdentity
from node.errors import NodeError
from node.services import verifying
from protocol import ProtocolError
from tests.conftest import NOW
from tests.node.issuing_helpers import error_code, node_state
from tests.security.world import FUZHOU, World, attest, service_point


def test_a_captured_presentation_sent_with_a_fresh_challenge_is_refused(world: World) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-seen", 600)
    headers = service_point(world.xiamen, "library_deposit_free")
    first = world.challenge(headers)
    captured = world.present(attestation, holder, first)
    assert world.send(headers, first["nonce"], captured).json()["decision"] == "granted"

    fresh = world.challenge(headers)  # the attacker asks for a challenge of his own
    replayed = world.send(headers, fresh["nonce"], captured)
    assert replayed.status_code == 401, replayed.text
    assert error_code(replayed) == "nonce_mismatch"
    retried = world.send(headers, fresh["nonce"], captured)
    assert error_code(retried) == "nonce_used"  # one try per challenge, not a guessing loop


def test_one_challenge_decides_once_when_requests_race(world: World) -> None:
    attestation, holder = attest(world.fuzhou, FUZHOU, "visitor-racing", 600)
    headers = service_point(world.xiamen, "library_deposit_free")
    challenge = world.challenge(headers)
    presentation = world.present(attestation, holder, challenge)
    world.verify(headers, *attest(world.fuzhou, FUZHOU, "visitor-warm", 600))  # list cached
    state = node_state(world.xiamen)
    desk = ClientIdentity("library-desk", "culture", frozenset({"verify:library_deposit_free"}))
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def attempt() -> None:
        start.wait()
        try:
            decision = verifying.verify(
                state, desk, nonce=challenge["nonce"], presentation=presentation, now=NOW
            )
            outcomes.append("granted" if decision.granted else "denied")
        except (NodeError, ProtocolError) as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["granted", "nonce_used", "nonce_used", "nonce_used"]
