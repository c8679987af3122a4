"""`ccx` starts at once (issue 20): a command's help, and the commands that neither serve
nor compute, do not load the web framework, the database, numpy or matplotlib. These
tests look at what a fresh interpreter has imported, not at the clock; the time itself
is measured by bench/startup.py (docs/PERFORMANCE.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ccx.app import LAZY_GROUPS, app

HEAVY = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "sqlmodel",
    "numpy",
    "matplotlib",
    "uvicorn",
    "sklearn",
)

_PROBE = """
import json, sys
sys.argv = ["ccx", *json.loads(sys.argv[1])]
from ccx.app import app
try:
    app() if len(sys.argv) > 1 else None
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy})))
"""


def _heavy_modules_loaded(*args: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The heavy packages a fresh `ccx ARGS` process has imported when it is done."""
    probe = _PROBE.replace("{heavy}", repr({*HEAVY, *extra}))
    done = subprocess.run(  # noqa: S603 (this interpreter, our own probe)
        [sys.executable, "-c", probe, json.dumps(list(args))],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted({m.split(".")[0] for m in json.loads(done.stdout.splitlines()[-1])})


def test_importing_the_ccx_command_loads_no_heavy_package() -> None:
    assert _heavy_modules_loaded() == []


@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["node", "init", "--help"],
        ["node", "serve", "--help"],
        ["audit", "verify", "--help"],
        ["scheduler", "--help"],
        ["simulate", "--help"],
        ["alliance", "show", "--help"],
        ["mapping", "build", "--help"],
        ["wallet", "keygen", "--help"],
        ["model", "fit", "--help"],
        ["model", "demo-outcomes", "--help"],
    ],
    ids=" ".join,
)
def test_help_loads_no_heavy_package(command: list[str]) -> None:
    assert _heavy_modules_loaded(*command) == []


def test_the_wallets_help_loads_no_http_client() -> None:
    """A kiosk's or a resident's `ccx wallet` loads httpx when it talks to a node."""
    assert _heavy_modules_loaded("wallet", "list", "--help", extra=("httpx",)) == []


@pytest.mark.parametrize("name", sorted(LAZY_GROUPS))
def test_a_group_loaded_when_named_is_listed_with_its_own_help(name: str) -> None:
    load, listed = LAZY_GROUPS[name]
    assert listed == load().info.help


def test_a_group_loaded_when_named_runs_its_commands() -> None:
    result = CliRunner().invoke(app, ["wallet", "keygen", "--help"])
    assert result.exit_code == 0
    assert "holder key" in result.output
    result = CliRunner().invoke(app, ["mapping", "--help"])
    assert result.exit_code == 0
    assert "build" in result.output
    assert "apply" in result.output
