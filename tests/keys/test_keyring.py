"""keys/: lifecycle, kids, JWKS export, encryption at rest, rotation with overlap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocol as P
from keys import DEFAULT_OVERLAP, Keyring, KeyringError, KeyState, ManagedKey, WrongPassphrase
from protocol._jwk import private_jwk_members
from tests.conftest import NOW, VERIFIER, counter_salt, ec_key, ed_key, standard_claims

PASSPHRASE = b"correct horse battery staple"


def make_ring(alg: str = "ES256") -> Keyring:
    seeds = iter(range(100, 200))
    return Keyring.create(
        now=NOW, alg=alg, generate=lambda a: (ec_key if a == "ES256" else ed_key)(next(seeds))
    )


def test_rfc8037_thumbprint_vector() -> None:
    vector = json.loads(
        (Path(__file__).parent.parent / "vectors/rfc8037/thumbprint.json").read_text()
    )
    assert P.jwk_thumbprint(vector["jwk"]) == vector["thumbprint"]
    assert (
        P.canonical_json({k: vector["jwk"][k] for k in ("crv", "kty", "x")}).decode()
        == vector["canonical"]
    )


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_new_ring_has_one_active_and_one_next_key_with_thumbprint_kids(alg: str) -> None:
    ring = make_ring(alg)
    assert ring.active.state is KeyState.ACTIVE
    assert ring.next is not None
    assert ring.next.state is KeyState.NEXT
    for key in ring.keys:
        assert key.kid == P.jwk_thumbprint(P.public_jwk(key.private_key))
        assert key.alg == alg


def test_ring_invariants_are_enforced() -> None:
    ring = make_ring()
    active, upcoming = ring.active, ring.next
    assert upcoming is not None
    with pytest.raises(KeyringError, match="exactly one active"):
        Keyring([upcoming])
    with pytest.raises(KeyringError, match="exactly one active"):
        Keyring([active, ManagedKey.new(ec_key(7), state=KeyState.ACTIVE, now=NOW)])
    with pytest.raises(KeyringError, match="twice"):
        Keyring(
            [
                active,
                active.__class__(
                    **{
                        **{f: getattr(active, f) for f in active.__slots__},
                        "state": KeyState.RETIRED,
                    }
                ),
            ]
        )


def _assert_public_only(jwks: dict[str, list[dict[str, object]]]) -> None:
    for jwk in jwks["keys"]:
        assert not private_jwk_members.intersection(jwk), jwk
        assert set(jwk) <= {"kty", "crv", "x", "y", "kid", "alg", "use", "exp"}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["ES256", "EdDSA"]), min_size=1, max_size=4), st.integers(0, 3))
def test_jwks_never_contains_a_private_member(algs: list[str], rotations: int) -> None:
    ring = make_ring(algs[0])
    now = NOW
    for _ in range(rotations):
        now += 86400
        ring = ring.rotate(now=now)
    jwks = ring.jwks(now)
    _assert_public_only(jwks)
    assert "PRIVATE" not in json.dumps(jwks)
    assert {k["kid"] for k in jwks["keys"]} == set(ring.verification_keys(now))


def _sign_with(ring: Keyring, now: int) -> str:
    key = ring.active
    return P.issue_attestation(
        standard_claims(exp=now + 30 * 86400),
        issuer_key=key.private_key,
        kid=key.kid,
        holder_jwk=P.public_jwk(ec_key(2)),
        now=now,
        salt=counter_salt(),
    )


def _verify_against(ring: Keyring, attestation: str, now: int) -> P.VerifiedPresentation:
    presentation = P.present(
        attestation, disclose=["band"], holder_key=ec_key(2), aud=VERIFIER, nonce="n", now=now
    )
    return P.verify_presentation(
        presentation,
        resolve_issuer_key=lambda iss, kid, alg: ring.resolve(kid, alg, now=now),
        aud=VERIFIER,
        nonce="n",
        now=now,
    )


def test_rotation_promotes_next_and_keeps_old_tokens_verifying_until_they_expire() -> None:
    ring = make_ring()
    before = _sign_with(ring, NOW)
    upcoming = ring.next
    assert upcoming is not None
    rotated = ring.rotate(now=NOW + 3600)
    assert rotated.active.kid == upcoming.kid
    retired = next(k for k in rotated.keys if k.state is KeyState.RETIRED)
    assert retired.kid == ring.active.kid
    assert retired.expires_at == NOW + 3600 + DEFAULT_OVERLAP
    # The old token verifies on its last day, signed by the now-retired key ...
    assert _verify_against(rotated, before, NOW + 30 * 86400 - 60).band == "good"
    # ... and a new token is signed with the promoted key.
    after = _sign_with(rotated, NOW + 3600)
    assert P.b64url_decode(after.split(".")[0]).decode().count(upcoming.kid) == 1
    # Once the overlap is over the retired key is gone from the JWKS and refused.
    late = NOW + 3600 + DEFAULT_OVERLAP + 1
    assert retired.kid not in {k["kid"] for k in rotated.jwks(late)["keys"]}
    with pytest.raises(P.UnknownKid):
        rotated.resolve(retired.kid, "ES256", now=late)


def test_rotation_drops_retired_keys_after_they_expire() -> None:
    ring = make_ring()
    first = ring.active.kid
    ring = ring.rotate(now=NOW, overlap=100)
    ring = ring.rotate(now=NOW + 50, overlap=100)
    assert first in {k.kid for k in ring.keys}
    ring = ring.rotate(now=NOW + 200, overlap=100)
    assert first not in {k.kid for k in ring.keys}
    assert [k.state for k in ring.keys].count(KeyState.ACTIVE) == 1


def test_resolve_refuses_a_key_for_another_algorithm() -> None:
    ring = make_ring()
    with pytest.raises(P.AlgorithmKeyMismatch):
        ring.resolve(ring.active.kid, "EdDSA", now=NOW)
    with pytest.raises(P.UnknownKid):
        ring.resolve("not-a-kid", "ES256", now=NOW)


def test_dump_encrypts_every_private_key_and_load_round_trips() -> None:
    ring = make_ring().rotate(now=NOW + 10)
    data = ring.dump(PASSPHRASE)
    text = data.decode()
    assert text.count("BEGIN ENCRYPTED PRIVATE KEY") == len(ring.keys)
    assert "BEGIN PRIVATE KEY" not in text
    loaded = Keyring.load(data, PASSPHRASE)
    assert [(k.kid, k.state, k.expires_at) for k in loaded.keys] == [
        (k.kid, k.state, k.expires_at) for k in ring.keys
    ]


def test_wrong_passphrase_is_refused() -> None:
    data = make_ring().dump(PASSPHRASE)
    with pytest.raises(WrongPassphrase):
        Keyring.load(data, b"not the passphrase at all")


def test_short_passphrase_is_refused() -> None:
    with pytest.raises(KeyringError, match="at least"):
        make_ring().dump(b"short")


def test_a_keyring_file_whose_kid_does_not_match_its_key_is_refused() -> None:
    document = json.loads(make_ring().dump(PASSPHRASE))
    document["keys"][0]["kid"] = document["keys"][1]["kid"]
    with pytest.raises(KeyringError, match="does not match"):
        Keyring.load(json.dumps(document).encode(), PASSPHRASE)


@pytest.mark.parametrize("data", [b"", b"[]", b'{"format": "other"}', b"\xff"])
def test_garbage_is_not_a_keyring(data: bytes) -> None:
    with pytest.raises(KeyringError):
        Keyring.load(data, PASSPHRASE)
