"""Where a wallet is, by default and by the environment: names `ccx wallet` shows in its
help, kept apart from wallet/_wallet.py so that the help loads no cryptography (issue 20)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_WALLET", "PASSPHRASE_ENV", "WALLET_ENV"]

WALLET_ENV = "CCX_WALLET"
PASSPHRASE_ENV = "CCX_WALLET_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)
DEFAULT_WALLET = Path("~/.ccx/wallet.json")
