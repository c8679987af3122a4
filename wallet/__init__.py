"""The resident's side (docs/WALLET.md): the holder key, the wallet file that seals it
and keeps her attestations, fetching them from her home node, presenting them
(``protocol.present``), as text or a QR code (`ccx wallet`, wallet/cli.py). Usable as a
library by a kiosk or an app without the node installed: it imports the pure libraries
and ``cli`` only, never ``node``. Each name is imported from its module when first
asked for (PEP 562): `ccx wallet ... --help` loads no cryptography or httpx (issue 20)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wallet._defaults import DEFAULT_WALLET, PASSPHRASE_ENV, WALLET_ENV

if TYPE_CHECKING:  # the rest is imported when first asked for
    from wallet._home import NODE_TIMEOUT, fetch_attestation
    from wallet._oid4vci import (
        OFFER_SCHEME,
        LoopbackRedirect,
        Offer,
        accept_offer,
        authorize,
        dev_login,
        parse_offer,
    )
    from wallet._oid4vp import (
        Asked,
        alliance_anchors,
        answer_request,
        available_claims,
        check_named,
        read_request,
        response_form,
    )
    from wallet._wallet import (
        HeldAttestation,
        Wallet,
        disclosed_claims,
        issuer_claims,
        load_wallet,
        save_wallet,
        seal_key,
        unseal_key,
    )

__all__ = [
    "DEFAULT_WALLET",
    "NODE_TIMEOUT",
    "OFFER_SCHEME",
    "PASSPHRASE_ENV",
    "WALLET_ENV",
    "Asked",
    "HeldAttestation",
    "LoopbackRedirect",
    "Offer",
    "Wallet",
    "accept_offer",
    "alliance_anchors",
    "answer_request",
    "authorize",
    "available_claims",
    "check_named",
    "dev_login",
    "disclosed_claims",
    "fetch_attestation",
    "issuer_claims",
    "load_wallet",
    "parse_offer",
    "read_request",
    "response_form",
    "save_wallet",
    "seal_key",
    "unseal_key",
]

_MODULE_OF = {
    "NODE_TIMEOUT": "wallet._home",
    "fetch_attestation": "wallet._home",
    "OFFER_SCHEME": "wallet._oid4vci",
    "LoopbackRedirect": "wallet._oid4vci",
    "Offer": "wallet._oid4vci",
    "accept_offer": "wallet._oid4vci",
    "authorize": "wallet._oid4vci",
    "dev_login": "wallet._oid4vci",
    "parse_offer": "wallet._oid4vci",
    "Asked": "wallet._oid4vp",
    "alliance_anchors": "wallet._oid4vp",
    "answer_request": "wallet._oid4vp",
    "available_claims": "wallet._oid4vp",
    "check_named": "wallet._oid4vp",
    "read_request": "wallet._oid4vp",
    "response_form": "wallet._oid4vp",
    "HeldAttestation": "wallet._wallet",
    "Wallet": "wallet._wallet",
    "disclosed_claims": "wallet._wallet",
    "issuer_claims": "wallet._wallet",
    "load_wallet": "wallet._wallet",
    "save_wallet": "wallet._wallet",
    "seal_key": "wallet._wallet",
    "unseal_key": "wallet._wallet",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'wallet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
