"""Service-point verification through HTTP, beside a bare FastAPI echo of the same body.

Run from the repository root::

    .venv/bin/python bench/verify_http.py [--seconds S] [--rounds N] [--clients C] [--json]
    .venv/bin/python bench/verify_http.py --quick      # a smoke run of a few seconds

Three servers run under uvicorn on loopback, each in a process of its own with one
worker, on SQLite (WAL) in a temporary folder:

- a Fuzhou node (the visitors' home city) that issues, before timing, one ES256
  attestation to each of 64 visitors, each bound to a holder key of her own; its status
  lists carry ``ttl`` 3600 (``CCX_STATUS_LIST_TTL``);
- a Xiamen node (the verifier): its alliance registry (both nodes and their JWKS,
  signed by a root key made for the run) is written to ``<data_dir>/registry/v1.jwt``
  before it starts and pinned with ``CCX_ALLIANCE_ROOT_JWK`` (no registry URL: nothing
  is fetched); a service-point client with ``verify:library_deposit_free`` is written
  into its database; its rate limit is raised out of the way (``CCX_VERIFY_RATE``,
  ``CCX_VERIFY_BURST``). It fetches Fuzhou's status list once, before timing, and
  serves it from its cache from then on (the Fuzhou node's CPU time while timing shows
  that it was not asked again);
- a bare echo: a FastAPI app whose sync route parses the same ``VerificationIn`` body
  as ``POST /v1/verifications`` and returns it; nothing else.

C concurrent httpx clients (asyncio, keep-alive) time three rows:

a. the echo of the verification body (the same bytes and headers as row b);
b. ``POST /v1/verifications`` alone: challenge nonces minted before the turn straight
   into the Xiamen database (as ``POST /v1/verifications/challenge`` writes them: the
   nonce's SHA-256, bound to the scenario and the client), presentations (SD-JWT with
   one disclosure and an ES256 KB-JWT) made before the turn; every answer must be 200
   ``granted`` (the whole check: nonce used up, issuer signature, holder binding,
   registry keys, status from the cache, the rule, the audit log);
c. the whole service-point flow: a challenge over HTTP, the wallet's presentation (in
   the client), the verification, in flows per second.

Each round gives every row ``--seconds`` of time, in turn, after a warm-up round. Rates
are the median of the rounds, the ratio verification / echo the median of the
per-round ratios (target >= 0.6), p99 latencies are over all requests of a row (target
for row b <= 50 ms). The server's CPU time per request (from /proc) says where the time
goes. Figures are for one machine in one run; the client shares it. This is a script,
not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from fastapi import Request  # module level: the echo route's annotations name them
from fastapi.responses import Response

# The repository root, so that the script runs from anywhere without an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import issue_http
from _http import RawConnection
from _machine import cpu_model  # bench/ is on sys.path as the script's folder
from issue_http import Row, Server, clock_offset_for, free_port

import protocol as P
from keys import generate_key
from node.routers.verifications import VerificationIn  # the body both servers parse
from protocol._jws import sign_jws
from wallet import available_claims, response_form

HOME, VERIFIER = "fuzhou", "xiamen"
SCENARIO = "library_deposit_free"
CLIENT_ID = "library-desk"
VISITORS = 64
TARGET_RATIO = 0.6
TARGET_P99_MS = 50.0
PASSPHRASE = "benchmark passphrase, not a secret"  # noqa: S105
CHALLENGE_LIFETIME = 900  # seconds a minted challenge stays valid (made just before its turn)
WARM_UP_POOL = 2000  # presentations for the warm-up turn of row b
ROOT = Path(__file__).resolve().parent.parent


# --- the servers (``--serve node|echo`` runs one in this process) --------------------------


def serve(kind: str, port: int, clock_offset: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    if kind == "node":
        workers = int(os.environ.get(WORKERS_VARIABLE, "1"))
        if workers > 1:  # uvicorn's supervisor: the app by name, built in each worker
            os.environ[OFFSET_VARIABLE] = str(clock_offset)
            uvicorn.run("verify_http:node_app", factory=True, host="127.0.0.1", port=port,
                        workers=workers, log_level="warning", access_log=False)  # fmt: skip
            return
        app = node_app(clock_offset)
    else:
        app = FastAPI(title="echo")

        @app.post("/echo")
        def echo(body: VerificationIn) -> VerificationIn:
            return body

        @app.post("/echo-form")
        async def echo_form(request: Request) -> Response:
            # the OpenID4VP response's form body, read and parsed, nothing else
            fields = dict(parse_qsl((await request.body()).decode("ascii")))
            return Response(json.dumps(sorted(fields)), media_type="application/json")

        @app.get("/healthz")
        def healthz() -> dict[str, str]:
            return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


WORKERS_VARIABLE, OFFSET_VARIABLE = "CCX_BENCH_WORKERS", "CCX_BENCH_CLOCK_OFFSET"


def node_app(clock_offset: int | None = None) -> Any:
    """A node app on the clock shifted by ``clock_offset`` (default: from the environment,
    for uvicorn's workers)."""
    from node.app import create_app

    offset = int(os.environ.get(OFFSET_VARIABLE, "0")) if clock_offset is None else clock_offset
    return create_app(now=lambda: int(time.time()) + offset)


@dataclass
class Group:
    """Several processes of one node (replicas on one database), reached round-robin:
    connection ``i`` goes to ``servers[i % n]``."""

    servers: list[Server]

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    @property
    def port(self) -> int:
        return self.servers[0].port

    @property
    def url(self) -> str:
        return self.servers[0].url

    def cpu_seconds(self) -> float:
        return sum(server.cpu_seconds() for server in self.servers)


def start_server(name: str, kind: str, port: int, env: dict[str, str], offset: int) -> Server:
    return issue_http.start_server(kind, env, offset, script=__file__, name=name, port=port)


def stop_quietly(server: Server) -> None:
    with contextlib.suppress(ProcessLookupError):
        server.stop()


# --- preparing the nodes' data ------------------------------------------------------------


def node_environment(data_dir: Path, port: int, city: str) -> dict[str, str]:
    return {
        "CCX_DATA_DIR": str(data_dir),
        "CCX_NODE_ID": f"http://127.0.0.1:{port}",
        "CCX_CITY": city,
        "CCX_SCHEDULER": "false",
        "CCX_KEYRING_PASSPHRASE": PASSPHRASE,
        "CCX_RATE_LIMITS": "false",  # bursts on purpose (issue 17: limits tested elsewhere)
    }


def node_settings(data_dir: Path, port: int, city: str, *, database_url: str | None = None) -> Any:
    from node.settings import Settings

    return Settings(
        data_dir=data_dir,
        node_id=f"http://127.0.0.1:{port}",
        city=city,
        scheduler=False,
        keyring_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        database_url=database_url,
    )


def prepare_home(settings: Any, now: int, residents: int = VISITORS) -> dict[str, Any]:
    """The Fuzhou node's keyring and schema, and ``residents`` residents (``visitor-<n>``)
    with scores that an alliance minimum of 600 grants, and both consents. Returns its
    JWKS. (bench/soak.py prepares its Xiamen node's residents with it too.)"""
    from sqlmodel import Session

    from node.app import initialize_node
    from node.db import make_engine
    from node.models import Consent, Score

    ring = initialize_node(settings, now=now)
    engine = make_engine(settings.effective_database_url)
    with Session(engine) as session:
        for n in range(residents):
            visitor = f"visitor-{n}"
            session.add(
                Score(
                    resident_id=visitor,
                    score=620 + (n * 7) % 180,
                    by_dimension={},
                    computed_at=now - 3600,
                    model_version="demo-2026.11",
                )
            )
            session.add(Consent(resident_id=visitor, kind="open_score", granted_at=now - 60))
            # every member may receive it ("alliance"): docs/ISSUING.md, recipients
            session.add(Consent(resident_id=visitor, kind="share_alliance", recipients=["alliance"],
                                purpose="benchmark", granted_at=now - 60))  # fmt: skip
        session.commit()
    engine.dispose()
    jwks: dict[str, Any] = ring.jwks(now)
    return jwks


def prepare_verifier(
    settings: Any, now: int, home: tuple[str, dict[str, Any]]
) -> tuple[str, str, bytes]:
    """The Xiamen node's keyring and schema, a registry version 1 (both nodes, signed by
    a root key made here, which is also the verifier CA: its certificate and Xiamen's
    leaves in it, as ``ccx alliance publish`` makes them) in
    ``<data_dir>/registry/v1.jwt``, and a service-point client. Returns the root public
    JWK (JSON), the client's bearer token and the CA certificate (DER)."""
    from sqlmodel import Session

    from alliance.state import DEFAULT_POLICY
    from mappings import AllianceScale
    from node.app import initialize_node
    from node.db import make_engine
    from node.services import clients

    ring = initialize_node(settings, now=now)
    root = generate_key("ES256")
    ca = P.ca_certificate(root, name="bench alliance CA", not_before=now - 3600,
                          not_after=now + 30 * 86400, serial=1)  # fmt: skip
    leaves = {
        jwk["kid"]: base64.b64encode(P.leaf_certificate(
            root, ca, P.public_key_from_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y")}),
            uri=settings.node_id, name=VERIFIER, not_before=now - 3600,
            not_after=now + 30 * 86400, serial=2 + n,
        )).decode()
        for n, jwk in enumerate(ring.jwks(now)["keys"])
    }  # fmt: skip
    members = [(settings.node_id, VERIFIER, ring.jwks(now)), (home[0], HOME, home[1])]
    claims = {
        "iss": settings.alliance,
        "exp": now + 30 * 86400,
        "version": 1,
        "prev": None,
        "scale": {"min": 0, "max": 1000, "thresholds": list(AllianceScale().thresholds)},
        "members": [
            {"id": mid, "name": city.title(), "city": city, "status": "active", "jwks": jwks,
             **({"certificates": leaves} if city == VERIFIER else {})}
            for mid, city, jwks in members
        ],
        "mapping_tables": [],
        "policy": DEFAULT_POLICY,
        "verifier_ca": base64.b64encode(ca).decode(),
    }  # fmt: skip
    folder = settings.data_dir / "registry"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "v1.jwt").write_text(P.sign_registry(claims, root_key=root, now=now))
    engine = make_engine(settings.effective_database_url)
    with Session(engine) as session:
        _, token = clients.create_client(
            session,
            client_id=CLIENT_ID,
            department="culture",
            scopes=[f"verify:{SCENARIO}"],
            actor="admin",
            now=now,
        )
    engine.dispose()
    return json.dumps(P.public_jwk(root)), token, ca


