"""`ccx alliance`: the alliance administrators' registry tool (DESIGN section 7, PROTOCOL 7).

An alliance is a folder (``--dir``): the encrypted root keyring (kept offline), the
root public key every node pins, the working state ``alliance.json``, and the signed
registry versions under ``registry/`` that a static file host can serve. This module is
the I/O shell: files, clock, environment, network (an admitted member's JWKS) and the
terminal; the state and the registry claims live in ``alliance/state.py``.

Every failure the user can fix prints one line ``error [code] field: message`` to
stderr and exits with status 2; nothing is written then.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alliance.mapping_cli import PASSPHRASE_ENV
from cli import (
    NowOption,
    as_input_error,
    format_time,
    now_from,
    parse_time,
    pretty_json,
    read_bytes,
    reports_errors,
    write_atomically,
)

if TYPE_CHECKING:  # the rest is imported by the command that uses it: `ccx` starts at once
    import protocol as P
    from alliance.state import AllianceState

__all__ = ["DEFAULT_LIFETIME", "alliance_app"]

STATE_FILE = "alliance.json"
ROOT_KEYRING = "root.keyring.json"
ROOT_JWK = "root.jwk"
REGISTRY_DIR = "registry"
TABLES_DIR = "tables"
DEFAULT_LIFETIME = "7d"  # issue 17: a frozen (lying) host holds a version this long at most
FETCH_TIMEOUT = 10.0
MAX_JWKS_BYTES = 1 << 20

alliance_app = typer.Typer(
    name="alliance",
    help=(
        "Run an alliance: its root key, members and their issuing keys, the alliance "
        "scale, mapping tables and policy, and the signed registry every node trusts. "
        "An alliance is a folder (--dir); see docs/ALLIANCE.md."
    ),
    no_args_is_help=True,
    add_completion=False,
)


# --- errors: one line, exit 2 --------------------------------------------------------------


def _parse_json(data: bytes, what: str, field: str) -> Any:
    import protocol as P
    from alliance.state import AllianceError

    try:
        return P.strict_json_loads(data, what=what)
    except P.ProtocolError as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
        raise AllianceError("invalid_json", field, f"{exc.message}{cause}") from exc


def _read_json(path: Path, field: str) -> Any:
    return _parse_json(read_bytes(path, field), str(path), field)


def _read_text(path: Path, field: str) -> str:
    from alliance.state import AllianceError

    try:
        return read_bytes(path, field).decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise AllianceError("invalid_token", field, f"{path} is not a compact JWT") from exc


def _write(path: Path, data: bytes, field: str = "--dir", *, private: bool = False) -> None:
    from alliance.state import AllianceError

    try:
        write_atomically(path, data, mode=0o600 if private else 0o666)
    except OSError as exc:
        raise AllianceError("file_error", field, f"cannot write {path}: {exc.strerror}") from exc


def _mkdir(path: Path) -> None:
    from alliance.state import AllianceError

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AllianceError("file_error", "--dir", f"cannot create {path}: {exc.strerror}") from exc


def _load_state(folder: Path) -> AllianceState:
    from alliance.state import AllianceError, AllianceState

    path = folder / STATE_FILE
    if not path.exists():
        raise AllianceError(
            "no_alliance", "--dir", f"{folder} holds no alliance; run `ccx alliance init` first"
        )
    return AllianceState.from_json(_read_json(path, "--dir"), str(path))


def _save_state(folder: Path, state: AllianceState) -> None:
    _write(folder / STATE_FILE, pretty_json(state.to_json()))


def _root_public_key(folder: Path, state: AllianceState) -> P.PublicKey:
    import protocol as P
    from alliance.state import AllianceError

    path = folder / ROOT_JWK
    jwk = _read_json(path, "--dir")
    try:
        key = P.public_key_from_jwk(jwk)
    except P.ProtocolError as exc:
        raise AllianceError(exc.code, "--dir", f"{exc.message} (in {path})") from exc
    if P.jwk_thumbprint(jwk) != state.root_kid:
        raise AllianceError(
            "key_mismatch", "--dir", f"{path} is not the root key {state.root_kid} of the alliance"
        )
    return key


def _passphrase(*, confirm: bool = False) -> bytes:
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if passphrase is None:
        passphrase = typer.prompt(
            "Passphrase of the alliance root keyring",
            hide_input=True,
            confirmation_prompt=confirm,  # a typo at init would lock the root key away
        )
    return passphrase.encode("utf-8")


def _root_signing_key(folder: Path, state: AllianceState) -> P.PrivateKey:
    from alliance.state import AllianceError
    from keys import Keyring, KeyringError

    path = folder / ROOT_KEYRING
    data = read_bytes(path, "--dir")
    try:
        ring = Keyring.load(data, _passphrase())
    except KeyringError as exc:
        raise as_input_error(exc, PASSPHRASE_ENV) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise AllianceError("keyring_error", "--dir", f"malformed keyring {path}: {exc}") from exc
    if ring.active.kid != state.root_kid:
        raise AllianceError(
            "key_mismatch", "--dir", f"{path} does not hold the root key {state.root_kid}"
        )
    return ring.active.private_key


# --- values on the command line --------------------------------------------------------------


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _parse_duration(text: str, field: str) -> int:
    """``90``, ``90s``, ``30m``, ``12h``, ``7d`` or ``2w`` as seconds (> 0)."""
    from alliance.state import AllianceError

    match = re.fullmatch(r"(\d+)([smhdw]?)", text.strip())
    if match is None or int(match[1]) == 0:
        raise AllianceError(
            "invalid_duration", field, f"{text!r} is not a duration like 3600, 12h, 7d or 2w"
        )
    return int(match[1]) * _UNITS[match[2] or "s"]


def _load_jwks(source: str, field: str = "--jwks") -> dict[str, Any]:
    """A JWKS from a file, or fetched from an http(s) URL (a node's /.well-known/jwks.json)."""
    import httpx

    from alliance.state import AllianceError, check_http_url, parse_jwks

    if source.startswith(("http://", "https://")):
        check_http_url(source, field)
        try:
            response = httpx.get(source, timeout=FETCH_TIMEOUT, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise AllianceError("fetch_failed", field, f"cannot fetch {source}: {exc}") from exc
        if response.status_code != 200:
            raise AllianceError(
                "fetch_failed", field, f"{source} answered HTTP {response.status_code}"
            )
        if len(response.content) > MAX_JWKS_BYTES:
            raise AllianceError("fetch_failed", field, f"{source} sent more than 1 MiB")
        data = _parse_json(response.content, source, field)
    else:
        data = _read_json(Path(source), field)
    return parse_jwks(data, field)


def _describe_key(jwk: dict[str, Any], now: int) -> str:
    notes = [jwk["alg"]]
    if "nbf" in jwk:
        notes.append(f"from {format_time(jwk['nbf'])}")
    if "exp" in jwk:
        notes.append(("expired " if jwk["exp"] < now else "until ") + format_time(jwk["exp"]))
    return f"{jwk['kid']} ({', '.join(notes)})"


# --- options -------------------------------------------------------------------------------

DirOption = Annotated[
    Path,
    typer.Option(
        "--dir",
        metavar="FOLDER",
        help="The alliance folder (alliance.json, root.jwk, root.keyring.json, registry/).",
    ),
]
MemberOption = Annotated[
    str,
    typer.Option(
        "--member-id",
        metavar="URL",
        help="The member's node URL: the `iss` of its attestations.",
        show_default=False,
    ),
]
CredentialOption = Annotated[
    list[str] | None,
    typer.Option(
        "--credential",
        metavar="TYPE",
        help="A credential type the member issues: credit_standing or domestic_service; "
        "repeat for both. Not given at admit: the registry lists none, which verifiers "
        "read as credit_standing alone (docs/CREDENTIALS.md).",
        show_default=False,
    ),
]
JwksOption = Annotated[
    str,
    typer.Option(
        "--jwks",
        metavar="FILE_OR_URL",
        help="The member's issuing keys: a JWKS file, or an http(s) URL to fetch it from "
        "(its node's /.well-known/jwks.json). Public keys only, each with kid (its RFC "
        "7638 thumbprint) and alg.",
        show_default=False,
    ),
]
DEFAULT_DIR = Path("alliance")


# --- commands ------------------------------------------------------------------------------


@alliance_app.command()
@reports_errors
def init(
    alliance_id: Annotated[
        str,
        typer.Option(
            "--id", metavar="URL", help="The alliance id: the registry's `iss`.", show_default=False
        ),
    ],
    folder: DirOption = DEFAULT_DIR,
    now: NowOption = None,
    alg: Annotated[
        str, typer.Option("--alg", metavar="ALG", help="The root key's algorithm: ES256 or EdDSA.")
    ] = "ES256",
) -> None:
    """Create an alliance: its root keyring, the root public key and the working state.

    The root keyring (root.keyring.json, mode 0600) is encrypted with the passphrase in
    $CCX_KEYRING_PASSPHRASE (else a hidden prompt); keep it offline. root.jwk is the
    public key every node pins. Refuses to overwrite an existing alliance.
    """
    from alliance.state import AllianceError, AllianceState, check_http_url
    from keys import Keyring, KeyringError, generate_key
    from mappings import AllianceScale

    check_http_url(alliance_id, "--id")
    if alg not in ("ES256", "EdDSA"):
        raise AllianceError("invalid_value", "--alg", "must be ES256 or EdDSA")
    existing = [n for n in (STATE_FILE, ROOT_KEYRING, ROOT_JWK) if (folder / n).exists()]
    if existing:
        raise AllianceError(
            "alliance_exists", "--dir", f"{folder / existing[0]} exists; refusing to overwrite"
        )
    ring = Keyring.create(now=now_from(now), alg=alg, generate=generate_key)
    try:
        dumped = ring.dump(_passphrase(confirm=True))
    except KeyringError as exc:  # a short passphrase, refused before anything is written
        raise as_input_error(exc, PASSPHRASE_ENV) from exc
    root = ring.active
    state = AllianceState(id=alliance_id, root_kid=root.kid, scale=AllianceScale().to_json())
    _mkdir(folder)
    _write(folder / ROOT_KEYRING, dumped, private=True)
    _write(folder / ROOT_JWK, pretty_json(root.public_jwk()))
    _save_state(folder, state)
    typer.echo(f"alliance {alliance_id} created in {folder}")
    typer.echo(f"  root key kid (RFC 7638 thumbprint): {root.kid}")
    typer.echo(f"  pin {folder / ROOT_JWK} in every node; keep {folder / ROOT_KEYRING} offline")


@alliance_app.command()
@reports_errors
def admit(
    member_id: MemberOption,
    name: Annotated[
        str, typer.Option("--name", help="The member's display name.", show_default=False)
    ],
    city: Annotated[
        str,
        typer.Option(
            "--city", help="The city it serves (lower-case id, e.g. xiamen).", show_default=False
        ),
    ],
    jwks: JwksOption,
    local_scale: Annotated[
        Path | None,
        typer.Option(
            "--local-scale",
            metavar="FILE",
            help="The city's local scale as JSON: {name, min, max, step} or "
            "{name, labels: [lowest, ..., highest]}.",
            show_default=False,
        ),
    ] = None,
    credential: CredentialOption = None,
    folder: DirOption = DEFAULT_DIR,
) -> None:
    """Admit a member node with its issuing keys (active in the next published version)."""
    from alliance.state import parse_local_scale

    state = _load_state(folder)
    scale = (
        parse_local_scale(_read_json(local_scale, "--local-scale"), "--local-scale")
        if local_scale is not None
        else None
    )
    keys = _load_jwks(jwks)
    state = state.admit(
        member_id=member_id, name=name, city=city, jwks=keys, local_scale=scale,
        credentials=credential or (),
    )  # fmt: skip
    _save_state(folder, state)
    kids = ", ".join(k["kid"] for k in keys["keys"])
    typer.echo(f"admitted {member_id} ({city}) with keys {kids}")


@alliance_app.command("credentials")
@reports_errors
def set_credentials(
    member_id: MemberOption,
    credential: CredentialOption = None,
    folder: DirOption = DEFAULT_DIR,
) -> None:
    """Say which credential types a member issues (credit_standing, domestic_service):
    from the next published version, verifiers refuse any other type from it."""
    state = _load_state(folder)
    state = state.set_credentials(member_id, credential or [])
    _save_state(folder, state)
    listed = state.member(member_id)["credentials"]
    typer.echo(f"{member_id} issues {', '.join(listed)} (publish to take effect)")


@alliance_app.command()
@reports_errors
def suspend(member_id: MemberOption, folder: DirOption = DEFAULT_DIR) -> None:
    """Suspend a member: from the next published version, nodes refuse its attestations."""
    _set_status(folder, member_id, "suspended")


@alliance_app.command()
@reports_errors
def reinstate(member_id: MemberOption, folder: DirOption = DEFAULT_DIR) -> None:
    """Reinstate a suspended member (active again from the next published version)."""
    _set_status(folder, member_id, "active")


def _set_status(folder: Path, member_id: str, status: str) -> None:
    state = _load_state(folder)
    if state.member(member_id)["status"] == status:
        typer.echo(f"{member_id} is already {status}; nothing changed", err=True)
        return
    _save_state(folder, state.set_status(member_id, status))
    typer.echo(f"{member_id} is now {status} (publish to take effect)")


@alliance_app.command("keys")
@reports_errors
def replace_keys(
    member_id: MemberOption,
    jwks: JwksOption,
    allow_drop: Annotated[
        bool,
        typer.Option(
            "--allow-drop",
            help="Allow dropping a key that has not expired (a compromised key): "
            "attestations it signed stop verifying.",
        ),
    ] = False,
    folder: DirOption = DEFAULT_DIR,
    now: NowOption = None,
) -> None:
    """Replace a member's key set, for key rotation.

    The new set lists the member's active key, its next key, and every retired key
    (with exp) until the last attestation it signed has expired. A key may leave the
    set only once its exp has passed, unless --allow-drop.
    """
    state = _load_state(folder)
    keys = _load_jwks(jwks)
    state = state.replace_keys(member_id, keys, now=now_from(now), allow_drop=allow_drop)
    _save_state(folder, state)
    typer.echo(f"{member_id} keys: {', '.join(k['kid'] for k in keys['keys'])}")


@alliance_app.command()
@reports_errors
def scale(
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            metavar="SCALE.json",
            help="The `scale` claim (min, max, reference, bands, thresholds), or a registry "
            "payload holding one. Default: the default alliance scale (normal, mean 600, "
            "sd 100, 0..1000).",
            show_default=False,
        ),
    ] = None,
    drop_tables: Annotated[
        bool,
        typer.Option("--drop-tables", help="Remove the mapping tables built for the old scale."),
    ] = False,
    folder: DirOption = DEFAULT_DIR,
) -> None:
    """Set the alliance scale: the reference distribution, bands and thresholds."""
    from alliance.state import parse_scale
    from mappings import AllianceScale

    state = _load_state(folder)
    chosen = parse_scale(_read_json(file, "--file"), "--file") if file else AllianceScale()
    _save_state(folder, state.with_scale(chosen, drop_tables=drop_tables))
    typer.echo(f"alliance scale {chosen.min}..{chosen.max}, sha256 {chosen.sha256}")


