"""Real nodes for the durability tests (issue 7): ``python -m node serve``
processes on loopback ports (``simulator.cluster.NodeProcess``), set up the way an
operator, a city's departments, its residents and its service points do it (``ccx node
init`` and ``ccx alliance ...`` through ``simulator.tooling``, then the public HTTP API
through ``simulator.api`` and ``simulator.holders``), and a read-only look into their
databases afterwards.

Which worker process served a request is read from the kernel: the server side of the
request's TCP connection is a socket that exactly one worker holds open
(``/proc/net/tcp`` gives the socket's inode, ``/proc/<pid>/fd`` who holds it). Linux only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import NullPool

import protocol as P
from keys import generate_key
from node.dev_idp import DevIdentityProvider
from node.settings import Settings
from node.state import load_keyring
from simulator.api import Api
from simulator.cluster import NodeProcess, free_port, new_admin_token
from simulator.holders import attestation_request, consent
from simulator.tooling import ccx
from tests.storage import pg

__all__ = [
    "ALLIANCE",
    "BACKENDS",
    "CITY",
    "SCENARIO",
    "CityNode",
    "Issuance",
    "PinnedConnection",
    "at_once",
    "attestation_claims",
    "create_client",
    "database_for",
    "enrol_residents",
    "issuance_bodies",
    "json_value",
    "paused",
    "pin_connections",
    "read_only",
    "resident_token",
    "rows",
    "start_node",
    "status_of",
    "worker_pids",
]

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
CITY = "xiamen"
ALLIANCE = "https://alliance.ccx.example"
SCENARIO = "library_deposit_free"
PASSPHRASE = "durability tests only, not a secret"
DAY = 86400
PIN_REQUEST_TIMEOUT = 1.0  # seconds a worker is paused at most while another is pinned
PIN_RETRY_AFTER = 2.0  # seconds every worker runs before the next try
READY_TIMEOUT = 90.0  # seconds for a node to answer /healthz (2 shared vCPUs)
PUSH_SCOPE = "records:push"
BACKENDS = ["sqlite", "postgresql"]  # PostgreSQL when CCX_TEST_DATABASE_URL names a server
# The city's identity provider, outside the node as a real one is: its tokens hold
# across restarts and in every worker. (The node's own development provider keeps its
# key in each process's memory: a token from one worker is refused by the others.)
IDENTITY_PROVIDER = DevIdentityProvider()


@contextlib.contextmanager
def database_for(backend: str) -> Iterator[str | None]:
    """A database for a node on ``backend`` (one of BACKENDS): None for SQLite (the
    node's file in its data folder), else a fresh PostgreSQL database on the server of
    CCX_TEST_DATABASE_URL, dropped after; skips without a server."""
    if backend == "sqlite":
        yield None
        return
    url = pg.server_url()
    if url is None:
        pytest.skip(pg.SKIP_REASON)
    with pg.temporary_database(url, "ccx_durability") as database:
        yield database


@dataclass
class CityNode:
    """A node process, where its data lives, and how to reach it as its admin."""

    process: NodeProcess
    database_url: str
    folder: Path

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def admin_token(self) -> str:
        return self.process.admin_token

    def restart(self) -> None:
        """Start it again on the same port, data folder and database; wait until ready."""
        self.process.start()
        self.process.wait_ready(READY_TIMEOUT)


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    # ``ccx node init`` and ``ccx alliance`` read CCX_* as an operator's shell sets them
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _mapping_table(folder: Path, now: int) -> Path:
    """The demo table for the city with a validity window around ``now``, so that the
    tests don't depend on the calendar (the node reads it through CCX_MAPPING_TABLE)."""
    claims = json.loads((ROOT / "mappings" / "tables" / f"{CITY}.table.json").read_text())
    claims["valid_from"], claims["valid_to"] = now - DAY, now + 365 * DAY
    path = folder / f"{CITY}.table.json"
    path.write_text(json.dumps(claims), encoding="utf-8")
    return path


def _publish_registry(folder: Path, node_id: str, settings: Settings, now: int) -> Path:
    """An alliance whose registry version 1 lists this node alone, made with ``ccx
    alliance`` and saved where the node's registry follower keeps the versions it has
    taken (``<data_dir>/registry/v1.jwt``): the node decides verifications with no
    alliance host. Returns the root public key file the node pins."""
    alliance = folder / "alliance"
    jwks = folder / "node.jwks.json"
    jwks.write_text(json.dumps(load_keyring(settings).jwks(now)), encoding="utf-8")
    ccx("alliance", "init", "--id", ALLIANCE, "--dir", str(alliance))
    ccx("alliance", "admit", "--dir", str(alliance), "--member-id", node_id,
        "--name", CITY.title(), "--city", CITY, "--jwks", str(jwks))  # fmt: skip
    ccx("alliance", "publish", "--dir", str(alliance))
    saved = settings.data_dir / "registry"
    saved.mkdir(parents=True, exist_ok=True)
    (saved / "v1.jwt").write_bytes((alliance / "registry" / "current.jwt").read_bytes())
    return alliance / "root.jwk"


def start_node(
    folder: Path,
    database_url: str | None,
    *,
    workers: int = 1,
    registry: bool = False,
    env: Mapping[str, str] | None = None,
) -> CityNode:
    """``ccx node init`` a Xiamen node in ``folder`` (on ``database_url``, default SQLite
    in its data folder), start it with ``workers`` uvicorn workers and wait until it
    answers. Residents' tokens come from ``IDENTITY_PROVIDER``; scheduler off; nonces
    and challenges good for 10 minutes (a crash and a restart fit in); service-point
    rate limits out of the way. ``registry``: the node follows a registry (version 1,
    itself its only member), so that it decides verifications. The caller stops it
    (``process.stop()``)."""
    port = free_port()
    node_id = f"http://127.0.0.1:{port}"
    data_dir = folder / "node"
    database_url = database_url or f"sqlite:///{data_dir / 'node.db'}"
    token, token_hash = new_admin_token()
    now = int(time.time())
    settings = {
        "CCX_DATA_DIR": str(data_dir),
        "CCX_CITY": CITY,
        "CCX_NODE_ID": node_id,
        "CCX_DATABASE_URL": database_url,
        "CCX_KEYRING_PASSPHRASE": PASSPHRASE,
    }
    node_env = {
        **settings,
        "CCX_ADMIN_TOKEN_HASH": token_hash,
        "CCX_ALLIANCE": ALLIANCE,
        "CCX_SCHEDULER": "false",
        "CCX_IDP_JWKS": IDENTITY_PROVIDER.jwks(),
        "CCX_MAPPING_TABLE": str(_mapping_table(folder, now)),
        "CCX_NONCE_LIFETIME": "600",
        "CCX_CHALLENGE_LIFETIME": "600",
        "CCX_VERIFY_RATE": "1000000",
        "CCX_VERIFY_BURST": "1000000",
        "CCX_RATE_LIMITS": "false",  # bursts on purpose (issue 17: limits tested elsewhere)
    }
    with _environment(settings):
        ccx("node", "init", "--city", CITY, "--data-dir", str(data_dir), "--node-id", node_id)
        if registry:
            root = _publish_registry(
                folder,
                node_id,
                Settings(data_dir=data_dir, keyring_passphrase=SecretStr(PASSPHRASE)),
                now,
            )
            node_env["CCX_ALLIANCE_ROOT_JWK"] = str(root)
    process = NodeProcess(
        "xiamen", port, data_dir, {**node_env, **(env or {})}, token, folder / "node.log",
        workers=workers, log_level="info",
    )  # fmt: skip
    node = CityNode(process, database_url, folder)
    try:
        node.restart()
    except BaseException:
        process.stop(kill=True)
        raise
    return node


# --- the public API: departments, residents, service points ------------------------------


async def create_client(
    api: Api, node: CityNode, client_id: str, department: str, scopes: list[str]
) -> str:
    """Client credentials made by the node's admin; the bearer token."""
    created = await api.ok(
        "POST", node.url, "/v1/admin/clients", token=node.admin_token,
        body={"id": client_id, "department": department, "scopes": scopes},
    )  # fmt: skip
    return str(created["token"])


async def enrol_residents(api: Api, node: CityNode, residents: list[str]) -> dict[str, str]:
    """Each resident gets a score (a department pushes a record of hers), logs in at the
    city's identity provider and gives both consents. Her bearer token by id."""
    department = await create_client(api, node, "registry-feed", "civil_registry", [PUSH_SCOPE])
    seed = [
        {"record_id": f"seed-{resident}", "resident_id": resident,
         "kind": "identity_verified", "occurred_at": int(time.time()) - 30 * DAY}
        for resident in residents
    ]  # fmt: skip
    pushed = await api.ok("POST", node.url, "/v1/records", body={"records": seed}, token=department)
    assert pushed["stored"] == len(residents), pushed
    tokens = {}
    for resident in residents:
        tokens[resident] = resident_token(resident)
        await consent(api, node.url, tokens[resident])
    return tokens


def resident_token(resident: str) -> str:
    """A bearer token of the city's identity provider for ``resident``, good for an hour."""
    return IDENTITY_PROVIDER.token(resident, now=int(time.time()), lifetime=3600)


@dataclass
class Issuance:
    """One request for an attestation: whose, the bound key (its thumbprint names the
    attestation row the node stores), and the request's body."""

    resident: str
    token: str
    key: Any
    body: dict[str, Any]

    @property
    def holder_kid(self) -> str:
        return P.jwk_thumbprint(P.public_jwk(self.key))

    @property
    def nonce(self) -> str:
        return str(json.loads(P.b64url_decode(self.body["proof"].split(".")[1]))["nonce"])


async def issuance_bodies(
    api: Api, node: CityNode, tokens: Mapping[str, str], count: int
) -> list[Issuance]:
    """``count`` ready requests for attestations, round the residents, each with a fresh
    holder key and its own nonce (asked for now, over HTTP)."""
    residents = sorted(tokens)
    prepared = []
    for n in range(count):
        resident = residents[n % len(residents)]
        key = generate_key("ES256")
        body = await attestation_request(api, node.url, tokens[resident], key)
        prepared.append(Issuance(resident, tokens[resident], key, body))
    return prepared


def attestation_claims(attestation: str) -> dict[str, Any]:
    """The issuer-signed payload of an SD-JWT VC (status, cnf, ...), not verified."""
    claims: dict[str, Any] = json.loads(P.b64url_decode(attestation.split("~")[0].split(".")[1]))
    return claims


def status_of(attestation: str) -> tuple[int, int]:
    """(status list id, index) of an attestation, from its ``status`` claim."""
    status = attestation_claims(attestation)["status"]["status_list"]
    return int(status["uri"].rsplit("/", 1)[1]), int(status["idx"])


def at_once(calls: Sequence[Callable[[], T]], timeout: float = 120.0) -> list[T]:
    """Run each call in a thread of its own, all released together; their results, in
    order. Re-raises the first exception a call raised; AssertionError if one hangs."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait(timeout=30)
            results[n] = calls[n]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), f"requests hung for {timeout} s"
    if errors:
        raise errors[0]
    return results


# --- the database, read only -------------------------------------------------------------


@contextlib.contextmanager
def read_only(database_url: str) -> Iterator[Connection]:
    """A connection that can't write: SQLite opened with ``mode=ro``, PostgreSQL in a
    read-only transaction."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = url.database
        engine = create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(f"file:{path}?mode=ro", uri=True),
            poolclass=NullPool,
        )
    else:
        engine = create_engine(
            url.set(drivername="postgresql+psycopg"),
            connect_args={"options": "-c default_transaction_read_only=on"},
            poolclass=NullPool,
        )
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def rows(database_url: str, query: str, **params: Any) -> list[Any]:
    """The rows of one read-only query."""
    with read_only(database_url) as connection:
        return list(connection.execute(text(query), params))


