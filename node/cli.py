"""The node operator's commands: `ccx node init | serve | rotate-keys | withdraw-records`
(make a node's keys and database, run it, rotate its signing key, take back a leaked
client's records), `ccx audit verify` (check its audit
chain) and `ccx scheduler` (run its jobs). ``python -m node serve ...`` runs `ccx node`
alone (node/__main__.py), as the simulator and the durability tests start nodes."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import InputError, NowOption, as_input_error, fail, now_from, parse_time, read_bytes

if TYPE_CHECKING:  # the rest is imported by the command that uses it: `ccx` starts at once
    import protocol as P
    from node.settings import Settings

__all__ = ["EXIT_BROKEN_CHAIN", "audit_app", "node_app", "scheduler"]


class LogLevel(enum.StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


# Seconds uvicorn's supervisor waits for a worker to answer its health check before it
# kills the worker and starts another (uvicorn >= 0.37, hence the pin; its default is 5 s). A worker first answers once it has imported the node, 2-3 s of CPU:
# on a loaded 2-vCPU machine that took over 5 s, so `--workers 2` killed workers that were
# still starting, and their replacements too (issue 7, tests/durability/test_workers.py).
# A worker that hangs for good is still replaced, half a minute later.
WORKER_HEALTHCHECK_TIMEOUT = 30

node_app = typer.Typer(
    help="Run a city node: create its keys and database, serve its HTTP API.", no_args_is_help=True
)


def _no_keyring(settings: Settings) -> InputError:
    return InputError(
        "no_keyring",
        "--data-dir",
        f"no keyring at {settings.keyring_path}: run `ccx node init --city {settings.city} "
        f"--data-dir {settings.data_dir}` first",
    )


def _settings(city: str | None, data_dir: Path | None, node_id: str | None) -> Settings:
    overrides = {
        k: v
        for k, v in {"city": city, "data_dir": data_dir, "node_id": node_id}.items()
        if v is not None
    }
    return _load_settings(**overrides)


# Settings whose value an error line must not repeat (it may be a secret, or hold one).
_SECRET_SETTINGS = ("passphrase", "token", "secret", "password", "database_url")


def _load_settings(**overrides: Any) -> Settings:
    """The node's settings (CCX_* variables, .env, CCX_CONFIG, then ``overrides``); one
    that does not validate is the operator's to fix: one line naming its variable, not
    pydantic's traceback (issue 20: a bad CCX_REGISTRY_URL printed 46 lines)."""
    from pydantic import ValidationError

    from node.settings import load_settings

    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        if name and "input" in first and not any(w in name for w in _SECRET_SETTINGS):
            message += f", not {first['input']!r}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        fail(InputError("invalid_setting", f"CCX_{name.upper()}" if name else "settings", message))


@node_app.command("init")
def init(
    city: Annotated[str, typer.Option("--city", help="the city this node serves")],
    data_dir: Annotated[
        Path | None, typer.Option(help="where the database and keyring live (CCX_DATA_DIR)")
    ] = None,
    node_id: Annotated[
        str | None, typer.Option(help="the node's base URL, the iss of its attestations")
    ] = None,
) -> None:
    """Create the data folder, the database schema and the signing keyring (encrypted with
    CCX_KEYRING_PASSPHRASE). Safe to run again: existing keys are kept."""
    from keys import KeyringError
    from node.app import initialize_node

    settings = _settings(city, data_dir, node_id)
    try:
        ring = initialize_node(settings)
    except KeyringError as exc:  # the operator's to fix: one line, not a traceback
        fail(as_input_error(exc, "CCX_KEYRING_PASSPHRASE"))
    typer.echo(f"node for {settings.city} ready in {settings.data_dir}")
    typer.echo(f"  database: {settings.effective_database_url.split('@')[-1]}")
    typer.echo(f"  active key: {ring.active.kid}")
    typer.echo(f"  next key:   {ring.next.kid if ring.next else '-'}")


