"""A two-city alliance in-process for the attack tests (docs/SECURITY.md).

Xiamen verifies; Fuzhou issues visitors' attestations. Xiamen's outgoing HTTP goes
through :class:`Network`, which answers Fuzhou's paths with Fuzhou's node, the alliance
host's with the registry it is given, refuses everything else, and records every
request, so a test can say "refused before any request". Built on the helpers of
tests/node/test_verifications.py (its ``Alliance``, ``attest``, ``service_point``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

import protocol as P
from node.services.registry import RegistryFollower
from protocol._jws import sign_jws
from tests.conftest import ALLIANCE, NOW, standard_claims
from tests.node.issuing_helpers import node_state
from tests.node.test_verifications import (
    FUZHOU,
    XIAMEN,
    Alliance,
    attest,
    registry_token,
    service_point,
)

__all__ = [
    "ALLIANCE_HOST",
    "FUZHOU",
    "LIBRARY",
    "REGISTRY_URL",
    "XIAMEN",
    "Network",
    "World",
    "attest",
    "bind",
    "decode_segment",
    "forge_attestation",
    "service_point",
]

LIBRARY = "library_deposit_free"
ALLIANCE_HOST = "http://alliance.ccx.test"
REGISTRY_URL = f"{ALLIANCE_HOST}/v1/alliance/registry"


@dataclass
class Network:
    """Xiamen's outgoing HTTP: Fuzhou's node, the alliance host, nothing else."""

    fuzhou: TestClient
    registry: str | None = None  # what the alliance host serves as the current version
    requests: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(url)
        if url.startswith(f"{FUZHOU}/"):
            answer = self.fuzhou.get(request.url.path)
            return httpx.Response(
                answer.status_code,
                content=answer.content,
                headers={"Content-Type": answer.headers.get("content-type", "")},
            )
        if url == REGISTRY_URL and self.registry is not None:
            return httpx.Response(200, text=self.registry)
        raise httpx.ConnectError(f"no route to {url}", request=request)

    def to(self, prefix: str) -> list[str]:
        return [url for url in self.requests if url.startswith(prefix)]

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))


@dataclass
class World:
    alliance: Alliance
    network: Network
    follower: RegistryFollower  # Xiamen's: registry v1 (both cities active) accepted

    @classmethod
    def make(cls, make_client: Callable[..., TestClient], tmp_path: Path, **xiamen: Any) -> World:
        alliance = Alliance(make_client, tmp_path, **xiamen)
        follower = alliance.install()
        network = Network(alliance.fuzhou)
        node_state(alliance.xiamen).http = network.client()
        return cls(alliance, network, follower)

    @property
    def xiamen(self) -> TestClient:
        return self.alliance.xiamen

    @property
    def fuzhou(self) -> TestClient:
        return self.alliance.fuzhou

    def registry(self, version: int, *, now: int, fuzhou_status: str = "active") -> str:
        """Registry ``version`` of both cities, signed by the alliance root, continuing
        the chain Xiamen holds (``prev`` = the hash of its newest version)."""
        newest = self.follower.versions[-1]
        assert newest.version == version - 1, "registry versions are consecutive"
        return registry_token(
            self.alliance.members(fuzhou_status),
            now=now,
            version=version,
            prev=P.registry_hash(newest.token),
        )

    def challenge(self, headers: dict[str, str], scenario: str = LIBRARY) -> dict[str, Any]:
        return self.alliance.challenge(headers, scenario)

    def present(
        self,
        attestation: str,
        holder: Any,
        challenge: dict[str, Any],
        disclose: tuple[str, ...] = ("score_at_least.600",),
        *,
        now: int | None = None,
    ) -> str:
        return P.present(
            attestation,
            disclose=disclose,
            holder_key=holder,
            aud=challenge["aud"],
            nonce=challenge["nonce"],
            now=NOW if now is None else now,
        )

    def send(self, headers: dict[str, str], nonce: str, presentation: str) -> httpx.Response:
        return self.xiamen.post(
            "/v1/verifications",
            json={"nonce": nonce, "presentation": presentation},
            headers=headers,
        )

    def verify(
        self,
        headers: dict[str, str],
        attestation: str,
        holder: Any,
        disclose: tuple[str, ...] = ("score_at_least.600",),
        *,
        now: int | None = None,
    ) -> httpx.Response:
        """A fresh challenge, a presentation for it, the verification."""
        challenge = self.challenge(headers)
        presentation = self.present(attestation, holder, challenge, disclose, now=now)
        return self.send(headers, challenge["nonce"], presentation)

    def fuzhou_key(self) -> tuple[Any, str]:
        """Fuzhou's active signing key and its kid: what a malicious Fuzhou signs with."""
        active = node_state(self.fuzhou).signing_keys().active
        return active.private_key, active.kid


def forge_attestation(
    issuer_key: Any, kid: str, holder: Any, *, now: int = NOW, **claims: Any
) -> str:
    """An attestation signed with ``issuer_key`` under ``kid``, by default in Fuzhou's
    name, on Fuzhou's status list, for this alliance, bound to ``holder``: a correct
    token whose claims say what the signer wants (``claims`` override them)."""
    values: dict[str, Any] = {
        "iss": FUZHOU,
        "alliance": ALLIANCE,
        "status": {"idx": 7, "uri": f"{FUZHOU}/v1/status-lists/1"},
        "exp": now + 20 * 86400,
        **claims,
    }
    return P.issue_attestation(
        standard_claims(**values),
        issuer_key=issuer_key,
        kid=kid,
        holder_jwk=P.public_jwk(holder),
        now=now,
    )


def decode_segment(segment: str) -> Any:
    """The JSON inside one base64url segment (a JWS header or payload, a disclosure)."""
    return json.loads(P.b64url_decode(segment))


def bind(prefix: str, holder: Any, *, aud: str, nonce: str, now: int = NOW) -> str:
    """``prefix`` (``<issuer JWT>~<disclosures>~``, as the caller wrote it) with a KB-JWT
    the holder signs over exactly those bytes: a presentation whose only possible fault
    is in what ``prefix`` carries."""
    sd_hash = P.b64url_encode(hashlib.sha256(prefix.encode("ascii")).digest())
    claims = {"iat": now, "aud": aud, "nonce": nonce, "sd_hash": sd_hash}
    return prefix + sign_jws({"typ": "kb+jwt"}, json.dumps(claims).encode(), holder)