def json_value(value: Any) -> Any:
    """A JSON column as Python (SQLite hands back text, psycopg the value)."""
    return json.loads(value) if isinstance(value, str) else value


# --- which worker served a request -------------------------------------------------------


def _children(pid: int) -> dict[int, str]:
    """The child processes of ``pid``, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            # the fields after the command name (which may hold spaces): state, ppid, ...
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found[int(entry.name)] = (entry / "cmdline").read_text().replace("\0", " ")
    return found


def worker_pids(node: CityNode, timeout: float = 30.0) -> set[int]:
    """The process ids of the node's uvicorn workers: the process itself with one worker,
    else the supervisor's children that run a worker (not multiprocessing's resource
    tracker), once all of them are there."""
    assert node.process.process is not None
    supervisor, count = node.process.process.pid, node.process.workers
    if count == 1:
        return {supervisor}
    deadline = time.monotonic() + timeout
    while True:
        workers = {pid for pid, line in _children(supervisor).items() if "spawn_main" in line}
        if len(workers) == count:
            return workers
        if time.monotonic() > deadline:
            raise AssertionError(f"the node runs {len(workers)} workers, not {count}")
        time.sleep(0.1)


def _loopback(port: int) -> str:
    return f"0100007F:{port:04X}"  # 127.0.0.1:port as /proc/net/tcp writes it


def serving_worker(server_port: int, client_port: int, workers: set[int]) -> int | None:
    """The worker that holds the server side of the connection from ``client_port``:
    the socket's inode from /proc/net/tcp, then the worker with that socket open."""
    local, remote = _loopback(server_port), _loopback(client_port)
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[1] == local and parts[2] == remote:
            inode = parts[9]
            break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in workers:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
    return None


