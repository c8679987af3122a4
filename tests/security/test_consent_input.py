"""Hostile consent input (docs/SECURITY.md; issue 19, item 7).

A resident could make ``POST /v1/me/consents`` answer 500: a purpose holding
``eyJhbGciOi.x.`` (the audit log refuses text shaped like a token), or 16 recipients of
180 control characters each (escaped as ``\\u0001``, the audit entry overflowed its 8 KiB
details limit). The input is validated instead, before anything is written: recipients
are "alliance" or node URLs of printable ASCII (and then must be active members of the
registry, which also bounds their size); a purpose is plain text without control or
format characters (Unicode Cc, Cf, Cs, Zl, Zp; spaces of any script and Chinese text are
fine), nothing shaped like a token, at most 500 characters. A refusal is 422 with the
node's error body, naming the field and the rule, never the value."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from node.models import AuditEntry, Consent
from tests.node.issuing_helpers import bearer, node_state
from tests.security.world import World

TOKEN_SHAPED = "eyJhbGciOi.x."


def consent(client: TestClient, recipients: list[str], purpose: str) -> httpx.Response:
    body = {"kind": "share_alliance", "recipients": recipients, "purpose": purpose}
    return client.post("/v1/me/consents", json=body, headers=bearer(client, "alice"))


def written(client: TestClient) -> tuple[int, int]:
    """(consents, audit entries) in the node's database."""
    with Session(node_state(client).engine) as db:
        return len(db.exec(select(Consent)).all()), len(db.exec(select(AuditEntry)).all())


def problems(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    details: list[dict[str, Any]] = error["details"]
    return details


@pytest.mark.parametrize(
    "purpose",
    [
        TOKEN_SHAPED,
        f"library visits {TOKEN_SHAPED} in Fuzhou",
        "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ4In0.sig",
    ],
    ids=["the-probe", "inside-text", "a-whole-jwt"],
)
def test_a_purpose_shaped_like_a_token_is_refused_not_a_500(
    client: TestClient, purpose: str
) -> None:
    response = consent(client, ["alliance"], purpose)
    [detail] = problems(response)
    assert detail["field"] == "share_alliance.purpose"
    assert "shaped like a token" in detail["problem"]
    assert TOKEN_SHAPED not in response.text  # the rule, not the value
    assert written(client) == (0, 0)


@pytest.mark.parametrize("control", ["\x01", "\x1b", "\x7f", "\x85", "\u200b", "\u202e"])
def test_recipients_of_control_characters_are_refused_not_a_500(
    client: TestClient, control: str
) -> None:
    recipients = [f"https://n{i:02d}." + control * 180 for i in range(16)]
    response = consent(client, recipients, "visits")
    details = problems(response)
    assert [d["field"] for d in details] == [f"share_alliance.recipients.{i}" for i in range(16)]
    assert all("pattern" in d["problem"] for d in details)  # the rule: printable ASCII
    assert written(client) == (0, 0)


def test_recipients_at_their_size_limit_that_are_not_members_are_refused_not_a_500(
    world: World,
) -> None:
    recipients = [f"https://n{i:02d}." + "a" * 188 for i in range(16)]
    response = consent(world.xiamen, recipients, "p" * 500)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "recipient_not_member"
    assert [d["field"] for d in error["details"]] == [f"recipients.{i}" for i in range(16)]
    assert written(world.xiamen) == (0, 0)


@pytest.mark.parametrize(
    ("character", "category"),
    [
        ("\n", "Cc"),
        ("\t", "Cc"),
        ("\x00", None),  # refused by the stored-text rule before (no NUL)
        ("\x1b", "Cc"),
        ("\x9b", "Cc"),
        ("\u200b", "Cf"),
        ("\u200e", "Cf"),
        ("\u202e", "Cf"),
        ("\u2066", "Cf"),
        ("\ufeff", "Cf"),
        ("\u2028", "Zl"),
        ("\u2029", "Zp"),
    ],
    ids=lambda value: repr(value) if isinstance(value, str) and len(value) == 1 else str(value),
)
def test_a_purpose_with_a_control_or_format_character_is_refused(
    client: TestClient, character: str, category: str | None
) -> None:
    [detail] = problems(consent(client, ["alliance"], f"library{character}visits"))
    assert detail["field"] == "share_alliance.purpose"
    if category is not None:
        assert f"Unicode category {category}" in detail["problem"]
        assert "position 7" in detail["problem"]
    assert written(client) == (0, 0)


def test_a_purpose_with_a_lone_surrogate_is_refused_not_a_500(client: TestClient) -> None:
    # JSON may escape a lone surrogate; no UTF-8 can hold it, so no database can store it.
    # The body's parser refuses it already; the purpose's rule (no Cs) would otherwise.
    body = b'{"kind": "share_alliance", "recipients": ["alliance"], "purpose": "a\\ud800b"}'
    response = client.post(
        "/v1/me/consents",
        content=body,
        headers={**bearer(client, "alice"), "Content-Type": "application/json"},
    )
    [detail] = problems(response)
    assert detail["field"] == "share_alliance.purpose"
    assert "unicode" in detail["problem"]
    assert written(client) == (0, 0)


def test_a_purpose_over_500_characters_is_refused(client: TestClient) -> None:
    [detail] = problems(consent(client, ["alliance"], "信" * 501))
    assert detail["field"] == "share_alliance.purpose"
    assert "500" in detail["problem"]


@pytest.mark.parametrize(
    "purpose",
    [
        "在厦门访问期间免押金借阅图书",
        "医院先诊疗后付费　（厦门、福州）：额度一千元。",
        "信" * 500,
        "Bibliothèque — prêt sans caution ≥ 600 😀",
    ],
    ids=["chinese", "chinese-full-width", "chinese-at-the-limit", "other-scripts"],
)
def test_a_plain_purpose_in_chinese_or_any_script_is_taken_and_audited(
    client: TestClient, purpose: str
) -> None:
    response = consent(client, ["alliance"], purpose)
    assert response.status_code == 201, response.text
    assert response.json()["purpose"] == purpose
    with Session(node_state(client).engine) as db:
        [entry] = db.exec(select(AuditEntry)).all()
    assert entry.action == "consent.granted"
    assert entry.details["purpose"] == purpose
    assert len(json.dumps(entry.details, ensure_ascii=False).encode()) < 8192
