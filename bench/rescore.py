"""Cost of rescoring: everyone at once (the monthly job) and one resident on a new record.

Run from the repository root::

    .venv/bin/python bench/rescore.py [--residents N] [--records M]
        [--db-residents n] [--db-records m] [--samples K] [--rounds R] [--seed S]
        [--model PATH] [--json]

``--model`` scores with another model file than the demo model (a scorecard, for one:
``--model simulator/cities/hangzhou.toml``, docs/MODELS.md); its kinds must include a
repair kind and a negative one, as the synthetic records need.

Targets (issue 4):

- **full rescoring**: 1,000,000 residents with 10,000,000 records in at most 60 s,
  through the job's own code: ``record_arrays`` (effective points and expiry from
  the record columns, as ``load_record_arrays`` does chunk by chunk), then
  ``ScoringModel.score_batch_breakdown`` (what ``rescore_everyone`` calls; it is
  ``score_batch`` plus the per-dimension points a Score row keeps), then the
  ``histogram`` of the distribution snapshot. The arrays are synthetic, made in memory
  (2% of the records are repairs, half of the records of overridable kinds carry
  their own points, occurrences spread over six years so that some records expire).
- **incremental rescoring**: p99 of ``rescore_resident`` right after inserting one
  record for her, at most 10 ms, on a SQLite database with realistic per-resident
  record counts (negative binomial, mean ``m / n``, a long tail). Beside it: one
  department push of one record through the whole service, and the largest push
  (``max_batch_rows`` records, each for another resident) in its single transaction.

Also measured, and labelled as such: the database side of the job on a real SQLite
file at ``--db-residents`` / ``--db-records`` (default 100,000 / 1,000,000): loading
the arrays (``load_record_arrays``, a streaming cursor), then the whole
``rescore_everyone`` with its phases (load, score, write scores, snapshot). The
figures for the full size are a linear **extrapolation** (load by records, writes by
residents), not a measurement; PostgreSQL differs.

Each section runs in a process of its own, so each peak memory figure (``ru_maxrss``)
is that section's. Times are the median and the minimum over ``--rounds`` rounds
after a warm-up. This is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The repository root, so that the script runs from anywhere without an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _machine import cpu_model  # bench/ is on sys.path as the script's folder

from node.scoring import DAY, ScoringModel, load_model
from node.services.scoring import RecordArrays

NOW = 1_800_000_000  # 2027-01-15, as in the tests
TARGET_FULL_SECONDS = 60.0
TARGET_FULL_RESIDENTS = 1_000_000
TARGET_FULL_RECORDS = 10_000_000
TARGET_INCREMENTAL_P99_MS = 10.0
REPAIR_SHARE = 0.02  # of the synthetic records, repairs
REPAIRED_SHARE = 0.05  # of the negative records in the database, repaired
DEPARTMENTS = ("tax", "utilities", "courts", "transport", "civil-affairs")


def peak_memory_mib() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def timed(fn: Any, rounds: int) -> tuple[float, float, Any]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), result


# --- synthetic arrays -------------------------------------------------------------------


def synthetic_columns(
    model: ScoringModel, residents: int, records: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Record columns as the database would give them: most records plain, a share of
    repairs already linked to a negative record of the same resident."""
    order = model.kind_order
    plain = np.array([i for i, k in enumerate(order) if not model.kinds[k].repair])
    repair_kind = next(i for i, k in enumerate(order) if model.kinds[k].repair)
    n_repairs = int(records * REPAIR_SHARE)
    n_plain = records - n_repairs
    resident_idx = rng.integers(0, residents, n_plain, dtype=np.int64)
    kind_idx = plain[rng.integers(0, len(plain), n_plain)]
    occurred_at = NOW - rng.integers(-DAY, 6 * 365 * DAY, n_plain, dtype=np.int64)
    own = np.where(rng.random(n_plain) < 0.5, np.round(rng.uniform(0, 12, n_plain), 2), np.nan)
    kind_points = np.array([model.kinds[k].points for k in order])
    negative = np.flatnonzero(kind_points[kind_idx] < 0)
    repaired = rng.choice(negative, size=min(n_repairs, len(negative)), replace=False)
    return {
        "plain": (resident_idx, kind_idx, occurred_at, own),
        "repaired": repaired,
        "repair_kind": repair_kind,
        "repair_occurred_at": occurred_at[repaired]
        + rng.integers(0, 365 * DAY, len(repaired), dtype=np.int64),
    }


