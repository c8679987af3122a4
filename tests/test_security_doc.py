"""docs/SECURITY.md can't drift from the suite: every test it names exists, each threat
of issue 7 has a section that names at least one, every security test is named there,
and the known gaps it marks are the ones its table lists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parent.parent
DOCUMENT = ROOT / "docs" / "SECURITY.md"
# The threats issue 7 lists ("a forged or replayed presentation" is two sections).
REQUIRED_THREATS = [
    "Forged presentation",
    "Replayed presentation",
    "Malicious member node",
    "Compromised department token",
    "Stolen holder key",
    "Registry rollback",
    "Flood of verifications",
]
CITATION = re.compile(r"`(tests/[\w/]+\.py)((?:::\w+(?:\[[^`\]]*\])?)+)`")
HEADING = re.compile(r"^(#{2,3}) (.+)$", re.MULTILINE)
GAP_MENTION = re.compile(r"known gap \(([A-Z])\)", re.IGNORECASE)
GAP_ROW = re.compile(r"^\| ([A-Z]) \|", re.MULTILINE)


def text() -> str:
    return DOCUMENT.read_text(encoding="utf-8")


def citations(body: str) -> list[str]:
    return [path + names for path, names in CITATION.findall(body)]


def sections(body: str) -> dict[str, str]:
    """Heading text (its number stripped) -> the text up to the next heading."""
    found = list(HEADING.finditer(body))
    out: dict[str, str] = {}
    for k, match in enumerate(found):
        end = found[k + 1].start() if k + 1 < len(found) else len(body)
        title = re.sub(r"^\d+\.\s*", "", match.group(2)).strip()
        out[title] = body[match.end() : end]
    return out


def resolve(nodeid: str) -> Any:
    """The test function a node id names (``path::test``, ``path::Class::test``, either
    with a ``[parameter id]``), or an AssertionError saying what is missing."""
    path, *names = nodeid.split("::")
    assert (ROOT / path).is_file(), f"{nodeid}: no file {path}"
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    target: Any = module
    for name in names:
        bare, _, parameters = name.partition("[")
        target = getattr(target, bare, None)
        assert target is not None, f"{nodeid}: {path} has no {bare}"
        if parameters:
            marks = [m.name for m in getattr(target, "pytestmark", [])]
            assert "parametrize" in marks, f"{nodeid}: {bare} is not parametrized"
    assert callable(target), f"{nodeid} is not a test"
    assert names[-1].startswith("test"), f"{nodeid}: pytest would not collect it"
    return target


def test_the_document_names_tests() -> None:
    assert len(set(citations(text()))) >= 50


@pytest.mark.parametrize("nodeid", sorted(set(citations(text()))))
def test_every_cited_test_exists(nodeid: str) -> None:
    resolve(nodeid)


@pytest.mark.parametrize("threat", REQUIRED_THREATS)
def test_each_threat_of_the_issue_has_a_section_with_a_test(threat: str) -> None:
    matching = {title: body for title, body in sections(text()).items() if threat in title}
    assert matching, f"docs/SECURITY.md has no section on {threat!r}"
    for title, body in matching.items():
        assert citations(body), f"section {title!r} names no test"
        for part in ("**The attack.**", "**What the node does.**", "**What it does not"):
            assert part in body, f"section {title!r} lacks {part}"


def test_every_security_test_is_named_in_the_document() -> None:
    cited = {nodeid.split("[")[0] for nodeid in citations(text())}
    written = {
        f"tests/security/{path.name}::{name}"
        for path in sorted((ROOT / "tests" / "security").glob("test_*.py"))
        for name in re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M)
    }
    assert written, "tests/security holds tests"
    assert sorted(written - cited) == []


def test_every_known_gap_mentioned_is_in_the_table_and_the_other_way_round() -> None:
    body = text()
    mentioned = {letter.upper() for letter in GAP_MENTION.findall(body)}
    listed = set(GAP_ROW.findall(body))
    assert "\n## Known gaps\n" in body  # kept, to say what is open (none since issue 17)
    assert mentioned == listed


def test_every_expected_failure_cited_marks_a_listed_gap() -> None:
    listed = set(GAP_ROW.findall(text()))
    for nodeid in sorted(set(citations(text()))):
        marks = getattr(resolve(nodeid), "pytestmark", [])
        for mark in (m for m in marks if m.name == "xfail"):
            assert mark.kwargs.get("strict") is True, f"{nodeid}: an xfail must be strict"
            gap = re.search(r"known gap ([A-Z])\b", mark.kwargs.get("reason", ""))
            assert gap is not None, f"{nodeid}: its reason names no known gap"
            assert gap.group(1) in listed, f"{nodeid}: gap {gap.group(1)} is not in the table"
