"""Shared fixtures: deterministic keys, a fixed clock and a standard attestation.

Everything here is reproducible: keys derive from fixed scalars, salts come from a
counter, and ``NOW`` is a constant, so a failing test fails the same way every time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import protocol as P

NOW = 1_800_000_000  # 2027-01-15T08:00:00Z
ISSUER = "https://xiamen.ccx.example"
VERIFIER = "https://fuzhou.ccx.example"
ALLIANCE = "https://alliance.ccx.example"
STATUS_URI = f"{ISSUER}/v1/status-lists/1"
THRESHOLDS = (550, 600, 650, 700, 750)
# /metrics answers only its scraper's token (CCX_METRICS_TOKEN_HASH); the test nodes have one
METRICS_TOKEN = "a metrics token for tests"
METRICS_TOKEN_HASH = hashlib.sha256(METRICS_TOKEN.encode()).hexdigest()
METRICS = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def ec_key(seed: int) -> ec.EllipticCurvePrivateKey:
    """A deterministic P-256 key (test use only)."""
    scalar = int.from_bytes(hashlib.sha256(f"ec-{seed}".encode()).digest(), "big") % (2**255)
    return ec.derive_private_key(scalar + 1, ec.SECP256R1())


def ed_key(seed: int) -> ed25519.Ed25519PrivateKey:
    """A deterministic Ed25519 key (test use only)."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"ed-{seed}".encode()).digest()
    )


def counter_salt() -> Callable[[int], bytes]:
    """A reproducible salt source: SHA-256 of a counter (never use outside tests)."""
    state = {"n": 0}

    def salt(n: int) -> bytes:
        state["n"] += 1
        return hashlib.sha256(state["n"].to_bytes(8, "big")).digest()[:n]

    return salt


def standard_claims(**overrides: Any) -> P.AttestationClaims:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "exp": NOW + 30 * 86400,
        "alliance": ALLIANCE,
        "mapping": {"city": "xiamen", "version": 3, "sha256": "ab" * 32},
        "status": {"idx": 4242, "uri": STATUS_URI},
        "alliance_score": 672,
        "band": "good",
        "thresholds": THRESHOLDS,
        "local_score": 731,
        "local_scale": {"name": "egret", "min": 0, "max": 1000, "step": 1},
        "score_date": "2026-12-31",
    }
    claims.update(overrides)
    return claims  # type: ignore[return-value]


@dataclass
class Setup:
    """An issuer, a holder, an attestation and a resolver that trusts only that issuer key."""

    issuer_key: Any
    holder_key: Any
    kid: str
    attestation: str

    def resolve(self, iss: str, kid: str | None, alg: str) -> P.PublicKey:
        if iss != ISSUER:
            raise P.IssuerNotMember(f"{iss} is not a member")
        if kid != self.kid:
            raise P.UnknownKid(f"unknown kid {kid}")
        return self.issuer_key.public_key()  # type: ignore[no-any-return]

    def present(
        self,
        disclose: tuple[str, ...] = ("score_at_least.650",),
        *,
        nonce: str = "nonce-1",
        aud: str = VERIFIER,
        now: int = NOW + 10,
    ) -> str:
        return P.present(
            self.attestation,
            disclose=disclose,
            holder_key=self.holder_key,
            aud=aud,
            nonce=nonce,
            now=now,
        )

    def verify(
        self, presentation: str, *, nonce: str = "nonce-1", aud: str = VERIFIER, now: int = NOW + 11
    ) -> P.VerifiedPresentation:
        return P.verify_presentation(
            presentation, resolve_issuer_key=self.resolve, aud=aud, nonce=nonce, now=now
        )


def make_setup(alg: str = "ES256", **claim_overrides: Any) -> Setup:
    issuer_key = ec_key(1) if alg == "ES256" else ed_key(1)
    holder_key = ec_key(2) if alg == "ES256" else ed_key(2)
    kid = P.jwk_thumbprint(P.public_jwk(issuer_key))
    attestation = P.issue_attestation(
        standard_claims(**claim_overrides),
        issuer_key=issuer_key,
        kid=kid,
        holder_jwk=P.public_jwk(holder_key),
        now=NOW,
        salt=counter_salt(),
    )
    return Setup(issuer_key, holder_key, kid, attestation)


@pytest.fixture(params=["ES256", "EdDSA"])
def setup(request: pytest.FixtureRequest) -> Setup:
    """The standard setup, once per signing algorithm."""
    return make_setup(request.param)


@pytest.fixture
def es256() -> Setup:
    return make_setup("ES256")
