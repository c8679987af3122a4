"""A development identity provider that ships with the node (never for production).

A city's real provider (real-name authentication, face liveness) is an edge we don't
own; this stand-in signs resident tokens the way one would, so the demo and the tests
run the real verification path. Its key lives in memory only: every process that
enables it gets a fresh key, and its JWKS is handed to the node as the configured one.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

import protocol as P

__all__ = ["DevIdentityProvider"]


@dataclass
class DevIdentityProvider:
    issuer: str = "ccx-dev-idp"
    audience: str = "ccx-node"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def kid(self) -> str:
        return P.jwk_thumbprint(P.public_jwk(self.key))

    def jwks(self) -> str:
        """The provider's JWKS as JSON text (what ``CCX_IDP_JWKS`` would hold)."""
        return json.dumps(
            {"keys": [{**P.public_jwk(self.key), "kid": self.kid, "alg": "ES256", "use": "sig"}]}
        )

    def token(
        self, subject: str, *, now: int, lifetime: int = 900, nonce: str | None = None
    ) -> str:
        """A resident bearer token, as the city's provider would issue after real-name
        checks; with ``nonce``, an OpenID Connect ID token for one login (the node's
        authorization endpoint, node/services/oid4vci_authorization.py)."""
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(12),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})