@node_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    access_log: Annotated[
        bool, typer.Option(help="log every request (uvicorn's access log)")
    ] = True,
    log_level: Annotated[LogLevel, typer.Option(help="uvicorn's log level")] = LogLevel.info,
) -> None:
    """Serve the node's HTTP API with uvicorn (settings from CCX_* variables and .env)."""
    import uvicorn

    from keys import KeyringError

    settings = _load_settings()
    if not settings.keyring_path.exists():  # say so in one line, not in a traceback
        fail(_no_keyring(settings))
    from node.server import uvicorn_options
    from node.services.registry import follower_for
    from node.state import load_keyring

    try:  # a bad passphrase or pinned root key is the operator's to fix: one line
        load_keyring(settings)  # before the workers start, each failing with a traceback
        follower_for(settings, now=0)
    except KeyringError as exc:
        fail(as_input_error(exc, "CCX_KEYRING_PASSPHRASE"))
    except ValueError as exc:  # the pinned alliance root key can't be read or used
        message = str(exc).removeprefix("CCX_ALLIANCE_ROOT_JWK").lstrip(": ")
        fail(InputError("invalid_root_key", "CCX_ALLIANCE_ROOT_JWK", message))

    uvicorn.run(
        "node.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.value,
        access_log=access_log,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT,
        **uvicorn_options(settings),
    )


@node_app.command("rotate-keys")
def rotate_keys(
    data_dir: Annotated[
        Path | None, typer.Option(help="where the database and keyring live (CCX_DATA_DIR)")
    ] = None,
) -> None:
    """Rotate the signing key: the next key signs from now on, the active key is retired
    (it verifies until its last attestation has expired), a new next key is made.
    Audit-logged. Running workers pick the new keyring up within seconds. Rotate only
    once the next key is in the alliance registry version in effect."""
    import time

    from sqlmodel import Session

    from keys import KeyringError
    from node.db import make_engine
    from node.errors import NodeError
    from node.services.keys import require_next_key_in_registry, rotate_signing_key
    from node.services.registry import follower_for
    from node.state import load_keyring

    settings = _settings(None, data_dir, None)
    if not settings.keyring_path.exists():
        fail(_no_keyring(settings))
    try:
        before = load_keyring(settings).next
        require_next_key_in_registry(
            follower_for(settings, now=int(time.time())),
            settings.node_id,
            before.kid if before else None,
            now=int(time.time()),
        )
    except KeyringError as exc:  # a wrong passphrase, a damaged file: say which, change nothing
        fail(as_input_error(exc, "CCX_KEYRING_PASSPHRASE"))
    except NodeError as exc:
        fail(InputError(exc.code, "--data-dir", exc.message))
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            _, done = rotate_signing_key(session, settings, actor="admin", now=int(time.time()))
    finally:
        engine.dispose()
    if before is not None and before.kid != done.active_kid:  # another rotation came between
        typer.echo("note: the keyring changed while this ran; showing the final state")
    typer.echo(f"active key:  {done.active_kid}")
    typer.echo(f"next key:    {done.next_kid}")
    typer.echo(f"retired key: {done.retired_kid} (verifies until {done.retired_until})")


