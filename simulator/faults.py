"""Faults injected while the visits run, and what the alliance did about each.

Each fault is an action at a point of the visits phase (a share of the visits done) and
a judgement, made at once or, where it depends on what happened afterwards, at the end
of the run from the visits recorded (``sim.finishers``):

- a key rotation at one node, then a new registry version carrying its new next key
  (published mid-run): fresh and older attestations of that city keep being decided;
- consent withdrawn by some residents: from the status ttl on, every city refuses their
  attestations (checked on every later visit and by a final probe at every city);
- tampered, replayed and downgraded answers to OpenID4VP requests: every one refused,
  none granted;
- a node killed (SIGKILL) and restarted: visits to it fail meanwhile; its residents keep
  being decided elsewhere from cached status lists; it decides again once back;
- the alliance host down for a while: the nodes keep their last good registry and go on;
- a node's history rewritten in its database, one old audit entry changed and every hash
  after it recomputed (the chain verifies again): the alliance host, which witnessed the
  head, refuses the node's next checkpoint as a fork, and `ccx audit verify` reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import protocol as P
from keys import generate_key
from node.services.audit import entry_hash
from simulator.api import Unreachable, error_code
from simulator.holders import Holder, enrol, withdraw
from simulator.observations import Fault, Visit
from simulator.tooling import ToolingError, ccx
from simulator.world import STATUS_TTL, City, Grant, World

__all__ = ["audit_verify", "rewrite_history", "schedule", "witness_record"]

KILL_SECONDS = 2.0  # how long the killed node stays down
HOST_DOWN_SECONDS = 4.0  # several registry refreshes, so every node notices
REVOKE_SLACK = 2.0  # seconds beyond the status ttl for a fetch in flight and clock rounding

Inject = Callable[[], Awaitable[None]]


def schedule(sim: World) -> list[tuple[float, str, Inject]]:
    """(share of visits done, name, fault) in order: the visits phase starts each when
    its share is done, without waiting for the ones before to end (they may overlap)."""
    names = list(sim.cities)
    rotated, killed = sim.cities[names[0]], sim.cities[names[1]]
    rewritten = sim.cities[names[-1]]
    sim.doomed = killed.name  # the other faults keep away from it: they may overlap
    sim.rewritten = rewritten.name
    return [
        (0.10, f"key rotation at {rotated.name}", lambda: rotate_keys(sim, rotated)),
        (0.20, "consent withdrawn", lambda: withdraw_consents(sim, spare=killed)),
        (0.30, "tampered and replayed presentations", lambda: tamper_and_replay(sim)),
        (0.40, f"node {killed.name} killed and restarted", lambda: kill_and_restart(sim, killed)),
        (0.55, "alliance host down", lambda: host_down(sim)),
        (0.70, f"history rewritten at {rewritten.name}", lambda: rewrite(sim, rewritten)),
    ]


def _safe(sim: World) -> list[City]:
    """The cities whose nodes run and are not the one a fault kills (faults overlap)."""
    doomed = getattr(sim, "doomed", None)
    return [c for c in sim.cities.values() if c.node.running and c.name != doomed]


def _other(sim: World, city: City) -> City:
    """Another city whose node runs and stays up, if there is one."""
    others = [c for c in sim.cities.values() if c.name != city.name]
    return next((c for c in _safe(sim) if c.name != city.name), others[0])


def _active(city: City) -> Holder:
    """A holder of ``city`` whose consent stands."""
    holder = next((h for h in city.holders if h.withdrawn_at is None), None)
    if holder is None:
        raise RuntimeError(f"no holder of {city.name} still consents: too few holders")
    return holder


def _kid(attestation: str) -> str | None:
    """The ``kid`` of an attestation's issuer-signed JWT header."""
    header = json.loads(P.b64url_decode(attestation.split(".", 1)[0]))
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None


def _decided(visits: list[Visit]) -> int:
    return sum(1 for v in visits if v.decided)


# --- a node's history rewritten in its database (issue 17, gap I) -----------------------


