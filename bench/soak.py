"""Soak: minutes of mixed load on one node at 70 % of its measured maximum (issue 7).

Run from the repository root::

    .venv/bin/python bench/soak.py [--minutes M] [--load F] [--seed S] [--plot soak.png] [--json]
    .venv/bin/python bench/soak.py --minutes 1        # a quick look: about 4 minutes in all

With the defaults the whole run takes about 13 minutes (set-up, calibration, references).

The node under soak is a Xiamen node run as an operator runs it, ``python -m node
serve --no-access-log --log-level warning`` (``--workers`` uvicorn workers, default
1), on SQLite (WAL) in a temporary folder, without its scheduler (production runs
``ccx scheduler`` apart). Beside it run a Fuzhou node (the visitors' home city: it
issues their attestations before timing and serves its status list, which the Xiamen
node fetches again whenever its cached copy's ttl of 300 s runs out) and a bare FastAPI
echo of the verification body (bench/verify_http.py's). The Xiamen node follows a
signed alliance registry pinned with ``CCX_ALLIANCE_ROOT_JWK`` (both nodes; nothing is
fetched), trusts an identity provider played by this script (``CCX_IDP_JWKS``: resident
tokens are minted here, as a city's provider would, and renewed after 10 minutes), and
has a service-point client (``verify:library_deposit_free``, rate limit raised out of
the way) and a department client (``records:push``). ``--residents`` residents have
scores and both consents; 64 of them hold an attestation before timing, as do 64
Fuzhou visitors. The load comes over HTTP on loopback from aiohttp
(``simulator.api.Api``, one pool of ``--connections`` keep-alive connections).

The mix (operations, drawn at random with these weights; an operation is one or two
requests) is listed below. Its counts are operations; requests are counted too.

Phases, in order:

1. reference: the bare echo, closed loop (``--calibrate-workers``' largest number of
   workers, each sending the next request when its answer came) for
   ``--reference-seconds``: requests/s;
2. warm-up: 5 s of the mix, closed loop, 8 workers (not counted);
3. calibration: the mix, closed loop, for ``--calibrate-seconds`` at each number of
   workers in ``--calibrate-workers``; the maximum is the best of them, in operations/s
   (skipped with ``--rate``);
4. open-loop warm-up: ``--warmup-seconds`` at the target rate (``--load`` times the
   maximum), not counted; the node's RSS at its end is the soak's start;
5. the soak: an OPEN-loop generator, ``--minutes`` long. Operations are due at a fixed
   rate (one every 1/rate s, whatever the node does), each started at its due time
   however many are still in flight, and its latency counts from its due time: a slow
   answer cannot hold back the next arrivals and hide the wait (no coordinated
   omission). Operations still in flight at the end are awaited and counted. The
   node's RSS (the server process and its worker processes, from psutil or
   /proc/<pid>/status VmRSS) is sampled every second;
6. reference again: the echo closed loop, then open loop at the soak's request rate for
   ``--reference-seconds`` each (p50/p99 of a bare endpoint at the same request rate).

Printed: the maximum and the target, the achieved rate, the total operations and
requests, the errors by kind (an HTTP answer other than 2xx, by endpoint, status and
error code; a refused record row; a transport error; a timeout: no answer within
simulator.api's 30 s; a client backlog: more than ``--max-in-flight`` operations
outstanding), p50/p99 per minute (a table; the first and the last minute are the
start and the end), per operation kind for the first and the last minute, per
endpoint over the soak, the node's RSS at the start and the end of the soak and its
growth, and a PASS/MISS line per target: errors 0; RSS growth under 10 %. The bare
echo's rates and p99 are the reference for comparing figures across machines (the
ratios printed). A progress line goes to stderr every ``--progress`` seconds.
``--plot`` writes p50/p99 per 10 s and the RSS over the soak to a PNG.

Figures are for one machine in one run; the client shares it with the servers. This is
a script, not a test (not in CI).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import os
import platform
import random
import re
import secrets
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The repository root, so that the script runs from anywhere without an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _machine import cpu_model  # bench/ is on sys.path as the script's folder
from issue_http import clock_offset_for, free_port
from verify_http import (
    HOME,
    SCENARIO,
    VERIFIER,
    Visitor,
    issue_attestations,
    node_environment,
    node_settings,
    prepare_home,
    prepare_verifier,
    start_server,
    stop_quietly,
)

import protocol as P
from keys import generate_key
from node.dev_idp import DevIdentityProvider
from protocol._jws import sign_jws
from simulator.api import Api, Unreachable
from simulator.cluster import NodeProcess

ROOT = Path(__file__).resolve().parent.parent
TARGET_ERRORS = 0
TARGET_RSS_GROWTH = 10.0  # per cent, start to end of the soak
LOCAL_HOLDERS = 64  # Xiamen residents holding an attestation before timing
HOLDER_POOL = 256  # at most this many local attestations kept for presentations
TOKEN_RENEWAL = 600  # seconds after which the script's identity provider mints a new token
DEPARTMENT = "civil-affairs"
RECORD_KINDS = ("volunteering", "pay_later_on_time", "blood_donation", "late_utility_payment")
WINDOW = 60.0  # seconds per row of the table
PLOT_WINDOW = 10.0


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int
    requests: int
    what: str


MIX = (
    Kind(
        "verify_visitor",
        40,
        2,
        "a Fuzhou visitor at a Xiamen service point: POST /v1/verifications/challenge, "
        "the wallet's presentation, POST /v1/verifications (status from the cached "
        "Fuzhou list)",
    ),
    Kind(
        "verify_local",
        15,
        2,
        "the same for a Xiamen resident's attestation (status from the node's own list)",
    ),
    Kind(
        "issue",
        8,
        2,
        "a resident's wallet: POST /v1/me/attestations/nonce, proof of possession of a "
        "fresh key, POST /v1/me/attestations (the attestation joins the local holders)",
    ),
    Kind(
        "push_record",
        7,
        1,
        "a department: POST /v1/records, one new record of a resident (rescored at once)",
    ),
    Kind("resident_read", 15, 1, "GET /v1/me/score (2 in 3) or GET /v1/me/consents"),
    Kind("status_list", 3, 1, "GET /v1/status-lists/1, as other cities' verifiers fetch it"),
    Kind(
        "metadata",
        12,
        1,
        "GET /.well-known/jwks.json, /.well-known/jwt-vc-issuer, /v1/alliance/registry or "
        "/readyz (one of them at random)",
    ),
)
METADATA_PATHS = (
    "/.well-known/jwks.json",
    "/.well-known/jwt-vc-issuer",
    "/v1/alliance/registry",
    "/readyz",
)


def mix_text() -> str:
    total = sum(kind.weight for kind in MIX)
    return "\n".join(
        textwrap.fill(
            kind.what,
            width=92,
            initial_indent=f"  {kind.name:15} {100 * kind.weight / total:3.0f} %  ",
            subsequent_indent=" " * 25,
        )
        for kind in MIX
    )


def requests_per_operation() -> float:
    return sum(k.weight * k.requests for k in MIX) / sum(k.weight for k in MIX)


# --- the node's memory --------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_rss(pid: int, *, children: bool = True) -> int:
    """Resident set size in bytes of process ``pid`` and (with ``children``) all its
    descendants (uvicorn's worker processes): psutil when installed, else VmRSS of
    /proc/<pid>/status."""
    try:
        import psutil
    except ImportError:
        total = 0
        for each in (pid, *(_descendants(pid) if children else ())):
            try:
                for line in Path(f"/proc/{each}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass  # a process that ended meanwhile
        return total
    process = psutil.Process(pid)
    family = (process, *(process.children(recursive=True) if children else ()))
    return sum(p.memory_info().rss for p in family)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its descendants so far (/proc)."""
    total = 0
    for each in (pid, *_descendants(pid)):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def new_node(name: str, port: int, env: dict[str, str], folder: Path, workers: int) -> NodeProcess:
    node = NodeProcess(
        name=name,
        port=port,
        data_dir=Path(env["CCX_DATA_DIR"]),
        env=env,
        admin_token="",
        log_path=folder / f"{name}.log",
        workers=workers,
    )
    node.start()
    node.wait_ready()
    return node


# --- errors ---------------------------------------------------------------------------


class Refused(Exception):
    """A 2xx answer that still says no (a record row refused)."""


_ANSWERED = re.compile(r"^(\S+) (\S+) answered (\d{3}) \[([^\]]*)\]")


def _endpoint(method: str, url: str) -> str:
    return f"{method} {urlsplit(url).path}"


def error_kind(exc: BaseException) -> str:
    """The error's kind for the table: endpoint, then HTTP status and error code, or a
    timeout, or a transport error, or a bug of this script."""
    text = str(exc)
    if isinstance(exc, RuntimeError) and (match := _ANSWERED.match(text)):
        method, url, status, code = match.groups()
        return f"{_endpoint(method, url)}: HTTP {status} {code}"
    if isinstance(exc, Unreachable):
        method, url, *_ = [*text.split(" ", 2), "", ""]
        cause = exc.__cause__
        what = "timeout" if isinstance(cause, TimeoutError) else f"transport {type(cause).__name__}"
        return f"{_endpoint(method, url.rstrip(':'))}: {what}"
    if isinstance(exc, Refused):
        return text
    return f"client exception {type(exc).__name__}"


# --- the operations -------------------------------------------------------------------


@dataclass
class Results:
    """What the operations of one phase did: by due time, latency from due time."""

    origin: float
    due: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    requests: int = 0

    def add(self, due: float, latency: float, kind: int, error: str | None) -> None:
        self.due.append(due - self.origin)
        self.latency.append(latency)
        self.kind.append(kind)
        self.failed.append(error is not None)
        if error is not None:
            self.errors[error] += 1

    def example(self, kind: str, exc: BaseException) -> None:
        self.examples.setdefault(kind, f"{type(exc).__name__}: {exc}"[:400])


class Load:
    """The client side: the node's URL, its residents and holders, the operations."""

    def __init__(
        self,
        api: Api,
        url: str,
        idp: DevIdentityProvider,
        service_token: str,
        records_token: str,
        residents: int,
        visitors: list[Visitor],
    ) -> None:
        self.api, self.url, self.idp = api, url, idp
        self.service_token, self.records_token = service_token, records_token
        self.residents = [f"visitor-{n}" for n in range(residents)]  # prepare_home's names
        self.visitors = visitors
        self.locals: list[Visitor] = []
        self.tokens: dict[str, tuple[str, float]] = {}
        self.decisions: Counter[str] = Counter()
        self.disclose: list[str] = []  # what the last challenge asked for, and its aud
        self.aud = url
        self.record_ids = itertools.count()
        self.results: Results | None = None
        self.operations: list[Callable[[int], Awaitable[None]]] = [
            getattr(self, kind.name) for kind in MIX
        ]

    async def call(self, method: str, path: str, label: str | None = None, **kw: Any) -> Any:
        if self.results is not None:
            self.results.requests += 1
        return await self.api.ok(method, self.url, path, label=label or f"{method} {path}", **kw)

    def token(self, resident: str) -> str:
        token, minted = self.tokens.get(resident, ("", -1e9))
        if time.monotonic() - minted > TOKEN_RENEWAL:
            token = self.idp.token(resident, now=int(time.time()))
            self.tokens[resident] = (token, time.monotonic())
        return token

    async def _verify(self, holder: Visitor) -> None:
        challenge = await self.call(
            "POST",
            "/v1/verifications/challenge",
            body={"scenario": SCENARIO},
            token=self.service_token,
        )
        self.disclose, self.aud = challenge["disclose"], challenge["aud"]
        answer = await self.call(
            "POST",
            "/v1/verifications",
            body=self.verification_body(holder, challenge["nonce"]),
            token=self.service_token,
        )
        reasons = ",".join(reason["code"] for reason in answer["reasons"])
        self.decisions[answer["decision"] + (f" ({reasons})" if reasons else "")] += 1

    def verification_body(self, holder: Visitor, nonce: str) -> dict[str, str]:
        """What a service point sends: the holder's presentation for ``nonce``, with
        the disclosures the last challenge asked for."""
        presentation = P.present(
            holder.attestation,
            disclose=self.disclose,
            holder_key=holder.holder,
            aud=self.aud,
            nonce=nonce,
            now=int(time.time()),
        )
        return {"nonce": nonce, "presentation": presentation}

    async def verify_visitor(self, pick: int) -> None:
        await self._verify(self.visitors[pick % len(self.visitors)])

    async def verify_local(self, pick: int) -> None:
        await self._verify(self.locals[pick % len(self.locals)])

    async def issue(self, pick: int) -> None:
        token = self.token(self.residents[pick % len(self.residents)])
        nonce = await self.call("POST", "/v1/me/attestations/nonce", token=token)
        key = generate_key("ES256")
        claims = {"nonce": nonce["nonce"], "aud": nonce["aud"], "iat": int(time.time())}
        proof = sign_jws({"typ": nonce["typ"]}, json.dumps(claims).encode(), key)
        answer = await self.call(
            "POST",
            "/v1/me/attestations",
            body={"holder_jwk": P.public_jwk(key), "proof": proof},
            token=token,
        )
        holder = Visitor(answer["attestation"], key)
        if len(self.locals) < HOLDER_POOL:
            self.locals.append(holder)
        else:
            self.locals[pick // len(self.residents) % HOLDER_POOL] = holder

    async def push_record(self, pick: int) -> None:
        record = {
            "record_id": f"soak-{next(self.record_ids)}",
            "resident_id": self.residents[pick % len(self.residents)],
            "kind": RECORD_KINDS[pick // 7 % len(RECORD_KINDS)],
            "occurred_at": int(time.time()) - pick % (30 * 86400),
        }
        answer = await self.call("POST", "/v1/records", body=record, token=self.records_token)
        if answer["stored"] != 1:
            code = answer["results"][0].get("code")
            raise Refused(
                f"POST /v1/records: HTTP 200, row {answer['results'][0]['status']} {code}"
            )

    async def resident_read(self, pick: int) -> None:
        token = self.token(self.residents[pick % len(self.residents)])
        path = "/v1/me/consents" if pick % 3 == 0 else "/v1/me/score"
        await self.call("GET", path, token=token)

    async def status_list(self, pick: int) -> None:
        await self.call("GET", "/v1/status-lists/1", label="GET /v1/status-lists/{id}")

    async def metadata(self, pick: int) -> None:
        await self.call("GET", METADATA_PATHS[pick % len(METADATA_PATHS)])

    async def run(self, kind: int, pick: int, due: float) -> None:
        """Operation ``kind`` due at ``due`` (perf_counter); its latency from then."""
        error = None
        try:
            await self.operations[kind](pick)
        except Exception as exc:  # every failure is counted by kind, and the run goes on
            error = error_kind(exc)
            if self.results is not None:
                self.results.example(error, exc)
        if self.results is not None:
            self.results.add(due, time.perf_counter() - due, kind, error)


class Mix:
    """Seeded draws of (operation kind, pick) with the mix's weights."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # a load mix, not a secret
        self.cumulative = list(itertools.accumulate(kind.weight for kind in MIX))

    def draw(self) -> tuple[int, int]:
        kind = bisect.bisect_right(self.cumulative, self.rng.random() * self.cumulative[-1])
        return kind, self.rng.getrandbits(31)


# --- the load generators ----------------------------------------------------------------


async def closed_loop(
    run: Callable[[int, int, float], Coroutine[Any, Any, None]],
    draw: Callable[[], tuple[int, int]],
    workers: int,
    seconds: float,
) -> float:
    """``workers`` tasks, each starting its next operation when the last one ended, for
    ``seconds``; the operations per second."""
    stop_at = time.perf_counter() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await run(*draw(), time.perf_counter())
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return done / (time.perf_counter() - started)


async def open_loop(
    run: Callable[[int, int, float], Coroutine[Any, Any, None]],
    draw: Callable[[], tuple[int, int]],
    rate: float,
    seconds: float,
    max_in_flight: int,
    results: Results | None,
) -> float:
    """Operations due every 1/``rate`` s for ``seconds``, each started at its due time
    (a late start still counts from its due time); waits for the last one. Returns the
    seconds it took. An operation due while ``max_in_flight`` are outstanding is not
    sent and counts as a ``client backlog`` error."""
    in_flight: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    for n in itertools.count():
        due = started + n / rate
        if due >= started + seconds:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        kind, pick = draw()
        if len(in_flight) >= max_in_flight:
            if results is not None:
                results.add(due, 0.0, kind, "client backlog")
            continue
        task = asyncio.create_task(run(kind, pick, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight)
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (as issue_http.Row.p99_ms), in ms; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- measuring ------------------------------------------------------------------------------


async def progress_lines(
    label: str, results: Results, seconds: float, rss: Callable[[], int], every: float
) -> None:
    """A line on stderr every ``every`` seconds while a phase runs (cancelled at its end)."""
    seen = 0
    while True:
        await asyncio.sleep(every)
        elapsed = time.perf_counter() - results.origin
        done = len(results.due)
        recent = results.latency[seen:done]
        print(
            f"[{label} {elapsed / 60:4.1f}/{seconds / 60:.1f} min] {done:,} operations "
            f"({(done - seen) / every:.1f}/s lately), {sum(results.errors.values())} errors, "
            f"p99 {percentile(recent, 0.99):.0f} ms lately, node RSS {rss() / 2**20:.1f} MiB",
            file=sys.stderr,
            flush=True,
        )
        seen = done


async def sample_rss(pid: int, samples: list[tuple[float, int]], origin: float) -> None:
    while True:
        samples.append((time.perf_counter() - origin, tree_rss(pid)))
        await asyncio.sleep(1.0)


async def echo_reference(
    url: str, bodies: list[dict[str, str]], workers: int, seconds: float, rate: float | None
) -> dict[str, float]:
    """The bare echo, closed loop (requests/s) or, with ``rate``, open loop (p50/p99)."""
    async with Api(connections=max(64, workers)) as api:
        cycle = itertools.cycle(bodies)
        latencies: list[float] = []

        async def send(_kind: int, _pick: int, due: float) -> None:
            await api.ok("POST", url, "/echo", body=next(cycle))
            latencies.append(time.perf_counter() - due)

        for _ in range(workers):  # connect before timing
            await api.ok("GET", url, "/healthz")
        if rate is None:
            per_second = await closed_loop(send, lambda: (0, 0), workers, seconds)
            return {"per_second": per_second, "p99_ms": percentile(latencies, 0.99)}
        await open_loop(send, lambda: (0, 0), rate, seconds, 10_000, None)
        return {
            "per_second": rate,
            "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99),
        }


def windows(results: Results, length: float, width: float) -> list[dict[str, Any]]:
    """Per ``width`` s of due time: operations, rate, errors, p50, p99, max."""
    count = max(1, int(-(-length // width)))
    rows: list[dict[str, Any]] = [
        {"start": i * width, "latency": [], "errors": 0, "kinds": {}} for i in range(count)
    ]
    for due, latency, kind, failed in zip(
        results.due, results.latency, results.kind, results.failed, strict=True
    ):
        row = rows[min(count - 1, int(due // width))]
        row["latency"].append(latency)
        row["errors"] += failed
        row["kinds"].setdefault(kind, []).append(latency)
    out = []
    for row in rows:
        span = min(width, length - row["start"])
        out.append(
            {
                "start_s": row["start"],
                "operations": len(row["latency"]),
                "per_second": len(row["latency"]) / span if span > 0 else 0.0,
                "errors": row["errors"],
                "p50_ms": percentile(row["latency"], 0.5),
                "p99_ms": percentile(row["latency"], 0.99),
                "max_ms": 1000 * max(row["latency"], default=0.0),
                "p99_ms_by_kind": {
                    MIX[k].name: percentile(v, 0.99) for k, v in sorted(row["kinds"].items())
                },
            }
        )
    return out


def rss_at(samples: list[tuple[float, int]], at: float) -> int:
    """The sample taken nearest ``at`` seconds after the soak's start."""
    return min(samples, key=lambda sample: abs(sample[0] - at))[1]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    if clock_offset_for(ROOT / "mappings" / "tables" / f"{VERIFIER}.table.json"):
        raise SystemExit(
            "the demo mapping table is not in force today, and `ccx node serve` runs on the "
            "real clock: this soak cannot run until the table is renewed"
        )
    with tempfile.TemporaryDirectory(prefix="ccx-soak-") as folder_name:
        folder = Path(folder_name)
        home_dir, node_dir = folder / HOME, folder / VERIFIER
        home_port, node_port = free_port(), free_port()
        now = int(time.time())
        home_settings = node_settings(home_dir, home_port, HOME)
        node_settings_ = node_settings(node_dir, node_port, VERIFIER)
        home_jwks = prepare_home(home_settings, now)
        prepare_home(node_settings_, now, residents=args.residents)
        root_jwk, service_token, _ = prepare_verifier(
            node_settings_, now, (home_settings.node_id, home_jwks)
        )
        records_token = create_department(node_dir, now)
        idp = DevIdentityProvider()
        home_env = {**node_environment(home_dir, home_port, HOME), "CCX_DEV_IDP": "true"}
        node_env = {
            **node_environment(node_dir, node_port, VERIFIER),
            "CCX_ALLIANCE_ROOT_JWK": root_jwk,
            "CCX_VERIFY_RATE": "1000000",
            "CCX_VERIFY_BURST": "1000000",
            "CCX_IDP_JWKS": idp.jwks(),
        }
        nodes: list[NodeProcess] = []
        echo = None
        try:
            nodes.append(new_node("fuzhou", home_port, home_env, folder, 1))
            nodes.append(new_node("xiamen", node_port, node_env, folder, args.workers))
            echo = start_server("echo", "echo", free_port(), {}, 0)
            visitors = await issue_attestations(nodes[0], int(time.time()))  # type: ignore[arg-type]
            result = await _measure(
                args, nodes[1], echo.url, idp, service_token, records_token, visitors
            )
            log = nodes[1].log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            result["node_log"] = {
                "lines": len(log),
                "tracebacks": sum(line.startswith("Traceback") for line in log),
                "tail": log[-15:],
            }
            database = [node_dir / n for n in ("node.db", "node.db-wal")]
            result["database_mib"] = sum(p.stat().st_size for p in database if p.exists()) / 2**20
            return result
        finally:
            for node in reversed(nodes):
                node.stop()
            if echo is not None:
                stop_quietly(echo)


def create_department(data_dir: Path, now: int) -> str:
    """A department client with ``records:push``, written into the node's database."""
    from sqlmodel import Session

    from node.db import make_engine
    from node.services import clients

    engine = make_engine(f"sqlite:///{data_dir / 'node.db'}")
    with Session(engine) as session:
        _, token = clients.create_client(
            session,
            client_id="soak-department",
            department=DEPARTMENT,
            scopes=["records:push"],
            actor="admin",
            now=now,
        )
    engine.dispose()
    return token


async def _measure(
    args: argparse.Namespace,
    node: NodeProcess,
    echo_url: str,
    idp: DevIdentityProvider,
    service_token: str,
    records_token: str,
    visitors: list[Visitor],
) -> dict[str, Any]:
    assert node.process is not None
    pid = node.process.pid
    rss_log: list[tuple[float, int]] = []
    result: dict[str, Any] = {"rss_mib": {}}
    top_workers = max(args.calibrate_workers)

    def note(step: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {step}", file=sys.stderr, flush=True)

    async with Api(connections=max(args.connections, top_workers)) as api:
        load = Load(api, node.url, idp, service_token, records_token, args.residents, visitors)
        for n in range(LOCAL_HOLDERS):  # the first local holders, through the node's API
            await load.issue(n)
        for number in range(len(MIX)):  # every operation once: the set-up works
            await load.operations[number](number)
        result["rss_mib"]["after_set_up"] = tree_rss(pid) / 2**20

        echo_bodies = [load.verification_body(v, secrets.token_urlsafe(32)) for v in visitors]
        note(
            f"reference: bare echo, closed loop, {top_workers} workers, {args.reference_seconds} s"
        )
        echo_before = await echo_reference(
            echo_url, echo_bodies, top_workers, args.reference_seconds, None
        )

        note("warm-up: the mix, closed loop, 8 workers, 5 s")
        draws = Mix(args.seed)
        load.results = Results(time.perf_counter())
        await closed_loop(load.run, draws.draw, 8, 5.0)
        calibration = []
        if args.rate is None:
            for workers in args.calibrate_workers:
                note(
                    f"calibration: the mix, closed loop, {workers} workers, {args.calibrate_seconds} s"
                )
                load.results = Results(time.perf_counter())
                cpu = tree_cpu_seconds(pid)
                rate = await closed_loop(load.run, draws.draw, workers, args.calibrate_seconds)
                elapsed = time.perf_counter() - load.results.origin
                calibration.append(
                    {
                        "workers": workers,
                        "per_second": rate,
                        "node_cpu_share": (tree_cpu_seconds(pid) - cpu) / elapsed,
                        "requests_per_second": load.results.requests / args.calibrate_seconds,
                        "p99_ms": percentile(load.results.latency, 0.99),
                        "errors": sum(load.results.errors.values()),
                    }
                )
            maximum = max(row["per_second"] for row in calibration)
        else:
            maximum = args.rate / args.load
        target = args.load * maximum
        result["rss_mib"]["after_calibration"] = tree_rss(pid) / 2**20

        soak_draws = Mix(args.seed + 1)  # the soak's draws don't depend on the calibration's
        note(f"open-loop warm-up at {target:.1f} operations/s, {args.warmup_seconds} s")
        load.results = Results(time.perf_counter())
        await open_loop(
            load.run, soak_draws.draw, target, args.warmup_seconds, args.max_in_flight, None
        )
        warm_up_errors = sum(load.results.errors.values())

        seconds = 60 * args.minutes
        note(f"soak: open loop at {target:.1f} operations/s for {args.minutes:g} min")
        api.latencies.clear()
        load.decisions.clear()
        results = Results(time.perf_counter())
        load.results = results
        node_cpu, client_cpu = tree_cpu_seconds(pid), time.process_time()
        result["load_average_at_soak_start"] = os.getloadavg()
        sampler = asyncio.create_task(sample_rss(pid, rss_log, results.origin))
        ticker = asyncio.create_task(
            progress_lines("soak", results, seconds, lambda: tree_rss(pid), args.progress)
        )
        try:
            took = await open_loop(
                load.run, soak_draws.draw, target, seconds, args.max_in_flight, results
            )
        finally:
            ticker.cancel()
            await asyncio.sleep(0)
        rss_log.append((time.perf_counter() - results.origin, tree_rss(pid)))
        sampler.cancel()
        load.results = None
        node_cpu = tree_cpu_seconds(pid) - node_cpu
        client_cpu = time.process_time() - client_cpu
        client_rss = tree_rss(os.getpid(), children=False) / 2**20
        endpoint_latencies = {label: list(v) for label, v in api.latencies.items()}

    achieved_requests = results.requests / seconds
    note(f"reference: bare echo, closed loop, then open loop at {achieved_requests:.1f} requests/s")
    echo_after = await echo_reference(
        echo_url, echo_bodies, top_workers, args.reference_seconds, None
    )
    echo_open = await echo_reference(
        echo_url, echo_bodies, top_workers, args.reference_seconds, achieved_requests
    )

    table = windows(results, seconds, WINDOW)
    rss_start, rss_end = rss_log[0][1], rss_log[-1][1]
    kinds_first = table[0]["p99_ms_by_kind"]
    kinds_last = table[-1]["p99_ms_by_kind"]
    by_kind = {}
    for index, operation in enumerate(MIX):
        latencies = [
            lat for lat, k in zip(results.latency, results.kind, strict=True) if k == index
        ]
        failed = sum(f for f, k in zip(results.failed, results.kind, strict=True) if k == index)
        by_kind[operation.name] = {
            "operations": len(latencies),
            "errors": failed,
            "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99),
            "p99_ms_first_minute": kinds_first.get(operation.name, 0.0),
            "p99_ms_last_minute": kinds_last.get(operation.name, 0.0),
        }
    echo_max = (echo_before["per_second"] + echo_after["per_second"]) / 2
    calibration_requests = max((row["requests_per_second"] for row in calibration), default=0.0)
    result.update(
        {
            "mix": {kind.name: kind.weight for kind in MIX},
            "requests_per_operation": requests_per_operation(),
            "calibration": calibration,
            "maximum_per_second": maximum,
            "load": args.load,
            "target_per_second": target,
            "achieved_per_second": len(results.due) / seconds,
            "achieved_requests_per_second": achieved_requests,
            "soak_seconds": seconds,
            "soak_wall_seconds": took,
            "operations": len(results.due),
            "requests": results.requests,
            "errors": dict(results.errors.most_common()),
            "error_examples": results.examples,
            "warm_up_errors": warm_up_errors,
            "decisions": dict(load.decisions.most_common()),
            "p50_ms": percentile(results.latency, 0.5),
            "p99_ms": percentile(results.latency, 0.99),
            "windows": table,
            "by_kind": by_kind,
            "by_endpoint": {
                label: {
                    "requests": len(v),
                    "p50_ms": percentile(v, 0.5),
                    "p99_ms": percentile(v, 0.99),
                }
                for label, v in sorted(endpoint_latencies.items())
            },
            "plot_windows": [
                {"start_s": w["start_s"], "p50_ms": w["p50_ms"], "p99_ms": w["p99_ms"]}
                for w in windows(results, seconds, PLOT_WINDOW)
            ],
            "rss_samples": [(round(t, 1), rss / 2**20) for t, rss in rss_log],
            "reference": {
                "echo_before_per_second": echo_before["per_second"],
                "echo_after_per_second": echo_after["per_second"],
                "echo_open_loop": echo_open,
                "ratio_mix_requests_to_echo": calibration_requests / echo_max if echo_max else 0,
            },
            "client_rss_mib": client_rss,
            "node_cpu_share": node_cpu / took,
            "node_cpu_ms_per_operation": 1000 * node_cpu / len(results.due),
            "client_cpu_share": client_cpu / took,
            "workers": args.workers,
            "residents": args.residents,
            "connections": max(args.connections, top_workers),
            "seed": args.seed,
            "environment": {
                "python": platform.python_version(),
                "cpu_model": cpu_model(),
                "logical_cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
            },
        }
    )
    result["rss_mib"].update(
        {
            "soak_start": rss_start / 2**20,
            "soak_end": rss_end / 2**20,
            "soak_peak": max(rss for _, rss in rss_log) / 2**20,
            "after_first_minute": rss_at(rss_log, min(WINDOW, seconds)) / 2**20,
        }
    )
    result["rss_growth_percent"] = 100 * (rss_end - rss_start) / rss_start
    return result


# --- the report -------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(result: dict[str, Any]) -> None:
    env = result["environment"]
    print(
        f"{env['cpu_model']}, {env['logical_cpus']} CPUs, Python {env['python']}; load average "
        f"{', '.join(f'{x:.1f}' for x in env['load_average'])}; node: {result['workers']} "
        f"uvicorn worker(s), SQLite, {result['residents']:,} residents; client: aiohttp, "
        f"{result['connections']} connections; seed {result['seed']}"
    )
    print(f"\nmix ({result['requests_per_operation']:.2f} requests per operation):")
    print(mix_text())
    print("\ncalibration (closed loop):")
    for row in result["calibration"]:
        print(
            f"  {row['workers']:3} workers: {row['per_second']:7.1f} operations/s "
            f"({row['requests_per_second']:.1f} requests/s), p99 {row['p99_ms']:.0f} ms, "
            f"{row['errors']} errors; node CPU {row['node_cpu_share']:.2f} cores"
        )
    ref = result["reference"]
    print(
        f"maximum {result['maximum_per_second']:.1f} operations/s; target "
        f"{result['load']:.0%} of it = {result['target_per_second']:.1f}/s; achieved "
        f"{result['achieved_per_second']:.2f}/s ({result['achieved_requests_per_second']:.1f} "
        f"requests/s) over {result['soak_seconds'] / 60:g} min (the last answer after "
        f"{result['soak_wall_seconds']:.1f} s)"
    )
    print(
        f"total: {result['operations']:,} operations, {result['requests']:,} requests; "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms (from due time)"
    )
    print(
        f"CPU over the soak: node {result['node_cpu_share']:.2f} cores "
        f"({result['node_cpu_ms_per_operation']:.1f} ms per operation), client "
        f"{result['client_cpu_share']:.2f} cores; load average at its start "
        f"{', '.join(f'{x:.1f}' for x in result['load_average_at_soak_start'])}"
    )
    decisions = ", ".join(f"{name} {count:,}" for name, count in result["decisions"].items())
    print(f"verification decisions: {decisions}")

    errors = result["errors"]
    print(f"\nerrors: {sum(errors.values())}" + (":" if errors else " (none of any kind)"))
    for name, count in errors.items():
        print(f"  {count:7,}  {name}")
        print(f"           e.g. {result['error_examples'].get(name, '')[:200]}")
    if result["warm_up_errors"]:
        print(f"  (and {result['warm_up_errors']} in the open-loop warm-up, not counted)")

    print("\nper minute (operations by due time; latency from due time, ms):")
    print(f"  {'minute':>6} {'ops':>7} {'per s':>7} {'errors':>6} {'p50':>7} {'p99':>7} {'max':>8}")
    for i, w in enumerate(result["windows"], 1):
        print(
            f"  {i:6} {w['operations']:7,} {w['per_second']:7.1f} {w['errors']:6} "
            f"{w['p50_ms']:7.1f} {w['p99_ms']:7.1f} {w['max_ms']:8.1f}"
        )
    first, last = result["windows"][0], result["windows"][-1]
    print(
        f"p99 at the start (minute 1) {first['p99_ms']:.1f} ms, at the end (minute "
        f"{len(result['windows'])}) {last['p99_ms']:.1f} ms: end / start "
        f"{last['p99_ms'] / first['p99_ms'] if first['p99_ms'] else 0:.2f}; p50 "
        f"{first['p50_ms']:.1f} -> {last['p50_ms']:.1f} ms"
    )

    print("\nby operation (ms):")
    print(
        f"  {'':15} {'ops':>7} {'errors':>6} {'p50':>7} {'p99':>7} {'p99 first min':>14} {'p99 last min':>13}"
    )
    for name, k in result["by_kind"].items():
        print(
            f"  {name:15} {k['operations']:7,} {k['errors']:6} {k['p50_ms']:7.1f} "
            f"{k['p99_ms']:7.1f} {k['p99_ms_first_minute']:14.1f} {k['p99_ms_last_minute']:13.1f}"
        )
    print("by endpoint (each request from its sending, ms):")
    for label, e in result["by_endpoint"].items():
        print(f"  {label:40} {e['requests']:8,} {e['p50_ms']:7.1f} {e['p99_ms']:7.1f}")

    rss = result["rss_mib"]
    print(
        f"\nnode RSS (server process and its workers): {rss['after_set_up']:.1f} MiB after the "
        f"set-up, {rss['after_calibration']:.1f} after the calibration; soak start "
        f"{rss['soak_start']:.1f}, after minute 1 {rss['after_first_minute']:.1f}, end "
        f"{rss['soak_end']:.1f}, peak {rss['soak_peak']:.1f} MiB: growth "
        f"{result['rss_growth_percent']:+.1f} %"
    )
    log = result["node_log"]
    print(
        f"node log: {log['lines']} lines, {log['tracebacks']} tracebacks; database "
        f"{result['database_mib']:.1f} MiB at the end; client (this process) RSS "
        f"{result['client_rss_mib']:.0f} MiB"
    )
    if log["tracebacks"] or errors:
        print("node log, last lines:\n    " + "\n    ".join(log["tail"]))

    echo_open = ref["echo_open_loop"]
    print(
        f"\nreference, bare FastAPI echo of the verification body (one uvicorn worker, same "
        f"client): closed loop {ref['echo_before_per_second']:.0f} requests/s before the "
        f"soak, {ref['echo_after_per_second']:.0f} after; open loop at the soak's "
        f"{echo_open['per_second']:.1f} requests/s: p50 {echo_open['p50_ms']:.1f} ms, p99 "
        f"{echo_open['p99_ms']:.1f} ms"
    )
    if result["calibration"]:
        print(
            f"  mix maximum in requests/s / echo: {ref['ratio_mix_requests_to_echo']:.3f}; "
            f"soak p99 (last minute) / echo p99 at the same request rate: "
            f"{last['p99_ms'] / echo_open['p99_ms'] if echo_open['p99_ms'] else 0:.1f}"
        )

    errors_total = sum(errors.values())
    growth = result["rss_growth_percent"]
    print()
    print(
        f"{verdict(errors_total == TARGET_ERRORS)}  errors {errors_total} (target {TARGET_ERRORS})"
    )
    print(
        f"{verdict(growth < TARGET_RSS_GROWTH)}  node RSS growth {growth:+.1f} % over the soak "
        f"(target < {TARGET_RSS_GROWTH:.0f} %)"
    )
    share = result["achieved_per_second"] / result["target_per_second"]
    if share < 0.98:
        print(f"note: the generator reached only {share:.1%} of the target rate")


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    minutes = [(w["start_s"] + PLOT_WINDOW / 2) / 60 for w in result["plot_windows"]]
    top.plot(minutes, [w["p99_ms"] for w in result["plot_windows"]], label="p99")
    top.plot(minutes, [w["p50_ms"] for w in result["plot_windows"]], label="p50")
    top.set_ylabel(f"latency per {PLOT_WINDOW:.0f} s, ms")
    top.set_yscale("log")
    top.legend()
    top.set_title(
        f"soak at {result['target_per_second']:.1f} operations/s "
        f"({result['load']:.0%} of {result['maximum_per_second']:.1f}/s)"
    )
    bottom.plot([t / 60 for t, _ in result["rss_samples"]], [m for _, m in result["rss_samples"]])
    bottom.set_ylabel("node RSS, MiB")
    bottom.set_xlabel("minutes into the soak")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def workers_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="the mix:\n" + mix_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length (default 10)")
    parser.add_argument(
        "--load", type=float, default=0.7, help="share of the measured maximum (default 0.7)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seeds the mix's draws (default 1)")
    parser.add_argument(
        "--rate", type=float, help="skip the calibration: soak at this many operations/s"
    )
    parser.add_argument(
        "--calibrate-workers",
        type=workers_list,
        default=[16, 32, 64],
        help="closed-loop workers for the calibration, comma-separated (default 16,32,64)",
    )
    parser.add_argument(
        "--calibrate-seconds", type=float, default=15.0, help="per calibration step (default 15)"
    )
    parser.add_argument(
        "--warmup-seconds", type=float, default=30.0, help="open loop before the soak (default 30)"
    )
    parser.add_argument(
        "--reference-seconds", type=float, default=10.0, help="per echo measurement (default 10)"
    )
    parser.add_argument(
        "--residents", type=int, default=2000, help="Xiamen residents with scores (default 2000)"
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the node")
    parser.add_argument(
        "--connections", type=int, default=64, help="client keep-alive connections (default 64)"
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=2000,
        help="operations outstanding beyond which a due one is dropped (default 2000)",
    )
    parser.add_argument(
        "--progress", type=float, default=10.0, help="seconds between progress lines (stderr)"
    )
    parser.add_argument("--plot", type=Path, help="write p50/p99 and RSS over the soak to a PNG")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if args.minutes <= 0 or not 0 < args.load <= 1 or not args.calibrate_workers:
        parser.error("--minutes must be positive, --load in (0, 1], --calibrate-workers given")
    result = asyncio.run(measure(args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    if args.plot:
        plot(result, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