def mint_challenges(data_dir: Path, count: int, now: int) -> list[str]:
    """``count`` unused challenges for SCENARIO and CLIENT_ID, sealed with the Xiamen
    node's keyring the way ``POST /v1/verifications/challenge`` seals them (no write:
    node.services.nonces)."""
    from node.services.nonces import seal
    from node.state import load_keyring

    ring = load_keyring(node_settings(data_dir, 0, VERIFIER))
    subject = f"{SCENARIO} {CLIENT_ID}"
    return [seal(ring, "verify", subject, now + CHALLENGE_LIFETIME) for _ in range(count)]


@dataclass(frozen=True)
class Visitor:
    attestation: str
    holder: Any


async def issue_attestations(home: Server, now: int) -> list[Visitor]:
    """One attestation per visitor from the Fuzhou node, over HTTP, as a wallet asks."""
    visitors = []
    async with httpx.AsyncClient(base_url=home.url, timeout=30) as client:
        for n in range(VISITORS):
            token = (await client.post("/dev-idp/token", json={"subject": f"visitor-{n}"})).json()[
                "access_token"
            ]
            headers = {"Authorization": f"Bearer {token}"}
            nonce = (await client.post("/v1/me/attestations/nonce", headers=headers)).json()[
                "nonce"
            ]
            holder = generate_key("ES256")
            proof = sign_jws(
                {"typ": "pop+jwt"},
                json.dumps({"nonce": nonce, "aud": home.url, "iat": now}).encode(),
                holder,
            )
            response = await client.post(
                "/v1/me/attestations",
                json={"holder_jwk": P.public_jwk(holder), "proof": proof},
                headers=headers,
            )
            if response.status_code != 201:
                raise SystemExit(f"issuing an attestation failed: {response.text}")
            visitors.append(Visitor(response.json()["attestation"], holder))
    return visitors


def presentation_body(
    visitor: Visitor, disclose: list[str], aud: str, nonce: str, now: int
) -> bytes:
    presentation = P.present(
        visitor.attestation,
        disclose=disclose,
        holder_key=visitor.holder,
        aud=aud,
        nonce=nonce,
        now=now,
    )
    return json.dumps({"nonce": nonce, "presentation": presentation}).encode()


# --- the load: one keep-alive connection per concurrent client -------------------------


class HttpxConnection:
    """The same through an httpx AsyncClient of one connection (``--client httpx``)."""

    def __init__(self, port: int) -> None:
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=30,
        )

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        response = await self.client.request(method, path, content=body, headers=headers)
        return response.status_code, response.content

    async def close(self) -> None:
        await self.client.aclose()


async def run_turn(
    row: Row | None, server: Server | Group, seconds: float, clients: int, send: Any, kind: str
) -> tuple[float, bool]:
    """Run ``send(connection)`` from ``clients`` tasks, each on a connection of its own,
    for ``seconds``; return requests/s and whether ``send`` ran out of prepared bodies."""
    done = 0
    latencies: list[float] = []
    failures = 0
    ran_out = False
    ports = server.ports
    connections = [
        (RawConnection if kind == "raw" else HttpxConnection)(ports[n % len(ports)])
        for n in range(clients)
    ]
    for connection in connections:  # connect before timing: keep-alive from the start
        await connection.request("GET", "/healthz")
    cpu_before = server.cpu_seconds()
    stop_at = time.perf_counter() + seconds

    async def worker(connection: Any) -> None:
        nonlocal done, failures, ran_out
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            ok = await send(connection)
            if ok is None:  # out of prepared requests
                ran_out = True
                return
            latencies.append(time.perf_counter() - started)
            done += 1
            failures += not ok

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
    return rate, ran_out