@node_app.command("withdraw-records")
def withdraw_records(
    client: Annotated[str, typer.Option("--client", metavar="ID", help="the client's id")],
    since: Annotated[
        str,
        typer.Option(
            "--since",
            metavar="TIME",
            help="its records pushed from then on: epoch seconds, YYYY-MM-DD or ISO 8601",
        ),
    ],
    data_dir: Annotated[
        Path | None, typer.Option(help="where the database and keyring live (CCX_DATA_DIR)")
    ] = None,
    now: NowOption = None,
) -> None:
    """Withdraw the records a client pushed since a time (credentials that leaked: revoke
    them first). Each is marked removed, as an upheld objection removes a record; the
    residents concerned are rescored; audited (records.withdrawn). Other clients'
    records are untouched; running it again withdraws nothing more. As POST
    /v1/admin/clients/{id}/withdraw-records, on the node's database directly."""
    from sqlmodel import Session

    from keys import KeyringError
    from node.db import make_engine
    from node.errors import NodeError
    from node.scoring import ModelError, load_model
    from node.services.records import withdraw_client_records
    from node.state import Metrics, NodeState, load_keyring

    try:
        moment, at = parse_time(since, "--since"), now_from(now)
    except InputError as exc:
        fail(exc)
    settings = _settings(None, data_dir, None)
    if not settings.keyring_path.exists():
        fail(_no_keyring(settings))
    try:
        keyring = load_keyring(settings)
        model = load_model(settings.scoring_model)
    except KeyringError as exc:
        fail(as_input_error(exc, "CCX_KEYRING_PASSPHRASE"))
    except ModelError as exc:
        fail(InputError("invalid_model", "CCX_SCORING_MODEL", str(exc)))
    engine = make_engine(settings.effective_database_url)
    try:
        state = NodeState(settings, engine, keyring, model, Metrics())
        with Session(engine) as session:
            done = withdraw_client_records(
                session, state, client, since=moment, actor="admin", now=at
            )
    except NodeError as exc:
        fail(InputError(exc.code, "--client", exc.message))
    finally:
        engine.dispose()
    typer.echo(
        f"withdrew {done.withdrawn} records of client {done.client_id} pushed since "
        f"{done.since}; {done.residents} residents rescored, "
        f"{done.objections_closed} open objections upheld"
    )


# --- ccx node admin-token, ccx node client (issue 20) ------------------------------------

ADMIN_HASH_VARIABLE = "CCX_ADMIN_TOKEN_HASH"


@node_app.command("admin-token")
def admin_token(
    env_file: Annotated[
        Path,
        typer.Option(
            "--env-file",
            metavar="FILE",
            help="The .env file the node reads, in the folder it is started from.",
        ),
    ] = Path(".env"),
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace the admin token's hash the file already holds."),
    ] = False,
) -> None:
    """Make the admin bearer token: print it once on stdout and write its SHA-256 as
    CCX_ADMIN_TOKEN_HASH into the node's .env file (mode 0600), which `ccx node serve`
    reads from the folder it starts in. The node keeps only the hash: keep the token
    (e.g. in CCX_ADMIN_TOKEN, as `ccx node client` reads it). Restart the node to use it.
    Refuses to replace a hash without --force."""
    import hashlib
    import os
    import secrets

    from cli import write_atomically

    try:
        lines = read_bytes(env_file, "--env-file").decode("utf-8").splitlines()
    except InputError as exc:
        if exc.code != "file_not_found":
            fail(exc)
        lines = []
    except UnicodeDecodeError:
        fail(InputError("file_error", "--env-file", f"{env_file} is not UTF-8 text"))

    def sets_hash(line: str) -> bool:
        return line.strip().removeprefix("export ").lstrip().startswith(f"{ADMIN_HASH_VARIABLE}=")

    if any(sets_hash(line) for line in lines) and not force:
        fail(
            InputError(
                "admin_token_exists",
                "--env-file",
                f"{env_file} already sets {ADMIN_HASH_VARIABLE}; pass --force to replace it "
                "(the old token stops working once the node restarts)",
            )
        )
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode("ascii")).hexdigest()
    kept = [line for line in lines if not sets_hash(line)]
    text = "\n".join([*kept, f"{ADMIN_HASH_VARIABLE}={digest}"]) + "\n"
    try:
        write_atomically(env_file, text.encode("utf-8"), mode=0o600)
        os.chmod(env_file, 0o600)  # an older file's mode, too: it names the admin's hash
    except OSError as exc:
        fail(InputError("file_error", "--env-file", f"cannot write {env_file}: {exc.strerror}"))
    typer.echo(token)
    typer.echo(
        f"the admin token, shown this once: keep it (e.g. export CCX_ADMIN_TOKEN=...); "
        f"its hash is in {env_file}; restart the node to use it",
        err=True,
    )
    if os.environ.get(ADMIN_HASH_VARIABLE):
        typer.echo(
            f"warning: {ADMIN_HASH_VARIABLE} is set in this environment, and the node takes "
            f"it over {env_file}: unset it before starting the node",
            err=True,
        )


