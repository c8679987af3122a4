"""The invariants a run must keep, checked from outside the nodes:

- every audit chain intact (each node recomputes its own hash chain: GET
  /v1/admin/audit/verify);
- every node's history matches its witnessed checkpoints: `ccx audit verify` of each
  city's node against what the alliance host countersigned finds the witnessed hash at
  every witnessed entry, except at the node whose history the fault rewrote, where it
  must find the fork (and the host must have refused its checkpoint as one);
- every granted decision traceable: the service point's answer names its audit entry
  (``audit_seq``), and that entry says the same scenario, issuer and "granted";
- no revoked attestation accepted after the status ttl (judged with the consent
  withdrawal fault, from every later visit and a final probe at every city);
- no raw record outside its home node: no resident id or record id of a city appears in
  any file of another node (database, WAL, keys, saved registry and tables, log), of the
  alliance host or its folder, while each city's own files do hold them (so the search is
  known to find what it looks for). The report is made from the run's observations, which
  hold no resident id.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from simulator.faults import audit_verify, witness_record
from simulator.observations import Invariant
from simulator.world import World

__all__ = ["check_online", "raw_records", "scan_for_ids", "witnessed_histories"]

AUDIT_PAGE = 1000


async def check_online(sim: World) -> None:
    """The invariants read from running nodes (before they are stopped)."""
    sim.result.invariants.append(await audit_chains(sim))
    sim.result.invariants.append(await witnessed_histories(sim))
    sim.result.invariants.append(await grants_traceable(sim))
    sim.result.invariants.append(revoked_refused(sim))


async def audit_chains(sim: World) -> Invariant:
    broken: list[str] = []
    entries = 0
    for node in sim.processes():
        answer = await sim.api.ok(
            "GET", node.url, "/v1/admin/audit/verify", token=node.admin_token,
            label="GET /v1/admin/audit/verify",
        )  # fmt: skip
        entries += int(answer["count"])
        if not answer["ok"]:
            broken.append(f"{node.name} (first bad entry {answer['first_bad_seq']})")
    return Invariant(
        "every audit chain intact",
        not broken,
        f"{len(sim.processes())} nodes, {entries:,} entries: "
        + ("every chain verifies" if not broken else "broken at " + ", ".join(broken)),
    )


async def witnessed_histories(sim: World) -> Invariant:
    matched: list[str] = []
    wrong: list[str] = []
    checkpoints = 0
    for city in sim.cities.values():
        record = await witness_record(sim, city)
        checkpoints += int(record["count"])
        passed, said = await asyncio.to_thread(audit_verify, sim, city)
        if city.name == sim.rewritten:
            if passed or "FORKED" not in said or not record["forks"]:
                wrong.append(f"{city.name}'s rewritten history went unnoticed")
            continue
        if not passed or not record["count"] or record["forks"]:
            wrong.append(f"{city.name}: {said.strip().splitlines()[-1] if said else '?'}")
        else:
            matched.append(city.name)
    detail = (
        f"{checkpoints:,} checkpoints countersigned by the alliance host; "
        f"{len(matched)} of {len(sim.cities)} nodes' histories match them"
    )
    if sim.rewritten:
        detail += f"; {sim.rewritten}'s rewritten history was caught as a fork"
    if wrong:
        detail = "; ".join(wrong)
    return Invariant("every node's history matches its witnessed checkpoints", not wrong, detail)


async def _decisions(sim: World, city: str) -> dict[int, dict[str, Any]]:
    node = sim.cities[city].node
    found: dict[int, dict[str, Any]] = {}
    after = 0
    while True:
        page = await sim.api.ok(
            "GET", node.url, "/v1/admin/audit", token=node.admin_token,
            params={"after": str(after), "limit": str(AUDIT_PAGE)}, label="GET /v1/admin/audit",
        )  # fmt: skip
        for entry in page["entries"]:
            if entry["action"] == "verification.decided":
                found[entry["seq"]] = entry["details"]
        if page["next_after"] is None:
            return found
        after = page["next_after"]


async def grants_traceable(sim: World) -> Invariant:
    by_city: dict[str, list[Any]] = defaultdict(list)
    for grant in sim.grants:
        by_city[grant.city].append(grant)
    missing: list[str] = []
    audited_grants = 0
    for city in sim.cities:
        decisions = await _decisions(sim, city)
        audited_grants += sum(1 for d in decisions.values() if d.get("decision") == "granted")
        for grant in by_city[city]:
            entry = decisions.get(grant.audit_seq)
            if (
                entry is None
                or entry.get("decision") != "granted"
                or entry.get("scenario") != grant.scenario
                or entry.get("issuer") != grant.issuer
            ):
                missing.append(f"{city}#{grant.audit_seq}")
    # A decision can be made and logged while its answer is lost (a node killed mid-
    # request): the logs may hold more grants than were seen, never more than were lost.
    lost = sum(1 for v in sim.result.visits if v.outcome == "unavailable")
    extra = audited_grants - len(sim.grants)
    ok = not missing and 0 <= extra <= lost
    detail = (
        f"{len(sim.grants):,} granted decisions seen by the service points, each found in "
        f"its node's audit log with the same scenario and issuer"
        if not missing
        else f"{len(sim.grants):,} granted decisions seen by the service points"
    )
    detail += f"; {audited_grants:,} granted entries in the logs"
    if extra:
        detail += f" ({extra} whose answer was lost: {lost} visits got no answer)"
    if missing:
        detail += f"; not found or different: {', '.join(missing[:5])}"
        detail += f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return Invariant("every granted decision traceable in an audit log", ok, detail)


def revoked_refused(sim: World) -> Invariant:
    seen = sim.revocation
    if not seen:
        return Invariant(
            "no revoked attestation accepted after the ttl", True, "no consent was withdrawn"
        )
    ok = seen["accepted_late"] == 0 and seen["probes_refused"] == seen["probes"]
    return Invariant(
        "no revoked attestation accepted after the ttl",
        ok,
        f"{seen['holders']} withdrawn consents; {seen['late_visits']} later presentations "
        f"(beyond {seen['bound']:.0f} s), {seen['accepted_late']} accepted; final probe "
        f"{seen['probes_refused']}/{seen['probes']} refused",
    )


# --- raw records stay home ------------------------------------------------------------------


def id_pattern(prefix: str) -> re.Pattern[bytes]:
    """A city's resident ids (``xm-r0000042``) and record ids (``xm-00000042``).

    No word boundaries: SQLite packs a row's columns with nothing between them
    (``utilitiesxm-00000546``), and a boundary hid most ids in a real database. A false
    alarm (base64 text that happens to read ``xm-`` and eight digits, ~1e-12 a byte)
    names its file for a person to look at; a missed leak would say nothing."""
    return re.compile(re.escape(prefix.encode()) + rb"-(?:r\d{7}|\d{8})")


def scan_for_ids(
    paths: list[Path],
    patterns: dict[str, re.Pattern[bytes]],
    *,
    home: tuple[str, str] | None = None,
) -> dict[str, int]:
    """For each city, in how many of ``paths`` its ids appear. ``home``: the (city,
    prefix) whose files these are; an id of another city that is a home id with its first
    byte overwritten (``zz-r0000806`` where ``hz-r0000806`` is in the file, the prefixes
    sharing their last letter) is not counted: SQLite grows a page's cell pointer array
    over freed cells, and a pointer's byte can read as a letter (0x7a, "z"), tearing a
    home id into another city's. A leaked id whose number a home id shares is missed;
    any other leaked id of the same leak is still found."""
    hits: dict[str, int] = dict.fromkeys(patterns, 0)
    for path in paths:
        if not path.exists():
            continue
        data = path.read_bytes()
        for city, pattern in patterns.items():
            if any(not _torn_home_id(data, match, home) for match in pattern.finditer(data)):
                hits[city] += 1
    return hits


def _torn_home_id(data: bytes, match: re.Match[bytes], home: tuple[str, str] | None) -> bool:
    if home is None:
        return False
    prefix = home[1].encode()
    text = match.group()
    cut = text.index(b"-")
    if text[cut - 1 : cut] != prefix[-1:] or text[:cut] == prefix:
        return False
    return prefix + text[cut:] in data


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def raw_records(sim: World) -> Invariant:
    """Every node stopped: search every file of the run for other cities' ids."""
    patterns = {name: id_pattern(city.profile.prefix) for name, city in sim.cities.items()}
    leaks: list[str] = []
    unseen_at_home: list[str] = []
    # each node's data folder and log; what the alliance holds and was given
    places = [(node.name, [*_files(node.data_dir), node.log_path]) for node in sim.processes()]
    places += [("the alliance folder", _files(sim.alliance_dir))]
    places += [("the summaries sent to the alliance", _files(sim.work / "tables"))]
    for owner, paths in places:
        home = (owner, sim.cities[owner].profile.prefix) if owner in sim.cities else None
        hits = scan_for_ids(paths, patterns, home=home)
        for city, files in hits.items():
            if city != owner and files:
                leaks.append(f"{city} ids in {files} file(s) of {owner}")
        if owner in patterns and not hits[owner]:
            unseen_at_home.append(owner)
    ok = not leaks and not unseen_at_home
    detail = (
        f"searched every file of {len(places)} places for the {len(patterns)} cities' resident "
        f"and record ids: found only at home"
        if ok
        else "; ".join(leaks + [f"{c}'s own files hold none of its ids" for c in unseen_at_home])
    )
    return Invariant("no raw record outside its home node", ok, detail)
