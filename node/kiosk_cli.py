"""`ccx kiosk`: a service point on the command line (issue 20), as the kiosk page
(/kiosk/, docs/PAGES.md) is in a browser: the scenarios its credentials may verify, a
presentation request for a standard wallet (OpenID4VP 1.0: its link and QR code), and
the decision.

It speaks only HTTP to its city's node with the service point's client token (scopes
``verify:<scenario>``); it lives beside the node's commands as the kiosk page does, a
client of the node's verifier (node/routers/oid4vp.py), never of its database."""

from __future__ import annotations

import io
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import InputError, call_node, node_client, pause, reports_errors, write_atomically

__all__ = ["EXIT_PENDING", "kiosk_app"]

EXIT_PENDING = 1  # `decision`: still pending when --wait ran out (2: it could not ask)
POLL_SECONDS = 1.0
OUTPUT_FORMATS = ("text", "json", "env")

kiosk_app = typer.Typer(
    help="A service point: ask a visitor's wallet for her credit standing (OpenID4VP) and "
    "read the decision.",
    no_args_is_help=True,
    add_completion=False,
)

NodeOption = Annotated[
    str,
    typer.Option(
        "--node",
        metavar="URL",
        envvar="CCX_NODE_URL",
        help="The service point's city node, its base URL (or $CCX_NODE_URL).",
        show_envvar=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        envvar="CCX_CLIENT_TOKEN",
        help="The service point's client token, scopes verify:<scenario> (or $CCX_CLIENT_TOKEN).",
        show_default=False,
        show_envvar=False,
    ),
]


def _required(token: str | None) -> str:
    if not token:
        raise InputError(
            "missing_option",
            "--token",
            "give the service point's token (--token or $CCX_CLIENT_TOKEN)",
        )
    return token


def _call(node: str, token: str | None, method: str, path: str, **request: Any) -> Any:
    with node_client(node) as http:
        return call_node(http, method, path, token=_required(token), **request)


@kiosk_app.command("scenarios")
@reports_errors
def scenarios(node: NodeOption, token: TokenOption = None) -> None:
    """The scenarios this service point may verify, with their tiers and benefits.
    As GET /v1/service-point."""
    point = _call(node, token, "GET", "v1/service-point")
    typer.echo(f"{point['client_id']} of {point['department']}:")
    for scenario in point["scenarios"]:
        typer.echo(f"  {scenario['scenario']}  {scenario['name_en']} ({scenario['name_zh']})")
        for tier in scenario["tiers"]:
            typer.echo(f"    {tier['name']}: {tier['benefit']}")