NodeUrlOption = Annotated[
    str,
    typer.Option(
        "--node",
        metavar="URL",
        envvar="CCX_NODE_URL",
        help="The node's base URL, e.g. http://127.0.0.1:8001 (or $CCX_NODE_URL).",
        show_envvar=False,
    ),
]

EXIT_NOT_READY = 1  # `ready`: the node answered, not ready (2: it never answered)


@node_app.command("ready")
def ready(
    node: NodeUrlOption,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            metavar="SECONDS",
            min=0,
            help="Ask again every half second until ready, for at most this long (a node "
            "still starting does not answer yet; a follower waits for its registry).",
        ),
    ] = 0,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Only whether it answers at all (GET /healthz): a follower answers before "
            "its first registry makes it ready.",
        ),
    ] = False,
) -> None:
    """Whether a node is ready to serve: its database answers, its keys are loaded and,
    on a node that follows an alliance registry, a version is in effect. Prints "ready"
    with the registry version, or why not; exits 0 when ready, 1 when it answered not
    ready, 2 when it never answered. As GET /readyz; in a script, after `ccx node serve
    ... &`, `ccx node ready --node URL --wait 30` waits for it."""
    import time

    import httpx

    from cli import node_client, pause

    deadline = time.monotonic() + wait
    with node_client(node) as http:
        while True:
            answer, body, error = None, None, None
            try:
                answer = http.get("healthz" if live else "readyz")
                body = answer.json() if answer.status_code in (200, 503) else None
                body = body if isinstance(body, dict) else None
                if live and body is not None:
                    body = {"status": "ready" if body.get("status") == "ok" else "not_ready"}
            except httpx.TransportError as exc:
                error = exc
            except ValueError:  # not JSON: not a node's readiness
                pass
            if body is not None and body.get("status") == "ready":
                break
            if time.monotonic() >= deadline:
                break
            pause(min(0.5, deadline - time.monotonic()))
    base = str(http.base_url).rstrip("/")
    if answer is None:
        fail(InputError("node_unreachable", "--node", f"cannot reach {base}/readyz: {error}"))
    if body is None:
        fail(InputError("not_a_node", "--node",
                        f"{base}/{'healthz' if live else 'readyz'} answered {answer.status_code}, not a ccx node's readiness: "
                        "a node's URL is its base, without /v1"))  # fmt: skip
    registry = body.get("registry") or {}
    version = f", registry version {registry['version']}" if registry.get("version") else ""
    if body.get("status") == "ready":
        typer.echo("live" if live else f"ready{version}")
        return
    failed = ", ".join(
        sorted(name for name, good in (body.get("checks") or {}).items() if not good)
    )
    reason = registry.get("reason") or registry.get("last_error") or ""
    typer.echo(f"not ready: {failed or 'unknown'}" + (f" ({reason})" if reason else ""))
    raise typer.Exit(EXIT_NOT_READY)


client_app = typer.Typer(
    help="Client credentials on a node (departments that push, service points that "
    "verify), over its HTTP API with the admin token.",
    no_args_is_help=True,
    add_completion=False,
)
node_app.add_typer(client_app, name="client")

AdminTokenOption = Annotated[
    str | None,
    typer.Option(
        "--admin-token",
        metavar="TOKEN",
        envvar="CCX_ADMIN_TOKEN",
        help="The admin bearer token from `ccx node admin-token` (or $CCX_ADMIN_TOKEN).",
        show_default=False,
        show_envvar=False,
    ),
]


def _admin_call(node: str, token: str | None, method: str, path: str, **request: Any) -> Any:
    from cli import call_node, node_client

    if not token:
        raise InputError(
            "missing_option",
            "--admin-token",
            "give the admin token (--admin-token or $CCX_ADMIN_TOKEN; `ccx node admin-token` "
            "makes one)",
        )
    with node_client(node) as http:
        return call_node(http, method, path, token=token, auth_field="--admin-token", **request)