class PinnedConnection:
    """One keep-alive HTTP connection to the node; every answer comes with the worker
    that served it, read from the kernel while the connection is open (and looked up
    again only if the client had to open a new connection)."""

    def __init__(self, node: CityNode, workers: set[int]) -> None:
        self.node, self.workers = node, workers
        self.client = httpx.Client(
            base_url=node.url,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=60.0,
        )
        self._seen: tuple[int, int | None] | None = None  # (client port, worker)

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        timeout: float = 60.0,
    ) -> tuple[httpx.Response, int | None]:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        response = self.client.request(method, path, json=body, headers=headers, timeout=timeout)
        stream = response.extensions["network_stream"]  # httpcore's, for HTTP/1.1
        port: int = stream.get_extra_info("client_addr")[1]
        if self._seen is None or self._seen[0] != port:
            self._seen = (port, serving_worker(self.node.process.port, port, self.workers))
        return response, self._seen[1]

    def close(self) -> None:
        self.client.close()


@contextlib.contextmanager
def paused(pids: set[int]) -> Iterator[None]:
    """The worker processes ``pids`` stopped (SIGSTOP) for the block, continued (SIGCONT)
    however it ends. Keep it short: uvicorn replaces a worker that doesn't answer its
    health check in time (node/cli.py)."""
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # uvicorn replaced it: the caller sees
                os.kill(pid, signal.SIGCONT)


