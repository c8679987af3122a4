"""`ccx simulate`: run a whole alliance on this machine and write the report; `ccx demo`:
the protocol walked through in one process (simulator/walkthrough.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli import InputError, fail

__all__ = ["demo", "simulate_command"]


def simulate_command(
    residents: Annotated[
        int, typer.Option(min=50, help="synthetic residents over all cities, split evenly")
    ] = 5_000,
    visits: Annotated[int, typer.Option(min=1, help="presentations at service points")] = 5_000,
    holders: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="residents who consent and fetch an attestation (default: one per 20 "
            "visits, at least 20 per city)",
        ),
    ] = None,
    cities: Annotated[
        str,
        typer.Option(
            help="comma-separated cities (at least two) of xiamen, fuzhou, hangzhou, quanzhou, "
            "zhangzhou; the first has its key rotated, the second is killed and restarted"
        ),
    ] = "xiamen,fuzhou,hangzhou,quanzhou,zhangzhou",
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="visits in flight")] = 16,
    seed: Annotated[int, typer.Option(help="the same seed, the same residents and visits")] = 2026,
    faults: Annotated[
        bool, typer.Option(help="inject the faults (rotation, withdrawal, kills, outage)")
    ] = True,
    out: Annotated[
        Path,
        typer.Option(
            help="where the report goes; the nodes' data and logs in OUT/run (wiped by the next run)"
        ),
    ] = Path("simulation"),
    progress: Annotated[bool, typer.Option(help="progress bars")] = True,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="after the run, keep the alliance up with its pages (dashboard, resident "
            "pages, kiosks, web wallet) until Ctrl-C, and print where they are",
        ),
    ] = False,
) -> None:
    """Run a whole alliance on this machine: an alliance host and one node per city as real
    processes on loopback, synthetic residents, scoring, signed mapping tables, consents,
    attestations and visits through the public HTTP APIs, with faults; then check the
    invariants and write OUT/report.md with its plots. Exit status 1 if an invariant fails.

    Example (the large run): ccx simulate --residents 200000 --visits 100000
    """
    from rich.console import Console

    from simulator.report import summary_lines, write_report
    from simulator.run import Options, Simulation

    console = Console(file=sys.stdout, soft_wrap=True)
    options = Options(
        residents=residents,
        visits=visits,
        holders=holders,
        cities=tuple(c.strip() for c in cities.split(",") if c.strip()),
        seed=seed,
        concurrency=concurrency,
        faults=faults,
        out=out,
        progress=progress,
    )
    try:
        simulation = Simulation(options, console)
    except InputError as exc:
        fail(exc)
    console.print(
        f"ccx simulate: {len(options.cities)} cities, {residents:,} residents, "
        f"{options.holders_total():,} holders, {visits:,} visits (seed {seed})"
    )
    try:
        result = simulation.run()
    except (RuntimeError, OSError) as exc:  # a node that won't start, a full disk, ...
        typer.echo(
            f"error: the simulation stopped: {str(exc).strip() or type(exc).__name__}", err=True
        )
        typer.echo(f"  the nodes' logs are in {out / 'run'}/*.log", err=True)
        raise typer.Exit(1) from None
    report = write_report(result, out)
    console.print()
    for line in summary_lines(result):
        console.print(line, highlight=False, markup=False)
    console.print(f"report: {report}")
    if not all(invariant.ok for invariant in result.invariants):
        raise typer.Exit(1)
    if serve:
        import httpx

        from simulator.serve import serve as serve_pages

        try:
            serve_pages(simulation, console)
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            typer.echo(f"error: the pages could not be served: {exc}", err=True)
            raise typer.Exit(1) from None
    else:
        console.print("the pages (dashboard, resident, kiosk, web wallet): ccx simulate --serve")


def demo() -> None:
    """Walk through the protocol: issue, present, verify, and refuse a tampered and a replayed copy."""
    from simulator.walkthrough import run

    run()
