"""The operators' tooling, run as an operator would: `ccx alliance ...`, `ccx mapping
build ...`, `ccx node init ...` and `ccx audit verify`, with their real arguments and checks, in this process
(a subprocess per command would cost a second of imports each on this VM). The command
groups come from their packages; the `ccx` root (ccx/) is never imported."""

from __future__ import annotations

import contextlib
import io

import typer

__all__ = ["ToolingError", "ccx"]


class ToolingError(RuntimeError):
    """A `ccx` command failed; the message holds the command and what it printed."""


def _operators() -> typer.Typer:
    """The operators' command groups the simulator runs, as `ccx` names them."""
    from alliance.cli import alliance_app
    from alliance.mapping_cli import mapping_app
    from node.cli import audit_app, node_app

    operators = typer.Typer(no_args_is_help=True, add_completion=False)
    operators.add_typer(alliance_app, name="alliance")
    operators.add_typer(audit_app, name="audit")
    operators.add_typer(mapping_app, name="mapping")
    operators.add_typer(node_app, name="node")
    return operators


def ccx(*args: str) -> str:
    """Run ``ccx <args>``; its output. ToolingError if it exits non-zero."""
    command = typer.main.get_command(_operators())
    out = io.StringIO()
    code: int | None = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            # Without standalone mode, a command that ends with typer.Exit(n) returns n.
            returned = command.main(args=list(args), prog_name="ccx", standalone_mode=False)
            code = returned if isinstance(returned, int) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:
            # typer bundles its own click: its usage errors and exits are recognised by
            # what they carry, not by class
            exit_code = getattr(exc, "exit_code", None)
            if not isinstance(exit_code, int):
                raise
            show = getattr(exc, "show", None)
            if callable(show):
                show(file=out)
            code = exit_code
    if code:
        raise ToolingError(f"`ccx {' '.join(args)}` exited {code}:\n{out.getvalue().strip()}")
    return out.getvalue()
