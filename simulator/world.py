"""The alliance a simulation runs (issue 6, docs/SIMULATOR.md): its options, the city
nodes and the alliance host as processes, the cities' residents and holders, the grants
seen, and each phase as a method: the alliance made with `ccx alliance init`, an
alliance host and one node per city started as real processes on loopback (`ccx node
init` / `ccx node serve`, each with its own SQLite database), the cities admitted and
registry v1 published, each city's departments pushing its synthetic residents' records,
each node rescoring everyone and handing the alliance its distribution summary, the
alliance building, signing and attaching a mapping table per city (`ccx mapping build
--sign`, `ccx alliance table`) and publishing v2, residents consenting and fetching
attestations, service points deciding presentations of locals and visitors.
simulator/run.py runs the phases in order with the faults (simulator/faults.py) and the
invariants (simulator/invariants.py), which see the world through this class.

Everything between the simulator and a node goes through the node's public HTTP API.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

import protocol as P
from alliance.state import REQUIRED_SCENARIOS
from cli import InputError
from node.credentials import load_credential_rules
from node.scoring import load_model
from simulator import domestic, population
from simulator.api import Api, Unreachable, error_code
from simulator.cluster import NodeProcess, free_port, new_admin_token
from simulator.holders import Holder, available_claims, enrol
from simulator.observations import CityInfo, Fault, Outcome, RunResult, Visit
from simulator.tooling import ccx
from wallet import response_form

__all__ = ["DEFAULT_CITIES", "STATUS_TTL", "City", "Grant", "Options", "World"]

DEFAULT_CITIES = ("xiamen", "fuzhou", "hangzhou", "quanzhou", "zhangzhou")
ALLIANCE_ID = "https://alliance.sim.ccx.example"
CITIES_DIR = Path(__file__).parent / "cities"
MARKER = ".ccx-simulation"  # a run folder we made, and may wipe on the next run
# The issuer's status-list ttl and the verifiers' floor on it: short, so that a
# withdrawn consent reaches every city within seconds of a small run.
STATUS_TTL = 5
REGISTRY_REFRESH = 1  # seconds between registry fetches (loopback: as fresh as it gets)
WITNESS_INTERVAL = 1  # seconds between checkpoints of each node's audit head
# Half the visits are made at home: locals are the baseline the fairness gap compares
# visitors with, and an even split gives both groups the same statistical weight.
LOCAL_SHARE = 0.5
# A decision that is "denied" because of the attestation's status or age, not its score:
# the report counts these as refusals, apart from the scenario decisions.
NOT_A_SCORE_DECISION = frozenset(
    {"attestation_revoked", "attestation_suspended", "attestation_status_unknown",
     "attestation_too_old"}
)  # fmt: skip


@dataclass(frozen=True)
class Options:
    residents: int = 5_000  # over all cities, split evenly
    visits: int = 5_000
    holders: int | None = None  # residents who fetch an attestation; default from visits
    cities: tuple[str, ...] = DEFAULT_CITIES
    seed: int = 2026
    concurrency: int = 16  # visits in flight
    faults: bool = True
    out: Path = Path("simulation")
    progress: bool = True
    batch: int = 5_000  # records per push

    def holders_total(self) -> int:
        if self.holders is not None:
            return min(self.holders, self.residents)
        # an attestation is presented many times in its month: ~20 visits per holder
        return min(self.residents, max(20 * len(self.cities), self.visits // 20))


@dataclass
class City:
    name: str
    profile: population.CityProfile
    node: NodeProcess
    population: population.Population | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    table: dict[str, Any] = field(default_factory=dict)
    service_token: str = ""
    holders: list[Holder] = field(default_factory=list)
    housekeepers: list[Holder] = field(default_factory=list)  # holding a domestic credential

    @property
    def issues_domestic(self) -> bool:
        """Whether the city's model feeds the domestic-service credential (issue 18)."""
        model = CITIES_DIR / f"{self.name}.toml"
        return load_credential_rules(model, load_model(model)) is not None

    def scored_residents(self) -> list[str]:
        """Residents with at least one record: the node holds a score only for them."""
        assert self.population is not None
        ids = self.population.resident_ids
        return [ids[i] for i in sorted(set(self.population.resident_idx.tolist()))]


@dataclass(frozen=True)
class Grant:
    """A granted decision as the service point saw it, to find in the node's audit log."""

    city: str
    audit_seq: int
    scenario: str
    issuer: str

    @classmethod
    def of(cls, city: str, answer: Mapping[str, Any]) -> Grant:
        """From a presentation request's decision (``GET /v1/presentation-requests/<id>``)."""
        return cls(city, answer["audit_seq"], answer["scenario"], answer["issuer"])


class World:
    """The alliance a simulation runs: its options, processes, cities, holders, grants,
    and each phase as a method (simulator/run.py runs them in order, with the faults and
    the invariants)."""

    def __init__(self, options: Options, console: Console | None = None) -> None:
        # Bad options are InputError naming the option (the commands' one-line errors).
        if len(set(options.cities)) != len(options.cities) or len(options.cities) < 2:
            raise InputError("invalid_option", "--cities", "needs at least two distinct cities")
        for name in options.cities:
            try:
                population.profile(name)
            except ValueError as exc:  # names the known cities
                raise InputError("unknown_city", "--cities", str(exc)) from exc
        if options.residents < 10 * len(options.cities):
            raise InputError(
                "invalid_option", "--residents", f"must be at least {10 * len(options.cities)}"
            )
        if options.faults and options.holders_total() < 10 * len(options.cities):
            raise InputError(
                "invalid_option",
                "--holders",
                f"the faults need at least 10 holders per city: {10 * len(options.cities)} or "
                "more (or --no-faults)",
            )
        if options.visits < 1 or options.concurrency < 1:
            raise InputError("invalid_option", "--visits", "and --concurrency must be at least 1")
        self.options = options
        self.console = console or Console(file=sys.stdout, soft_wrap=True)
        self.work = options.out / "run"
        self.alliance_dir = self.work / "alliance"
        self.rng = random.Random(options.seed)
        self.result = RunResult(
            seed=options.seed, started_at=int(time.time()), scale={}, scenarios=REQUIRED_SCENARIOS
        )
        self.cities: dict[str, City] = {}
        self.host: NodeProcess | None = None
        self.api = Api(connections=max(64, options.concurrency * 2))
        self.grants: list[Grant] = []
        self.visits_started = 0.0  # monotonic time the visits phase began
        self.visits_done = 0
        self.registry_version = 0
        self.verifier_ca = b""  # the alliance CA's certificate, once a registry is out
        self._progress_event = asyncio.Event()
        self.finishers: list[Callable[[], Any]] = []  # faults judged at the end
        self.visit_holders: list[tuple[str, str]] = []  # (home, resident) of each visit
        self.revocation: dict[str, Any] = {}  # what the consent-withdrawal fault saw
        self.doomed: str | None = None  # the city whose node a fault kills
        self.rewritten: str | None = None  # the city whose history a fault rewrites

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        seconds = time.monotonic() - started
        self.result.phases[name] = seconds
        self.console.print(f"  [green]✓[/green] {name} ({seconds:.1f} s)")

    def progress(self) -> Progress:
        return Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.options.progress,
            transient=True,
        )

    # --- making the alliance ----------------------------------------------------------

    def make_alliance(self) -> None:
        if self.work.exists():
            if not (self.work / MARKER).exists():
                raise RuntimeError(f"{self.work} exists and is not a simulation's: move it away")
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        (self.work / MARKER).write_text("made by ccx simulate; wiped by the next run\n")
        ccx("alliance", "init", "--id", ALLIANCE_ID, "--dir", str(self.alliance_dir))
        self.host = self.node_process("host", city="alliance", follow=False)
        for name in self.options.cities:
            self.cities[name] = City(
                name, population.profile(name), self.node_process(name, city=name, follow=True)
            )
        for node in self.processes():
            ccx("node", "init", "--city", node.env["CCX_CITY"], "--data-dir", str(node.data_dir),
                "--node-id", node.url)  # fmt: skip
            node.start()
        for node in self.processes():
            node.wait_ready()

    def node_process(self, name: str, *, city: str, follow: bool) -> NodeProcess:
        port = free_port()
        data_dir = self.work / name
        token, token_hash = new_admin_token()
        url = f"http://127.0.0.1:{port}"
        env = {
            "CCX_DATA_DIR": str(data_dir),
            "CCX_CITY": city,
            "CCX_NODE_ID": url,
            "CCX_KEYRING_PASSPHRASE": os.environ["CCX_KEYRING_PASSPHRASE"],
            "CCX_ADMIN_TOKEN_HASH": token_hash,
            "CCX_SCHEDULER": "false",
            "CCX_ALLIANCE": ALLIANCE_ID,
        }
        if follow:
            assert self.host is not None
            env |= {
                "CCX_DEV_IDP": "true",
                "CCX_ALLIANCE_ROOT_JWK": str(self.alliance_dir / "root.jwk"),
                "CCX_REGISTRY_URL": f"{self.host.url}/v1/alliance/registry",
                "CCX_REGISTRY_REFRESH": str(REGISTRY_REFRESH),
                "CCX_REGISTRY_REFETCH_COOLDOWN": "1",
                "CCX_SCORING_MODEL": str(CITIES_DIR / f"{city}.toml"),
                "CCX_SCENARIOS": str(CITIES_DIR / f"{city}.scenarios.toml"),
                # one service point per city carries all of the city's load
                "CCX_VERIFY_RATE": "1000000",
                "CCX_VERIFY_BURST": "1000000",
                "CCX_RATE_LIMITS": "false",  # bursts on purpose (issue 17: limits tested elsewhere)
                "CCX_STATUS_LIST_TTL": str(STATUS_TTL),
                "CCX_STATUS_CACHE_MIN_TTL": str(STATUS_TTL),
                # the alliance host witnesses each node's audit head every second (the
                # jobs run in the node: the rescoring is asked for by the run itself)
                "CCX_SCHEDULER": "true",
                "CCX_WITNESS_URL": self.host.url,
                "CCX_WITNESS_INTERVAL": str(WITNESS_INTERVAL),
            }
        else:
            env["CCX_ALLIANCE_DIR"] = str(self.alliance_dir)
        data_dir.mkdir(parents=True)
        return NodeProcess(name, port, data_dir, env, token, self.work / f"{name}.log")

    def processes(self) -> list[NodeProcess]:
        hosts = [self.host] if self.host is not None else []
        return hosts + [city.node for city in self.cities.values()]

    def stop_all(self) -> None:
        # the cities first: each sends the host a last checkpoint as it stops
        for node in reversed(self.processes()):
            node.stop()

    def admit_members(self) -> None:
        for city in self.cities.values():
            scale = load_model(CITIES_DIR / f"{city.name}.toml").scale.to_json()
            scale_file = self.work / f"{city.name}.scale.json"
            scale_file.write_text(json.dumps(scale, ensure_ascii=False))
            # the registry says which credential types each member issues (issue 18)
            types = ["credit_standing"] + (["domestic_service"] if city.issues_domestic else [])
            ccx("alliance", "admit", "--dir", str(self.alliance_dir), "--member-id", city.node.url,
                "--name", city.name.title(), "--city", city.name,
                "--jwks", f"{city.node.url}/.well-known/jwks.json",
                "--local-scale", str(scale_file),
                *[part for t in types for part in ("--credential", t)])  # fmt: skip
        self.publish()

    def publish(self) -> int:
        ccx("alliance", "publish", "--dir", str(self.alliance_dir))
        token = (self.alliance_dir / "registry" / "current.jwt").read_text().strip()
        claims = json.loads(P.b64url_decode(token.split(".")[1]))
        self.registry_version = int(claims["version"])
        # the wallets' trust anchor: the alliance CA the registry carries (PROTOCOL.md 11)
        self.verifier_ca = base64.b64decode(claims["verifier_ca"])
        self.result.scale = claims["scale"]
        return self.registry_version

    async def wait_registry(self, version: int, timeout: float = 60.0) -> float:
        """Until every city node has ``version`` (or later) in effect; the seconds it took."""
        started = time.monotonic()
        pending = {city.name: city.node for city in self.cities.values()}
        while pending:
            for name, node in list(pending.items()):
                with contextlib.suppress(Unreachable):
                    _, body = await self.api.call("GET", node.url, "/readyz", label="GET /readyz")
                    held = ((body or {}).get("registry") or {}).get("version")
                    if isinstance(held, int) and held >= version:
                        del pending[name]
            if not pending:
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"registry v{version} did not reach {sorted(pending)}")
            await asyncio.sleep(0.25)
        return time.monotonic() - started

    # --- residents, records, scores, tables --------------------------------------------

    async def push_records(self) -> None:
        per_city = self.options.residents // len(self.cities)
        now = int(time.time())
        for index, city in enumerate(self.cities.values()):
            city.population = population.generate(
                city.profile, per_city, seed=self.options.seed * 100 + index, now=now
            )
        total = sum(city.population.records for city in self.cities.values() if city.population)
        with self.progress() as bar:
            task = bar.add_task("records", total=total)
            await asyncio.gather(
                *(
                    self.push_city(city, lambda n: bar.advance(task, n))
                    for city in self.cities.values()
                )
            )

    async def push_city(self, city: City, advance: Callable[[int], None]) -> None:
        assert city.population is not None
        tokens: dict[str, str] = {}
        for department, rows in city.population.batches(self.options.batch):
            if department not in tokens:
                created = await self.api.ok(
                    "POST", city.node.url, "/v1/admin/clients", token=city.node.admin_token,
                    body={"id": f"{department}-feed", "department": department,
                          "scopes": ["records:push"]},
                    label="POST /v1/admin/clients",
                )  # fmt: skip
                tokens[department] = created["token"]
            answer = await self.api.ok(
                "POST", city.node.url, "/v1/records", body={"records": rows},
                token=tokens[department], label="POST /v1/records (batch)",
            )  # fmt: skip
            if answer["stored"] != len(rows):
                refused = [r for r in answer["results"] if r["status"] != "stored"][:3]
                raise RuntimeError(f"{city.name}: the node did not store every record: {refused}")
            advance(len(rows))

    async def rescore(self) -> None:
        async def one(city: City) -> None:
            done = await self.api.ok(
                "POST", city.node.url, "/v1/admin/rescore", token=city.node.admin_token,
                label="POST /v1/admin/rescore",
            )  # fmt: skip
            city.summary = await self.api.ok(
                "GET", city.node.url, f"/v1/admin/distribution/{done['month']}",
                token=city.node.admin_token, label="GET /v1/admin/distribution/{month}",
            )  # fmt: skip

        await asyncio.gather(*(one(city) for city in self.cities.values()))

    def publish_tables(self) -> None:
        assert self.host is not None
        tables = self.work / "tables"
        tables.mkdir(exist_ok=True)
        today = dt.datetime.now(dt.UTC).date()
        for city in self.cities.values():
            summary_file = tables / f"{city.name}.summary.json"
            summary_file.write_text(json.dumps(city.summary, ensure_ascii=False, indent=1))
            table_file = tables / f"{city.name}.v1.table.jwt"
            ccx("mapping", "build", str(summary_file), "--version", "1",
                "--valid-from", (today - dt.timedelta(days=1)).isoformat(),
                "--valid-to", (today + dt.timedelta(days=365)).isoformat(),
                "--sign", "--keyring", str(self.alliance_dir / "root.keyring.json"),
                "--alliance", ALLIANCE_ID, "--out", str(table_file))  # fmt: skip
            token = table_file.read_text().strip()
            city.table = json.loads(P.b64url_decode(token.split(".")[1]))
            ccx("alliance", "table", "--dir", str(self.alliance_dir), "--file", str(table_file),
                "--uri", f"{self.host.url}/v1/alliance/tables/{city.name}.v1.table.jwt")  # fmt: skip
        self.publish()

    # --- holders and service points -----------------------------------------------------

    async def enrol_holders(self) -> None:
        per_city = max(1, self.options.holders_total() // len(self.cities))
        chosen: list[tuple[City, str]] = []
        for city in self.cities.values():
            residents = city.scored_residents()
            chosen += [(city, r) for r in self.rng.sample(residents, min(per_city, len(residents)))]
        self.rng.shuffle(chosen)  # every node busy at once, not city after city
        gate = asyncio.Semaphore(self.options.concurrency)
        with self.progress() as bar:
            task = bar.add_task("attestations", total=len(chosen))

            async def one(city: City, resident: str) -> None:
                async with gate:
                    holder = await enrol(
                        self.api, resident=resident, home=city.name, node=city.node.url,
                        summary=city.summary,
                    )  # fmt: skip
                city.holders.append(holder)
                bar.advance(task)

            await asyncio.gather(*(one(city, resident) for city, resident in chosen))

    async def enrol_housekeepers(self) -> None:
        """Issue 18: in each city whose model feeds the domestic-service credential, a
        share of the holders are housekeepers: the association pushes their records,
        and each takes the credential through an offer (simulator/domestic.py)."""
        now = int(time.time())
        chosen: list[tuple[City, Holder]] = []
        for index, city in enumerate(self.cities.values()):
            if not city.issues_domestic or not city.holders:
                continue
            count = max(1, round(domestic.HOUSEKEEPER_SHARE * len(city.holders)))
            picked = self.rng.sample(city.holders, min(count, len(city.holders)))
            rows = domestic.records([h.resident for h in picked], self.rng, now=now,
                                    prefix=f"{city.profile.prefix}{index}")  # fmt: skip
            created = await self.api.ok(
                "POST", city.node.url, "/v1/admin/clients", token=city.node.admin_token,
                body={"id": f"{domestic.DEPARTMENT}-feed", "department": domestic.DEPARTMENT,
                      "scopes": ["records:push"]},
                label="POST /v1/admin/clients",
            )  # fmt: skip
            for start in range(0, len(rows), self.options.batch):
                answer = await self.api.ok(
                    "POST", city.node.url, "/v1/records",
                    body={"records": rows[start : start + self.options.batch]},
                    token=created["token"], label="POST /v1/records (batch)",
                )  # fmt: skip
                if answer["stored"] != len(rows[start : start + self.options.batch]):
                    raise RuntimeError(f"{city.name}: domestic-service records refused")
            chosen += [(city, holder) for holder in picked]
        gate = asyncio.Semaphore(self.options.concurrency)

        async def one(city: City, holder: Holder) -> None:
            async with gate:
                await domestic.enrol(self.api, holder)
            city.housekeepers.append(holder)

        await asyncio.gather(*(one(city, holder) for city, holder in chosen))

    async def register_service_points(self) -> None:
        for city in self.cities.values():
            created = await self.api.ok(
                "POST", city.node.url, "/v1/admin/clients", token=city.node.admin_token,
                body={"id": "service-desk", "department": "services",
                      "scopes": [f"verify:{kind}"
                                 for kind in (*REQUIRED_SCENARIOS, *domestic.SCENARIOS)]},
                label="POST /v1/admin/clients",
            )  # fmt: skip
            city.service_token = created["token"]

    def all_holders(self) -> list[Holder]:
        return [h for city in self.cities.values() for h in city.holders]

    # --- visits -------------------------------------------------------------------------

    def now(self) -> float:
        """Seconds since the visits phase began."""
        return time.monotonic() - self.visits_started

    async def run_visits(self, fault_plan: list[tuple[float, str, Callable[[], Any]]]) -> None:
        holders = self.all_holders()
        housekeepers = [h for city in self.cities.values() for h in city.housekeepers]
        names = list(self.cities)
        total = self.options.visits
        self.visits_started = time.monotonic()
        issued = 0

        with self.progress() as bar:
            task = bar.add_task("visits", total=total)

            async def worker() -> None:
                nonlocal issued
                while issued < total:
                    # issue 18: between the scenario visits, housekeepers' domestic-service
                    # checks (VISIT_SHARE of the visits made; not counted among them)
                    check = bool(housekeepers) and self.rng.random() < domestic.VISIT_SHARE
                    issued += 0 if check else 1
                    holder = self.rng.choice(housekeepers if check else holders)
                    if self.rng.random() < LOCAL_SHARE:
                        city = self.cities[holder.home]
                    else:
                        city = self.cities[self.rng.choice([n for n in names if n != holder.home])]
                    if check:
                        scenario = self.rng.choice(domestic.SCENARIOS)
                        self.result.domestic.append(await self.visit(
                            holder, city, scenario, attestation=holder.extra["domestic"]
                        ))  # fmt: skip
                        continue
                    scenario = self.rng.choice(REQUIRED_SCENARIOS)
                    visit = await self.visit(holder, city, scenario)
                    self.result.visits.append(visit)
                    self.visit_holders.append((holder.home, holder.resident))
                    self.visits_done += 1
                    bar.advance(task)
                    self._progress_event.set()

            async def inject(name: str, fault: Callable[[], Any]) -> None:
                try:
                    await fault()
                except Exception as exc:  # recorded as a failed fault; the run goes on
                    self.result.faults.append(
                        Fault(
                            name=name,
                            at=self.now(),
                            action="(the fault could not be carried through)",
                            observed=f"{type(exc).__name__}: {exc}",
                            ok=False,
                        )
                    )

            async def faults() -> None:
                started = []
                for fraction, name, fault in fault_plan:
                    await self.wait_for_progress(fraction)
                    started.append(asyncio.create_task(inject(name, fault)))
                await asyncio.gather(*started)

            fault_task = asyncio.create_task(faults())
            await asyncio.gather(*(worker() for _ in range(self.options.concurrency)))
            self.result.visits_seconds = self.now()
            await fault_task

    async def wait_for_progress(self, fraction: float) -> None:
        while self.visits_done < fraction * self.options.visits:
            self._progress_event.clear()
            await self._progress_event.wait()

    # --- OpenID4VP: a service point's request, a wallet's answer ------------------------

    async def ask(
        self, city: City, scenario: str, mode: str = "direct_post.jwt"
    ) -> tuple[int, Any]:
        """The service point's presentation request (status, answer)."""
        return await self.api.call(
            "POST", city.node.url, "/v1/presentation-requests",
            body={"scenario": scenario, "response_mode": mode}, token=city.service_token,
            label="POST /v1/presentation-requests",
        )  # fmt: skip

    async def read(self, made: Mapping[str, Any]) -> P.VerifiedRequest | None:
        """The wallet fetches the request object and checks it (the alliance CA from the
        registry, the x509_hash client id); None when the node answered no object."""
        parts = urlsplit(made["request_uri"])
        status, token = await self.api.call(
            "GET", f"{parts.scheme}://{parts.netloc}", parts.path, text=True,
            label="GET /oid4vp/requests/{request_id}",
        )  # fmt: skip
        if status != 200:
            return None
        return P.verify_request_object(
            token, client_id=made["client_id"], anchors=[self.verifier_ca], now=int(time.time())
        )

    def answer(
        self,
        holder: Holder,
        request: P.VerifiedRequest,
        *,
        attestation: str | None = None,
        key: Any = None,
        change: Callable[[str], str] | None = None,
        plain: bool = False,
    ) -> dict[str, str]:
        """What an honest wallet posts (section 8): exactly the claims the query selects
        for her credential, the KB-JWT for the full client id and the request's nonce,
        encrypted when asked; ``key``, ``change`` and ``plain`` (in the clear whatever was
        asked) make the faults' dishonest ones."""
        claims = request.claims
        credential = attestation or holder.attestation
        available = (
            domestic.available_claims(credential)
            if request.vct == P.DOMESTIC_VCT
            else available_claims(holder)
        )
        presentation = P.present(
            credential,
            disclose=list(request.disclosures_for(available)),
            holder_key=key or holder.key, aud=claims["client_id"], nonce=claims["nonce"],
            now=int(time.time()),
        )  # fmt: skip
        if change is not None:
            presentation = change(presentation)
        return response_form(request, presentation, encrypt=False if plain else None)

    async def respond(self, request: P.VerifiedRequest, form: Mapping[str, str]) -> tuple[int, Any]:
        parts = urlsplit(str(request.claims["response_uri"]))
        return await self.api.call(
            "POST", f"{parts.scheme}://{parts.netloc}", parts.path, form=form,
            label="POST /oid4vp/responses/{transaction_id}",
        )  # fmt: skip

    async def outcome(self, city: City, made: Mapping[str, Any]) -> tuple[int, Any]:
        return await self.api.call(
            "GET", city.node.url, f"/v1/presentation-requests/{made['transaction_id']}",
            token=city.service_token, label="GET /v1/presentation-requests/{transaction_id}",
        )  # fmt: skip

    async def visit(
        self,
        holder: Holder,
        city: City,
        scenario: str,
        *,
        attestation: str | None = None,
    ) -> Visit:
        """One visit at ``city``'s service point, as OpenID4VP 1.0 runs it: the service
        point's request, the wallet's fetch and answer, the decision the service point
        reads (docs/VERIFYING.md, "Standard wallets")."""

        def seen(outcome: Outcome, code: str | None = None, tier: str | None = None) -> Visit:
            return Visit(
                t=at, home=holder.home, city=city.name, scenario=scenario,
                percentile=holder.percentile, outcome=outcome, code=code, tier=tier,
            )  # fmt: skip

        at = self.now()
        try:
            status, made = await self.ask(city, scenario)
            if status != 201:
                return seen(_failure(status), error_code(made))
            request = await self.read(made)
            if request is None:
                return seen("unavailable", "request_unavailable")
            form = self.answer(holder, request, attestation=attestation)
            at = self.now()
            status, answer = await self.respond(request, form)
            if status != 200:
                return seen(_failure(status), error_code(answer))
            status, result = await self.outcome(city, made)
        except Unreachable:
            return seen("unavailable", "unreachable")
        if status != 200:
            return seen(_failure(status), error_code(result))
        decided = result["outcome"]
        if decided == "granted":
            self.grants.append(Grant.of(city.name, result))
            return seen("granted", None, result.get("tier"))
        if decided != "denied":  # refused, declined, expired, pending: no decision
            return seen("refused", result.get("code") or decided)
        reasons = [r["code"] for r in result.get("reasons", [])]
        if reasons and reasons[0] in NOT_A_SCORE_DECISION:
            return seen("refused", reasons[0])
        return seen("denied", reasons[0] if reasons else None)

    # --- the report's view of a city ------------------------------------------------------

    def city_info(self, city: City) -> CityInfo:
        pop = city.population
        return CityInfo(
            city=city.name,
            name=city.profile.name,
            node_id=city.node.url,
            residents=len(pop.resident_ids) if pop else 0,
            records=pop.records if pop else 0,
            holders=len(city.holders),
            summary=city.summary,
            table=city.table,
        )


def _failure(status: int) -> Outcome:
    return "unavailable" if status >= 500 else "refused"
