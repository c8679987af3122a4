"""`ccx simulate`: a whole alliance on this machine (issue 6, docs/SIMULATOR.md). The
phases of simulator/world.py in order, the faults injected during the visits
(simulator/faults.py), the invariants checked at the end (simulator/invariants.py); the
report is written by simulator/report.py."""

from __future__ import annotations

import asyncio
import os
import secrets
import time

from rich.console import Console

from simulator import faults, invariants
from simulator.observations import RunResult
from simulator.world import Options, World

__all__ = ["Options", "Simulation", "simulate"]


class Simulation(World):
    """A world whose phases run in order, with faults and invariants."""

    # --- the run ----------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run every phase; the processes are stopped whatever happens."""
        started = time.monotonic()
        saved_env = {k: v for k, v in os.environ.items() if k.startswith("CCX_")}
        for name in saved_env:  # the operator's own CCX_* settings must not leak into the run
            del os.environ[name]
        os.environ["CCX_KEYRING_PASSPHRASE"] = secrets.token_urlsafe(24)
        try:
            asyncio.run(self._main())
        finally:
            self.stop_all()
            os.environ.pop("CCX_KEYRING_PASSPHRASE", None)
            os.environ.update(saved_env)
        self.result.total_seconds = time.monotonic() - started
        return self.result

    async def _main(self) -> None:
        self._progress_event = asyncio.Event()
        async with self.api:
            with self.phase("alliance and nodes started"):
                await asyncio.to_thread(self.make_alliance)
            with self.phase("members admitted, registry v1 published"):
                await asyncio.to_thread(self.admit_members)
                await self.wait_registry(1)
            with self.phase("records pushed by the departments"):
                await self.push_records()
            with self.phase("everyone rescored, distribution summaries taken"):
                await self.rescore()
            with self.phase("mapping tables built, signed and published (v2)"):
                await asyncio.to_thread(self.publish_tables)
                await self.wait_registry(self.registry_version)
            with self.phase("residents consented and took credentials through offers"):
                await self.enrol_holders()
            with self.phase("housekeepers' records pushed, domestic-service credentials taken"):
                await self.enrol_housekeepers()
            with self.phase("service points registered"):
                await self.register_service_points()
            with self.phase("visits"):
                await self.run_visits(faults.schedule(self) if self.options.faults else [])
            with self.phase("faults judged, invariants checked"):
                for finish in self.finishers:
                    await finish()
                self.result.faults.sort(key=lambda fault: fault.at)
                await invariants.check_online(self)
        # the files are read with every node stopped (SQLite's WAL folded in or left whole)
        self.stop_all()
        with self.phase("no raw record outside its home node"):
            self.result.invariants.append(await asyncio.to_thread(invariants.raw_records, self))
        self.result.cities = [self.city_info(city) for city in self.cities.values()]
        self.result.domestic_cities = {c.name: c.issues_domestic for c in self.cities.values()}
        self.result.latencies = self.api.latencies


def simulate(options: Options, console: Console | None = None) -> RunResult:
    return Simulation(options, console).run()
