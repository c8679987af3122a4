"""Package-level rules: pure packages stay pure, exported names are what the design fixes."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

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
