"""Package-level rules: pure packages stay pure, exported names are what the design fixes."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.house import LAYERS, cycles, layering_breaks, module_graph

ROOT = Path(__file__).parent.parent
PURE_PACKAGES = ("protocol", "keys", "mappings")
FORBIDDEN_IMPORTS = {
    "fastapi",
    "sqlmodel",
    "sqlalchemy",
    "httpx",
    "apscheduler",
    "uvicorn",
    "requests",
    "starlette",
}


def _python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_packages_import_no_io_framework_and_read_no_environment(package: str) -> None:
    problems = []
    for path in _python_files(package):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                names = []
            problems += [
                f"{path}:{node.lineno} imports {n}"
                for n in names
                if n.split(".")[0] in FORBIDDEN_IMPORTS
            ]
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                problems.append(f"{path}:{node.lineno} reads os.{node.attr}")
    assert not problems, "\n".join(problems)


def test_protocol_has_no_hidden_clock() -> None:
    problems = []
    for path in _python_files("protocol"):
        source = path.read_text(encoding="utf-8")
        for needle in ("time.time(", "datetime.now(", "datetime.utcnow(", "time.monotonic("):
            if needle in source:
                problems.append(f"{path} calls {needle}")
    assert not problems, problems


DESIGN_ENTRY_POINTS = {
    "protocol": [
        "issue_attestation",
        "present",
        "verify_presentation",
        "ProtocolError",
        "encode_status_list",
        "decode_status_list",
        "sign_status_list",
        "verify_status_list",
        "status_at",
        "sign_registry",
        "verify_registry",
    ],
    "keys": ["Keyring", "KeyState", "generate_key"],
}


@pytest.mark.parametrize("package", ["protocol", "keys"])
def test_exported_names_exist_and_include_the_design_entry_points(package: str) -> None:
    module = importlib.import_module(package)
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__), "duplicate names in __all__"
    for name in exported:
        assert hasattr(module, name), f"{package}.__all__ names {name} but it is missing"
    assert set(DESIGN_ENTRY_POINTS[package]) <= exported


def test_every_protocol_error_has_a_distinct_stable_code_and_a_4xx_or_5xx_hint() -> None:
    import protocol as P

    errors = [
        getattr(P, n)
        for n in P.__all__
        if isinstance(getattr(P, n), type) and issubclass(getattr(P, n), P.ProtocolError)
    ]
    codes = [e.code for e in errors]
    assert len(errors) > 30
    assert len(set(codes)) == len(codes), "two error classes share a code"
    assert all(c.replace("_", "").isalnum() and c.islower() for c in codes)
    assert all(400 <= e.http_status < 600 for e in errors)


def test_docs_protocol_lists_every_error_code_with_its_http_status() -> None:
    import protocol as P

    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    for name in P._errors.__all__:
        error = getattr(P, name)
        assert f"| `{error.code}` | {error.http_status} | {name} |" in text, (
            f"{error.code} missing from docs/PROTOCOL.md"
        )


# --- the house: no import circle, no arrow against the layering (issue 13) ---------------
# The graph is read from the code by scripts/house.py, which also draws it in
# docs/ARCHITECTURE.md.


def test_no_module_imports_another_in_a_circle() -> None:
    assert cycles(module_graph()) == []


def test_no_import_runs_against_the_layering() -> None:
    graph = module_graph()
    assert {name.split(".")[0] for name in graph} == set(LAYERS), "a layered package is missing"
    assert layering_breaks(graph) == []


def test_the_checks_see_a_circle_and_an_arrow_back_up() -> None:
    # the same checks on a house with one circle and one import against the layering
    graph = {
        "node.state": {"node.services.audit"},
        "node.services.audit": {"node.state", "protocol"},
        "protocol": set(),
        "wallet.cli": {"node.state"},
        "alliance.cli": {"wallet.cli"},
    }
    assert cycles(graph) == [["node.services.audit", "node.state"]]
    assert layering_breaks(graph) == ["alliance.cli -> wallet.cli", "wallet.cli -> node.state"]


def test_the_wallet_and_the_alliance_tools_run_without_the_node(tmp_path: Path) -> None:
    # the packages a kiosk or the alliance's laptop installs, imported with node/ unreachable
    code = (
        "import sys; sys.modules['node'] = None\n"
        "import wallet, wallet.cli, alliance, alliance.cli, alliance.mapping_cli\n"
        "print('ok')"
    )
    result = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr
