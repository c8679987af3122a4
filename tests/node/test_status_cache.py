"""Other cities' status lists (node/services/status_cache.py): where they may come from,
how long a copy serves, what a down issuer costs, and when the node fails closed.

The issuing node is an httpx MockTransport (the HTTP edge) that can be switched down;
the status lists are real tokens signed with a member key of a real signed registry."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import protocol as P
from node.errors import NodeError
from node.services.status_cache import (
    MAX_STATUS_LIST_BYTES,
    MAX_TTL,
    MIN_TTL,
    RETRY_AFTER,
    StatusListCache,
    allowed_status_uri,
    status_stale_limit,
)
from tests.conftest import ISSUER, NOW, STATUS_URI, ec_key
from tests.protocol.test_registry import MEMBER_KEY, ROOT, claims, member_jwk

KID = member_jwk()["kid"]
STALE_LIMIT = 600
REVOKED_IDX, VALID_IDX = 4242, 4243


def registry(**overrides: Any) -> P.Registry:
    overrides.setdefault("policy", {"status_stale_limit": STALE_LIMIT})
    token = P.sign_registry(claims(1, None, **overrides), root_key=ROOT, now=NOW - 10)
    return P.verify_registry(token, root_key=ROOT.public_key(), now=NOW)


def status_list(*revoked: int) -> P.StatusList:
    entries = P.StatusList(2**17, 2)
    for idx in revoked:
        entries[idx] = P.STATUS_REVOKED
    return entries


def sign(
    entries: P.StatusList,
    *,
    uri: str = STATUS_URI,
    iat: int = NOW,
    ttl: int = 300,
    exp: int | None = None,
    key: Any = MEMBER_KEY,
) -> str:
    kid = P.jwk_thumbprint(P.public_jwk(key))
    return P.sign_status_list(
        entries,
        uri=uri,
        issuer=ISSUER,
        issuer_key=key,
        kid=kid,
        now=iat,
        exp=exp if exp is not None else iat + 86400,
        ttl=ttl,
    )


class IssuerNode:
    """The issuing city's node: serves the tokens it was given, by URL; can go down."""

    def __init__(self, token: str | None = None) -> None:
        self.tokens: dict[str, str] = {STATUS_URI: token} if token else {}
        self.requests: list[str] = []
        self.down = False
        self.delay = 0.0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if self.delay:
            time.sleep(self.delay)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        token = self.tokens.get(str(request.url))
        if token is None:
            return httpx.Response(404)
        return httpx.Response(
            200, text=token, headers={"Content-Type": "application/statuslist+jwt"}
        )

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


def ref(idx: int = REVOKED_IDX, uri: str = STATUS_URI) -> P.StatusReference:
    return P.StatusReference(uri=uri, idx=idx)


def unavailable(cache: StatusListCache, node: IssuerNode, reg: P.Registry, now: int) -> NodeError:
    with pytest.raises(NodeError) as caught:
        cache.status_of(node.client(), reg, ref(), ISSUER, now=now)
    assert caught.value.code == "status_unavailable"
    assert caught.value.status == 503
    return caught.value


# --- reading ----------------------------------------------------------------------------


def test_a_valid_index_reads_0_and_a_revoked_one_1() -> None:
    node, cache, reg = IssuerNode(sign(status_list(REVOKED_IDX))), StatusListCache(), registry()
    assert cache.status_of(node.client(), reg, ref(VALID_IDX), ISSUER, now=NOW) == P.STATUS_VALID
    assert cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW) == P.STATUS_REVOKED
    assert node.requests == [STATUS_URI]


def test_an_index_outside_the_list_is_a_4xx_with_the_protocol_code() -> None:
    node, cache = IssuerNode(sign(status_list())), StatusListCache()
    with pytest.raises(NodeError) as caught:
        cache.status_of(node.client(), registry(), ref(2**17), ISSUER, now=NOW)
    assert caught.value.code == "status_index_out_of_range"
    assert 400 <= caught.value.status < 500


# --- the ttl ----------------------------------------------------------------------------


def test_a_copy_serves_without_a_request_within_its_ttl() -> None:
    node, cache, reg = IssuerNode(sign(status_list(), ttl=300)), StatusListCache(), registry()
    for now in (NOW, NOW + 1, NOW + 299):
        assert cache.status_of(node.client(), reg, ref(), ISSUER, now=now) == P.STATUS_VALID
    assert len(node.requests) == 1
    assert cache.snapshot().hits == 2