def job_arrays(model: ScoringModel, columns: dict[str, Any]) -> Any:
    """What load_record_arrays hands the scoring: the job's own record_arrays for the
    plain records, and the repairs' points and expiry from the records they repair."""
    from node.services.scoring import RecordArrays, record_arrays

    plain = record_arrays(model, *columns["plain"])
    repaired = columns["repaired"]
    severity_share = np.array(
        [model.restore[model.kinds[k].severity] for k in model.kind_order], dtype=np.float64
    )
    kinds = plain.kind_idx[repaired]
    repairs = RecordArrays(
        plain.resident_idx[repaired],
        np.full(len(repaired), columns["repair_kind"], dtype=np.int64),
        columns["repair_occurred_at"],
        -np.minimum(plain.points[repaired], 0.0) * severity_share[kinds],
        np.where(plain.occurred_at[repaired] <= NOW, plain.expires_at[repaired], -1),
    )
    return RecordArrays.concatenate([plain, repairs])


def model_of(args: argparse.Namespace) -> ScoringModel:
    """The model the sections score with: ``--model``, else the demo model."""
    return load_model(Path(args.model) if args.model else None)


def section_batch(args: argparse.Namespace) -> dict[str, Any]:
    from node.services.scoring import histogram

    model = model_of(args)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    columns = synthetic_columns(model, args.residents, args.records, rng)
    generate = time.perf_counter() - started
    derive_median, derive_min, arrays = timed(lambda: job_arrays(model, columns), args.rounds)
    records: RecordArrays = arrays
    score_median, score_min, result = timed(
        lambda: model.score_batch_breakdown(args.residents, *records, NOW), args.rounds
    )
    hist_median, hist_min, counts = timed(lambda: histogram(model, result.scores), args.rounds)
    plain_median, plain_min, _ = timed(
        lambda: model.score_batch(args.residents, *records, NOW), args.rounds
    )
    total = derive_median + score_median + hist_median
    return {
        "residents": args.residents,
        "records": len(arrays.resident_idx),
        "generate_seconds": generate,
        "derive": [derive_median, derive_min],
        "score_batch_breakdown": [score_median, score_min],
        "score_batch": [plain_median, plain_min],
        "histogram": [hist_median, hist_min],
        "total_seconds": total,
        "mean_score": float(result.scores.mean()),
        "population": int(counts.sum()),
        "peak_mib": peak_memory_mib(),
    }


# --- a SQLite database with realistic records ---------------------------------------------


