"""The `ccx` command."""

from __future__ import annotations

import typer

from node.audit_cli import audit_app
from node.mapping_cli import mapping_app
from node.node_cli import node_app

app = typer.Typer(
    help="City Credit Exchange: a federated inter-city credit exchange node.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(audit_app, name="audit")
app.add_typer(mapping_app, name="mapping")
app.add_typer(node_app, name="node")


@app.command()
def demo() -> None:
    """Walk through the protocol: issue, present, verify, and refuse a tampered and a replayed copy."""
    from node.demo import run

    run()


@app.callback()
def main() -> None:
    """City Credit Exchange: a federated inter-city credit exchange node."""
