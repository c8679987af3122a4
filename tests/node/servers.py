"""Real nodes on real loopback ports, for tests that need real HTTP between processes'
parts (a wallet, another city's node, the alliance host)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

__all__ = ["RunningNode", "WorldClock", "free_port"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class WorldClock:
    """The time of a world of nodes served over loopback, stopped where the test puts it:
    every node (``create_app(..., now=clock)``), the registry, the holders' proofs and
    presentations read it, so the test passes on any day."""

    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += seconds


class RunningNode:
    """A node app served by uvicorn in a thread; ``url`` is its base URL."""

    def __init__(
        self, app: Any, port: int | None = None, *, tls: tuple[str, str] | None = None
    ) -> None:
        """``tls``: (certificate chain, key) PEM files to serve HTTPS with, as
        https://localhost:<port> (the name a test certificate carries)."""
        self.app = app
        self.port = port if port is not None else free_port()
        self.url = f"https://localhost:{self.port}" if tls else f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningNode:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the node did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
