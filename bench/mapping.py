"""Cost of building and applying a mapping table, against numpy's own sort of the scores.

Run from the repository root::

    .venv/bin/python bench/mapping.py [--n N] [--rounds R] [--seed S] [--json]

Target (the issue): from ``--n`` (default 5,000,000) raw local scores, build a mapping
table in at most 1 s and apply it to all of them in at most 0.2 s, on one core. Numpy's
sort of the same array (``np.sort``) is measured in the same run as the reference cost,
so the figures can be read on any machine.

- **build**: from the raw scores array to a ``MappingTable``: the histogram
  (``np.bincount``), the ``DistributionSummary``, and ``mappings.build_table`` with
  Lord's analytic standard errors. The alliance scale (the registry's ``scale`` claim)
  is an input, made once before timing.
- **apply**: ``table.apply(raw_scores)`` on the integer array, the fast path, using the
  table built in the same round (so its per-point look-up is computed inside the timing).
- **apply (float64)**: the same scores as a float64 array, the interpolating path a
  caller takes when passing floats. Reported, but not part of the target.
- **sort**: ``np.sort(raw_scores)``, the reference.
- Extra rows, not part of the target: the build with bootstrap standard errors (200
  replications) and the build with ``("loglinear", "aic")`` presmoothing (no standard
  errors: Lord's form is for unsmoothed linking only).

One core: ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` are set
to 1 before numpy is imported, and where the OS allows it the process is pinned to one
CPU. After a warm-up round, every round times each item once, in turns, so all items
sample the same spells of machine noise. Times are the median and the minimum over the
rounds; ratios are the median of the per-round ratios. This is a script, not a test.
"""

from __future__ import annotations

import os

# Before numpy is imported: its BLAS (used by the log-linear fit) reads these at load.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# The repository root, so that the script runs from anywhere without an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _machine import cpu_model  # bench/ is on sys.path as the script's folder

import mappings as M

TARGET_BUILD_SECONDS = 1.0
TARGET_APPLY_SECONDS = 0.2
TARGET_N = 5_000_000  # the targets are for this many scores
BOOTSTRAP_REPLICATIONS = 200
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
LOCAL_SCALE = M.LocalScale("egret", 0, 1000)  # a 0..1000 city scale, like Xiamen's 白鹭分


