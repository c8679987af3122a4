"""A development identity provider that ships with the node (never for production).

A city's real provider (real-name authentication, face liveness) is an edge we don't
own; this stand-in signs resident tokens the way one would, so the demo and the tests
run the real verification path. Its JWKS is handed to the node as the configured one.

A node's key is one for all its workers and processes (:func:`node_key`): kept in
``<data_dir>/dev-idp-key.pem``, readable by the node's user alone, made by whichever
worker starts first (issue 17: with a key per worker, a token from one was refused by
the other, so half of the resident calls failed with two workers). Unencrypted: it
signs logins the provider grants to anyone who asks anyway.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import protocol as P

__all__ = ["DEV_IDP_KEY_FILE", "DevIdentityProvider", "node_key"]

DEV_IDP_KEY_FILE = "dev-idp-key.pem"


def node_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The development identity provider's key of the node whose data folder is
    ``data_dir``: read from ``dev-idp-key.pem``, or made and written there (0600) when
    absent. Workers starting together agree: the file is linked into place only if none
    is there yet (``os.link`` fails on an existing name), and whoever loses reads the
    winner's. Raises OSError, or ValueError for a file that holds no P-256 key."""
    path = data_dir / DEV_IDP_KEY_FILE
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = data_dir / f".{DEV_IDP_KEY_FILE}.{secrets.token_hex(6)}.tmp"
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(pem)
                file.flush()
                os.fsync(file.fileno())
            os.link(temporary, path)  # atomic, and never over another worker's key
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp256r1":
        raise ValueError(f"{path} holds no P-256 private key")
    return loaded


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
