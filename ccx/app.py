"""The `ccx` command: each package's own command group, put together here and nowhere
else. Nothing imports this module (tests/test_package.py holds that): the node, the
alliance's tools, the wallet and the simulator each bring their commands, and the one
way they report errors (``cli``)."""

from __future__ import annotations

import typer

from alliance.cli import alliance_app
from alliance.mapping_cli import mapping_app
from node.cli import audit_app, node_app, scheduler
from simulator.cli import demo, simulate_command
from wallet.cli import wallet_app

__all__ = ["app"]

app = typer.Typer(
    help="City Credit Exchange: a federated inter-city credit exchange node.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(alliance_app, name="alliance")
app.add_typer(audit_app, name="audit")
app.add_typer(mapping_app, name="mapping")
app.add_typer(node_app, name="node")
app.add_typer(wallet_app, name="wallet")
app.command("simulate")(simulate_command)
app.command("demo")(demo)
app.command("scheduler")(scheduler)


@app.callback()
def main() -> None:
    """City Credit Exchange: a federated inter-city credit exchange node."""
