"""What the `ccx` command tests check of a run: success, or one error line and exit 2."""

from __future__ import annotations

from typer.testing import Result

__all__ = ["assert_one_line_error", "ok"]


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def assert_one_line_error(result: Result, code: str, field: str) -> None:
    """The house style (cli/_support.py): ``error [code] field: message`` on stderr,
    one line, exit status 2, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip()
    assert "\n" not in line, line
    assert line.startswith(f"error [{code}] {field}: "), line