def test_the_list_is_fetched_again_after_its_ttl() -> None:
    node, cache, reg = IssuerNode(sign(status_list(), ttl=300)), StatusListCache(), registry()
    assert cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW) == P.STATUS_VALID
    node.tokens[STATUS_URI] = sign(status_list(REVOKED_IDX), iat=NOW + 200)
    assert cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW + 300) == P.STATUS_REVOKED
    assert len(node.requests) == 2


@pytest.mark.parametrize(
    ("ttl", "cached_for"),
    [(0, MIN_TTL), (MIN_TTL - 1, MIN_TTL), (10**9, MAX_TTL)],
    ids=["ttl_0_gets_the_floor", "a_short_ttl_gets_the_floor", "a_year_long_ttl_is_capped"],
)
def test_the_ttl_is_bounded(ttl: int, cached_for: int) -> None:
    token = sign(status_list(), ttl=ttl, exp=NOW + 10 * 86400)
    node, cache, reg = IssuerNode(token), StatusListCache(), registry()
    cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW)
    cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW + cached_for - 1)
    assert len(node.requests) == 1
    cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW + cached_for)
    assert len(node.requests) == 2


# --- a down issuer ----------------------------------------------------------------------


def test_a_down_issuer_is_covered_up_to_the_stale_limit_then_the_node_fails_closed() -> None:
    node, cache, reg = (
        IssuerNode(sign(status_list(REVOKED_IDX), ttl=300)),
        StatusListCache(),
        registry(),
    )
    cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW)
    node.down = True
    for now in (NOW + 300, NOW + 299 + STALE_LIMIT):  # fresh until NOW + 300, then stale
        assert cache.status_of(node.client(), reg, ref(), ISSUER, now=now) == P.STATUS_REVOKED
    error = unavailable(cache, node, reg, NOW + 300 + STALE_LIMIT)
    assert f"unreachable for {STALE_LIMIT} s" in error.message
    assert f"serve {STALE_LIMIT} s past its ttl" in error.message
    assert error.details["cause"] == "status_list_unreachable"
    stats = cache.snapshot()
    assert (stats.stale_served, stats.unavailable, stats.fetches) == (2, 1, 3)


def test_a_registry_without_a_stale_limit_fails_closed_at_once() -> None:
    node, cache, reg = (
        IssuerNode(sign(status_list(), ttl=300)),
        StatusListCache(),
        registry(policy={}),
    )
    cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW)
    node.down = True
    unavailable(cache, node, reg, NOW + 300)


@pytest.mark.parametrize("value", [None, True, -1, 7 * 86400 + 1, "86400", 1.5])
def test_a_stale_limit_that_is_not_whole_seconds_in_range_counts_as_0(value: Any) -> None:
    policy = {} if value is None else {"status_stale_limit": value}
    assert status_stale_limit(registry(policy=policy)) == 0


def test_a_cached_copy_never_serves_past_its_exp() -> None:
    token = sign(status_list(), ttl=300, exp=NOW + 400)
    node, cache, reg = IssuerNode(token), StatusListCache(), registry()
    cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW)
    node.down = True
    assert cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW + 400) == P.STATUS_VALID
    assert "expired" in unavailable(cache, node, reg, NOW + 401).message


def test_with_no_copy_a_down_issuer_fails_closed_at_once() -> None:
    node, cache, reg = IssuerNode(sign(status_list())), StatusListCache(), registry()
    node.down = True
    error = unavailable(cache, node, reg, NOW)
    assert error.details["cause"] == "status_list_unreachable"
    assert "can't be checked" in error.message


def test_a_failed_fetch_is_retried_only_after_retry_after() -> None:
    node, cache, reg = IssuerNode(sign(status_list())), StatusListCache(), registry()
    node.down = True
    for now in (NOW, NOW + RETRY_AFTER - 1):
        unavailable(cache, node, reg, now)
    assert len(node.requests) == 1
    node.down = False
    assert cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW + RETRY_AFTER) == 0
    assert len(node.requests) == 2


