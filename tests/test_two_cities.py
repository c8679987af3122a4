"""Issue 20: the newcomer's story in docs/TWO-CITIES.md runs exactly as written.

Every ``sh`` block of the document, in order, in one bash (``set -euo pipefail``: a
command that fails stops the story), in an empty folder with ``ccx`` on the PATH and no
CCX_* variable of ours: three real nodes on ports 8000-8002, the alliance's commands,
a department's push, her consents, the wallet, the kiosk; granted, then refused after
the consent is withdrawn. The clock of the shell and of every process it starts is the
test's (libfaketime from scripts/a-year-ahead, starting at tests.conftest.NOW and running
on), so the story's ``date +%s`` and the nodes read the same day whatever today is."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import NOW
from tests.test_docs import _blocks

ROOT = Path(__file__).parent.parent
DOCUMENT = ROOT / "docs" / "TWO-CITIES.md"
PORTS = (8000, 8001, 8002)  # as the document names them
STORY_TIMEOUT = 300  # seconds; the story takes about 40 on this machine


def _story() -> str:
    return "\n".join(body for lang, body, _ in _blocks(DOCUMENT.read_text("utf-8")) if lang == "sh")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_story_is_the_whole_walk_from_an_empty_folder_to_a_refusal() -> None:
    story = _story()
    assert story.startswith("export CCX_KEYRING_PASSPHRASE=")  # nothing before it
    for step in ("ccx node admin-token", "ccx records push", "ccx wallet consent grant",
                 "ccx wallet authorize", "ccx kiosk request", "ccx wallet answer",
                 "ccx kiosk decision", "ccx wallet consent withdraw"):  # fmt: skip
        assert step in story, step
    assert story.rindex("ccx kiosk decision") > story.index("ccx wallet consent withdraw")


def test_the_two_cities_story_runs_as_written(tmp_path: Path) -> None:
    busy = [port for port in PORTS if _listening(port)]
    assert not busy, f"the story needs ports {PORTS} free; in use: {busy}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCX_", "FAKETIME"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(tmp_path),  # the wallet's default folder and any dotfile stay here
        TZ="UTC",
        FAKETIME_DONT_FAKE_MONOTONIC="1",  # timed waits of locks keep the real time
    )
    start = datetime.fromtimestamp(NOW, UTC).strftime("@%Y-%m-%d %H:%M:%S")
    harness = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
    process = subprocess.Popen(  # noqa: S603 (our own script and document)
        ["/bin/bash", str(ROOT / "scripts" / "a-year-ahead"), start, "/bin/bash", "-c",
         harness + _story()],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=STORY_TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # the nodes, should the story stop early
    logs = "".join(
        f"\n--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted(tmp_path.glob("*.log"))
    )
    assert process.returncode == 0, output[-6000:] + logs
    lines = output.splitlines()
    # the clock is the test's: her attestation lives until after the next monthly
    # recompute (plus a grace of days) from NOW, not from today
    taken = re.search(r"^attestation 1: http://127\.0\.0\.1:8002, band \w+, expires (\S+)$",
                      output, re.MULTILINE)  # fmt: skip
    assert taken, output[-6000:]
    expires = datetime.strptime(taken.group(1), "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    assert NOW < expires < NOW + 50 * 86400
    assert "12 rows: 12 stored, 0 duplicate, 0 refused" in lines
    assert "ready, registry version 1" in lines
    granted = lines.index("granted: library_deposit_free")
    denied = lines.index("denied: library_deposit_free")
    assert granted < denied
    assert (
        lines[granted + 1] == "  tier standard: Borrow up to 10 books without the 100 CNY deposit"
    )
    assert "withdrew share_alliance; 1 attestation(s) revoked" in lines[granted:denied]
    assert lines[denied + 1].startswith("  [attestation_revoked] ")
    for _ in range(100):  # the story's last line stops its nodes: they close within seconds
        if not any(_listening(port) for port in PORTS):
            break
        time.sleep(0.1)
    assert not any(_listening(port) for port in PORTS), "the story's last line stops its nodes"
