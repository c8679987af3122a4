"""How fast the ``ccx`` command starts, beside a bare ``python -c pass`` (issue 20).

Run from the repository root::

    .venv/bin/python bench/startup.py [--rounds N] [--json]

Each row is a fresh process, started and waited for: the bare interpreter, ``ccx
--help``, and the help of commands of each group (their group's module imported, the
command not run). Every round runs every row once, in an order that turns each round,
so all rows sample the same spells of machine noise; a row's figure is the median of
its rounds. The target: every row <= 0.3 s on this machine. The load average before
and after is printed, since another job on the machine slows every row alike. This is
a script, not a test (tests/test_startup.py checks what help imports, not its time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_model  # bench/ is on sys.path as the script's folder

TARGET_SECONDS = 0.3
BARE = "python -c pass"
COMMANDS = [
    ["--help"],
    ["node", "init", "--help"],
    ["audit", "verify", "--help"],
    ["wallet", "list", "--help"],
    ["alliance", "show", "--help"],
    ["mapping", "show", "--help"],
]


def _argv(row: str) -> list[str]:
    if row == BARE:
        return [sys.executable, "-c", "pass"]
    return [str(Path(sys.executable).parent / "ccx"), *row.removeprefix("ccx ").split()]


def _once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # noqa: S603 (our interpreter, our command)
    return time.perf_counter() - start


def measure(rounds: int) -> dict[str, float]:
    """Median seconds per row over ``rounds`` rounds (after one warm-up round)."""
    rows = [BARE, *("ccx " + " ".join(c) for c in COMMANDS)]
    seconds: dict[str, list[float]] = {row: [] for row in rows}
    for number in range(rounds + 1):
        turn = number % len(rows)
        for row in rows[turn:] + rows[:turn]:
            taken = _once(_argv(row))
            if number:  # round 0 warms the file cache
                seconds[row].append(taken)
    return {row: statistics.median(taken) for row, taken in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="runs of each row (default 15)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    medians = measure(options.rounds)
    load_after = os.getloadavg()[0]
    bare = medians[BARE]
    if options.json:
        print(json.dumps({"medians_s": medians, "load": [load_before, load_after]}, indent=2))
        return
    print(f"{cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{options.rounds} rounds; load average {load_before:.2f} before, {load_after:.2f} after")
    print()
    print("| command | median s | / python -c pass | <= 0.3 s |")
    print("|---|---:|---:|---|")
    for row, median in medians.items():
        met = "yes" if median <= TARGET_SECONDS else "**no**"
        print(f"| `{row}` | {median:.3f} | {median / bare:.1f} | {met} |")


if __name__ == "__main__":
    main()
