"""`ccx simulate --serve`: after the run, start the alliance again with its data and keep
it up with its pages until Ctrl-C, so that a person can walk the story by hand (README,
docs/PAGES.md): the alliance dashboard, each city's resident page and kiosk, the web
wallet. Only public HTTP APIs (the admin's client route for a fresh kiosk token)."""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass

import httpx
from rich.console import Console
from rich.table import Table

from simulator.world import City, World

__all__ = ["Served", "print_pages", "serve", "start_pages"]

KIOSK_CLIENT = "kiosk"


@dataclass(frozen=True)
class Served:
    city: str
    url: str
    resident: str  # a resident with a score and both consents: the one to log in as
    kiosk_token: str


def _example_resident(city: City) -> str:
    """A holder (she consented and took a credential in the run) of a good standing, else
    any resident with a score."""
    holders = sorted(city.holders, key=lambda h: (h.withdrawn_at is not None, -h.percentile))
    if holders:
        return holders[0].resident
    return city.scored_residents()[0]


def start_pages(world: World) -> list[Served]:
    """Start every node again (their data is kept in OUT/run) and give each city's kiosk
    a service point of its own; blocks until they are ready."""
    for node in world.processes():
        node.start()
    for node in world.processes():
        node.wait_ready()
    served = []
    with httpx.Client(timeout=10.0) as http:
        for city in world.cities.values():
            scopes = sorted({*world.result.scenarios})
            answer = http.post(
                f"{city.node.url}/v1/admin/clients",
                json={"id": f"{KIOSK_CLIENT}-{secrets.token_hex(3)}", "department": "services",
                      "scopes": [f"verify:{kind}" for kind in scopes]},
                headers={"Authorization": f"Bearer {city.node.admin_token}"},
            )  # fmt: skip
            answer.raise_for_status()
            served.append(
                Served(city.name, city.node.url, _example_resident(city), answer.json()["token"])
            )
    return served


def print_pages(world: World, served: list[Served], console: Console) -> None:
    assert world.host is not None
    console.print()
    console.print("[bold]The alliance is up with its pages[/bold] (Ctrl-C stops it):")
    console.print(f"  alliance dashboard  {world.host.url}/alliance/")
    table = Table("city", "resident page (log in as)", "kiosk (service point token)", box=None)
    for one in served:
        table.add_row(
            one.city, f"{one.url}/me/  ({one.resident})", f"{one.url}/kiosk/  ({one.kiosk_token})"
        )
    console.print(table)
    console.print(
        "  web wallet          every node serves it at /wallet/: use the one of the "
        "resident's home node (her page's offer link opens it there), then paste a kiosk's "
        "link into it or scan the kiosk's QR code with it"
    )


def serve(world: World, console: Console, stop: threading.Event | None = None) -> None:
    """Start the pages, print where they are, wait for Ctrl-C (or ``stop``), stop. The
    operator's own CCX_* settings are kept from the nodes, as during the run."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("CCX_")}
    for name in saved:
        del os.environ[name]
    try:
        print_pages(world, start_pages(world), console)
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        console.print("stopping the alliance")
    finally:
        world.stop_all()
        os.environ.update(saved)
