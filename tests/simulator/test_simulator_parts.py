"""The simulator's parts that need no process: the holder's view of her attestation and
what she discloses, the invariants judged from canned audit pages and files in a temporary
folder, the revocation bound the consent fault assumes of a node's status cache, the
tampering fault beside a killed node, the admin token a node is started with, and the
in-process `ccx` tooling."""

from __future__ import annotations

import asyncio
import hashlib
import math
import sqlite3
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import protocol as P
from node.auth import hash_token
from node.services.status_cache import StatusListCache
from simulator import faults, invariants
from simulator.api import Unreachable
from simulator.cluster import new_admin_token
from simulator.holders import Holder, available_claims, own_claims, percentile_rank
from simulator.observations import Outcome, Visit
from simulator.tooling import ToolingError, ccx
from simulator.world import STATUS_TTL, Grant, World
from tests.conftest import ISSUER, NOW, STATUS_URI, ec_key, make_setup
from tests.node.test_status_cache import REVOKED_IDX, IssuerNode, ref, registry, sign, status_list

# --- percentile_rank: the share below her score plus half the share at it ----------------

UNIT_SCALE = {"counts": [10, 20, 30, 40], "local_scale": {"min": 0, "max": 3, "step": 1}}
STEPPED_SCALE = {  # 300..900 by 100; 10 residents
    "counts": [1, 1, 2, 4, 1, 1, 0],
    "local_scale": {"min": 300, "max": 900, "step": 100},
}
GRADE_SCALE = {  # zhangzhou's 水仙等级: the local score is the grade's index
    "counts": [5, 10, 20, 30, 25, 10],
    "local_scale": {
        "name": "水仙等级",
        "min": 0,
        "max": 5,
        "step": 1,
        "labels": ["D", "C", "B", "A", "AA", "AAA"],
    },
}


@pytest.mark.parametrize(
    ("summary", "score", "expected"),
    [
        (UNIT_SCALE, 0, 5.0),  # (0 + 10/2) / 100
        (UNIT_SCALE, 1, 20.0),  # (10 + 20/2) / 100
        (UNIT_SCALE, 2, 45.0),  # (30 + 30/2) / 100
        (UNIT_SCALE, 3, 80.0),  # (60 + 40/2) / 100
        (STEPPED_SCALE, 300, 5.0),  # (0 + 1/2) / 10
        (STEPPED_SCALE, 600, 60.0),  # (1 + 1 + 2 + 4/2) / 10
        (STEPPED_SCALE, 900, 100.0),  # (10 + 0/2) / 10
        (GRADE_SCALE, 0, 2.5),  # D: (0 + 5/2) / 100
        (GRADE_SCALE, 3, 50.0),  # A: (35 + 30/2) / 100
        (GRADE_SCALE, 5, 95.0),  # AAA: (90 + 10/2) / 100
    ],
)
def test_percentile_rank_is_the_mid_point_rank(
    summary: dict[str, Any], score: float, expected: float
) -> None:
    assert percentile_rank(summary, score) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("score", "expected"),
    [(-50, 5.0), (-1, 5.0), (4, 80.0), (1000, 80.0)],
)
def test_percentile_rank_clamps_scores_off_the_scale(score: float, expected: float) -> None:
    assert percentile_rank(UNIT_SCALE, score) == pytest.approx(expected)


def test_percentile_rank_takes_step_one_when_the_scale_names_none() -> None:
    summary = {"counts": [10, 20, 30, 40], "local_scale": {"min": 0, "max": 3}}
    assert percentile_rank(summary, 2) == pytest.approx(45.0)


def test_percentile_rank_of_an_empty_distribution_is_the_middle() -> None:
    assert percentile_rank({"counts": [0, 0, 0], "local_scale": {"min": 0}}, 1) == 50.0


# --- the holder's own claims and what she discloses ------------------------------------------


def test_own_claims_reads_every_disclosure_of_a_real_attestation() -> None:
    claims = own_claims(make_setup().attestation)  # tests/conftest.py's standard claims
    assert claims["alliance_score"] == 672
    assert claims["band"] == "good"
    assert claims["local_score"] == 731
    assert claims["score_at_least"] == {550: True, 600: True, 650: True, 700: False, 750: False}


