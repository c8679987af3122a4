"""What answers anyone (docs/SECURITY.md, trust boundary 1; issue 19, item 8): ``/metrics``
(request counts by route, the registry's state), ``/docs`` and ``/redoc`` (Swagger UI
and ReDoc, loading their scripts from a CDN, where an operator might paste the admin
token) answered anyone. The metrics now answer their scraper's token alone, and the
interactive pages are off unless the operator turns them on."""

from __future__ import annotations

from typing import Any

from tests.conftest import METRICS
from tests.node.pushing import ADMIN, admin_settings


def test_metrics_answer_their_scrapers_token_alone(make_client: Any) -> None:
    node = make_client(**admin_settings())
    assert node.get("/metrics").status_code == 401
    assert node.get("/metrics", headers={"Authorization": "Bearer guess"}).status_code == 403
    assert node.get("/metrics", headers=ADMIN).status_code == 403  # not even the admin's
    answer = node.get("/metrics", headers=METRICS)
    assert answer.status_code == 200
    assert "ccx_http_requests_total" in answer.text


def test_metrics_are_off_without_a_scraper_token(make_client: Any) -> None:
    node = make_client(metrics_token_hash=None)
    response = node.get("/metrics", headers=METRICS)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_interactive_docs_are_off_by_default(make_client: Any) -> None:
    node = make_client()
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert node.get(path).status_code == 404, path
    # the document itself stays public: routes and schemas, no data
    assert node.get("/openapi.json").status_code == 200