def rewrite_history(database: Path, seq: int, change: Callable[[dict[str, Any]], Any]) -> int:
    """What someone with write access to a node's SQLite file could do: change entry
    ``seq``'s details and rehash every entry from it on, so that the chain verifies again.
    One write transaction (the node's own writes wait on it); how many entries it rewrote."""
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as db:
        db.execute("BEGIN IMMEDIATE")
        rows = db.execute(
            "SELECT seq, at, actor, action, subject, details, prev_hash FROM auditentry "
            "WHERE seq >= ? ORDER BY seq",
            (seq,),
        ).fetchall()
        prev_hash = rows[0][6] if rows else ""
        for number, at, actor, action, subject, details, _ in rows:
            fields = json.loads(details)
            if number == seq:
                fields = change(fields)
            digest = entry_hash(
                seq=number, at=at, actor=actor, action=action, subject=subject,
                details=fields, prev_hash=prev_hash,
            )  # fmt: skip
            db.execute(
                "UPDATE auditentry SET details = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (json.dumps(fields), prev_hash, digest, number),
            )
            prev_hash = digest
        db.commit()
    return len(rows)


# --- key rotation, and the registry version that follows it ----------------------------


async def rotate_keys(sim: World, city: City) -> None:
    at = sim.now()
    rotated = await sim.api.ok(
        "POST", city.node.url, "/v1/admin/keys/rotate", token=city.node.admin_token,
        label="POST /v1/admin/keys/rotate",
    )  # fmt: skip
    # a resident who was no holder yet gets an attestation signed with the new key
    taken = {h.resident for h in city.holders}
    resident = next(r for r in reversed(city.scored_residents()) if r not in taken)
    fresh = await enrol(
        sim.api, resident=resident, home=city.name, node=city.node.url, summary=city.summary
    )
    signed_new = _kid(fresh.attestation) == rotated["active_kid"]
    elsewhere = _other(sim, city)
    before = await sim.visit(fresh, elsewhere, "library_deposit_free")
    sim.result.faults.append(
        Fault(
            name=f"key rotation at {city.name}",
            at=at,
            action=f"POST /v1/admin/keys/rotate at {city.name}: the next key "
            f"{rotated['active_kid'][:12]}... signs from now on, {rotated['retired_kid'][:12]}... "
            "is retired",
            observed=f"an attestation signed with the new key "
            f"({'its kid checked' if signed_new else 'BUT ITS KID IS ANOTHER'}) was "
            f"{before.outcome} at {elsewhere.name} (registry v{sim.registry_version} already "
            "listed the key as next)",
            ok=before.decided and signed_new,
        )
    )
    # the alliance lists the node's new key set in a new registry version, mid-run
    published_at = sim.now()
    await asyncio.to_thread(
        ccx, "alliance", "keys", "--dir", str(sim.alliance_dir), "--member-id", city.node.url,
        "--jwks", f"{city.node.url}/.well-known/jwks.json",
    )  # fmt: skip
    version = await asyncio.to_thread(sim.publish)
    seconds = await sim.wait_registry(version)
    old = _active(city)
    signed_old = _kid(old.attestation) == rotated["retired_kid"]
    after_new = await sim.visit(fresh, elsewhere, "bike_deposit_free")
    after_old = await sim.visit(old, elsewhere, "bike_deposit_free")
    sim.result.faults.append(
        Fault(
            name="registry version published mid-run",
            at=published_at,
            action=f"`ccx alliance keys` with {city.name}'s new key set, `ccx alliance publish`"
            f" -> v{version}",
            observed=f"every node had v{version} in effect {seconds:.1f} s later; then an "
            f"attestation with the new key was {after_new.outcome} and one from before the "
            f"rotation {after_old.outcome} at {elsewhere.name}",
            ok=after_new.decided and after_old.decided and signed_old,
        )
    )


# --- consent withdrawn -------------------------------------------------------------------