def _client_line(client: dict[str, Any]) -> list[str]:
    from cli import format_time

    expires = client.get("expires_at")
    revoked = client.get("revoked_at")
    return [
        str(client["id"]),
        str(client["department"]),
        " ".join(client["scopes"]),
        format_time(int(expires)) if expires is not None else "-",
        format_time(int(revoked)) if revoked is not None else "-",
    ]


@client_app.command("add")
def add_client(
    client_id: Annotated[
        str, typer.Option("--id", metavar="ID", help="Names the client for good, e.g. tax-bureau.")
    ],
    department: Annotated[
        str,
        typer.Option("--department", metavar="D", help="Whose records it pushes, e.g. tax."),
    ],
    scopes: Annotated[
        list[str],
        typer.Option(
            "--scope",
            metavar="SCOPE",
            help="records:push, records:repair, verify:<scenario>; repeat for more.",
        ),
    ],
    node: NodeUrlOption,
    expires_in: Annotated[
        int | None,
        typer.Option(
            "--expires-in",
            metavar="SECONDS",
            help="Seconds until the credentials expire (default and most: two years).",
            show_default=False,
        ),
    ] = None,
    admin: AdminTokenOption = None,
) -> None:
    """Create client credentials; print the client's bearer token once on stdout (the
    node keeps only its hash). As POST /v1/admin/clients."""
    body: dict[str, Any] = {"id": client_id, "department": department, "scopes": scopes}
    if expires_in is not None:
        body["expires_in"] = expires_in
    try:
        made = _admin_call(node, admin, "POST", "v1/admin/clients", json=body)
    except InputError as exc:
        fail(exc)
    typer.echo(made["token"])
    line = _client_line(made)
    typer.echo(
        f"client {line[0]} of {line[1]} ({line[2]}), expires {line[3]}: its token, shown "
        "this once, is above; give it to the client (CCX_CLIENT_TOKEN)",
        err=True,
    )


@client_app.command("list")
def list_clients(
    node: NodeUrlOption,
    revoked: Annotated[
        bool, typer.Option("--revoked", help="List revoked and expired credentials too.")
    ] = False,
    admin: AdminTokenOption = None,
) -> None:
    """The client credentials in force: id, department, scopes, expiry (never a token).
    As GET /v1/admin/clients."""
    from cli import columns

    try:
        answer = _admin_call(
            node, admin, "GET", "v1/admin/clients", params={"revoked": str(revoked).lower()}
        )
    except InputError as exc:
        fail(exc)
    found = answer["clients"]
    if not found:
        typer.echo("no client credentials", err=True)
        return
    rows = [["id", "department", "scopes", "expires", "revoked"]]
    rows += [_client_line(client) for client in found]
    for line in columns(rows, left=(0, 1, 2, 3, 4)):
        typer.echo(line)


@client_app.command("revoke")
def revoke_client(
    client_id: Annotated[str, typer.Argument(metavar="ID", help="The client's id.")],
    node: NodeUrlOption,
    admin: AdminTokenOption = None,
) -> None:
    """Revoke client credentials at once (their records stay: `ccx node withdraw-records`
    takes back a leaked client's). As DELETE /v1/admin/clients/{id}."""
    try:
        done = _admin_call(node, admin, "DELETE", f"v1/admin/clients/{client_id}")
    except InputError as exc:
        fail(exc)
    typer.echo(f"revoked client {done['id']} of {done['department']}")


# --- ccx audit -------------------------------------------------------------------------

EXIT_BROKEN_CHAIN = 1

audit_app = typer.Typer(
    help="The node's hash-chained audit log.", no_args_is_help=True, add_completion=False
)


