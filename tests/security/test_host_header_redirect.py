"""The Host header reflected in redirects (issue 19, item 6): ``GET /.well-known/jwks.json/``
with ``Host: evil.example`` answered 307 to ``http://evil.example/.well-known/jwks.json``,
method and body kept, so a link to the node could send a wallet or a service point to
another host. The node redirects nothing: a path with a trailing slash is not found."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_a_trailing_slash_is_not_redirected_to_the_host_header(client: TestClient) -> None:
    for method, path in (
        ("GET", "/.well-known/jwks.json/"),
        ("GET", "/healthz/"),
        ("POST", "/v1/verifications/"),
        ("POST", "/v1/records/"),
    ):
        response = client.request(
            method, path, headers={"Host": "evil.example"}, json={}, follow_redirects=False
        )
        assert response.status_code == 404, (method, path, response.status_code)
        assert "location" not in response.headers
        assert "evil.example" not in response.text