def pin_connections(
    node: CityNode, workers: set[int], per_worker: int, timeout: float = 120.0
) -> dict[int, list[PinnedConnection]]:
    """``per_worker`` keep-alive connections held by each worker.

    Which worker accepts a new connection is the kernel's choice, and on an idle node
    one worker took 39 of 40 here; so while a connection is opened for one worker, the
    others are paused (SIGSTOP) and can't accept it. A pause lasts one /healthz (tens
    of milliseconds, PIN_REQUEST_TIMEOUT at most: a worker still starting up is then
    waited for with every worker running), far from uvicorn's 5 s health check of its
    workers. The requests sent on these connections later are served with every worker
    running.
    """
    pinned: dict[int, list[PinnedConnection]] = {pid: [] for pid in workers}
    deadline = time.monotonic() + timeout
    try:
        for pid in sorted(workers):
            while len(pinned[pid]) < per_worker:
                if time.monotonic() > deadline:
                    counts = {p: len(held) for p, held in pinned.items()}
                    raise AssertionError(f"connections not pinned in {timeout} s: {counts}")
                connection = PinnedConnection(node, workers)
                try:
                    with paused(workers - {pid}):
                        response, served_by = connection.request(
                            "GET", "/healthz", timeout=PIN_REQUEST_TIMEOUT
                        )
                except httpx.TimeoutException:  # that worker is not serving yet
                    connection.close()
                    time.sleep(PIN_RETRY_AFTER)
                    continue
                assert response.status_code == 200, response.text
                assert served_by == pid, f"worker {served_by} took worker {pid}'s connection"
                pinned[pid].append(connection)
    except BaseException:
        for held in pinned.values():
            for connection in held:
                connection.close()
        raise
    return pinned
