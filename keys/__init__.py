"""Signing keyrings: generation, RFC 7638 kids, JWKS export, encrypted PEM at rest, rotation."""

from ._keyring import (
    DEFAULT_OVERLAP,
    Keyring,
    KeyringError,
    KeyState,
    ManagedKey,
    WrongPassphrase,
    generate_key,
)

__all__ = [
    "DEFAULT_OVERLAP",
    "KeyState",
    "Keyring",
    "KeyringError",
    "ManagedKey",
    "WrongPassphrase",
    "generate_key",
]