def pin_to_one_cpu() -> str:
    """Pin the process to the first CPU it may run on; say what was done."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this OS)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def environment(pinning: str) -> dict[str, Any]:
    return {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "threads": {name: os.environ[name] for name in THREAD_VARIABLES},
        "pinning": pinning,
    }


def synthetic_scores(n: int, seed: int) -> npt.NDArray[np.int64]:
    """Raw local scores on 0..1000: a skewed, lumpy city population (most residents
    near a base score, a long lower tail of residents with dishonesty records)."""
    rng = np.random.default_rng(seed)
    bulk = rng.normal(640.0, 70.0, n)
    tail = rng.normal(450.0, 120.0, n)
    scores = np.where(rng.random(n) < 0.15, tail, bulk)
    return np.clip(np.rint(scores), 0, 1000).astype(np.int64)


def build(
    raw: npt.NDArray[np.int64],
    scale: M.AllianceScale,
    *,
    smoothing: M.Smoothing = None,
    standard_errors: str | None = "lord",
    rng: np.random.Generator | None = None,
) -> M.MappingTable:
    """Raw scores to a mapping table: histogram, summary, build_table."""
    # Scores index the histogram directly; an offset scale would subtract its min first.
    points = raw if LOCAL_SCALE.min == 0 else raw - int(LOCAL_SCALE.min)
    counts = np.bincount(points, minlength=LOCAL_SCALE.size).astype(np.float64)
    summary = M.DistributionSummary("xiamen", LOCAL_SCALE, counts, "2026-06-30", "bench-1")
    return M.build_table(
        summary,
        scale,
        version=1,
        valid_from=1_780_000_000,
        valid_to=1_790_000_000,
        smoothing=smoothing,
        standard_errors=standard_errors,
        rng=rng,
        replications=BOOTSTRAP_REPLICATIONS,
    )


def check_outputs(raw: npt.NDArray[np.int64], scale: M.AllianceScale) -> None:
    """The measured calls give right answers: both apply paths agree score by score."""
    table = build(raw, scale)
    by_integer = table.apply(raw)
    by_float = table.apply(raw.astype(np.float64))
    if not np.array_equal(by_integer, by_float):
        raise SystemExit("the integer and float apply paths disagree")
    if by_integer.min() < scale.min or by_integer.max() > scale.max:
        raise SystemExit("applied scores fall outside the alliance scale")


def timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call(*args, **kwargs)
    return time.perf_counter() - started, result


def measure(
    raw: npt.NDArray[np.int64], scale: M.AllianceScale, rounds: int, seed: int
) -> dict[str, list[float]]:
    """Seconds per item per round, items in turns within each round; round 0 is a warm-up."""
    raw_float = raw.astype(np.float64)
    times: dict[str, list[float]] = {
        "build": [],
        "apply": [],
        "apply_float": [],
        "sort": [],
        "build_bootstrap": [],
        "build_loglinear_aic": [],
    }
    for round_index in range(rounds + 1):
        seconds: dict[str, float] = {}
        seconds["build"], table = timed(build, raw, scale)
        seconds["apply"], _ = timed(table.apply, raw)
        seconds["apply_float"], _ = timed(table.apply, raw_float)
        seconds["sort"], _ = timed(np.sort, raw)
        rng = np.random.default_rng(seed + round_index)
        seconds["build_bootstrap"], _ = timed(
            build, raw, scale, standard_errors="bootstrap", rng=rng
        )
        seconds["build_loglinear_aic"], _ = timed(
            build, raw, scale, smoothing=("loglinear", "aic"), standard_errors=None
        )
        if round_index == 0:
            continue
        for name, value in seconds.items():
            times[name].append(value)
        print(f"  round {round_index}/{rounds} done", file=sys.stderr)
    return times


# (key, label, absolute target in seconds or None, what the row is when it has no target)
ROWS = (
    ("build", "build: bincount + build_table (Lord SEs)", TARGET_BUILD_SECONDS, ""),
    ("apply", "apply: table.apply(int64 scores)", TARGET_APPLY_SECONDS, ""),
    ("apply_float", "apply: table.apply(float64 scores)", None, "not in target"),
    ("sort", "np.sort(int64 scores)", None, "reference"),
    (
        "build_bootstrap",
        f"build, bootstrap SEs ({BOOTSTRAP_REPLICATIONS} replications)",
        None,
        "extra, not in target",
    ),
    ("build_loglinear_aic", "build, loglinear AIC, no SEs", None, "extra, not in target"),
)


def report(
    env: dict[str, Any], settings: dict[str, Any], times: dict[str, list[float]]
) -> dict[str, Any]:
    rows = []
    for key, label, target, note in ROWS:
        median = statistics.median(times[key])
        rows.append(
            {
                "name": key,
                "label": label,
                "median_s": median,
                "min_s": min(times[key]),
                "target_s": target,
                "result": note if target is None else ("PASS" if median <= target else "MISS"),
            }
        )
    ratios = {
        f"{key}/sort": statistics.median(
            a / s for a, s in zip(times[key], times["sort"], strict=True)
        )
        for key in ("build", "apply", "apply_float")
    }
    return {
        "environment": env,
        "settings": settings,
        "rows": rows,
        "ratios": ratios,
        "times_s": times,
    }


def print_table(result: dict[str, Any]) -> None:
    env, settings = result["environment"], result["settings"]
    threads = ", ".join(f"{k}={v}" for k, v in env["threads"].items())
    print("ccx mappings/ benchmark (bench/mapping.py)")
    print(f"python        {env['python']}")
    print(f"numpy         {env['numpy']}")
    print(f"cpu           {env['cpu_model']} ({env['logical_cpus']} logical CPUs)")
    print(f"platform      {env['platform']}")
    print(f"one core      {threads} set before numpy was imported; {env['pinning']}")
    print(
        f"input         {settings['n']:,} raw scores on 0..1000 (seed {settings['seed']}), "
        f"{settings['rounds']} rounds after 1 warm-up, items timed in turns"
    )
    print(f"targets       set for {TARGET_N:,} scores: build <= 1 s, apply <= 0.2 s (medians)")
    print()
    header = f"{'item':<46} {'median s':>9} {'min s':>9} {'target':>8}  result"
    print(header)
    print("-" * len(header))
    for row in result["rows"]:
        target = "" if row["target_s"] is None else f"<= {row['target_s']:g}"
        print(
            f"{row['label']:<46} {row['median_s']:>9.4f} {row['min_s']:>9.4f} "
            f"{target:>8}  {row['result']}"
        )
    print()
    print("ratio to np.sort (median of per-round ratios)")
    for name, value in result["ratios"].items():
        print(f"  {name:<18} {value:>6.2f}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/mapping.py",
        description=(
            "Time building a mapping table from raw local scores and applying it to them, "
            "against np.sort of the same scores, on one core."
        ),
    )
    parser.add_argument(
        "--n", type=int, default=TARGET_N, help="number of raw scores (default 5,000,000)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="timed rounds after one warm-up (default 5)"
    )
    parser.add_argument(
        "--seed", type=int, default=20260630, help="seed of the synthetic scores (default 20260630)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON object instead of a table"
    )
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error("--n must be at least 2")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    env = environment(pin_to_one_cpu())
    print(f"making {args.n:,} synthetic scores...", file=sys.stderr)
    raw = synthetic_scores(args.n, args.seed)
    scale = M.AllianceScale()  # the default scale claim: normal(600, 100) on 0..1000
    check_outputs(raw, scale)
    times = measure(raw, scale, args.rounds, args.seed)
    settings = {
        "n": args.n,
        "rounds": args.rounds,
        "warmup_rounds": 1,
        "seed": args.seed,
        "timer": "time.perf_counter",
        "statistic": "median and min over rounds; ratios: median of per-round ratios",
    }
    result = report(env, settings, times)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
