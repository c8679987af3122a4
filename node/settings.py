"""Node settings: ``CCX_*`` environment variables, a ``.env`` file, and a city config file.

Nothing is read at import time: ``Settings()`` (or ``load_settings``) is called by
``create_app`` and the CLI. Precedence, highest first: arguments, environment, ``.env``,
the TOML city config file named by ``CCX_CONFIG``, defaults.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from keys import KeyringError

__all__ = ["DEVELOPMENT_PASSPHRASE", "Settings", "load_settings"]

# The keyring passphrase of a node left unconfigured: fine for a laptop's demo node, which
# runs the development identity provider; refused for any other (Settings.keyring_secret).
DEVELOPMENT_PASSPHRASE = "development passphrase, change me"  # noqa: S105 (public on purpose)


class Settings(BaseSettings):
    """Everything a node needs to know about itself."""

    model_config = SettingsConfigDict(env_prefix="CCX_", env_file=".env", extra="forbid")

    node_id: str = Field(
        "http://127.0.0.1:8000",
        description="this node's id: its base URL, the iss of its attestations",
    )
    city: str = Field("xiamen", description="the city this node serves")
    data_dir: Path = Field(
        Path("data"), description="folder for the SQLite database and the keyring"
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite in data_dir"
    )
    keyring_passphrase: SecretStr = Field(
        SecretStr(DEVELOPMENT_PASSPHRASE),
        description="passphrase of the keyring file in data_dir (at least 12 bytes); the "
        "built-in default is refused unless dev_idp is on",
    )
    scoring_model: Path | None = Field(
        None, description="the city's scoring model (TOML); default: the demo model"
    )
    alliance: str = Field(
        "https://alliance.ccx.example", description="the alliance id (registry iss)"
    )
    idp_issuer: str = Field("ccx-dev-idp", description="iss of resident bearer tokens")
    idp_audience: str = Field("ccx-node", description="aud of resident bearer tokens")
    idp_jwks: str | None = Field(
        None, description="JWKS of the identity provider (JSON text); None with dev_idp"
    )
    dev_idp: bool = Field(
        False, description="serve the development identity provider (never in production)"
    )
    idp_authorization_endpoint: str | None = Field(
        None,
        description="the identity provider's OpenID Connect authorization endpoint, where "
        "residents log in for the OpenID4VCI authorization code flow (response_type "
        "id_token, response_mode form_post); default with dev_idp: the node's own "
        "/dev-idp/authorize; None and no dev_idp: that flow is off",
    )
    wallet_redirect_uris: list[str] = Field(
        default_factory=list,
        description="redirect URIs (JSON list) of wallets allowed in the OpenID4VCI "
        "authorization code flow, besides loopback ones (http://127.0.0.1, [::1], "
        "localhost on any port: a wallet app on the resident's own device, RFC 8252)",
    )
    status_list_size: int = Field(
        2**17, ge=2**10, description="entries per status list (herd privacy)"
    )
    status_list_ttl: int = Field(
        300, ge=0, description="seconds a verifier may cache a status list"
    )
    status_cache_min_ttl: int = Field(
        60,
        ge=1,
        le=3600,
        description="least seconds another city's status list is kept before it is fetched "
        "again (a shorter ttl of the issuer's is raised to this); the simulator lowers it",
    )
    status_list_lifetime: int = Field(
        86400, gt=0, description="exp - iat of a served status list token"
    )
    attestation_grace: int = Field(
        5 * 86400, ge=0, description="attestations live until the next monthly recompute plus this"
    )
    nonce_lifetime: int = Field(
        120, gt=0, description="seconds a proof-of-possession nonce is valid"
    )
    max_body_bytes: int = Field(2 * 1024 * 1024, gt=0, description="largest request body accepted")
    max_batch_rows: int = Field(10_000, gt=0, description="most records in one push")
    header_timeout: float = Field(
        10.0, gt=0, le=300, description="seconds a request's headers may take to arrive"
    )
    body_timeout: float = Field(
        60.0, gt=0, le=3600, description="seconds a request's body may take after its headers"
    )
    keep_alive_timeout: int = Field(
        5, ge=1, le=300, description="seconds an idle keep-alive connection stays open"
    )
    tls_certfile: Path | None = Field(
        None,
        description="serve HTTPS: the certificate chain (PEM) of `ccx node serve`; with "
        "tls_keyfile (a reverse proxy in front usually terminates TLS instead)",
    )
    tls_keyfile: Path | None = Field(
        None, description="serve HTTPS: the private key (PEM) of tls_certfile"
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="open connections per worker before new requests are answered 503 "
        "(capped by the file limit, less descriptors kept for the database and files)",
    )
    scheduler: bool = Field(
        True, description="run jobs in this process (development); production runs `ccx scheduler`"
    )
    admin_token_hash: str | None = Field(
        None,
        description="SHA-256 hex of the admin bearer token (`ccx node admin-token` makes the "
        "token and writes this); unset: the admin API refuses every token",
    )
    metrics_token_hash: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 hex of the bearer token that may read /metrics (Prometheus's "
        "`authorization` credentials); unset: /metrics is off and answers 404",
    )
    api_docs: bool = Field(
        False,
        description="serve the interactive API documentation at /docs and /redoc (their "
        "pages load scripts from a CDN: development only); /openapi.json is always served",
    )
    alliance_root_jwk: str | None = Field(
        None,
        description="the alliance root PUBLIC key every registry must be signed by: JWK JSON "
        "text, or the path of a file holding it (`ccx alliance init` writes root.jwk)",
    )
    registry_url: str | None = Field(
        None,
        description="where to fetch the alliance registry (an alliance host's "
        "/v1/alliance/registry, or a static file); needs alliance_root_jwk",
    )
    registry_refresh: int = Field(300, ge=1, description="seconds between registry fetches")
    registry_max_staleness: int = Field(
        86400,
        ge=60,
        description="seconds without a successful registry fetch after which the node "
        "trusts nothing it holds and refuses visitors (503 registry_stale; /readyz not "
        "ready): the longest an unreachable alliance host freezes the registry (a day: "
        "as long as a status list token lives, CCX_STATUS_LIST_LIFETIME); only on a node "
        "with a registry_url",
    )
    registry_refetch_cooldown: int = Field(
        60, ge=1, description="least seconds between fetches asked for by an unknown key"
    )
    alliance_dir: Path | None = Field(
        None, description="serve this alliance folder's registry and tables (the alliance host)"
    )
    witness_url: str | None = Field(
        None,
        description="the alliance host that witnesses this node's audit head (its base URL): "
        "the scheduled jobs send it a signed checkpoint every witness_interval seconds and "
        "at shutdown; unset: no checkpoints (docs/SECURITY.md, section I)",
    )
    witness_interval: int = Field(
        300, ge=1, description="seconds between checkpoints of the audit head sent to the witness"
    )
    scenarios: Path | None = Field(
        None, description="the service-point scenario catalogue (TOML); default: the demo one"
    )
    challenge_lifetime: int = Field(
        120, gt=0, description="seconds a verification challenge's nonce is valid"
    )
    verify_rate: float = Field(
        5.0, gt=0, description="verification requests per second per service-point client"
    )
    verify_burst: int = Field(
        20, ge=1, description="verification requests a client may make at once (bucket size)"
    )
    rate_limits: bool = Field(
        True,
        description="limit residents, clients and unauthenticated callers with token buckets "
        "shared by every worker (issue 17); false: only the service points' per-worker "
        "limit (benchmarks, tests that fire bursts on purpose)",
    )
    resident_rate: float = Field(
        5.0, gt=0, description="requests per second per resident (subject), every route"
    )
    resident_burst: int = Field(60, ge=1, description="requests a resident may make at once")
    client_rate: float = Field(
        50.0,
        gt=0,
        description="requests per second per department or admin credentials (the service "
        "points' verifications: verify_rate)",
    )
    client_burst: int = Field(300, ge=1, description="requests a client may make at once")
    public_rate: float = Field(
        20.0,
        gt=0,
        description="requests per second per client address to the routes without "
        "credentials (token, PAR, login, the development identity provider, OpenID4VP "
        "request and response endpoints)",
    )
    public_burst: int = Field(200, ge=1, description="such requests an address may make at once")
    failed_auth_rate: float = Field(
        1.0, gt=0, description="failed authentications per second per client address"
    )
    failed_auth_burst: int = Field(
        30,
        ge=1,
        description="failed authentications an address may make at once; beyond, its "
        "requests with credentials not known good are 429 before any look-up",
    )

    @field_validator("node_id", "alliance")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("admin_token_hash")
    @classmethod
    def _sha256_hex(cls, value: str | None) -> str | None:
        # issue 20: the raw token put here was accepted, then refused on every admin call
        if value is None or not value.strip():  # CCX_ADMIN_TOKEN_HASH= : no admin token
            return None
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value.strip()):
            raise ValueError(
                "must be the SHA-256 of the admin token in hex (64 characters 0-9a-f), not "
                "the token itself: `ccx node admin-token` makes both"
            )
        return value.strip().lower()

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together: set both or neither")
        return self

    @field_validator("registry_url", "idp_authorization_endpoint", "witness_url")
    @classmethod
    def _optional_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("wallet_redirect_uris")
    @classmethod
    def _redirect_uris(cls, values: list[str]) -> list[str]:
        for value in values:
            scheme, _, rest = value.partition(":")
            if not scheme or not rest or "#" in value:
                raise ValueError(f"{value!r} is not an absolute URI without a fragment")
        return values

    def keyring_secret(self) -> bytes:
        """The keyring passphrase as bytes.

        Raises ``KeyringError`` when it is the built-in development passphrase and the
        development identity provider is off: that node is a real one, and its signing
        keys must not open with a passphrase anyone can read in our repository
        (docs/SECURITY.md, section 8). Fails closed, before any keyring is written or
        read."""
        value = self.keyring_passphrase.get_secret_value()
        if value == DEVELOPMENT_PASSPHRASE and not self.dev_idp:
            raise KeyringError(
                "the keyring passphrase is the built-in development one (is "
                "CCX_KEYRING_PASSPHRASE unset?): set CCX_KEYRING_PASSPHRASE to a passphrase "
                "of your own, at least 12 bytes; the default is accepted only beside the "
                "development identity provider (CCX_DEV_IDP=true)"
            )
        return value.encode("utf-8")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'node.db'}"

    @property
    def keyring_path(self) -> Path:
        return self.data_dir / "keyring.json"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _TomlConfig(settings_cls),
            file_secret_settings,
        )


class _TomlConfig(PydanticBaseSettingsSource):
    """The city config file named by ``CCX_CONFIG`` (its ``[node]`` table)."""

    def get_field_value(
        self, field: Any, field_name: str
    ) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("CCX_CONFIG")
        if not path:
            return {}
        with Path(path).open("rb") as file:
            data = tomllib.load(file)
        node = data.get("node", {})
        return dict(node) if isinstance(node, dict) else {}


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with ``overrides`` on top (tests, the CLI)."""
    return Settings(**overrides)