# --- measuring ------------------------------------------------------------------------------


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    offset = clock_offset_for(ROOT / "mappings" / "tables" / f"{HOME}.table.json")

    def now() -> int:
        return int(time.time()) + offset

    with tempfile.TemporaryDirectory(prefix="ccx-bench-") as folder:
        home_dir, verifier_dir = Path(folder) / HOME, Path(folder) / VERIFIER
        home_port, verifier_port = free_port(), free_port()
        home_settings = node_settings(home_dir, home_port, HOME)
        verifier_settings = node_settings(
            verifier_dir, verifier_port, VERIFIER, database_url=args.database
        )
        home_jwks = prepare_home(home_settings, now())
        root_jwk, token, ca = prepare_verifier(
            verifier_settings, now(), (home_settings.node_id, home_jwks)
        )
        home_env = {
            **node_environment(home_dir, home_port, HOME),
            "CCX_DEV_IDP": "true",
            "CCX_STATUS_LIST_TTL": "3600",
        }
        verifier_env = {
            **node_environment(verifier_dir, verifier_port, VERIFIER),
            "CCX_ALLIANCE_ROOT_JWK": root_jwk,
            "CCX_VERIFY_RATE": "1000000",
            "CCX_VERIFY_BURST": "1000000",
            WORKERS_VARIABLE: str(args.workers),
            **({"CCX_DATABASE_URL": args.database} if args.database else {}),
        }
        servers: list[Server] = []
        try:
            servers.append(start_server("fuzhou", "node", home_port, home_env, offset))
            replicas = [start_server("xiamen", "node", verifier_port, verifier_env, offset)]
            servers.extend(replicas)
            for n in range(1, args.replicas):  # the same node (data folder, database, id)
                replicas.append(start_server(f"xiamen-{n + 1}", "node", free_port(),
                                             verifier_env, offset))  # fmt: skip
                servers.append(replicas[-1])
            echo = start_server("echo", "echo", free_port(), {}, 0)
            servers.append(echo)
            verifier = Group(replicas)
            return await _measure(args, verifier_dir, servers[0], verifier, echo, token, ca, now)
        finally:
            for server in servers:
                stop_quietly(server)


