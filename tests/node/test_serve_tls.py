"""`ccx node serve` over HTTPS (CCX_TLS_CERTFILE, CCX_TLS_KEYFILE): what wallets and the
OpenID4VC peers need, since the specs ask for TLS and openvc-core refuses http issuers."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from node.app import initialize_node
from node.settings import Settings
from tests.conftest import NOW
from tests.node.servers import free_port
from tests.pki import make_ca, tls_leaf

PASSPHRASE = "a passphrase for the TLS test"


def test_serve_answers_over_https_with_the_configured_certificate(tmp_path: Path) -> None:
    ca = make_ca()
    cert, key = tls_leaf(ca).write(tmp_path / "tls", "node")
    ca_file, _ = ca.write(tmp_path / "tls", "ca")
    trust = ssl.create_default_context(cafile=str(ca_file))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CCX_")},
        "CCX_DATA_DIR": str(tmp_path / "node"),
        "CCX_NODE_ID": f"https://localhost:{port}",
        "CCX_KEYRING_PASSPHRASE": PASSPHRASE,
        "CCX_SCHEDULER": "false",
        "CCX_TLS_CERTFILE": str(cert),
        "CCX_TLS_KEYFILE": str(key),
    }
    initialize_node(
        Settings(data_dir=tmp_path / "node", keyring_passphrase=PASSPHRASE),  # type: ignore[arg-type]
        now=NOW,
    )
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "node", "serve", "--port", str(port), "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"https://localhost:{port}/healthz", verify=trust)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok"}
        with pytest.raises(httpx.ConnectError):  # not a certificate this client trusts
            httpx.get(f"https://localhost:{port}/healthz", verify=True)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_certificate_without_its_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="tls_certfile and tls_keyfile go together"):
        Settings(tls_certfile=Path("node.pem"))
