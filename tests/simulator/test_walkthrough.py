"""`ccx demo` runs end to end and reports each refusal with its code."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_and_refuses_tampered_and_replayed_presentations() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ccx", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "what the verifier learns: {'score_at_least': {'650': True}}" in out
    assert "code 'unreferenced_disclosure'" in out
    assert "code 'invalid_signature'" in out
    assert "code 'nonce_mismatch'" in out
    assert "ACCEPTED" not in out


def test_ccx_help_lists_the_demo() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ccx", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "demo" in result.stdout
