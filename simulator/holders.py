"""Residents with wallets: log in at the home node's (development) identity provider,
consent, fetch an attestation for a fresh holder key, and choose what to disclose at a
service point. Everything through the node's public HTTP API, as `ccx wallet` does."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
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
    "disclosures",
    "fetch_attestation",
    "login",
    "percentile_rank",
    "withdraw",
]

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


async def enrol(
    api: Api, *, resident: str, home: str, node: str, summary: Mapping[str, Any]
) -> Holder:
    """A resident logs in, consents and fetches her first attestation."""
    token = await login(api, node, resident)
    await consent(api, node, token)
    key = generate_key("ES256")
    attestation = await fetch_attestation(api, node, token, key)
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


def disclosures(holder: Holder, challenge: Mapping[str, Any]) -> list[str]:
    """What an honest holder shows for a challenge: the disclosure of the highest tier
    her score reaches (else the lowest tier's, which says false), plus ``band`` or
    ``alliance_score`` when the scenario must see them."""
    tiers: Sequence[Mapping[str, Any]] = challenge["tiers"]
    wanted: list[str] = list(challenge["disclose"])
    reached = [t for t in tiers if holder.alliance_score >= int(t["alliance_min"])]
    chosen = (reached[-1] if reached else tiers[0])["disclose"]
    shown = [chosen]
    shown += [w for w in wanted if w in ("band", "alliance_score") and w != chosen]
    return shown
