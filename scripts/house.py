#!/usr/bin/env python3
"""The house read from the code: every module of the layered packages and the modules it
imports, its import circles, its imports against the layering, and the picture of the
packages and their arrows in docs/ARCHITECTURE.md (between the ``house`` markers), so
that the picture can't drift from the code. tests/test_package.py holds the rules;
tests/test_docs.py holds the picture to what this draws now.

    python scripts/house.py            print the picture
    python scripts/house.py --write    redraw it in docs/ARCHITECTURE.md
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

__all__ = [
    "LAYERS",
    "cycles",
    "layering_breaks",
    "module_graph",
    "package_arrows",
    "picture",
    "write_picture",
]

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "ARCHITECTURE.md"
BEGIN, END = "<!-- house: begin (scripts/house.py --write) -->", "<!-- house: end -->"

# protocol <- keys <- mappings <- cli <- {alliance, wallet} <- node <- simulator <- ccx: a
# package may import its own modules and packages of a lower layer, never one of its own
# layer but itself, nor a higher one. ccx (the command root) is imported by nothing.
LAYERS = {
    "protocol": 0,
    "keys": 1,
    "mappings": 2,
    "cli": 3,
    "alliance": 4,
    "wallet": 4,
    "node": 5,
    "simulator": 6,
    "ccx": 7,
}


def module_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Every module of the layered packages (migrations aside) and the project modules it
    imports: every import statement counts, inside functions and under TYPE_CHECKING too."""
    paths: dict[str, Path] = {}
    for package in LAYERS:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            paths[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package_parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    prefix = package_parts[: len(package_parts) - node.level + 1]
                    base = ".".join([*prefix, *([base] if base else [])])
                candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in paths:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for target in sorted(graph.get(name, ())):
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def layering_breaks(graph: dict[str, set[str]]) -> list[str]:
    """Imports against LAYERS, as ``importer -> imported``."""
    breaks = []
    for name, targets in sorted(graph.items()):
        home = name.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other != home and LAYERS[other] >= LAYERS[home]:
                breaks.append(f"{name} -> {target}")
    return breaks


def package_arrows(graph: dict[str, set[str]]) -> Counter[tuple[str, str]]:
    """How many module imports run from each package to each other package."""
    arrows: Counter[tuple[str, str]] = Counter()
    for name, targets in graph.items():
        for target in targets:
            home, other = name.split(".")[0], target.split(".")[0]
            if home != other:
                arrows[(home, other)] += 1
    return arrows


# What each box says under its name (the layering's rooms, docs/ARCHITECTURE.md).
ROLES = {
    "protocol": "wire formats and checks (pure)",
    "keys": "keyrings (pure)",
    "mappings": "scale and score linking (pure)",
    "cli": "what every command shares",
    "alliance": "the alliance administrators",
    "wallet": "the resident",
    "node": "the city node",
    "simulator": "an alliance on one machine",
    "ccx": "the ccx command",
}


def picture(root: Path = ROOT) -> str:
    """The packages and their arrows (A --> B: modules of A import modules of B), as a
    Mermaid flowchart, layers from the top."""
    arrows = package_arrows(module_graph(root))
    lines = ["```mermaid", "flowchart TD"]
    for package in sorted(LAYERS, key=lambda p: (-LAYERS[p], p)):
        lines.append(f'    {package}["{package}/<br/>{ROLES[package]}"]')
    for home, other in sorted(arrows, key=lambda a: (-LAYERS[a[0]], a[0], -LAYERS[a[1]], a[1])):
        lines.append(f"    {home} --> {other}")
    lines.append("```")
    return "\n".join(lines)


def write_picture(document: Path = DOCUMENT, root: Path = ROOT) -> bool:
    """Redraw the picture between the markers of ``document``; whether it changed."""
    text = document.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n" + picture(root) + "\n" + text[end:]
    if new == text:
        return False
    document.write_text(new, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="redraw docs/ARCHITECTURE.md")
    args = parser.parse_args(argv)
    graph = module_graph()
    circles, breaks = cycles(graph), layering_breaks(graph)
    if args.write:
        print("docs/ARCHITECTURE.md", "redrawn" if write_picture() else "already current")
    else:
        print(picture())
    print(
        f"house: {len(circles)} circles, {len(breaks)} imports against the layering",
        file=sys.stderr,
    )
    return 1 if circles or breaks else 0


if __name__ == "__main__":
    sys.exit(main())