def build_database(
    path: Path, residents: int, records: int, seed: int, model: ScoringModel
) -> dict[str, Any]:
    """A node database (the real schema, by migration) filled with raw inserts."""
    from node.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    rng = np.random.default_rng(seed)
    order = model.kind_order
    plain = [k for k in order if not model.kinds[k].repair]
    repair_kind = next(k for k in order if model.kinds[k].repair)
    mean = records / residents
    # negative binomial with dispersion 2: most residents have a few records, some many
    counts = np.minimum(rng.negative_binomial(2, 2 / (2 + mean), residents), 400)
    started = time.perf_counter()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    ids = [f"res-{i:07d}" for i in range(residents)]
    connection.executemany(
        "INSERT INTO resident (id, created_at) VALUES (?, ?)", ((rid, NOW) for rid in ids)
    )
    status_draw = rng.random(int(counts.sum()))
    repair_draw = rng.random(int(counts.sum()))
    kinds = rng.integers(0, len(plain), int(counts.sum()))
    ages = rng.integers(-DAY, 6 * 365 * DAY, int(counts.sum()))
    own = rng.uniform(0, 12, int(counts.sum()))
    rows: list[tuple[Any, ...]] = []
    n = 0
    for r, count in enumerate(counts.tolist()):
        department = DEPARTMENTS[r % len(DEPARTMENTS)]
        for j in range(count):
            kind = plain[kinds[n]]
            status = (
                "removed"
                if status_draw[n] < 0.005
                else "objected"
                if status_draw[n] < 0.015
                else "active"
            )
            points = (
                round(float(own[n]), 2) if model.kinds[kind].points_overridable and j % 2 else None
            )
            occurred = NOW - int(ages[n])
            rows.append(
                (department, f"r{r}-{j}", ids[r], kind, occurred, NOW, points, None, None, status)
            )
            if model.kinds[kind].points < 0 and repair_draw[n] < REPAIRED_SHARE:
                rows.append(
                    (
                        department,
                        f"r{r}-{j}-fix",
                        ids[r],
                        repair_kind,
                        occurred + DAY,
                        NOW,
                        None,
                        f"r{r}-{j}",
                        department,  # the repair names its record's department (migration 0003)
                        "active",
                    )
                )
            n += 1
        if len(rows) >= 100_000:
            connection.executemany(_INSERT_RECORD, rows)
            rows.clear()
    connection.executemany(_INSERT_RECORD, rows)
    connection.commit()
    total = connection.execute("SELECT count(*) FROM record").fetchone()[0]
    repairs = connection.execute(
        "SELECT count(*) FROM record WHERE repairs IS NOT NULL"
    ).fetchone()[0]
    connection.close()
    per_resident = np.bincount(np.repeat(np.arange(residents), counts), minlength=residents)
    return {
        "path": str(path),
        "residents": residents,
        "records": int(total),
        "repairs": int(repairs),
        "records_per_resident": {
            "mean": float(per_resident.mean()),
            "p50": float(np.percentile(per_resident, 50)),
            "p99": float(np.percentile(per_resident, 99)),
            "max": int(per_resident.max()),
        },
        "build_seconds": time.perf_counter() - started,
        "size_mib": path.stat().st_size / 2**20,
    }


