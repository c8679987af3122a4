"""A signing keyring with rotation: ``next -> active -> retired``.

Modelled on ``cryptography.fernet.MultiFernet``: one key signs, every key that has not
expired verifies, and rotation is a method. Unlike MultiFernet, keys carry a lifecycle,
because verifiers elsewhere learn our keys from the alliance registry and need them
published *before* we sign with them (``next``) and kept *after* we stop (``retired``)
until the last token they signed has expired.

Pure: generation takes its generator as a parameter, time is ``now``, and persistence is
bytes in and bytes out (the node decides where the file lives).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from protocol import (
    MAX_ATTESTATION_LIFETIME,
    AlgorithmKeyMismatch,
    PrivateKey,
    ProtocolError,
    PublicKey,
    UnknownKid,
    alg_for_key,
    b64url_decode,
    b64url_encode,
    jwk_thumbprint,
    public_jwk,
)
from protocol._jwk import private_jwk_members

__all__ = [
    "DEFAULT_OVERLAP",
    "KeyState",
    "Keyring",
    "KeyringError",
    "ManagedKey",
    "WrongPassphrase",
    "generate_key",
]

# A retired key keeps verifying this long after rotation: the longest an attestation
# lives, plus a day for clock skew and status-list caches.
DEFAULT_OVERLAP = MAX_ATTESTATION_LIFETIME + 86400
MIN_PASSPHRASE = 12
_FORMAT = "ccx-keyring/1"


_SCRYPT_N = 2**15  # about 0.1 s and 32 MiB per load; RFC 7914 section 2 parameters


def _stretch(passphrase: bytes, kdf: Mapping[str, Any]) -> bytes:
    if kdf.get("name") != "scrypt" or not 2**14 <= kdf["n"] <= 2**20:
        raise KeyringError("unsupported or too weak kdf parameters")
    derived = Scrypt(salt=b64url_decode(kdf["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"])
    return b64url_encode(derived.derive(passphrase)).encode("ascii")


class KeyringError(ValueError):
    """The keyring is inconsistent, or a file could not be read as one."""


class WrongPassphrase(KeyringError):
    """The passphrase does not decrypt the keyring."""


class KeyState(StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"


def generate_key(alg: str = "ES256") -> PrivateKey:
    """A fresh private key for ``alg`` (ES256: P-256; EdDSA: Ed25519)."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise KeyringError(f"unsupported algorithm {alg!r}; use ES256 or EdDSA")


@dataclass(frozen=True, slots=True)
class ManagedKey:
    """One key with its lifecycle. ``kid`` is its RFC 7638 thumbprint."""

    kid: str
    alg: str
    private_key: PrivateKey
    state: KeyState
    created_at: int
    activated_at: int | None = None
    retired_at: int | None = None
    expires_at: int | None = None  # set on retirement: verifies until then

    @classmethod
    def new(cls, private_key: PrivateKey, *, state: KeyState, now: int) -> ManagedKey:
        return cls(
            kid=jwk_thumbprint(public_jwk(private_key)),
            alg=alg_for_key(private_key),
            private_key=private_key,
            state=state,
            created_at=now,
            activated_at=now if state is KeyState.ACTIVE else None,
        )

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def verifies_at(self, now: int) -> bool:
        return self.expires_at is None or now <= self.expires_at

    def public_jwk(self) -> dict[str, Any]:
        """Public JWK with kid, alg, use, and the validity verifiers need (``exp`` once retired)."""
        jwk: dict[str, Any] = {
            **public_jwk(self.private_key),
            "kid": self.kid,
            "alg": self.alg,
            "use": "sig",
        }
        if self.expires_at is not None:
            jwk["exp"] = self.expires_at
        # Belt and braces: public_jwk() builds from the public key only, but the JWKS is
        # the one document that leaves the node, so check anyway.
        if private_jwk_members.intersection(jwk):
            raise KeyringError("refusing to export a JWK with private members")
        return jwk


