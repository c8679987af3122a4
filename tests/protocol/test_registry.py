"""The alliance registry: signature with the pinned root key, versions only go up, the chain."""

from __future__ import annotations

import json
from typing import Any

import pytest

import protocol as P
from protocol._jws import sign_jws
from tests.conftest import ALLIANCE, ISSUER, NOW, ec_key, ed_key

ROOT = ed_key(50)
MEMBER_KEY = ec_key(1)


def member_jwk(key: Any = MEMBER_KEY, **extra: Any) -> dict[str, Any]:
    jwk = P.public_jwk(key)
    return {**jwk, "kid": P.jwk_thumbprint(jwk), "alg": P.alg_for_key(key), **extra}


def claims(version: int, prev: str | None, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ALLIANCE,
        "exp": NOW + 30 * 86400,
        "version": version,
        "prev": prev,
        "scale": {"min": 0, "max": 1000, "thresholds": [550, 600, 650, 700, 750]},
        "members": [
            {
                "id": ISSUER,
                "name": "Xiamen",
                "city": "xiamen",
                "status": "active",
                "jwks": {"keys": [member_jwk()]},
            }
        ],
        "mapping_tables": [],
        "policy": {"status_stale_limit": 86400},
    }
    base.update(overrides)
    return base


def chain(length: int) -> list[str]:
    tokens: list[str] = []
    for version in range(1, length + 1):
        prev = P.registry_hash(tokens[-1]) if tokens else None
        tokens.append(P.sign_registry(claims(version, prev), root_key=ROOT, now=NOW + version))
    return tokens


def verify(token: str, **kwargs: Any) -> P.Registry:
    return P.verify_registry(token, root_key=ROOT.public_key(), now=NOW + 100, **kwargs)


def test_sign_and_verify_round_trip() -> None:
    registry = verify(chain(1)[0])
    assert registry.version == 1
    assert registry.alliance == ALLIANCE
    assert registry.members[ISSUER].city == "xiamen"
    kid = member_jwk()["kid"]
    assert registry.resolve_issuer_key(ISSUER, kid, "ES256", now=NOW) is not None


def test_payload_is_canonical_json() -> None:
    token = chain(1)[0]
    payload = P.b64url_decode(token.split(".")[1])
    assert payload == P.canonical_json(json.loads(payload))


def test_each_version_continues_the_last() -> None:
    tokens = chain(3)
    current = verify(tokens[0])
    for token in tokens[1:]:
        current = verify(token, previous=current)
    assert current.version == 3


def test_registry_rollback_is_refused() -> None:
    tokens = chain(3)
    v3 = verify(tokens[2], previous=verify(tokens[1], previous=verify(tokens[0])))
    with pytest.raises(P.RegistryRollback) as caught:
        verify(tokens[1], previous=v3)
    assert caught.value.code == "registry_rollback"
    with pytest.raises(P.RegistryRollback):
        verify(tokens[2], previous=v3)  # the same version again is not an update


def test_registry_with_a_broken_chain_is_refused() -> None:
    v1 = verify(chain(1)[0])
    forged = P.sign_registry(claims(2, "00" * 32), root_key=ROOT, now=NOW + 2)
    with pytest.raises(P.RegistryChainBroken) as caught:
        verify(forged, previous=v1)
    assert caught.value.code == "registry_chain_broken"


def test_a_fork_signed_by_the_root_is_refused() -> None:
    """Two different version-2 documents: a node that took one refuses the other's successor."""
    tokens = chain(2)
    v2 = verify(tokens[1], previous=verify(tokens[0]))
    fork2 = P.sign_registry(
        claims(2, P.registry_hash(tokens[0]), policy={"forked": True}), root_key=ROOT, now=NOW + 5
    )
    fork3 = P.sign_registry(claims(3, P.registry_hash(fork2)), root_key=ROOT, now=NOW + 6)
    with pytest.raises(P.RegistryChainBroken):
        verify(fork3, previous=v2)


def test_a_version_jump_needs_the_versions_in_between() -> None:
    tokens = chain(4)
    v1 = verify(tokens[0])
    with pytest.raises(P.RegistryChainBroken, match="in between"):
        verify(tokens[3], previous=v1)
    assert verify(tokens[3], previous=v1, intermediates=tokens[1:3]).version == 4
    with pytest.raises(P.RegistryChainBroken):
        verify(tokens[3], previous=v1, intermediates=[tokens[2]])


def test_registry_signed_by_another_key_is_refused() -> None:
    token = P.sign_registry(claims(1, None), root_key=ed_key(51), now=NOW)
    with pytest.raises(P.UnknownKid):
        verify(token)


