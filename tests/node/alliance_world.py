"""An alliance host and its members on loopback, for the alliance dashboard's tests (issue
16; tests/node/test_alliance_dashboard.py, tests/pages/test_dashboard.py).

The alliance is made by ``ccx alliance`` at the tests' clock: Xiamen, Fuzhou and
Zhangzhou admitted and published (version 1), their mapping tables (mappings/tables/,
signed with the alliance root key) attached and published (version 2), Zhangzhou
suspended and published (version 3). The members' nodes show each state the dashboard
tells apart: Xiamen follows the host's registry and is ready; Fuzhou pins the root key
but fetches no registry, so its /readyz answers 503 (registry check failing); Zhangzhou's
node is not running at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from alliance.cli import alliance_app
from alliance.mapping_cli import PASSPHRASE_ENV
from keys import Keyring
from mappings import MappingTable
from node.app import create_app, initialize_node
from node.settings import Settings
from tests.conftest import ALLIANCE, METRICS_TOKEN_HASH, NOW
from tests.node.servers import RunningNode, WorldClock, free_port

__all__ = [
    "CITIES",
    "PASSPHRASE",
    "START",
    "TABLES",
    "AllianceWorld",
    "alliance_world",
    "run_alliance",
]

PASSPHRASE = "an alliance passphrase for the dashboard"
TABLES = Path(__file__).parent.parent.parent / "mappings" / "tables"
CITIES = {"xiamen": "Xiamen", "fuzhou": "Fuzhou", "zhangzhou": "Zhangzhou"}
START = NOW + 600  # the world's clock once the three versions are out


def run_alliance(folder: Path, *args: str | Path, now: int = NOW) -> None:
    """``ccx alliance <args>`` on ``folder`` at ``now``; fails the test if it fails."""
    argv = [str(a) for a in args]
    if argv[0] != "init":
        argv += ["--dir", str(folder)]
    if argv[0] in ("init", "keys", "table", "publish", "show"):  # the timed commands
        argv += ["--now", str(now)]
    result = CliRunner().invoke(alliance_app, argv, env={PASSPHRASE_ENV: PASSPHRASE})
    assert result.exit_code == 0, result.output


def member_settings(folder: Path, city: str, port: int, **overrides: Any) -> Settings:
    return Settings(
        data_dir=folder,
        node_id=f"http://127.0.0.1:{port}",
        city=city,
        scheduler=False,
        dev_idp=True,
        keyring_passphrase="a node passphrase for tests",  # type: ignore[arg-type]
        metrics_token_hash=METRICS_TOKEN_HASH,
        **overrides,
    )


def make_alliance(folder: Path, members: dict[str, Settings]) -> None:
    """The three versions described above, in ``folder``."""
    run_alliance(folder, "init", "--id", ALLIANCE, "--dir", folder)
    for city, settings in members.items():
        ring = initialize_node(settings, now=NOW)
        jwks = folder.parent / f"{city}.jwks.json"
        jwks.write_text(json.dumps(ring.jwks(NOW)))
        run_alliance(
            folder, "admit", "--member-id", settings.node_id, "--name", CITIES[city],
            "--city", city, "--jwks", jwks,
        )  # fmt: skip
    run_alliance(folder, "publish", "--lifetime", "30d")
    root = Keyring.load((folder / "root.keyring.json").read_bytes(), PASSPHRASE.encode())
    for city in members:
        claims = json.loads((TABLES / f"{city}.table.json").read_bytes())
        signed = MappingTable.from_claims(claims).sign(
            alliance=ALLIANCE, key=root.active.private_key, now=NOW
        )
        path = folder.parent / f"{city}.table.jwt"
        path.write_text(signed)
        uri = f"{ALLIANCE}/tables/{city}.v{claims['version']}.table.jwt"
        run_alliance(folder, "table", "--file", path, "--uri", uri, now=NOW + 60)
    run_alliance(folder, "publish", "--lifetime", "30d", now=NOW + 60)
    run_alliance(folder, "suspend", "--member-id", members["zhangzhou"].node_id)
    run_alliance(folder, "publish", "--lifetime", "30d", now=NOW + 120)


@dataclass
class AllianceWorld:
    folder: Path
    clock: WorldClock
    host: RunningNode
    members: dict[str, Settings]
    running: dict[str, RunningNode]

    def wait_until_ready(self, city: str, version: int = 3) -> None:
        """Until ``city``'s node holds registry ``version`` in effect (it fetches on start)."""
        node = self.running[city]
        for _ in range(200):
            body = httpx.get(f"{node.url}/readyz").json()
            if body.get("status") == "ready" and body["registry"]["version"] == version:
                return
            time.sleep(0.05)
        raise AssertionError(f"{city} did not become ready: {body}")


@contextmanager
def alliance_world(tmp_path: Path) -> Iterator[AllianceWorld]:
    """The alliance folder, the host serving it, Xiamen (ready) and Fuzhou (not ready)
    running, Zhangzhou admitted but not running; the clock at ``START``."""
    folder = tmp_path / "alliance"
    ports = {city: free_port() for city in ("host", *CITIES)}
    members = {city: member_settings(tmp_path / city, city, ports[city]) for city in CITIES}
    make_alliance(folder, members)
    clock = WorldClock(START)
    host_settings = member_settings(
        tmp_path / "host", "hangzhou", ports["host"], alliance_dir=folder
    )
    initialize_node(host_settings, now=NOW)
    root_jwk = str(folder / "root.jwk")
    registry_url = f"http://127.0.0.1:{ports['host']}/v1/alliance/registry"
    xiamen = members["xiamen"].model_copy(
        update={"alliance_root_jwk": root_jwk, "registry_url": registry_url}
    )
    fuzhou = members["fuzhou"].model_copy(update={"alliance_root_jwk": root_jwk})
    with ExitStack() as stack:
        host = stack.enter_context(RunningNode(create_app(host_settings, now=clock), ports["host"]))
        running = {
            city: stack.enter_context(RunningNode(create_app(settings, now=clock), ports[city]))
            for city, settings in (("xiamen", xiamen), ("fuzhou", fuzhou))
        }
        world = AllianceWorld(folder, clock, host, members, running)
        world.wait_until_ready("xiamen")
        yield world
