"""`ccx simulate` end to end: one small run of the whole alliance (an alliance host and
three city nodes as real processes on loopback, every fault injected), shared by the tests
of this module, and the command's refusals of options it cannot run with.

The run takes 25 to 35 s on the project's 2-vCPU VM, most of it the four nodes starting
together and the faults' fixed pauses (a node down for 2 s and restarted, the alliance
host down for 4 s and restarted), which a smaller run can't shorten.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from ccx.app import app
from simulator.cluster import NodeProcess
from simulator.observations import Fault, Invariant, RunResult
from simulator.report import write_report
from simulator.run import Options, Simulation
from simulator.serve import serve

# xiamen's key is rotated, fuzhou's node killed, zhangzhou's history rewritten
CITIES = ("xiamen", "fuzhou", "zhangzhou")
VISITS = 300
# An operator's setting the run must neither pass to its nodes (a node would create this
# file and share it with the others) nor lose.
SENTINEL_DATABASE = Path("/nonexistent/should-not-be-used")
SENTINEL_DATABASE_URL = f"sqlite:///{SENTINEL_DATABASE}"
INVARIANTS = (
    "every audit chain intact",
    "every node's history matches its witnessed checkpoints",
    "every granted decision traceable in an audit log",
    "no revoked attestation accepted after the ttl",
    "no raw record outside its home node",
)
FAULTS = (
    "key rotation at xiamen",
    "registry version published mid-run",
    "consent withdrawn",
    "tampered and replayed presentations",
    "node fuzhou killed and restarted",
    "alliance host down",
    "history rewritten at zhangzhou",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Run:
    simulation: Simulation
    result: RunResult
    report: Path
    spawned: list[subprocess.Popen[bytes]]  # every process the run started, restarts included
    ccx_env_before: dict[str, str]
    ccx_env_after: dict[str, str]


def _ccx_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith("CCX_")}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("simulation")
    spawned: list[subprocess.Popen[bytes]] = []
    start = NodeProcess.start

    def start_and_keep(node: NodeProcess) -> None:
        start(node)
        if node.process is not None and node.process not in spawned:
            spawned.append(node.process)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CCX_DATABASE_URL", SENTINEL_DATABASE_URL)
        patch.setattr(NodeProcess, "start", start_and_keep)
        before = _ccx_env()
        simulation = Simulation(
            Options(
                residents=300,
                visits=VISITS,
                cities=CITIES,
                concurrency=8,
                out=out,
                progress=False,
            )
        )
        result = simulation.run()
        after = _ccx_env()
    report = write_report(result, out)
    return Run(simulation, result, report, spawned, before, after)


def _invariant(result: RunResult, name: str) -> Invariant:
    return next(invariant for invariant in result.invariants if invariant.name == name)


def _fault(result: RunResult, name: str) -> Fault:
    return next(fault for fault in result.faults if fault.name == name)


def test_the_run_checks_every_invariant(run: Run) -> None:
    assert sorted(invariant.name for invariant in run.result.invariants) == sorted(INVARIANTS)


@pytest.mark.parametrize("name", INVARIANTS)
def test_invariant_holds(run: Run, name: str) -> None:
    invariant = _invariant(run.result, name)
    assert invariant.ok, invariant.detail


def test_every_fault_is_injected(run: Run) -> None:
    assert sorted(fault.name for fault in run.result.faults) == sorted(FAULTS)


@pytest.mark.parametrize("name", FAULTS)
def test_fault_is_handled(run: Run, name: str) -> None:
    fault = _fault(run.result, name)
    assert fault.ok, "\n".join([fault.action, f"-> {fault.observed}", *fault.details])


def test_every_requested_visit_is_made_by_locals_and_visitors(run: Run) -> None:
    visits = run.result.visits
    assert len(visits) == VISITS
    outcomes = {visit.outcome for visit in visits}
    assert {"granted", "denied"} <= outcomes
    assert any(visit.local for visit in visits)
    assert any(not visit.local for visit in visits)
    assert {visit.city for visit in visits} == set(CITIES)


def test_housekeepers_are_checked_on_their_domestic_service_credential(run: Run) -> None:
    """Issue 18: besides the scenario visits, agencies and families check housekeepers
    in every member city on the domestic-service credential; the report shows them."""
    checks = run.result.domestic
    assert checks, "no domestic-service check was made"
    assert {check.scenario for check in checks} <= {
        "domestic_agency_hiring",
        "domestic_family_check",
    }
    assert "granted" in {check.outcome for check in checks}
    assert all(check.code != "credential_not_issued_by_member" for check in checks)
    assert any(run.result.domestic_cities.values())
    assert "## Domestic-service checks" in run.report.read_text(encoding="utf-8")


def test_the_visits_run_on_openid4vp_and_are_timed(run: Run) -> None:
    latencies = run.result.latencies
    decided = sum(1 for visit in run.result.visits if visit.decided)
    # every visit asks for a presentation request (timed even when no answer comes);
    # every decided one was fetched, answered and read back; the faults add their own
    assert len(latencies["POST /v1/presentation-requests"]) >= VISITS
    for step in ("GET /oid4vp/requests/{request_id}", "POST /oid4vp/responses/{transaction_id}",
                 "GET /v1/presentation-requests/{transaction_id}"):  # fmt: skip
        assert len(latencies[step]) >= decided > 0
    assert "POST /v1/verifications" not in latencies  # the ccx dialect is not used
    # the residents took their credentials through offers (OpenID4VCI)
    assert len(latencies["POST /oid4vci/credential"]) >= len(run.simulation.all_holders()) > 0
    assert "POST /v1/me/attestations" not in latencies
    assert "`POST /v1/presentation-requests`" in run.report.read_text(encoding="utf-8")


def test_the_report_and_its_plots_are_written(run: Run) -> None:
    assert run.report.name == "report.md"
    text = run.report.read_text(encoding="utf-8")
    plots = sorted(run.report.parent.glob("*.png"))
    assert [plot.name for plot in plots] == [
        "curves.png",
        "grant_rates.png",
        "latency.png",
        "timeline.png",
    ]
    for plot in plots:
        assert plot.read_bytes().startswith(PNG_SIGNATURE), plot
        assert f"]({plot.name})" in text


def test_every_process_is_stopped_afterwards(run: Run) -> None:
    processes = run.simulation.processes()
    assert [node.name for node in processes] == ["host", *CITIES]
    assert not [node.name for node in processes if node.running]
    # the host and fuzhou were each started again by a fault
    assert {node.name: node.starts for node in processes} == {
        "host": 2,
        "xiamen": 1,
        "fuzhou": 2,
        "zhangzhou": 1,
    }
    assert len(run.spawned) == 6
    assert [process.pid for process in run.spawned if process.poll() is None] == []


def test_the_nodes_ignore_the_operators_ccx_settings(run: Run) -> None:
    assert not SENTINEL_DATABASE.exists()
    for node in run.simulation.processes():  # each on its own SQLite file
        assert (node.data_dir / "node.db").stat().st_size > 0, node.name


def test_the_operators_ccx_settings_are_restored(run: Run) -> None:
    assert run.ccx_env_before["CCX_DATABASE_URL"] == SENTINEL_DATABASE_URL
    assert run.ccx_env_after == run.ccx_env_before  # no CCX_KEYRING_PASSPHRASE left behind


# --- options the command refuses ------------------------------------------------------------


def _simulate(out: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["simulate", *args, "--out", str(out)])
    assert "Traceback" not in result.output
    assert not out.exists(), "the run was started"
    return result.exit_code, result.stderr.strip()


def test_simulate_refuses_too_few_residents(tmp_path: Path) -> None:
    code, error = _simulate(tmp_path / "simulation", "--residents", "10")
    assert code == 2
    assert "--residents" in error
    assert "greater than or equal to 50" in error


@pytest.mark.parametrize(
    ("cities", "message"),
    [
        ("xiamen", "error [invalid_option] --cities: needs at least two distinct cities"),
        ("xiamen,xiamen", "error [invalid_option] --cities: needs at least two distinct cities"),
        (
            "xiamen,atlantis",
            "error [unknown_city] --cities: unknown city 'atlantis'; the simulated cities are ",
        ),
    ],
)
def test_simulate_refuses_cities_it_cannot_run(tmp_path: Path, cities: str, message: str) -> None:
    code, error = _simulate(tmp_path / "simulation", "--residents", "100", "--cities", cities)
    assert code == 2
    assert "\n" not in error, error
    assert error.startswith(message), error


def test_serve_keeps_the_alliance_up_with_its_pages_until_stopped(run: Run) -> None:
    """`ccx simulate --serve`: the nodes start again on the run's data; the printed
    dashboard, resident pages and kiosks answer; the printed kiosk token may ask for a
    presentation; the printed resident has both consents; stopping stops every node."""
    simulation = run.simulation
    stop = threading.Event()
    console = Console(file=io.StringIO(), width=400)
    serving = threading.Thread(target=serve, args=(simulation, console, stop), daemon=True)
    serving.start()
    try:
        deadline = time.monotonic() + 90
        while "Ctrl-C" not in console.file.getvalue():  # type: ignore[attr-defined]
            assert serving.is_alive(), console.file.getvalue()  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the pages did not come up"
            time.sleep(0.2)
        printed = console.file.getvalue()  # type: ignore[attr-defined]
        assert simulation.host is not None
        assert httpx.get(f"{simulation.host.url}/alliance/").status_code == 200
        for city in simulation.cities.values():
            line = next(line for line in printed.splitlines() if line.strip().startswith(city.name))
            resident = re.search(r"/me/\s+\(([^)]+)\)", line)
            token = re.search(r"/kiosk/\s+\(([^)]+)\)", line)
            assert resident is not None
            assert token is not None
            for page in ("/me/", "/kiosk/", "/wallet/"):
                assert httpx.get(city.node.url + page).status_code == 200, page
            made = httpx.post(f"{city.node.url}/v1/presentation-requests",
                              json={"scenario": "library_deposit_free"},
                              headers={"Authorization": f"Bearer {token[1]}"})  # fmt: skip
            assert made.status_code == 201, made.text
            login = httpx.post(f"{city.node.url}/dev-idp/token", json={"subject": resident[1]})
            consents = httpx.get(f"{city.node.url}/v1/me/consents",
                                 headers={"Authorization": f"Bearer {login.json()['access_token']}"})  # fmt: skip
            active = {
                c["kind"] for c in consents.json()["consents"] if c.get("withdrawn_at") is None
            }
            # a housekeeper also shares her domestic-service credential (issue 18)
            assert active - {"share_domestic_service"} == {"open_score", "share_alliance"}, (
                consents.text
            )
    finally:
        stop.set()
        serving.join(timeout=60)
    assert not serving.is_alive()
    assert not any(node.running for node in simulation.processes())
