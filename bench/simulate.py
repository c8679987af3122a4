"""The whole alliance's visits per second (`ccx simulate`), beside the same visits made to
bare service points, measured in one run.

Run from the repository root::

    .venv/bin/python bench/simulate.py [--residents N] [--visits N] [--quick] [--json]

a. the simulation: ``simulator.run.Simulation`` with its faults, five city nodes and
   the alliance host as processes (docs/SIMULATOR.md); its visits per second, the
   visits phase's wall time and the whole run's;
b. the reference: five bare FastAPI service points, one uvicorn worker each as the
   nodes have, that speak the visit's OpenID4VP 1.0 messages as the simulation's
   visits do (docs/SIMULATOR.md): ``POST /v1/presentation-requests`` answers a request,
   ``GET /oid4vp/requests/<id>`` a request object (one, signed once at start under a
   throwaway CA), ``POST /oid4vp/responses/<tx>`` ``{}`` and ``GET
   /v1/presentation-requests/<tx>`` a grant; nothing else (no database, no
   credentials, no decryption, no checks). The same client (``simulator.api.Api``), the
   same number of visits in flight, and the same wallet's work per visit (the request
   object's chain and signature checked, a real presentation of a real attestation,
   encrypted to the request's key), for ``--reference-seconds`` before the simulation
   and again after it; the rate is the mean of the two.

simulation / reference says what the nodes' work costs beyond HTTP and the holder on
this machine. The target: 100,000 visits in at most 300 s (333 visits/s). Figures are
for one machine in one run; everything shares it. This is a script, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The repository root, so that the script runs from anywhere without an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _machine import cpu_model  # bench/ is on sys.path as the script's folder
from fastapi import Request  # module level: the bare routes' annotations name them
from fastapi.responses import Response
from issue_http import Server, start_server

import protocol as P
from keys import generate_key
from simulator.api import Api
from simulator.run import Options, Simulation
from wallet._oid4vp import available_claims, response_form

TARGET_VISITS, TARGET_SECONDS = 100_000, 300.0
CITIES = 5
THRESHOLDS = (550, 600, 650, 700, 750)


# --- the bare service point (``--serve echo`` runs one in this process) ---------------------

SCENARIO = "bike_deposit_free"
TIER = {"name": "standard", "benefit": "-", "benefit_zh": "-", "alliance_min": 600,
        "disclose": "score_at_least.600", "credit_limit_cny": None}  # fmt: skip
SERVICE_TOKEN = "bare"  # noqa: S105 (the bare service points check no credentials)
VERIFIER_CA_KEY = "CCX_BENCH_CA_KEY"  # the throwaway CA, PKCS#8 DER in base64url: env only


def _ca() -> tuple[Any, bytes]:
    """The throwaway CA of the bare service points (its key from the parent's env)."""
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    key = load_der_private_key(P.b64url_decode(os.environ[VERIFIER_CA_KEY]), password=None)
    now = int(time.time())
    return key, P.ca_certificate(key, name="bench CA", not_before=now - 86400,  # type: ignore[arg-type]
                                 not_after=now + 86400, serial=1)  # fmt: skip


def serve(port: int) -> None:
    import uvicorn
    from cryptography.hazmat.primitives.asymmetric import ec
    from fastapi import FastAPI

    app = FastAPI(title="bare service point")
    base = f"http://127.0.0.1:{port}"
    ca_key, ca_der = _ca()
    leaf_key, enc_key = generate_key("ES256"), ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    leaf = P.leaf_certificate(ca_key, ca_der, leaf_key.public_key(), uri=base, name="bench",
                              not_before=now - 86400, not_after=now + 86400, serial=2)  # fmt: skip
    client_id = P.client_id_for(leaf)
    request_object = P.sign_request_object(
        {
            "aud": P.SELF_ISSUED_AUDIENCE, "client_id": client_id, "response_type": "vp_token",
            "response_mode": "direct_post.jwt", "response_uri": f"{base}/oid4vp/responses/tx",
            "nonce": secrets.token_urlsafe(32), "state": secrets.token_urlsafe(32),
            "dcql_query": P.tiered_dcql_query(["score_at_least.600"], []),
            "client_metadata": {
                "jwks": {"keys": [{**P.public_jwk(enc_key.public_key()), "kid": "enc-1",
                                   "use": "enc", "alg": "ECDH-ES"}]},
                "encrypted_response_enc_values_supported": ["A128GCM", "A256GCM"],
            },
            "iat": now, "exp": now + 86400,
        },
        leaf_key, [leaf],
    )  # fmt: skip
    made = {
        "transaction_id": "tx", "request_uri": f"{base}/oid4vp/requests/r",
        "request": "openid4vp://?client_id=...", "client_id": client_id,
        "response_mode": "direct_post.jwt", "expires_at": now + 86400, "scenario": SCENARIO,
        "name_zh": "-", "name_en": "-", "disclose": ["score_at_least.600"], "tiers": [TIER],
    }  # fmt: skip
    granted = {"scenario": SCENARIO, "outcome": "granted", "tier": "standard", "reasons": [],
               "issuer": "http://127.0.0.1", "issuer_city": "xiamen", "audit_seq": 1}  # fmt: skip

    @app.post("/v1/presentation-requests", status_code=201)
    async def ask(request: Request) -> dict[str, Any]:
        await request.body()
        return made

    @app.get("/oid4vp/requests/{request_id}")
    async def fetch(request_id: str) -> Response:
        return Response(request_object, media_type="application/oauth-authz-req+jwt")

    @app.post("/oid4vp/responses/{transaction_id}")
    async def respond(transaction_id: str, request: Request) -> dict[str, Any]:
        await request.body()
        return {}

    @app.get("/v1/presentation-requests/{transaction_id}")
    async def outcome(transaction_id: str) -> dict[str, Any]:
        return granted

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the reference run ---------------------------------------------------------------------


def holder() -> tuple[str, Any]:
    """A real attestation (signed with a throwaway key) and its holder key."""
    issuer, holder_key = generate_key("ES256"), generate_key("ES256")
    now = int(time.time())
    attestation = P.issue_attestation(
        {
            "iss": "http://127.0.0.1",
            "exp": now + 30 * 86400,
            "alliance": "https://alliance.bench.example",
            "mapping": {"city": "xiamen", "version": 1, "sha256": "0" * 64},
            "status": {"idx": 7, "uri": "http://127.0.0.1/v1/status-lists/1"},
            "alliance_score": 672,
            "band": "good",
            "thresholds": THRESHOLDS,
            "local_score": 731,
            "local_scale": {"name": "bench", "min": 0, "max": 1000, "step": 1},
            "score_date": time.strftime("%Y-%m-%d", time.gmtime(now)),
        },
        issuer_key=issuer,
        kid=P.jwk_thumbprint(P.public_jwk(issuer)),
        holder_jwk=P.public_jwk(holder_key),
        now=now,
    )
    return attestation, holder_key


async def reference(
    servers: list[Server], seconds: float, concurrency: int, ca_der: bytes
) -> float:
    """Visits per second against the bare service points, each visit as
    simulator.world.World.visit makes it: ask, fetch and check the request object,
    answer (present, encrypt), read the outcome."""
    attestation, key = holder()
    claims = available_claims(attestation)  # what her wallet could disclose
    done = 0
    async with Api(connections=concurrency * 2) as api:
        deadline = time.monotonic() + seconds
        started = time.monotonic()

        async def worker(index: int) -> None:
            nonlocal done
            while time.monotonic() < deadline:
                base = servers[(index + done) % len(servers)].url
                _, made = await api.call(
                    "POST", base, "/v1/presentation-requests", token=SERVICE_TOKEN,
                    body={"scenario": SCENARIO, "response_mode": "direct_post.jwt"},
                )  # fmt: skip
                parts = urlsplit(made["request_uri"])
                _, token = await api.call("GET", base, parts.path, text=True)
                request = P.verify_request_object(
                    token, client_id=made["client_id"], anchors=[ca_der], now=int(time.time())
                )
                presentation = P.present(
                    attestation, disclose=list(request.disclosures_for(claims)),
                    holder_key=key, aud=request.claims["client_id"],
                    nonce=request.claims["nonce"], now=int(time.time()),
                )  # fmt: skip
                form = response_form(request, presentation)
                await api.call("POST", base, urlsplit(request.claims["response_uri"]).path,
                               form=form)  # fmt: skip
                await api.call("GET", base, f"/v1/presentation-requests/{made['transaction_id']}",
                               token=SERVICE_TOKEN)  # fmt: skip
                done += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return done / (time.monotonic() - started)


def measure_reference(seconds: float, concurrency: int) -> float:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    ca_key = generate_key("ES256")
    env = {VERIFIER_CA_KEY: P.b64url_encode(ca_key.private_bytes(
        Encoding.DER, PrivateFormat.PKCS8, NoEncryption()))}  # fmt: skip
    os.environ.update(env)  # for _ca() here, as the servers get it
    _, ca_der = _ca()
    servers = [
        start_server("echo", env, 0, script=__file__, name=f"echo{i}") for i in range(CITIES)
    ]
    try:
        return asyncio.run(reference(servers, seconds, concurrency, ca_der))
    finally:
        for server in servers:
            server.stop()


# --- the measurement ------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    before = measure_reference(args.reference_seconds, args.concurrency)
    with tempfile.TemporaryDirectory(prefix="ccx-bench-simulate-") as folder:
        options = Options(
            residents=args.residents,
            visits=args.visits,
            concurrency=args.concurrency,
            out=Path(folder),
            progress=False,
        )
        result = Simulation(options).run()
    after = measure_reference(args.reference_seconds, args.concurrency)
    reference_rate = (before + after) / 2
    return {
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "residents": args.residents,
        "visits": len(result.visits),
        "concurrency": args.concurrency,
        "visits_seconds": result.visits_seconds,
        "visits_per_second": result.visits_per_second,
        "total_seconds": result.total_seconds,
        "phases": result.phases,
        "invariants_ok": all(i.ok for i in result.invariants),
        "faults_ok": all(f.ok for f in result.faults),
        "reference_per_second": reference_rate,
        "reference_before_after": [before, after],
        "ratio": result.visits_per_second / reference_rate,
        "target_per_second": TARGET_VISITS / TARGET_SECONDS,
    }


def report(result: dict[str, Any]) -> None:
    print(
        f"{result['machine']}; {result['residents']:,} residents, {result['visits']:,} visits, "
        f"{result['concurrency']} in flight"
    )
    for phase, seconds in result["phases"].items():
        print(f"  {phase:<55} {seconds:8.1f} s")
    print(f"simulation: {result['visits_per_second']:.1f} visits/s; visits phase "
          f"{result['visits_seconds']:.1f} s, whole run {result['total_seconds']:.1f} s; "
          f"invariants {'all hold' if result['invariants_ok'] else 'FAILED'}, faults "
          f"{'as expected' if result['faults_ok'] else 'NOT as expected'}")  # fmt: skip
    before, after = result["reference_before_after"]
    print(f"reference, bare service points with the same client and holder work: "
          f"{result['reference_per_second']:.1f} visits/s (before {before:.1f}, after {after:.1f})")  # fmt: skip
    met = result["visits_per_second"] >= result["target_per_second"]
    print(
        f"simulation / reference: {result['ratio']:.2f}; target {TARGET_VISITS:,} visits in "
        f"<= {TARGET_SECONDS:.0f} s ({result['target_per_second']:.0f}/s): "
        f"{'met' if met else 'MISSED'} (at this rate {TARGET_VISITS:,} visits take "
        f"{TARGET_VISITS / result['visits_per_second']:.0f} s)"
    )


def main() -> None:
    if "--serve" in sys.argv:  # a bare service point, started by measure_reference
        parser = argparse.ArgumentParser()
        parser.add_argument("--serve", choices=["echo"], required=True)
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--clock-offset", type=int, default=0)
        serve(parser.parse_args().port)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=200_000)
    parser.add_argument("--visits", type=int, default=TARGET_VISITS)
    parser.add_argument("--concurrency", type=int, default=16, help="visits in flight")
    parser.add_argument("--reference-seconds", type=float, default=20.0, help="per reference turn")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 5,000 residents, 3,000 visits"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    if args.quick:
        args.residents, args.visits, args.reference_seconds = 5_000, 3_000, 5.0
    result = measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)


if __name__ == "__main__":
    main()
