"""The documents' examples are real: each python block of a document runs, in order, in
one namespace, and prints exactly the text block that follows it."""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# each document and the least number of examples whose output it shows
DOCUMENTS_WITH_EXAMPLES = {
    "docs/MAPPINGS.md": 5,
    "docs/PROTOCOL.md": 4,
    "docs/VERIFYING.md": 3,
    "docs/WALLET.md": 3,
}
# the documents whose examples talk to a node (tests/docs_world.py makes it)
WITH_A_NODE = {"docs/VERIFYING.md", "docs/WALLET.md"}


def _blocks(text: str) -> list[tuple[str, str, int]]:
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        opening = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if opening:
            indent, lang, j = len(opening.group(1)), opening.group(2), i + 1
            while not re.match(r"^\s*```\s*$", lines[j]):
                j += 1
            blocks.append((lang, "\n".join(line[indent:] for line in lines[i + 1 : j]), i + 1))
            i = j + 1
        else:
            i += 1
    return blocks


@pytest.mark.parametrize("document", sorted(DOCUMENTS_WITH_EXAMPLES))
def test_every_python_example_prints_what_the_document_shows(document: str, tmp_path: Path) -> None:
    blocks = _blocks((ROOT / document).read_text(encoding="utf-8"))
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    if document in WITH_A_NODE:
        from tests.docs_world import documents_world

        namespace.update(documents_world(tmp_path))
    checked = 0
    for k, (lang, body, line) in enumerate(blocks):
        if lang != "python":
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(body, f"{document}:{line}", "exec"), namespace)  # noqa: S102
        following = blocks[k + 1] if k + 1 < len(blocks) else None
        assert following is not None, f"{document}:{line}: no output block follows"
        if following[0] == "text":
            assert out.getvalue().rstrip("\n") == following[1].rstrip("\n"), f"{document}:{line}"
            checked += 1
    assert checked >= DOCUMENTS_WITH_EXAMPLES[document]


def test_the_architecture_picture_is_drawn_from_the_code_as_it_is() -> None:
    from scripts.house import BEGIN, END, picture

    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    drawn = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
    assert drawn == picture(ROOT), "stale: run python scripts/house.py --write"
