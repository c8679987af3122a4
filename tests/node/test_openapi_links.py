"""The OpenAPI document's links (node/openapi_links.py): each points at an operation the
document has, with parameters the target takes, filled from a field the source's answer
has; and following one does what it says."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from node.app import create_app, initialize_node
from node.openapi_links import LINKS, Link, add_links
from tests.conftest import NOW
from tests.node.conftest import xiamen_settings
from tests.node.pushing import ADMIN, admin_settings


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    settings = xiamen_settings(tmp_path_factory.mktemp("links")).model_copy(update=admin_settings())
    initialize_node(settings, now=NOW)
    return TestClient(create_app(settings, now=lambda: NOW))


def _resolve(document: dict[str, Any], pointer: str) -> dict[str, Any]:
    node: Any = document
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    assert isinstance(node, dict)
    return node


def _schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _resolve(document, schema["$ref"])
    return schema


@pytest.mark.parametrize("link", LINKS, ids=lambda link: link.name + ":" + link.source[0])
def test_each_link_joins_two_operations_by_a_field(client: TestClient, link: Link) -> None:
    document = client.get("/openapi.json").json()
    path, method, status = link.source
    answer = document["paths"][path][method]["responses"][status]
    declared = answer["links"][link.name]
    target = _resolve(document, declared["operationRef"])
    taken = {parameter["name"] for parameter in target.get("parameters", [])}
    assert set(declared["parameters"]) <= taken
    for expression in declared["parameters"].values():
        first = expression.removeprefix("$response.body#/").split("/")[0]
        body = _schema(document, answer["content"]["application/json"]["schema"])
        assert first in body["properties"], (link.name, first)


def test_a_link_to_an_operation_that_is_gone_is_an_error() -> None:
    document: dict[str, Any] = {"paths": {"/a": {"post": {"responses": {"201": {}}}}}}
    gone = Link(("/a", "post", "201"), "x", ("/b/{id}", "get"), {"id": "$response.body#/id"})
    with pytest.raises(KeyError, match=re.escape("no operation get /b/{id}")):
        add_links(document, (gone,))


def test_following_a_link_revokes_the_client_just_made(client: TestClient) -> None:
    made = client.post("/v1/admin/clients", headers=ADMIN,
                       json={"id": "linked", "department": "culture", "scopes": ["records:push"]})  # fmt: skip
    assert made.status_code == 201, made.text
    document = client.get("/openapi.json").json()
    declared = document["paths"]["/v1/admin/clients"]["post"]["responses"]["201"]["links"]
    field = declared["revoke_it"]["parameters"]["client_id"].removeprefix("$response.body#/")
    revoked = client.delete(f"/v1/admin/clients/{made.json()[field]}", headers=ADMIN)
    assert revoked.status_code in (200, 204), revoked.text
    listed = client.get("/v1/admin/clients", headers=ADMIN).json()
    assert "linked" not in {one["id"] for one in listed["clients"]}