@alliance_app.command()
@reports_errors
def table(
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            metavar="T.table.jwt",
            help="A mapping table signed with the alliance root key (ccx mapping build --sign).",
            show_default=False,
        ),
    ],
    uri: Annotated[
        str,
        typer.Option(
            "--uri", metavar="URL", help="Where nodes fetch the table.", show_default=False
        ),
    ],
    folder: DirOption = DEFAULT_DIR,
    now: NowOption = None,
) -> None:
    """Attach a signed mapping table for an admitted member's city.

    Verified with the root key, for this alliance and its current scale; a newer
    version for a city is added, and older ones stay while attestations made with them may be alive. A copy goes to tables/ in the folder.
    """
    import protocol as P
    from alliance.state import AllianceError, attach_table
    from mappings import MappingError, MappingTable

    state = _load_state(folder)
    key = _root_public_key(folder, state)
    token = _read_text(file, "--file")
    try:
        MappingTable.from_token(token, key=key, alliance=state.id, scale=state.alliance_scale)
    except MappingError as exc:
        raise AllianceError(exc.code, f"--file {exc.field}", str(exc).split(": ", 1)[-1]) from exc
    except P.ProtocolError as exc:
        raise AllianceError(exc.code, "--file", f"{exc.message} (in {file})") from exc
    # The registry entry hashes the claims exactly as signed (PROTOCOL section 7a).
    claims = P.verify_mapping_table(token, key=key)
    state, entry = attach_table(state, claims, uri=uri, now=now_from(now))
    _mkdir(folder / TABLES_DIR)
    copy = folder / TABLES_DIR / f"{entry['city']}.v{entry['version']}.table.jwt"
    _write(copy, token.encode("ascii") + b"\n")
    _save_state(folder, state)
    typer.echo(
        f"attached {entry['city']} table version {entry['version']}: sha256 {entry['sha256']}"
    )


