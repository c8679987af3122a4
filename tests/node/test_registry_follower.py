"""The node's registry follower (node/services/registry.py): what it takes, what it
keeps on failure, future versions, gaps, restarts. The alliance host is an httpx
MockTransport (the HTTP edge); the registries are real, signed with a real root key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import protocol as P
from node.services.registry import MAX_REGISTRY_BYTES, RegistryFollower
from tests.conftest import NOW, ed_key
from tests.protocol.test_registry import ROOT, claims

URL = "https://alliance.ccx.test/v1/alliance/registry"


def chain(length: int, overrides: dict[int, dict[str, Any]] | None = None) -> list[str]:
    tokens: list[str] = []
    for version in range(1, length + 1):
        prev = P.registry_hash(tokens[-1]) if tokens else None
        body = claims(version, prev, **(overrides or {}).get(version, {}))
        tokens.append(P.sign_registry(body, root_key=ROOT, now=NOW + version))
    return tokens


class Host:
    """An alliance host serving one current version and every version by number."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.current, self.requests, self.down = tokens, len(tokens), 0, False

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        etag = f'"v{self.current}"'
        if path.endswith("/registry"):
            if request.headers.get("If-None-Match") == etag:
                return httpx.Response(304, headers={"ETag": etag})
            return httpx.Response(200, text=self.tokens[self.current - 1], headers={"ETag": etag})
        version = int(path.rsplit("/", 1)[1])
        return httpx.Response(200, text=self.tokens[version - 1])

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


def follower(tmp_path: Path | None = None) -> RegistryFollower:
    return RegistryFollower(root_key=ROOT.public_key(), folder=tmp_path)


def test_a_first_fetch_takes_the_current_version(tmp_path: Path) -> None:
    host = Host(chain(1))
    node = follower(tmp_path)
    result = node.refresh(host.client(), URL, now=NOW + 10)
    assert result.accepted == (1,)
    assert node.in_effect(NOW + 10).version == 1  # type: ignore[union-attr]
    assert node.staleness(NOW + 70) == 60
    assert (tmp_path / "v1.jwt").read_text() == host.tokens[0]


def test_an_unchanged_registry_is_a_304_and_nothing_changes() -> None:
    host = Host(chain(1))
    node = follower()
    node.refresh(host.client(), URL, now=NOW + 10)
    result = node.refresh(host.client(), URL, now=NOW + 20)
    assert result.unchanged
    assert [r.version for r in node.versions] == [1]
    assert node.last_success == NOW + 20


def test_skipped_versions_are_fetched_and_the_chain_checked() -> None:
    tokens = chain(4)
    host = Host(tokens)
    host.current = 1
    node = follower()
    node.refresh(host.client(), URL, now=NOW + 10)
    host.current = 4
    result = node.refresh(host.client(), URL, now=NOW + 20)
    assert result.accepted == (2, 3, 4)
    assert [r.version for r in node.versions] == [1, 2, 3, 4]


def test_a_failed_fetch_keeps_the_last_good_registry_and_reports_staleness() -> None:
    host = Host(chain(1))
    node = follower()
    node.refresh(host.client(), URL, now=NOW + 10)
    host.down = True
    result = node.refresh(host.client(), URL, now=NOW + 500)
    assert result.error is not None
    assert result.error[0] == "registry_unreachable"
    assert node.in_effect(NOW + 500).version == 1  # type: ignore[union-attr]
    assert node.staleness(NOW + 500) == 490


@pytest.mark.parametrize(
    ("name", "make", "code"),
    [
        (
            "signed_by_another_key",
            lambda t: P.sign_registry(
                claims(2, P.registry_hash(t[0])), root_key=ed_key(99), now=NOW + 2
            ),
            "unknown_kid",  # another key's kid is not the pinned thumbprint
        ),
        ("rollback", lambda t: t[0], None),  # the same version again: unchanged
        (
            "fork",
            lambda t: P.sign_registry(claims(2, "00" * 32), root_key=ROOT, now=NOW + 2),
            "registry_chain_broken",
        ),
        (
            "expired",
            lambda t: P.sign_registry(
                claims(2, P.registry_hash(t[0]), exp=NOW + 5), root_key=ROOT, now=NOW + 2
            ),
            "registry_expired",
        ),
    ],
)
def test_a_bad_new_version_is_refused_and_the_old_one_kept(
    name: str, make: Any, code: str | None
) -> None:
    tokens = chain(1)
    host = Host(tokens)
    node = follower()
    node.refresh(host.client(), URL, now=NOW + 10)
    host.tokens = [tokens[0], make(tokens)]
    host.current = 2 if name != "rollback" else 1
    result = node.refresh(host.client(), URL, now=NOW + 100)
    if code is None:
        assert result.unchanged
    else:
        assert result.error is not None
        assert result.error[0] == code
    assert [r.version for r in node.versions] == [1]
    assert node.versions[0].token == tokens[0]


def test_a_lower_version_than_held_is_a_rollback() -> None:
    tokens = chain(2)
    host = Host(tokens)
    node = follower()
    node.refresh(host.client(), URL, now=NOW + 10)
    host.current = 1
    result = node.refresh(host.client(), URL, now=NOW + 20)
    assert result.error is not None
    assert result.error[0] == "registry_rollback"
    assert node.newest.version == 2  # type: ignore[union-attr]


def test_a_future_version_is_kept_and_takes_effect_at_its_time() -> None:
    tokens = chain(2, {2: {"valid_from": NOW + 1000}})
    host = Host(tokens)
    node = follower()
    result = node.refresh(host.client(), URL, now=NOW + 10)
    assert result.accepted == (1, 2)
    assert node.in_effect(NOW + 999).version == 1  # type: ignore[union-attr]
    assert node.in_effect(NOW + 1000).version == 2  # type: ignore[union-attr]


def test_an_oversized_answer_is_refused_without_reading_it_all() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"A" * (MAX_REGISTRY_BYTES + 1))

    node = follower()
    result = node.refresh(httpx.Client(transport=httpx.MockTransport(handler)), URL, now=NOW)
    assert result.error is not None
    assert result.error[0] == "registry_unreachable"
    assert node.versions == []


def saved_chain(tmp_path: Path) -> None:
    host = Host(chain(3))
    host.current = 1
    node = follower(tmp_path)
    node.refresh(host.client(), URL, now=NOW + 10)
    host.current = 3
    assert node.refresh(host.client(), URL, now=NOW + 10).accepted == (2, 3)


def test_a_first_fetch_takes_only_the_current_version() -> None:
    node = follower()
    assert node.refresh(Host(chain(3)).client(), URL, now=NOW + 10).accepted == (3,)


def test_a_restart_resumes_from_the_saved_versions(tmp_path: Path) -> None:
    saved_chain(tmp_path)
    again = follower(tmp_path)
    assert again.load(now=NOW + 20) == 3
    assert [r.version for r in again.versions] == [1, 2, 3]


def test_a_tampered_saved_version_stops_the_load_there(tmp_path: Path) -> None:
    saved_chain(tmp_path)
    saved = (tmp_path / "v2.jwt").read_text()
    (tmp_path / "v2.jwt").write_text(saved[:-2] + ("A" if saved[-2] != "A" else "B") + saved[-1])
    again = follower(tmp_path)
    assert again.load(now=NOW + 20) == 1
    assert [r.version for r in again.versions] == [1]


def test_versions_are_looked_for_beside_a_static_current_file() -> None:
    from node.services.registry import version_url

    assert version_url("https://a.test/registry/current.jwt", 3) == "https://a.test/registry/v3.jwt"
    assert version_url(URL, 3) == f"{URL}/versions/3"
