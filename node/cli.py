"""The `ccx` command."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="City Credit Exchange: a federated inter-city credit exchange node.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def demo() -> None:
    """Walk through the protocol: issue, present, verify, and refuse a tampered and a replayed copy."""
    from node.demo import run

    run()


@app.callback()
def main() -> None:
    """City Credit Exchange: a federated inter-city credit exchange node."""