# --- where a list may come from: refused before any request (SSRF) ------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/v1/status-lists/1",
        "https://xiamen.ccx.example.evil.example/v1/status-lists/1",
        "https://xiamen.ccx.example:8443/v1/status-lists/1",
        "http://xiamen.ccx.example/v1/status-lists/1",
        "ftp://xiamen.ccx.example/v1/status-lists/1",
        "file:///etc/passwd",
        "https://xiamen.ccx.example/v1/status-lists/1?x=1",
        "https://xiamen.ccx.example/v1/status-lists/1?",
        "https://xiamen.ccx.example/v1/status-lists/1#frag",
        "https://user:pw@xiamen.ccx.example/v1/status-lists/1",
        "https://xiamen.ccx.example@evil.example/v1/status-lists/1",
        "https://xiamen.ccx.example\\@evil.example/v1/status-lists/1",
        "https://xiamen.ccx.example/v1/status-lists/%31",
        "https://xiamen.ccx.example/v1/status-lists/../../admin/keys",
        "https://xiamen.ccx.example/v1/admin/keys",
        "https://xiamen.ccx.example/v1/status-lists/0",
        "https://xiamen.ccx.example/v1/status-lists/01",
        "https://xiamen.ccx.example/v1/status-lists/1/",
        "https://xiamen.ccx.example/v1/status-lists/2147483648",
        "https://xiamen.ccx.example//v1/status-lists/1",
        "https://xiamen.ccx.example/v1/status-lists/1 ",
        "https://xiamen.ccx.example:x/v1/status-lists/1",
        "/v1/status-lists/1",
        "",
    ],
)
def test_a_uri_outside_the_issuers_node_is_refused_without_a_request(uri: str) -> None:
    node, cache = IssuerNode(sign(status_list())), StatusListCache()
    with pytest.raises(NodeError) as caught:
        cache.status_of(node.client(), registry(), ref(uri=uri), ISSUER, now=NOW)
    assert caught.value.code == "status_uri_not_allowed"
    assert caught.value.status == 422
    assert node.requests == []
    assert cache.snapshot().refused == 1


def test_the_fetched_url_is_rebuilt_from_the_member_id() -> None:
    spelled = "HTTPS://Xiamen.CCX.example:443/v1/status-lists/7"
    assert allowed_status_uri(registry(), ISSUER, spelled) == f"{ISSUER}/v1/status-lists/7"


def suspended_member() -> list[dict[str, Any]]:
    return [
        {
            "id": ISSUER,
            "name": "Xiamen",
            "city": "xiamen",
            "status": "suspended",
            "jwks": {"keys": [member_jwk()]},
        }
    ]


@pytest.mark.parametrize(
    ("issuer", "overrides", "code"),
    [
        ("https://evil.example", {}, "issuer_not_member"),
        (ISSUER, {"members": []}, "issuer_not_member"),
        (ISSUER, {"members": suspended_member()}, "issuer_suspended"),
    ],
    ids=["not_a_member", "no_longer_a_member", "suspended"],
)
def test_an_issuer_that_is_not_an_active_member_is_refused_without_a_request(
    issuer: str, overrides: dict[str, Any], code: str
) -> None:
    node, cache = IssuerNode(sign(status_list())), StatusListCache()
    uri = f"{issuer}/v1/status-lists/1"
    with pytest.raises(NodeError) as caught:
        cache.status_of(node.client(), registry(**overrides), ref(uri=uri), issuer, now=NOW)
    assert caught.value.code == code
    assert node.requests == []


# --- what the issuer's node answers -------------------------------------------------------

OTHER_KEY = ec_key(7)


def test_a_list_signed_by_a_key_not_in_the_registry_is_refused() -> None:
    node, cache = IssuerNode(sign(status_list(), key=OTHER_KEY)), StatusListCache()
    error = unavailable(cache, node, registry(), NOW)
    assert error.details["cause"] == "unknown_kid"


def test_a_list_signed_by_a_key_not_in_the_registry_keeps_the_old_copy_within_the_limit() -> None:
    node, cache, reg = IssuerNode(sign(status_list(REVOKED_IDX))), StatusListCache(), registry()
    cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW)
    node.tokens[STATUS_URI] = sign(status_list(), iat=NOW + 100, key=OTHER_KEY)  # "un-revokes"
    assert cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW + 300) == P.STATUS_REVOKED
    assert cache.snapshot().fetch_failures == 1
    assert unavailable(cache, node, reg, NOW + 300 + STALE_LIMIT).details["cause"] == "unknown_kid"


def test_an_older_list_never_replaces_a_newer_one() -> None:
    node = IssuerNode(sign(status_list(REVOKED_IDX), iat=NOW))
    cache, reg = StatusListCache(), registry()
    assert cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW) == P.STATUS_REVOKED
    node.tokens[STATUS_URI] = sign(status_list(), iat=NOW - 3600)  # replayed: before the revocation
    assert cache.status_of(node.client(), reg, ref(), ISSUER, now=NOW + 300) == P.STATUS_REVOKED
    error = unavailable(cache, node, reg, NOW + 300 + STALE_LIMIT)
    assert error.details["cause"] == "status_list_rollback"