@alliance_app.command()
@reports_errors
def policy(
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            metavar="policy.json",
            help="The policy claim: max_attestation_age, status_stale_limit, scenarios "
            "(see docs/ALLIANCE.md).",
            show_default=False,
        ),
    ],
    folder: DirOption = DEFAULT_DIR,
) -> None:
    """Set the policy: scenarios every member honours for visitors, their minimum
    alliance scores, the oldest attestation accepted and how stale a status list may be."""
    from alliance.state import parse_policy

    state = _load_state(folder)
    checked = parse_policy(_read_json(file, "--file"), state.alliance_scale, "--file")
    _save_state(folder, state.with_policy(checked))
    typer.echo(f"policy set: {len(checked['scenarios'])} scenarios")


@alliance_app.command()
@reports_errors
def publish(
    valid_from: Annotated[
        str | None,
        typer.Option(
            "--valid-from",
            metavar="TIME",
            help="When the version takes effect: epoch seconds, YYYY-MM-DD or ISO 8601 "
            "(may lie ahead). Default: now.",
            show_default=False,
        ),
    ] = None,
    lifetime: Annotated[
        str,
        typer.Option(
            "--lifetime",
            metavar="DURATION",
            help="How long the version stays valid after it takes effect (3600, 12h, 7d, 2w).",
        ),
    ] = DEFAULT_LIFETIME,
    folder: DirOption = DEFAULT_DIR,
    now: NowOption = None,
) -> None:
    """Sign the next registry version with the root key and write it to registry/.

    Writes registry/v{N}.jwt and registry/current.jwt atomically, verifies what was
    written against root.jwk and the previous version, and records it in alliance.json.
    The passphrase comes from $CCX_KEYRING_PASSPHRASE, else a hidden prompt.
    """
    import protocol as P
    from alliance.certificates import certify
    from alliance.state import AllianceError, PublishedVersion, registry_claims

    moment = now_from(now)
    state = _load_state(folder)
    root_public = _root_public_key(folder, state)
    seconds = _parse_duration(lifetime, "--lifetime")
    start = moment if valid_from is None else parse_time(valid_from, "--valid-from")
    registry = folder / REGISTRY_DIR
    last = state.last
    previous: P.Registry | None = None
    if last is not None:
        token = _read_text(registry / f"v{last.version}.jwt", "--dir")
        if P.registry_hash(token) != last.sha256:
            raise AllianceError(
                "state_mismatch",
                "--dir",
                f"registry/v{last.version}.jwt is not the version published",
            )
        previous = P.verify_registry(token, root_key=root_public, now=moment, check_expiry=False)
        if start < previous.valid_from:
            raise AllianceError(
                "invalid_time",
                "--valid-from",
                f"is before version {last.version}'s valid_from {format_time(previous.valid_from)}",
            )
    version = 1 if last is None else last.version + 1
    target = registry / f"v{version}.jwt"
    signing_key = _root_signing_key(folder, state)
    state = certify(state, signing_key, now=moment)  # the verifier CA and member leaves
    if target.exists():
        raise AllianceError(
            "state_mismatch", "--dir", f"{target} exists but alliance.json does not record it"
        )
    claims = registry_claims(
        state,
        version=version,
        prev=None if previous is None else previous.sha256,
        valid_from=start,
        expires_at=max(start, moment) + seconds,
    )
    token = P.sign_registry(claims, root_key=signing_key, now=moment)
    # Fail closed: what nodes will receive must verify against the pinned key and chain.
    verified = P.verify_registry(token, root_key=root_public, now=moment, previous=previous)
    _mkdir(registry)
    _write(target, token.encode("ascii"))
    _write(registry / "current.jwt", token.encode("ascii"))
    on_disk = _read_text(target, "--dir")
    P.verify_registry(on_disk, root_key=root_public, now=moment, previous=previous)
    published = PublishedVersion(
        version=version,
        sha256=verified.sha256,
        issued_at=verified.issued_at,
        valid_from=verified.valid_from,
        expires_at=verified.expires_at,
        content_sha256=state.content_sha256(),
    )
    _save_state(folder, state.with_published(published))
    typer.echo(f"published registry version {version}")
    typer.echo(f"  sha256      {verified.sha256}")
    typer.echo(f"  valid_from  {format_time(verified.valid_from)}")
    typer.echo(f"  exp         {format_time(verified.expires_at)}")
    typer.echo(f"  file        {target}")