def _holder(alliance_score: int, attestation: str = "", key: Any = None) -> Holder:
    return Holder(
        resident="xm-r0000001",
        home="xiamen",
        node="http://127.0.0.1:1",
        key=key,
        attestation=attestation,
        claims={"alliance_score": alliance_score},
        percentile=50.0,
    )


TIERS = ["score_at_least.600", "score_at_least.650", "score_at_least.700"]


def _wallet_of(score: int) -> Holder:
    """A holder whose credential reaches ``score`` on the alliance scale."""
    holder = _holder(score)
    holder.claims = {"alliance_score": score, "band": "good",
                     "score_at_least": {t: score >= t for t in (550, 600, 650, 700, 750)}}  # fmt: skip
    return holder


@pytest.mark.parametrize(
    ("score", "shown"),
    [
        (599, "score_at_least.600"),  # no tier reached: the lowest tier's, which says false
        (600, "score_at_least.600"),
        (672, "score_at_least.650"),
        (700, "score_at_least.700"),
        (999, "score_at_least.700"),
    ],
)
def test_an_honest_wallet_shows_the_highest_tier_reached(score: int, shown: str) -> None:
    query = P.tiered_dcql_query(TIERS)
    assert P.choose_disclosures(query, available_claims(_wallet_of(score))) == (shown,)


def test_an_honest_wallet_adds_band_when_the_request_asks_for_it() -> None:
    query = P.tiered_dcql_query(TIERS, ["band"])
    assert P.choose_disclosures(query, available_claims(_wallet_of(672))) == (
        "score_at_least.650",
        "band",
    )


def test_an_honest_wallet_names_the_score_once_when_the_request_asks_for_it() -> None:
    query = P.tiered_dcql_query([], ["alliance_score"])
    assert P.choose_disclosures(query, available_claims(_wallet_of(672))) == ("alliance_score",)


def test_what_an_honest_wallet_discloses_can_be_presented_and_verified() -> None:
    setup = make_setup()
    holder = _holder(672, setup.attestation, setup.holder_key)
    holder.claims = own_claims(setup.attestation)
    chosen = P.choose_disclosures(P.tiered_dcql_query(TIERS, ["band"]), available_claims(holder))
    verified = setup.verify(setup.present(tuple(chosen)))
    assert verified.disclosed == {"score_at_least": {"650": True}, "band": "good"}


# --- raw records stay home: the id search -------------------------------------------------

CITY_PREFIXES = {"xiamen": "xm", "fuzhou": "fz", "zhangzhou": "zz"}


@pytest.mark.parametrize(
    "text",
    [
        b"xm-r0000042",
        b"xm-00000042",
        b'{"resident": "xm-r0000042"}',
        b"resident=xm-r0000042\n",
        b"INSERT INTO records VALUES ('xm-00000042', 3)",
    ],
)
def test_id_pattern_finds_resident_and_record_ids(text: bytes) -> None:
    assert invariants.id_pattern("xm").search(text)


@pytest.mark.parametrize(
    "text",
    [
        b"xm-r42",  # too few digits
        b"xm-r000004",  # six digits after r
        b"xm-0000042",  # seven digits without r
        b"fz-r0000042",  # another city's prefix
        b"xm_r0000042",
    ],
)
def test_id_pattern_ignores_what_is_not_an_id_of_the_city(text: bytes) -> None:
    assert not invariants.id_pattern("xm").search(text)


def test_id_search_finds_an_id_packed_in_a_sqlite_row(tmp_path: Path) -> None:
    database = tmp_path / "node.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE records (department TEXT, record_id TEXT)")
        connection.execute("INSERT INTO records VALUES ('utilities', 'fz-00000546')")
    connection.close()
    assert b"utilitiesfz-00000546" in database.read_bytes()  # how SQLite stores the row
    hits = invariants.scan_for_ids([database], {"fuzhou": invariants.id_pattern("fz")})
    assert hits == {"fuzhou": 1}


