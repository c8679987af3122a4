"""Token status lists (draft-ietf-oauth-status-list): encoding, the signed token, limits."""

from __future__ import annotations

import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocol as P
from protocol._jws import sign_jws
from tests.conftest import ISSUER, NOW, STATUS_URI, ec_key

KEY = ec_key(1)
KID = P.jwk_thumbprint(P.public_jwk(KEY))


def resolve(iss: str, kid: str | None, alg: str) -> P.PublicKey:
    if iss != ISSUER or kid != KID:
        raise P.UnknownKid("unknown")
    return KEY.public_key()


def sign(status_list: P.StatusList, **overrides: object) -> str:
    args: dict[str, object] = {
        "uri": STATUS_URI,
        "issuer": ISSUER,
        "issuer_key": KEY,
        "kid": KID,
        "now": NOW,
        "exp": NOW + 3600,
        "ttl": 300,
    }
    args.update(overrides)
    return P.sign_status_list(status_list, **args)  # type: ignore[arg-type]


def verify(token: str, **overrides: object) -> P.VerifiedStatusList:
    args: dict[str, object] = {
        "uri": STATUS_URI,
        "issuer": ISSUER,
        "resolve_issuer_key": resolve,
        "now": NOW + 60,
    }
    args.update(overrides)
    return P.verify_status_list(token, **args)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([1, 2, 4, 8]).flatmap(
        lambda bits: st.tuples(
            st.just(bits), st.lists(st.integers(0, (1 << bits) - 1), min_size=1, max_size=300)
        )
    )
)
def test_encode_decode_round_trip_for_every_bit_width(case: tuple[int, list[int]]) -> None:
    bits, values = case
    status_list = P.StatusList(len(values), bits)
    for idx, value in enumerate(values):
        status_list[idx] = value
    decoded = P.decode_status_list(P.encode_status_list(status_list))
    assert [P.status_at(decoded, i) for i in range(len(values))] == values


def test_least_significant_bit_first() -> None:
    status_list = P.StatusList(16, 1)
    status_list[0] = 1
    status_list[9] = 1
    assert status_list.to_bytes() == b"\x01\x02"


def test_setting_one_entry_leaves_its_neighbours_alone() -> None:
    status_list = P.StatusList(8, 2)
    for idx in range(8):
        status_list[idx] = 3
    status_list[5] = P.STATUS_SUSPENDED
    assert [status_list[i] for i in range(8)] == [3, 3, 3, 3, 3, 2, 3, 3]


@pytest.mark.parametrize("idx", [-1, 131072, 10**12])
def test_status_index_out_of_range(idx: int) -> None:
    status_list = P.StatusList(2**17, 2)
    with pytest.raises(P.StatusIndexOutOfRange) as caught:
        P.status_at(status_list, idx)
    assert caught.value.code == "status_index_out_of_range"


def test_status_index_of_the_wrong_type_is_out_of_range() -> None:
    with pytest.raises(P.StatusIndexOutOfRange):
        P.status_at(P.StatusList(8, 1), True)
    with pytest.raises(P.StatusIndexOutOfRange):
        P.status_at(P.StatusList(8, 1), "3")  # type: ignore[arg-type]


def test_value_too_wide_for_the_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        P.StatusList(8, 1)[0] = 2


def test_signed_status_list_round_trip() -> None:
    status_list = P.StatusList(2**17, 2)
    status_list[4242] = P.STATUS_REVOKED
    token = sign(status_list)
    header = json.loads(P.b64url_decode(token.split(".")[0]))
    assert header["typ"] == "statuslist+jwt"
    verified = verify(token)
    assert verified.uri == STATUS_URI
    assert verified.ttl == 300
    assert P.status_at(verified.status_list, 4242) == P.STATUS_REVOKED
    assert P.status_at(verified.status_list, 4243) == P.STATUS_VALID


def test_status_list_whose_sub_is_not_its_uri_is_refused() -> None:
    token = sign(P.StatusList(64, 1), uri=f"{ISSUER}/v1/status-lists/2")
    with pytest.raises(P.StatusListSubjectMismatch) as caught:
        verify(token)
    assert caught.value.code == "status_list_sub_mismatch"


def test_status_list_naming_another_issuer_is_refused() -> None:
    # Signed by the issuer's own key, but its iss says another member: not this issuer's.
    token = sign(P.StatusList(64, 1), issuer="https://another-city.ccx.example")
    with pytest.raises(P.InvalidClaim, match="is not the issuer"):
        verify(token)


def test_expired_status_list_is_refused() -> None:
    token = sign(P.StatusList(64, 1), exp=NOW + 100)
    verify(token, now=NOW + 100 + 30)  # within the leeway
    with pytest.raises(P.StatusListExpired) as caught:
        verify(token, now=NOW + 100 + 31)
    assert caught.value.code == "status_list_expired"


def test_status_list_with_wrong_typ_is_refused() -> None:
    payload = {
        "iss": ISSUER,
        "sub": STATUS_URI,
        "iat": NOW,
        "exp": NOW + 10,
        "status_list": P.encode_status_list(P.StatusList(8, 1)),
    }
    token = sign_jws({"typ": "jwt", "kid": KID}, json.dumps(payload).encode(), KEY)
    with pytest.raises(P.WrongTyp):
        verify(token)


def test_status_list_signed_by_another_key_is_refused() -> None:
    token = P.sign_status_list(
        P.StatusList(8, 1),
        uri=STATUS_URI,
        issuer=ISSUER,
        issuer_key=ec_key(9),
        kid=KID,
        now=NOW,
        exp=NOW + 60,
        ttl=0,
    )
    with pytest.raises(P.InvalidSignature):
        verify(token)


def test_zlib_bomb_is_refused_before_it_inflates() -> None:
    bomb = zlib.compress(bytes(64 * 1024 * 1024), 9)  # 64 MiB of zeros in ~64 KiB
    claim = {"bits": 1, "lst": P.b64url_encode(bomb)}
    with pytest.raises(P.StatusListTooLarge) as caught:
        P.decode_status_list(claim, max_bytes=1 << 20)
    assert caught.value.code == "status_list_too_large"


def test_list_exactly_at_the_limit_is_accepted() -> None:
    claim = {"bits": 8, "lst": P.b64url_encode(zlib.compress(bytes(4096)))}
    assert len(P.decode_status_list(claim, max_bytes=4096)) == 4096
    with pytest.raises(P.StatusListTooLarge):
        P.decode_status_list(claim, max_bytes=4095)


@pytest.mark.parametrize(
    "claim",
    [
        None,
        [],
        {"bits": 3, "lst": "eNrbuRgAAhcBXQ"},
        {"bits": True, "lst": "eNrbuRgAAhcBXQ"},
        {"bits": 1},
        {"bits": 1, "lst": 5},
        {"bits": 1, "lst": "not base64!"},
        {"bits": 1, "lst": P.b64url_encode(b"not zlib")},
        {"bits": 1, "lst": P.b64url_encode(zlib.compress(b"\x01\x02")[:-3])},
        {"bits": 1, "lst": P.b64url_encode(zlib.compress(b"\x01") + b"trailing")},
        {"bits": 1, "lst": P.b64url_encode(zlib.compress(b""))},
    ],
)
def test_malformed_status_list_claims_are_refused(claim: object) -> None:
    with pytest.raises(P.StatusListMalformed):
        P.decode_status_list(claim)
