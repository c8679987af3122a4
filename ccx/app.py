"""The `ccx` command: each package's own command group, put together here and nowhere
else. Nothing imports this module (tests/test_package.py holds that): the node, the
alliance's tools, the wallet and the simulator each bring their commands, and the one
way they report errors (``cli``).

`ccx` starts in under 0.3 s (issue 20, docs/PERFORMANCE.md): a command module imports
what its commands need inside them, and the groups whose packages load numpy,
cryptography and httpx as they are imported (alliance, mapping, wallet) are imported
only when named; ``ccx --help`` lists them from the help written here, which
tests/test_startup.py holds equal to each group's own."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperGroup

from node.cli import audit_app, node_app, scheduler
from node.kiosk_cli import kiosk_app
from node.records_cli import records_app
from simulator.cli import demo, simulate_command

__all__ = ["LAZY_GROUPS", "app"]


def _alliance_app() -> typer.Typer:
    from alliance.cli import alliance_app

    return alliance_app


def _mapping_app() -> typer.Typer:
    from alliance.mapping_cli import mapping_app

    return mapping_app


def _model_app() -> typer.Typer:
    from node.model_cli import model_app
    from simulator.outcomes import demo_outcomes_command

    # the demo's outcomes are the simulator's (its cities' residents): put together here,
    # as node/ can't import simulator/
    if not any(c.name == "demo-outcomes" for c in model_app.registered_commands):
        model_app.command("demo-outcomes")(demo_outcomes_command)
    return model_app


def _wallet_app() -> typer.Typer:
    from wallet.cli import wallet_app

    return wallet_app


# name -> (the group, imported when called; its help, as `ccx --help` lists it)
LAZY_GROUPS: dict[str, tuple[Callable[[], typer.Typer], str]] = {
    "alliance": (
        _alliance_app,
        "Run an alliance: its root key, members and their issuing keys, the alliance scale, "
        "mapping tables and policy, and the signed registry every node trusts. An alliance "
        "is a folder (--dir); see docs/ALLIANCE.md.",
    ),
    "mapping": (
        _mapping_app,
        "Mapping tables: link a city's local score to the alliance scale (0..1000). Build a "
        "table from a city's distribution summary, inspect it, apply it to scores, compare "
        "cities on a plot, and regenerate the demo alliance's tables.",
    ),
    "model": (
        _model_app,
        "Scoring models: fit a scorecard from a table of past outcomes, and report how "
        "well a model tells defaulters apart (AUC, KS, Gini) and how its predicted default "
        "rates match the observed ones. See docs/MODELS.md.",
    ),
    "wallet": (
        _wallet_app,
        "A resident's wallet: make the holder key, fetch attestations of your credit "
        "standing from your home node, and present them to a verifier (as text or as a QR "
        "code), disclosing only what the verifier asks for.",
    ),
}


class _NotLoaded(TyperGroup):
    """A lazy group before it is named: its name and help, for the list of commands."""


class _Commands(TyperGroup):
    """The `ccx` group: the lazy groups stand in the list of commands (groups after
    commands, by name, as typer lists them) and are built the first time one is named."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = list(self.commands)
        groups = [n for n in names if isinstance(self.commands[n], TyperGroup)]
        commands = {n: self.commands[n] for n in names if n not in groups}
        for name, (_, text) in LAZY_GROUPS.items():
            self.commands[name] = _NotLoaded(name=name, help=text)
        for name in sorted([*groups, *LAZY_GROUPS]):
            commands[name] = self.commands[name]
        self.commands = commands
        for command in commands.values():
            _reflow(command)
        self._listing = False

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True  # the list of commands needs only their help
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if isinstance(command, _NotLoaded) and not self._listing:
            holder = typer.Typer()  # built as app.add_typer would build it
            holder.add_typer(LAZY_GROUPS[cmd_name][0](), name=cmd_name)
            command = typer.main.get_group(holder).commands[cmd_name]
            _reflow(command)
            self.commands[cmd_name] = command
        return command


def _reflow(command: Any) -> None:
    """Join the lines of each prose paragraph of a command's help (and its subcommands'),
    as the docstrings wrap them at the source's width: typer's rich help keeps a single
    line break where it stands and wraps again at the terminal's width, so a paragraph
    came out ragged. A paragraph with a list, an indented line or click's \\b marker is
    kept as written."""
    if command.help:
        paragraphs = inspect.cleandoc(command.help).split("\n\n")
        command.help = "\n\n".join(
            paragraph if _as_written(paragraph) else " ".join(paragraph.split("\n"))
            for paragraph in paragraphs
        )
    for sub in getattr(command, "commands", {}).values():
        _reflow(sub)


def _as_written(paragraph: str) -> bool:
    return paragraph.startswith("\b") or any(
        line.startswith((" ", "-", "*", "$")) for line in paragraph.split("\n")
    )


app = typer.Typer(
    cls=_Commands,
    help="City Credit Exchange: a federated inter-city credit exchange node.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(audit_app, name="audit")
app.add_typer(kiosk_app, name="kiosk")
app.add_typer(node_app, name="node")
app.add_typer(records_app, name="records")
app.command("simulate")(simulate_command)
app.command("demo")(demo)
app.command("scheduler")(scheduler)


@app.callback()
def main() -> None:
    """City Credit Exchange: a federated inter-city credit exchange node."""
