"""The resident's home node, over HTTP (docs/ISSUING.md, "A resident gets an
attestation"): log in (the development identity provider, or a token of the city's),
ask for a nonce, sign the proof of possession, take the attestation. A refusal of the
node becomes ``cli.InputError`` with the node's own code and message."""

from __future__ import annotations

import json
from typing import Any

import httpx

import protocol as P
from cli import InputError
from protocol._jws import sign_jws

__all__ = ["NODE_TIMEOUT", "fetch_attestation"]

NODE_TIMEOUT = 10.0  # seconds for each request to the home node


def _node_error(response: httpx.Response, url: str) -> InputError:
    """A refusal from the node as the user's error line: its code and message."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        details = error.get("details")
    except (ValueError, KeyError, TypeError):
        code = f"http_{response.status_code}"
        message = f"{url} answered {response.status_code} {response.reason_phrase}"
        details = None
    missing = details.get("missing") if isinstance(details, dict) else None
    # the node's message may name them already (issue 20: the list said twice)
    if isinstance(missing, list) and not all(str(kind) in message for kind in missing):
        message += f" (missing: {', '.join(map(str, missing))})"
    return InputError(code, "--node", message)


def _base(client: httpx.Client) -> str:
    """The node's base URL as the user gave it, without a trailing slash."""
    return str(client.base_url).rstrip("/")


def _url(client: httpx.Client, path: str) -> str:
    """The URL ``client`` sends ``path`` to (issue 20: not ``...:8009dev-idp/token``)."""
    return f"{_base(client)}/{path.lstrip('/')}"


def _is_a_node(client: httpx.Client) -> bool:
    """Whether a ccx node answers at the client's base URL (its ``/healthz``)."""
    try:
        answer = client.get("/healthz")
        return answer.status_code == 200 and answer.json() == {"status": "ok"}
    except (httpx.HTTPError, ValueError):
        return False


def _no_node_here(client: httpx.Client) -> InputError:
    base = _base(client)
    hint = "a node's URL is its base, without /v1"
    if base.endswith("/v1"):
        hint += f": --node {base.removesuffix('/v1')}"
    return InputError(
        "not_a_node",
        "--node",
        f"no ccx node answers at {base} (no /healthz): is the path right? {hint}",
    )


def _call(client: httpx.Client, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url = _url(client, path)
    try:
        response = client.post(path, json=body, headers=headers)
    except httpx.TransportError as exc:
        raise InputError(
            "node_unreachable", "--node", f"cannot reach {url}: {exc or type(exc).__name__}"
        ) from exc
    if response.status_code == 404 and not _is_a_node(client):
        raise _no_node_here(client)
    if response.status_code == 404 and path.startswith("/dev-idp"):
        raise InputError(
            "no_dev_idp",
            "--dev-subject",
            f"{_base(client)} has no development identity provider (CCX_DEV_IDP is off); "
            "log in with --token",
        )
    if not response.is_success:
        raise _node_error(response, url)
    try:
        return response.json()
    except ValueError as exc:
        raise InputError("invalid_response", "--node", f"{url} did not answer JSON") from exc


def fetch_attestation(
    node: str, token: str | None, subject: str | None, key: P.PrivateKey, now: int
) -> Any:
    """ISSUING.md "A resident gets an attestation": nonce, proof of possession, attestation."""
    try:
        client = httpx.Client(base_url=node, timeout=NODE_TIMEOUT)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InputError("invalid_url", "--node", f"{node!r} is not a URL: {exc}") from exc
    with client:
        if token is None:
            assert subject is not None
            token = str(_call(client, "/dev-idp/token", {"subject": subject})["access_token"])
        challenge = _call(client, "/v1/me/attestations/nonce", token=token)
        try:
            payload = {"nonce": challenge["nonce"], "aud": challenge["aud"], "iat": now}
        except (KeyError, TypeError) as exc:
            raise InputError("invalid_response", "--node", f"the nonce answer lacks {exc}") from exc
        proof = sign_jws(
            {"typ": challenge.get("typ", "pop+jwt")}, json.dumps(payload).encode("utf-8"), key
        )
        return _call(
            client,
            "/v1/me/attestations",
            {"holder_jwk": P.public_jwk(key), "proof": proof},
            token=token,
        )