@alliance_app.command()
@reports_errors
def show(folder: DirOption = DEFAULT_DIR, now: NowOption = None) -> None:
    """A readable summary: members and keys, scale, tables, policy, and what is published."""
    state = _load_state(folder)
    moment = now_from(now)
    chosen = state.alliance_scale
    typer.echo(f"Alliance {state.id}")
    typer.echo(f"  root key     {state.root_kid}")
    typer.echo(
        f"  scale        {chosen.min}..{chosen.max}, thresholds "
        f"{', '.join(str(t) for t in chosen.thresholds)} (sha256 {chosen.sha256[:16]}...)"
    )
    typer.echo(f"Members ({len(state.members)})")
    for member in state.members:
        typer.echo(f"  {member['id']}  {member['name']} ({member['city']})  {member['status']}")
        for jwk in member["jwks"]["keys"]:
            typer.echo(f"    key {_describe_key(jwk, moment)}")
    typer.echo(f"Mapping tables ({len(state.mapping_tables)})")
    for entry in state.mapping_tables:
        typer.echo(
            f"  {entry['city']} v{entry['version']}  {format_time(entry['valid_from'])} to "
            f"{format_time(entry['valid_to'])}  sha256 {entry['sha256'][:16]}...  {entry['uri']}"
        )
    effective = state.effective_policy
    typer.echo("Policy" + (" (default)" if state.policy is None else ""))
    typer.echo(f"  max attestation age  {effective['max_attestation_age']} s")
    typer.echo(f"  status stale limit   {effective['status_stale_limit']} s")
    for kind, rule in effective["scenarios"].items():
        minimum = rule["min_alliance_score"]
        typer.echo(f"  {kind:<32} {'no minimum' if minimum is None else f'>= {minimum}'}")
    last = state.last
    if last is None:
        typer.echo("Published: nothing yet")
        return
    typer.echo(
        f"Published: version {last.version}, sha256 {last.sha256}, valid from "
        f"{format_time(last.valid_from)}, expires {format_time(last.expires_at)}"
        + (" (EXPIRED)" if last.expires_at < moment else "")
    )
    if state.differs_from_published():
        typer.echo("  the working state differs from it: run `ccx alliance publish`")
    else:
        typer.echo("  the working state matches it")
