"""The resident's home node, over HTTP (docs/ISSUING.md, "A resident gets an
attestation"): log in (the development identity provider, or a token of the city's),
ask for a nonce, sign the proof of possession, take the attestation. A refusal of the
node becomes ``cli.InputError`` with the node's own code and message."""

from __future__ import annotations

import json
from typing import Any

import httpx

import protocol as P
from cli import NODE_TIMEOUT, InputError, call_node, node_client
from protocol._jws import sign_jws

__all__ = ["NODE_TIMEOUT", "fetch_attestation"]


def _call(client: httpx.Client, path: str, body: Any = None, token: str | None = None) -> Any:
    try:
        return call_node(client, "POST", path, json=body, token=token, auth_field="--node")
    except InputError as exc:  # not_a_node is told apart first: a URL with /v1 is a 404 too
        if path.startswith("dev-idp") and exc.code in ("not_found", "http_404"):
            base = str(client.base_url).rstrip("/")
            raise InputError(
                "no_dev_idp",
                "--dev-subject",
                f"{base} has no development identity provider (CCX_DEV_IDP is off); "
                "log in with --token",
            ) from exc
        raise


def fetch_attestation(
    node: str, token: str | None, subject: str | None, key: P.PrivateKey, now: int
) -> Any:
    """ISSUING.md "A resident gets an attestation": nonce, proof of possession, attestation."""
    with node_client(node) as client:
        if token is None:
            assert subject is not None
            token = str(_call(client, "dev-idp/token", {"subject": subject})["access_token"])
        challenge = _call(client, "v1/me/attestations/nonce", token=token)
        try:
            payload = {"nonce": challenge["nonce"], "aud": challenge["aud"], "iat": now}
        except (KeyError, TypeError) as exc:
            raise InputError("invalid_response", "--node", f"the nonce answer lacks {exc}") from exc
        proof = sign_jws(
            {"typ": challenge.get("typ", "pop+jwt")}, json.dumps(payload).encode("utf-8"), key
        )
        return _call(
            client,
            "v1/me/attestations",
            {"holder_jwk": P.public_jwk(key), "proof": proof},
            token=token,
        )
