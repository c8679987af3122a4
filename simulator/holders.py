"""Residents with wallets: log in at the home node's (development) identity provider,
consent, take a credential offer into the wallet (OpenID4VCI 1.0, the pre-authorized
code grant) for a fresh holder key, and answer service points' OpenID4VP requests
(simulator/world.py). Everything through the node's public HTTP API, as a standard
wallet does. The ccx dialect's fetch stays for tests/durability."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

import protocol as P
from keys import generate_key
from protocol._jws import sign_jws
from simulator.api import Api

__all__ = [
    "Holder",
    "attestation_request",
    "available_claims",
    "fetch_attestation",
    "fetch_credential",
    "login",
    "percentile_rank",
    "withdraw",
]

PREAUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"

SHARE_PURPOSE = "to use credit-based services of other alliance cities as a visitor"


@dataclass
class Holder:
    """A resident who holds an attestation of her home node."""

    resident: str
    home: str  # city
    node: str  # the home node's URL
    key: Any  # the holder's private key (never leaves the "wallet")
    attestation: str
    claims: dict[str, Any]  # what the disclosures say: alliance_score, band, local_score...
    percentile: float  # her percentile rank in her home city, 0..100
    withdrawn_at: float | None = None  # monotonic time her share consent was withdrawn
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def alliance_score(self) -> int:
        return int(self.claims["alliance_score"])


def own_claims(attestation: str) -> dict[str, Any]:
    """The holder's view of her attestation: every disclosure, by claim name, with
    ``score_at_least`` as {threshold: bool}. (The holder holds all disclosures.)"""
    parts = attestation.split("~")
    claims: dict[str, Any] = {"score_at_least": {}}
    for disclosure in parts[1:]:
        if not disclosure:
            continue
        decoded = json.loads(P.b64url_decode(disclosure))
        if len(decoded) != 3:
            continue
        _, name, value = decoded
        if name.isdigit():
            claims["score_at_least"][int(name)] = value
        else:
            claims[name] = value
    return claims


def percentile_rank(summary: Mapping[str, Any], local_score: float) -> float:
    """Her percentile rank (0..100) in the city's distribution summary: the share below
    her score plus half the share at it (the mid-point convention of equipercentile
    linking)."""
    counts: npt.NDArray[np.float64] = np.asarray(summary["counts"], dtype=np.float64)
    scale = summary["local_scale"]
    step = scale.get("step", 1) or 1
    index = round((local_score - scale["min"]) / step)
    index = min(max(index, 0), len(counts) - 1)
    total = counts.sum()
    if total <= 0:
        return 50.0
    return float((counts[:index].sum() + 0.5 * counts[index]) / total * 100)


async def login(api: Api, node: str, resident: str) -> str:
    """A bearer token from the node's development identity provider."""
    body = await api.ok(
        "POST", node, "/dev-idp/token", body={"subject": resident}, label="POST /dev-idp/token"
    )
    return str(body["access_token"])


async def consent(api: Api, node: str, token: str) -> None:
    """Both consents: open the score (二次授权), and share it with the alliance."""
    await api.ok(
        "POST", node, "/v1/me/consents", body={"kind": "open_score"}, token=token,
        label="POST /v1/me/consents",
    )  # fmt: skip
    await api.ok(
        "POST",
        node,
        "/v1/me/consents",
        body={"kind": "share_alliance", "recipients": ["alliance"], "purpose": SHARE_PURPOSE},
        token=token,
        label="POST /v1/me/consents",
    )


async def attestation_request(api: Api, node: str, token: str, key: Any) -> dict[str, Any]:
    """A nonce, and the proof of possession of ``key`` over it: the body of ``POST
    /v1/me/attestations`` (docs/ISSUING.md), good once, for the nonce's lifetime."""
    challenge = await api.ok(
        "POST", node, "/v1/me/attestations/nonce", token=token,
        label="POST /v1/me/attestations/nonce",
    )  # fmt: skip
    payload = {"nonce": challenge["nonce"], "aud": challenge["aud"], "iat": int(time.time())}
    proof = sign_jws({"typ": challenge.get("typ", "pop+jwt")}, json.dumps(payload).encode(), key)
    return {"holder_jwk": P.public_jwk(key), "proof": proof}


