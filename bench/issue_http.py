"""Attestation issuance through HTTP, beside a bare FastAPI echo of the same request.

Run from the repository root::

    .venv/bin/python bench/issue_http.py [--seconds S] [--rounds N] [--clients C] [--json]

Two servers run under uvicorn on loopback, each in a process of its own with one
worker, built the same way (FastAPI, a sync route, the same pydantic body model):

a. the node: ``POST /v1/me/attestations`` on SQLite (WAL) in a temporary folder, with
   the development identity provider, 50 residents with scores and both consents;
b. a bare echo: ``POST /echo`` parses the same ``AttestationRequest`` body and returns
   it; nothing else (no middleware, no authentication, no database).

C concurrent keep-alive connections of a bare asyncio HTTP/1.1 client (bench/
verify_http.py's) send the same bytes to both: the issuance request with its bearer
token, holder key and proof of possession. Each proof needs a fresh nonce; they are
sealed before timing with the node's keyring (as ``POST /v1/me/attestations/nonce``
seals them), so that the issuance row measures the issuance request alone. Any failed
request is counted and shown, and a run with one prints no ratio. A third row times the whole flow a wallet runs (ask for a
nonce over HTTP, sign the proof, request the attestation) in flows per second.

Each round gives every row ``--seconds`` of time, in turn, after a warm-up. Rates are
the median of the rounds, the ratio issuance / echo the median of the per-round ratios
(target >= 0.5), p99 latencies are over all requests of a row. The server's CPU time
per request (from /proc) says where the time goes. Figures are for one machine in one
run; the client shares it. This is a script, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# The repository root, so that the script runs from anywhere without an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _http import RawConnection  # bench/ is on sys.path as the script's folder
from _machine import cpu_model  # bench/ is on sys.path as the script's folder

import protocol as P
from keys import generate_key
from node.routers.attestations import AttestationRequest  # the body both servers parse
from protocol._jws import sign_jws

CITY = "xiamen"
RESIDENTS = 50
HOLDERS = 8
TARGET_RATIO = 0.5
PASSPHRASE = "benchmark passphrase, not a secret"  # noqa: S105
NONCE_LIFETIME = 3600
MAX_RATE = 1500  # requests/s a pool of bodies is sized for


# --- the servers (``--serve node|echo`` runs one in this process) --------------------------


def node_environment(data_dir: Path, port: int) -> dict[str, str]:
    return {
        "CCX_DATA_DIR": str(data_dir),
        "CCX_NODE_ID": f"http://127.0.0.1:{port}",
        "CCX_CITY": CITY,
        "CCX_DEV_IDP": "true",
        "CCX_SCHEDULER": "false",
        "CCX_NONCE_LIFETIME": str(NONCE_LIFETIME),
        "CCX_KEYRING_PASSPHRASE": PASSPHRASE,
        "CCX_RATE_LIMITS": "false",  # bursts on purpose (issue 17: limits tested elsewhere)
    }


def serve(kind: str, port: int, clock_offset: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    if kind == "node":
        from node.app import create_app

        app = create_app(now=lambda: int(time.time()) + clock_offset)
    else:
        app = FastAPI(title="echo")

        @app.post("/echo")
        def echo(body: AttestationRequest) -> AttestationRequest:
            return body

        @app.get("/healthz")
        def healthz() -> dict[str, str]:
            return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@dataclass
class Server:
    kind: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process and its live children (uvicorn's
        workers) so far (Linux /proc)."""
        return sum(_cpu_of(pid) for pid in _process_tree(self.process.pid))

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _process_tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(p for child in children for p in _process_tree(int(child)))]


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # ended meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    kind: str,
    env: dict[str, str],
    clock_offset: int,
    *,
    script: str = __file__,
    name: str | None = None,
    port: int | None = None,
) -> Server:
    """Run ``script --serve kind`` in a process of its own and wait for its /healthz. A
    node on a port picked here gets that port's URL as its CCX_NODE_ID."""
    if port is None:
        port = free_port()
        if kind == "node":
            env = {**env, "CCX_NODE_ID": f"http://127.0.0.1:{port}"}
    name = name or kind
    process = subprocess.Popen(  # noqa: S603  (our own script, fixed arguments)
        [
            *(sys.executable, script, "--serve", kind),
            *("--port", str(port), "--clock-offset", str(clock_offset)),
        ],
        env={**os.environ, **env},
    )
    server = Server(name, port, process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the {name} server exited with status {process.returncode}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise SystemExit(f"the {name} server did not start within 60 s")


# --- preparing the node's data ------------------------------------------------------------


def clock_offset_for(table_path: Path) -> int:
    """0 while the demo table is in force; else a shift of the node's clock into it."""
    claims = json.loads(table_path.read_text(encoding="utf-8"))
    now = int(time.time())
    if claims["valid_from"] <= now < claims["valid_to"] - 86400:
        return 0
    return int(claims["valid_from"]) + 86400 - now


def prepare_node(data_dir: Path, env: dict[str, str], now: int) -> None:
    from sqlmodel import Session

    from node.app import initialize_node
    from node.db import make_engine
    from node.models import Consent, Score
    from node.settings import Settings

    settings = Settings(
        data_dir=data_dir,
        city=CITY,
        keyring_passphrase=env["CCX_KEYRING_PASSPHRASE"],  # type: ignore[arg-type]
    )
    initialize_node(settings, now=now)
    engine = make_engine(settings.effective_database_url)
    with Session(engine) as session:
        for n in range(RESIDENTS):
            resident = f"resident-{n}"
            session.add(
                Score(
                    resident_id=resident,
                    score=600 + (n * 7) % 300,
                    by_dimension={},
                    computed_at=now - 3600,
                    model_version="demo-2026.11",
                )
            )
            session.add(Consent(resident_id=resident, kind="open_score", granted_at=now - 60))
            # every member may receive it ("alliance"): docs/ISSUING.md, recipients
            session.add(Consent(resident_id=resident, kind="share_alliance", recipients=["alliance"],
                                purpose="benchmark", granted_at=now - 60))  # fmt: skip
        session.commit()
    engine.dispose()


def mint_nonces(
    data_dir: Path, residents: list[str], count: int, now: int
) -> list[tuple[str, str]]:
    """``count`` unused proof-of-possession nonces, (resident, nonce), sealed with the
    node's keyring the way ``POST /v1/me/attestations/nonce`` seals them (no write:
    node.services.nonces)."""
    from node.services.nonces import seal
    from node.settings import Settings
    from node.state import load_keyring

    settings = Settings(data_dir=data_dir, keyring_passphrase=PASSPHRASE)  # type: ignore[arg-type]
    ring = load_keyring(settings)
    minted = []
    for n in range(count):
        resident = residents[n % len(residents)]
        minted.append((resident, seal(ring, "pop", resident, now + NONCE_LIFETIME)))
    return minted


@dataclass(frozen=True)
class Wallets:
    node_id: str
    tokens: dict[str, str]  # resident -> bearer token
    holders: list[Any]

    def request(self, resident: str, nonce: str, n: int, iat: int) -> tuple[bytes, dict[str, str]]:
        """The issuance request's body and headers (the echo gets the very same)."""
        holder = self.holders[n % len(self.holders)]
        proof = sign_jws(
            {"typ": "pop+jwt"},
            json.dumps({"nonce": nonce, "aud": self.node_id, "iat": iat}).encode(),
            holder,
        )
        body = json.dumps({"holder_jwk": P.public_jwk(holder), "proof": proof}).encode()
        return body, {
            "Authorization": f"Bearer {self.tokens[resident]}",
            "Content-Type": "application/json",
        }


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu_per_request: list[float] = field(default_factory=list)
    failures: int = 0
    first_failure: str | None = None  # the first failed answer: status and body

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0


async def run_turn(
    row: Row | None,
    server: Server,
    seconds: float,
    clients: int,
    send: Any,
) -> float:
    """Run ``send(connection)`` from ``clients`` tasks, each on a keep-alive connection
    of its own (bench/verify_http.py's bare asyncio HTTP/1.1 client: httpx cost 3-10 ms
    of client CPU a request at 32 connections, so it measured the client), for
    ``seconds``; return requests/s."""
    done = 0
    latencies: list[float] = []
    failures = 0
    first_failure: str | None = None
    connections = [RawConnection(server.port) for _ in range(clients)]
    for connection in connections:  # connect before timing: keep-alive from the start
        await connection.request("GET", "/healthz")
    cpu_before = server.cpu_seconds()
    stop_at = time.perf_counter() + seconds

    async def worker(connection: RawConnection) -> None:
        nonlocal done, failures, first_failure
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            answer = await send(connection)
            if answer is None:  # out of prepared requests
                return
            latencies.append(time.perf_counter() - started)
            done += 1
            status, content = answer
            if not 200 <= status < 300:
                failures += 1
                first_failure = first_failure or f"{status} {content[:200]!r}"

    started = time.perf_counter()
    await asyncio.gather(*(worker(connection) for connection in connections))
    elapsed = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu_before
    for connection in connections:
        await connection.close()
    rate = done / elapsed
    if row is not None:
        row.rates.append(rate)
        row.latencies.extend(latencies)
        row.cpu_per_request.append(cpu / done if done else 0)
        row.failures += failures
        row.first_failure = row.first_failure or first_failure
    return rate


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    table = Path(__file__).resolve().parent.parent / "mappings" / "tables" / f"{CITY}.table.json"
    offset = clock_offset_for(table)

    def now() -> int:
        return int(time.time()) + offset

    with tempfile.TemporaryDirectory(prefix="ccx-bench-") as folder:
        data_dir = Path(folder) / "node"
        env = node_environment(data_dir, 0)
        prepare_node(data_dir, env, now())
        node = start_server("node", env, offset)
        echo = start_server("echo", {}, 0)
        try:
            return await _measure(args, data_dir, node, echo, now)
        finally:
            node.stop()
            echo.stop()


async def _measure(
    args: argparse.Namespace, data_dir: Path, node: Server, echo: Server, now: Any
) -> dict[str, Any]:
    residents = [f"resident-{n}" for n in range(RESIDENTS)]
    async with httpx.AsyncClient(base_url=node.url) as client:
        tokens = {}
        for resident in residents:
            response = await client.post("/dev-idp/token", json={"subject": resident})
            tokens[resident] = response.json()["access_token"]
    wallets = Wallets(node.url, tokens, [generate_key("ES256") for _ in range(HOLDERS)])

    turns = args.rounds + 1  # and a warm-up
    pool_size = int(turns * args.seconds * MAX_RATE)
    iat = now()
    prepared = [
        wallets.request(resident, nonce, n, iat)
        for n, (resident, nonce) in enumerate(mint_nonces(data_dir, residents, pool_size, iat))
    ]
    issue_requests: Iterator[tuple[bytes, dict[str, str]]] = iter(prepared)
    echo_requests = itertools.cycle(prepared[:1000])
    counter = itertools.count()

    # each answers (status, body) of the request that decides, or None when none is left
    Answer = tuple[int, bytes]

    async def send_echo(connection: RawConnection) -> Answer:
        body, headers = next(echo_requests)
        return await connection.request("POST", "/echo", body, headers)

    async def send_issue(connection: RawConnection) -> Answer | None:
        item = next(issue_requests, None)
        if item is None:
            return None
        return await connection.request("POST", "/v1/me/attestations", item[0], item[1])

    async def send_flow(connection: RawConnection) -> Answer:
        n = next(counter)
        resident = residents[n % len(residents)]
        headers = {"Authorization": f"Bearer {tokens[resident]}"}
        status, content = await connection.request(
            "POST", "/v1/me/attestations/nonce", b"", headers
        )
        if status != 201:
            return status, content
        body, headers = wallets.request(resident, json.loads(content)["nonce"], n, now())
        return await connection.request("POST", "/v1/me/attestations", body, headers)

    rows = {name: Row(name) for name in ("echo", "issue", "flow")}
    schedule = [("echo", echo, send_echo), ("issue", node, send_issue), ("flow", node, send_flow)]
    for warm_up in (True, *([False] * args.rounds)):
        for name, server, send in schedule:
            seconds = min(args.seconds, 1.0) if warm_up else args.seconds
            await run_turn(None if warm_up else rows[name], server, seconds, args.clients, send)
    ratios = [i / e for i, e in zip(rows["issue"].rates, rows["echo"].rates, strict=True)]
    return {
        "rows": {
            name: {
                "per_second": statistics.median(row.rates),
                "p99_ms": row.p99_ms(),
                "median_ms": 1000 * statistics.median(row.latencies),
                "server_cpu_ms": 1000 * statistics.median(row.cpu_per_request),
                "requests": len(row.latencies),
                "failures": row.failures,
                "first_failure": row.first_failure,
            }
            for name, row in rows.items()
        },
        # a failed request is never throughput: a run with failures gives no ratio
        "ratio_issue_to_echo": (
            None if any(row.failures for row in rows.values()) else statistics.median(ratios)
        ),
        "target": TARGET_RATIO,
        "clients": args.clients,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "environment": {
            "python": platform.python_version(),
            "cpu_model": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
    }


def report(result: dict[str, Any]) -> None:
    labels = {
        "echo": "bare FastAPI echo of the same body",
        "issue": "POST /v1/me/attestations (nonce minted before)",
        "flow": "whole flow: nonce over HTTP + issuance (flows)",
    }
    env = result["environment"]
    print(
        f"{env['cpu_model']}, {env['logical_cpus']} CPUs, Python {env['python']}; "
        f"{result['clients']} clients, {result['rounds']} rounds of {result['seconds']} s; "
        f"load average {', '.join(f'{x:.1f}' for x in env['load_average'])}"
    )
    print(f"{'':52} {'per s':>8} {'median ms':>10} {'p99 ms':>8} {'server CPU ms':>14}")
    for name, row in result["rows"].items():
        failures = f"  ({row['failures']} failed)" if row["failures"] else ""
        print(
            f"{labels[name]:52} {row['per_second']:8.0f} {row['median_ms']:10.1f} "
            f"{row['p99_ms']:8.1f} {row['server_cpu_ms']:14.2f}{failures}"
        )
    failed = {name: row["failures"] for name, row in result["rows"].items() if row["failures"]}
    if failed:  # a failed request is never throughput: no ratio from such a run
        print(f"issuance / echo: no figure: failed requests {failed}")
        for name, row in result["rows"].items():
            if row["first_failure"]:
                print(f"  first failure of {name}: {row['first_failure']}")
        raise SystemExit(1)
    ratio = result["ratio_issue_to_echo"]
    verdict = "met" if ratio >= result["target"] else "MISSED"
    print(f"issuance / echo: {ratio:.2f} (target >= {result['target']}, {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per row and round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--serve", choices=["node", "echo"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clock-offset", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.clock_offset)
        return
    result = asyncio.run(measure(args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)


if __name__ == "__main__":
    main()