class Keyring:
    """An immutable set of keys: exactly one active, at most one next, any retired.

    Every change returns a new Keyring, so a node swaps its ring atomically.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[ManagedKey]) -> None:
        self._keys: tuple[ManagedKey, ...] = tuple(keys)
        states = [k.state for k in self._keys]
        if states.count(KeyState.ACTIVE) != 1:
            raise KeyringError(
                f"a keyring needs exactly one active key, has {states.count(KeyState.ACTIVE)}"
            )
        if states.count(KeyState.NEXT) > 1:
            raise KeyringError("a keyring has at most one next key")
        kids = [k.kid for k in self._keys]
        if len(set(kids)) != len(kids):
            raise KeyringError("a keyring lists the same key twice")

    @classmethod
    def create(
        cls, *, now: int, alg: str = "ES256", generate: Callable[[str], PrivateKey] = generate_key
    ) -> Keyring:
        """A new ring with an active key and the next key already published."""
        return cls(
            [
                ManagedKey.new(generate(alg), state=KeyState.ACTIVE, now=now),
                ManagedKey.new(generate(alg), state=KeyState.NEXT, now=now),
            ]
        )

    @staticmethod
    def _salt() -> bytes:
        return os.urandom(16)

    @property
    def keys(self) -> tuple[ManagedKey, ...]:
        return self._keys

    @property
    def active(self) -> ManagedKey:
        """The one key that signs."""
        return next(k for k in self._keys if k.state is KeyState.ACTIVE)

    @property
    def next(self) -> ManagedKey | None:
        return next((k for k in self._keys if k.state is KeyState.NEXT), None)

    def verification_keys(self, now: int) -> dict[str, ManagedKey]:
        """Every key that verifies at ``now``: next, active, and retired ones not yet expired."""
        return {k.kid: k for k in self._keys if k.verifies_at(now)}

    def resolve(self, kid: str | None, alg: str, *, now: int) -> PublicKey:
        """The public key for ``kid`` if it verifies at ``now``; raises UnknownKid otherwise."""
        key = self.verification_keys(now).get(kid) if isinstance(kid, str) else None
        if key is None:
            raise UnknownKid(f"no verifying key {kid!r} in this keyring")
        if key.alg != alg:
            raise AlgorithmKeyMismatch(f"key {kid!r} is {key.alg}, token says {alg}")
        return key.public_key

    def jwks(self, now: int) -> dict[str, list[dict[str, Any]]]:
        """The JWKS to publish: public members only, every key that verifies at ``now``."""
        return {"keys": [k.public_jwk() for k in self.verification_keys(now).values()]}

    def rotate(
        self,
        *,
        now: int,
        overlap: int = DEFAULT_OVERLAP,
        generate: Callable[[str], PrivateKey] = generate_key,
    ) -> Keyring:
        """Promote next to active, retire the active key (verifying ``overlap`` s more), add a
        new next key, and drop retired keys that have expired.

        The caller must rotate only once the next key is published where verifiers look
        (the alliance registry, DESIGN section 7), or tokens it signs will be refused.
        """
        if overlap < 0:
            raise KeyringError("overlap must be >= 0")
        current, upcoming = self.active, self.next
        alg = current.alg
        promoted = (
            replace(upcoming, state=KeyState.ACTIVE, activated_at=now)
            if upcoming is not None
            else ManagedKey.new(generate(alg), state=KeyState.ACTIVE, now=now)
        )
        kept = [
            k
            for k in self._keys
            if k.state is KeyState.RETIRED and k.verifies_at(now) and k.kid != promoted.kid
        ]
        retired = replace(current, state=KeyState.RETIRED, retired_at=now, expires_at=now + overlap)
        fresh = ManagedKey.new(generate(alg), state=KeyState.NEXT, now=now)
        return Keyring([promoted, fresh, retired, *kept])

    # --- at rest -----------------------------------------------------------------------

    def dump(self, passphrase: bytes) -> bytes:
        """Serialise with every private key in encrypted PKCS#8 PEM.

        The PEMs use ``BestAvailableEncryption`` (PBES2, AES-256-CBC), but OpenSSL gives
        that only 2,048 PBKDF2 rounds, too few against an offline guess of a human
        passphrase. So the passphrase is first stretched with scrypt (salt and cost in
        the file), and the stretched value encrypts the PEMs.
        """
        if len(passphrase) < MIN_PASSPHRASE:
            raise KeyringError(f"the passphrase must be at least {MIN_PASSPHRASE} bytes")
        kdf = {
            "name": "scrypt",
            "n": _SCRYPT_N,
            "r": 8,
            "p": 1,
            "salt": b64url_encode(self._salt()),
        }
        encryption = serialization.BestAvailableEncryption(_stretch(passphrase, kdf))
        entries = []
        for key in self._keys:
            pem = key.private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
            entries.append(
                {
                    "kid": key.kid,
                    "alg": key.alg,
                    "state": key.state.value,
                    "created_at": key.created_at,
                    "activated_at": key.activated_at,
                    "retired_at": key.retired_at,
                    "expires_at": key.expires_at,
                    "pem": pem.decode("ascii"),
                }
            )
        return json.dumps({"format": _FORMAT, "kdf": kdf, "keys": entries}, indent=2).encode(
            "utf-8"
        )

    @classmethod
    def load(cls, data: bytes, passphrase: bytes) -> Keyring:
        """Read what :meth:`dump` wrote. Raises WrongPassphrase or KeyringError."""
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise KeyringError("keyring file is not JSON") from exc
        if not isinstance(document, Mapping) or document.get("format") != _FORMAT:
            raise KeyringError(f"not a {_FORMAT} document")
        try:
            pem_password = _stretch(passphrase, document["kdf"])
        except (KeyError, TypeError, ValueError, ProtocolError) as exc:
            raise KeyringError("keyring file lacks a valid kdf section") from exc
        keys = []
        for entry in document.get("keys", []):
            try:
                private_key = serialization.load_pem_private_key(
                    entry["pem"].encode("ascii"), pem_password
                )
            except ValueError as exc:
                raise WrongPassphrase("the passphrase does not decrypt the keyring") from exc
            except (KeyError, TypeError) as exc:
                raise KeyringError("keyring entry lacks its PEM") from exc
            if not isinstance(private_key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
                raise KeyringError("keyring holds an unsupported key type")
            try:
                key = ManagedKey(
                    kid=jwk_thumbprint(public_jwk(private_key)),
                    alg=alg_for_key(private_key),
                    private_key=private_key,
                    state=KeyState(entry["state"]),
                    created_at=int(entry["created_at"]),
                    activated_at=entry.get("activated_at"),
                    retired_at=entry.get("retired_at"),
                    expires_at=entry.get("expires_at"),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise KeyringError(
                    f"keyring entry {entry.get('kid')!r} is malformed: {exc}"
                ) from exc
            if key.kid != entry.get("kid"):
                raise KeyringError(f"keyring entry {entry.get('kid')!r} does not match its key")
            keys.append(key)
        return cls(keys)