async def fetch_attestation(api: Api, node: str, token: str, key: Any) -> str:
    """Nonce, proof of possession of ``key``, attestation (docs/ISSUING.md)."""
    body = await api.ok(
        "POST",
        node,
        "/v1/me/attestations",
        body=await attestation_request(api, node, token, key),
        token=token,
        label="POST /v1/me/attestations",
    )
    return str(body["attestation"])


async def fetch_credential(
    api: Api, node: str, token: str, key: Any, configuration: str | None = None
) -> str:
    """OpenID4VCI 1.0 (docs/PROTOCOL.md section 10): her page's offer (same device: no
    transaction code) of ``configuration`` (default: the credit standing), fetched once;
    its pre-authorized code for an access token; a c_nonce; the key proof of ``key``
    over it; the credential."""
    made = await api.ok(
        "POST", node, "/v1/me/credential-offers", token=token,
        body={"credential_configuration_id": configuration} if configuration else {},
        label="POST /v1/me/credential-offers",
    )  # fmt: skip
    offer = await api.ok(
        "GET", node, made["credential_offer_uri"].removeprefix(node),
        label="GET /oid4vci/offers/{offer_id}",
    )  # fmt: skip
    code = offer["grants"][PREAUTHORIZED_GRANT]["pre-authorized_code"]
    granted = await api.ok(
        "POST", node, "/oid4vci/token",
        form={"grant_type": PREAUTHORIZED_GRANT, "pre-authorized_code": code},
        label="POST /oid4vci/token",
    )  # fmt: skip
    nonce = await api.ok("POST", node, "/oid4vci/nonce", label="POST /oid4vci/nonce")
    proof = sign_jws(
        {"typ": P.PROOF_TYP, "jwk": P.public_jwk(key)},
        json.dumps({"aud": node, "iat": int(time.time()), "nonce": nonce["c_nonce"]}).encode(),
        key,
    )
    issued = await api.ok(
        "POST", node, "/oid4vci/credential", token=granted["access_token"],
        body={"credential_configuration_id": offer["credential_configuration_ids"][0],
              "proofs": {"jwt": [proof]}},
        label="POST /oid4vci/credential",
    )  # fmt: skip
    return str(issued["credentials"][0]["credential"])


async def enrol(
    api: Api, *, resident: str, home: str, node: str, summary: Mapping[str, Any]
) -> Holder:
    """A resident logs in, consents and takes her first credential through an offer."""
    token = await login(api, node, resident)
    await consent(api, node, token)
    key = generate_key("ES256")
    attestation = await fetch_credential(api, node, token, key)
    claims = own_claims(attestation)
    return Holder(
        resident=resident,
        home=home,
        node=node,
        key=key,
        attestation=attestation,
        claims=claims,
        percentile=percentile_rank(summary, float(claims["local_score"])),
    )


async def withdraw(api: Api, holder: Holder) -> Any:
    """She withdraws her consent to share: the node revokes her attestations at once."""
    token = await login(api, holder.node, holder.resident)
    return await api.ok(
        "DELETE",
        holder.node,
        "/v1/me/consents/share_alliance",
        token=token,
        label="DELETE /v1/me/consents/{kind}",
    )


def available_claims(holder: Holder) -> dict[str, Any]:
    """Her credential's disclosable claims by the names a DCQL query's paths make
    (``band``, ``score_at_least.650``): what her wallet can answer a query with."""
    flat = {name: value for name, value in holder.claims.items() if name != "score_at_least"}
    flat.update({f"score_at_least.{t}": v for t, v in holder.claims["score_at_least"].items()})
    return flat