_INSERT_RECORD = (
    "INSERT INTO record (department, record_id, resident_id, kind, occurred_at, recorded_at,"
    " points, repairs, repairs_department, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def node_state(path: Path, model: ScoringModel) -> Any:
    from keys import Keyring
    from node.db import make_engine
    from node.settings import Settings
    from node.state import Metrics, NodeState

    settings = Settings(data_dir=path.parent, database_url=f"sqlite:///{path}")
    return NodeState(
        settings=settings,
        engine=make_engine(settings.effective_database_url),
        keyring=Keyring.create(now=NOW),
        model=model,
        metrics=Metrics(),
    )


def section_db(args: argparse.Namespace) -> dict[str, Any]:
    from node.services.scoring import rescore_everyone

    state = node_state(Path(args.db), model_of(args))
    first = rescore_everyone(state, NOW)  # stores the month's snapshot
    again = rescore_everyone(state, NOW + DAY)  # the snapshot exists: scores only
    return {
        "first_run": first.to_json(),
        "second_run": again.to_json(),
        "peak_mib": peak_memory_mib(),
    }


def section_incremental(args: argparse.Namespace) -> dict[str, Any]:
    from sqlmodel import Session

    from node.models import Record
    from node.services import records as records_service
    from node.services.scoring import insert_for, rescore_resident

    state = node_state(Path(args.db), model_of(args))
    rng = np.random.default_rng(args.seed + 1)
    residents = int(args.db_residents)
    alone, with_commit, pushes = [], [], []
    for i in range(args.samples):
        rid = f"res-{int(rng.integers(residents)):07d}"
        with Session(state.engine) as session:
            row = {
                "department": "bench",
                "record_id": f"inc-{i}",
                "resident_id": rid,
                "kind": "late_utility_payment",
                "occurred_at": NOW - DAY,
                "recorded_at": NOW,
                "points": None,
                "repairs": None,
                "status": "active",
                "note": None,
            }
            started = time.perf_counter()
            session.exec(insert_for(session, Record), params=[row])
            inserted = time.perf_counter()
            rescore_resident(session, state, rid, NOW)
            rescored = time.perf_counter()
            session.commit()
            committed = time.perf_counter()
        alone.append(rescored - inserted)
        with_commit.append(committed - started)
        # the whole service path of a department pushing one record
        one = {
            "record_id": f"push-{i}",
            "resident_id": f"res-{int(rng.integers(residents)):07d}",
            "kind": "pay_later_on_time",
            "occurred_at": NOW - DAY,
        }
        with Session(state.engine) as session:
            started = time.perf_counter()
            records_service.push_records(session, state, "bench", [one], now=NOW)
            pushes.append(time.perf_counter() - started)

    # the largest push a department may send, each row for another resident: its write
    # transaction (the insert, the residents' lock, their rescoring, the commit) is
    # most of this time, and other writers wait for it on SQLite
    batch = [
        {
            "record_id": f"batch-{i}",
            "resident_id": f"res-{int(rng.integers(residents)):07d}",
            "kind": "late_utility_payment",
            "occurred_at": NOW - DAY,
        }
        for i in range(state.settings.max_batch_rows)
    ]
    with Session(state.engine) as session:
        started = time.perf_counter()
        records_service.push_records(session, state, "bench", batch, now=NOW)
        max_batch_seconds = time.perf_counter() - started

    def percentiles(values: list[float]) -> dict[str, float]:
        ms = np.array(values) * 1000
        return {q: float(np.percentile(ms, int(q[1:]))) for q in ("p50", "p95", "p99")} | {
            "max": float(ms.max())
        }

    return {
        "samples": args.samples,
        "rescore_resident_ms": percentiles(alone),
        "insert_rescore_commit_ms": percentiles(with_commit),
        "push_records_one_ms": percentiles(pushes),
        "max_batch_rows": len(batch),
        "max_batch_seconds": max_batch_seconds,
        "peak_mib": peak_memory_mib(),
    }


def section_build(args: argparse.Namespace) -> dict[str, Any]:
    return build_database(
        Path(args.db), args.db_residents, args.db_records, args.seed, model_of(args)
    ) | {"peak_mib": peak_memory_mib()}


SECTIONS = {
    "build": section_build,
    "batch": section_batch,
    "db": section_db,
    "incremental": section_incremental,
}


# --- the report ------------------------------------------------------------------------------


def run_section(name: str, argv: Sequence[str], db: str) -> dict[str, Any]:
    # this very script with our own arguments: a fresh process per section, for its peak memory
    output = subprocess.run(  # noqa: S603
        [sys.executable, __file__, *argv, "--section", name, "--db", db, "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    batch, build, db, inc = (results[k] for k in ("batch", "build", "db", "incremental"))
    scale_records = TARGET_FULL_RECORDS / build["records"]
    scale_residents = TARGET_FULL_RESIDENTS / build["residents"]
    first = db["first_run"]["phases"]
    second = db["second_run"]["phases"]
    extrapolated = {
        "load": second["load"] * scale_records,
        "write_scores": second["write_scores"] * scale_residents,
        "snapshot": first["snapshot"] * scale_residents,
    }
    full_seconds = batch["total_seconds"]
    met = "met" if full_seconds <= TARGET_FULL_SECONDS else "NOT met"
    p99 = inc["rescore_resident_ms"]["p99"]
    inc_met = "met" if p99 <= TARGET_INCREMENTAL_P99_MS else "NOT met"
    lines = [
        f"machine: {cpu_model()}, Python {platform.python_version()}, numpy {np.__version__}",
        "",
        f"FULL RESCORING, in memory: {batch['residents']:,} residents, {batch['records']:,} records"
        f" (median / min of {args.rounds} rounds)",
        f"  derive points and expiry (record_arrays)  {batch['derive'][0]:7.2f} s / {batch['derive'][1]:.2f} s",
        f"  score_batch_breakdown                      {batch['score_batch_breakdown'][0]:7.2f} s / {batch['score_batch_breakdown'][1]:.2f} s",
        f"  (score_batch alone, same arrays)           {batch['score_batch'][0]:7.2f} s / {batch['score_batch'][1]:.2f} s",
        f"  histogram                                  {batch['histogram'][0]:7.2f} s / {batch['histogram'][1]:.2f} s",
        f"  total                                      {full_seconds:7.2f} s   target <= {TARGET_FULL_SECONDS:.0f} s: {met}",
        f"  peak memory (ru_maxrss)                    {batch['peak_mib']:7.0f} MiB",
        "",
        f"SQLITE DATABASE: {build['residents']:,} residents, {build['records']:,} records"
        f" ({build['repairs']:,} repairs), {build['size_mib']:.0f} MiB;"
        f" records per resident: mean {build['records_per_resident']['mean']:.1f},"
        f" p50 {build['records_per_resident']['p50']:.0f}, p99 {build['records_per_resident']['p99']:.0f},"
        f" max {build['records_per_resident']['max']}",
        f"  records that can count, loaded by the job  {db['first_run']['records']:,}",
        f"  rescore_everyone, first run of the month   {db['first_run']['seconds']:7.2f} s  phases {first}",
        f"  rescore_everyone, snapshot already taken   {db['second_run']['seconds']:7.2f} s  phases {second}",
        f"  peak memory (ru_maxrss)                    {db['peak_mib']:7.0f} MiB",
        f"  EXTRAPOLATED (linear) to {TARGET_FULL_RESIDENTS:,} residents / {TARGET_FULL_RECORDS:,} records, not measured:",
        f"    load {extrapolated['load']:.0f} s + score {batch['score_batch_breakdown'][0]:.0f} s"
        f" + write scores {extrapolated['write_scores']:.0f} s + snapshot {extrapolated['snapshot']:.0f} s"
        f" = {sum(extrapolated.values()) + batch['score_batch_breakdown'][0]:.0f} s for the whole job on SQLite",
        "",
        f"INCREMENTAL RESCORING on that database, {inc['samples']:,} samples (ms)",
        f"  rescore_resident after inserting a record  {_pcts(inc['rescore_resident_ms'])}   target p99 <= {TARGET_INCREMENTAL_P99_MS:.0f} ms: {inc_met}",
        f"  insert + rescore_resident + commit         {_pcts(inc['insert_rescore_commit_ms'])}",
        f"  push_records, one record (service path)    {_pcts(inc['push_records_one_ms'])}",
        f"  push_records, {inc['max_batch_rows']:,} records for as many residents  {inc['max_batch_seconds']:.2f} s"
        " (one transaction; an upper bound on how long it holds SQLite's write lock)",
        f"  peak memory (ru_maxrss)                    {inc['peak_mib']:7.0f} MiB",
    ]
    return "\n".join(lines)


def _pcts(p: dict[str, float]) -> str:
    return f"p50 {p['p50']:.2f}  p95 {p['p95']:.2f}  p99 {p['p99']:.2f}  max {p['max']:.2f}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=TARGET_FULL_RESIDENTS)
    parser.add_argument("--records", type=int, default=TARGET_FULL_RECORDS)
    parser.add_argument("--db-residents", type=int, default=100_000)
    parser.add_argument("--db-records", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000, help="incremental rescorings")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--model", help="a scoring model file (default: the demo model)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a report")
    parser.add_argument("--section", choices=sorted(SECTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.section:
        print(json.dumps(SECTIONS[args.section](args)))
        return
    passed = [a for a in argv if a != "--json"]
    with tempfile.TemporaryDirectory(prefix="ccx-bench-") as folder:
        db = str(Path(folder) / "node.db")
        results = {
            name: run_section(name, passed, db) for name in ("build", "batch", "db", "incremental")
        }
    print(json.dumps(results, indent=2) if args.json else report(results, args))


if __name__ == "__main__":
    main()
