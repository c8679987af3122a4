"""docs/SETTINGS.md, written from ``node.settings.Settings`` so that it cannot drift.

    python scripts/settings_doc.py            print the document
    python scripts/settings_doc.py --write    write it to docs/SETTINGS.md

Every node setting is a ``CCX_*`` variable (or a line of the node's ``.env``, or a key of
the ``[node]`` table of the TOML file named by ``CCX_CONFIG``); its meaning and default
come from the field, its example from ``EXAMPLES`` below when the default is no example.
The variables the other commands read (the wallet's, the alliance's, a client's) are
listed in ``OTHER_VARIABLES``. tests/test_docs.py checks that the document is current,
that every example is accepted by ``Settings`` and that every ``CCX_*`` name in the
code is in the document.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from node.settings import DEVELOPMENT_PASSPHRASE, Settings

__all__ = ["DOCUMENT", "EXAMPLES", "OTHER_VARIABLES", "document", "main", "variable"]

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "SETTINGS.md"

# An example value (as written after ``CCX_NAME=``) for the settings whose default shows
# no use of them; all of them together must make valid settings (tests/test_docs.py).
EXAMPLES: dict[str, str] = {
    "node_id": "https://fuzhou.ccx.example",
    "city": "fuzhou",
    "data_dir": "/var/lib/ccx",
    "database_url": "postgresql+psycopg://ccx:secret@db.internal/ccx",
    "keyring_passphrase": "a long passphrase of your own",
    "scoring_model": "/etc/ccx/fuzhou-model.toml",
    "idp_issuer": "https://id.fuzhou.example",
    "idp_audience": "ccx-fuzhou",
    "idp_jwks": '{"keys": [{"kty": "EC", "crv": "P-256", "x": "...", "y": "..."}]}',
    "dev_idp": "true",
    "idp_authorization_endpoint": "https://id.fuzhou.example/authorize",
    "wallet_redirect_uris": '["http://127.0.0.1/callback", "ccxwallet://callback"]',
    "tls_certfile": "/etc/ccx/tls/fullchain.pem",
    "tls_keyfile": "/etc/ccx/tls/privkey.pem",
    "scheduler": "false",
    "admin_token_hash": "9c5b0b2f0d7e4b0d1e3a8f6c2d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6",
    "metrics_token_hash": "3f0d9a7c1b2e4d5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a69c5b0b2f0d7e4b",
    "api_docs": "true",
    "alliance_root_jwk": '{"kty": "OKP", "crv": "Ed25519", "x": "..."}',
    "registry_url": "https://alliance.ccx.example/v1/alliance/registry",
    "alliance_dir": "/srv/alliance",
    "witness_url": "https://alliance.ccx.example",
    "scenarios": "/etc/ccx/scenarios.toml",
    "rate_limits": "false",
}

# The CCX_* variables that are not node settings: name -> what reads it and what it holds.
OTHER_VARIABLES: dict[str, str] = {
    "CCX_CONFIG": "the node: a TOML file whose `[node]` table holds settings (below the "
    "environment and `.env`, above the defaults), e.g. `CCX_CONFIG=/etc/ccx/fuzhou.toml`",
    "CCX_KEYRING_PASSPHRASE": "also `ccx alliance` and `ccx mapping`: the passphrase of "
    "the alliance's root keyring (else a hidden prompt)",
    "CCX_MAPPING_TABLE": "the node, when it follows no registry: the unsigned mapping "
    "table (JSON) of its city; default `mappings/tables/<city>.table.json` (development)",
    "CCX_ADMIN_TOKEN": "`ccx node client ...`: the admin bearer token (the token, not its "
    "hash), as `ccx node admin-token` printed it",
    "CCX_CLIENT_TOKEN": "`ccx records push`, `ccx kiosk ...`: a client's bearer token, as "
    "`ccx node client add` printed it",
    "CCX_NODE_URL": "`ccx node client`, `ccx node ready`, `ccx records`, `ccx kiosk`: the "
    "node's base URL, e.g. `http://127.0.0.1:8001`",
    "CCX_TRANSACTION": "`ccx kiosk decision`: the transaction id when none is given; "
    '`eval "$(ccx kiosk request ... --format env)"` sets it',
    "CCX_REQUEST_LINK": "set by `ccx kiosk request --format env` for the shell: the "
    "openid4vp:// link of the request, for `ccx wallet answer`",
    "CCX_WALLET": "`ccx wallet`: the wallet file (default `~/.ccx/wallet.json`)",
    "CCX_WALLET_PASSPHRASE": "`ccx wallet`: the passphrase of the wallet's holder key "
    "(else a hidden prompt)",
    "CCX_WALLET_TOKEN": "`ccx wallet fetch`, `ccx wallet consent`: the resident's bearer "
    "token from her city's identity provider (`ccx wallet login` prints one in development)",
    "CCX_WALLET_NOW": "`ccx wallet` (hidden; tests): the current time as a NumericDate",
}


def variable(name: str) -> str:
    return f"CCX_{name.upper()}"


def _default(field: Any) -> str:
    if field.default_factory is not None:
        return f"`{_env_text(field.default_factory())}`"
    value = field.default
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        return "the development passphrase" if secret == DEVELOPMENT_PASSPHRASE else "(secret)"
    return f"`{_env_text(value)}`"


def _example_of_default(field: Any) -> str | None:
    value = field.default
    if value is None or value is PydanticUndefined or isinstance(value, SecretStr):
        return None
    return _env_text(value)


def _env_text(value: Any) -> str:
    """A value as it is written in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def document() -> str:
    """The whole of docs/SETTINGS.md."""
    lines = [
        "# Settings",
        "",
        "<!-- Written by `python scripts/settings_doc.py --write` from node/settings.py; "
        "do not edit by hand. -->",
        "",
        "A node reads its settings, highest precedence first, from the `ccx node` options, "
        "the environment (`CCX_*` variables), a `.env` file in the folder it starts in, "
        "the `[node]` table of the TOML file named by `CCX_CONFIG` (its keys are the "
        "names below without `CCX_`, in lower case), then the defaults. A setting that "
        "does not validate stops `ccx node serve` (and the other `ccx node` commands) "
        "with one line naming it. Each example is a line of `.env` (or `export` it in the "
        "shell, quoted). Lists are JSON; booleans are `true` or `false`; times are in "
        "seconds.",
        "",
        "## The node",
        "",
        "| variable | default | meaning | example |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        example = EXAMPLES.get(name, _example_of_default(field))
        shown = f"`{variable(name)}={_cell(example)}`" if example is not None else ""
        lines.append(
            f"| `{variable(name)}` | {_cell(_default(field))} | "
            f"{_cell(field.description or '')} | {shown} |"
        )
    lines += [
        "",
        "## The other commands",
        "",
        "| variable | read by, and what it holds |",
        "|---|---|",
        *(f"| `{name}` | {_cell(text)} |" for name, text in OTHER_VARIABLES.items()),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write docs/SETTINGS.md")
    args = parser.parse_args(argv)
    text = document()
    if not args.write:
        sys.stdout.write(text)
        return 0
    current = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else None
    if current != text:
        DOCUMENT.write_text(text, encoding="utf-8")
    print("docs/SETTINGS.md", "written" if current != text else "already current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
