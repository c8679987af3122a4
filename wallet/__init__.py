"""The resident's side (docs/WALLET.md): the holder key, the wallet file that seals it
and keeps her attestations, fetching them from her home node, presenting them
(``protocol.present``), as text or a QR code (`ccx wallet`, wallet/cli.py). Usable as a
library by a kiosk or an app without the node installed: it imports the pure libraries
and ``cli`` only, never ``node``."""

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
    DEFAULT_WALLET,
    PASSPHRASE_ENV,
    WALLET_ENV,
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
