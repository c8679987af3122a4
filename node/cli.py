"""The `ccx` command."""

from __future__ import annotations

import typer

from node.alliance_cli import alliance_app
from node.audit_cli import audit_app
from node.mapping_cli import mapping_app
from node.node_cli import node_app
from node.wallet_cli import wallet_app
from simulator.cli import simulate_command

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


@app.command()
def demo() -> None:
    """Walk through the protocol: issue, present, verify, and refuse a tampered and a replayed copy."""
    from node.demo import run

    run()


@app.command()
def scheduler() -> None:
    """Run the node's scheduled jobs (monthly rescoring, nonce purge) in this process, for
    deployments whose web workers run with CCX_SCHEDULER=false."""

    from node.db import make_engine, migrate
    from node.jobs import build_scheduler
    from node.scoring import load_model
    from node.settings import Settings
    from node.state import Metrics, NodeState, load_keyring

    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    state = NodeState(
        settings, engine, load_keyring(settings), load_model(settings.scoring_model), Metrics()
    )
    typer.echo(
        "ccx scheduler: monthly rescoring on the 1st at 02:00 UTC, nonce purge every 10 minutes"
    )
    build_scheduler(state, blocking=True).start()


@app.callback()
def main() -> None:
    """City Credit Exchange: a federated inter-city credit exchange node."""


if __name__ == "__main__":  # python -m node.cli (how the simulator starts nodes)
    app()
