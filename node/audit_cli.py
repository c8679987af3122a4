"""`ccx audit verify`: recompute the node's audit-log hash chain from its database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from node.db import make_engine
from node.services import audit
from node.settings import Settings

__all__ = ["EXIT_BROKEN_CHAIN", "audit_app"]

EXIT_BROKEN_CHAIN = 1

audit_app = typer.Typer(
    help="The node's hash-chained audit log.", no_args_is_help=True, add_completion=False
)


@audit_app.command("verify")
def verify(
    data_dir: Annotated[
        Path | None, typer.Option(help="the node's data folder (CCX_DATA_DIR)")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL (CCX_DATABASE_URL); default: SQLite in data_dir"),
    ] = None,
) -> None:
    """Check every entry's hash and link, in order. Exits 0 for an intact chain, 1 with
    the first broken entry's number otherwise. Reads only; changes nothing."""
    overrides = {k: v for k, v in {"data_dir": data_dir, "database_url": database_url}.items() if v}
    settings = Settings(**overrides)
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            check = audit.verify_chain(session)
            last = audit.head(session)
    finally:
        engine.dispose()
    if check.ok:
        head = f"; head {last.seq} {last.hash}" if last else ""
        typer.echo(f"audit chain ok: {check.entries} entries{head}")
        return
    typer.echo(
        f"audit chain BROKEN at entry {check.first_bad_seq} (of {check.entries} entries): "
        "it, or the entry before it, was changed, inserted or deleted",
        err=True,
    )
    raise typer.Exit(EXIT_BROKEN_CHAIN)