async def _measure(
    args: argparse.Namespace,
    verifier_dir: Path,
    home: Server,
    verifier: Group,
    echo: Server,
    token: str,
    ca: bytes,
    now: Callable[[], int],
) -> dict[str, Any]:
    visitors = await issue_attestations(home, now())
    auth = {"Authorization": f"Bearer {token}"}
    headers = {**auth, "Content-Type": "application/json"}

    # One flow by hand: checks the set-up and fills the status cache before timing.
    async with httpx.AsyncClient(base_url=verifier.url, headers=auth, timeout=30) as client:
        answer = await client.post("/v1/verifications/challenge", json={"scenario": SCENARIO})
        if answer.status_code != 201:
            raise SystemExit(f"the challenge failed: {answer.text}")
        challenge = answer.json()
        body = presentation_body(
            visitors[0], challenge["disclose"], challenge["aud"], challenge["nonce"], now()
        )
        answer = await client.post("/v1/verifications", content=body, headers=headers)
        if answer.status_code != 200 or answer.json()["decision"] != "granted":
            raise SystemExit(f"the first verification was not granted: {answer.text}")
    disclose, aud = challenge["disclose"], challenge["aud"]

    def prepare(count: int) -> list[bytes]:
        """``count`` verification bodies, each for a fresh minted challenge (untimed)."""
        at = now()
        return [
            presentation_body(visitors[n % VISITORS], disclose, aud, nonce, at)
            for n, nonce in enumerate(mint_challenges(verifier_dir, count, at))
        ]

    echo_bodies = itertools.cycle(prepare(500))
    pool: Iterator[bytes] = iter(())
    counter = itertools.count()

    async def send_echo(connection: Any) -> bool:
        status, _ = await connection.request("POST", "/echo", next(echo_bodies), headers)
        return bool(status == 200)

    def granted(answer: tuple[int, bytes]) -> bool:
        return answer[0] == 200 and b'"decision":"granted"' in answer[1]

    async def send_verify(connection: Any) -> bool | None:
        body = next(pool, None)
        if body is None:
            return None
        return granted(await connection.request("POST", "/v1/verifications", body, headers))

    challenge_body = json.dumps({"scenario": SCENARIO}).encode()

    async def send_flow(connection: Any) -> bool:
        visitor = visitors[next(counter) % VISITORS]
        status, content = await connection.request(
            "POST", "/v1/verifications/challenge", challenge_body, headers
        )
        if status != 201:
            return False
        got = json.loads(content)
        body = presentation_body(visitor, got["disclose"], got["aud"], got["nonce"], now())
        return granted(await connection.request("POST", "/v1/verifications", body, headers))

    # --- OpenID4VP: the response endpoint, and the whole standard flow ---------------------
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}

    async def open_request(connection: Any) -> P.VerifiedRequest | None:
        """The service point's request and the wallet's fetch and check of its object."""
        status, content = await connection.request(
            "POST", "/v1/presentation-requests", challenge_body, headers
        )
        if status != 201:
            return None
        made = json.loads(content)
        status, token = await connection.request("GET", urlsplit(made["request_uri"]).path)
        if status != 200:
            return None
        return P.verify_request_object(
            token.decode(), client_id=made["client_id"], anchors=[ca], now=now()
        )

    def wallet_answer(visitor: Visitor, request: P.VerifiedRequest) -> tuple[str, bytes]:
        """The wallet's encrypted answer (direct_post.jwt): the response path and body."""
        claims = request.claims
        presentation = P.present(
            visitor.attestation,
            disclose=list(request.disclosures_for(available_claims(visitor.attestation))),
            holder_key=visitor.holder, aud=claims["client_id"], nonce=claims["nonce"],
            now=now(),
        )  # fmt: skip
        form = response_form(request, presentation)
        return urlsplit(claims["response_uri"]).path, urlencode(form).encode()

    async def prepare_responses(count: int) -> list[tuple[str, bytes]]:
        """``count`` answers, each to a presentation request made and fetched over HTTP
        before the turn (untimed)."""
        lanes = 16
        connections = [RawConnection(verifier.port) for _ in range(lanes)]
        made: list[tuple[str, bytes]] = []

        async def lane(connection: Any, numbers: range) -> None:
            for n in numbers:
                request = await open_request(connection)
                if request is None:
                    raise SystemExit("a presentation request failed while preparing")
                made.append(wallet_answer(visitors[n % VISITORS], request))

        await asyncio.gather(*(lane(c, range(i, count, lanes)) for i, c in enumerate(connections)))
        for connection in connections:
            await connection.close()
        return made

    echo_forms = itertools.cycle([body for _, body in await prepare_responses(200)])
    responses: Iterator[tuple[str, bytes]] = iter(())

    async def send_echo_form(connection: Any) -> bool:
        status, _ = await connection.request("POST", "/echo-form", next(echo_forms), form_headers)
        return bool(status == 200)

    async def send_response(connection: Any) -> bool | None:
        item = next(responses, None)
        if item is None:
            return None
        status, _ = await connection.request("POST", item[0], item[1], form_headers)
        return bool(status == 200)

    async def send_vp_flow(connection: Any) -> bool:
        request = await open_request(connection)
        if request is None:
            return False
        path, body = wallet_answer(visitors[next(counter) % VISITORS], request)
        status, _ = await connection.request("POST", path, body, form_headers)
        if status != 200:
            return False
        transaction = path.rsplit("/", 1)[1]
        status, content = await connection.request(
            "GET", f"/v1/presentation-requests/{transaction}", b"", auth
        )
        return status == 200 and b'"outcome":"granted"' in content

    rows = {
        name: Row(name) for name in ("echo", "verify", "flow", "echo_form", "respond", "vp_flow")
    }
    schedule: list[tuple[str, Server | Group, Any]] = [
        ("echo", echo, send_echo),
        ("verify", verifier, send_verify),
        ("flow", verifier, send_flow),
        ("echo_form", echo, send_echo_form),
        ("respond", verifier, send_response),
        ("vp_flow", verifier, send_vp_flow),
    ]
    rate_guess = respond_guess = 0.0
    exhausted_turns = 0
    home_cpu_before = None
    for warm_up in (True, *([False] * args.rounds)):
        seconds = min(args.seconds, 1.0) if warm_up else args.seconds
        if not warm_up and home_cpu_before is None:
            home_cpu_before = home.cpu_seconds()
        for name, server, send in schedule:
            if name == "verify":  # enough bodies for the turn, made before it
                count = WARM_UP_POOL if warm_up else math.ceil(2 * rate_guess * seconds) + 200
                pool = iter(prepare(count))
            if name == "respond":  # enough answers to requests made before the turn
                count = 600 if warm_up else math.ceil(2 * respond_guess * seconds) + 200
                responses = iter(await prepare_responses(count))
            row = None if warm_up else rows[name]
            rate, ran_out = await run_turn(row, server, seconds, args.clients, send, args.client)
            if name == "verify":
                rate_guess = max(rate_guess, rate)
                exhausted_turns += ran_out and not warm_up
            if name == "respond":
                respond_guess = max(respond_guess, rate)
                exhausted_turns += ran_out and not warm_up
    home_cpu = home.cpu_seconds() - (home_cpu_before or 0.0)
    ratios = [v / e for v, e in zip(rows["verify"].rates, rows["echo"].rates, strict=True)]
    vp_ratios = [r / e for r, e in zip(rows["respond"].rates, rows["echo_form"].rates, strict=True)]
    return {
        "rows": {
            name: {
                "per_second": statistics.median(row.rates),
                "p99_ms": row.p99_ms(),
                "median_ms": 1000 * statistics.median(row.latencies),
                "server_cpu_ms": 1000 * statistics.median(row.cpu_per_request),
                "requests": len(row.latencies),
                "failures": row.failures,
            }
            for name, row in rows.items()
        },
        # a failed request is never throughput: a run with failures gives no ratio
        "ratio_verify_to_echo": (
            None if any(row.failures for row in rows.values()) else statistics.median(ratios)
        ),
        "ratio_response_to_echo": (
            None if any(row.failures for row in rows.values()) else statistics.median(vp_ratios)
        ),
        "target_ratio": TARGET_RATIO,
        "target_p99_ms": TARGET_P99_MS,
        "verify_turns_out_of_bodies": exhausted_turns,
        "home_node_cpu_seconds_while_timing": home_cpu,
        "clients": args.clients,
        "client": args.client,
        "verifier": {
            "database": "postgresql" if args.database else "sqlite",
            "workers": args.workers,
            "replicas": args.replicas,
        },
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
        "verify": "POST /v1/verifications (challenge made before)",
        "flow": "whole flow: challenge + present + verify (flows)",
        "echo_form": "bare echo of the same OpenID4VP response form",
        "respond": "POST /oid4vp/responses/<tx> (request made before)",
        "vp_flow": "OpenID4VP: request, object, answer, result (flows)",
    }
    env, verifier = result["environment"], result["verifier"]
    print(
        f"verifying node: {verifier['database']}, {verifier['replicas']} process(es) of "
        f"{verifier['workers']} worker(s)"
    )
    print(
        f"{env['cpu_model']}, {env['logical_cpus']} CPUs, Python {env['python']}; "
        f"{result['clients']} connections ({result['client']} client), {result['rounds']} rounds of {result['seconds']} s; "
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
    if failed:
        print(f"verification / echo: no figure: failed requests {failed}")
        raise SystemExit(1)
    ratio, p99 = result["ratio_verify_to_echo"], result["rows"]["verify"]["p99_ms"]
    ratio_ok = ratio >= result["target_ratio"]
    p99_ok = p99 <= result["target_p99_ms"]
    print(
        f"verification / echo: {ratio:.2f} (target >= {result['target_ratio']}, "
        f"{'MET' if ratio_ok else 'MISSED'}); verification p99 {p99:.1f} ms "
        f"(target <= {result['target_p99_ms']:.0f} ms, {'MET' if p99_ok else 'MISSED'})"
    )
    vp_ratio, vp_p99 = result["ratio_response_to_echo"], result["rows"]["respond"]["p99_ms"]
    print(
        f"OpenID4VP response / echo: {vp_ratio:.2f} (target >= {result['target_ratio']}, "
        f"{'MET' if vp_ratio >= result['target_ratio'] else 'MISSED'}); response p99 "
        f"{vp_p99:.1f} ms (target <= {result['target_p99_ms']:.0f} ms, "
        f"{'MET' if vp_p99 <= result['target_p99_ms'] else 'MISSED'})"
    )
    print(
        f"Fuzhou node CPU while timing: {result['home_node_cpu_seconds_while_timing']:.2f} s "
        "(status list served from the Xiamen cache)"
    )
    if result["verify_turns_out_of_bodies"]:
        print(f"note: {result['verify_turns_out_of_bodies']} verification turns ran out of bodies")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per row and round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP connections")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator: bare asyncio HTTP/1.1 (default) or httpx.AsyncClient",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="the verifying node's database (postgresql://...; default: SQLite in its folder)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn workers of each verifying node process"
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="processes of the verifying node on one database (use --database), reached "
        "round-robin by the connections",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds of 0.5 s")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--serve", choices=["node", "echo"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clock-offset", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.clock_offset)
        return
    if args.quick:
        args.seconds, args.rounds = 0.5, 2
    result = asyncio.run(measure(args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)


if __name__ == "__main__":
    main()
