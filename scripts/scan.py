#!/usr/bin/env python3
"""An external scanner against a running node: schemathesis (`st run`) with its coverage,
fuzzing and stateful phases (the stateful phase follows the OpenAPI links of
node/openapi_links.py), once per audience with that audience's credentials, against a
city node of a small simulated alliance (a registry in effect, a mapping table, the
development identity provider), on loopback.

    .venv/bin/python scripts/scan.py [--max-examples 50]        (make scan)

Exit status 1 if schemathesis reports a failure. Its default checks run, but for these,
and what node does by design is said per operation in scripts/scan.toml:
- ``ignored_auth``: each run sends one audience's credentials to every operation of that
  audience only; the refusal of the others' credentials is tests/fuzz's job, per operation;
- ``positive_data_acceptance``: the OAuth endpoints answer a well-formed but wrong request
  400 (RFC 6749 section 5.2), and some rules are no JSON Schema (a recipient list is
  "alliance" alone or members' URLs; a key must be P-256 or Ed25519): schemathesis counts
  those as "schema-valid data rejected". What remains (server errors, 5xx, schema-violating
  answers, bodies that don't match the document, missing headers, use after free,
  resources that vanish) is kept.
Findings and fixes: docs/SECURITY.md, "An external scanner".
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from simulator.world import City

ROOT = Path(__file__).resolve().parent.parent
EXCLUDED_CHECKS = "ignored_auth,positive_data_acceptance"
PHASES = "coverage,fuzzing,stateful"
# each audience's paths (regular expressions over the path), the admin's last: its
# operations revoke clients and rotate keys, which would leave the others' tokens dead
AUDIENCES = {
    "department": r"^/v1/records",
    "service_point": r"^/v1/(verifications|presentation-requests|service-point)",
    "resident": r"^/v1/me/",
    "public": r"^/(oid4vci|oid4vp|dev-idp|\.well-known|v1/status-lists|v1/alliance|healthz|readyz)",
    "admin": r"^/v1/admin/",
}


def credentials(city: City, kiosk_token: str, resident: str) -> dict[str, str | None]:
    """A bearer token for each audience, made through the node's own API."""
    url = city.node.url
    admin = city.node.admin_token
    made = httpx.post(f"{url}/v1/admin/clients", headers={"Authorization": f"Bearer {admin}"},
                      json={"id": "scanner-department", "department": "tax",
                            "scopes": ["records:push"]}, timeout=10)  # fmt: skip
    made.raise_for_status()
    login = httpx.post(f"{url}/dev-idp/token", json={"subject": resident}, timeout=10)
    login.raise_for_status()
    return {
        "department": made.json()["token"],
        "service_point": kiosk_token,
        "resident": login.json()["access_token"],
        "public": None,
        "admin": admin,
    }


def phases(audience: str) -> str:
    """The stateful phase only where a link starts among the audience's operations (without
    one, schemathesis reports the phase as an error)."""
    from node.openapi_links import LINKS

    linked = any(re.match(AUDIENCES[audience], link.source[0]) for link in LINKS)
    return PHASES if linked else PHASES.removesuffix(",stateful")


def scan(url: str, audience: str, token: str | None, max_examples: int, report: Path) -> int:
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    command = [st, "--config-file", str(ROOT / "scripts" / "scan.toml"), "run", f"{url}/openapi.json", "--include-path-regex", AUDIENCES[audience],
               "--phases", phases(audience), "--exclude-checks", EXCLUDED_CHECKS,
               "--max-examples", str(max_examples), "--seed", "2026",
               "--report", "junit", "--report-dir", str(report / audience)]  # fmt: skip
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    print(f"== {audience}: st run ... --include-path-regex '{AUDIENCES[audience]}'", flush=True)
    hooks = {**os.environ, "SCHEMATHESIS_HOOKS": "scripts.scan_hooks", "PYTHONPATH": str(ROOT)}
    report.mkdir(parents=True, exist_ok=True)  # schemathesis keeps its cache where it runs
    return subprocess.run(command, check=False, env=hooks, cwd=report).returncode  # noqa: S603


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=50,
                        help="examples per operation and phase (default 50)")  # fmt: skip
    parser.add_argument("--audience", action="append", choices=sorted(AUDIENCES),
                        help="scan only these audiences (repeatable; default all)")  # fmt: skip
    parser.add_argument("--report", type=Path, default=ROOT / "scan-report",
                        help="where the JUnit reports go (default scan-report/)")  # fmt: skip
    args = parser.parse_args(argv)
    from rich.console import Console

    from simulator.run import Options, Simulation
    from simulator.serve import start_pages

    failed: list[str] = []
    with tempfile.TemporaryDirectory() as work:
        options = Options(residents=200, visits=50, cities=("xiamen", "fuzhou"), faults=False,
                          out=Path(work) / "simulation", progress=False)  # fmt: skip
        simulation = Simulation(options, Console(file=sys.stderr))
        simulation.run()
        saved = {k: v for k, v in os.environ.items() if k.startswith("CCX_")}
        try:
            served = start_pages(simulation)
            xiamen = simulation.cities["xiamen"]
            desk = next(one for one in served if one.city == "xiamen")
            tokens = credentials(xiamen, desk.kiosk_token, desk.resident)
            for audience, token in tokens.items():
                if args.audience and audience not in args.audience:
                    continue
                if scan(xiamen.node.url, audience, token, args.max_examples, args.report):
                    failed.append(audience)
        finally:
            simulation.stop_all()
            os.environ.update(saved)
    print(f"scan: {'failures for ' + ', '.join(failed) if failed else 'no failure'}"
          f" (reports in {args.report})")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