@kiosk_app.command("request")
@reports_errors
def request(
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            metavar="SCENARIO",
            help="e.g. library_deposit_free (`ccx kiosk scenarios`).",
        ),
    ],
    node: NodeOption,
    token: TokenOption = None,
    qr_path: Annotated[
        Path | None,
        typer.Option(
            "--qr",
            metavar="FILE.png|FILE.svg",
            help="Also write the request's QR code as PNG or SVG (by the suffix).",
            show_default=False,
        ),
    ] = None,
    terminal: Annotated[
        bool, typer.Option("--terminal", help="Also draw the QR code in the terminal.")
    ] = False,
    output: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="text|json|env",
            help="text: for a person; json: the node's answer; env: CCX_TRANSACTION and "
            'CCX_REQUEST_LINK as shell assignments, for eval "$(ccx kiosk request ...)".',
        ),
    ] = "text",
) -> None:
    """Make a presentation request for a visitor's wallet (OpenID4VP 1.0).

    Prints the transaction id, then the openid4vp:// link on a line of its own: show it
    as a QR code (--qr, --terminal) or open it on the visitor's phone; then read the
    decision with `ccx kiosk decision TRANSACTION_ID --wait 120`. As POST
    /v1/presentation-requests.

    In a script: eval "$(ccx kiosk request --scenario S --format env)" sets
    CCX_TRANSACTION (which `ccx kiosk decision` reads when given no id) and
    CCX_REQUEST_LINK (for `ccx wallet answer "$CCX_REQUEST_LINK"`).
    """
    if output not in OUTPUT_FORMATS:
        raise InputError(
            "unsupported_format", "--format", f"{output!r}: use one of {', '.join(OUTPUT_FORMATS)}"
        )
    kind = None
    if qr_path is not None:
        kind = qr_path.suffix.lower().lstrip(".")
        if kind not in ("png", "svg"):
            raise InputError(
                "unsupported_format", "--qr", f"{qr_path.name}: use a .png or .svg file"
            )
    made = _call(node, token, "POST", "v1/presentation-requests", json={"scenario": scenario})
    if output == "json":
        typer.echo(json.dumps(made, ensure_ascii=False, indent=2))
    elif output == "env":
        typer.echo(f"CCX_TRANSACTION={shlex.quote(str(made['transaction_id']))}")
        typer.echo(f"CCX_REQUEST_LINK={shlex.quote(str(made['request']))}")
        typer.echo("export CCX_TRANSACTION CCX_REQUEST_LINK")
    else:
        typer.echo(f"transaction {made['transaction_id']}")
        typer.echo(made["request"])
    typer.echo(
        f"{made['name_en']}: asks for {', '.join(made['disclose'])}; expires in "
        f"{int(made['expires_at']) - int(made['issued_at'])} s",
        err=True,
    )
    if qr_path is None and not terminal:
        return
    import segno  # only the QR code needs it

    code = segno.make(made["request"], error="m", micro=False)
    if qr_path is not None:
        buffer = io.BytesIO()
        code.save(buffer, kind=kind, scale=6, border=4)
        try:
            write_atomically(qr_path, buffer.getvalue())
        except OSError as exc:
            raise InputError(
                "file_error", "--qr", f"cannot write {qr_path}: {exc.strerror}"
            ) from exc
        typer.echo(f"wrote {qr_path}", err=True)
    if terminal:
        code.terminal(out=sys.stdout, compact=True)


@kiosk_app.command("decision")
@reports_errors
def decision(
    node: NodeOption,
    transaction_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[TRANSACTION_ID]",
            envvar="CCX_TRANSACTION",
            help="From `ccx kiosk request` (or $CCX_TRANSACTION, as its --format env sets).",
            show_default=False,
            show_envvar=False,
        ),
    ] = None,
    token: TokenOption = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            metavar="SECONDS",
            min=0,
            help="Ask again every second until decided, for at most this long.",
        ),
    ] = 0,
) -> None:
    """Where a request stands: granted (the tier and its benefit, and the claims the
    scenario shows besides, e.g. certified_since), denied (the reasons),
    refused or declined (the code), expired, or pending. Exits 0 once decided or
    expired, 1 when still pending. As GET /v1/presentation-requests/{transaction_id}."""
    token = _required(token)
    if not transaction_id:
        raise InputError(
            "missing_argument",
            "TRANSACTION_ID",
            "give the transaction id `ccx kiosk request` printed (or $CCX_TRANSACTION)",
        )
    deadline = time.monotonic() + wait
    with node_client(node) as http:
        while True:
            result = call_node(
                http, "GET", f"v1/presentation-requests/{transaction_id}", token=token
            )
            if result.get("outcome") != "pending" or time.monotonic() >= deadline:
                break
            pause(min(POLL_SECONDS, deadline - time.monotonic()))
    for line in _outcome_lines(result):
        typer.echo(line)
    if result.get("outcome") == "pending":
        raise typer.Exit(EXIT_PENDING)


def _outcome_lines(result: dict[str, Any]) -> list[str]:
    outcome = str(result.get("outcome"))
    lines = [f"{outcome}: {result.get('scenario')}"]
    if outcome == "granted":
        benefit = result.get("benefit") or ""
        lines.append(f"  tier {result.get('tier')}: {benefit}")
    for name, value in (result.get("shown") or {}).items():  # a domestic-service check's
        lines.append(f"  {name}: {value}")
    for reason in result.get("reasons") or []:
        lines.append(f"  [{reason.get('code')}] {reason.get('message')}")
    if result.get("code"):
        lines.append(f"  [{result['code']}] {result.get('message') or ''}".rstrip())
    if result.get("issuer"):
        city = f" ({result['issuer_city']})" if result.get("issuer_city") else ""
        band = f", band {result['band']}" if result.get("band") else ""
        lines.append(f"  issuer {result['issuer']}{city}{band}")
    return lines