@pytest.mark.parametrize(
    ("token", "cause"),
    [
        (sign(status_list(), iat=NOW - 2 * 86400), "status_list_expired"),
        (sign(status_list(), uri=f"{ISSUER}/v1/status-lists/2"), "status_list_sub_mismatch"),
        ("not a jws", "malformed_token"),
    ],
    ids=["expired", "another_lists_token", "garbage"],
)
def test_a_bad_token_is_refused_with_its_cause(token: str, cause: str) -> None:
    error = unavailable(StatusListCache(), IssuerNode(token), registry(), NOW)
    assert error.details["cause"] == cause


def test_an_oversized_answer_is_refused_without_reading_it_all() -> None:
    sent = {"chunks": 0}
    chunk = b"A" * 65536

    def endless() -> Iterator[bytes]:
        while sent["chunks"] < 1000:  # 64 MiB if read to the end
            sent["chunks"] += 1
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    cache = StatusListCache()
    with pytest.raises(NodeError) as caught:
        cache.status_of(
            httpx.Client(transport=httpx.MockTransport(handler)), registry(), ref(), ISSUER, now=NOW
        )
    assert caught.value.details["cause"] == "token_too_large"
    assert sent["chunks"] <= MAX_STATUS_LIST_BYTES // len(chunk) + 1


def test_a_declared_oversized_answer_is_refused_before_its_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = httpx.ByteStream(b"")
        return httpx.Response(200, headers={"Content-Length": str(10**9)}, stream=body)

    with pytest.raises(NodeError) as caught:
        StatusListCache().status_of(
            httpx.Client(transport=httpx.MockTransport(handler)), registry(), ref(), ISSUER, now=NOW
        )
    assert caught.value.details["cause"] == "token_too_large"


def test_an_unknown_list_is_unavailable() -> None:
    error = unavailable(StatusListCache(), IssuerNode(), registry(), NOW)  # the node answers 404
    assert error.details["cause"] == "status_list_unreachable"
    assert "answered 404" in error.message


def test_a_redirect_is_not_followed() -> None:
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data"})

    client = httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)
    with pytest.raises(NodeError) as caught:
        StatusListCache().status_of(client, registry(), ref(), ISSUER, now=NOW)
    assert caught.value.code == "status_unavailable"
    assert requests == [STATUS_URI]


def test_a_content_coded_answer_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Accept-Encoding"] == "identity"
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"\x1f\x8b")

    with pytest.raises(NodeError) as caught:
        StatusListCache().status_of(
            httpx.Client(transport=httpx.MockTransport(handler)), registry(), ref(), ISSUER, now=NOW
        )
    assert caught.value.code == "status_unavailable"


# --- memory and threads ----------------------------------------------------------------


def test_the_cache_holds_at_most_max_entries_least_recently_used_first() -> None:
    uris = [f"{ISSUER}/v1/status-lists/{n}" for n in (1, 2, 3)]
    node = IssuerNode()
    node.tokens = {uri: sign(status_list(), uri=uri) for uri in uris}
    cache, reg = StatusListCache(max_entries=2), registry()
    for uri in (*uris, uris[2], uris[0]):
        cache.status_of(node.client(), reg, ref(uri=uri), ISSUER, now=NOW)
    assert cache.snapshot().entries == 2
    assert node.requests == [*uris, uris[0]]  # list 1 was evicted by list 3


def test_concurrent_callers_cause_one_fetch() -> None:
    node, cache, reg = IssuerNode(sign(status_list(REVOKED_IDX))), StatusListCache(), registry()
    node.delay = 0.2
    client = node.client()
    results: list[int] = []
    barrier = threading.Barrier(8)

    def verify() -> None:
        barrier.wait()
        results.append(cache.status_of(client, reg, ref(), ISSUER, now=NOW))

    threads = [threading.Thread(target=verify) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [P.STATUS_REVOKED] * 8
    assert len(node.requests) == 1
    stats = cache.snapshot()
    assert (stats.fetches, stats.hits) == (1, 7)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="min_ttl"):
        StatusListCache(min_ttl=100, max_ttl=10)


def test_a_cached_list_of_a_member_since_suspended_is_refused_without_a_request() -> None:
    node, cache = IssuerNode(sign(status_list())), StatusListCache()
    cache.status_of(node.client(), registry(), ref(), ISSUER, now=NOW)
    with pytest.raises(NodeError) as caught:
        cache.status_of(
            node.client(), registry(members=suspended_member()), ref(), ISSUER, now=NOW + 1
        )
    assert caught.value.code == "issuer_suspended"
    assert len(node.requests) == 1
