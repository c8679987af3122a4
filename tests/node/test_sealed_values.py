"""Sealed single-use values (node.services.nonces, issue 15): challenges, nonces and
OpenID4VP request ids are made without a write and checked without a read; their key
is derived from the node's signing key, so it rotates with the keyring."""

from __future__ import annotations

import pytest

from keys import Keyring, generate_key
from node.services.nonces import (
    SEALED_LENGTH,
    SecretRefused,
    derive,
    open_sealed,
    reseal,
    seal,
    unseal,
)
from tests.conftest import NOW

DAY = 86400
OVERLAP = 7 * DAY


def ring() -> Keyring:
    return Keyring.create(now=NOW, generate=generate_key)


def refused(call: object) -> str:
    with pytest.raises(SecretRefused) as caught:
        call()  # type: ignore[operator]
    return caught.value.why


def test_a_value_holds_for_its_purpose_and_subject_until_it_expires() -> None:
    keys = ring()
    value = seal(keys, "pop", "resident-1", NOW + 120)
    assert len(value) == SEALED_LENGTH
    assert unseal(keys, value, "pop", "resident-1", now=NOW + 120) == NOW + 120
    assert refused(lambda: unseal(keys, value, "pop", "resident-1", now=NOW + 121)) == "expired"
    assert refused(lambda: unseal(keys, value, "verify", "resident-1", now=NOW)) == "unknown"
    assert refused(lambda: unseal(keys, value, "pop", "resident-2", now=NOW)) == "unknown"


def test_two_values_are_never_the_same() -> None:
    keys = ring()
    assert len({seal(keys, "pop", "r", NOW + 60) for _ in range(1000)}) == 1000


@pytest.mark.parametrize("position", [0, 5, 20, -1])
def test_a_value_changed_in_any_character_is_unknown(position: int) -> None:
    keys = ring()
    value = seal(keys, "verify", "library r-1", NOW + 60)
    swapped = "A" if value[position] != "A" else "B"
    changed = (
        value[:position] + swapped + value[position + 1 :]
        if position != -1
        else value[:-1] + swapped
    )
    assert refused(lambda: unseal(keys, changed, "verify", "library r-1", now=NOW)) == "unknown"


def test_another_nodes_value_is_unknown() -> None:
    value = seal(ring(), "pop", "resident-1", NOW + 60)
    assert refused(lambda: unseal(ring(), value, "pop", "resident-1", now=NOW)) == "unknown"


def test_the_key_rotates_with_the_keyring() -> None:
    before = ring()
    value = seal(before, "pop", "resident-1", NOW + 60)
    after = before.rotate(now=NOW, overlap=OVERLAP)
    # the old key verifies through the overlap: what it sealed still holds
    assert unseal(after, value, "pop", "resident-1", now=NOW + 30) == NOW + 60
    fresh = seal(after, "pop", "resident-1", NOW + 60)
    assert fresh[:6] != value[:6]  # sealed with the new active key: another tag
    gone = after.rotate(now=NOW + OVERLAP + 1, overlap=OVERLAP)  # the first key dropped
    late = seal(before, "pop", "resident-1", NOW + 2 * OVERLAP)  # still unexpired
    assert refused(lambda: unseal(gone, late, "pop", "resident-1", now=NOW + OVERLAP + 2)) == (
        "unknown"
    )


def test_a_payload_rides_along_and_a_reseal_is_the_nodes_alone() -> None:
    keys = ring()
    request = seal(keys, "vp_request", "", NOW + 60, b"Jlibrary\0desk")
    opened = open_sealed(keys, request, "vp_request", "", now=NOW)
    assert opened.payload == b"Jlibrary\0desk"
    transaction = reseal(keys, opened, "vp_transaction", "")
    assert transaction != request
    assert open_sealed(keys, transaction, "vp_transaction", "", now=NOW).payload == opened.payload
    assert refused(lambda: open_sealed(keys, transaction, "vp_request", "", now=NOW)) == "unknown"
    # expired, but readable when the caller asks (a service point reading its result)
    late = open_sealed(keys, transaction, "vp_transaction", "", now=NOW + 61, expired=True)
    assert late.expires_at == NOW + 60


def test_derived_secrets_differ_by_label_and_value_and_need_the_key() -> None:
    keys = ring()
    kid = keys.active.kid
    assert derive(keys, kid, "vp state", "tx-1") != derive(keys, kid, "vp nonce", "tx-1")
    assert derive(keys, kid, "vp state", "tx-1") != derive(keys, kid, "vp state", "tx-2")
    assert derive(keys, kid, "vp state", "tx-1") == derive(keys, kid, "vp state", "tx-1")
    assert refused(lambda: derive(keys, "no-such-kid", "vp state", "tx-1")) == "unknown"