@audit_app.command("verify")
def verify(
    data_dir: Annotated[
        Path | None, typer.Option(help="the node's data folder (CCX_DATA_DIR)")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL (CCX_DATABASE_URL); default: SQLite in data_dir"),
    ] = None,
    witness_url: Annotated[
        str | None,
        typer.Option(help="the alliance host witnessing this node (CCX_WITNESS_URL)"),
    ] = None,
    node_id: Annotated[
        str | None, typer.Option(help="this node's id, as the witness knows it (CCX_NODE_ID)")
    ] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(help="the witness's record, saved (JSON); instead of asking the witness"),
    ] = None,
) -> None:
    """Check every entry's hash and link, in order, then the history against the
    checkpoints the alliance host countersigned (from --checkpoints, or asked of the
    witness): the log must hold the witnessed hash at each witnessed entry. Exits 0 for
    an intact, unforked history, 1 naming the first broken entry or the fork. Reads
    only; changes nothing."""
    from sqlmodel import Session

    from node.db import make_engine
    from node.services import audit, witness

    overrides = {
        k: v
        for k, v in {
            "data_dir": data_dir, "database_url": database_url,
            "witness_url": witness_url, "node_id": node_id,
        }.items()
        if v
    }  # fmt: skip
    settings = _load_settings(**overrides)
    record = _witness_record(settings, checkpoints)
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            check = audit.verify_chain(session)
            last = audit.head(session)
            history = None if record is None else witness.check_history(session, record)
    finally:
        engine.dispose()
    if not check.ok:
        typer.echo(
            f"audit chain BROKEN at entry {check.first_bad_seq} (of {check.entries} entries): "
            "it, or the entry before it, was changed, inserted or deleted",
            err=True,
        )
        raise typer.Exit(EXIT_BROKEN_CHAIN)
    head = f"; head {last.seq} {last.hash}" if last else ""
    typer.echo(f"audit chain ok: {check.entries} entries{head}")
    if history is None:
        typer.echo(
            "not checked against a witness (no --witness-url, CCX_WITNESS_URL or --checkpoints)"
        )
        return
    if history.ok:
        upto = f" up to entry {history.latest_seq}" if history.latest_seq is not None else ""
        typer.echo(f"witnessed: {history.checkpoints} checkpoints{upto}, the history matches")
        return
    seq, witnessed, held = history.forks[0]
    typer.echo(
        f"history FORKED at witnessed entry {seq}: "
        + (
            f"the witness countersigned {witnessed}, the log holds {held}: the history was "
            "rewritten"
            if held is not None
            else "the log no longer holds it: the history was cut short"
        )
        + (f" ({len(history.forks)} witnessed entries differ)" if len(history.forks) > 1 else ""),
        err=True,
    )
    raise typer.Exit(EXIT_BROKEN_CHAIN)


def _witness_record(settings: Settings, saved: Path | None) -> list[P.WitnessedCheckpoint] | None:
    """The countersigned checkpoints of this node, verified; None when there is no witness."""
    import json

    import httpx

    from node.services import witness

    field = "--checkpoints" if saved is not None else "--witness-url"
    try:
        if saved is not None:
            record = json.loads(read_bytes(saved, field))
        elif settings.witness_url:
            with httpx.Client(follow_redirects=False) as http:
                record = witness.fetch_witnessed(http, settings.witness_url, settings.node_id)
        else:
            return None
        return witness.verify_witness_record(record, member=settings.node_id)
    except InputError as exc:
        fail(exc)
    except witness.WitnessRecordError as exc:
        fail(InputError(exc.code, field, str(exc)))
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        fail(
            InputError("witness_unavailable", field, f"could not read the witness's record: {exc}")
        )


# --- ccx scheduler ---------------------------------------------------------------------


def scheduler() -> None:
    """Run the node's scheduled jobs (monthly rescoring, nonce purge) in this process, for
    deployments whose web workers run with CCX_SCHEDULER=false."""
    from node.db import make_engine, migrate
    from node.jobs import build_scheduler, checkpoint_audit_head
    from node.scoring import load_model
    from node.state import Metrics, NodeState, load_keyring

    settings = _load_settings()
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    state = NodeState(
        settings, engine, load_keyring(settings), load_model(settings.scoring_model), Metrics()
    )
    typer.echo(
        "ccx scheduler: monthly rescoring on the 1st at 02:00 UTC, nonce purge every 10 minutes"
    )
    try:
        build_scheduler(state, blocking=True).start()
    finally:  # the head at shutdown, witnessed (issue 17, gap I)
        if settings.witness_url:
            checkpoint_audit_head(state)
