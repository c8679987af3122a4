"""The verifier's memo of issuer signatures (protocol.VerifiedSignatures, issue 15): the
same attestation presented again skips the issuer signature's check, and nothing else."""

from __future__ import annotations

import dataclasses

import pytest

import protocol as P
from tests.conftest import NOW, VERIFIER, ec_key, make_setup


def verify(setup: object, presentation: str, memo: P.VerifiedSignatures, nonce: str) -> object:
    return P.verify_presentation(
        presentation, resolve_issuer_key=setup.resolve,  # type: ignore[attr-defined]
        aud=VERIFIER, nonce=nonce, now=NOW + 10, signatures=memo,
    )  # fmt: skip


def test_the_same_attestation_presented_again_is_not_verified_twice() -> None:
    setup, memo = make_setup("ES256"), P.VerifiedSignatures()
    first = verify(setup, setup.present(nonce="visit-1"), memo, "visit-1")
    again = verify(setup, setup.present(nonce="visit-2"), memo, "visit-2")
    assert first == again
    assert (memo.hits, len(memo)) == (1, 1)


def test_the_key_binding_is_checked_every_time() -> None:
    setup, memo = make_setup("ES256"), P.VerifiedSignatures()
    verify(setup, setup.present(nonce="visit-1"), memo, "visit-1")
    with pytest.raises(P.NonceMismatch):  # a replay of the first visit's presentation
        verify(setup, setup.present(nonce="visit-1"), memo, "visit-2")


def test_a_token_changed_in_its_signature_is_verified_afresh_and_refused() -> None:
    setup, memo = make_setup("ES256"), P.VerifiedSignatures()
    verify(setup, setup.present(), memo, "nonce-1")
    jwt, rest = setup.attestation.split("~", 1)
    head, payload, signature = jwt.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BA")
    forged = dataclasses.replace(setup, attestation=f"{head}.{payload}.{flipped}~{rest}")
    with pytest.raises(P.InvalidSignature):
        verify(forged, forged.present(), memo, "nonce-1")


def test_a_signature_remembered_under_one_key_is_not_trusted_under_another() -> None:
    setup, memo = make_setup("ES256"), P.VerifiedSignatures()
    verify(setup, setup.present(), memo, "nonce-1")
    other = ec_key(977)

    class RotatedOut:  # the registry now names another key under the same kid
        def resolve(self, iss: str, kid: str | None, alg: str) -> P.PublicKey:
            return other.public_key()

    with pytest.raises(P.ProtocolError):
        verify(RotatedOut(), setup.present(), memo, "nonce-1")
    assert memo.hits == 0


def test_the_memo_keeps_at_most_its_size() -> None:
    memo = P.VerifiedSignatures(size=2)
    setups = [make_setup("ES256") for _ in range(3)]
    for setup in setups:
        verify(setup, setup.present(), memo, "nonce-1")
    assert len(memo) == 2
    verify(setups[0], setups[0].present(), memo, "nonce-1")  # the oldest went first
    assert memo.hits == 0
