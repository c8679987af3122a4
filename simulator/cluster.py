"""The alliance's processes on this machine: one `ccx node serve` per city and one for the
alliance host, each a real process on its own loopback port with its own data folder
and database. Started, stopped (politely or with SIGKILL) and restarted by the run."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

__all__ = ["NodeProcess", "free_port", "new_admin_token"]

START_TIMEOUT = 60.0  # seconds for a node to answer /healthz (2 vCPU, six starting at once)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def new_admin_token() -> tuple[str, str]:
    """A fresh admin bearer token and the SHA-256 hex the node is configured with."""
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


@dataclass
class NodeProcess:
    """One node: ``env`` holds its CCX_* settings (secrets included: they go to the child's
    environment only, never to a command line, a log or the report)."""

    name: str
    port: int
    data_dir: Path
    env: dict[str, str]
    admin_token: str
    log_path: Path
    workers: int = 1  # uvicorn worker processes (``--workers``); more than 1 adds a supervisor
    log_level: str = "warning"  # uvicorn's (``info`` adds its start, stop and worker events)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Spawn ``python -m node serve`` (no access log: the run makes hundreds of
        thousands of requests; errors and warnings still go to the log file)."""
        if self.running:
            return
        self._log = self.log_path.open("ab")
        command = [
            sys.executable,
            "-m",
            "node",
            "serve",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            self.log_level,
        ]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        env = {**os.environ, **self.env}
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.starts += 1

    def wait_ready(self, timeout: float = START_TIMEOUT) -> float:
        """Block until /healthz answers; the seconds it took. RuntimeError with the log's
        tail if the process died or the time ran out."""
        started = time.monotonic()
        deadline = started + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                if not self.running:
                    raise RuntimeError(f"node {self.name} exited at start:\n{self.log_tail()}")
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {self.name} did not start:\n{self.log_tail()}")
                time.sleep(0.1)

    def stop(self, *, kill: bool = False, timeout: float = 15.0) -> None:
        """SIGTERM (uvicorn finishes requests in flight, and its supervisor stops the
        workers) or, with ``kill``, SIGKILL to the whole process group (the supervisor and
        every worker at once): a crash, nothing flushed. Waits for the process to end."""
        if self.process is not None and self.process.poll() is None:
            if kill:
                self._kill_group()
            else:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _kill_group(self) -> None:
        # start() made the process a session (and group) leader, so its group is it and
        # its workers; called only while it runs (not reaped), so the id is still ours
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
