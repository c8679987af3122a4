"""The wallet file and the holder key it seals (docs/WALLET.md): one JSON document,
written atomically with mode 0600; the private key an encrypted PKCS#8 PEM, the
passphrase stretched with scrypt as the node's keyring does. Bad input raises
``cli.InputError`` naming the field to fix; nothing here prompts or reads the
environment (the command line does: wallet/cli.py)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import protocol as P
from cli import InputError, write_atomically
from keys import KeyringError
from keys._keyring import _SCRYPT_N, MIN_PASSPHRASE, _stretch
from wallet._defaults import DEFAULT_WALLET, PASSPHRASE_ENV, WALLET_ENV

__all__ = [
    "DEFAULT_WALLET",
    "PASSPHRASE_ENV",
    "WALLET_ENV",
    "HeldAttestation",
    "Wallet",
    "disclosed_claims",
    "issuer_claims",
    "load_wallet",
    "save_wallet",
    "seal_key",
    "unseal_key",
]

_FORMAT = "ccx-wallet/1"


@dataclass(frozen=True)
class HeldAttestation:
    """An attestation as the wallet keeps it: the token and what ``list`` shows of it."""

    token: str
    issuer: str
    node: str
    band: str
    expires_at: int
    fetched_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "attestation": self.token,
            "format": P.ATTESTATION_TYP,
            "issuer": self.issuer,
            "node": self.node,
            "band": self.band,
            "expires_at": self.expires_at,
            "fetched_at": self.fetched_at,
        }

    @classmethod
    def from_json(cls, entry: Any) -> HeldAttestation:
        return cls(
            token=entry["attestation"],
            issuer=entry["issuer"],
            node=entry["node"],
            band=entry["band"],
            expires_at=int(entry["expires_at"]),
            fetched_at=int(entry["fetched_at"]),
        )


@dataclass
class Wallet:
    """The file's content: the holder key (still encrypted) and the attestations."""

    key: dict[str, Any] | None = None  # {"alg", "thumbprint", "public_jwk", "kdf", "pem"}
    attestations: list[HeldAttestation] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        document = {
            "format": _FORMAT,
            "holder_key": self.key,
            "attestations": [held.to_json() for held in self.attestations],
        }
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def load_wallet(path: Path) -> Wallet:
    """The wallet at ``path``; an empty one if there is no file yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Wallet()
    except OSError as exc:
        raise InputError("file_error", "--wallet", f"cannot read {path}: {exc.strerror}") from exc
    try:
        document = P.strict_json_loads(data, what=str(path))
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise InputError("invalid_wallet", "--wallet", f"{path} is not a {_FORMAT} file")
        return Wallet(
            key=document.get("holder_key"),
            attestations=[HeldAttestation.from_json(e) for e in document["attestations"]],
        )
    except P.ProtocolError as exc:
        raise InputError("invalid_wallet", "--wallet", exc.message) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError("invalid_wallet", "--wallet", f"{path} is damaged ({exc!r})") from exc


def save_wallet(path: Path, wallet: Wallet) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(path, wallet.to_bytes(), mode=0o600)
    except OSError as exc:
        raise InputError("file_error", "--wallet", f"cannot write {path}: {exc.strerror}") from exc


def seal_key(key: P.PrivateKey, passphrase: bytes) -> dict[str, Any]:
    """The key as the wallet stores it (the keyring's scheme: scrypt, then PKCS#8 PEM)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise InputError(
            "weak_passphrase", PASSPHRASE_ENV, f"must be at least {MIN_PASSPHRASE} bytes"
        )
    kdf = {
        "name": "scrypt",
        "n": _SCRYPT_N,
        "r": 8,
        "p": 1,
        "salt": P.b64url_encode(secrets.token_bytes(16)),
    }
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(_stretch(passphrase, kdf)),
    )
    jwk = P.public_jwk(key)
    return {
        "alg": P.alg_for_key(key),
        "thumbprint": P.jwk_thumbprint(jwk),
        "public_jwk": jwk,
        "kdf": kdf,
        "pem": pem.decode("ascii"),
    }


def unseal_key(sealed: dict[str, Any], passphrase: bytes) -> P.PrivateKey:
    """The holder key from the wallet's entry (InputError when the passphrase is wrong)."""
    try:
        password = _stretch(passphrase, sealed["kdf"])
        pem = sealed["pem"].encode("ascii")
    except (KeyError, TypeError, AttributeError, KeyringError) as exc:
        raise InputError("invalid_wallet", "--wallet", "the holder key entry is damaged") from exc
    try:
        key = serialization.load_pem_private_key(pem, password)
    except (ValueError, TypeError) as exc:
        raise InputError(
            "wrong_passphrase", PASSPHRASE_ENV, "the passphrase does not decrypt the holder key"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise InputError("invalid_wallet", "--wallet", "the holder key is of an unsupported type")
    return key


def issuer_claims(attestation: str) -> dict[str, Any]:
    """The issuer JWT's payload, unverified: the wallet only files the token by it."""
    try:
        parts = attestation.split("~", 1)[0].split(".")
        if len(parts) != 3:
            raise P.MalformedToken("the issuer JWT has three parts separated by '.'")
        claims = P.strict_json_loads(P.b64url_decode(parts[1], what="payload"), what="payload")
    except P.ProtocolError as exc:
        raise InputError(
            exc.code, "--node", f"the node sent a malformed attestation: {exc}"
        ) from exc
    if not isinstance(claims, dict):
        raise InputError("malformed_token", "--node", "the attestation's payload is not an object")
    return claims


def disclosed_claims(attestation: str) -> dict[str, Any]:
    """The claims its disclosures carry, by name (what the holder could show), unverified:
    the wallet only files and describes the token by them."""
    claims: dict[str, Any] = {}
    for part in attestation.split("~")[1:]:
        if not part:
            continue
        try:
            disclosure = P.strict_json_loads(P.b64url_decode(part, what="disclosure"))
        except P.ProtocolError:
            continue
        if isinstance(disclosure, list) and len(disclosure) == 3 and isinstance(disclosure[1], str):
            claims[disclosure[1]] = disclosure[2]
    return claims