def test_registry_with_a_forged_kid_is_refused_by_signature() -> None:
    kid = P.jwk_thumbprint(P.public_jwk(ROOT))
    token = sign_jws(
        {"typ": P.REGISTRY_TYP, "kid": kid},
        P.canonical_json({**claims(1, None), "iat": NOW}),
        ed_key(51),
    )
    with pytest.raises(P.InvalidSignature):
        verify(token)


def test_a_member_key_labelled_with_the_other_alg_is_refused() -> None:
    mislabelled = claims(1, None)
    mislabelled["members"][0]["jwks"]["keys"] = [member_jwk(alg="EdDSA")]  # an EC P-256 key
    with pytest.raises(P.InvalidClaim, match="is not an EdDSA key"):
        verify(P.sign_registry(mislabelled, root_key=ROOT, now=NOW))


def test_registry_with_wrong_typ_is_refused() -> None:
    token = sign_jws({"typ": "JWT"}, P.canonical_json({**claims(1, None), "iat": NOW}), ROOT)
    with pytest.raises(P.WrongTyp):
        verify(token)


def test_expired_registry_is_refused() -> None:
    token = P.sign_registry(claims(1, None, exp=NOW + 10), root_key=ROOT, now=NOW)
    with pytest.raises(P.RegistryExpired):
        verify(token)


def test_future_version_is_kept_but_not_in_effect() -> None:
    token = P.sign_registry(claims(1, None, valid_from=NOW + 1000), root_key=ROOT, now=NOW)
    registry = verify(token)
    assert not registry.in_effect(NOW + 100)
    assert registry.in_effect(NOW + 1000)


def test_resolve_refuses_suspended_members_unknown_issuers_and_expired_keys() -> None:
    kid = member_jwk()["kid"]
    suspended = claims(1, None)
    suspended["members"][0]["status"] = "suspended"
    registry = verify(P.sign_registry(suspended, root_key=ROOT, now=NOW))
    with pytest.raises(P.IssuerSuspended):
        registry.resolve_issuer_key(ISSUER, kid, "ES256", now=NOW)
    with pytest.raises(P.IssuerNotMember):
        registry.resolve_issuer_key("https://elsewhere.example", kid, "ES256", now=NOW)
    retired = claims(1, None)
    retired["members"][0]["jwks"]["keys"] = [member_jwk(exp=NOW + 50)]
    registry = verify(P.sign_registry(retired, root_key=ROOT, now=NOW))
    assert registry.resolve_issuer_key(ISSUER, kid, "ES256", now=NOW + 50)
    with pytest.raises(P.UnknownKid):
        registry.resolve_issuer_key(ISSUER, kid, "ES256", now=NOW + 51)
    with pytest.raises(P.AlgorithmKeyMismatch):
        registry.resolve_issuer_key(ISSUER, kid, "EdDSA", now=NOW)
    with pytest.raises(P.UnknownKid):
        registry.resolve_issuer_key(ISSUER, "another-kid", "ES256", now=NOW)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.update(status="pending"),
        lambda m: m["jwks"]["keys"][0].update(kid="not-the-thumbprint"),
        lambda m: m["jwks"]["keys"][0].update(d="c2VjcmV0"),
        lambda m: m["jwks"]["keys"][0].update(alg="HS256"),
        lambda m: m.pop("city"),
        lambda m: m.update(credentials=[]),
        lambda m: m.update(credentials="domestic_service"),
        lambda m: m.update(credentials=["credit_standing", "credit_standing"]),
        lambda m: m.update(credentials=["Domestic Service"]),
    ],
    ids=[
        "unknown-status",
        "kid-not-thumbprint",
        "private-member",
        "hmac-alg",
        "no-city",
        "no-credentials",
        "credentials-not-array",
        "credential-twice",
        "credential-name",
    ],
)
def test_malformed_members_are_refused(mutate: Any) -> None:
    document = claims(1, None)
    mutate(document["members"][0])
    with pytest.raises(P.ProtocolError):
        verify(P.sign_registry(document, root_key=ROOT, now=NOW))


def test_sign_registry_checks_the_chain_fields() -> None:
    with pytest.raises(ValueError, match="prev"):
        P.sign_registry(claims(2, None), root_key=ROOT, now=NOW)
    with pytest.raises(ValueError, match="version"):
        P.sign_registry(claims(0, None), root_key=ROOT, now=NOW)


def test_a_member_lists_the_credential_types_it_issues() -> None:
    """Issue 18: ``credentials`` names them; a registry without it means the credit
    standing alone (registries written before)."""
    document = claims(1, None)
    assert verify(P.sign_registry(document, root_key=ROOT, now=NOW)).members[
        document["members"][0]["id"]
    ].credentials == ("credit_standing",)
    document["members"][0]["credentials"] = ["domestic_service"]
    member = verify(P.sign_registry(document, root_key=ROOT, now=NOW)).members[
        document["members"][0]["id"]
    ]
    assert member.issues("domestic_service")
    assert not member.issues("credit_standing")
