"""OpenAPI links (OpenAPI 3.1, section 4.8.20) from the operations that make something to
the operations that use it: a client generator and a reader see how the API's calls
chain, and a stateful scanner follows them (schemathesis's stateful phase: docs/SECURITY.md,
"An external scanner"). FastAPI has no way to declare them on a route, so they are added
to the generated document here, by path, each checked to exist (a renamed route fails the
node's start in tests, never silently drops a link)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["LINKS", "Link", "add_links", "with_links"]


@dataclass(frozen=True)
class Link:
    source: tuple[str, str, str]  # path, method, status of the answer that holds the value
    name: str
    target: tuple[str, str]  # path, method
    parameters: dict[str, str]  # the target's parameter -> a runtime expression


def _many(source: tuple[str, str, str], value: str, target_path: str, *verbs: str) -> list[Link]:
    return [
        Link(
            source, f"{verb}_it", (target_path.format(verb=verb), "post"), {"attestation_id": value}
        )
        for verb in verbs
    ]


LINKS: tuple[Link, ...] = (
    Link(("/v1/admin/clients", "post", "201"), "revoke_it",
         ("/v1/admin/clients/{client_id}", "delete"), {"client_id": "$response.body#/id"}),
    Link(("/v1/presentation-requests", "post", "201"), "its_decision",
         ("/v1/presentation-requests/{transaction_id}", "get"),
         {"transaction_id": "$response.body#/transaction_id"}),
    *_many(("/v1/me/attestations", "get", "200"), "$response.body#/attestations/0/id",
           "/v1/me/attestations/{{attestation_id}}/{verb}", "revoke", "suspend", "resume"),
    Link(("/v1/me/objections", "post", "201"), "resolve_it",
         ("/v1/admin/objections/{objection_id}/resolve", "post"),
         {"objection_id": "$response.body#/id"}),
)  # fmt: skip


def _pointer(path: str, method: str) -> str:
    """A JSON pointer to an operation (RFC 6901: ``~`` as ``~0``, ``/`` as ``~1``)."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def add_links(document: dict[str, Any], links: tuple[Link, ...] = LINKS) -> dict[str, Any]:
    """``document`` with ``links`` added to its answers; a link to or from an operation
    the document doesn't have is a ``KeyError`` naming it (tests build every app)."""
    paths = document["paths"]
    for link in links:
        path, method, status = link.source
        target_path, target_method = link.target
        if target_method not in paths.get(target_path, {}):
            raise KeyError(f"OpenAPI link {link.name}: no operation {target_method} {target_path}")
        answer = paths[path][method]["responses"][status]
        answer.setdefault("links", {})[link.name] = {
            "operationRef": _pointer(target_path, target_method),
            "parameters": dict(link.parameters),
        }
    return document


def with_links(generate: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """FastAPI's ``app.openapi`` with the links added once (it caches its document)."""
    done: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not done:
            done.append(add_links(generate()))
        return done[0]

    return openapi