def test_scan_for_ids_counts_files_per_city_and_skips_missing_ones(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(b'["xm-r0000001", "fz-00000007"]')
    (tmp_path / "b.log").write_bytes(b"pushed xm-00000003 and xm-00000004\n")
    (tmp_path / "c.txt").write_bytes(b"nothing here: xm-r1, zz-r42\n")
    paths = [tmp_path / name for name in ("a.json", "b.log", "c.txt", "gone.db")]
    patterns = {city: invariants.id_pattern(prefix) for city, prefix in CITY_PREFIXES.items()}
    assert invariants.scan_for_ids(paths, patterns) == {"xiamen": 2, "fuzhou": 1, "zhangzhou": 0}


def test_a_home_id_torn_into_another_citys_is_not_a_leak(tmp_path: Path) -> None:
    """Issue 18's demo run: in Hangzhou's database a B-tree page's cell pointer (0x0d7a,
    "\\rz") had grown over a freed cell "hz-r0000806", which then read "zz-r0000806",
    a Zhangzhou id. Another Zhangzhou id in the same file is still a leak."""
    torn = tmp_path / "node.db"
    torn.write_bytes(b"\r\x8b\rzz-r0000806\x00\x02hz-r0000806\x00\x02hz-r0000821")
    patterns = {"zhangzhou": invariants.id_pattern("zz"), "hangzhou": invariants.id_pattern("hz")}
    home = ("hangzhou", "hz")
    assert invariants.scan_for_ids([torn], patterns, home=home) == {"zhangzhou": 0, "hangzhou": 1}
    assert invariants.scan_for_ids([torn], patterns) == {"zhangzhou": 1, "hangzhou": 1}
    leaked = tmp_path / "leaked.db"
    leaked.write_bytes(b"\rzz-r0000806 hz-r0000806 zz-r0000123")
    assert invariants.scan_for_ids([leaked], patterns, home=home)["zhangzhou"] == 1


# --- raw records stay home: the invariant over a run's folders ---------------------------------


class FakeRunFolders:
    """What invariants.raw_records reads of a Simulation: the cities' prefixes, each
    process's data folder and log, the alliance folder and the run folder."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.alliance_dir = work / "alliance"
        self.cities = {
            name: SimpleNamespace(profile=SimpleNamespace(prefix=prefix))
            for name, prefix in CITY_PREFIXES.items()
        }
        self._processes = [
            SimpleNamespace(name=name, data_dir=work / name, log_path=work / f"{name}.log")
            for name in ("host", *CITY_PREFIXES)
        ]
        for folder in (self.alliance_dir, work / "tables", *(p.data_dir for p in self._processes)):
            folder.mkdir(parents=True)
        for city, prefix in CITY_PREFIXES.items():  # each city's own records, at home
            (work / city / "node.db").write_bytes(f"\x00{prefix}-00000001\x00".encode())
        (self.alliance_dir / "registry.json").write_text('{"members": []}')
        (work / "tables" / "xiamen.summary.json").write_text('{"counts": [1, 2]}')

    def processes(self) -> list[SimpleNamespace]:
        return self._processes


def _raw_records(folders: FakeRunFolders) -> Any:
    return invariants.raw_records(folders)  # type: ignore[arg-type]


def test_raw_records_holds_when_every_id_is_at_home(tmp_path: Path) -> None:
    folders = FakeRunFolders(tmp_path)
    (tmp_path / "xiamen.log").write_text("stored xm-r0000042\n")
    invariant = _raw_records(folders)
    assert invariant.ok, invariant.detail
    assert invariant.name == "no raw record outside its home node"


@pytest.mark.parametrize(
    ("where", "owner"),
    [
        ("xiamen/node.db-wal", "xiamen"),
        ("xiamen/registry/v2.jwt", "xiamen"),
        ("xiamen.log", "xiamen"),
        ("host/node.db", "host"),
        ("alliance/tables/fuzhou.v1.table.jwt", "the alliance folder"),
        ("tables/fuzhou.summary.json", "the summaries sent to the alliance"),
    ],
)
def test_raw_records_fails_on_a_fuzhou_id_outside_fuzhou(
    tmp_path: Path, where: str, owner: str
) -> None:
    folders = FakeRunFolders(tmp_path)
    leak = tmp_path / where
    leak.parent.mkdir(parents=True, exist_ok=True)
    leak.write_bytes(b'{"sub": "fz-r0000042"}')
    invariant = _raw_records(folders)
    assert not invariant.ok
    assert f"fuzhou ids in 1 file(s) of {owner}" in invariant.detail


def test_raw_records_fails_when_a_city_holds_none_of_its_own_ids(tmp_path: Path) -> None:
    folders = FakeRunFolders(tmp_path)
    (tmp_path / "zhangzhou" / "node.db").write_bytes(b"\x00no records here\x00")
    invariant = _raw_records(folders)
    assert not invariant.ok
    assert invariant.detail == "zhangzhou's own files hold none of its ids"


# --- every grant traceable: canned audit pages ------------------------------------------------

SCENARIO = "library_deposit_free"
AUDITED_ISSUER = "http://127.0.0.1:9001"


def _decided(seq: int, decision: str = "granted", scenario: str = SCENARIO) -> dict[str, Any]:
    details = {"decision": decision, "scenario": scenario, "issuer": AUDITED_ISSUER}
    return {"seq": seq, "action": "verification.decided", "details": details}


def _other(seq: int) -> dict[str, Any]:
    return {"seq": seq, "action": "records.pushed", "details": {"count": 10}}


class CannedAudit:
    """An Api whose only answers are a node's audit log, in pages of ``page_size``."""

    def __init__(self, logs: dict[str, list[dict[str, Any]]], page_size: int = 1000) -> None:
        self.logs = logs
        self.page_size = page_size
        self.calls: list[tuple[str, str]] = []

    async def ok(self, method: str, base: str, path: str, **kwargs: Any) -> Any:
        assert (method, path) == ("GET", "/v1/admin/audit")
        after = int(kwargs["params"]["after"])
        self.calls.append((base, str(after)))
        rest = [entry for entry in self.logs[base] if entry["seq"] > after]
        page = rest[: self.page_size]
        more = len(rest) > self.page_size
        return {"entries": page, "next_after": page[-1]["seq"] if more else None}


def _audited_sim(
    logs: dict[str, list[dict[str, Any]]],
    grants: list[Grant],
    outcomes: tuple[Outcome, ...] = (),
    page_size: int = 1000,
) -> SimpleNamespace:
    cities = {
        city: SimpleNamespace(node=SimpleNamespace(url=f"http://{city}", admin_token="t"))
        for city in logs
    }
    visits = [
        Visit(t=0.0, home="xiamen", city="fuzhou", scenario=SCENARIO, percentile=50.0, outcome=o)
        for o in outcomes
    ]
    return SimpleNamespace(
        cities=cities,
        api=CannedAudit({f"http://{city}": log for city, log in logs.items()}, page_size),
        grants=grants,
        result=SimpleNamespace(visits=visits),
    )


def _traceable(sim: SimpleNamespace) -> Any:
    return asyncio.run(invariants.grants_traceable(sim))  # type: ignore[arg-type]


def _grant(city: str, seq: int, scenario: str = SCENARIO) -> Grant:
    return Grant(city, seq, scenario, AUDITED_ISSUER)


def test_grants_traceable_when_each_is_in_its_log() -> None:
    sim = _audited_sim(
        {
            "xiamen": [_other(1), _decided(2), _decided(3, "denied"), _decided(4)],
            "fuzhou": [_decided(1)],
        },
        [_grant("xiamen", 2), _grant("xiamen", 4), _grant("fuzhou", 1)],
    )
    invariant = _traceable(sim)
    assert invariant.ok, invariant.detail
    assert invariant.detail.startswith("3 granted decisions seen by the service points")


@pytest.mark.parametrize(
    ("log", "why"),
    [
        ([_decided(2)], "no entry at that seq"),
        ([_decided(2), _decided(7, "denied")], "logged as denied"),
        ([_decided(2), _decided(7, scenario="bike_deposit_free")], "another scenario"),
        ([_decided(2), {**_other(7), "details": _decided(7)["details"]}], "another action"),
    ],
)
def test_a_grant_not_in_the_log_as_seen_fails(log: list[dict[str, Any]], why: str) -> None:
    sim = _audited_sim({"xiamen": log}, [_grant("xiamen", 2), _grant("xiamen", 7)])
    invariant = _traceable(sim)
    assert not invariant.ok, why
    assert "not found or different: xiamen#7" in invariant.detail


def test_a_grant_of_another_issuer_fails() -> None:
    sim = _audited_sim({"xiamen": [_decided(2)]}, [Grant("xiamen", 2, SCENARIO, "http://else")])
    assert not _traceable(sim).ok


def test_extra_logged_grants_pass_within_the_visits_that_got_no_answer() -> None:
    sim = _audited_sim(
        {"xiamen": [_decided(1), _decided(2), _decided(3)]},
        [_grant("xiamen", 1)],
        outcomes=("unavailable", "unavailable", "granted", "refused"),
    )
    invariant = _traceable(sim)
    assert invariant.ok, invariant.detail
    assert "(2 whose answer was lost: 2 visits got no answer)" in invariant.detail


def test_more_extra_logged_grants_than_lost_answers_fail() -> None:
    sim = _audited_sim(
        {"xiamen": [_decided(1), _decided(2), _decided(3)]},
        [_grant("xiamen", 1)],
        outcomes=("unavailable", "granted", "denied"),
    )
    assert not _traceable(sim).ok


def test_grants_traceable_follows_next_after_through_every_page() -> None:
    log = [_other(1), _decided(2), _other(3), _other(4), _decided(5)]
    sim = _audited_sim({"xiamen": log}, [_grant("xiamen", 2), _grant("xiamen", 5)], page_size=2)
    invariant = _traceable(sim)
    assert invariant.ok, invariant.detail
    assert sim.api.calls == [("http://xiamen", "0"), ("http://xiamen", "2"), ("http://xiamen", "4")]


# --- no revoked attestation accepted after the ttl -----------------------------------------------


def _revocation(**overrides: Any) -> dict[str, Any]:
    seen = {
        "holders": 3,
        "late_visits": 4,
        "accepted_late": 0,
        "probes": 9,
        "probes_refused": 9,
        "bound": 7.0,
    }
    return seen | overrides


def test_revoked_refused_holds_when_nothing_was_withdrawn() -> None:
    invariant = invariants.revoked_refused(SimpleNamespace(revocation={}))  # type: ignore[arg-type]
    assert invariant.ok
    assert invariant.detail == "no consent was withdrawn"


@pytest.mark.parametrize(
    ("seen", "ok"),
    [
        (_revocation(), True),
        (_revocation(accepted_late=1), False),
        (_revocation(probes_refused=8), False),
    ],
)
def test_revoked_refused_judges_late_visits_and_the_final_probe(
    seen: dict[str, Any], ok: bool
) -> None:
    invariant = invariants.revoked_refused(SimpleNamespace(revocation=seen))  # type: ignore[arg-type]
    assert invariant.ok is ok, invariant.detail


def test_a_revocation_reaches_a_verifier_within_the_simulators_bound() -> None:
    """The judgement of the consent-withdrawal fault (simulator/faults.py) assumes a
    verifier, its status cache configured as the run configures it, sees a revocation at
    most ``sim_bound()`` seconds after it is made, the issuer answering all along."""
    issuer = IssuerNode(sign(status_list(), iat=NOW, ttl=STATUS_TTL))
    cache, reg = StatusListCache(min_ttl=STATUS_TTL), registry()
    read = cache.status_of(issuer.client(), reg, ref(), ISSUER, now=NOW)
    assert read == P.STATUS_VALID  # a visit at NOW: the verifier fetches the list
    withdrawn_at = NOW + 1
    issuer.tokens[STATUS_URI] = sign(status_list(REVOKED_IDX), iat=withdrawn_at, ttl=STATUS_TTL)
    late = withdrawn_at + math.ceil(faults.sim_bound())
    read = cache.status_of(issuer.client(), reg, ref(), ISSUER, now=late)
    assert read == P.STATUS_REVOKED


# --- faults that overlap ----------------------------------------------------------------------


class ServicePoints:
    """An Api for the tampering fault: every node hands out OpenID4VP requests (signed
    under a test CA) and refuses every answer (the node's checks are tested in
    tests/node); a node in ``down`` does not answer."""

    def __init__(self, down: set[str]) -> None:
        self.down = down
        self.requests: list[tuple[str, str]] = []
        self.made = 0
        ca_key, self.key = ec_key(160), ec_key(161)
        self.ca = P.ca_certificate(ca_key, name="CA", not_before=0, not_after=2**33, serial=1)
        self.leaf = P.leaf_certificate(ca_key, self.ca, self.key.public_key(), uri="x",
                                       name="x", not_before=0, not_after=2**33, serial=2)  # fmt: skip
        self.modes: dict[str, str] = {}

    async def call(
        self, method: str, base: str, path: str, *, body: Any = None, **_: Any
    ) -> tuple[int, Any]:
        self.requests.append((base, path))
        if base in self.down:
            raise Unreachable(f"{method} {base}{path}: connection refused")
        if path == "/v1/presentation-requests":
            self.made += 1
            self.modes[str(self.made)] = body["response_mode"]
            return 201, {"request_uri": f"{base}/oid4vp/requests/{self.made}",
                         "client_id": P.client_id_for(self.leaf),
                         "transaction_id": str(self.made)}  # fmt: skip
        if path.startswith("/oid4vp/requests/"):
            number = path.rsplit("/", 1)[1]
            enc = ec_key(162)
            claims = {
                "client_id": P.client_id_for(self.leaf), "response_type": "vp_token",
                "response_mode": self.modes[number], "nonce": f"nonce-{number}",
                "state": f"state-{number}", "response_uri": f"{base}/oid4vp/responses/{number}",
                "dcql_query": P.tiered_dcql_query(["score_at_least.600"]),
                "client_metadata": {"jwks": {"keys": [{**P.public_jwk(enc), "kid": "e",
                                                       "alg": "ECDH-ES"}]}},
            }  # fmt: skip
            return 200, P.sign_request_object(claims, self.key, [self.leaf])
        return 400, {"error": "invalid_request", "error_description": "presentation_invalid: no"}

    async def ok(self, method: str, base: str, path: str, **kwargs: Any) -> Any:
        status, answer = await self.call(method, base, path, **kwargs)
        assert 200 <= status < 300, (base, path, status)
        return answer


def test_the_tampering_fault_goes_to_nodes_that_run() -> None:
    setup = make_setup()
    cities = {}
    for name in ("xiamen", "fuzhou", "zhangzhou"):
        holder = _holder(672, setup.attestation, setup.holder_key)
        holder.home, holder.claims = name, own_claims(setup.attestation)
        node = SimpleNamespace(url=f"http://{name}", running=name != "fuzhou")
        cities[name] = SimpleNamespace(name=name, node=node, service_token="t", holders=[holder])
    api = ServicePoints(down={"http://fuzhou"})  # killed by the fault before
    sim = SimpleNamespace(
        cities=cities,
        api=api,
        grants=[],
        result=SimpleNamespace(faults=[]),
        now=lambda: 3.0,
        verifier_ca=api.ca,
    )
    for step in ("ask", "read", "answer", "respond", "outcome"):  # the wallet's own steps
        setattr(sim, step, types.MethodType(getattr(World, step), sim))
    asyncio.run(faults.tamper_and_replay(sim))  # type: ignore[arg-type]
    assert [base for base, _ in api.requests if base == "http://fuzhou"] == []
    [fault] = sim.result.faults
    assert fault.name == "tampered and replayed presentations"
    assert fault.ok, fault.observed
    assert "presentation_invalid" in fault.observed  # the ccx code behind the OAuth error


# --- the admin token a node is started with --------------------------------------------------------


def test_new_admin_token_is_accepted_by_the_node_hash() -> None:
    token, token_hash = new_admin_token()
    assert token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token_hash == hash_token(token)  # what the node compares with CCX_ADMIN_TOKEN_HASH
    assert len(token) >= 43  # 32 random bytes


def test_new_admin_token_is_fresh_each_call() -> None:
    tokens = {new_admin_token() for _ in range(20)}
    assert len({token for token, _ in tokens}) == 20
    assert len({token_hash for _, token_hash in tokens}) == 20


# --- the operators' tooling, in process ---------------------------------------------------------------


def test_ccx_returns_the_output_of_a_command_that_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CCX_KEYRING_PASSPHRASE", "correct horse battery staple")
    alliance = tmp_path / "alliance"
    created = ccx("alliance", "init", "--id", "https://alliance.test", "--dir", str(alliance))
    assert f"alliance https://alliance.test created in {alliance}" in created
    shown = ccx("alliance", "show", "--dir", str(alliance))
    assert shown.startswith("Alliance https://alliance.test\n")


def test_ccx_raises_when_a_command_fails() -> None:
    with pytest.raises(ToolingError) as raised:
        ccx("alliance", "show", "--dir", "/nonexistent")
    message = str(raised.value)
    assert "`ccx alliance show --dir /nonexistent` exited 2" in message
    assert "/nonexistent holds no alliance" in message


def test_ccx_raises_on_a_usage_error() -> None:
    with pytest.raises(ToolingError) as raised:
        ccx("alliance", "show", "--no-such-option")
    assert "`ccx alliance show --no-such-option` exited 2" in str(raised.value)
    assert "--no-such-option" in str(raised.value).split("\n", 1)[1]