async def withdraw_consents(sim: World, *, spare: City) -> None:
    """``spare``'s residents keep their consent: that node is killed later, and while an
    issuer is unreachable the policy lets other cities serve its last status list for
    ``status_stale_limit`` (availability over freshness, by design); the invariant is
    about issuers that answer."""
    at = sim.now()
    holders = [h for h in sim.all_holders() if h.home != spare.name]
    count = max(3, len(holders) // 100)
    chosen = sim.rng.sample(holders, min(count, len(holders)))
    for holder in chosen:
        await withdraw(sim.api, holder)
        holder.withdrawn_at = sim.now()
    bound = sim_bound()

    async def judge() -> None:
        late: list[Visit] = []
        accepted_late: list[str] = []
        early_accepted = 0
        chosen_ids = {(h.home, h.resident) for h in chosen}
        by_id = {(h.home, h.resident): h for h in chosen}
        for visit, holder_id in zip(sim.result.visits, sim.visit_holders, strict=True):
            if holder_id not in chosen_ids:
                continue
            withdrawn = by_id[holder_id].withdrawn_at
            assert withdrawn is not None
            if visit.t <= withdrawn:
                continue
            if visit.t > withdrawn + bound:
                late.append(visit)
                if visit.decided:
                    accepted_late.append(
                        f"{visit.home} resident at {visit.city} {visit.t - withdrawn:.1f} s "
                        f"after withdrawing (t = {visit.t:.1f} s)"
                    )
            elif visit.decided:
                early_accepted += 1
        # the final probe: every withdrawn attestation at every city, the ttl long past
        probes = [
            await sim.visit(holder, city, "library_deposit_free")
            for holder in chosen
            for city in sim.cities.values()
        ]
        probe_refused = [p for p in probes if p.outcome == "refused"]
        codes = sorted({p.code or "-" for p in probes})
        sim.result.faults.append(
            Fault(
                name="consent withdrawn",
                at=at,
                action=f"{len(chosen)} residents withdrew their share_alliance consent "
                f"(DELETE /v1/me/consents/share_alliance)",
                observed=f"{len(late)} of their presentations came more than {bound:.0f} s "
                f"(status ttl + {REVOKE_SLACK:.0f} s) later: {len(accepted_late)} decided, "
                f"the rest refused; {early_accepted} decided inside the ttl window; the final "
                f"probe at every city: {len(probe_refused)}/{len(probes)} refused "
                f"({', '.join(codes)})",
                ok=not accepted_late and len(probe_refused) == len(probes),
                details=accepted_late,
            )
        )
        sim.revocation = {
            "holders": len(chosen),
            "late_visits": len(late),
            "accepted_late": len(accepted_late),
            "probes": len(probes),
            "probes_refused": len(probe_refused),
            "bound": bound,
        }

    sim.finishers.append(judge)


def sim_bound() -> float:
    return STATUS_TTL + REVOKE_SLACK


# --- tampered and replayed presentations --------------------------------------------------


async def tamper_and_replay(sim: World) -> None:
    """Bad answers to OpenID4VP requests (docs/SECURITY.md sections 2 and 19), each sent
    to a response endpoint as a wallet would: every one must be refused."""
    at = sim.now()
    holder = next(_active(c) for c in sim.cities.values())
    # two verifiers whose nodes run (another fault may have one down): another city
    # first, then a third city or, failing that, her home city
    up = _safe(sim)
    here = next(c for c in up if c.name != holder.home)
    there = sorted((c for c in up if c is not here), key=lambda c: c.name == holder.home)[0]
    attempts: list[tuple[str, int, str | None]] = []  # (what, status, code)

    async def request(city: City, mode: str = "direct_post") -> tuple[Any, P.VerifiedRequest]:
        status, made = await sim.ask(city, "library_deposit_free", mode)
        read = await sim.read(made) if status == 201 else None
        if read is None:
            raise RuntimeError(f"{city.name} gave no presentation request ({status})")
        return made, read

    async def send(what: str, request: P.VerifiedRequest, form: dict[str, str]) -> None:
        status, answer = await sim.respond(request, form)
        attempts.append((what, status, error_code(answer)))

    def flip(presentation: str) -> str:
        jwt_part, rest = presentation.split("~", 1)
        head, payload, signature = jwt_part.split(".")
        flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
        return f"{head}.{payload}.{flipped}~{rest}"

    def forge(presentation: str) -> str:  # "score_at_least.750": true, made up
        parts = presentation.split("~")
        forged = P.b64url_encode(json.dumps(["c2FsdHNhbHRzYWx0", "750", True]).encode())
        return "~".join([parts[0], forged, *parts[2:]])

    # an honest answer, decided; then the same response again
    made, asked = await request(here)
    honest = sim.answer(holder, asked)
    status, _ = await sim.respond(asked, honest)
    if status == 200:
        _, decided = await sim.outcome(here, made)
        if decided.get("outcome") == "granted":
            sim.grants.append(Grant.of(here.name, decided))
    await send("the same response replayed", asked, honest)
    # the same presentation to another city's request (its state copied in)
    _, other = await request(there)
    await send("replayed at another city", other, {**honest, "state": other.claims["state"]})
    _, asked = await request(here)
    await send("issuer signature tampered", asked, sim.answer(holder, asked, change=flip))
    _, asked = await request(here)
    await send("forged disclosure", asked, sim.answer(holder, asked, change=forge))
    _, asked = await request(here)
    await send("presented with a key that is not the holder's", asked,
               sim.answer(holder, asked, key=generate_key("ES256")))  # fmt: skip
    # made for one verifier's request, sent to another's
    _, asked = await request(here)
    _, other = await request(there)
    await send("audience of another city", other,
               {**sim.answer(holder, asked), "state": other.claims["state"]})  # fmt: skip
    # a downgrade: in the clear, to a request that asked for an encrypted answer
    _, asked = await request(here, "direct_post.jwt")
    await send("in the clear to an encrypted request", asked,
               sim.answer(holder, asked, plain=True))  # fmt: skip
    refused = [a for a in attempts if 400 <= a[1] < 500]
    sim.result.faults.append(
        Fault(
            name="tampered and replayed presentations",
            at=at,
            action=f"{len(attempts)} bad answers to OpenID4VP requests with a {holder.home} "
            f"resident's attestation at {here.name} and {there.name}: "
            + "; ".join(f"{what}" for what, _, _ in attempts),
            observed=", ".join(f"{status} {code}" for _, status, code in attempts),
            ok=len(refused) == len(attempts),
        )
    )


# --- a node killed and restarted -------------------------------------------------------


async def _probe(sim: World, holder_city: City, city: City, *, until: float) -> Visit:
    """A visit of one of ``holder_city``'s residents at ``city``, tried again every half
    second until it is decided or ``until`` (monotonic) passes; the last try."""
    holder = _active(holder_city)
    while True:
        visit = await sim.visit(holder, city, "bike_deposit_free")
        if visit.decided or time.monotonic() > until:
            return visit
        await asyncio.sleep(0.5)


async def kill_and_restart(sim: World, city: City) -> None:
    at = sim.now()
    await asyncio.to_thread(city.node.stop, kill=True)
    elsewhere = _other(sim, city)
    # while it is down: its resident is decided elsewhere from the cached status list
    during = await sim.visit(_active(city), elsewhere, "bike_deposit_free")
    refused_there = await sim.visit(_active(elsewhere), city, "bike_deposit_free")
    await asyncio.sleep(max(0.0, KILL_SECONDS - (sim.now() - at)))
    await asyncio.to_thread(city.node.start)
    startup = await asyncio.to_thread(city.node.wait_ready)
    back = sim.now()
    after = await _probe(sim, elsewhere, city, until=time.monotonic() + 20)
    decided_again = sim.now()

    async def judge() -> None:
        window = [v for v in sim.result.visits if at <= v.t <= back]
        there = [v for v in window if v.city == city.name]
        residents_elsewhere = [v for v in window if v.home == city.name and v.city != city.name]
        stale_failures = [v for v in residents_elsewhere if v.code == "status_unavailable"]
        sim.result.faults.append(
            Fault(
                name=f"node {city.name} killed and restarted",
                at=at,
                action=f"SIGKILL to {city.name}'s node; restarted {KILL_SECONDS:.0f} s later",
                observed=f"while down, a visit there was {refused_there.outcome} and one of its "
                f"residents at {elsewhere.name} {during.outcome} (cached status list); of the "
                f"run's visits meanwhile, {sum(1 for v in there if v.outcome == 'unavailable')}"
                f" of {len(there)} to it failed to connect and {_decided(residents_elsewhere)} "
                f"of {len(residents_elsewhere)} of its residents elsewhere were decided "
                f"({len(stale_failures)} status_unavailable); back {back - at:.1f} s after the "
                f"kill ({startup:.1f} s to start), deciding again {decided_again - at:.1f} s "
                f"after it ({after.outcome})",
                ok=during.decided
                and refused_there.outcome == "unavailable"
                and not stale_failures
                and after.decided,
            )
        )

    sim.finishers.append(judge)


# --- the alliance host down ------------------------------------------------------------------


async def host_down(sim: World) -> None:
    assert sim.host is not None
    host = sim.host
    at = sim.now()
    await asyncio.to_thread(host.stop)
    errors: set[str] = set()
    not_ready: set[str] = set()
    probes: list[Visit] = []
    names = list(sim.cities)
    deadline = time.monotonic() + HOST_DOWN_SECONDS
    while time.monotonic() < deadline:
        for city in sim.cities.values():
            try:
                status, body = await sim.api.call(
                    "GET", city.node.url, "/readyz", label="GET /readyz"
                )
            except Unreachable:  # a node another fault has killed: not this fault's
                continue
            if status != 200:
                not_ready.add(city.name)
            if ((body or {}).get("registry") or {}).get("last_error"):
                errors.add(city.name)
        # a visitor decided while the registry can't be fetched (each city pair in turn)
        home = sim.cities[names[len(probes) % len(names)]]
        probes.append(await sim.visit(_active(home), _other(sim, home), "bike_deposit_free"))
        await asyncio.sleep(0.5)
    await asyncio.to_thread(host.start)
    await asyncio.to_thread(host.wait_ready)
    back = sim.now()

    async def judge() -> None:
        window = [v for v in sim.result.visits if at <= v.t <= back] + probes
        registry_failures = [v for v in window if v.code == "registry_unavailable"]
        sim.result.faults.append(
            Fault(
                name="alliance host down",
                at=at,
                action=f"the alliance host stopped for {back - at:.1f} s",
                observed=f"{len(errors)} of {len(sim.cities)} nodes saw their registry fetch "
                f"fail and kept the last good version; {len(not_ready)} went not-ready; "
                f"{_decided(window)} of {len(window)} visits meanwhile were decided "
                f"({len(probes)} of them probes; {len(registry_failures)} "
                "registry_unavailable)",
                ok=not registry_failures and not not_ready and bool(errors) and bool(probes),
            )
        )

    sim.finishers.append(judge)


WITNESS_WAIT = 30.0  # seconds for a checkpoint to reach the host (it may be down meanwhile)


async def witness_record(sim: World, city: City) -> dict[str, Any]:
    """What the alliance host witnessed for ``city`` (GET /v1/alliance/witness/checkpoints)."""
    assert sim.host is not None
    record: dict[str, Any] = await sim.api.ok(
        "GET", sim.host.url, "/v1/alliance/witness/checkpoints",
        params={"member": city.node.url, "limit": "0"},
        label="GET /v1/alliance/witness/checkpoints",
    )  # fmt: skip
    return record


async def _witness_until(
    sim: World, city: City, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    deadline = time.monotonic() + WITNESS_WAIT
    while time.monotonic() < deadline:
        with contextlib.suppress(Unreachable):
            record = await witness_record(sim, city)
            if done(record):
                return record
        await asyncio.sleep(0.25)
    return None


def audit_verify(sim: World, city: City) -> tuple[bool, str]:
    """`ccx audit verify` of ``city``'s node against the alliance host: (passed, what it said)."""
    assert sim.host is not None
    try:
        said = ccx(
            "audit", "verify", "--data-dir", str(city.node.data_dir),
            "--witness-url", sim.host.url, "--node-id", city.node.url,
        )  # fmt: skip
    except ToolingError as exc:
        return False, str(exc)
    return True, said


async def rewrite(sim: World, city: City) -> None:
    at = sim.now()
    witnessed = await _witness_until(sim, city, lambda r: r["latest"] is not None)
    if witnessed is None:
        raise RuntimeError(f"the alliance host witnessed no checkpoint of {city.name}")
    seq = witnessed["latest"]["seq"]
    database = city.node.data_dir / "node.db"
    changed = await asyncio.to_thread(
        rewrite_history, database, 1, lambda d: {**d, "note": "rewritten by the fault"}
    )
    chain = await sim.api.ok(
        "GET", city.node.url, "/v1/admin/audit/verify", token=city.node.admin_token,
        label="GET /v1/admin/audit/verify",
    )  # fmt: skip
    refused = await _witness_until(sim, city, lambda r: bool(r["forks"]))
    passed, said = await asyncio.to_thread(audit_verify, sim, city)
    fork = refused["forks"][-1] if refused else None
    sim.result.faults.append(
        Fault(
            name=f"history rewritten at {city.name}",
            at=at,
            action=f"entry 1 of {city.name}'s audit log changed in its SQLite file and the "
            f"{changed - 1} entries after it rehashed, while it runs (the host had witnessed "
            f"its head at entry {seq})",
            observed=f"the node's own chain check said {'intact' if chain['ok'] else 'broken'}; "
            + (
                f"the alliance host refused its next checkpoint as a fork (at witnessed entry "
                f"{fork['witnessed']['seq']}, kept as evidence)"
                if fork
                else f"the alliance host refused no checkpoint within {WITNESS_WAIT:.0f} s"
            )
            + (
                "; `ccx audit verify` reported the fork"
                if "FORKED" in said
                else "; `ccx audit verify` did NOT report a fork"
            ),
            ok=bool(chain["ok"]) and fork is not None and not passed and "FORKED" in said,
        )
    )
